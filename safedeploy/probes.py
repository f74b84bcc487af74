"""HTTP smoke probes against a revision: spec in, results as data out."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import requests

from safedeploy.manifest import ProbeSpec


@dataclass(frozen=True)
class ProbeResult:
    name: str
    url: str
    ok: bool
    attempts: int
    status: int | None  # of the last attempt
    latency_ms: float | None  # of the last attempt
    elapsed_ms: float  # the whole probe, all attempts
    error: str | None  # why the last attempt failed; never a response body that could hold a secret


def run_probes(
    specs: Sequence[ProbeSpec],
    base_url: str,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_attempt: Callable[[ProbeSpec, int, str | None], None] | None = None,
) -> list[ProbeResult]:
    raise NotImplementedError
