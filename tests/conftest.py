"""Every test's process: Google APIs a test does not point at a double are pointed at a closed
loopback port, so a failed deploy's diagnosis (Cloud Logging) or a canary's analysis (Cloud
Monitoring) never reaches Google. A test that reads them sets its own double's endpoint."""

from __future__ import annotations

import pytest

CLOSED = "http://127.0.0.1:9/"  # the discard port: nothing listens, a call fails at once


@pytest.fixture(autouse=True)
def _no_real_google_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    for api in ("LOGGING", "MONITORING"):
        monkeypatch.setenv(f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}", CLOSED)
