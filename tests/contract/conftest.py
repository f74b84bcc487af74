"""One rig per platform for the provider contract: a double (or the local state folder), a
manifest, and the provider built the way the CLI builds it (`Context.provider`).

A rig knows how to play the world around the provider — a secret that exists, another writer,
an error from the platform's API — and nothing of how the provider works inside.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from fakes.apprunner import FakeAppRunner
from fakes.cloudrun import FakeCloudRun
from fakes.ecs_express import FakeEcsExpress
from moto.server import ThreadedMotoServer

from safedeploy.context import Context
from safedeploy.deployer import plan_service
from safedeploy.history import HistoryStore, new_release_id, revision_name
from safedeploy.manifest import Manifest, load_manifest
from safedeploy.plan import Plan
from safedeploy.providers.base import Candidate, Provider

APP = Path(__file__).resolve().parents[2] / "demo" / "app.py"
PLATFORMS = ["local", "cloudrun", "apprunner", "ecs-express"]


@dataclass
class Rig:
    """What every platform's contract test needs; subclasses play one platform's world."""

    root: Path
    environ: dict[str, str] = field(default_factory=dict)

    header = ""

    def body(self, version: int, slow: bool) -> str:
        """What tells revision `version` apart (an image, a command)."""
        raise NotImplementedError

    def secret(self, exists: bool) -> str:
        """A reference to a secret, as `secrets:` in a manifest writes it."""
        raise NotImplementedError

    def change_outside(self) -> None:
        """Another writer changes the service between a plan and its apply."""
        raise NotImplementedError

    def refuse_next_write(self) -> None:
        """The platform refuses the next write (an API error; local: an unreadable state file)."""
        raise NotImplementedError

    def mend(self) -> None:
        """Undo `refuse_next_write` where it outlives one call."""

    def manifest(
        self, version: int = 1, *, secret: bool | None = None, slow: bool = False
    ) -> Manifest:
        text = self.header + self.body(version, slow) + f"env:\n  VERSION: v{version}\n"
        if secret is not None:
            text += f"secrets:\n  API_TOKEN: {self.secret(secret)}\n"
        path = self.root / "service.yaml"
        path.write_text(text)
        return load_manifest(path, environ=self.environ)

    def context(self) -> Context:
        """A fresh context each time: no provider object outlives a step unless a test wants."""
        return Context(state_dir=self.root / "state", environ=self.environ)

    def provider(self, manifest: Manifest) -> Provider:
        return self.context().provider(manifest, progress=lambda _line: None)

    def history(self, manifest: Manifest) -> HistoryStore:
        return self.context().history(manifest)

    def plan(self, manifest: Manifest, provider: Provider) -> Plan:
        return plan_service(manifest, provider, self.history(manifest))


def candidate(plan: Plan) -> Candidate:
    release_id = new_release_id()
    return Candidate(
        version=plan.live_fingerprint,
        target=plan.target,
        owned=plan.owned,
        revision=revision_name(plan.service, release_id),
        release_id=release_id,
    )


# -- local ---------------------------------------------------------------------------------------


class LocalRig(Rig):
    saved = ""
    header = "service: contract-api\nplatform: local\n"

    def body(self, version: int, slow: bool) -> str:
        start = f"sleep 30; exec {sys.executable} {APP}" if slow else f"exec {sys.executable} {APP}"
        return f"command: [sh, -c, {json.dumps(start)}]\n"

    def secret(self, exists: bool) -> str:
        if exists:
            (self.root / "state" / "secrets").mkdir(parents=True, exist_ok=True)
            (self.root / "state" / "secrets" / "api-token").write_text("local-token-value\n")
        return "api-token" if exists else "no-such-token"

    def change_outside(self) -> None:
        path = self.root / "state" / "contract-api" / "service.json"
        state = json.loads(path.read_text())
        state["generation"] += 1
        path.write_text(json.dumps(state))

    def refuse_next_write(self) -> None:
        path = self.root / "state" / "contract-api" / "service.json"
        self.saved = path.read_text()
        path.write_text("{not json")

    def mend(self) -> None:
        (self.root / "state" / "contract-api" / "service.json").write_text(self.saved)

    def stop(self) -> None:
        from safedeploy.providers.local import LocalProvider

        LocalProvider("contract-api", self.root / "state", self.root, self.environ).stop_all()


# -- Cloud Run -----------------------------------------------------------------------------------

RUN_NAME = "projects/demo/locations/us-central1/services/contract-api"


@dataclass
class CloudRunRig(Rig):
    fake: Any = None
    header = "service: contract-api\nplatform: cloudrun\nproject: demo\nregion: us-central1\n"

    def body(self, version: int, slow: bool) -> str:
        return f"image: app:{version}\n"

    def secret(self, exists: bool) -> str:
        if exists:
            self.fake.add_secret("demo", "api-token", versions={1: ("ENABLED", "run-token")})
        return "api-token" if exists else "no-such-token"

    def change_outside(self) -> None:
        self.fake.external_update(
            RUN_NAME, lambda spec: spec.setdefault("labels", {}).update({"edited-by": "console"})
        )

    def refuse_next_write(self) -> None:
        self.fake.fail_next("UpdateService", status="INVALID_ARGUMENT")


# -- App Runner ----------------------------------------------------------------------------------

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/contract-api"
ACCESS = "arn:aws:iam::123456789012:role/service-role/AppRunnerECRAccessRole"
ROLE = "arn:aws:iam::123456789012:role/contract-api-instance"


@dataclass
class AppRunnerRig(Rig):
    fake: Any = None
    header = "service: contract-api\nplatform: apprunner\nregion: us-east-1\n"

    def body(self, version: int, slow: bool) -> str:
        return (
            f"image: {REPO}:v{version}\n"
            f"settings: {{access_role: {ACCESS}, instance_role: {ROLE}}}\n"
        )

    def secret(self, exists: bool) -> str:
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        if exists:
            return str(sm.create_secret(Name="contract/api-token", SecretString="aws-t")["ARN"])
        return "arn:aws:secretsmanager:us-east-1:123456789012:secret:contract/none-AbCdEf"

    def change_outside(self) -> None:
        """A console edit of a block safedeploy leaves alone (as Cloud Run's labels): the
        version moves, the configuration and so the serving revision stay as they were."""
        self.fake.external_update("contract-api", {"HealthCheckConfiguration": {"Protocol": "TCP"}})

    def refuse_next_write(self) -> None:
        self.fake.fail_next("UpdateService", "InvalidRequestException", status=400)


# -- ECS Express ---------------------------------------------------------------------------------

EXECUTION_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
INFRASTRUCTURE_ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRole"


@dataclass
class EcsExpressRig(Rig):
    fake: Any = None
    header = (
        "service: contract-api\nplatform: ecs-express\nregion: us-east-1\n"
        f"execution_role: {EXECUTION_ROLE}\ninfrastructure_role: {INFRASTRUCTURE_ROLE}\n"
    )

    def body(self, version: int, slow: bool) -> str:
        return f"image: {REPO}:v{version}\n"

    def secret(self, exists: bool) -> str:
        return AppRunnerRig.secret(self, exists)  # type: ignore[arg-type]

    def change_outside(self) -> None:
        """Another role pulls the image: a member safedeploy leaves alone, in a new revision."""
        ecs = boto3.client("ecs", region_name="us-east-1")
        arn = ecs.list_services()["serviceArns"][0]
        other = "arn:aws:iam::123456789012:role/console-execution-role"
        ecs.update_express_gateway_service(serviceArn=arn, executionRoleArn=other)

    def refuse_next_write(self) -> None:
        self.fake.fail_next("UpdateExpressGatewayService", "InvalidParameterException")


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=PLATFORMS)
def rig(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Rig]:
    base = {"SAFEDEPLOY_POLL_INTERVAL": "0", "PATH": "/usr/bin:/bin", "CI": "true"}
    if request.param == "local":
        local = LocalRig(tmp_path, base)
        (tmp_path / "state" / "secrets").mkdir(parents=True)
        yield local
        local.stop()
    elif request.param == "cloudrun":
        with FakeCloudRun(seed=3, operation_polls=2) as fake:
            environ = {
                **base,
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": f"{fake.endpoint}/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": f"{fake.endpoint}/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_POLICYTROUBLESHOOTER": f"{fake.endpoint}/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": f"{fake.endpoint}/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING": f"{fake.endpoint}/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING": f"{fake.endpoint}/",
                "CLOUDSDK_AUTH_ACCESS_TOKEN": "test-token",
                "SAFEDEPLOY_CLOUDRUN_BACKOFF": "0.01",
            }
            monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
            yield CloudRunRig(tmp_path, environ, fake=fake)
    elif request.param == "ecs-express":
        moto = request.getfixturevalue("moto_url")
        requests.post(f"{moto}/moto-api/reset", timeout=5)
        with FakeEcsExpress() as ecs:
            aws = _aws(monkeypatch, tmp_path, moto, "AWS_ENDPOINT_URL_ECS", ecs)
            yield EcsExpressRig(tmp_path, {**base, **aws}, fake=ecs)
    else:
        moto = request.getfixturevalue("moto_url")
        requests.post(f"{moto}/moto-api/reset", timeout=5)
        with FakeAppRunner(operation_polls=2) as fake:
            aws = _aws(monkeypatch, tmp_path, moto, "AWS_ENDPOINT_URL_APPRUNNER", fake)
            yield AppRunnerRig(tmp_path, {**base, **aws}, fake=fake)


def _aws(
    monkeypatch: pytest.MonkeyPatch, root: Path, moto: str, variable: str, fake: Any
) -> dict[str, str]:
    """boto3's environment: the double at `variable`, moto for the rest, no real credentials."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    aws = {
        "AWS_ENDPOINT_URL": moto,
        variable: fake.endpoint,
        "AWS_ENDPOINT_URL_S3": moto,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto,
        "AWS_ENDPOINT_URL_SSM": moto,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(root / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "REQUESTS_CA_BUNDLE": fake.ca_bundle,
    }
    for name, value in aws.items():
        monkeypatch.setenv(name, value)  # boto3 reads the process environment
    return aws
