"""`make bench`: start-up and planning figures as JSON. Figures, never pass/fail."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 15
# What any command that loads a manifest pays before safedeploy's own code runs.
FLOOR = "import click, yaml, msgspec"


def paired(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Median wall ms of `import click` and of a command, and the median ratio of each pair.

    The two run in turn (A B A B ...), so a ratio holds when the machine's speed drifts.
    """
    baseline = [sys.executable, "-c", "import click"]
    for warm_up in (baseline, argv):
        subprocess.run(warm_up, env=env, capture_output=True, check=False)
    pairs = [(_wall(baseline, env), _wall(argv, env)) for _ in range(RUNS)]
    click_ms, ms = (round(statistics.median(side), 1) for side in zip(*pairs, strict=True))
    return click_ms, ms, round(statistics.median(b / a for a, b in pairs), 2)


def _wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False)
    return (time.perf_counter() - start) * 1000


def cold_start(state: Path) -> dict[str, object]:
    (state / "secrets").mkdir(parents=True, exist_ok=True)
    (state / "secrets" / "session-signing-key").write_text("bench")
    env = {**os.environ, "SAFEDEPLOY_STATE_DIR": str(state)}
    # An installed tool starts from bytecode, like click does from site-packages: let the
    # warm-up run write safedeploy's, or every run would compile its sources again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    manifest = str(ROOT / "manifests" / "demo.yaml")
    variables = ["--var", "GREETING=hi", "--var", "BREAK_HEALTH=0"]
    sd = [sys.executable, "-m", "safedeploy"]
    figures: dict[str, object] = {"runs": RUNS}
    for name, argv in {
        "libraries_floor": [sys.executable, "-c", FLOOR],
        "help": [*sd, "--help"],
        "lint": [*sd, "lint", manifest],
        "plan": [*sd, "plan", manifest, *variables],
    }.items():
        click_ms, figures[f"{name}_ms"], figures[f"{name}_vs_click"] = paired(argv, env)
        figures.setdefault("import_click_ms", click_ms)  # as measured beside the floor
    return figures


def plan_1000(folder: Path) -> dict[str, object]:
    from safedeploy.facts import LiveService
    from safedeploy.manifest import load_manifest
    from safedeploy.model import ServiceSpec
    from safedeploy.plan import build_plan

    lines = ["service: big", "platform: local", "command: [x]", "env:"]
    lines += [f"  VAR_{i:04d}: value-{i}" for i in range(1000)]
    path = folder / "big.yaml"
    path.write_text("\n".join(lines) + "\n")
    live_env = {f"VAR_{i:04d}": f"value-{i if i % 10 else -i}" for i in range(100, 1100)}
    live = LiveService("big", ServiceSpec(command=("x",), env=live_env), "fp")
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        plan = build_plan(load_manifest(path), live)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "variables_declared": 1000,
        "variables_live": len(live_env),
        "decisions": len(plan.variables),
        "load_merge_plan_ms_median": round(statistics.median(times), 1),
        "load_merge_plan_ms_max": round(max(times), 1),
    }


def main() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import apprunner
    import cloudrun
    import ecs_express
    import fleet

    with tempfile.TemporaryDirectory() as tmp:
        figures = {
            "cold_start": cold_start(Path(tmp) / "state"),
            "plan_1000_variables": plan_1000(Path(tmp)),
            "cloudrun_double": cloudrun.main(),
            "apprunner_double": apprunner.main(),
            "ecs_express_double": ecs_express.main(),
            "fleet_of_20_cloudrun": fleet.main(),
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
