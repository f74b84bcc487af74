"""Why an App Runner deploy failed, through the CLI: the operation's status and the service's
CloudWatch log groups (moto), a hint from the app's own lines, and a denied read as a note."""
# ruff: noqa: F811

from __future__ import annotations

import json
import time

# The App Runner rig's fixtures (aws, moto_url), used by name as pytest does.
from test_apprunner import REPO, STRIPE_VALUE, Aws, _manifest, aws, moto_url  # noqa: F401

DB_PASSWORD = "pw-never-read-8812"


def _write(aws: Aws, kind: str, lines: list[str]) -> str:
    """Lines in the service's log group, as App Runner and the app would write them."""
    service = aws.described()
    group = f"/aws/apprunner/notify-api/{service['ServiceId']}/{kind}"
    logs = aws.client("logs")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="instance/1")
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
    logs.put_log_events(logGroupName=group, logStreamName="instance/1", logEvents=events)
    return group


def test_a_deploy_app_runner_rolled_back_says_why(aws: Aws) -> None:
    aws.create_live()
    _write(aws, "service", ["[AppRunner] Health check failed on protocol `HTTP`[Path: '/health']"])
    _write(
        aws,
        "application",
        [
            f"booting with STRIPE_SECRET_KEY={STRIPE_VALUE}",
            f"db postgres://notify:{DB_PASSWORD}@db.notify.internal/notify",
            "KeyError: 'SENDGRID_API_KEY'",
        ],
    )

    done = aws.run(
        "deploy", str(_manifest(aws, f"{REPO}:v2-unhealthy")), "--yes", "--format", "json"
    )

    assert done.code == 3, done.err
    (result,) = json.loads(done.out)["results"]
    why = result["diagnosis"]
    assert why["source"] == "App Runner + CloudWatch Logs"
    assert why["status"] == "UPDATE_SERVICE ROLLBACK_SUCCEEDED"
    texts = [line["text"] for line in why["lines"]]
    assert texts[0].startswith("[service] [AppRunner] Health check failed")
    assert "[application] KeyError: 'SENDGRID_API_KEY'" in texts
    assert [h["key"] for h in why["hints"]] == ["secrets.SENDGRID_API_KEY"]
    assert all(DB_PASSWORD not in said for said in aws.transcript)
    again = aws.run("why", str(_manifest(aws, f"{REPO}:v2-unhealthy")))
    assert again.code == 0 and "hint: secrets.SENDGRID_API_KEY" in again.out


def test_log_groups_not_there_yet_are_a_note(aws: Aws) -> None:
    aws.create_live()

    done = aws.run("deploy", str(_manifest(aws, f"{REPO}:v2-unhealthy")), "--yes")

    assert done.code == 3
    assert "not read: log group /aws/apprunner/notify-api/" in done.out
    assert "ResourceNotFoundException" in done.out


def _serve(aws: Aws, requests: int, errors: int) -> None:
    """App Runner's metrics for the service: a point every 100 ms for the next minute, so any
    bake window of the deploy about to run holds some."""
    service = aws.described()
    dimensions = [
        {"Name": "ServiceName", "Value": "notify-api"},
        {"Name": "ServiceID", "Value": service["ServiceId"]},
    ]
    now = time.time()
    for metric, value in (("Requests", requests), ("5xxStatusResponses", errors)):
        data = [
            {
                "MetricName": metric,
                "Dimensions": dimensions,
                "Timestamp": now + i / 10,
                "Value": value,
                "Unit": "Count",
            }
            for i in range(600)
        ]
        aws.client("cloudwatch").put_metric_data(Namespace="AWS/AppRunner", MetricData=data)


ANALYSIS = """\
rollout:
  strategy: all-at-once
  analysis: {interval: 500ms, max_error_rate: 1%, min_requests: 50}
"""


def test_a_bake_with_too_many_5xx_rolls_back_like_a_failed_probe(aws: Aws) -> None:
    aws.create_live()
    _serve(aws, requests=100, errors=20)

    done = aws.run(
        "deploy", str(_manifest(aws, f"{REPO}:v2", extra=ANALYSIS)), "--yes", "--format", "json"
    )

    assert done.code == 3, done.err
    (result,) = json.loads(done.out)["results"]
    assert result["analysis"], result["message"]
    (step,) = result["analysis"]
    assert step["step"] == 100 and step["verdict"] == "failed" and step["baseline"] is None
    assert "5xx share 20.00% is over max_error_rate 1.00%" in result["message"]
    active = aws.fake.active_config("notify-api")
    assert active is not None and active.image == f"{REPO}:v1"


def test_a_healthy_bake_keeps_the_new_version(aws: Aws) -> None:
    aws.create_live()
    _serve(aws, requests=100, errors=0)

    done = aws.run("deploy", str(_manifest(aws, f"{REPO}:v2", extra=ANALYSIS)), "--yes")

    assert done.code == 0, done.err
    assert "analysis at 100%: passed" in done.err
