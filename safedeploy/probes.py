"""HTTP smoke probes against a revision: spec in, results as data out.

Errors name what was checked, never what came back: bodies and headers can hold secrets. A failed
probe keeps the start of the body it got, cleaned as untrusted text (`untrusted.clean`), since an
app's 500 often says what is missing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safedeploy.manifest import Expect, ProbeSpec
from safedeploy.untrusted import clean

OnAttempt = Callable[[ProbeSpec, int, str | None], None]  # probe, attempt number, why it failed

if TYPE_CHECKING:  # imported where probes run: most commands never probe, and it is slow
    import requests

# Real sleeps overshoot; a request must never get a zero or negative timeout.
_MIN_REQUEST_TIMEOUT = 0.1
MAX_BODY = 1024 * 1024  # bytes of a body kept for the checks; the rest is read and dropped
BODY_SHOWN = 200  # characters of a failed probe's body kept as evidence
_CHUNK = 64 * 1024


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
    method: str = "GET"
    body: str | None = None  # the start of the last body when the probe failed, cleaned


def run_probes(
    specs: Sequence[ProbeSpec],
    base_url: str,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_attempt: OnAttempt | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[ProbeResult]:
    """Run the probes in order, stopping at the first that fails: the deploy is failing anyway."""
    import requests

    http = session if session is not None else requests.Session()
    results: list[ProbeResult] = []
    try:
        for spec in specs:
            result = _run_probe(spec, join_url(base_url, spec.path), http, sleep, on_attempt, clock)
            results.append(result)
            if not result.ok:
                break
    finally:
        if session is None:
            http.close()
    return results


def join_url(base_url: str, path: str) -> str:
    """Plain joining, unlike urljoin, keeps a base's path prefix (https://x/api + /health)."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def describe(result: ProbeResult) -> str:
    """One line per probe for the deploy log."""
    status = "-" if result.status is None else str(result.status)
    latency = "-" if result.latency_ms is None else f"{result.latency_ms:.0f} ms"
    tries = f"{result.attempts} attempt{'' if result.attempts == 1 else 's'}"
    outcome = f"ok ({tries})" if result.ok else f"FAILED after {tries}: {result.error}"
    return f"{result.name}  {result.method} {result.url}  {status}  {latency}  {outcome}"


def _run_probe(
    spec: ProbeSpec,
    url: str,
    http: requests.Session,
    sleep: Callable[[float], None],
    on_attempt: Callable[[ProbeSpec, int, str | None], None] | None,
    clock: Callable[[], float],
) -> ProbeResult:
    """Attempt until `successes` pass in a row, `retries` failures are spent, or time runs out."""
    start = clock()
    deadline = start + spec.timeout
    pattern = None if spec.expect.regex is None else re.compile(spec.expect.regex)  # valid: load
    attempts = failures = streak = 0
    while True:
        attempts += 1
        timeout = max(deadline - clock(), _MIN_REQUEST_TIMEOUT)
        status, latency_ms, error, body = _attempt(spec, url, http, timeout, pattern, clock)
        if on_attempt is not None:
            on_attempt(spec, attempts, error)
        if error is None:
            streak += 1
            if streak >= spec.successes:
                break
        else:
            streak, failures = 0, failures + 1
            if failures > spec.retries:
                break
        if clock() + spec.interval >= deadline:
            if error is None:
                error = f"{streak} of {spec.successes} successes in a row within {spec.timeout:g}s"
            break
        sleep(spec.interval)
    return ProbeResult(
        name=spec.name,
        url=url,
        ok=error is None,
        attempts=attempts,
        status=status,
        latency_ms=latency_ms,
        elapsed_ms=(clock() - start) * 1000,
        error=error,
        method=spec.method,
        body=None if error is None else body,
    )


def _attempt(
    spec: ProbeSpec,
    url: str,
    http: requests.Session,
    timeout: float,
    pattern: re.Pattern[str] | None,
    clock: Callable[[], float],
) -> tuple[int | None, float | None, str | None, str | None]:
    """One request: (status, latency in ms, why it failed or None, the body's start, cleaned).

    `timeout` is wall-clock, body included: requests' own timeout bounds each read, so a
    server that trickles a byte a second would otherwise pass a 3-second probe after minutes.
    """
    import requests

    began = clock()
    try:
        with http.request(
            spec.method,
            url,
            headers=spec.headers,
            data=None if spec.body is None else spec.body.encode(),
            timeout=timeout,
            stream=True,
        ) as response:
            body = _read_body(response, began + timeout, clock)
    except requests.RequestException as exc:
        return None, None, _request_error(exc, timeout), None
    if body is None:
        return response.status_code, None, f"timed out after {timeout:.1f}s, body unfinished", None
    latency = clock() - began
    text = body.decode(response.encoding or "utf-8", errors="replace")
    error = _check(spec.expect, response, body, text, latency, pattern)
    shown = clean(text, BODY_SHOWN) if error is not None and text else None
    return response.status_code, latency * 1000, error, shown


def _read_body(
    response: requests.Response, deadline: float, clock: Callable[[], float]
) -> bytes | None:
    """The body as it arrives, or None once the deadline passes; at most MAX_BODY is kept."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.raw.read1(_CHUNK, decode_content=True):
        if clock() > deadline:
            return None
        if size < MAX_BODY:
            chunks.append(chunk[: MAX_BODY - size])
            size += len(chunks[-1])
    return b"".join(chunks)


def _check(
    expect: Expect,
    response: requests.Response,
    body: bytes,
    text: str,
    latency: float,
    pattern: re.Pattern[str] | None,
) -> str | None:
    """The first expectation the response misses, described without its content."""
    if response.status_code != expect.status:
        return f"status {response.status_code}, expected {expect.status}"
    if expect.max_latency is not None and latency > expect.max_latency:
        return f"latency {latency * 1000:.0f} ms > {expect.max_latency * 1000:.0f} ms"
    if expect.json_subset is not None:
        try:
            document = json.loads(body)
        except ValueError:
            return "json: body is not JSON"
        mismatch = _json_mismatch(expect.json_subset, document, "$")
        if mismatch is not None:
            return f"json: {mismatch}"
    if expect.contains is not None and expect.contains not in text:
        return f"body lacks {expect.contains!r}"
    if pattern is not None and not pattern.search(text):
        return f"body does not match {pattern.pattern!r}"
    return None


def _json_mismatch(expected: Any, actual: Any, path: str) -> str | None:
    """Objects match as subsets, key by key; anything else (lists too) must be equal."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, want in expected.items():
            where = f"{path}.{key}"
            if key not in actual:
                return f"{where} is missing, expected {_shown(want)}"
            mismatch = _json_mismatch(want, actual[key], where)
            if mismatch is not None:
                return mismatch
        return None
    if _same(expected, actual):
        return None
    return f"{path} is {_described(actual)}, expected {_shown(expected)}"


def _same(a: Any, b: Any) -> bool:
    """JSON equality: unlike ==, true is not 1."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _shown(expected: Any) -> str:
    """A manifest value, as JSON; it is ours to show."""
    return json.dumps(expected, default=str)


def _described(actual: Any) -> str:
    """A response value: shown only when it cannot be a secret (bool, number, null)."""
    if actual is None or isinstance(actual, bool | int | float):
        return json.dumps(actual)
    if isinstance(actual, str):
        return "a string"
    return "a list" if isinstance(actual, list) else "an object"


def _request_error(exc: requests.RequestException, timeout: float) -> str:
    """Only the kind of failure: exception text can carry URLs, headers or bodies."""
    import requests

    if isinstance(exc, requests.Timeout):
        return f"timed out after {timeout:.1f}s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused"
        return "could not resolve host" if "resolve" in text else "connection failed"
    return f"request failed ({type(exc).__name__})"
