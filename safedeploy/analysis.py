"""Canary steps judged by real traffic: after a step has taken traffic for `interval`, the
candidate's 5xx share and p95 are compared with the manifest's limits and with what the stable
revisions answered in the same window.

A candidate fails when its 5xx share is over `max_error_rate`, or significantly above the
stable revisions' (a one-sided two-proportion z-test at ALPHA, as Kayenta judges canaries
statistically rather than by fixed limits only), or its p95 is over `max_latency_p95`. Fewer
than `min_requests` is inconclusive, never healthy: metrics arrive late, so a short window
holds few points. Pure but for `watch`, which waits and reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from safedeploy.cancel import CancelToken
from safedeploy.facts import TrafficFigures
from safedeploy.manifest import Analysis
from safedeploy.providers.base import Measures

ALPHA = 0.01  # how unlikely a higher 5xx share must be by chance before it fails the step


@dataclass(frozen=True)
class Judgement:
    """One step's figures and what the core made of them."""

    step: int  # the candidate's percent of traffic during the window
    verdict: str  # passed | failed | inconclusive
    action: str  # promote | rollback: what the deploy does next
    reason: str
    candidate: TrafficFigures
    baseline: TrafficFigures | None  # the stable revisions in the same window; None: none served
    p_value: float | None  # of the candidate's 5xx share being no higher than the baseline's
    start: str
    end: str

    @property
    def failed(self) -> bool:
        return self.action == "rollback"

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Judgement:
        """A step as a release record keeps it."""
        base = data.get("baseline")
        return cls(
            **{
                **data,
                "candidate": TrafficFigures(**data["candidate"]),
                "baseline": None if base is None else TrafficFigures(**base),
            }
        )


def share(figures: TrafficFigures) -> float | None:
    return figures.errors / figures.requests if figures.requests else None


def p_value(candidate: TrafficFigures, baseline: TrafficFigures) -> float | None:
    """One-sided p-value of H0 "the candidate's 5xx share is no higher than the baseline's"
    (pooled two-proportion z-test); None when either side has no requests or no variance."""
    n1, n2 = candidate.requests, baseline.requests
    if not n1 or not n2:
        return None
    pooled = (candidate.errors + baseline.errors) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    z = (candidate.errors / n1 - baseline.errors / n2) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def judge(
    step: int,
    candidate: TrafficFigures,
    baseline: TrafficFigures | None,
    analysis: Analysis,
    window: tuple[datetime, datetime],
) -> Judgement:
    """The verdict on one step's figures, with the reason naming the figure that decided it."""
    p = p_value(candidate, baseline) if baseline is not None else None
    rate = share(candidate)
    limit = analysis.max_latency_p95
    if candidate.requests < analysis.min_requests or rate is None:
        verdict = "inconclusive"
        reason = (
            f"{candidate.requests} requests, fewer than min_requests {analysis.min_requests}: "
            f"inconclusive, so {analysis.inconclusive}"
        )
    elif rate > analysis.max_error_rate:
        verdict = "failed"
        reason = (
            f"5xx share {_percent(rate)} is over max_error_rate {_percent(analysis.max_error_rate)}"
        )
    elif p is not None and p < ALPHA and baseline is not None:
        verdict = "failed"
        reason = (
            f"5xx share {_percent(rate)} is significantly above the stable revisions' "
            f"{_percent(share(baseline) or 0.0)} (p = {p:.2g} < {ALPHA})"
        )
    elif limit is not None and candidate.p95_ms is None:
        verdict = "inconclusive"
        reason = f"no latency figures for max_latency_p95: inconclusive, so {analysis.inconclusive}"
    elif limit is not None and candidate.p95_ms is not None and candidate.p95_ms > limit * 1000:
        verdict = "failed"
        reason = f"p95 {candidate.p95_ms:.0f} ms is over max_latency_p95 {limit * 1000:.0f} ms"
    else:
        verdict, reason = "passed", "within every limit"
    if verdict == "inconclusive":
        action = "rollback" if analysis.inconclusive == "rollback" else "promote"
    else:
        action = "rollback" if verdict == "failed" else "promote"
    start, end = (moment.isoformat(timespec="seconds") for moment in window)
    return Judgement(step, verdict, action, reason, candidate, baseline, p, start, end)


def watch(
    provider: Measures,
    analysis: Analysis,
    step: int,
    candidate: str,
    stable: Sequence[str],
    cancel: CancelToken,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Judgement:
    """Let the step take traffic for `interval` (a signal ends the wait), then read and judge
    the window right away: late points make it inconclusive, never healthy."""
    start = now()
    cancel.sleep(analysis.interval)
    end = now()
    latency = analysis.max_latency_p95 is not None
    figures = provider.traffic(candidate, start, end, latency=latency)
    baseline = None
    if stable:
        read = [provider.traffic(name, start, end) for name in stable]
        baseline = TrafficFigures(
            sum(f.requests for f in read),
            sum(f.errors for f in read),
            None,
            sum(f.points for f in read),
        )
    return judge(step, figures, baseline, analysis, (start, end))


def describe_step(judgement: Judgement) -> str:
    """One line for the deploy log: the verdict, then both sides' figures."""
    head = f"analysis at {judgement.step}%: {judgement.verdict} ({judgement.reason})"
    return f"{head}; candidate {figures(judgement.candidate)}" + (
        f"; stable {figures(judgement.baseline)}" if judgement.baseline is not None else ""
    )


def figures(found: TrafficFigures) -> str:
    rate = share(found)
    words = f"{found.requests} requests, {found.errors} 5xx"
    words += f" ({_percent(rate)})" if rate is not None else ""
    return words + (f", p95 {found.p95_ms:.0f} ms" if found.p95_ms is not None else "")


def _percent(value: float) -> str:
    return f"{value * 100:.2f}%"
