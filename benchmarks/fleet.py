"""Many services at once against the Cloud Run double, where every operation takes 1 s of wall time.

The double's `operation_latency` keeps each long-running operation (an update, a traffic move, a
release record) unfinished for LATENCY seconds, as a real rollout keeps one for minutes; per-call
latency would mostly measure the client's polling instead. The CLI runs as its own process at
production pace (no SAFEDEPLOY_CLOUDRUN_BACKOFF), as against the real API: in this process, next
to the double, the two would share one interpreter lock. Figures: the wall time of one
`deploy --parallel 20` of SERVICES services, beside the sum of the same deploys one service at a
time and the slowest of those (the goal: the whole under 1.5x the slowest). Figures, never
pass/fail; `main()` returns them for benchmarks/run.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes.cloudrun import FakeCloudRun  # noqa: E402

SERVICES = 20
LATENCY = 1.0  # seconds each operation takes
MANIFEST = """\
service: {name}
platform: cloudrun
project: bench
region: us-central1
image: app:2
env: {{LOG_LEVEL: info}}
probes:
  - {{name: health, path: /health, expect: {{status: 200}}, retries: 0}}
"""


@contextmanager
def _double(names: list[str]) -> Iterator[FakeCloudRun]:
    with FakeCloudRun(seed=1, operation_latency=LATENCY) as fake:
        for name in names:
            service = {"template": {"containers": [{"image": "app:1"}]}}
            fake.seed_service(f"projects/bench/locations/us-central1/services/{name}", service)
        yield fake


def _manifests(folder: Path, names: list[str]) -> Path:
    manifests = folder / "manifests"
    manifests.mkdir(parents=True)
    for name in names:
        (manifests / f"{name}.yaml").write_text(MANIFEST.format(name=name))
    return manifests


def _deploy(fake: FakeCloudRun, folder: Path, *args: str) -> float:
    """`safedeploy deploy ARGS --yes` in a new process: wall seconds, start-up included."""
    env = {
        **os.environ,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": fake.endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": fake.endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_POLICYTROUBLESHOOTER": fake.endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": fake.endpoint,
        "CLOUDSDK_AUTH_ACCESS_TOKEN": "bench",
        "SAFEDEPLOY_STATE_DIR": str(folder / "state"),
    }
    argv = [sys.executable, "-m", "safedeploy", "deploy", *args, "--yes"]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"deploy exited {done.returncode}: {done.stderr}"
    return time.perf_counter() - start


def main() -> dict[str, Any]:
    names = [f"svc-{i:02d}" for i in range(SERVICES)]
    with tempfile.TemporaryDirectory() as tmp:
        one_by_one, together = Path(tmp) / "singles", Path(tmp) / "fleet"
        with _double(names) as fake:
            manifests = _manifests(one_by_one, names)
            singles = [_deploy(fake, one_by_one, str(manifests / f"{n}.yaml")) for n in names]
            operations = sum(1 for c in fake.calls() if c.rpc == "UpdateService") / SERVICES
        with _double(names) as fake:
            whole = _deploy(fake, together, str(_manifests(together, names)), "--parallel", "20")
    return {
        "services": SERVICES,
        "operation_latency_s": LATENCY,
        "operations_per_deploy": operations,
        "parallel": 20,
        "whole_s": round(whole, 2),
        "sum_of_singles_s": round(sum(singles), 2),
        "slowest_single_s": round(max(singles), 2),
        "whole_vs_slowest": round(whole / max(singles), 2),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
