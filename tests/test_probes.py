"""Probes against `responses` mocks, on a fake clock that only the fake sleep moves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from safedeploy.manifest import Expect, ProbeSpec
from safedeploy.probes import ProbeResult, describe, join_url, run_probes

BASE = "https://svc.example.com"
HEALTH = f"{BASE}/health"


class FakeClock:
    """time.monotonic and time.sleep in one: sleeping advances the clock, nothing else waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def probe(name: str = "health", path: str = "/health", **kw: Any) -> ProbeSpec:
    expect = kw.pop("expect", {})
    return ProbeSpec(name=name, path=path, expect=Expect(**expect), **kw)


def run(clock: FakeClock, *specs: ProbeSpec, **kw: Any) -> list[ProbeResult]:
    return run_probes(specs, BASE, sleep=clock.sleep, clock=clock, **kw)


def test_retries_a_status_mismatch_until_it_passes(
    mock: responses.RequestsMock, clock: FakeClock
) -> None:
    mock.get(HEALTH, status=503)
    mock.get(HEALTH, status=503)
    mock.get(HEALTH, status=200)
    seen: list[tuple[str, int, str | None]] = []

    [result] = run(
        clock, probe(interval=2.0), on_attempt=lambda spec, n, err: seen.append((spec.name, n, err))
    )

    assert result.ok and result.error is None
    assert (result.attempts, result.status) == (3, 200)
    assert clock.slept == [2.0, 2.0]
    assert result.elapsed_ms == 4000
    assert seen == [
        ("health", 1, "status 503, expected 200"),
        ("health", 2, "status 503, expected 200"),
        ("health", 3, None),
    ]


def test_gives_up_after_the_retries_are_spent(
    mock: responses.RequestsMock, clock: FakeClock
) -> None:
    mock.get(HEALTH, status=500)

    [result] = run(clock, probe(retries=2))

    assert not result.ok
    assert (result.attempts, result.status) == (3, 500)
    assert result.error == "status 500, expected 200"


@pytest.mark.parametrize(
    ("expected", "body", "error"),
    [
        ({"ok": True}, {"ok": True, "version": "1.2"}, None),
        ({"db": {"up": True}}, {"db": {"up": True, "ms": 3}, "ok": 1}, None),
        ({"tags": ["a", "b"]}, {"tags": ["a", "b"]}, None),
        ({"ok": True}, {"ok": False}, "json: $.ok is false, expected true"),
        ({"ok": True}, {"ok": 1}, "json: $.ok is 1, expected true"),
        ({"ok": True}, {"fine": True}, "json: $.ok is missing, expected true"),
        ({"db": {"up": True}}, {"db": {"up": None}}, "json: $.db.up is null, expected true"),
        ({"db": {"up": True}}, {"db": "up"}, 'json: $.db is a string, expected {"up": true}'),
        ({"tags": ["a"]}, {"tags": ["a", "b"]}, 'json: $.tags is a list, expected ["a"]'),
        ({"v": "2"}, {"v": "1"}, 'json: $.v is a string, expected "2"'),
        ({"ok": True}, [True], 'json: $ is a list, expected {"ok": true}'),
    ],
)
def test_json_subset(
    mock: responses.RequestsMock,
    clock: FakeClock,
    expected: dict[str, Any],
    body: Any,
    error: str | None,
) -> None:
    mock.get(HEALTH, json=body)

    [result] = run(clock, probe(retries=0, expect={"json_subset": expected}))

    assert (result.ok, result.error) == (error is None, error)


def test_json_expected_but_body_is_not_json(mock: responses.RequestsMock, clock: FakeClock) -> None:
    mock.get(HEALTH, body="<html>ok</html>")

    [result] = run(clock, probe(retries=0, expect={"json_subset": {"ok": True}}))

    assert result.error == "json: body is not JSON"


@pytest.mark.parametrize(
    ("expect", "error"),
    [
        ({"contains": "ready"}, None),
        ({"contains": "healthy"}, "body lacks 'healthy'"),
        ({"regex": r"version \d+\.\d+"}, None),
        ({"regex": r"^ready$"}, "body does not match '^ready$'"),
    ],
)
def test_body_contains_and_regex(
    mock: responses.RequestsMock, clock: FakeClock, expect: dict[str, str], error: str | None
) -> None:
    mock.get(HEALTH, body="all ready, version 3.14")

    [result] = run(clock, probe(retries=0, expect=expect))

    assert (result.ok, result.error) == (error is None, error)


def test_an_invalid_regex_is_refused_when_the_probe_is_declared() -> None:
    """Refused at load (tests/test_manifest.py names the line), so no request is ever made."""
    with pytest.raises(ValueError, match="not a regular expression"):
        probe(expect={"regex": "("})


def test_max_latency_measured_on_the_injected_clock(
    mock: responses.RequestsMock, clock: FakeClock
) -> None:
    delays = iter([2.35, 0.034])

    def slow(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        clock.now += next(delays)
        return 200, {}, "ok"

    mock.add_callback(responses.GET, HEALTH, callback=slow)
    seen: list[str | None] = []

    [result] = run(
        clock,
        probe(expect={"max_latency": 2.0}),
        on_attempt=lambda spec, n, err: seen.append(err),
    )

    assert seen == ["latency 2350 ms > 2000 ms", None]
    assert result.ok and result.latency_ms == pytest.approx(34)


def test_consecutive_successes_are_reset_by_a_failure(
    mock: responses.RequestsMock, clock: FakeClock
) -> None:
    for status in (200, 200, 500, 200, 200, 200):
        mock.get(HEALTH, status=status)

    [result] = run(clock, probe(successes=3))

    assert result.ok and result.attempts == 6


def test_overall_timeout_stops_retries(mock: responses.RequestsMock, clock: FakeClock) -> None:
    mock.get(HEALTH, status=503)

    [result] = run(clock, probe(retries=100, interval=1.0, timeout=5.0))

    assert not result.ok and result.attempts == 5
    assert result.error == "status 503, expected 200"
    assert clock.now < 5.0


def test_timeout_while_successes_are_still_accumulating(
    mock: responses.RequestsMock, clock: FakeClock
) -> None:
    mock.get(HEALTH)

    [result] = run(clock, probe(successes=5, interval=1.0, timeout=3.0))

    assert not result.ok and result.attempts == 3
    assert result.error == "3 of 5 successes in a row within 3s"


def test_request_timeout_is_what_is_left_of_the_probe_timeout(
    mock: responses.RequestsMock, clock: FakeClock
) -> None:
    mock.get(HEALTH, status=503)

    run(clock, probe(retries=2, interval=4.0, timeout=10.0))

    timeouts = [call.request.req_kwargs["timeout"] for call in mock.calls]  # type: ignore[attr-defined]
    assert timeouts == [10.0, 6.0, 2.0]


def test_request_sends_method_headers_and_body(
    mock: responses.RequestsMock, clock: FakeClock
) -> None:
    mock.post(f"{BASE}/echo", status=200)

    [result] = run(
        clock, probe(path="/echo", method="POST", headers={"X-Probe": "1"}, body='{"ping": "é"}')
    )

    assert result.ok
    sent = mock.calls[0].request
    assert sent.headers["X-Probe"] == "1"
    assert sent.body == '{"ping": "é"}'.encode()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (requests.ConnectionError("[Errno 111] Connection refused"), "connection refused"),
        (requests.ConnectionError("Failed to resolve 'svc'"), "could not resolve host"),
        (requests.ConnectionError("reset by peer"), "connection failed"),
        (requests.exceptions.SSLError("certificate verify failed"), "TLS error"),
        (requests.ReadTimeout("read timed out"), "timed out after 1.5s"),  # 2s - 0.5s interval
        (requests.TooManyRedirects("too many"), "request failed (TooManyRedirects)"),
    ],
)
def test_request_errors_are_failed_attempts(
    mock: responses.RequestsMock, clock: FakeClock, error: Exception, reason: str
) -> None:
    mock.get(HEALTH, body=error)

    [result] = run(clock, probe(retries=1, timeout=2.0, interval=0.5))

    assert not result.ok and result.attempts == 2
    assert (result.status, result.latency_ms, result.error) == (None, None, reason)


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("https://x.run.app", "/health", "https://x.run.app/health"),
        ("https://x.run.app/", "/health", "https://x.run.app/health"),
        ("https://x.run.app", "health", "https://x.run.app/health"),
        ("https://x.run.app/", "health", "https://x.run.app/health"),
        ("https://x.run.app", "/", "https://x.run.app/"),
        ("https://x/api", "/health", "https://x/api/health"),
        ("https://x/api/", "v1/ready?deep=1", "https://x/api/v1/ready?deep=1"),
    ],
)
def test_path_joining(base: str, path: str, url: str) -> None:
    assert join_url(base, path) == url


def test_probe_url_keeps_the_base_path_prefix(
    mock: responses.RequestsMock, clock: FakeClock
) -> None:
    mock.get("https://x/api/health")

    [result] = run_probes([probe()], "https://x/api", sleep=clock.sleep, clock=clock)

    assert result.ok and result.url == mock.calls[0].request.url == "https://x/api/health"


def test_stops_at_the_first_failing_probe(mock: responses.RequestsMock, clock: FakeClock) -> None:
    mock.get(f"{BASE}/a")
    mock.get(f"{BASE}/b", status=500)
    mock.get(f"{BASE}/c")

    results = run(clock, probe("a", "/a"), probe("b", "/b", retries=0), probe("c", "/c"))

    assert [(r.name, r.ok) for r in results] == [("a", True), ("b", False)]
    assert [call.request.url for call in mock.calls] == [f"{BASE}/a", f"{BASE}/b"]


def test_uses_the_given_session(mock: responses.RequestsMock, clock: FakeClock) -> None:
    mock.get(HEALTH)
    session = requests.Session()
    session.headers["Authorization"] = "Bearer id-token"

    run(clock, probe(), session=session)

    assert mock.calls[0].request.headers["Authorization"] == "Bearer id-token"


SECRET = "sk_live_CANARY51gn4l"


def test_no_response_body_or_header_value_leaks_into_results(
    mock: responses.RequestsMock, clock: FakeClock
) -> None:
    """Every kind of failure, each with the canary in the body, a header and the exception text."""
    leaky = {"X-Debug": SECRET, "Set-Cookie": f"session={SECRET}"}
    mock.get(f"{BASE}/status", status=500, body=SECRET, headers=leaky)
    mock.get(f"{BASE}/json", json={"ok": SECRET, "token": SECRET}, headers=leaky)
    mock.get(f"{BASE}/body", body=f"error: {SECRET}", headers=leaky)
    mock.get(f"{BASE}/down", body=requests.ConnectionError(f"refused, token={SECRET}"))
    specs = [
        probe("status", "/status", retries=0),
        probe("json", "/json", retries=0, expect={"json_subset": {"ok": True}}),
        probe("contains", "/body", retries=0, expect={"contains": "ready"}),
        probe("regex", "/body", retries=0, expect={"regex": "^ready"}),
        probe("down", "/down", retries=0, headers={"Authorization": f"Bearer {SECRET}"}),
    ]
    results: list[ProbeResult] = []
    errors: list[str | None] = []
    for spec in specs:  # one at a time: a failing probe stops the run
        results += run(clock, spec, on_attempt=lambda spec, n, err: errors.append(err))

    assert [r.ok for r in results] == [False] * 5
    assert all(errors)
    assert SECRET not in repr(results) + repr(errors) + "".join(map(describe, results))


def test_describe() -> None:
    ok = ProbeResult("health", HEALTH, True, 1, 200, 34.4, 40.0, None, "GET")
    failed = ProbeResult(
        "ready", HEALTH, False, 3, None, None, 9000.0, "connection refused", "HEAD"
    )

    assert describe(ok) == f"health  GET {HEALTH}  200  34 ms  ok (1 attempt)"
    assert describe(failed) == (
        f"ready  HEAD {HEALTH}  -  -  FAILED after 3 attempts: connection refused"
    )


def test_the_timeout_is_wall_clock_body_included() -> None:
    """A server that sends its headers at once and then a byte every 0.2 s (about 6 s for its
    body) must fail a 1-second probe once the second is up, not pass after every byte came."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\nConnection: close\r\n\r\n")
            for _ in range(30):
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    try:
        spec = ProbeSpec(name="slow", path="/", retries=0, timeout=1.0)
        (result,) = run_probes([spec], f"http://127.0.0.1:{port}", sleep=lambda s: None)
    finally:
        stop.set()
        listener.close()
        server.join(5)
    assert not result.ok
    assert result.error == "timed out after 1.0s, body unfinished"
    assert result.attempts == 1
