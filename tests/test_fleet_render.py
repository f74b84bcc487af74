"""Many services on one page: the pull-request comment and a deploy's summary, as golden files.

Regenerate with `UPDATE_GOLDEN=1 pytest tests/test_fleet_render.py` and review the diff.
"""

from __future__ import annotations

import json

import pytest
from test_render import CREATE, NONE, UPDATE, assert_golden, make_plan, var

from safedeploy.deployer import DeployResult
from safedeploy.errors import ExitCode
from safedeploy.fleet import ServiceRun
from safedeploy.history import Outcome
from safedeploy.merge import Action
from safedeploy.plan import PlanAction
from safedeploy.probes import ProbeResult
from safedeploy.render import Format, render, render_runs

# The example: two services change, one does not, one warning in all.
PULL_REQUEST = [CREATE, UPDATE, NONE]
# Unchanged but drifting: it keeps its own section, as the drift is news.
DRIFTING = make_plan(
    "worker",
    PlanAction.NONE,
    [var("QUEUE", Action.UNCHANGED, "sms", "sms"), var("HOTFIX", Action.KEPT_UNMANAGED, "1", "1")],
)

HEALTH = ProbeResult("health", "https://api.example.com/health", True, 1, 200, 12.0, 12.5, None)
RUNS = [
    ServiceRun(
        DeployResult(
            "auth-service",
            Outcome.SUCCEEDED,
            ExitCode.OK,
            release_id="20261122-153512-042-3fa2",
            revision="auth-service-20261122-153512-042-3fa2",
            url="https://auth.example.com",
            traffic_before={"auth-service-00007-abc": 100},
            traffic_after={"auth-service-20261122-153512-042-3fa2": 100},
            probes=(HEALTH,),
        ),
        41.27,
    ),
    ServiceRun(
        DeployResult(
            "backend-api",
            Outcome.ROLLED_BACK,
            ExitCode.ROLLED_BACK,
            revision="backend-api-20261122-153514-001-9c1e",
            message="probe health failed on the service at 10%: status 500, expected 200; "
            "rolled back, serving backend-api-00041-xyz 100% again",
        ),
        63.04,
    ),
    ServiceRun(
        DeployResult(
            "frontend",
            Outcome.SKIPPED,
            ExitCode.FAILED,
            message="not deployed: it depends on backend-api (rolled-back)",
        ),
        0.0,
    ),
    ServiceRun(DeployResult("docs", Outcome.UNCHANGED, ExitCode.OK), 0.84),
    ServiceRun(
        DeployResult(
            "worker",
            Outcome.FAILED,
            ExitCode.FAILED,
            message="projects/p/locations/r/services/worker: the service changed since it was "
            "read; nothing was overwritten\n  hint: run `safedeploy plan` again",
        ),
        1.5,
    ),
]


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_pull_request_golden(fmt: Format) -> None:
    suffix = {"text": "txt", "markdown": "md"}[fmt]
    assert_golden(f"pull_request.{suffix}", render([*PULL_REQUEST, DRIFTING], fmt))


def test_the_first_line_is_the_verdict_a_reviewer_reads_in_a_second() -> None:
    first = render(PULL_REQUEST, "markdown").splitlines()[0]
    assert first == "**safedeploy plan** — 3 services: 2 to change, 1 unchanged · 1 warning"


def test_only_services_with_nothing_to_show_share_the_no_change_line() -> None:
    comment = render([*PULL_REQUEST, DRIFTING], "markdown")
    assert comment.endswith("**No change:** `frontend` (cloudrun)")
    assert "### worker (cloudrun) — no change: 1 kept" in comment
    assert "**No change:**" not in render([NONE], "markdown")  # one service keeps its own page


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_deploy_summary_golden(fmt: Format) -> None:
    suffix = {"text": "txt", "markdown": "md"}[fmt]
    assert_golden(f"deploy_multi.{suffix}", render_runs(RUNS, fmt))


def test_deploy_summary_json_has_every_service_its_time_and_the_worst_exit_code() -> None:
    document = json.loads(render_runs(RUNS, "json"))
    assert document["schema_version"] == 1
    assert document["exit_code"] == 3
    results = {r["service"]: r for r in document["results"]}
    assert list(results) == [r.service for r in RUNS]
    assert results["auth-service"]["seconds"] == 41.27
    assert results["auth-service"]["probes"][0]["latency_ms"] == 12.0
    assert results["frontend"] | {"seconds": 0} == {
        **dict.fromkeys(["release_id", "revision", "revision_url", "url"]),
        "service": "frontend",
        "outcome": "skipped",
        "exit_code": 1,
        "message": "not deployed: it depends on backend-api (rolled-back)",
        "traffic_before": {},
        "traffic_after": {},
        "probes": [],
        "diagnosis": None,
        "analysis": [],
        "seconds": 0,
    }
