"""The CLI surface that needs no platform: lint, schema, step summaries, bad flags."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VARS = ["--var", "IMAGE_TAG=v42", "--var", "GREETING=hi", "--var", "BREAK_HEALTH=0"]


def safedeploy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safedeploy", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_example_manifests_pass_lint() -> None:
    done = safedeploy("lint", str(ROOT / "manifests"), *VARS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": ok") == len(list((ROOT / "manifests").glob("*.yaml")))


def test_lint_checks_a_manifest_as_a_template_with_no_variable_set(tmp_path: Path) -> None:
    """A pre-commit hook has no variables; `plan` and `deploy` still need every one."""
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE_TAG", "PROJECT")}
    done = subprocess.run(
        [sys.executable, "-m", "safedeploy", "lint", str(ROOT / "manifests")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "service: api\nplatform: cloudrun\nproject: ${PROJECT}\nregion: r\n"
        "image: repo/api:${IMAGE_TAG}\nsettings:\n  max_instances: 3\n"
    )
    assert safedeploy("lint", str(manifest)).returncode == 0
    planned = safedeploy("plan", str(manifest))
    assert planned.returncode == 1
    assert "variable PROJECT is not set" in planned.stderr


def test_lint_error_exits_1_with_code_line_and_hint(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "service: api\nplatform: cloudrun\nproject: p\nregion: r\nimage: i\n"
        "env:\n  API_URL: http://localhost:8001\n"
    )
    done = safedeploy("lint", str(manifest))
    assert done.returncode == 1
    assert f"error SD102 env.API_URL ({manifest}:7)" in done.stdout
    assert "hint:" in done.stdout


def test_schema_is_json_describing_the_manifest() -> None:
    done = safedeploy("schema")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert {"service", "platform", "env", "secrets", "environments"} <= set(schema["properties"])


def test_plan_appends_markdown_to_the_github_step_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    state = tmp_path / "state"
    (state / "secrets").mkdir(parents=True)
    (state / "secrets" / "session-signing-key").write_text("x")
    done = safedeploy(
        "plan",
        str(ROOT / "manifests" / "demo.yaml"),
        *VARS,
        GITHUB_STEP_SUMMARY=str(summary),
        SAFEDEPLOY_STATE_DIR=str(state),
    )
    assert done.returncode == 0, done.stderr
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert "**safedeploy plan: demo-api**" in text


def test_bad_var_flag_is_a_clear_error() -> None:
    done = safedeploy("lint", str(ROOT / "manifests" / "demo.yaml"), "--var", "NOEQUALS")
    assert done.returncode == 1
    assert "--var 'NOEQUALS' is not NAME=VALUE" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_folder_or_pattern_with_no_manifest_is_an_error(tmp_path: Path) -> None:
    """Deploying nothing must not look like success: exit 1, naming the path."""
    for command in ("plan", "deploy", "lint"):
        for path in (str(tmp_path), str(tmp_path / "*.yaml")):
            done = safedeploy(command, path, "--yes" if command == "deploy" else "--var=X=1")
            assert done.returncode == 1, (command, path, done.stderr)
            assert path in done.stderr
            assert "Traceback" not in done.stderr


def test_the_pre_commit_hook_runs_an_existing_command() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "safedeploy-lint" and hook["language"] == "python"
    program, *args = hook["entry"].split()
    assert program == "safedeploy"  # the console script in pyproject.toml
    assert re.search(hook["files"], "deploy/manifests/backend-api.yaml")
    assert not re.search(hook["files"], "src/app.yaml")
    done = safedeploy(*args, str(ROOT / "manifests"))  # as the hook runs it: no variables
    assert done.returncode == 0, done.stdout + done.stderr
