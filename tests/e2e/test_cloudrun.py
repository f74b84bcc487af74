"""Cloud Run end to end: safedeploy's CLI, the real Google clients, the loopback double.

Every test drives `safedeploy` as a user would (in-process, for speed, through `cli.main` with the
environment variables a CI job would set) and asserts on the calls the double received.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from clirun import Done, run_cli
from fakes.cloudrun import AppRequest, AppResponse, FakeCloudRun, failing_health_app

NAME = "projects/demo/locations/us-central1/services/api"
ACCOUNT = "api@demo.iam.gserviceaccount.com"
ACCESSOR = "roles/secretmanager.secretAccessor"
LEASE = "safedeploy.dev/lease"
HEADER = """\
service: api
platform: cloudrun
project: demo
region: us-central1
"""
PROBES = """\
probes:
  - name: health
    path: /health
    expect: {status: 200, json: {ok: true}}
    retries: 1
    interval: 0.05
    timeout: 5
"""
OUTPUT_ONLY = {
    "etag",
    "generation",
    "observedGeneration",
    "updateTime",
    "latestReadyRevision",
    "latestCreatedRevision",
    "trafficStatuses",
    "conditions",
    "terminalCondition",
    "reconciling",
}


@dataclass
class Cloud:
    """The double, a folder for manifests and state, and every output the CLI printed."""

    fake: FakeCloudRun
    root: Path
    transcript: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str | None]:
        return {
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": f"{self.fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": f"{self.fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_POLICYTROUBLESHOOTER": f"{self.fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": f"{self.fake.endpoint}/",
            "CLOUDSDK_AUTH_ACCESS_TOKEN": "test-token",
            "SAFEDEPLOY_CLOUDRUN_BACKOFF": "0.01",
            "SAFEDEPLOY_STATE_DIR": str(self.root / "state"),
            "CI": "true",
            "GITHUB_STEP_SUMMARY": None,
            "GOOGLE_APPLICATION_CREDENTIALS": None,
        }

    def run(self, *args: str) -> Done:
        done = run_cli(*args, env=self.env())
        self.transcript += [done.out, done.err]
        return done

    def manifest(self, body: str, name: str = "api.yaml") -> str:
        path = self.root / name
        path.write_text(HEADER + body)
        return str(path)

    def service(self) -> dict[str, Any]:
        return self.fake.service(NAME)

    def env_of(self) -> dict[str, Any]:
        """The live ingress container's env, name -> value or secret reference."""
        container = self.service()["template"]["containers"][0]
        return {
            e["name"]: e.get("value", e.get("valueSource", {}).get("secretKeyRef"))
            for e in container.get("env", [])
        }

    def served_by(self, url: str | None = None) -> str:
        response = requests.get(f"{url or self.service()['uri']}/health", timeout=5)
        return response.headers["X-Fake-Revision"]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with FakeCloudRun(seed=3) as fake:
        yield Cloud(fake, tmp_path)


def _env(**values: str) -> list[dict[str, Any]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def _secret_env(name: str, secret: str, version: str = "latest") -> dict[str, Any]:
    return {"name": name, "valueSource": {"secretKeyRef": {"secret": secret, "version": version}}}


def seed(cloud: Cloud, env: list[dict[str, Any]], image: str = "app:1", **extra: Any) -> str:
    """A live service made by someone else (gcloud, the console); returns its serving revision.
    A `template` in `extra` replaces the simple one made of `env` and `image`."""
    template = {"serviceAccount": ACCOUNT, "containers": [{"image": image, "env": env}]}
    live = cloud.fake.seed_service(NAME, {"template": template, **extra})
    return str(live["latestReadyRevision"]).rsplit("/", 1)[1]


def candidate_tags(cloud: Cloud) -> list[dict[str, Any]]:
    return [t for t in cloud.service()["traffic"] if t.get("tag") == "candidate"]


def serving(cloud: Cloud) -> dict[str, int]:
    return {t["revision"]: t["percent"] for t in cloud.service()["traffic"] if t.get("percent")}


# -- the incident and the merge ------------------------------------------------------------------


def test_the_incident_keeps_every_variable_the_manifest_leaves_out(cloud: Cloud) -> None:
    cloud.fake.add_secret("demo", "clerk-secret-key", versions={1: ("ENABLED", "sk_x")})
    seed(
        cloud,
        [
            *_env(DATABASE_URL="postgresql://10.0.0.8:5432/app", REDIS_HOST="10.0.0.5"),
            *_env(REDIS_PORT="6379"),
            _secret_env("CLERK_SECRET_KEY", "clerk-secret-key"),
            *_env(NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY="pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"),
        ],
    )
    manifest = cloud.manifest(
        "image: app:2\n"
        "env:\n"
        "  DATABASE_URL: postgresql://10.0.0.9:5432/app\n"
        "  REDIS_HOST: 10.0.0.6\n" + PROBES
    )

    planned = cloud.run("plan", manifest, "--format", "json")
    decisions = {v["name"]: v["action"] for v in json.loads(planned.out)["plans"][0]["variables"]}
    deployed = cloud.run("deploy", manifest, "--yes")

    assert planned.code == 0, planned.err
    kept = sorted(n for n, action in decisions.items() if action == "kept-unmanaged")
    assert kept == ["CLERK_SECRET_KEY", "NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY", "REDIS_PORT"]
    assert deployed.code == 0, deployed.err
    assert "3 kept" in deployed.out
    assert cloud.env_of() == {
        "DATABASE_URL": "postgresql://10.0.0.9:5432/app",
        "REDIS_HOST": "10.0.0.6",
        "REDIS_PORT": "6379",
        "CLERK_SECRET_KEY": {"secret": "clerk-secret-key", "version": "latest"},
        "NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY": "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
    }
    assert cloud.service()["template"]["containers"][0]["image"] == "app:2"
    annotations = cloud.service()["annotations"]
    assert annotations["safedeploy.dev/managed-env"] == "DATABASE_URL,REDIS_HOST"


def test_a_required_name_missing_everywhere_changes_nothing(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    manifest = cloud.manifest("image: app:2\nenv: {B: '2'}\nrequired: [STRIPE_SECRET_KEY]\n")

    done = cloud.run("deploy", manifest, "--yes")

    assert done.code == 1
    assert "STRIPE_SECRET_KEY" in done.out
    assert cloud.fake.mutating_calls() == []


def test_fields_safedeploy_does_not_manage_survive_a_deploy(cloud: Cloud) -> None:
    volumes = [
        {"name": "config", "secret": {"secret": "app-config"}},
        {"name": "scratch", "emptyDir": {"medium": "MEMORY"}},
    ]
    app = {
        "name": "app",
        "image": "app:1",
        "command": ["/bin/app"],
        "args": ["--serve"],
        "ports": [{"name": "http1", "containerPort": 8080}],
        "env": _env(A="1", B="2"),
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
        "startupProbe": {"httpGet": {"path": "/ready"}, "periodSeconds": 3},
        "livenessProbe": {"httpGet": {"path": "/live"}},
    }
    sidecar = {"name": "otel", "image": "otel:1", "env": _env(OTEL_MODE="agent")}
    old = seed(
        cloud,
        [],
        description="the backend",
        annotations={"owner.example.com/team": "payments"},
        client="gcloud",
        clientVersion="500.0.0",
        template={
            "revision": "api-blue",
            "serviceAccount": ACCOUNT,
            "labels": {"tier": "gold"},
            "annotations": {"deployer.example.com/build": "1234"},
            "sessionAffinity": True,
            "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
            "volumes": volumes,
            "containers": [app, sidecar],
        },
        traffic=[
            {
                "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                "revision": "api-blue",
                "percent": 100,
                "tag": "stable",
            }
        ],
    )
    before = cloud.service()
    manifest = cloud.manifest("image: app:2\ncontainer: app\nenv: {B: '3'}\n" + PROBES)

    done = cloud.run("deploy", manifest, "--yes")

    assert done.code == 0, done.err
    after = cloud.service()
    new = after["template"]["revision"]
    assert serving(cloud) == {new: 100}
    assert {t.get("tag"): t["revision"] for t in after["traffic"] if t.get("tag")} == {
        "stable": old
    }
    for spec in (before, after):
        for key in OUTPUT_ONLY | {"traffic"}:
            spec.pop(key, None)
        spec["annotations"].pop("safedeploy.dev/managed-env", None)
        spec["annotations"].pop("safedeploy.dev/releases", None)
        spec["template"].pop("revision")
        spec["template"]["annotations"].pop("safedeploy.dev/release", None)
        spec["template"]["annotations"].pop("safedeploy.dev/traffic-before", None)
    container = after["template"]["containers"][0]
    assert (container["image"], container["env"]) == ("app:2", _env(A="1", B="3"))
    container.update(image="app:1", env=_env(A="1", B="2"))
    assert after == before


def test_a_name_moves_between_plain_and_secret_in_one_deploy(cloud: Cloud) -> None:
    cloud.fake.add_secret("demo", "a-secret", versions={1: ("ENABLED", "from-secret-manager")})
    cloud.fake.add_secret("demo", "b-secret", versions={1: ("ENABLED", "b-from-secret-manager")})

    def reports(request: AppRequest) -> AppResponse:
        if request.path == "/health":
            return AppResponse.json({"ok": True})
        return AppResponse.json(
            {"A": request.env["A"] == "from-secret-manager", "B": request.env["B"]}
        )

    cloud.fake.set_app("app:", reports)
    seed(cloud, [*_env(A="plain-a"), _secret_env("B", "b-secret")])
    to_secret = cloud.manifest("image: app:2\nenv: {B: plain-b}\nsecrets: {A: a-secret}\n")

    first = cloud.run("deploy", to_secret, "--yes")

    assert first.code == 0, first.err
    assert cloud.env_of() == {"A": {"secret": "a-secret", "version": "latest"}, "B": "plain-b"}
    assert requests.get(cloud.service()["uri"], timeout=5).json() == {"A": True, "B": "plain-b"}

    back = cloud.manifest("image: app:3\nenv: {A: plain-a}\nsecrets: {B: b-secret}\n")
    second = cloud.run("deploy", back, "--yes")

    assert second.code == 0, second.err
    assert cloud.env_of() == {"A": "plain-a", "B": {"secret": "b-secret", "version": "latest"}}


# -- rollout and rollback --------------------------------------------------------------------------


def test_canary_moves_traffic_through_each_step_in_order(cloud: Cloud) -> None:
    old = seed(cloud, _env(A="1"))
    manifest = cloud.manifest(
        "image: app:2\nrollout: {strategy: canary, steps: [10, 50, 100]}\n" + PROBES
    )

    done = cloud.run("deploy", manifest, "--yes")

    assert done.code == 0, done.err
    new = cloud.service()["template"]["revision"]
    splits = []
    for call in cloud.fake.calls("UpdateService"):
        split = tuple(
            sum(t.get("percent", 0) for t in call.body["traffic"] if t.get("revision") == name)
            for name in (old, new)
        )
        if call.status == 200 and sum(split) and split not in splits:  # not the lease's writes
            splits.append(split)
    assert splits == [(100, 0), (90, 10), (50, 50), (0, 100)]
    assert serving(cloud) == {new: 100}
    assert candidate_tags(cloud) == []


def test_a_failing_health_probe_rolls_back_to_the_previous_split(cloud: Cloud) -> None:
    old = seed(cloud, _env(A="1"))
    cloud.fake.set_app(":sick", failing_health_app)
    manifest = cloud.manifest(
        "image: app:sick\nrollout: {strategy: canary, steps: [10, 50, 100]}\n" + PROBES
    )

    done = cloud.run("deploy", manifest, "--yes")

    assert done.code == 3, done.err
    assert "rolled back" in done.out
    assert serving(cloud) == {old: 100}
    assert candidate_tags(cloud) == []
    assert {cloud.served_by() for _ in range(10)} == {old}
    assert len(cloud.fake.revisions(NAME)) == 2  # the failed revision stays, as evidence


def test_a_revision_that_never_becomes_ready_rolls_back_with_its_reason(cloud: Cloud) -> None:
    old = seed(cloud, _env(A="1"))
    cloud.fake.fail_to_start(":broken")
    manifest = cloud.manifest("image: app:broken\n" + PROBES)

    done = cloud.run("deploy", manifest, "--yes")

    assert done.code == 3, done.err
    assert "failed to start and listen on the port" in done.err
    assert serving(cloud) == {old: 100}
    assert candidate_tags(cloud) == []
    assert cloud.served_by() == old


def test_rollback_after_a_good_release_serves_the_previous_revision(cloud: Cloud) -> None:
    old = seed(cloud, _env(A="1"))
    manifest = cloud.manifest("image: app:2\n" + PROBES)
    assert cloud.run("deploy", manifest, "--yes").code == 0
    assert cloud.served_by() != old
    updates = len(cloud.fake.calls("UpdateService"))

    done = cloud.run("rollback", manifest)

    assert done.code == 0, done.err
    assert serving(cloud) == {old: 100}
    assert cloud.served_by() == old
    # The lease is taken; a tag lets it be probed alone before any traffic moves; then one write
    # moves the traffic, one drops the tag, one records the release, and the lease is released;
    # no image is built or redeployed.
    leased, tagged, routed, untagged, recorded, released = cloud.fake.calls("UpdateService")[
        updates:
    ]
    assert LEASE in leased.body["annotations"]
    assert LEASE not in released.body.get("annotations", {})
    assert [(t.get("revision"), t.get("tag")) for t in tagged.body["traffic"]][-1] == (
        old,
        "candidate",
    )
    assert [t.get("revision") for t in routed.body["traffic"] if t.get("percent")] == [old]
    assert not any(t.get("tag") == "candidate" for t in untagged.body["traffic"])
    assert routed.body["template"] == recorded.body["template"]


def test_history_and_status_come_from_the_service_itself(cloud: Cloud) -> None:
    old = seed(cloud, _env(A="1"))
    cloud.fake.set_app(":sick", failing_health_app)
    good = cloud.manifest("image: app:2\nenv: {A: '1'}\n" + PROBES)
    assert cloud.run("deploy", good, "--yes").code == 0
    sick = cloud.manifest("image: app:sick\nenv: {A: '1'}\n" + PROBES, "sick.yaml")
    assert cloud.run("deploy", sick, "--yes").code == 3
    serves = serving(cloud)
    manifest = cloud.manifest("image: app:2\nenv: {A: '1'}\n")
    assert not (cloud.root / "state").exists()  # records and lease live on the service alone

    history = cloud.run("history", manifest)
    status = cloud.run("status", manifest)

    assert history.code == 0, history.err
    rows = [line.split() for line in history.out.splitlines()[1:3]]
    assert [(row[1], row[-1]) for row in rows] == [
        ("deploy", "succeeded"),
        ("deploy", "rolled-back"),
    ]
    assert "app:sick" not in history.out  # a table of releases, not of images
    assert status.code == 0, status.err
    assert list(serves) != [old]
    assert f"{next(iter(serves))}  100%" in status.out
    assert "owned: A\n" in status.out


def test_a_write_between_plan_and_apply_is_refused(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))

    def other_writer() -> None:
        cloud.fake.external_update(
            NAME, lambda spec: spec["template"]["containers"][0]["env"].append(_env(OTHER="x")[0])
        )

    cloud.fake.before_next("UpdateService", other_writer)
    manifest = cloud.manifest("image: app:2\n" + PROBES)

    done = cloud.run("deploy", manifest, "--yes")

    assert done.code == 1
    assert "changed since" in done.err and "plan` again" in done.err
    # The other writer came first: the lease, written against the etag the plan read, found the
    # service changed since the plan, and nothing was written.
    writes = cloud.fake.calls("UpdateService")
    assert [c.status for c in writes] == [409]
    assert [LEASE in c.body.get("annotations", {}) for c in writes] == [True]
    assert cloud.env_of() == {"A": "1", "OTHER": "x"}
    assert cloud.service()["template"]["containers"][0]["image"] == "app:1"


def test_first_deploy_creates_the_service(cloud: Cloud) -> None:
    manifest = cloud.manifest(
        "image: app:1\nenv: {A: '1'}\nrollout: {strategy: canary, steps: [10, 50, 100]}\n" + PROBES
    )

    planned = cloud.run("plan", manifest, "--validate")
    done = cloud.run("deploy", manifest, "--yes")

    assert planned.code == 0, planned.err
    assert "create" in planned.out
    assert done.code == 0, done.err
    validated, created = cloud.fake.calls("CreateService")
    assert validated.query["validateOnly"] == "true" and "validateOnly" not in created.query
    assert created.query["serviceId"] == "api"
    new = cloud.service()["template"]["revision"]
    assert new.startswith("api-") and serving(cloud) == {new: 100}
    assert cloud.service()["annotations"]["safedeploy.dev/managed-env"] == "A"


# -- the API's weather ---------------------------------------------------------------------------


def test_transient_errors_are_retried_and_the_deploy_succeeds(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    cloud.fake.fail_next("GetService", "UNAVAILABLE", times=2)
    cloud.fake.fail_next("ListRevisions", "RESOURCE_EXHAUSTED")
    cloud.fake.fail_next("UpdateService", "UNAVAILABLE", times=2)
    cloud.fake.fail_next("GetRevision", "DEADLINE_EXCEEDED")
    manifest = cloud.manifest("image: app:2\n" + PROBES)

    done = cloud.run("deploy", manifest, "--yes")

    assert done.code == 0, done.err
    assert [c.status for c in cloud.fake.calls("GetService")[:3]] == [503, 503, 200]
    assert [c.status for c in cloud.fake.calls("UpdateService")[:3]] == [503, 503, 200]
    assert [c.status for c in cloud.fake.calls("GetRevision")] == [504, 200]
    assert cloud.service()["template"]["containers"][0]["image"] == "app:2"


def test_a_permanent_error_surfaces_at_once_with_the_api_message(cloud: Cloud) -> None:
    denied = "Permission 'run.services.get' denied on resource (or it may not exist)."
    cloud.fake.fail_next("GetService", "PERMISSION_DENIED", message=denied)

    done = cloud.run("plan", cloud.manifest("image: app:1\n"))

    assert done.code == 1
    assert denied in done.err and NAME in done.err
    assert "roles/run.developer" in done.err
    assert "Traceback" not in done.err
    assert len(cloud.fake.calls("GetService")) == 1


def test_missing_credentials_say_how_to_authenticate(cloud: Cloud) -> None:
    manifest = cloud.manifest("image: app:1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(
        CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN=cloud.fake.endpoint,
        CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER=cloud.fake.endpoint,
        CLOUDSDK_API_ENDPOINT_OVERRIDES_POLICYTROUBLESHOOTER=cloud.fake.endpoint,
        CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER=cloud.fake.endpoint,
        CLOUDSDK_CONFIG=str(cloud.root / "gcloud"),  # no application-default credentials there
        NO_GCE_CHECK="true",  # never ask a metadata server
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
    )

    done = subprocess.run(
        [sys.executable, "-m", "safedeploy", "plan", manifest],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1, done.stderr
    assert "gcloud auth application-default login" in done.stderr
    assert "CLOUDSDK_AUTH_ACCESS_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert cloud.fake.calls() == []


# -- preflight and validation ------------------------------------------------------------------


def test_a_disabled_secret_version_is_a_plan_error_before_any_change(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    cloud.fake.add_secret(
        "demo", "database-url", versions={1: ("ENABLED", "x"), 2: ("DISABLED", "y")}
    )
    manifest = cloud.manifest("image: app:2\nsecrets: {DATABASE_URL: database-url}\n")

    planned = cloud.run("plan", manifest)
    deployed = cloud.run("deploy", manifest, "--yes")

    assert planned.code == 1
    assert "SD202" in planned.out and "database-url" in planned.out and "DISABLED" in planned.out
    assert deployed.code == 1
    assert cloud.fake.mutating_calls() == []


def test_a_missing_secret_is_a_plan_error(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    done = cloud.run("plan", cloud.manifest("image: app:2\nsecrets: {TOKEN: no-such-secret}\n"))
    assert done.code == 1
    assert "SD201" in done.out and "no-such-secret" in done.out


def test_plan_validate_has_the_api_check_the_update_without_making_it(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    manifest = cloud.manifest("image: app:2\nsettings: {memory: 64Gi}\n")
    generation = cloud.service()["generation"]

    fine = cloud.run("plan", manifest, "--validate")
    refusal = "spec.template.containers[0].resources.limits.memory: must be at most 32Gi"
    cloud.fake.fail_next("UpdateService", "INVALID_ARGUMENT", message=refusal)
    refused = cloud.run("plan", manifest, "--validate")

    assert fine.code == 0, fine.err
    assert refused.code == 1
    assert "SD205" in refused.out and refusal in refused.out
    assert [c.query.get("validateOnly") for c in cloud.fake.calls("UpdateService")] == [
        "true",
        "true",
    ]
    assert cloud.service()["generation"] == generation


def test_an_egress_cloud_run_does_not_know_is_a_plan_error(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    done = cloud.run("plan", cloud.manifest("image: app:2\nsettings: {egress: all}\n"))
    assert done.code == 1
    assert "SD206" in done.out and "private-ranges-only" in done.out


# -- what scripts and people see -----------------------------------------------------------------


def test_deploy_json_tells_scripts_what_happened(cloud: Cloud) -> None:
    old = seed(cloud, _env(A="1"))
    manifest = cloud.manifest(
        "image: app:2\nrollout: {strategy: canary, steps: [50, 100]}\n" + PROBES
    )

    done = cloud.run("deploy", manifest, "--yes", "--format", "json")

    assert done.code == 0, done.err
    (result,) = json.loads(done.out)["results"]
    new = cloud.service()["template"]["revision"]
    assert result["revision"] == new == f"api-{result['release_id']}"
    assert result["url"] == cloud.service()["uri"]
    assert result["revision_url"].startswith("http://127.0.0.1:")
    assert result["traffic_before"] == {old: 100}
    assert result["traffic_after"] == {new: 100}
    assert [p["url"] for p in result["probes"]] == [
        f"{result['revision_url']}/health",
        f"{result['url']}/health",
        f"{result['url']}/health",
    ]
    assert all(p["ok"] and p["elapsed_ms"] >= 0 for p in result["probes"])
    assert "update" in done.err  # the plan, for people, on stderr


def test_import_then_plan_shows_no_changes(cloud: Cloud) -> None:
    cloud.fake.add_secret("demo", "clerk-secret-key", versions={1: ("ENABLED", "x")})
    cloud.fake.add_secret("demo", "database-url", versions={7: ("ENABLED", "y")})
    env = [
        *_env(REDIS_HOST="10.0.0.5", GREETING="hello ${not a var}", EMPTY=""),
        *_env(DB_SOCKET="/cloudsql/demo:r:db", STRIPE_SECRET_KEY="sk_live_51HxQ2eKZvKYlo2C0abcd"),
        _secret_env("CLERK_SECRET_KEY", "clerk-secret-key"),
        _secret_env("DATABASE_URL", "database-url", "7"),
    ]
    seed(
        cloud,
        [],
        labels={"team": "payments"},
        ingress="INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
        template={
            "serviceAccount": ACCOUNT,
            "timeout": "600s",
            "scaling": {"minInstanceCount": 1, "maxInstanceCount": 20},
            "vpcAccess": {"connector": "projects/demo/locations/us-central1/connectors/c"},
            "volumes": [{"name": "cloudsql", "cloudSqlInstance": {"instances": ["demo:r:db"]}}],
            "containers": [
                {
                    "image": "app:7",
                    "env": env,
                    "resources": {"limits": {"cpu": "2", "memory": "2Gi"}},
                    "volumeMounts": [{"name": "cloudsql", "mountPath": "/cloudsql"}],
                }
            ],
        },
    )

    imported = cloud.run(
        "import", "--platform", "cloudrun", "--project", "demo", "--region", "us-central1",
        "--service", "api",
    )  # fmt: skip
    path = cloud.root / "imported.yaml"
    path.write_text(imported.out)
    planned = cloud.run("plan", str(path), "--detailed-exitcode")

    assert imported.code == 0, imported.err
    assert "sk_live_" not in imported.out
    assert "# STRIPE_SECRET_KEY: not copied" in imported.out and "SD104" in imported.out
    assert "# probes:" in imported.out
    assert planned.code == 0, planned.out + planned.err
    assert "api (cloudrun): no change" in planned.out


def test_no_secret_value_appears_in_any_output(cloud: Cloud) -> None:
    planted = "canary-7d1f3e-do-not-print"
    cloud.fake.add_secret("demo", "clerk-secret-key", versions={1: ("ENABLED", planted)})
    seed(
        cloud,
        [
            _secret_env("CLERK_SECRET_KEY", "clerk-secret-key"),
            *_env(STRIPE_SECRET_KEY=f"sk_live_{planted}", A="1"),
        ],
    )
    cloud.fake.set_app(":sick", failing_health_app)
    manifest = cloud.manifest("image: app:2\nenv: {A: '2'}\n" + PROBES)
    sick = cloud.manifest("image: app:sick\nenv: {A: '3'}\n" + PROBES, "sick.yaml")
    plan_file = str(cloud.root / "plan.json")

    for fmt in ("text", "json", "markdown"):
        assert cloud.run("plan", manifest, "--format", fmt).code == 0
    assert cloud.run("plan", manifest, "--out", plan_file).code == 0
    assert cloud.run("deploy", manifest, "--yes", "--plan", plan_file).code == 0
    assert cloud.run("deploy", sick, "--yes", "--format", "json").code == 3
    for args in (("status", manifest), ("history", manifest), ("rollback", manifest)):
        assert cloud.run(*args).code == 0
    imported = cloud.run(
        "import", "--platform", "cloudrun", "--project", "demo", "--region", "us-central1",
        "--service", "api",
    )  # fmt: skip

    assert imported.code == 0
    for text in cloud.transcript:
        assert planted not in text
    annotations = json.dumps(cloud.service()["annotations"])
    assert planted not in annotations
    for path in cloud.root.rglob("*"):
        if path.is_file():
            assert planted not in path.read_text(errors="replace"), path
