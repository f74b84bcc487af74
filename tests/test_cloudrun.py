"""The Cloud Run provider's parts, with the real Google clients against the loopback double."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.cloudrun import AppRequest, AppResponse, FakeCloudRun

from safedeploy.errors import SafedeployError
from safedeploy.manifest import load_manifest
from safedeploy.model import SecretRef
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
