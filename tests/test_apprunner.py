"""The App Runner platform end to end: safedeploy's CLI, real boto3, the App Runner double, moto.

Every test drives the CLI in-process (the concurrent-deploy test also as a subprocess) with
botocore's own endpoint variables pointing at the double (App Runner) and at a moto server
(S3, Secrets Manager, SSM; AWS_ENDPOINT_URL catches anything else, so nothing can reach AWS),
and probes `https://` + ServiceUrl, trusting the double's CA through REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from clirun import Done, run_cli
from fakes.apprunner import AppRequest, AppResponse, FakeAppRunner
from moto.server import ThreadedMotoServer

from safedeploy.aws import Clients
from safedeploy.errors import SafedeployError
from safedeploy.history import who
from safedeploy.history.s3 import S3History
from safedeploy.model import ServiceSpec
from safedeploy.providers import apprunner, records

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/notify-api"
ROLE = "arn:aws:iam::123456789012:role/notify-api-instance"
ACCESS_ROLE = "arn:aws:iam::123456789012:role/service-role/AppRunnerECRAccessRole"
OBSERVABILITY = (
    "arn:aws:apprunner:us-east-1:123456789012:observabilityconfiguration/tracing/1/"
    "0123456789abcdef0123456789abcdef"
)
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VPC_CONNECTOR = (
    "arn:aws:apprunner:us-east-1:123456789012:vpcconnector/notify-vpc/1/"
    "0a1b2c3d4e5f67890a1b2c3d4e5f6789"
)
JWT_VALUE = "jwt-canary-7d1e-do-not-print"
TWILIO_TOKEN_VALUE = "twilio-canary-3c9a-do-not-print"
STRIPE_VALUE = "sk_live_canary4b2e0000donotprint"
CANARIES = (JWT_VALUE, TWILIO_TOKEN_VALUE, STRIPE_VALUE)
LIVE_ENV = {
    "DATABASE_URL": "postgres://db.notify.internal:5432/notify",
    "TWILIO_ACCOUNT_SID": "AC5f0e4c3b2a19087d6c5b4a3f2e1d0c9b",
    "LOG_LEVEL": "info",
    "FEATURE_SMS": "on",
    "STRIPE_SECRET_KEY": STRIPE_VALUE,  # pasted in the console long ago
}
PROBES = """\
probes:
  - name: health
    path: /health
    expect: {status: 200, json: {ok: true}}
    retries: 2
    interval: 0.05
    timeout: 5
"""


@dataclass
class Aws:
    """The double, moto, seeding clients, and the CLI with everything it printed."""

    fake: FakeAppRunner
    moto: str
    root: Path
    transcript: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # variable -> ARN

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1")

    def run(self, *args: str) -> Done:
        done = run_cli(*args)
        self.transcript += [done.out, done.err]
        return done

    def manifest(self, body: str, name: str = "notify.yaml") -> Path:
        path = self.root / name
        path.write_text(body)
        return path

    def create_live(self, image: str = f"{REPO}:v1", health: str = "HTTP") -> str:
        """The service as the console left it: every block set, some of it by hand."""
        api = self.client("apprunner")
        created = api.create_service(
            ServiceName="notify-api",
            SourceConfiguration={
                "ImageRepository": {
                    "ImageIdentifier": image,
                    "ImageRepositoryType": "ECR",
                    "ImageConfiguration": {
                        "RuntimeEnvironmentVariables": LIVE_ENV,
                        "RuntimeEnvironmentSecrets": {
                            "JWT_SECRET": self.secrets["JWT_SECRET"],
                            "TWILIO_AUTH_TOKEN": self.secrets["TWILIO_AUTH_TOKEN"],
                        },
                        "Port": "8080",
                    },
                },
                "AutoDeploymentsEnabled": False,
                "AuthenticationConfiguration": {"AccessRoleArn": ACCESS_ROLE},
            },
            InstanceConfiguration={"Cpu": "1 vCPU", "Memory": "2 GB", "InstanceRoleArn": ROLE},
            HealthCheckConfiguration={"Protocol": health, "Path": "/health", "Interval": 7},
            ObservabilityConfiguration={
                "ObservabilityEnabled": True,
                "ObservabilityConfigurationArn": OBSERVABILITY,
            },
            EncryptionConfiguration={"KmsKey": KMS_KEY},
        )
        arn: str = created["Service"]["ServiceArn"]
        while api.describe_service(ServiceArn=arn)["Service"]["Status"] != "RUNNING":
            pass
        return arn

    def described(self) -> dict[str, Any]:
        api = self.client("apprunner")
        arn = api.list_services()["ServiceSummaryList"][0]["ServiceArn"]
        service: dict[str, Any] = api.describe_service(ServiceArn=arn)["Service"]
        return service


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
    with FakeAppRunner(operation_polls=2) as fake:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in {
            "AWS_ENDPOINT_URL": moto_url,  # anything not named below still stays on loopback
            "AWS_ENDPOINT_URL_APPRUNNER": fake.endpoint,
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
        box = Aws(fake, moto_url, tmp_path)
        sm = box.client("secretsmanager")
        for variable, value in (
            ("JWT_SECRET", JWT_VALUE),
            ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN_VALUE),
        ):
            made = sm.create_secret(Name=f"notify/{variable.lower()}", SecretString=value)
            box.secrets[variable] = made["ARN"]
        yield box
        _assert_no_secret_value(box)


def _assert_no_secret_value(box: Aws) -> None:
    """Invariant 3: no secret value in any output, plan file or history record."""
    written = [p.read_text() for p in box.root.rglob("*") if p.is_file()]
    s3 = box.client("s3")
    for bucket in s3.list_buckets().get("Buckets", []):
        for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            body = s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read()
            written.append(body.decode())
    for text in [*box.transcript, *written]:
        for canary in CANARIES:
            assert canary not in text


def _notify(image: str, *, extra: str = "", history: str = "") -> str:
    """The team's manifest: two of the live variables, a secret, a new image."""
    return f"""\
service: notify-api
platform: apprunner
region: us-east-1
image: {image}
env:
  LOG_LEVEL: debug
  TWILIO_ACCOUNT_SID: AC5f0e4c3b2a19087d6c5b4a3f2e1d0c9b
secrets:
  JWT_SECRET: {{jwt}}
required: [DATABASE_URL, JWT_SECRET, TWILIO_AUTH_TOKEN]
{history}{extra}{PROBES}"""


def _manifest(aws: Aws, image: str, name: str = "notify.yaml", **kwargs: str) -> Path:
    text = _notify(image, **kwargs).replace("{jwt}", aws.secrets["JWT_SECRET"])
    return aws.manifest(text, name)


def _operations(aws: Aws) -> list[str]:
    """Every mutating call the double received; the first is the test's own CreateService."""
    return [c.operation for c in aws.fake.mutating_calls()]


# -- the incident and the blocks nobody declared -------------------------------------------------


def test_deploy_keeps_every_live_variable_and_every_undeclared_block(aws: Aws) -> None:
    aws.create_live()
    before = aws.described()
    manifest = _manifest(aws, f"{REPO}:v2")

    plan = aws.run("plan", str(manifest))
    assert plan.code == 0, plan.err
    assert "FEATURE_SMS" in plan.out and "STRIPE_SECRET_KEY" in plan.out  # kept, shown as drift
    done = aws.run("deploy", str(manifest), "--yes")
    assert done.code == 0, done.err

    active = aws.fake.active_config("notify-api")
    assert active is not None and active.image == f"{REPO}:v2"
    assert active.env == {**LIVE_ENV, "LOG_LEVEL": "debug"}
    assert active.secrets == {
        "JWT_SECRET": aws.secrets["JWT_SECRET"],
        "TWILIO_AUTH_TOKEN": aws.secrets["TWILIO_AUTH_TOKEN"],
    }
    assert _operations(aws) == ["CreateService", "UpdateService"]
    (update,) = aws.fake.calls("UpdateService")
    assert set(update.body) == {"ServiceArn", "SourceConfiguration"}  # nothing else re-sent
    source = update.body["SourceConfiguration"]
    assert source["AuthenticationConfiguration"] == {"AccessRoleArn": ACCESS_ROLE}
    assert source["AutoDeploymentsEnabled"] is False
    after = aws.described()
    for block in (
        "InstanceConfiguration",
        "HealthCheckConfiguration",
        "NetworkConfiguration",
        "ObservabilityConfiguration",
        "EncryptionConfiguration",
        "AutoScalingConfigurationSummary",
    ):
        assert after[block] == before[block], block
    assert after["SourceConfiguration"]["AuthenticationConfiguration"] == {
        "AccessRoleArn": ACCESS_ROLE
    }

    again = aws.run("plan", str(manifest), "--detailed-exitcode")
    assert again.code == 0, again.out  # what was applied is what the manifest says


def test_a_missing_service_is_created_from_the_manifest(aws: Aws) -> None:
    manifest = aws.manifest(
        "service: notify-api\nplatform: apprunner\nregion: us-east-1\n"
        "image: public.ecr.aws/acme/notify-api:v1\nenv:\n  LOG_LEVEL: info\n"
        "settings:\n  cpu: 1 vCPU\n  port: 8080\n" + PROBES
    )
    done = aws.run("deploy", str(manifest), "--yes")
    assert done.code == 0, done.err
    (create,) = aws.fake.calls("CreateService")
    assert create.body["InstanceConfiguration"] == {"Cpu": "1024"}  # memory: App Runner's own
    assert "NetworkConfiguration" not in create.body
    assert aws.run("plan", str(manifest), "--detailed-exitcode").code == 0


def test_a_new_service_from_private_ecr_is_created_with_its_access_role(aws: Aws) -> None:
    body = f"service: notify-api\nplatform: apprunner\nregion: us-east-1\nimage: {REPO}:v1\n"
    plan = aws.run("plan", str(aws.manifest(body + PROBES)), "--format", "json")
    assert plan.code == 1
    findings = {(f["code"], f["key"]) for f in json.loads(plan.out)["plans"][0]["findings"]}
    assert findings == {("SD303", "image")}  # nothing to pull the image with

    manifest = aws.manifest(body + f"settings:\n  access_role: {ACCESS_ROLE}\n" + PROBES)
    done = aws.run("deploy", str(manifest), "--yes")
    assert done.code == 0, done.err
    (create,) = aws.fake.calls("CreateService")
    source = create.body["SourceConfiguration"]
    assert source["AuthenticationConfiguration"] == {"AccessRoleArn": ACCESS_ROLE}
    assert aws.run("plan", str(manifest), "--detailed-exitcode").code == 0


# -- failures: App Runner's rollback, ours, and neither -----------------------------------------


def test_a_deploy_app_runner_rolls_back_is_a_failed_deploy(aws: Aws) -> None:
    aws.create_live()
    done = aws.run("deploy", str(_manifest(aws, f"{REPO}:v2-unhealthy")), "--yes")
    assert done.code == 3, done.err
    assert "ROLLBACK_SUCCEEDED" in done.err and "health check" in done.err
    assert "rolled-back" in done.out
    # App Runner restored the old configuration itself: nothing more is sent.
    assert _operations(aws) == ["CreateService", "UpdateService"]
    active = aws.fake.active_config("notify-api")
    assert active is not None and active.image == f"{REPO}:v1"


def test_a_failed_probe_restores_the_previous_configuration(aws: Aws) -> None:
    aws.create_live(health="TCP")  # App Runner's own check cannot see /health fail
    before = aws.fake.active_config("notify-api")
    done = aws.run("deploy", str(_manifest(aws, f"{REPO}:v2-badprobe")), "--yes")
    assert done.code == 3, done.err
    assert "probe health failed" in done.err, done.err
    assert _operations(aws) == ["CreateService", "UpdateService", "UpdateService"]
    after = aws.fake.active_config("notify-api")
    assert after is not None and before is not None
    assert after.blocks == before.blocks  # the pasted STRIPE_SECRET_KEY too, from memory
    history = aws.run("history", str(aws.root / "notify.yaml"))
    assert "rolled-back" in history.out


def test_a_failed_probe_puts_back_a_sensitive_value_the_release_changed(aws: Aws) -> None:
    """The value that served is held by the run (never recorded), so the rollback sends it."""
    aws.create_live(health="TCP")
    first, second = "session-first-4f1a", "session-second-9c2e"

    def deploy(image: str, value: str) -> Done:
        text = _notify(image).replace("{jwt}", aws.secrets["JWT_SECRET"])
        path = aws.manifest(text.replace("env:\n", "env:\n  GREETING_TEXT: ${GREETING_TEXT}\n"))
        return aws.run("deploy", str(path), "--yes", "--var", f"GREETING_TEXT={value}")

    done = deploy(f"{REPO}:v2", first)
    assert done.code == 0, done.out
    done = deploy(f"{REPO}:v3-badprobe", second)
    assert done.code == 3, done.err
    active = aws.fake.active_config("notify-api")
    assert active is not None and active.env["GREETING_TEXT"] == first
    assert "took" not in done.err
    assert first not in "".join(aws.transcript) and second not in "".join(aws.transcript)


def test_an_operation_that_cannot_be_rolled_back_needs_a_human(aws: Aws) -> None:
    aws.create_live()
    aws.fake.fail_next_deployment("ROLLBACK_FAILED")
    done = aws.run("deploy", str(_manifest(aws, f"{REPO}:v2")), "--yes")
    assert done.code == 4, done.err
    assert "ROLLBACK_FAILED" in done.err and "the service is RUNNING" in done.err
    assert _operations(aws) == ["CreateService", "UpdateService"]


# -- reaching the API ----------------------------------------------------------------------------


def test_throttling_on_the_first_calls_is_retried(aws: Aws) -> None:
    api = aws.client("apprunner")
    for decoy in ("billing-api", "search-api"):  # pages of two: notify-api is on the second
        api.create_service(
            ServiceName=decoy,
            SourceConfiguration={
                "ImageRepository": {
                    "ImageIdentifier": "public.ecr.aws/acme/x:1",
                    "ImageRepositoryType": "ECR_PUBLIC",
                }
            },
        )
    aws.create_live()
    aws.fake.throttle_next("ListServices", times=2)
    done = aws.run("plan", str(_manifest(aws, f"{REPO}:v2")))
    assert done.code == 0, done.err
    listed = aws.fake.calls("ListServices")
    assert [c.status for c in listed] == [400, 400, 200, 200]
    assert "NextToken" in listed[-1].body


def test_a_stale_plan_is_refused(aws: Aws) -> None:
    aws.create_live()
    manifest = _manifest(aws, f"{REPO}:v2")
    saved = aws.root / "plan.json"
    assert aws.run("plan", str(manifest), "--out", str(saved)).code == 0
    aws.fake.external_update("notify-api", polls=0)  # someone redeploys meanwhile
    done = aws.run("deploy", str(manifest), "--plan", str(saved), "--yes")
    assert done.code == 1
    assert "changed since the plan" in done.err
    assert _operations(aws) == ["CreateService"]


def test_an_operation_that_outlasts_the_timeout_needs_a_human(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.create_live()
    aws.fake.operation_polls = 10**6
    monkeypatch.setenv("SAFEDEPLOY_OPERATION_TIMEOUT", "0.2")
    monkeypatch.setenv("SAFEDEPLOY_POLL_INTERVAL", "0.05")
    done = aws.run("deploy", str(_manifest(aws, f"{REPO}:v2")), "--yes")
    assert done.code == 4
    assert "did not end within" in done.err


@pytest.mark.parametrize(
    ("service_url", "probed"),
    [
        ("abc123.us-east-1.awsapprunner.com", "https://abc123.us-east-1.awsapprunner.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_probes_go_to_https_and_the_service_url(service_url: str, probed: str) -> None:
    assert apprunner.service_url(service_url) == probed


def test_access_denied_surfaces_at_once_with_the_service_arn(aws: Aws) -> None:
    arn = aws.create_live()
    aws.fake.fail_next("DescribeService", "AccessDeniedException", message="not allowed here")
    done = aws.run("plan", str(_manifest(aws, f"{REPO}:v2")))
    assert done.code == 1
    assert arn in done.err and "AccessDeniedException: not allowed here" in done.err
    assert [c.status for c in aws.fake.calls("DescribeService")][-1] == 400  # not retried


def test_missing_credentials_exit_1_saying_how_to_configure_them(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    done = aws.run("plan", str(_manifest(aws, f"{REPO}:v2")))
    assert done.code == 1
    assert "no AWS credentials found" in done.err and "AWS_PROFILE" in done.err
    assert aws.fake.calls() == []


# -- someone else is deploying -------------------------------------------------------------------


def test_a_deploy_waits_for_an_operation_in_progress(aws: Aws) -> None:
    aws.create_live()
    aws.fake.external_update("notify-api", polls=12)  # an automatic redeployment
    manifest = _manifest(aws, f"{REPO}:v2")
    plan = aws.run("plan", str(manifest))
    assert "SD304" in plan.out and "START_DEPLOYMENT" in plan.out
    done = aws.run("deploy", str(manifest), "--yes")
    assert done.code == 0, done.err  # the plan made during the operation is still good after it
    assert _operations(aws) == ["CreateService", "UpdateService"]
    calls = [c.operation for c in aws.fake.calls()]
    waited = calls[: calls.index("UpdateService")].count("ListOperations")
    assert waited >= 8  # polled until the redeployment ended, then updated


def test_a_deploy_gives_up_on_a_long_operation_naming_it(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.create_live()
    operation = aws.fake.external_update("notify-api", polls=10**6)
    monkeypatch.setenv("SAFEDEPLOY_OPERATION_TIMEOUT", "0.3")
    monkeypatch.setenv("SAFEDEPLOY_POLL_INTERVAL", "0.05")
    done = aws.run("deploy", str(_manifest(aws, f"{REPO}:v2")), "--yes")
    assert done.code == 1
    assert f"another deploy of notify-api is running: App Runner operation {operation}" in done.err
    assert _operations(aws) == ["CreateService"]


def test_invalid_state_gives_the_same_message(aws: Aws) -> None:
    aws.create_live()
    aws.fake.fail_next("UpdateService", "InvalidStateException", message="busy")
    done = aws.run("deploy", str(_manifest(aws, f"{REPO}:v2")), "--yes")
    assert done.code == 1
    assert "another deploy of notify-api is running: App Runner operation" in done.err
    assert "CREATE_SERVICE" in done.err


def test_two_deploys_through_s3_history_do_not_interleave(aws: Aws) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="deploys")
    aws.create_live()
    slow = f"{REPO}:v2-slow"

    def slow_health(request: AppRequest) -> AppResponse:
        if request.path == "/health":
            time.sleep(3)  # the first deploy holds its lease while it probes
        return AppResponse(200, {"ok": True})

    aws.fake.register_app(slow, slow_health)
    history = "history: s3://deploys/safedeploy\n"
    first = _manifest(aws, slow, history=history)
    argv = [sys.executable, "-m", "safedeploy", "deploy", str(first), "--yes"]
    holder = subprocess.Popen(
        argv, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while "Contents" not in s3.list_objects_v2(
            Bucket="deploys", Prefix="safedeploy/notify-api/lease"
        ):
            assert time.monotonic() < deadline and holder.poll() is None, holder.communicate()
            time.sleep(0.05)
        second = aws.manifest(
            _notify(f"{REPO}:v3", history=history).replace("{jwt}", aws.secrets["JWT_SECRET"]),
            "other.yaml",
        )
        done = aws.run("deploy", str(second), "--yes")
    finally:
        out, err = holder.communicate(timeout=60)
    aws.transcript += [out, err]
    assert holder.returncode == 0, err
    assert done.code == 1
    assert f"another deploy of notify-api is running: {who()}" in done.err
    assert _operations(aws) == ["CreateService", "UpdateService"]  # the first one's only
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="deploys")["Contents"]]
    assert len([k for k in keys if "/releases/" in k]) == 1
    assert not any(k.endswith("lease.json") for k in keys)  # released


# -- rollback on demand --------------------------------------------------------------------------


def test_rollback_after_two_good_releases_serves_the_first_again(aws: Aws) -> None:
    aws.create_live()
    manifest = _manifest(aws, f"{REPO}:v2")
    assert aws.run("deploy", str(manifest), "--yes").code == 0
    first = aws.fake.active_config("notify-api")
    assert aws.run("deploy", str(_manifest(aws, f"{REPO}:v3", "v3.yaml")), "--yes").code == 0

    done = aws.run("rollback", str(manifest))
    assert done.code == 0, done.err
    active = aws.fake.active_config("notify-api")
    assert active is not None and first is not None
    assert active.blocks == first.blocks  # STRIPE_SECRET_KEY unchanged since: taken from live
    assert aws.run("plan", str(manifest), "--detailed-exitcode").code == 0


def test_rollback_takes_a_sensitive_value_from_live_and_says_so(aws: Aws) -> None:
    """No value and no digest of one is recorded, so a rotated value is taken as it is live."""
    aws.create_live()
    manifest = _manifest(aws, f"{REPO}:v2")
    assert aws.run("deploy", str(manifest), "--yes").code == 0
    assert aws.run("deploy", str(_manifest(aws, f"{REPO}:v3", "v3.yaml")), "--yes").code == 0
    _set_live_variables(aws, STRIPE_SECRET_KEY="sk_live_rotated1")

    done = aws.run("rollback", str(manifest))
    assert done.code == 0, done.err
    assert "took " in done.err and "STRIPE_SECRET_KEY" in done.err and "secrets:" in done.err
    assert "sk_live_rotated1" not in done.out + done.err
    live = aws.described()["SourceConfiguration"]["ImageRepository"]
    variables = live["ImageConfiguration"]["RuntimeEnvironmentVariables"]
    assert variables["STRIPE_SECRET_KEY"] == "sk_live_rotated1"
    assert live["ImageIdentifier"] == f"{REPO}:v2"


def test_rollback_refuses_when_the_live_service_lost_a_sensitive_value(aws: Aws) -> None:
    aws.create_live()
    manifest = _manifest(aws, f"{REPO}:v2")
    assert aws.run("deploy", str(manifest), "--yes").code == 0
    assert aws.run("deploy", str(_manifest(aws, f"{REPO}:v3", "v3.yaml")), "--yes").code == 0
    _set_live_variables(aws, STRIPE_SECRET_KEY=None)

    done = aws.run("rollback", str(manifest))
    assert done.code == 1  # refused before any change
    assert "no longer has STRIPE_SECRET_KEY" in done.err
    assert _operations(aws) == ["CreateService", "UpdateService", "UpdateService"]


def test_recorded_configurations_keep_no_value_and_no_digest_of_a_sensitive_one(aws: Aws) -> None:
    aws.create_live()
    assert aws.run("deploy", str(_manifest(aws, f"{REPO}:v2")), "--yes").code == 0
    stored = " ".join(p.read_text() for p in (aws.root / "state").rglob("*") if p.is_file())
    assert STRIPE_VALUE not in stored
    assert '"sensitive": true' in stored
    assert not re.search(r"[0-9a-f]{64}", stored), "a SHA-256 digest in a recorded configuration"
    assert "salt" not in stored and "hmac" not in stored


def _set_live_variables(aws: Aws, **values: str | None) -> None:
    """A console edit of the live variables (None removes one), finished at once."""
    image = aws.described()["SourceConfiguration"]["ImageRepository"]
    variables = image["ImageConfiguration"]["RuntimeEnvironmentVariables"]
    for name, value in values.items():
        if value is None:
            variables.pop(name)
        else:
            variables[name] = value
    aws.fake.external_update(
        "notify-api", {"SourceConfiguration": {"ImageRepository": image}}, polls=0
    )
    aws.described()


# -- preflight -----------------------------------------------------------------------------------


def test_a_missing_secret_arn_is_a_plan_error_with_no_mutating_call(aws: Aws) -> None:
    aws.create_live()
    missing = aws.secrets["JWT_SECRET"].replace("jwt_secret", "jwt_secret_gone")
    manifest = aws.manifest(_notify(f"{REPO}:v2").replace("{jwt}", missing))
    plan = aws.run("plan", str(manifest))
    assert plan.code == 1
    assert "SD201" in plan.out and missing in plan.out
    assert aws.run("deploy", str(manifest), "--yes").code == 1
    assert _operations(aws) == ["CreateService"]


def test_a_kept_secret_that_is_gone_warns_and_never_blocks(aws: Aws) -> None:
    """The provider reports the missing secret; the core sees the name was kept, not declared."""
    aws.create_live()
    aws.client("secretsmanager").delete_secret(
        SecretId=aws.secrets["TWILIO_AUTH_TOKEN"], ForceDeleteWithoutRecovery=True
    )
    done = aws.run("plan", str(_manifest(aws, f"{REPO}:v2")), "--format", "json")
    assert done.code == 0, done.out + done.err
    findings = json.loads(done.out)["plans"][0]["findings"]
    gone = [f for f in findings if "TWILIO_AUTH_TOKEN does not exist" in f["message"]]
    assert [(f["code"], f["severity"]) for f in gone] == [("SD109", "warning")]
    assert not [f for f in findings if f["code"] == "SD201"]


def test_preflight_warns_and_refuses_what_app_runner_cannot_take(aws: Aws) -> None:
    ssm = aws.client("ssm")
    ssm.put_parameter(Name="/notify/db", Value="postgres://x", Type="SecureString")
    manifest = aws.manifest(
        "service: notify-api\nplatform: apprunner\nregion: us-east-1\n"
        "image: public.ecr.aws/acme/notify-api:v1\n"
        "env:\n  TWILIO_API: https://api.twilio.com/2010-04-01\n  CACHE: https://cache.notify.internal\n"
        "secrets:\n  DATABASE_URL: arn:aws:ssm:us-east-1:123456789012:parameter/notify/db\n"
        "settings:\n  egress: VPC\n"
        f"  vpc_connector: {VPC_CONNECTOR}\n  cpu: 1024\n  timeout: 30\n"
    )
    done = aws.run("plan", str(manifest), "--format", "json")
    assert done.code == 1
    findings = {(f["code"], f["key"]) for f in json.loads(done.out)["plans"][0]["findings"]}
    assert findings == {
        ("SD301", "env.TWILIO_API"),  # public host behind VPC egress; the .internal one is fine
        ("SD302", "settings.instance_role"),  # secrets but no role to read them
        ("SD303", "settings.cpu"),  # "1024" is described as "1 vCPU"
        ("SD303", "settings.timeout"),  # a Cloud Run setting
    }
    assert aws.fake.calls("CreateService") == []


# -- import --------------------------------------------------------------------------------------


def test_import_then_plan_shows_no_changes(aws: Aws) -> None:
    aws.create_live()
    done = aws.run(
        "import", "--platform", "apprunner", "--region", "us-east-1", "--service", "notify-api"
    )
    assert done.code == 0, done.err
    assert "STRIPE_SECRET_KEY" in done.out  # named in a comment, its value kept live only
    manifest = aws.manifest(done.out, "imported.yaml")
    plan = aws.run("plan", str(manifest), "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err


# -- the S3 history store ------------------------------------------------------------------------


def test_s3_lease_fails_fast_naming_the_holder_and_expires(aws: Aws) -> None:
    aws.client("s3").create_bucket(Bucket="deploys")
    first = S3History("s3://deploys/p", "api", "us-east-1", Clients())
    second = S3History("s3://deploys/p/", "api", "us-east-1", Clients())
    with first.lease("api"), pytest.raises(SafedeployError) as raised, second.lease("api"):
        pass
    assert f"another deploy of api is running: {who()}" in str(raised.value)
    with second.lease("api"):  # released by the first
        pass
    stale = {
        "holder": "ci@runner-7",
        "since": "2026-01-01T00:00:00+00:00",
        "expires": "2026-01-01T01:00:00+00:00",
    }
    aws.client("s3").put_object(Bucket="deploys", Key="p/api/lease.json", Body=json.dumps(stale))
    with second.lease("api"):  # a crashed run's lease is taken over once it expired
        pass


def test_s3_lease_left_by_a_dead_process_is_not_held_and_is_taken_over(aws: Aws) -> None:
    aws.client("s3").create_bucket(Bucket="deploys")
    store = S3History("s3://deploys/p", "api", "us-east-1", Clients())
    assert not store.held()
    with store.lease("api"):
        assert store.held()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    left = {
        "holder": who(),
        "pid": int(dead.stdout),
        "since": "2026-01-01T00:00:00+00:00",
        "expires": "2999-01-01T00:00:00+00:00",
    }
    aws.client("s3").put_object(Bucket="deploys", Key="p/api/lease.json", Body=json.dumps(left))
    assert not store.held()  # kill -9: the holder is gone, though the lease has not expired
    with store.lease("api"):
        pass


def test_a_record_from_before_digests_were_dropped_restores_from_live() -> None:
    """Older records kept `{"hmac": ...}` and a salt: read as "a sensitive value was there"."""
    old = {
        "image": f"{REPO}:v1",
        "command": {"hmac": "ab" * 32},
        "settings": {},
        "salt": "00" * 16,
        "env": {"STRIPE_SECRET_KEY": {"hmac": "cd" * 32}, "LOG_LEVEL": "info"},
    }
    live = ServiceSpec(command=("serve",), env={"STRIPE_SECRET_KEY": "sk_live_x1", "A": "b"})
    spec, taken = records.restore(old, live, "notify-api-old")
    assert spec.env == {"STRIPE_SECRET_KEY": "sk_live_x1", "LOG_LEVEL": "info"}
    assert spec.command == ("serve",)
    assert taken == ["STRIPE_SECRET_KEY", "the start command"]
