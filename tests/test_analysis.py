"""analysis: the verdict on a canary step's figures, and the z-test behind "significantly worse"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safedeploy.analysis import ALPHA, Judgement, describe_step, judge, p_value, watch
from safedeploy.cancel import CancelToken
from safedeploy.facts import TrafficFigures
from safedeploy.manifest import Analysis

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
WINDOW = (T0, T0 + timedelta(minutes=2))
LIMITS = Analysis(interval=120, max_error_rate=0.01, max_latency_p95=0.8, min_requests=50)


def figures(requests: int, errors: int, p95: float | None = 100.0) -> TrafficFigures:
    return TrafficFigures(requests, errors, p95, 2)


def verdict(
    candidate: TrafficFigures, baseline: TrafficFigures | None = None, **limits: object
) -> Judgement:
    analysis = Analysis(**{**{f: getattr(LIMITS, f) for f in LIMITS.__struct_fields__}, **limits})  # type: ignore[arg-type]
    return judge(10, candidate, baseline, analysis, WINDOW)


counts = st.integers(min_value=0, max_value=100_000)


@given(n1=counts, e1=counts, n2=counts, e2=counts)
def test_the_p_value_is_a_probability_and_falls_as_the_candidate_worsens(
    n1: int, e1: int, n2: int, e2: int
) -> None:
    e1, e2 = min(e1, n1), min(e2, n2)
    p = p_value(figures(n1, e1), figures(n2, e2))
    if p is None:
        return
    assert 0.0 <= p <= 1.0
    if e1 < n1:
        worse = p_value(figures(n1, e1 + 1), figures(n2, e2))
        assert worse is not None and worse <= p + 1e-12


def test_the_p_value_matches_the_textbook_z_test() -> None:
    # 30/1000 against 10/1000: pooled 0.02, z = 0.02 / sqrt(0.02 * 0.98 * 0.002) = 3.194
    p = p_value(figures(1000, 30), figures(1000, 10))
    assert p == pytest.approx(0.000701, rel=1e-2)
    assert p_value(figures(1000, 0), figures(1000, 0)) is None
    assert p_value(figures(0, 0), figures(1000, 1)) is None


def test_over_the_threshold_fails() -> None:
    judged = verdict(figures(1000, 11))
    assert (judged.verdict, judged.action) == ("failed", "rollback")
    assert "1.10% is over max_error_rate 1.00%" in judged.reason


def test_significantly_above_the_stable_revision_fails_under_the_threshold() -> None:
    judged = verdict(figures(5000, 45), figures(50_000, 5))
    assert judged.verdict == "failed" and judged.p_value is not None and judged.p_value < ALPHA
    assert "significantly above" in judged.reason


def test_a_difference_chance_explains_passes() -> None:
    judged = verdict(figures(1000, 2), figures(9000, 9))
    assert judged.verdict == "passed" and judged.action == "promote"


@pytest.mark.parametrize(("policy", "action"), [("rollback", "rollback"), ("promote", "promote")])
def test_too_few_requests_is_inconclusive_and_follows_the_policy(policy: str, action: str) -> None:
    judged = verdict(figures(49, 49), inconclusive=policy)
    assert (judged.verdict, judged.action) == ("inconclusive", action)
    assert "fewer than min_requests 50" in judged.reason


def test_latency_over_the_limit_fails_and_missing_latency_is_inconclusive() -> None:
    assert "p95 900 ms is over max_latency_p95 800 ms" in verdict(figures(100, 0, 900.0)).reason
    assert verdict(figures(100, 0, None)).verdict == "inconclusive"
    assert verdict(figures(100, 0, None), max_latency_p95=None).verdict == "passed"


@given(requests=st.integers(0, 10_000), errors=st.integers(0, 10_000))
def test_a_step_never_passes_on_fewer_than_min_requests(requests: int, errors: int) -> None:
    judged = verdict(figures(requests, min(errors, requests)))
    if requests < LIMITS.min_requests:
        assert judged.verdict == "inconclusive"
    assert judged.failed == (judged.action == "rollback")


def test_a_judgement_survives_its_record_and_reads_as_one_line() -> None:
    from dataclasses import asdict

    judged = verdict(figures(1000, 30), figures(9000, 1))
    assert Judgement.from_record(asdict(judged)) == judged
    line = describe_step(judged)
    assert line.startswith("analysis at 10%: failed (")
    assert (
        "candidate 1000 requests, 30 5xx (3.00%), p95 100 ms; stable 9000 requests, 1 5xx" in line
    )


class Metrics:
    def __init__(self) -> None:
        self.asked: list[tuple[str, bool]] = []

    def traffic(
        self, revision: str, start: datetime, end: datetime, *, latency: bool = False
    ) -> TrafficFigures:
        self.asked.append((revision, latency))
        return figures(1000, 1) if revision == "new" else figures(500, 0)


def test_watch_waits_then_reads_the_candidate_and_sums_the_stable_revisions() -> None:
    metrics = Metrics()
    judged = watch(metrics, Analysis(interval=0.001), 50, "new", ["a", "b"], CancelToken())
    assert metrics.asked == [("new", False), ("a", False), ("b", False)]
    assert judged.baseline == TrafficFigures(1000, 0, None, 4)


def test_a_signal_ends_the_wait() -> None:
    from safedeploy.cancel import Cancelled

    token = CancelToken()
    token.cancel("SIGTERM")
    with pytest.raises(Cancelled):
        watch(Metrics(), Analysis(interval=60), 10, "new", [], token)


def test_the_block_reads_durations_and_percentages_and_refuses_a_bare_share(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import jsonschema

    from safedeploy.errors import SafedeployError
    from safedeploy.manifest import load_manifest, manifest_schema

    block = "rollout:\n  strategy: canary\n  steps: [10, 100]\n  analysis:\n"
    block += "    interval: 2m\n    max_error_rate: {rate}\n    max_latency_p95: 800ms\n"
    path = tmp_path / "m.yaml"
    path.write_text("service: a\nplatform: local\ncommand: [x]\n" + block.format(rate="0.5%"))
    analysis = load_manifest(path, env_name=None, variables={}, environ={}).rollout.analysis
    assert analysis == Analysis(interval=120.0, max_error_rate=0.005, max_latency_p95=0.8)
    document = {
        "service": "a",
        "platform": "local",
        "rollout": {"analysis": {"interval": "2m", "max_error_rate": "1%"}},
    }
    jsonschema.validate(document, manifest_schema())
    path.write_text("service: a\nplatform: local\ncommand: [x]\n" + block.format(rate="1"))
    with pytest.raises(SafedeployError, match="expected a percentage"):
        load_manifest(path, env_name=None, variables={}, environ={})


def test_lint_judges_where_analysis_can_run_and_for_how_long(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from safedeploy.lint import lint_manifest
    from safedeploy.manifest import load_manifest

    def codes(head: str, interval: str) -> list[str]:
        path = tmp_path / "m.yaml"
        block = "rollout:\n  strategy: canary\n  steps: [10, 50, 100]\n"
        block += f"  analysis: {{interval: {interval}}}\n"
        path.write_text(head + block)
        manifest = load_manifest(path, env_name=None, variables={}, environ={})
        return [f.code for f in lint_manifest(manifest)]

    cloudrun = "service: a\nplatform: cloudrun\nproject: p\nregion: r\nimage: x:1\n"
    assert codes(cloudrun, "5m") == []
    assert codes(cloudrun, "20m") == ["SD112"]  # 3 x 20 minutes: the lease's hour
    assert codes("service: a\nplatform: local\ncommand: [x]\n", "1m") == ["SD111"]


def test_the_deploy_summary_lists_the_steps_a_promotion_was_based_on() -> None:
    from dataclasses import asdict

    from safedeploy.deployer import DeployResult
    from safedeploy.errors import ExitCode
    from safedeploy.fleet import ServiceRun
    from safedeploy.history import Outcome
    from safedeploy.render import render_runs

    steps = (asdict(verdict(figures(1000, 2), figures(9000, 9))),)
    run = ServiceRun(DeployResult("api", Outcome.SUCCEEDED, ExitCode.OK, analysis=steps), 1.0)
    line = "api: analysis at 10%: passed (within every limit); candidate 1000 requests"
    assert line in render_runs([run], "text")
    assert "- `api`: analysis at 10%: passed" in render_runs([run], "markdown")
