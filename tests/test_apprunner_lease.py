"""App Runner's deploy lease in S3 keeps the promises Cloud Run's does: released on every ending,
`status` names a held one, `unlock` releases one a killed run left on another machine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from test_apprunner import REPO, Aws, _manifest
from test_apprunner import aws as aws  # the fixtures
from test_apprunner import moto_url as moto_url

HISTORY = "history: s3://deploys/safedeploy\n"
KEY = "safedeploy/notify-api/lease.json"


def _lease_objects(aws: Aws) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket="deploys", Prefix=KEY)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_lease_left_elsewhere_is_shown_refused_and_unlocked(aws: Aws) -> None:
    aws.client("s3").create_bucket(Bucket="deploys")
    aws.create_live()
    since = datetime.now(UTC).replace(microsecond=0)
    left = {
        "holder": "ci@runner-7",
        "pid": 31337,
        "since": since.isoformat(),
        "expires": (since + timedelta(hours=1)).isoformat(),
        "run": "https://github.com/acme/notify/actions/runs/7",
        "actor": "octocat",
    }
    aws.client("s3").put_object(Bucket="deploys", Key=KEY, Body=json.dumps(left).encode())
    manifest = str(_manifest(aws, f"{REPO}:v2", history=HISTORY))
    holder = "ci@runner-7 (pid 31337, https://github.com/acme/notify/actions/runs/7 by octocat)"

    busy = aws.run("deploy", manifest, "--yes")
    status = aws.run("status", manifest)
    unlocked = aws.run("unlock", manifest, "--yes")
    deployed = aws.run("deploy", manifest, "--yes")

    assert busy.code == 1 and f"another deploy of notify-api is running: {holder}" in busy.err
    assert f"deploy lease: held by {holder} since {left['since']}" in status.out
    assert f"expires {left['expires']}" in status.out
    assert unlocked.code == 0 and "released" in unlocked.out
    assert deployed.code == 0, deployed.err
    assert _lease_objects(aws) == []  # released on success


def test_the_lease_is_released_when_app_runner_rolls_back(aws: Aws) -> None:
    aws.client("s3").create_bucket(Bucket="deploys")
    aws.create_live()

    done = aws.run("deploy", str(_manifest(aws, f"{REPO}:v2-unhealthy", history=HISTORY)), "--yes")

    assert done.code == 3, done.err
    assert _lease_objects(aws) == []
