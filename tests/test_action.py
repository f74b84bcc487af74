"""The GitHub Action: action.yml wires its inputs to scripts/action.sh, and the script, run here
with fake GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, plans and deploys on the local platform.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from safedeploy.providers.local import LocalProvider

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "action.sh"
APP = ROOT / "demo" / "app.py"
MANIFEST = f"""\
service: shop-api
platform: local
command: [{sys.executable}, {APP}]
env:
  GREETING: ${{GREETING}}
  BREAK_HEALTH: "${{BREAK_HEALTH}}"
probes:
  - {{name: health, path: /health, expect: {{status: 200}}, retries: 2, interval: 0.1}}
"""


def test_action_yml_passes_every_input_the_script_reads() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    inputs = set(action["inputs"])
    assert {"manifests", "env", "vars", "mode", "plan-path", "python-version"} <= inputs
    assert {"changed", "exit-code", "plan-path"} <= set(action["outputs"])
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.run.outputs.{name} }}}}"
    (run,) = [step for step in action["runs"]["steps"] if step.get("id") == "run"]
    passed = {k: v for k, v in run["env"].items()}
    read = set(re.findall(r"\bINPUT_[A-Z_]+", SCRIPT.read_text()))
    assert read == set(passed)
    for variable, value in passed.items():
        name = variable.removeprefix("INPUT_").lower().replace("_", "-")
        assert value == f"${{{{ inputs.{name} }}}}"
    written = set(re.findall(r'echo "([a-z-]+)=', SCRIPT.read_text()))
    assert written == set(action["outputs"])


@dataclass
class Job:
    """A runner's view: a workspace, the step's output and summary files, the script."""

    root: Path

    def run(self, **inputs: str) -> tuple[int, dict[str, str], str]:
        output = self.root / "output.txt"
        output.write_text("")
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.root / "summary.md"),
            "SAFEDEPLOY_STATE_DIR": str(self.root / "state"),
            "CI": "true",
            **{f"INPUT_{k.upper()}": v for k, v in inputs.items()},
        }
        done = subprocess.run(
            ["bash", str(SCRIPT)], cwd=self.root, env=env, capture_output=True, text=True
        )
        outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
        return done.returncode, outputs, done.stdout + done.stderr

    @property
    def summary(self) -> str:
        return (self.root / "summary.md").read_text()


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Job]:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "shop.yaml").write_text(MANIFEST)
    yield Job(tmp_path)
    LocalProvider("shop-api", tmp_path / "state", tmp_path, os.environ).stop_all()


VARS = "GREETING=hello\n\n# the canary switch\n  BREAK_HEALTH=0\r\n"


def test_plan_then_deploy_the_saved_plan_then_refuse_it_once_stale(job: Job) -> None:
    code, out, log = job.run(manifests="manifests/*.yaml", vars=VARS, mode="plan")
    assert (code, out["exit-code"], out["changed"]) == (0, "2", "true"), log
    assert out["plan-path"] == "safedeploy-plan.json"
    comment = (job.root / out["comment-path"]).read_text()
    assert comment.startswith("**safedeploy plan: shop-api** (local) — create")
    assert job.summary.startswith(comment)

    code, out, log = job.run(manifests="manifests", vars=VARS, mode="deploy")
    assert (code, out["exit-code"], out["changed"]) == (0, "0", "true"), log
    assert "**safedeploy deploy** — 1 service: 1 succeeded · exit 0" in job.summary
    assert '"outcome": "succeeded"' in (job.root / out["results-path"]).read_text()

    code, out, log = job.run(manifests="manifests", vars=VARS, mode="deploy")
    assert (code, out["exit-code"], out["changed"]) == (1, "1", "false")
    assert "changed since the plan was saved" in log

    code, out, log = job.run(manifests="manifests", vars=VARS, mode="plan")
    assert (code, out["exit-code"], out["changed"]) == (0, "0", "false"), log


def test_a_bad_input_fails_the_step_with_a_reason(job: Job) -> None:
    assert job.run(manifests="", mode="plan")[0] == 1
    code, _, log = job.run(manifests="manifests", vars=VARS, mode="apply")
    assert code == 1 and "mode must be plan or deploy, not 'apply'" in log
    code, out, log = job.run(manifests="manifests", vars="GREETING=hi", mode="plan")
    assert (code, out["exit-code"], out["comment-path"]) == (1, "1", "")  # nothing to post
    assert "BREAK_HEALTH" in log  # the variable that was not given


def test_the_example_workflow_gives_the_action_only_inputs_it_has() -> None:
    inputs = set(yaml.safe_load((ROOT / "action.yml").read_text())["inputs"])
    workflow = yaml.safe_load((ROOT / "docs" / "github-workflow.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    uses = [s for s in steps if s.get("uses", "").startswith("your-org/safedeploy")]
    assert [s["with"]["mode"] for s in uses] == ["plan", "deploy"]
    for step in uses:
        assert set(step["with"]) <= inputs
