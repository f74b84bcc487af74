"""Why a Cloud Run deploy failed, through the CLI against the Run and Logging doubles: the
revision's conditions, its own lines in Cloud Logging, the hint, and what a denied read says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from clirun import Done, run_cli
from fakes.cloudlogging import FakeCloudLogging
from fakes.cloudrun import FakeCloudRun

NAME = "projects/demo/locations/us-central1/services/api"
PASSWORD = "s3cr3t-db-pw-4411"
MANIFEST = """\
service: api
platform: cloudrun
project: demo
region: us-central1
image: {image}
env: {{LOG_LEVEL: info}}
"""
BROKEN = [
    "Starting gunicorn 21.2.0",
    f"connecting to postgres://app:{PASSWORD}@10.0.0.3/shop",
    "Traceback (most recent call last):",
    '  File "/app/settings.py", line 12, in <module>',
    "KeyError: 'CLERK_SECRET_KEY'",
]


@dataclass
class Cloud:
    run_fake: FakeCloudRun
    logging: FakeCloudLogging
    root: Path
    said: list[str] = field(default_factory=list)

    def run(self, *args: str) -> Done:
        env: dict[str, str | None] = {
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": f"{self.run_fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": f"{self.run_fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING": f"{self.logging.endpoint}/",
            "CLOUDSDK_AUTH_ACCESS_TOKEN": "test-token",
            "SAFEDEPLOY_CLOUDRUN_BACKOFF": "0.01",
            "SAFEDEPLOY_STATE_DIR": str(self.root / "state"),
            "CI": "true",
            "GITHUB_STEP_SUMMARY": None,
            "GOOGLE_APPLICATION_CREDENTIALS": None,
        }
        done = run_cli(*args, env=env)
        self.said += [done.out, done.err]
        return done

    def deploy(self, image: str, *extra: str) -> Done:
        path = self.root / "api.yaml"
        path.write_text(MANIFEST.format(image=image))
        return self.run("deploy", str(path), "--yes", *extra)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with (
        FakeCloudRun(seed=5, token="test-token") as run,
        FakeCloudLogging(run, "test-token") as logs,
    ):
        yield Cloud(run, logs, tmp_path)


def test_a_revision_that_crashes_says_why_from_its_own_lines(cloud: Cloud) -> None:
    assert cloud.deploy("app:1").code == 0
    cloud.run_fake.fail_to_start("app:2")
    cloud.logging.write("app:2", BROKEN)

    done = cloud.deploy("app:2", "--format", "json")

    assert done.code == 3, done.err
    (result,) = json.loads(done.out)["results"]
    why = result["diagnosis"]
    assert why["source"] == "Cloud Run + Cloud Logging"
    assert why["revision"] == result["revision"]
    assert why["conditions"][0]["type"] == "Ready"
    assert "failed to start and listen on the port" in why["conditions"][0]["message"]
    texts = [line["text"] for line in why["lines"]]
    assert "KeyError: 'CLERK_SECRET_KEY'" in texts
    assert "connecting to postgres://(sensitive)@10.0.0.3/shop" in texts
    assert why["hints"] == [
        {
            "key": "secrets.CLERK_SECRET_KEY",
            "text": "`CLERK_SECRET_KEY` is not set on the new revision: add it to `secrets:`",
        }
    ]
    assert "Why api failed" in done.err and "hint: secrets.CLERK_SECRET_KEY" in done.err
    (request,) = cloud.logging.requests
    assert request["pageSize"] == 200 and request["orderBy"] == "timestamp desc"
    assert f'resource.labels.revision_name="{result["revision"]}"' in request["filter"]
    assert 'resource.type="cloud_run_revision"' in request["filter"]
    assert 'timestamp>="' in request["filter"]

    again = cloud.run("why", str(cloud.root / "api.yaml"), "--format", "markdown")
    assert again.code == 0
    assert "<details><summary>Why api failed: `CLERK_SECRET_KEY` is not set" in again.out
    assert all(PASSWORD not in said for said in cloud.said)


def test_logs_that_cannot_be_read_are_a_note_and_the_exit_code_stands(cloud: Cloud) -> None:
    assert cloud.deploy("app:1").code == 0
    cloud.run_fake.fail_to_start("app:2")
    cloud.logging.deny("PERMISSION_DENIED", "Permission 'logging.logEntries.list' denied")

    done = cloud.deploy("app:2")

    assert done.code == 3
    assert "not read: Cloud Logging entries of revision" in done.out
    assert "it needs logging.logEntries.list (roles/logging.viewer)" in done.out
    assert "condition Ready CONDITION_FAILED" in done.out


def test_a_port_the_app_never_listens_on_is_a_port_hint(cloud: Cloud) -> None:
    assert cloud.deploy("app:1").code == 0
    cloud.run_fake.fail_to_start("app:3")
    cloud.logging.write("app:3", ["Server started", "listening on http://0.0.0.0:3000"], "INFO")

    done = cloud.deploy("app:3", "--format", "json")

    (result,) = json.loads(done.out)["results"]
    (hint,) = result["diagnosis"]["hints"]
    assert hint["key"] == "settings.port"
    assert "3000" in hint["text"] and "(8080)" in hint["text"]
