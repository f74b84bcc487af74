"""Cloud Run figures against the loopback double with zero latency. Figures, never pass/fail.

`main()` returns them as a dict (benchmarks/run.py can include it): the API calls and wall time of
`plan` and of a full canary deploy (10, 50, 100), the time from the first failing probe to the
end of the rollback, and a cold `python -m safedeploy plan` that pays for importing the SDKs.
The CLI runs in this process for the first three, so they measure safedeploy and the API calls,
not Python's start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clirun import run_cli  # noqa: E402
from fakes.cloudrun import AppRequest, AppResponse, FakeCloudRun  # noqa: E402

RUNS = 5
NAME = "projects/bench/locations/us-central1/services/api"
MANIFEST = """\
service: api
platform: cloudrun
project: bench
region: us-central1
image: app:{tag}
env: {{LOG_LEVEL: info}}
secrets: {{API_TOKEN: api-token}}
probes:
  - {{name: health, path: /health, expect: {{status: 200}}, retries: 0, interval: 0.05}}
rollout: {{strategy: canary, steps: [10, 50, 100]}}
"""


@contextlib.contextmanager
def _double() -> Iterator[FakeCloudRun]:
    with FakeCloudRun(seed=1) as fake:
        fake.add_secret("bench", "api-token", versions={1: ("ENABLED", "bench-token")})
        env = [{"name": f"VAR_{i}", "value": str(i)} for i in range(20)]
        fake.seed_service(NAME, {"template": {"containers": [{"image": "app:1", "env": env}]}})
        yield fake


def _run(fake: FakeCloudRun, folder: Path, *args: str) -> tuple[int, float, dict[str, int]]:
    """One CLI command in-process, as the tests run it: exit code, wall ms, API calls by RPC."""
    env = {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": fake.endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": fake.endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_POLICYTROUBLESHOOTER": fake.endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": fake.endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING": fake.endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING": fake.endpoint,
        "CLOUDSDK_AUTH_ACCESS_TOKEN": "bench",
        "SAFEDEPLOY_CLOUDRUN_BACKOFF": "0.01",
        "SAFEDEPLOY_STATE_DIR": str(folder / "state"),
    }
    before = len(fake.calls())
    start = time.perf_counter()
    code = run_cli(*args, env=env).code
    elapsed = (time.perf_counter() - start) * 1000
    calls = Counter(call.rpc for call in fake.calls()[before:])
    return code, elapsed, dict(sorted(calls.items()))


def _manifest(folder: Path, tag: str) -> str:
    path = folder / f"api-{tag}.yaml"
    path.write_text(MANIFEST.format(tag=tag))
    return str(path)


def plan(folder: Path) -> dict[str, Any]:
    with _double() as fake:
        manifest = _manifest(folder, "2")
        _run(fake, folder, "plan", manifest)  # warm-up: SDK imports, client construction
        runs = [_run(fake, folder, "plan", manifest) for _ in range(RUNS)]
    return {
        "ms_median": round(statistics.median(r[1] for r in runs), 1),
        "api_calls": sum(runs[-1][2].values()),
        "api_calls_by_rpc": runs[-1][2],
    }


def canary_deploy(folder: Path) -> dict[str, Any]:
    runs = []
    for _ in range(RUNS):
        with _double() as fake:
            code, ms, calls = _run(fake, folder, "deploy", _manifest(folder, "2"), "--yes")
            assert code == 0, f"deploy exited {code}"
            runs.append((ms, calls))
    return {
        "steps": [10, 50, 100],
        "ms_median": round(statistics.median(r[0] for r in runs), 1),
        "api_calls": sum(runs[-1][1].values()),
        "api_calls_by_rpc": runs[-1][1],
    }


def rollback(folder: Path) -> dict[str, Any]:
    """From the first failing probe answer to the deploy's end (traffic back, tag gone, probed)."""
    spans = []
    for _ in range(RUNS):
        first_failure: list[float] = []

        def sick(request: AppRequest, seen: list[float] = first_failure) -> AppResponse:
            seen.append(time.perf_counter())
            return AppResponse.json({"ok": False}, 500)

        with _double() as fake:
            fake.set_app(":sick", sick)
            code, _, _ = _run(fake, folder, "deploy", _manifest(folder, "sick"), "--yes")
            ended = time.perf_counter()
            assert code == 3, f"deploy exited {code}"
            spans.append((ended - first_failure[0]) * 1000)
    return {"ms_median": round(statistics.median(spans), 1), "ms_max": round(max(spans), 1)}


def cold_plan(folder: Path) -> dict[str, Any]:
    """`python -m safedeploy plan` in a new process: start-up plus the SDK imports."""
    with _double() as fake:
        env = {
            **os.environ,
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": fake.endpoint,
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": fake.endpoint,
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_POLICYTROUBLESHOOTER": fake.endpoint,
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": fake.endpoint,
            "CLOUDSDK_AUTH_ACCESS_TOKEN": "bench",
        }
        argv = [sys.executable, "-m", "safedeploy", "plan", _manifest(folder, "2")]
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            subprocess.run(argv, env=env, capture_output=True, check=False)
            times.append((time.perf_counter() - start) * 1000)
    return {"ms_median": round(statistics.median(times), 1)}


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        return {
            "runs": RUNS,
            "plan": plan(folder),
            "canary_deploy": canary_deploy(folder),
            "first_failing_probe_to_rolled_back": rollback(folder),
            "cold_plan_subprocess": cold_plan(folder),
        }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
