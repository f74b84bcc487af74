"""ECS Express figures against the double with zero latency: calls, polls and wall time.

`main()` returns the figures (benchmarks/run.py prints them): a plan, a deploy, a deploy whose
probe fails during the bake, and one ECS rolls back. Real boto3 talks to the ECS Express double
and to a moto server (Secrets Manager), through botocore's endpoint variables, as the tests do.
The double counts time in polls (`stage_polls` per stage, `bake_polls` for the bake), so the
number of polls is what these figures say about a wait; on AWS each poll is an interval apart.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from apprunner import ROOT, _counter, environment

sys.path.insert(0, str(ROOT / "tests"))  # the ECS Express double lives with the tests
REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
INFRASTRUCTURE_ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRole"
MANIFEST = """\
service: web
platform: ecs-express
region: us-east-1
image: {image}
env:
  LOG_LEVEL: debug
secrets:
  CLERK_SECRET_KEY: {secret}
probes:
  - name: health
    path: /health
    expect: {{status: 200, json: {{ok: true}}}}
    retries: 0
    timeout: 5
"""
POLLS = ("DescribeExpressGatewayService", "ListServiceDeployments", "DescribeServiceDeployments")


def main() -> dict[str, object]:
    from fakes.ecs_express import FakeEcsExpress
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        with FakeEcsExpress() as fake, tempfile.TemporaryDirectory() as tmp:
            endpoints = {
                "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                "AWS_ENDPOINT_URL_ECS": fake.endpoint,
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
        Name="web/clerk", SecretString="bench"
    )["ARN"]
    _create_service()

    def manifest(image: str) -> Path:
        path = folder / "web.yaml"
        path.write_text(MANIFEST.format(image=image, secret=secret))
        return path

    figures: dict[str, object] = {"stage_polls": fake.stage_polls, "bake_polls": fake.bake_polls}
    figures["plan"] = _run(folder, manifest(f"{REPO}:v2"), deploy=False)
    figures["deploy"] = _run(folder, manifest(f"{REPO}:v2"), deploy=True)
    fake.bake_polls = 20  # a failed probe lands in the bake, as it does in three minutes
    figures["probe_failure_in_bake"] = _run(folder, manifest(f"{REPO}:v3-badprobe"), deploy=True)
    figures["rolled_back_by_ecs"] = _run(folder, manifest(f"{REPO}:v4-broken"), deploy=True)
    return figures


def _create_service() -> None:
    import boto3

    ecs = boto3.client("ecs", region_name="us-east-1")
    service = ecs.create_express_gateway_service(
        serviceName="web",
        executionRoleArn=EXECUTION_ROLE,
        infrastructureRoleArn=INFRASTRUCTURE_ROLE,
        primaryContainer={"image": f"{REPO}:v1", "containerPort": 8080},
    )["service"]
    current = service["currentDeployment"]
    while (
        ecs.describe_service_deployments(serviceDeploymentArns=[current])["serviceDeployments"][0][
            "status"
        ]
        != "SUCCESSFUL"
    ):
        pass


def _run(folder: Path, path: Path, *, deploy: bool) -> dict[str, object]:
    """One plan (and deploy) as the CLI runs it, with every AWS call counted by operation."""
    from safedeploy.context import Context
    from safedeploy.deployer import Deployer, plan_service
    from safedeploy.manifest import load_manifest

    context = Context(state_dir=folder / "state", environ={"SAFEDEPLOY_POLL_INTERVAL": "0"})
    calls: Counter[str] = Counter()
    for service in ("ecs", "secretsmanager"):
        client = context.aws().get(service, "us-east-1")
        client.meta.events.register("before-call", _counter(calls, service))
    start = time.perf_counter()
    manifest = load_manifest(path)
    provider = context.provider(manifest)
    history = context.history(manifest)
    plan = plan_service(manifest, provider, history)
    figures: dict[str, object] = {}
    if deploy:
        result = Deployer(manifest, provider, history, say=lambda _: None).deploy(
            plan, rollback=True
        )
        figures["outcome"] = str(result.outcome)
    figures["wall_ms"] = round((time.perf_counter() - start) * 1000, 1)
    figures["aws_calls"] = sum(calls.values())
    figures["mutating_calls"] = sum(
        n for name, n in calls.items() if not name.split(":")[1].startswith(("Describe", "List"))
    )
    figures["polls"] = sum(n for name, n in calls.items() if name.split(":")[1] in POLLS)
    figures["calls"] = dict(sorted(calls.items()))
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
