"""Canary steps judged by real traffic, through the CLI against the Run and Monitoring doubles:
a threshold, a candidate significantly worse than the stable revision although under the
threshold, too few requests either way, and the figures in the output, JSON and history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clirun import Done, run_cli
from fakes.cloudmonitoring import FakeCloudMonitoring
from fakes.cloudrun import FakeCloudRun

MANIFEST = """\
service: api
platform: cloudrun
project: demo
region: us-central1
image: {image}
rollout:
  strategy: canary
  steps: [10, 100]
  analysis:
    interval: 10ms
    max_error_rate: 1%
    max_latency_p95: 800ms
    min_requests: 50
    inconclusive: {inconclusive}
"""


@dataclass
class Cloud:
    run_fake: FakeCloudRun
    monitoring: FakeCloudMonitoring
    root: Path

    def run(self, *args: str) -> Done:
        env: dict[str, str | None] = {
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": f"{self.run_fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": f"{self.run_fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING": f"{self.monitoring.endpoint}/",
            "CLOUDSDK_AUTH_ACCESS_TOKEN": "test-token",
            "SAFEDEPLOY_CLOUDRUN_BACKOFF": "0.01",
            "SAFEDEPLOY_STATE_DIR": str(self.root / "state"),
            "CI": "true",
            "GITHUB_STEP_SUMMARY": None,
            "GOOGLE_APPLICATION_CREDENTIALS": None,
        }
        return run_cli(*args, env=env)

    def deploy(self, image: str, inconclusive: str = "rollback") -> Done:
        path = self.root / "api.yaml"
        path.write_text(MANIFEST.format(image=image, inconclusive=inconclusive))
        return self.run("deploy", str(path), "--yes", "--format", "json")

    def serving(self) -> list[str]:
        service = self.run_fake.service("projects/demo/locations/us-central1/services/api")
        return [t["revision"] for t in service["traffic"] if t.get("percent")]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with (
        FakeCloudRun(seed=7, token="test-token") as run,
        FakeCloudMonitoring(run, "test-token") as monitoring,
    ):
        cloud = Cloud(run, monitoring, tmp_path)
        monitoring.answer_with("app:1", requests=10_000, errors=1)
        first = cloud.deploy("app:1")
        assert first.code == 0, first.err
        yield cloud


def result(done: Done) -> dict:  # type: ignore[type-arg]
    (found,) = json.loads(done.out)["results"]
    return found  # type: ignore[no-any-return]


def test_a_candidate_over_max_error_rate_rolls_back_with_both_figures(cloud: Cloud) -> None:
    before = cloud.serving()
    cloud.monitoring.answer_with("app:2", requests=1000, errors=30)

    done = cloud.deploy("app:2")

    assert done.code == 3, done.err
    found = result(done)
    (step,) = found["analysis"]
    assert step["step"] == 10 and step["verdict"] == "failed"
    assert step["candidate"] == {"requests": 1000, "errors": 30, "p95_ms": 120.0, "points": 4}
    assert step["baseline"]["requests"] == 10_000 and step["baseline"]["errors"] == 1
    assert "5xx share 3.00% is over max_error_rate 1.00%" in found["message"]
    assert "stable 10000 requests, 1 5xx (0.01%)" in found["message"]
    assert cloud.serving() == before
    history = cloud.run("history", str(cloud.root / "api.yaml"))
    assert "analysis at 10%: failed" in history.out


def test_significantly_worse_than_stable_fails_under_the_threshold(cloud: Cloud) -> None:
    cloud.monitoring.answer_with("app:3", requests=2000, errors=16)  # 0.8%, under 1%

    done = cloud.deploy("app:3")

    assert done.code == 3
    (step,) = result(done)["analysis"]
    assert step["verdict"] == "failed" and step["p_value"] < 0.01
    assert "significantly above the stable revisions' 0.01%" in step["reason"]


def test_too_few_requests_follow_inconclusive(cloud: Cloud) -> None:
    cloud.monitoring.answer_with("app:4", requests=10, errors=0)
    assert cloud.deploy("app:4").code == 3
    promoted = cloud.deploy("app:4", inconclusive="promote")
    assert promoted.code == 0, promoted.err
    assert [s["verdict"] for s in result(promoted)["analysis"]] == ["inconclusive"] * 2


def test_a_late_window_is_inconclusive_never_healthy(cloud: Cloud) -> None:
    cloud.monitoring.late()
    done = cloud.deploy("app:5")
    assert done.code == 3
    (step,) = result(done)["analysis"]
    assert step["verdict"] == "inconclusive" and step["candidate"]["points"] == 0


def test_a_healthy_candidate_is_judged_at_every_step_and_promoted(cloud: Cloud) -> None:
    cloud.monitoring.answer_with("app:6", requests=1000, errors=1, p95_ms=300.0)

    done = cloud.deploy("app:6")

    assert done.code == 0, done.err
    steps = result(done)["analysis"]
    assert [(s["step"], s["verdict"]) for s in steps] == [(10, "passed"), (100, "passed")]
    assert steps[1]["baseline"] is None  # at 100% nothing else serves
    assert "analysis at 10%: passed" in done.err
    history = cloud.run("history", str(cloud.root / "api.yaml")).out
    assert f"{result(done)['release_id']}: analysis at 100%: passed" in history
    cloud.monitoring.answer_with("app:7", requests=1000, errors=0, p95_ms=950.0)
    slow = cloud.deploy("app:7")
    assert slow.code == 3
    assert "p95 950 ms is over max_latency_p95 800 ms" in result(slow)["message"]
    aligners = {r.get("aggregation.perSeriesAligner") for r in cloud.monitoring.requests}
    assert aligners == {None, "ALIGN_PERCENTILE_95"}  # counts raw, latency as its p95
