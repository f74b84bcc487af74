"""The Cloud Run / Secret Manager double, driven only through the real Google client libraries.

These tests pin the behaviour the provider relies on (errors, etags, operations, revisions,
traffic, URLs) so the double cannot drift from what the real clients send and expect.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from fakes.cloudrun import AppRequest, AppResponse, FakeCloudRun, failing_health_app
from google.api_core import exceptions
from google.api_core.retry import Retry, if_exception_type
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import RefreshError
from google.cloud import run_v2, secretmanager_v1
from google.oauth2.credentials import Credentials
from google.protobuf import field_mask_pb2

PARENT = "projects/demo/locations/us-central1"
NAME = f"{PARENT}/services/api"
FAST_POLL = Retry(initial=0.01, maximum=0.05, multiplier=1.5, timeout=5)


@pytest.fixture
def fake() -> Iterator[FakeCloudRun]:
    with FakeCloudRun(seed=7) as double:
        yield double


def _options(fake: FakeCloudRun) -> dict[str, str]:
    return {"api_endpoint": fake.endpoint}


@pytest.fixture
def services(fake: FakeCloudRun) -> run_v2.ServicesClient:
    return run_v2.ServicesClient(
        transport="rest", client_options=_options(fake), credentials=AnonymousCredentials()
    )


@pytest.fixture
def revisions(fake: FakeCloudRun) -> run_v2.RevisionsClient:
    return run_v2.RevisionsClient(
        transport="rest", client_options=_options(fake), credentials=AnonymousCredentials()
    )


@pytest.fixture
def secrets(fake: FakeCloudRun) -> secretmanager_v1.SecretManagerServiceClient:
    return secretmanager_v1.SecretManagerServiceClient(
        transport="rest", client_options=_options(fake), credentials=AnonymousCredentials()
    )


def _template(image: str, revision: str = "", **env: str) -> run_v2.RevisionTemplate:
    container = run_v2.Container(
        image=image, env=[run_v2.EnvVar(name=k, value=v) for k, v in env.items()]
    )
    return run_v2.RevisionTemplate(revision=revision, containers=[container])


def _create(services: run_v2.ServicesClient, image: str = "app:1", **env: str) -> run_v2.Service:
    operation = services.create_service(
        parent=PARENT, service_id="api", service=run_v2.Service(template=_template(image, **env))
    )
    created: run_v2.Service = operation.result()
    return created


def _short(revision_name: str) -> str:
    return revision_name.rsplit("/", 1)[1]


def _served_by(url: str) -> str:
    response = requests.get(f"{url}/health", timeout=5)
    return response.headers["X-Fake-Revision"]


def test_create_fills_server_fields_and_serves_the_revision(
    fake: FakeCloudRun, services: run_v2.ServicesClient
) -> None:
    created = _create(services, LOG_LEVEL="info")

    fetched = services.get_service(name=NAME)
    assert fetched == created
    assert fetched.generation == 1 == fetched.observed_generation
    assert fetched.etag and fetched.uid and fetched.create_time
    assert fetched.latest_ready_revision == fetched.latest_created_revision
    assert _short(fetched.latest_ready_revision).startswith("api-00001-")
    assert fetched.terminal_condition.type_ == "Ready"
    assert fetched.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    # Defaults the real server fills appear in the live service though nobody wrote them.
    assert fetched.template.service_account == "demo-compute@developer.gserviceaccount.com"
    assert fetched.template.containers[0].resources.limits["memory"] == "512Mi"
    latest = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    assert fetched.traffic[0].type_ == latest
    assert fetched.traffic_statuses[0].percent == 100
    health = requests.get(f"{fetched.uri}/health", timeout=5)
    assert (health.status_code, health.json()) == (200, {"ok": True})
    assert health.headers["X-Fake-Revision"] == _short(fetched.latest_ready_revision)
    # The double saw what the client sent: numeric enums requested, serviceId as a query param.
    (call,) = fake.mutating_calls()
    assert (call.rpc, call.query["serviceId"], call.query["$alt"]) == (
        "CreateService",
        "api",
        "json;enum-encoding=int",
    )


def test_missing_service_and_duplicate_create_are_google_errors(
    services: run_v2.ServicesClient,
) -> None:
    with pytest.raises(exceptions.NotFound, match="of kind 'SERVICE'"):
        services.get_service(name=NAME)
    _create(services)
    with pytest.raises(exceptions.Conflict, match="already exists"):
        _create(services)


def test_update_replaces_the_spec_and_makes_a_new_revision(
    fake: FakeCloudRun, services: run_v2.ServicesClient
) -> None:
    before = _create(services, A="1", B="2")
    first = before.latest_ready_revision

    changed = run_v2.Service(name=NAME, template=_template("app:2", A="1"))
    after = services.update_service(service=changed).result()

    assert after.etag != before.etag
    assert after.generation == 2
    assert after.latest_ready_revision != first
    # No update mask: the body is the whole spec, so B is gone. This is the trap safedeploy guards.
    assert [e.name for e in after.template.containers[0].env] == ["A"]
    assert _served_by(after.uri) == _short(after.latest_ready_revision)
    # A body equal to the live spec changes the generation but makes no revision.
    same = services.update_service(service=after).result()
    assert same.generation == 3
    assert same.latest_created_revision == after.latest_created_revision
    assert len(fake.revisions(NAME)) == 2


def test_update_mask_and_allow_missing(fake: FakeCloudRun, services: run_v2.ServicesClient) -> None:
    fake.seed_service(NAME, {"template": {"containers": [{"image": "app:1"}]}})
    masked = run_v2.UpdateServiceRequest(
        service=run_v2.Service(
            name=NAME,
            scaling=run_v2.ServiceScaling(min_instance_count=2),
            template=_template("ignored:9"),
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["scaling.min_instance_count"]),
    )
    live = services.update_service(request=masked).result()
    assert (live.scaling.min_instance_count, live.template.containers[0].image) == (2, "app:1")
    assert len(fake.revisions(NAME)) == 1

    other = run_v2.Service(name=f"{PARENT}/services/other", template=_template("app:1"))
    with pytest.raises(exceptions.NotFound):
        services.update_service(service=other)
    created = services.update_service(request={"service": other, "allow_missing": True}).result()
    assert created.generation == 1


def test_stale_etag_is_conflict_aborted_and_changes_nothing(
    fake: FakeCloudRun, services: run_v2.ServicesClient
) -> None:
    read = _create(services)
    fake.external_update(NAME, lambda spec: spec["template"]["containers"][0].update(image="x:9"))

    read.template.containers[0].image = "app:2"
    with pytest.raises(exceptions.Conflict) as caught:
        services.update_service(service=read)

    # Conflict covers ALREADY_EXISTS too; the error body's status tells them apart.
    assert caught.value.response.json()["error"]["status"] == "ABORTED"
    live = services.get_service(name=NAME)
    assert live.template.containers[0].image == "x:9"
    assert live.generation == 2


def test_a_revision_name_is_reusable_only_with_the_same_configuration(
    fake: FakeCloudRun, services: run_v2.ServicesClient
) -> None:
    _create(services)
    named = run_v2.Service(name=NAME, template=_template("app:2", revision="api-green"))
    services.update_service(service=named).result()

    services.update_service(service=named).result()  # same name, same template: accepted
    other = run_v2.Service(name=NAME, template=_template("app:3", revision="api-green"))
    with pytest.raises(exceptions.Conflict, match="with different configuration already exists"):
        services.update_service(service=other)
    unprefixed = run_v2.Service(name=NAME, template=_template("app:3", revision="green"))
    with pytest.raises(exceptions.BadRequest, match="prefixed by the service name"):
        services.update_service(service=unprefixed)
    assert _short(fake.revisions(NAME)[0]["name"]) == "api-green"


def test_traffic_split_with_tags_routes_real_http(services: run_v2.ServicesClient) -> None:
    stable = _short(_create(services).latest_ready_revision)
    canary = run_v2.Service(
        name=NAME,
        template=_template("app:2", revision="api-canary"),
        traffic=[
            run_v2.TrafficTarget(revision=stable, percent=90, tag="stable"),
            run_v2.TrafficTarget(revision="api-canary", percent=10, tag="canary"),
        ],
    )
    live = services.update_service(service=canary).result()

    tag_urls = {status.tag: status.uri for status in live.traffic_statuses}
    assert _served_by(tag_urls["canary"]) == "api-canary"
    assert _served_by(tag_urls["stable"]) == stable
    split = Counter(_served_by(live.uri) for _ in range(100))
    assert split == {stable: 90, "api-canary": 10}


def test_bad_traffic_is_refused_or_fails_the_operation(services: run_v2.ServicesClient) -> None:
    _create(services)
    half = run_v2.Service(
        name=NAME,
        template=_template("app:1"),
        traffic=[run_v2.TrafficTarget(type_="TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", percent=50)],
    )
    with pytest.raises(exceptions.BadRequest, match="add up to 100"):
        services.update_service(service=half)
    ghost = run_v2.Service(
        name=NAME,
        template=_template("app:1"),
        traffic=[run_v2.TrafficTarget(revision="api-ghost", percent=100)],
    )
    with pytest.raises(exceptions.FailedPrecondition, match="does not exist"):
        services.update_service(service=ghost).result()


def test_revisions_list_newest_first_and_record_their_template(
    services: run_v2.ServicesClient, revisions: run_v2.RevisionsClient
) -> None:
    _create(services, A="1")
    services.update_service(
        service=run_v2.Service(name=NAME, template=_template("app:2", A="2"))
    ).result()

    listed = list(revisions.list_revisions(request={"parent": NAME, "page_size": 1}))
    assert [r.containers[0].image for r in listed] == ["app:2", "app:1"]
    newest = revisions.get_revision(name=listed[0].name)
    assert newest.service == NAME
    assert newest.containers[0].env[0].value == "2"
    assert newest.conditions[0].state == run_v2.Condition.State.CONDITION_SUCCEEDED
    with pytest.raises(exceptions.BadRequest, match="receiving traffic"):
        revisions.delete_revision(name=newest.name)
    deleted = revisions.delete_revision(name=listed[1].name).result()
    assert deleted.name == listed[1].name


def test_injected_faults_hit_the_next_calls_only(
    fake: FakeCloudRun, services: run_v2.ServicesClient
) -> None:
    _create(services)
    fake.fail_next("GetService", "UNAVAILABLE")
    fast_retry = Retry(
        initial=0.01,
        maximum=0.05,
        timeout=5,
        predicate=if_exception_type(exceptions.ServiceUnavailable),
    )
    assert services.get_service(name=NAME, retry=fast_retry).name == NAME
    assert [c.status for c in fake.calls("GetService")] == [503, 200]

    fake.fail_next("UpdateService", "RESOURCE_EXHAUSTED", times=2)
    change = run_v2.Service(name=NAME, template=_template("app:2"))
    for _ in range(2):
        with pytest.raises(exceptions.TooManyRequests):
            services.update_service(service=change)
    assert services.get_service(name=NAME).generation == 1
    assert services.update_service(service=change).result().generation == 2


def test_a_revision_that_cannot_start_leaves_the_old_one_serving(
    fake: FakeCloudRun, services: run_v2.ServicesClient, revisions: run_v2.RevisionsClient
) -> None:
    good = _create(services).latest_ready_revision
    fake.fail_to_start(":broken")

    broken = run_v2.Service(name=NAME, template=_template("app:broken"))
    with pytest.raises(
        exceptions.FailedPrecondition, match="is not ready and cannot serve traffic"
    ):
        services.update_service(service=broken).result()

    live = services.get_service(name=NAME)
    assert live.terminal_condition.state == run_v2.Condition.State.CONDITION_FAILED
    assert "failed to start and listen on the port" in live.terminal_condition.message
    assert live.latest_ready_revision == good != live.latest_created_revision
    assert live.observed_generation == 1 != live.generation
    failed = revisions.get_revision(name=live.latest_created_revision)
    assert failed.conditions[0].type_ == "Ready"
    assert failed.conditions[0].state == run_v2.Condition.State.CONDITION_FAILED
    assert _served_by(live.uri) == _short(good)
    # Rolling back by traffic alone works after a failed deploy.
    pinned = run_v2.Service(
        name=NAME,
        template=live.template,
        traffic=[run_v2.TrafficTarget(revision=_short(good), percent=100)],
        etag=live.etag,
    )
    rolled_back = services.update_service(service=pinned).result()
    assert rolled_back.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED


def test_a_started_revision_can_still_fail_its_probe(
    fake: FakeCloudRun, services: run_v2.ServicesClient
) -> None:
    fake.set_app(":sick", failing_health_app)
    live = _create(services, image="app:sick")
    assert live.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    assert requests.get(f"{live.uri}/health", timeout=5).status_code == 500
    env_broken = run_v2.Service(name=NAME, template=_template("app:1", BREAK_HEALTH="1"))
    live = services.update_service(service=env_broken).result()
    assert requests.get(f"{live.uri}/health", timeout=5).status_code == 500


def test_operations_can_take_polls_to_finish() -> None:
    with FakeCloudRun(operation_polls=2) as slow:
        client = run_v2.ServicesClient(
            transport="rest", client_options=_options(slow), credentials=AnonymousCredentials()
        )
        operation = client.create_service(
            parent=PARENT, service_id="api", service=run_v2.Service(template=_template("app:1"))
        )
        assert not operation.done()  # spends the first of the two polls
        midway = client.get_service(name=NAME)
        assert midway.reconciling
        assert midway.terminal_condition.state == run_v2.Condition.State.CONDITION_RECONCILING
        assert operation.metadata.name == NAME
        created = operation.result(polling=FAST_POLL)
        assert created.latest_ready_revision
        assert not client.get_service(name=NAME).reconciling
        assert len(slow.calls("GetOperation")) == 2


def test_validate_only_persists_nothing(
    fake: FakeCloudRun, services: run_v2.ServicesClient
) -> None:
    request = run_v2.CreateServiceRequest(
        parent=PARENT,
        service_id="api",
        service=run_v2.Service(template=_template("app:1")),
        validate_only=True,
    )
    assert services.create_service(request=request).result().template.containers[0].image
    with pytest.raises(exceptions.NotFound):
        services.get_service(name=NAME)
    assert fake.revisions(NAME) == []


def test_secret_versions_states_and_iam_policy(
    fake: FakeCloudRun, secrets: secretmanager_v1.SecretManagerServiceClient
) -> None:
    name = fake.add_secret(
        "demo",
        "db-url",
        versions={1: ("ENABLED", "postgres://one"), 2: ("DESTROYED", "x"), 3: ("DISABLED", "y")},
        iam_bindings={"roles/secretmanager.secretAccessor": ["serviceAccount:run@demo.iam"]},
    )

    assert secrets.get_secret(name=name).name == name
    latest = secrets.get_secret_version(name=f"{name}/versions/latest")
    assert (latest.name, latest.state.name) == (f"{name}/versions/3", "DISABLED")
    assert secrets.get_secret_version(name=f"{name}/versions/2").state.name == "DESTROYED"
    payload = secrets.access_secret_version(name=f"{name}/versions/1").payload.data
    assert payload == b"postgres://one"
    with pytest.raises(exceptions.BadRequest, match="is in DISABLED state"):
        secrets.access_secret_version(name=f"{name}/versions/latest")
    fake.set_secret_version_state(name, 3, "ENABLED")
    assert secrets.access_secret_version(name=f"{name}/versions/latest").payload.data == b"y"
    fake.add_secret_version(name, "z")
    assert secrets.access_secret_version(name=f"{name}/versions/latest").name.endswith("/4")
    policy = secrets.get_iam_policy(request={"resource": name})
    assert [(b.role, list(b.members)) for b in policy.bindings] == [
        ("roles/secretmanager.secretAccessor", ["serviceAccount:run@demo.iam"])
    ]
    with pytest.raises(exceptions.NotFound):
        secrets.get_secret(name="projects/demo/secrets/nope")


def _secret_env(image: str, service_account: str) -> run_v2.Service:
    ref = run_v2.SecretKeySelector(secret="db-url", version="latest")
    container = run_v2.Container(
        image=image,
        env=[
            run_v2.EnvVar(name="DATABASE_URL", value_source=run_v2.EnvVarSource(secret_key_ref=ref))
        ],
    )
    template = run_v2.RevisionTemplate(containers=[container], service_account=service_account)
    return run_v2.Service(template=template)


def test_revisions_read_secrets_as_their_service_account(
    fake: FakeCloudRun, services: run_v2.ServicesClient
) -> None:
    fake.add_secret(
        "demo",
        "db-url",
        versions={1: ("ENABLED", "postgres://db\r\n")},
        iam_bindings={"roles/secretmanager.secretAccessor": ["serviceAccount:run@demo.iam"]},
    )

    def reports_trailing_newline(request: AppRequest) -> AppResponse:
        return AppResponse.json({"trailing": request.env["DATABASE_URL"].endswith("\r\n")})

    fake.set_app("reader", reports_trailing_newline)
    created = services.create_service(
        parent=PARENT, service_id="api", service=_secret_env("reader:1", "run@demo.iam")
    ).result()
    assert requests.get(created.uri, timeout=5).json() == {"trailing": True}

    denied = _secret_env("reader:2", "other@demo.iam")
    denied.name = NAME
    with pytest.raises(exceptions.FailedPrecondition, match="Permission denied on secret"):
        services.update_service(service=denied).result()


def test_a_bearer_token_can_be_required(fake: FakeCloudRun) -> None:
    fake.token = "t0k3n"

    def client(token: str) -> run_v2.ServicesClient:
        credentials = Credentials(token=token)
        return run_v2.ServicesClient(
            transport="rest", client_options=_options(fake), credentials=credentials
        )

    # google-auth answers a 401 by refreshing; a bare access token cannot be refreshed.
    with pytest.raises(RefreshError):
        client("wrong").get_service(name=NAME)
    with pytest.raises(exceptions.NotFound):
        client("t0k3n").get_service(name=NAME)
    assert [call.status for call in fake.calls()] == [401, 404]


def test_close_stops_every_server_thread() -> None:
    before = threading.active_count()
    with FakeCloudRun() as other:
        client = run_v2.ServicesClient(
            transport="rest", client_options=_options(other), credentials=AnonymousCredentials()
        )
        live = client.create_service(
            parent=PARENT, service_id="api", service=run_v2.Service(template=_template("app:1"))
        ).result()
        requests.get(live.uri, timeout=5)
    assert threading.active_count() == before
