"""The Cloud Run provider's parts, with the real Google clients against the loopback double."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.cloudrun import AppRequest, AppResponse, FakeCloudRun

from safedeploy.cancel import NEVER
from safedeploy.errors import SafedeployError, VersionMoved
from safedeploy.facts import Revision
from safedeploy.manifest import load_manifest
from safedeploy.model import SecretRef, ServiceSpec
from safedeploy.providers.base import Candidate
from safedeploy.providers.cloudrun import (
    CloudRunProvider,
    IdTokenProbe,
    Pace,
    owned_names,
)

NAME = "projects/demo/locations/us-central1/services/api"


@pytest.fixture
def fake() -> Iterator[FakeCloudRun]:
    with FakeCloudRun(seed=5) as double:
        yield double


def provider(
    fake: FakeCloudRun, container: str | None = None, pace: Pace | None = None
) -> CloudRunProvider:
    environ = {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": f"{fake.endpoint}/",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": f"{fake.endpoint}/",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_POLICYTROUBLESHOOTER": f"{fake.endpoint}/",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": f"{fake.endpoint}/",
        "CLOUDSDK_AUTH_ACCESS_TOKEN": "test-token",
    }
    return CloudRunProvider(
        "demo",
        "us-central1",
        "api",
        container=container,
        environ=environ,
        pace=pace or Pace(backoff=0.01),
    )


def test_the_sdk_is_imported_only_when_a_cloud_run_call_is_made() -> None:
    check = (
        "import sys, safedeploy.cli, safedeploy.context, safedeploy.providers.cloudrun\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'google'))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_sidecar_layout_decides_which_container_is_managed(fake: FakeCloudRun) -> None:
    fake.seed_service(
        NAME,
        {
            "template": {
                "containers": [
                    {"name": "proxy", "image": "envoy:1", "env": [{"name": "P", "value": "1"}]},
                    {
                        "name": "app",
                        "image": "app:1",
                        "ports": [{"containerPort": 9000}],
                        "env": [
                            {"name": "A", "value": "1"},
                            {
                                "name": "S",
                                "valueSource": {"secretKeyRef": {"secret": "s", "version": "3"}},
                            },
                        ],
                    },
                ]
            }
        },
    )

    ingress = provider(fake).read().spec
    proxy = provider(fake, container="proxy").read().spec

    assert ingress is not None and proxy is not None
    assert (ingress.image, dict(ingress.env)) == ("app:1", {"A": "1", "S": SecretRef("s", "3")})
    assert ingress.settings["port"] == 9000
    assert (proxy.image, dict(proxy.env)) == ("envoy:1", {"P": "1"})
    with pytest.raises(SafedeployError, match="no container 'web'; it has: proxy, app"):
        provider(fake, container="web").read()


def test_retries_stop_when_their_budget_is_spent(fake: FakeCloudRun) -> None:
    fake.fail_next("GetService", "UNAVAILABLE", times=1000)
    impatient = provider(fake, pace=Pace(backoff=0.01, budget=0.3))

    with pytest.raises(SafedeployError) as caught:
        impatient.read()

    assert caught.value.where == NAME
    assert "unavailable through the retries" in str(caught.value.hint)
    assert 2 < len(fake.calls("GetService")) < 40


def test_a_bad_backoff_setting_is_refused() -> None:
    with pytest.raises(SafedeployError, match="SAFEDEPLOY_CLOUDRUN_BACKOFF"):
        Pace.from_environ({"SAFEDEPLOY_CLOUDRUN_BACKOFF": "fast"})
    assert Pace.from_environ({"SAFEDEPLOY_CLOUDRUN_BACKOFF": "0.5"}).backoff == 0.5


def test_id_token_probes_carry_a_token_for_the_service_url(
    fake: FakeCloudRun, tmp_path: Path
) -> None:
    seen: list[str] = []

    def private(request: AppRequest) -> AppResponse:
        seen.append(request.headers.get("Authorization", ""))
        ok = request.headers.get("Authorization", "").startswith("Bearer token-for-")
        return AppResponse.json({"ok": ok}, 200 if ok else 403)

    fake.set_app("app:", private)
    fake.seed_service(NAME, {"template": {"containers": [{"image": "app:1"}]}})
    manifest_path = tmp_path / "api.yaml"
    manifest_path.write_text(
        "service: api\nplatform: cloudrun\nproject: demo\nregion: us-central1\nimage: app:1\n"
        "probe_auth: id-token\nprobes: [{name: health, path: /health, retries: 0}]\n"
    )
    manifest = load_manifest(manifest_path)
    cloud_run = provider(fake)
    url = cloud_run.read().url
    assert url is not None
    audiences: list[str] = []

    def fetch(audience: str) -> str:
        audiences.append(audience)
        return f"token-for-{audience}"

    probe = IdTokenProbe(cloud_run, fetch)
    first, second = probe(manifest, url), probe(manifest, url)

    assert [r.ok for r in (*first, *second)] == [True, True]
    assert audiences == [url]  # fetched once, for the service's own URL
    assert seen == [f"Bearer token-for-{url}"] * 2


def release(cloud_run: CloudRunProvider, revision: str, image: str, **settings: object) -> Revision:
    """One candidate of the core's making, applied and waited for (no traffic yet)."""
    live = cloud_run.read()
    assert live.spec is not None
    target = ServiceSpec(image=image, env=live.spec.env, settings=settings)
    candidate = Candidate(live.fingerprint, target, frozenset(), revision, revision[4:])
    return cloud_run.wait_ready(cloud_run.apply(candidate), NEVER)


def test_apply_writes_the_settings_the_target_names_and_no_other(fake: FakeCloudRun) -> None:
    limits = {"cpu": "2", "memory": "1Gi"}
    fake.seed_service(
        NAME, {"template": {"containers": [{"image": "app:1", "resources": {"limits": limits}}]}}
    )
    cloud_run = provider(fake)
    settings = {
        "memory": "2Gi",
        "timeout": 120,
        "concurrency": 20,
        "min_instances": 1,
        "max_instances": 5,
        "service_account": "run@demo.iam.gserviceaccount.com",
        "vpc_connector": "projects/demo/locations/us-central1/connectors/c",
        "egress": "all-traffic",
        "cloudsql_instances": ["demo:us-central1:db"],
        "ingress": "internal",
        "labels": {"team": "payments"},
        "port": 9000,
    }

    cloud_run.route({release(cloud_run, "api-r2", "app:2", **settings).name: 100})

    live = cloud_run.read().spec
    assert live is not None
    assert {k: live.settings.get(k) for k in settings} == settings
    assert live.settings["cpu"] == "2"  # absent from the target: left as it is live


def test_cloudsql_volumes_that_hold_the_instances_stay_as_they_are(fake: FakeCloudRun) -> None:
    volumes = [
        {"name": "a", "cloudSqlInstance": {"instances": ["demo:r:a"]}},
        {"name": "b", "cloudSqlInstance": {"instances": ["demo:r:b"]}},
    ]
    mounts = [{"name": "a", "mountPath": "/a"}, {"name": "b", "mountPath": "/b"}]
    container = {"image": "app:1", "volumeMounts": mounts}
    fake.seed_service(NAME, {"template": {"volumes": volumes, "containers": [container]}})

    release(provider(fake), "api-r2", "app:2", cloudsql_instances=["demo:r:a", "demo:r:b"])

    template = fake.service(NAME)["template"]
    assert [v["name"] for v in template["volumes"]] == ["a", "b"]
    assert template["containers"][0]["volumeMounts"] == mounts


def test_read_reports_the_revision_that_serves_not_the_template(fake: FakeCloudRun) -> None:
    fake.seed_service(NAME, {"template": {"containers": [{"image": "app:1"}]}})
    cloud_run = provider(fake)
    first = next(iter(cloud_run.read().traffic))
    second = release(cloud_run, "api-r2", "app:2")
    cloud_run.route({second.name: 100})
    served = cloud_run.read().spec
    assert served is not None and served.image == "app:2"

    cloud_run.route({first: 100})  # a rollback moves traffic; the template stays at app:2

    live = cloud_run.read()
    assert fake.service(NAME)["template"]["containers"][0]["image"] == "app:2"
    assert live.spec is not None and live.spec.image == "app:1"
    assert live.traffic == {first: 100}


def test_apply_refuses_a_moved_service_before_any_write(fake: FakeCloudRun) -> None:
    fake.seed_service(NAME, {"template": {"containers": [{"image": "app:1"}]}})
    cloud_run = provider(fake)
    live = cloud_run.read()
    fake.external_update(NAME, lambda spec: spec.update(labels={"edited-by": "console"}))
    candidate = Candidate(live.fingerprint, ServiceSpec(image="app:2"), frozenset(), "api-r2", "r2")

    with pytest.raises(VersionMoved) as moved:
        cloud_run.apply(candidate)

    assert moved.value.where == NAME
    assert fake.mutating_calls() == []


def test_a_revision_name_cloud_run_cannot_take_is_refused_before_any_write(
    fake: FakeCloudRun,
) -> None:
    fake.seed_service(NAME, {"template": {"containers": [{"image": "app:1"}]}})
    cloud_run = provider(fake)
    name = "api-" + "x" * 60
    candidate = Candidate(cloud_run.read().fingerprint, ServiceSpec(), frozenset(), name, "x")

    with pytest.raises(SafedeployError, match="64 characters; Cloud Run allows 63"):
        cloud_run.apply(candidate)

    assert fake.mutating_calls() == []


def test_owned_names() -> None:
    assert owned_names(" B,A,, C ") == frozenset({"A", "B", "C"})
    assert owned_names("") == frozenset()


def test_an_unreachable_endpoint_is_retried_then_named() -> None:
    environ = {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": "http://127.0.0.1:9/",  # nothing listens there
        "CLOUDSDK_AUTH_ACCESS_TOKEN": "test-token",
    }
    nowhere = CloudRunProvider(
        "demo", "us-central1", "api", environ=environ, pace=Pace(backoff=0.01, budget=0.2)
    )

    with pytest.raises(SafedeployError, match="cannot reach the API") as caught:
        nowhere.read()

    assert "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN" in str(caught.value.hint)
