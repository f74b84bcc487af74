"""The IAM preflight through the CLI: Policy Troubleshooter v3 asked once per access tuple for
the runtime account, before any write; proven missing is an error, undecided a warning."""

from __future__ import annotations

import json
from typing import Any

from fakes.iam import PROJECTS, project_number

from e2e.test_cloudrun import ACCESSOR, ACCOUNT, Cloud, _env, _secret_env, seed
from e2e.test_cloudrun import cloud as cloud  # the fixture

CLIENT = "roles/cloudsql.client"
ACCESS = "secretmanager.versions.access"
DEMO = f"{PROJECTS}demo"
SQL = "settings: {cloudsql_instances: ['demo:us-central1:main', 'demo:us-central1:replica']}\n"


def _tuples(cloud: Cloud) -> list[tuple[str, str, str]]:
    asked = [c.body["accessTuple"] for c in cloud.fake.calls("TroubleshootIamPolicy") if c.body]
    return [(t["principal"], t["fullResourceName"], t["permission"]) for t in asked]


def _findings(done: Any) -> set[tuple[str, str, str]]:
    plan = json.loads(done.out)["plans"][0]
    return {(f["code"], f["severity"], f["key"]) for f in plan["findings"]}


def test_a_missing_grant_is_an_error_naming_account_permission_role_and_command(
    cloud: Cloud,
) -> None:
    seed(cloud, _env(A="1"))
    cloud.fake.add_secret("demo", "db-url", {1: ("ENABLED", "x")})
    cloud.fake.add_secret("demo", "api-key", {1: ("ENABLED", "x")})
    cloud.fake.iam.grant(DEMO, "serviceAccount:other@demo.iam.gserviceaccount.com", CLIENT)
    manifest = cloud.manifest(
        f"image: app:2\nsecrets: {{DB: db-url, KEY: api-key, KEY_AGAIN: api-key}}\n{SQL}"
    )

    planned = cloud.run("plan", manifest)
    deployed = cloud.run("deploy", manifest, "--yes")

    assert planned.code == 1 and deployed.code == 1
    for text in (planned.out, deployed.out):
        assert "SD207" in text and ACCOUNT in text
        assert "cloudsql.instances.connect" in text and "secretmanager.versions.access" in text
        assert (
            f"gcloud projects add-iam-policy-binding demo --member serviceAccount:{ACCOUNT} "
            f"--role {CLIENT}" in text
        )
        assert (
            f"gcloud secrets add-iam-policy-binding db-url --project demo --member "
            f"serviceAccount:{ACCOUNT} --role {ACCESSOR}" in text
        )
    assert cloud.fake.mutating_calls() == []
    # one call per distinct tuple and run: two secrets, one project for both instances
    access = "secretmanager.versions.access"
    assert _tuples(cloud) == 2 * [
        (ACCOUNT, "//secretmanager.googleapis.com/projects/demo/secrets/db-url", access),
        (ACCOUNT, "//secretmanager.googleapis.com/projects/demo/secrets/api-key", access),
        (ACCOUNT, DEMO, "cloudsql.instances.connect"),
    ]


def test_granted_at_the_project_or_on_the_secret_deploys(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    cloud.fake.add_secret("demo", "db-url", {1: ("ENABLED", "x")}, {ACCESSOR: []})
    cloud.fake.add_secret(
        "demo", "api-key", {1: ("ENABLED", "x")}, {ACCESSOR: [f"serviceAccount:{ACCOUNT}"]}
    )
    cloud.fake.iam.grant(DEMO, f"serviceAccount:{ACCOUNT}", CLIENT)
    cloud.fake.iam.grant(DEMO, f"serviceAccount:{ACCOUNT}", ACCESSOR)
    manifest = cloud.manifest(f"image: app:2\nsecrets: {{DB: db-url, KEY: api-key}}\n{SQL}")

    done = cloud.run("deploy", manifest, "--yes")

    assert done.code == 0, done.out + done.err
    assert "SD207" not in done.out and "SD204" not in done.out


def test_a_conditional_grant_or_a_troubleshooter_that_refuses_warns_and_deploys(
    cloud: Cloud,
) -> None:
    seed(cloud, _env(A="1"))
    cloud.fake.add_secret("demo", "db-url", {1: ("ENABLED", "x")})
    cloud.fake.iam.grant(DEMO, f"serviceAccount:{ACCOUNT}", CLIENT, conditional=True)
    cloud.fake.iam.grant(DEMO, f"serviceAccount:{ACCOUNT}", ACCESSOR)
    conditional = cloud.manifest(f"image: app:2\n{SQL}")
    refused = cloud.manifest("image: app:3\nsecrets: {DB: db-url}\n", "refused.yaml")

    first = cloud.run("plan", conditional, "--format", "json")
    cloud.fake.fail_next("TroubleshootIamPolicy", "PERMISSION_DENIED")
    second = cloud.run("deploy", refused, "--yes")

    assert first.code == 0, first.err
    assert _findings(first) == {("SD204", "warning", "settings.cloudsql_instances")}
    assert "condition" in first.out
    assert second.code == 0, second.out + second.err
    assert "SD204" in second.out and "Policy Troubleshooter could not answer" in second.out


def test_no_service_account_checks_the_default_compute_account(cloud: Cloud) -> None:
    cloud.fake.iam.grant(DEMO, "serviceAccount:someone@demo.iam.gserviceaccount.com", CLIENT)
    manifest = cloud.manifest(f"image: app:1\n{SQL}")

    planned = cloud.run("plan", manifest)
    cloud.fake.fail_next("GetProject", "PERMISSION_DENIED")
    unknown = cloud.run("plan", manifest)

    default = f"{project_number('demo')}-compute@developer.gserviceaccount.com"
    assert planned.code == 1
    assert "SD207" in planned.out and default in planned.out
    assert _tuples(cloud) == [(default, DEMO, "cloudsql.instances.connect")]
    assert unknown.code == 0
    assert "SD204" in unknown.out and "runtime service account is not known" in unknown.out
    assert cloud.fake.mutating_calls() == []


def test_a_kept_secret_and_one_of_another_project_are_checked_too(cloud: Cloud) -> None:
    granted = {ACCESSOR: [f"serviceAccount:{ACCOUNT}"]}
    cloud.fake.add_secret("demo", "kept-secret", {1: ("ENABLED", "x")}, granted)
    cloud.fake.add_secret("shared", "signing-key", {1: ("ENABLED", "x")}, granted)
    seed(cloud, [*_env(A="1"), _secret_env("KEPT", "kept-secret")])
    new = "runtime@demo.iam.gserviceaccount.com"  # the manifest moves the service to it
    manifest = cloud.manifest(
        "image: app:2\nsecrets: {SIGN: projects/shared/secrets/signing-key}\n"
        f"settings: {{service_account: {new}}}\n"
    )

    done = cloud.run("plan", manifest, "--format", "json")

    assert done.code == 1
    assert _findings(done) == {
        ("SD207", "error", "secrets.SIGN"),
        ("SD109", "warning", "unmanaged"),
    }
    hints = [f["hint"] for f in json.loads(done.out)["plans"][0]["findings"]]
    assert (
        f"gcloud secrets add-iam-policy-binding signing-key --project shared --member "
        f"serviceAccount:{new} --role {ACCESSOR}" in hints
    )
    assert _tuples(cloud) == [
        (new, "//secretmanager.googleapis.com/projects/demo/secrets/kept-secret", ACCESS),
        (new, "//secretmanager.googleapis.com/projects/shared/secrets/signing-key", ACCESS),
    ]
