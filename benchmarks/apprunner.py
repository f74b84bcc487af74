"""App Runner figures against the double with zero latency: calls and wall time, never pass/fail.

`main()` returns the figures (benchmarks/run.py prints them): a plan, a deploy, and the time
from a failed probe to the end of our rollback. Real boto3 talks to the App Runner double and
to a moto server (Secrets Manager), through botocore's endpoint variables, as the tests do.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the App Runner double lives with the tests
REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/notify-api"
ROLE = "arn:aws:iam::123456789012:role/notify-api-instance"
MANIFEST = """\
service: notify-api
platform: apprunner
region: us-east-1
image: {image}
env:
  LOG_LEVEL: debug
secrets:
  JWT_SECRET: {secret}
probes:
  - name: health
    path: /health
    expect: {{status: 200, json: {{ok: true}}}}
    retries: 0
    timeout: 5
"""


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """botocore and requests read os.environ; put it back as it was afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main() -> dict[str, object]:
    from fakes.apprunner import FakeAppRunner
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        with FakeAppRunner() as fake, tempfile.TemporaryDirectory() as tmp:
            endpoints = {
                "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                "AWS_ENDPOINT_URL_APPRUNNER": fake.endpoint,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_CONFIG_FILE": str(Path(tmp) / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(Path(tmp) / "none"),
                "AWS_EC2_METADATA_DISABLED": "true",
                "REQUESTS_CA_BUNDLE": fake.ca_bundle,
            }
            with environment(endpoints):
                return _figures(fake, Path(tmp))
    finally:
        moto.stop()


def _figures(fake: Any, folder: Path) -> dict[str, object]:
    import boto3

    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="notify/jwt", SecretString="bench"
    )["ARN"]
    _create_service(fake)

    def manifest(image: str) -> Path:
        path = folder / "notify.yaml"
        path.write_text(MANIFEST.format(image=image, secret=secret))
        return path

    figures: dict[str, object] = {"operation_polls": fake.operation_polls}
    figures["plan"] = _run(fake, folder, manifest(f"{REPO}:v2"), deploy=False)
    figures["deploy"] = _run(fake, folder, manifest(f"{REPO}:v2"), deploy=True)
    figures["probe_failure"] = _run(fake, folder, manifest(f"{REPO}:v3-badprobe"), deploy=True)
    return figures


def _create_service(fake: Any) -> None:
    """The live service: a TCP health check, so a /health that answers 500 passes App Runner."""
    import boto3

    api = boto3.client("apprunner", region_name="us-east-1")
    arn = api.create_service(
        ServiceName="notify-api",
        SourceConfiguration={
            "ImageRepository": {
                "ImageIdentifier": f"{REPO}:v1",
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {"RuntimeEnvironmentVariables": {"LOG_LEVEL": "info"}},
            },
            "AuthenticationConfiguration": {"AccessRoleArn": ROLE},
        },
        InstanceConfiguration={"InstanceRoleArn": ROLE},
    )["Service"]["ServiceArn"]
    while api.describe_service(ServiceArn=arn)["Service"]["Status"] != "RUNNING":
        pass


def _run(fake: Any, folder: Path, path: Path, *, deploy: bool) -> dict[str, object]:
    """One plan (and deploy) as the CLI runs it, with every AWS call counted by operation."""
    from safedeploy.context import Context
    from safedeploy.deployer import Deployer, plan_service
    from safedeploy.manifest import load_manifest

    context = Context(state_dir=folder / "state", environ={"SAFEDEPLOY_POLL_INTERVAL": "0"})
    calls: Counter[str] = Counter()
    for service in ("apprunner", "secretsmanager"):
        client = context.aws().get(service, "us-east-1")
        client.meta.events.register("before-call", _counter(calls, service))
    moments: dict[str, float] = {}

    def say(text: str) -> None:
        if "deploy failed" in text:
            moments.setdefault("failed", time.perf_counter())

    start = time.perf_counter()
    manifest = load_manifest(path)
    provider = context.provider(manifest)
    history = context.history(manifest)
    plan = plan_service(manifest, provider, history)
    figures: dict[str, object] = {}
    if deploy:
        result = Deployer(manifest, provider, history, say=say).deploy(plan, rollback=True)
        figures["outcome"] = str(result.outcome)
    end = time.perf_counter()
    figures["wall_ms"] = round((end - start) * 1000, 1)
    if "failed" in moments:
        figures["probe_failure_to_rolled_back_ms"] = round((end - moments["failed"]) * 1000, 1)
    figures["aws_calls"] = sum(calls.values())
    figures["calls"] = dict(sorted(calls.items()))
    return figures


def _counter(calls: Counter[str], service: str) -> Callable[..., None]:
    def count(model: Any, **kwargs: Any) -> None:
        calls[f"{service}:{model.name}"] += 1

    return count


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
