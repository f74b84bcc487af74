"""The ECS Express provider against its double (real boto3 over loopback) and moto (Secrets
Manager, SSM): the merge without loss, one update, the wait for the deployment, ECS's own
rollback, our rollback during and after the bake, the first create, and the facts of preflight.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from fakes.ecs_express import FakeEcsExpress
from moto.server import ThreadedMotoServer

from safedeploy.aws import Clients
from safedeploy.cancel import NEVER, Cancelled, CancelToken
from safedeploy.errors import Busy, SafedeployError, Unrecoverable, VersionMoved
from safedeploy.facts import Problem, Revision
from safedeploy.history import FolderHistory
from safedeploy.model import SecretRef, ServiceSpec
from safedeploy.providers.base import Candidate, Pending
from safedeploy.providers.ecs_express import EcsExpressProvider, mapping

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
INFRASTRUCTURE_ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRole"
LOGS = {"logGroup": "/ecs/web", "logStreamPrefix": "web"}
CREDENTIALS = {
    "credentialsParameter": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hub-AbCdEf"
}
LIVE_ENV = [
    {"name": "DATABASE_URL", "value": "postgres://db.internal:5432/web"},
    {"name": "LOG_LEVEL", "value": "info"},
    {"name": "FEATURE_X", "value": "on"},
]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class World:
    fake: FakeEcsExpress
    root: Path
    secret: str = ""
    lines: list[str] = field(default_factory=list)  # every provider's progress lines

    def ecs(self) -> Any:
        return boto3.client("ecs", region_name="us-east-1")

    def provider(self, **options: Any) -> EcsExpressProvider:
        return EcsExpressProvider(
            "web",
            "us-east-1",
            FolderHistory(self.root / "history"),
            Clients(),
            poll_interval=0,
            progress=self.lines.append,
            **options,
        )

    def create_live(self, image: str = f"{REPO}:v1") -> str:
        """The service as the console left it: variables, a secret, a command, logs, a port."""
        created = self.ecs().create_express_gateway_service(
            serviceName="web",
            executionRoleArn=EXECUTION_ROLE,
            infrastructureRoleArn=INFRASTRUCTURE_ROLE,
            cpu="1024",
            memory="2048",
            primaryContainer={
                "image": image,
                "containerPort": 8080,
                "command": ["gunicorn", "app:app"],
                "environment": LIVE_ENV,
                "secrets": [{"name": "CLERK_SECRET_KEY", "valueFrom": self.secret}],
                "awsLogsConfiguration": LOGS,
                "repositoryCredentials": CREDENTIALS,
            },
            scalingTarget={"minTaskCount": 2, "maxTaskCount": 8},
        )["service"]
        arn: str = created["serviceArn"]
        self.settle(arn)
        return arn

    def settle(self, arn: str) -> None:
        """Poll until no deployment runs (the double moves on as it is polled)."""
        ecs = self.ecs()
        while len(
            ecs.describe_express_gateway_service(serviceArn=arn)["service"]["activeConfigurations"]
        ) > 1 or self._running(arn):
            pass

    def _running(self, arn: str) -> bool:
        ecs = self.ecs()
        current = ecs.describe_express_gateway_service(serviceArn=arn)["service"][
            "currentDeployment"
        ]
        found = ecs.describe_service_deployments(serviceDeploymentArns=[current])
        return found["serviceDeployments"][0]["status"] not in (
            "SUCCESSFUL",
            "STOPPED",
            "ROLLBACK_SUCCESSFUL",
            "ROLLBACK_FAILED",
        )

    def container(self) -> dict[str, Any]:
        arn = self.ecs().list_services()["serviceArns"][0]
        service = self.ecs().describe_express_gateway_service(serviceArn=arn)["service"]
        container: dict[str, Any] = service["activeConfigurations"][0]["primaryContainer"]
        return container


@pytest.fixture
def world(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    requests.post(f"{moto_url}/moto-api/reset", timeout=5)
    with FakeEcsExpress(bake_polls=8) as fake:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ENDPOINT_URL_ECS": fake.endpoint,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
            "AWS_ENDPOINT_URL_SSM": moto_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "REQUESTS_CA_BUNDLE": fake.ca_bundle,
        }.items():
            monkeypatch.setenv(name, value)
        box = World(fake, tmp_path)
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        box.secret = sm.create_secret(Name="web/clerk", SecretString="clerk-canary-value")["ARN"]
        yield box


def _candidate(live_fingerprint: str, target: ServiceSpec, name: str = "web-r2") -> Candidate:
    return Candidate(live_fingerprint, target, frozenset(), name, name.removeprefix("web-"))


def _merged(provider: EcsExpressProvider, image: str, **env: Any) -> tuple[str, ServiceSpec]:
    """What the core's merge hands the provider: the live spec with the manifest's changes."""
    live = provider.read()
    assert live.spec is not None
    target = replace(live.spec, image=image, env={**live.spec.env, **env})
    return live.fingerprint, target


def _deploy(world: World, image: str, name: str = "web-r2", **env: Any) -> Pending:
    provider = world.provider()
    version, target = _merged(provider, image, **env)
    return provider.apply(_candidate(version, target, name))


def test_read_maps_the_container_and_the_blocks(world: World) -> None:
    world.create_live()
    live = world.provider().read()
    assert live.spec is not None
    assert live.spec.image == f"{REPO}:v1"
    assert live.spec.command == ("gunicorn", "app:app")
    assert live.spec.env["LOG_LEVEL"] == "info"
    assert live.spec.env["CLERK_SECRET_KEY"] == SecretRef(world.secret)
    assert live.spec.settings["port"] == 8080
    assert live.spec.settings["cpu"] == "1024"
    assert live.spec.settings["scaling"] == {"min": 2, "max": 8}
    assert live.url and live.url.startswith("https://127.0.0.1:")
    assert live.busy is None
    assert list(live.traffic.values()) == [100]


def test_a_service_that_does_not_exist_reads_as_absent(world: World) -> None:
    live = world.provider().read()
    assert not live.exists and live.traffic == {}


def test_apply_sends_one_update_with_the_live_container_and_the_change(world: World) -> None:
    world.create_live()
    before = len(world.fake.mutating_calls())
    _deploy(world, f"{REPO}:v2", LOG_LEVEL="debug")
    sent = world.fake.mutating_calls()[before:]
    assert [c.operation for c in sent] == ["UpdateExpressGatewayService"]
    container = sent[0].body["primaryContainer"]
    assert container["image"] == f"{REPO}:v2"
    assert container["environment"] == [
        LIVE_ENV[0],
        {"name": "LOG_LEVEL", "value": "debug"},
        LIVE_ENV[2],
    ]
    assert container["secrets"] == [{"name": "CLERK_SECRET_KEY", "valueFrom": world.secret}]
    assert container["command"] == ["gunicorn", "app:app"]
    assert container["containerPort"] == 8080
    assert container["awsLogsConfiguration"] == LOGS
    assert container["repositoryCredentials"] == CREDENTIALS
    # Blocks the target does not change are not sent.
    assert set(sent[0].body) == {"serviceArn", "primaryContainer"}


def test_a_deploy_waits_until_the_new_revision_serves_then_retires(world: World) -> None:
    world.create_live()
    provider = world.provider()
    pending = _deploy(world, f"{REPO}:v2")
    ready = provider.wait_ready(pending, NEVER)
    assert ready.ready and ready.percent == 100 and ready.url
    assert world.fake.serving("web").image == f"{REPO}:v2"  # type: ignore[union-attr]
    assert provider.read().busy  # it still bakes
    assert provider.read().traffic == {"web-r2": 100}
    provider.route({"web-r2": 100})  # serves already: nothing sent
    provider.retire(ready)
    live = provider.read()
    assert live.busy is None and live.traffic == {"web-r2": 100}
    assert any("canary" in line and "minutes" in line for line in world.lines)
    assert [c.operation for c in world.fake.mutating_calls()] == [
        "CreateExpressGatewayService",
        "UpdateExpressGatewayService",
    ]


def test_ecs_rolling_back_a_broken_image_is_an_error_that_says_so(world: World) -> None:
    world.create_live()
    provider = world.provider()
    pending = _deploy(world, f"{REPO}:broken")
    with pytest.raises(SafedeployError) as failed:
        provider.wait_ready(pending, NEVER)
    assert not isinstance(failed.value, Unrecoverable)
    assert "ECS rolled deployment" in failed.value.what
    assert "Circuit breaker" in failed.value.what
    assert world.fake.serving("web").image == f"{REPO}:v1"  # type: ignore[union-attr]
    # The core's way back: the old revision serves already, nothing is sent.
    old = [name for name in provider.read().traffic]
    before = len(world.fake.mutating_calls())
    provider.route({old[0]: 100})
    provider.retire(Revision(old[0]))  # the rolled-back deployment is not the kept one's
    assert len(world.fake.mutating_calls()) == before


def test_a_failed_rollback_by_ecs_is_for_a_person(world: World) -> None:
    world.create_live()
    world.fake.fail_next_deployment("ROLLBACK_FAILED")
    provider = world.provider()
    with pytest.raises(Unrecoverable, match="ROLLBACK_FAILED"):
        provider.wait_ready(_deploy(world, f"{REPO}:v2"), NEVER)


def test_a_superseded_deployment_is_never_success(world: World) -> None:
    arn = world.create_live()
    provider = world.provider()
    pending = _deploy(world, f"{REPO}:v2")
    world.ecs().update_express_gateway_service(serviceArn=arn, cpu="2048")
    with pytest.raises(Unrecoverable, match=r"STOPPED.*Superseded"):
        provider.wait_ready(pending, NEVER)


def test_route_back_during_the_bake_stops_the_deployment(world: World) -> None:
    world.create_live()
    provider = world.provider()
    old = next(iter(provider.read().traffic))
    provider.wait_ready(_deploy(world, f"{REPO}:v2"), NEVER)
    before = len(world.fake.mutating_calls())
    provider.route({old: 100})
    sent = world.fake.mutating_calls()[before:]
    assert [c.operation for c in sent] == ["StopServiceDeployment"]
    assert sent[0].body["stopType"] == "ROLLBACK"
    assert world.fake.serving("web").image == f"{REPO}:v1"  # type: ignore[union-attr]
    assert provider.read().traffic == {old: 100}


def test_route_back_after_the_deployment_sends_the_old_configuration_whole(world: World) -> None:
    world.create_live()
    provider = world.provider()
    old = next(iter(provider.read().traffic))
    ready = provider.wait_ready(_deploy(world, f"{REPO}:v2", LOG_LEVEL="debug"), NEVER)
    provider.retire(ready)
    before = len(world.fake.mutating_calls())
    provider.route({old: 100})
    sent = world.fake.mutating_calls()[before:]
    assert [c.operation for c in sent] == ["UpdateExpressGatewayService"]
    assert sent[0].body["primaryContainer"]["image"] == f"{REPO}:v1"
    assert world.container()["environment"] == LIVE_ENV
    assert world.container()["awsLogsConfiguration"] == LOGS
    provider.retire(Revision(old))
    assert provider.read().traffic == {old: 100}


def test_apply_refuses_a_version_that_moved(world: World) -> None:
    arn = world.create_live()
    provider = world.provider()
    version, target = _merged(provider, f"{REPO}:v2")
    world.ecs().update_express_gateway_service(serviceArn=arn, cpu="2048")
    world.settle(arn)
    before = len(world.fake.mutating_calls())
    with pytest.raises(VersionMoved):
        provider.apply(_candidate(version, target))
    assert len(world.fake.mutating_calls()) == before


def test_apply_waits_for_someone_elses_deployment_then_updates(world: World) -> None:
    arn = world.create_live()
    world.ecs().update_express_gateway_service(serviceArn=arn, cpu="2048")
    provider = world.provider()
    live = provider.read()
    assert live.busy and "ECS service deployment" in live.busy
    assert live.spec is not None
    provider.apply(_candidate(live.fingerprint, replace(live.spec, image=f"{REPO}:v2")))
    updates = world.fake.calls("UpdateExpressGatewayService")
    assert [c.body.get("cpu") for c in updates] == ["2048", None]  # ours came after it ended
    assert world.fake.calls("StopServiceDeployment") == []


def test_apply_is_busy_when_someone_elses_deployment_outlasts_the_timeout(world: World) -> None:
    arn = world.create_live()
    world.ecs().update_express_gateway_service(serviceArn=arn, cpu="2048")
    provider = world.provider(timeout=0)
    live = provider.read()
    assert live.spec is not None
    with pytest.raises(Busy, match="ECS service deployment"):
        provider.apply(_candidate(live.fingerprint, replace(live.spec, image=f"{REPO}:v2")))
    assert len(world.fake.calls("UpdateExpressGatewayService")) == 1


def test_a_cancelled_wait_raises_cancelled(world: World) -> None:
    world.create_live()
    token = CancelToken()
    token.cancel("cancelled by SIGINT")
    with pytest.raises(Cancelled):
        world.provider().wait_ready(_deploy(world, f"{REPO}:v2"), token)


def test_a_first_deploy_creates_with_the_roles(world: World) -> None:
    provider = world.provider(
        execution_role=EXECUTION_ROLE, infrastructure_role=INFRASTRUCTURE_ROLE
    )
    target = ServiceSpec(
        image=f"{REPO}:v1",
        command=("serve",),
        env={"LOG_LEVEL": "info", "CLERK_SECRET_KEY": SecretRef(world.secret)},
        settings={"port": 8080, "health_check_path": "/health", "cpu": "512"},
    )
    pending = provider.apply(_candidate("absent", target, "web-r1"))
    ready = provider.wait_ready(pending, NEVER)
    provider.retire(ready)
    (create,) = world.fake.mutating_calls()
    assert create.operation == "CreateExpressGatewayService"
    assert create.body["executionRoleArn"] == EXECUTION_ROLE
    assert create.body["infrastructureRoleArn"] == INFRASTRUCTURE_ROLE
    assert create.body["healthCheckPath"] == "/health"
    assert provider.read().traffic == {"web-r1": 100}
    assert ready.url and requests.get(f"{ready.url}/health", timeout=5).status_code == 200


def test_a_first_deploy_without_roles_sends_nothing(world: World) -> None:
    provider = world.provider(execution_role=EXECUTION_ROLE)
    with pytest.raises(SafedeployError, match="infrastructure_role"):
        provider.apply(_candidate("absent", ServiceSpec(image=f"{REPO}:v1"), "web-r1"))
    assert world.fake.mutating_calls() == []


def test_preflight_finds_missing_secrets_and_values_ecs_cannot_take(world: World) -> None:
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/none-AbCdEf"
    target = ServiceSpec(
        image=f"{REPO}:v1",
        env={"A": SecretRef(world.secret), "B": SecretRef(missing)},
        settings={"cpu": "3", "health_check_path": "health", "egress": "VPC"},
    )
    facts = world.provider(execution_role=EXECUTION_ROLE).preflight(target)
    assert {(f.problem, f.key) for f in facts} == {
        (Problem.SECRET_MISSING, "secrets.B"),
        (Problem.UNSUPPORTED, "settings.cpu"),
        (Problem.UNSUPPORTED, "settings.health_check_path"),
        (Problem.UNSUPPORTED, "settings.egress"),
        (Problem.UNSUPPORTED, "infrastructure_role"),  # a create needs it; an update does not
    }
    assert world.fake.mutating_calls() == []
    world.create_live()
    assert not [f for f in world.provider().preflight(target) if "role" in (f.key or "")]


def test_throttling_is_retried_by_botocore(world: World) -> None:
    world.create_live()
    world.fake.throttle_next("DescribeExpressGatewayService")
    assert world.provider().read().exists


def test_an_endpoint_with_or_without_a_scheme_is_https() -> None:
    with_scheme = {"ingressPaths": [{"accessType": "PUBLIC", "endpoint": "https://web.on.aws"}]}
    bare = {"ingressPaths": [{"accessType": "PUBLIC", "endpoint": "web.on.aws"}]}
    assert mapping.endpoint(with_scheme) == mapping.endpoint(bare) == "https://web.on.aws"


def test_preflight_looks_an_ssm_parameter_up_without_its_value(world: World) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/web/token", Value="ssm-canary-value", Type="SecureString")
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/web/token"
    gone = "arn:aws:ssm:us-east-1:123456789012:parameter/web/gone"
    world.create_live()
    target = ServiceSpec(image=f"{REPO}:v1", env={"T": SecretRef(arn), "G": SecretRef(gone)})
    facts = world.provider().preflight(target)
    assert [(f.problem, f.key) for f in facts] == [(Problem.SECRET_MISSING, "secrets.G")]


def test_a_secret_arn_with_a_json_key_is_looked_up_as_its_secret(world: World) -> None:
    world.create_live()
    target = ServiceSpec(image=f"{REPO}:v1", env={"PASSWORD": SecretRef(f"{world.secret}:pw::")})
    assert world.provider().preflight(target) == []


def test_a_rollback_during_the_bake_fails_retire_and_the_old_revision_serves(world: World) -> None:
    world.create_live()
    provider = world.provider()
    old = next(iter(provider.read().traffic))
    ready = provider.wait_ready(_deploy(world, f"{REPO}:v2"), NEVER)
    current = world.ecs().describe_express_gateway_service(
        serviceArn=world.ecs().list_services()["serviceArns"][0]
    )["service"]["currentDeployment"]
    world.ecs().stop_service_deployment(serviceDeploymentArn=current)  # as an alarm would
    with pytest.raises(SafedeployError, match="ROLLBACK_SUCCESSFUL") as failed:
        provider.retire(ready)
    assert not isinstance(failed.value, Unrecoverable)
    before = len(world.fake.mutating_calls())
    provider.route({old: 100})  # the core's way back: ECS already serves it
    assert len(world.fake.mutating_calls()) == before
    assert provider.read().traffic == {old: 100}


def test_retire_honours_the_cancel_token(world: World) -> None:
    world.create_live()
    provider = world.provider()
    ready = provider.wait_ready(_deploy(world, f"{REPO}:v2"), NEVER)
    token = CancelToken()
    token.cancel("cancelled by SIGTERM")
    with pytest.raises(Cancelled):
        provider.retire(ready, token)
