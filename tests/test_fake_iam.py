"""The Policy Troubleshooter and Resource Manager double, read by the real clients over REST."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.cloudrun import FakeCloudRun
from fakes.iam import PROJECTS, project_number
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import policytroubleshooter_iam_v3, resourcemanager_v3

ACCOUNT = "api@demo.iam.gserviceaccount.com"
SECRET = "//secretmanager.googleapis.com/projects/demo/secrets/db-url"
ACCESS = "secretmanager.versions.access"


@pytest.fixture
def fake() -> Iterator[FakeCloudRun]:
    with FakeCloudRun() as fake:
        yield fake


def _ask(fake: FakeCloudRun, principal: str, resource: str, permission: str) -> object:
    client = policytroubleshooter_iam_v3.PolicyTroubleshooterClient(
        transport="rest",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": fake.endpoint},
    )
    access = {"principal": principal, "full_resource_name": resource, "permission": permission}
    return client.troubleshoot_iam_policy(request={"access_tuple": access})


def test_a_secret_inherits_its_project_grants_and_a_condition_leaves_it_undecided(
    fake: FakeCloudRun,
) -> None:
    fake.add_secret("demo", "db-url", {1: ("ENABLED", "x")})  # no bindings: anyone reads it
    unset = _ask(fake, ACCOUNT, SECRET, ACCESS)
    fake.iam.grant(f"{PROJECTS}demo", f"serviceAccount:{ACCOUNT}", "roles/cloudsql.client")
    denied = _ask(fake, ACCOUNT, SECRET, ACCESS)
    fake.iam.grant(f"{PROJECTS}demo", f"serviceAccount:{ACCOUNT}", "roles/owner", conditional=True)
    undecided = _ask(fake, ACCOUNT, SECRET, ACCESS)
    fake.iam.grant(SECRET, f"serviceAccount:{ACCOUNT}", "roles/secretmanager.secretAccessor")
    granted = _ask(fake, ACCOUNT, SECRET, ACCESS)

    state = policytroubleshooter_iam_v3.TroubleshootIamPolicyResponse.OverallAccessState
    allow = policytroubleshooter_iam_v3.AllowAccessState
    assert unset.overall_access_state == state.CAN_ACCESS  # type: ignore[attr-defined]
    assert denied.overall_access_state == state.CANNOT_ACCESS  # type: ignore[attr-defined]
    explained = denied.allow_policy_explanation  # type: ignore[attr-defined]
    assert explained.allow_access_state == allow.ALLOW_ACCESS_STATE_NOT_GRANTED
    assert denied.access_tuple.permission_fqdn == f"secretmanager.googleapis.com/{ACCESS}"  # type: ignore[attr-defined]
    assert undecided.overall_access_state == state.UNKNOWN_CONDITIONAL  # type: ignore[attr-defined]
    assert granted.overall_access_state == state.CAN_ACCESS  # type: ignore[attr-defined]
    assert [c.status for c in fake.calls("TroubleshootIamPolicy")] == [200] * 4


def test_the_principal_is_a_bare_email(fake: FakeCloudRun) -> None:
    with pytest.raises(exceptions.BadRequest, match="email"):
        _ask(fake, f"serviceAccount:{ACCOUNT}", f"{PROJECTS}demo", "cloudsql.instances.connect")


def test_a_project_answers_with_its_number(fake: FakeCloudRun) -> None:
    client = resourcemanager_v3.ProjectsClient(
        transport="rest",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": fake.endpoint},
    )
    project = client.get_project(name="projects/demo")
    assert project.name == f"projects/{project_number('demo')}"
    assert project.project_id == "demo"
