"""Why an ECS Express deploy failed, through the CLI: the deployment's status, circuit breaker
and rollback reason, and the container's log group (moto), with the hint the app's lines give."""
# ruff: noqa: F811

from __future__ import annotations

import json
import time

import boto3

# The ECS Express rig's fixtures (aws, moto_url), used by name as pytest does.
from fakes.ecs_express import BROKEN_MARKER
from test_ecs_express_cli import LOGS, REPO, Aws, aws, moto_url  # noqa: F401


def _write(aws: Aws, lines: list[str]) -> None:
    """The container's lines in its log group, as the awslogs driver writes them."""
    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName=LOGS["logGroup"])
    stream = f"{LOGS['logStreamPrefix']}/app/0123456789abcdef"
    logs.create_log_stream(logGroupName=LOGS["logGroup"], logStreamName=stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
    logs.put_log_events(logGroupName=LOGS["logGroup"], logStreamName=stream, logEvents=events)


def test_a_deployment_ecs_rolled_back_says_why(aws: Aws) -> None:
    aws.create_live()
    _write(aws, ["booting", "ValueError: SENDGRID_API_KEY is not set"])

    done = aws.run(
        "deploy", str(aws.manifest(f"{REPO}:v2-{BROKEN_MARKER}")), "--yes", "--format", "json"
    )

    assert done.code == 3, done.err
    (result,) = json.loads(done.out)["results"]
    why = result["diagnosis"]
    assert why["source"] == "ECS Express + CloudWatch Logs"
    assert why["status"].startswith("ROLLBACK_SUCCESSFUL")
    kinds = [c["type"] for c in why["conditions"]]
    assert kinds == ["CircuitBreaker", "Rollback"]
    assert "Circuit breaker" in why["conditions"][1]["message"]
    assert [line["text"] for line in why["lines"]][-1] == "ValueError: SENDGRID_API_KEY is not set"
    assert [h["key"] for h in why["hints"]] == ["secrets.SENDGRID_API_KEY"]


def test_a_log_group_not_there_is_a_note(aws: Aws) -> None:
    aws.create_live()
    done = aws.run("deploy", str(aws.manifest(f"{REPO}:v2-{BROKEN_MARKER}")), "--yes")
    assert done.code == 3
    assert "not read: log group /ecs/web could not be read (ResourceNotFoundException" in done.out
