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
