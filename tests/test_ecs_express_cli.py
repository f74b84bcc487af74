"""The ECS Express platform end to end: safedeploy's CLI, real boto3, the ECS Express double, moto.

Every test drives the CLI in-process with botocore's own endpoint variables pointing at the
double (ECS) and at a moto server (S3, Secrets Manager, SSM; AWS_ENDPOINT_URL catches anything
else), and probes the service's endpoint over HTTPS, trusting the double's CA. Canaries planted
in Secrets Manager and in a pasted live variable must appear in no output and no file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from clirun import Done, run_cli
from fakes.apprunner import BADPROBE_MARKER
from fakes.ecs_express import BROKEN_MARKER, FakeEcsExpress
from moto.server import ThreadedMotoServer

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
INFRASTRUCTURE_ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRole"
CLERK_VALUE = "clerk-canary-51f0-do-not-print"
STRIPE_VALUE = "sk_live_canary7e3a0000donotprint"
CANARIES = (CLERK_VALUE, STRIPE_VALUE)
LOGS = {"logGroup": "/ecs/web", "logStreamPrefix": "web"}
LIVE_ENV = [
    {"name": "DATABASE_URL", "value": "postgres://db.web.internal:5432/web"},
    {"name": "LOG_LEVEL", "value": "info"},
    {"name": "FEATURE_SMS", "value": "on"},
    {"name": "STRIPE_SECRET_KEY", "value": STRIPE_VALUE},  # pasted in the console long ago
]
PROBES = """\
probes:
  - name: health
    path: /health
    expect: {status: 200, json: {ok: true}}
    retries: 1
    interval: 0.05
    timeout: 5
"""


@dataclass
class Aws:
    fake: FakeEcsExpress
    root: Path
    secret: str = ""
    transcript: list[str] = field(default_factory=list)

    def ecs(self) -> Any:
        return boto3.client("ecs", region_name="us-east-1")

    def run(self, *args: str) -> Done:
        done = run_cli(*args)
        self.transcript += [done.out, done.err]
        return done

    def manifest(self, image: str, *, extra: str = "", probes: str = PROBES) -> Path:
        """The team's manifest: one of the live variables, the secret, a new image."""
        path = self.root / "web.yaml"
        path.write_text(
            "service: web\nplatform: ecs-express\nregion: us-east-1\n"
            f"image: {image}\nenv:\n  LOG_LEVEL: debug\n"
            f"secrets:\n  CLERK_SECRET_KEY: {self.secret}\n"
            "required: [DATABASE_URL, CLERK_SECRET_KEY]\n" + extra + probes
        )
        return path

    def create_live(self, image: str = f"{REPO}:v1") -> str:
        """The service as the console left it: variables, a secret, a command, logs, a port."""
        created = self.ecs().create_express_gateway_service(
            serviceName="web",
            executionRoleArn=EXECUTION_ROLE,
            infrastructureRoleArn=INFRASTRUCTURE_ROLE,
            healthCheckPath="/ping",
            primaryContainer={
                "image": image,
                "containerPort": 8080,
                "command": ["gunicorn", "app:app"],
                "environment": LIVE_ENV,
                "secrets": [{"name": "CLERK_SECRET_KEY", "valueFrom": self.secret}],
                "awsLogsConfiguration": LOGS,
            },
            scalingTarget={"minTaskCount": 2, "maxTaskCount": 8},
        )["service"]
        arn: str = created["serviceArn"]
        while self._running(arn):
            pass
        return arn

    def _running(self, arn: str) -> bool:
        current = self.ecs().describe_express_gateway_service(serviceArn=arn)["service"]
        found = self.ecs().describe_service_deployments(
            serviceDeploymentArns=[current["currentDeployment"]]
        )
        return found["serviceDeployments"][0]["status"] not in ("SUCCESSFUL",)

    def container(self) -> dict[str, Any]:
        arn = self.ecs().list_services()["serviceArns"][0]
        service = self.ecs().describe_express_gateway_service(serviceArn=arn)["service"]
        container: dict[str, Any] = service["activeConfigurations"][0]["primaryContainer"]
        return container

    def operations(self) -> list[str]:
        return [c.operation for c in self.fake.mutating_calls()]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    requests.post(f"{moto_url}/moto-api/reset", timeout=5)
    # A bake lasts many polls, as three minutes last many poll intervals.
    with FakeEcsExpress(bake_polls=12) as fake:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ENDPOINT_URL_ECS": fake.endpoint,
            "AWS_ENDPOINT_URL_S3": moto_url,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
            "AWS_ENDPOINT_URL_SSM": moto_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "REQUESTS_CA_BUNDLE": fake.ca_bundle,
            "SAFEDEPLOY_POLL_INTERVAL": "0",
            "SAFEDEPLOY_STATE_DIR": str(tmp_path / "state"),
            "CI": "true",
        }.items():
            monkeypatch.setenv(name, value)
        box = Aws(fake, tmp_path)
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        box.secret = sm.create_secret(Name="web/clerk", SecretString=CLERK_VALUE)["ARN"]
        yield box
        _assert_no_secret_value(box)


def _assert_no_secret_value(box: Aws) -> None:
    """No secret value in any output, plan file or history record, in the folder or in S3."""
    written = [p.read_text() for p in box.root.rglob("*") if p.is_file()]
    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in s3.list_buckets().get("Buckets", []):
        for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            written.append(s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read())
    for text in [*box.transcript, *map(str, written)]:
        for canary in CANARIES:
            assert canary not in text


def test_deploy_keeps_every_live_variable_secret_command_port_and_log_setting(aws: Aws) -> None:
    aws.create_live()
    manifest = aws.manifest(f"{REPO}:v2")
    plan = aws.run("plan", str(manifest))
    assert plan.code == 0, plan.err
    assert "FEATURE_SMS" in plan.out and "STRIPE_SECRET_KEY" in plan.out  # kept, shown as drift

    done = aws.run("deploy", str(manifest), "--yes")
    assert done.code == 0, done.err
    assert aws.operations() == ["CreateExpressGatewayService", "UpdateExpressGatewayService"]
    (update,) = aws.fake.calls("UpdateExpressGatewayService")
    assert set(update.body) == {"serviceArn", "primaryContainer"}  # no other block re-sent
    container = aws.container()
    assert container["image"] == f"{REPO}:v2"
    assert {e["name"]: e["value"] for e in container["environment"]} == {
        **{e["name"]: e["value"] for e in LIVE_ENV},
        "LOG_LEVEL": "debug",
    }
    assert container["secrets"] == [{"name": "CLERK_SECRET_KEY", "valueFrom": aws.secret}]
    assert container["command"] == ["gunicorn", "app:app"]
    assert container["containerPort"] == 8080
    assert container["awsLogsConfiguration"] == LOGS
    assert aws.fake.calls("DescribeServiceDeployments")  # the deployment was waited for

    again = aws.run("plan", str(manifest), "--detailed-exitcode")
    assert again.code == 0, again.out


def test_an_image_ecs_rolls_back_is_a_failed_deploy_saying_why(aws: Aws) -> None:
    aws.create_live()
    done = aws.run("deploy", str(aws.manifest(f"{REPO}:v2-{BROKEN_MARKER}")), "--yes")
    assert done.code == 3, done.err
    assert "ECS rolled deployment" in done.err and "Circuit breaker" in done.err
    assert "rolled-back" in done.out
    # ECS restored the old revision itself: nothing more is sent.
    assert aws.operations() == ["CreateExpressGatewayService", "UpdateExpressGatewayService"]
    assert aws.container()["image"] == f"{REPO}:v1"


def test_a_failed_probe_during_the_bake_stops_the_deployment(aws: Aws) -> None:
    aws.create_live()
    done = aws.run("deploy", str(aws.manifest(f"{REPO}:v2-{BADPROBE_MARKER}")), "--yes")
    assert done.code == 3, done.err
    assert "probe health failed" in done.err
    assert aws.operations() == [
        "CreateExpressGatewayService",
        "UpdateExpressGatewayService",
        "StopServiceDeployment",
    ]
    (stop,) = aws.fake.calls("StopServiceDeployment")
    assert stop.body["stopType"] == "ROLLBACK"
    assert aws.container()["image"] == f"{REPO}:v1"
    serving = aws.fake.serving("web")
    assert serving is not None and serving.image == f"{REPO}:v1"
    assert "rolled-back" in aws.run("history", str(aws.root / "web.yaml")).out


def test_rollback_status_and_history_after_two_releases(aws: Aws) -> None:
    aws.create_live()
    assert aws.run("deploy", str(aws.manifest(f"{REPO}:v2")), "--yes").code == 0
    assert aws.run("deploy", str(aws.manifest(f"{REPO}:v3")), "--yes").code == 0
    manifest = aws.root / "web.yaml"

    done = aws.run("rollback", str(manifest))
    assert done.code == 0, done.err
    container = aws.container()
    assert container["image"] == f"{REPO}:v2"
    assert {e["name"] for e in container["environment"]} == {e["name"] for e in LIVE_ENV}
    assert container["awsLogsConfiguration"] == LOGS

    status = aws.run("status", str(manifest))
    assert status.code == 0, status.err
    assert "web" in status.out
    history = aws.run("history", str(manifest))
    assert history.code == 0, history.err
    assert history.out.count("succeeded") >= 3  # two deploys and the rollback


def test_a_first_deploy_creates_the_service_and_prints_its_url(aws: Aws) -> None:
    roles = f"execution_role: {EXECUTION_ROLE}\ninfrastructure_role: {INFRASTRUCTURE_ROLE}\n"
    settings = "settings:\n  port: 8080\n  cpu: '512'\n  health_check_path: /ping\n"
    done = aws.run("deploy", str(aws.manifest(f"{REPO}:v1", extra=roles + settings)), "--yes")
    # `required: [DATABASE_URL]` names a variable nothing supplies yet: refused before any call.
    assert done.code == 1
    assert aws.operations() == []

    path = aws.root / "web.yaml"
    path.write_text(path.read_text().replace("required: [DATABASE_URL, CLERK_SECRET_KEY]\n", ""))
    done = aws.run("deploy", str(path), "--yes", "--format", "json")
    assert done.code == 0, done.err
    (create,) = aws.fake.calls("CreateExpressGatewayService")
    assert create.body["executionRoleArn"] == EXECUTION_ROLE
    assert create.body["infrastructureRoleArn"] == INFRASTRUCTURE_ROLE
    assert create.body["cpu"] == "512" and create.body["healthCheckPath"] == "/ping"
    (result,) = json.loads(done.out)["results"]
    assert result["outcome"] == "succeeded"
    assert result["url"].startswith("https://127.0.0.1:")
    assert requests.get(f"{result['url']}/health", timeout=5).json() == {"ok": True}
    status = aws.run("status", str(path))
    assert result["url"] in status.out
    assert aws.run("plan", str(path), "--detailed-exitcode").code == 0


def test_a_create_without_a_role_is_exit_1_naming_the_key_before_any_call(aws: Aws) -> None:
    path = aws.manifest(f"{REPO}:v1", extra=f"execution_role: {EXECUTION_ROLE}\n")
    path.write_text(path.read_text().replace("required: [DATABASE_URL, CLERK_SECRET_KEY]\n", ""))
    done = aws.run("deploy", str(path), "--yes")
    assert done.code == 1
    assert "infrastructure_role" in done.out + done.err
    assert aws.operations() == []


def test_a_missing_secret_is_exit_1_naming_its_arn(aws: Aws) -> None:
    aws.create_live()
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/none-AbCdEf"
    path = aws.manifest(f"{REPO}:v2")
    path.write_text(path.read_text().replace(aws.secret, missing))
    done = aws.run("deploy", str(path), "--yes")
    assert done.code == 1
    assert missing in done.out + done.err
    assert aws.operations() == ["CreateExpressGatewayService"]


def test_plan_as_json_lists_kept_variables_as_kept(aws: Aws) -> None:
    aws.create_live()
    done = aws.run("plan", str(aws.manifest(f"{REPO}:v2")), "--format", "json")
    assert done.code == 0, done.err
    text = json.dumps(json.loads(done.out))
    assert "FEATURE_SMS" in text and STRIPE_VALUE not in text


def test_import_writes_a_manifest_that_plans_to_no_changes(aws: Aws) -> None:
    aws.create_live()
    done = aws.run(
        "import", "--platform", "ecs-express", "--region", "us-east-1", "--service", "web"
    )
    assert done.code == 0, done.err
    assert "STRIPE_SECRET_KEY: not copied" in done.out  # a pasted credential stays live
    assert f"execution_role: {EXECUTION_ROLE}" in done.out
    path = aws.root / "imported.yaml"
    path.write_text(done.out)
    plan = aws.run("plan", str(path), "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err
    missing = aws.run(
        "import", "--platform", "ecs-express", "--region", "us-east-1", "--service", "nope"
    )
    assert missing.code == 1 and "no ECS Express service nope" in missing.err


def test_migrate_turns_an_app_runner_service_into_an_ecs_express_one(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakes.apprunner import FakeAppRunner

    with FakeAppRunner(operation_polls=0) as apprunner:
        monkeypatch.setenv("AWS_ENDPOINT_URL_APPRUNNER", apprunner.endpoint)
        role = "arn:aws:iam::123456789012:role/web-instance"
        boto3.client("apprunner", region_name="us-east-1").create_service(
            ServiceName="web-api",
            SourceConfiguration={
                "ImageRepository": {
                    "ImageIdentifier": f"{REPO}:v1",
                    "ImageRepositoryType": "ECR",
                    "ImageConfiguration": {
                        "RuntimeEnvironmentVariables": {e["name"]: e["value"] for e in LIVE_ENV},
                        "RuntimeEnvironmentSecrets": {"CLERK_SECRET_KEY": aws.secret},
                        "StartCommand": "gunicorn app:app",
                        "Port": "8080",
                    },
                },
                "AutoDeploymentsEnabled": True,
                "AuthenticationConfiguration": {
                    "AccessRoleArn": "arn:aws:iam::123456789012:role/ecr-access"
                },
            },
            InstanceConfiguration={"Cpu": "1 vCPU", "Memory": "2 GB", "InstanceRoleArn": role},
            HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health"},
        )
        path = aws.root / "web.yaml"
        path.write_text(
            "service: web-api\nplatform: apprunner\nregion: us-east-1\n"
            f"image: {REPO}:${{TAG}}\nenv:\n  LOG_LEVEL: debug\n"
            f"secrets:\n  CLERK_SECRET_KEY: {aws.secret}\n"
            "settings:\n  cpu: 1 vCPU\n  egress: DEFAULT\n"
            "  access_role: arn:aws:iam::123456789012:role/ecr-access\n" + PROBES
        )
        done = aws.run("migrate", str(path))
    assert done.code == 0, done.err
    for setting in (
        "settings.egress",
        "settings.access_role",
        "SourceConfiguration.AutoDeploymentsEnabled",
    ):
        assert f"not migrated: {setting}" in done.err
        assert f"# not migrated: {setting}" in done.out
    assert "STRIPE_SECRET_KEY: the live value looks like a credential" in done.err
    migrated = aws.root / "ecs.yaml"
    migrated.write_text(done.out)

    deployed = aws.run("deploy", str(migrated), "--yes", "--var", "TAG=v1")
    assert deployed.code == 0, deployed.err
    (create,) = aws.fake.calls("CreateExpressGatewayService")
    assert create.body["taskRoleArn"] == role
    assert create.body["cpu"] == "1024" and create.body["memory"] == "2048"
    assert create.body["healthCheckPath"] == "/health"
    container = create.body["primaryContainer"]
    assert container["image"] == f"{REPO}:v1"
    assert container["command"] == ["gunicorn", "app:app"]
    assert container["containerPort"] == 8080
    assert {e["name"] for e in container["environment"]} == {
        "DATABASE_URL",
        "LOG_LEVEL",
        "FEATURE_SMS",
    }
    assert container["secrets"] == [{"name": "CLERK_SECRET_KEY", "valueFrom": aws.secret}]
    assert aws.run("plan", str(migrated), "--var", "TAG=v1", "--detailed-exitcode").code == 0


def test_history_in_s3_keeps_releases_and_recorded_configurations(aws: Aws) -> None:
    aws.create_live()
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="releases")
    manifest = aws.manifest(f"{REPO}:v2", extra="history: s3://releases/prod\n")
    assert aws.run("deploy", str(manifest), "--yes").code == 0
    assert (
        aws.run(
            "deploy",
            str(aws.manifest(f"{REPO}:v3", extra="history: s3://releases/prod\n")),
            "--yes",
        ).code
        == 0
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="releases")["Contents"]]
    assert any("/web/" in key for key in keys)
    done = aws.run("rollback", str(manifest))
    assert done.code == 0, done.err
    assert aws.container()["image"] == f"{REPO}:v2"
    assert not list((aws.root / "state").rglob("*.json"))  # nothing in the folder


def test_a_rollback_ecs_cannot_finish_needs_a_human(aws: Aws) -> None:
    aws.create_live()
    aws.fake.fail_next_deployment("ROLLBACK_FAILED")
    done = aws.run("deploy", str(aws.manifest(f"{REPO}:v2")), "--yes")
    assert done.code == 4, done.err
    assert "ROLLBACK_FAILED" in done.err
    assert aws.operations() == ["CreateExpressGatewayService", "UpdateExpressGatewayService"]


def test_a_deployment_that_outlasts_the_timeout_needs_a_human(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.create_live()
    aws.fake.stage_polls = 10**6
    monkeypatch.setenv("SAFEDEPLOY_OPERATION_TIMEOUT", "0.2")
    monkeypatch.setenv("SAFEDEPLOY_POLL_INTERVAL", "0.05")
    done = aws.run("deploy", str(aws.manifest(f"{REPO}:v2")), "--yes")
    assert done.code == 4, done.err
    assert "did not end within" in done.err


def test_an_app_runner_setting_is_sd305_naming_its_key(aws: Aws) -> None:
    aws.create_live()
    extra = "settings:\n  instance_role: arn:aws:iam::123456789012:role/web\n"
    done = aws.run("plan", str(aws.manifest(f"{REPO}:v2", extra=extra)), "--format", "json")
    assert done.code == 1
    findings = {(f["code"], f["key"]) for f in json.loads(done.out)["plans"][0]["findings"]}
    assert ("SD305", "settings.instance_role") in findings
