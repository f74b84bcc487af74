"""`cli.main(argv, environment)`: what the process is comes in one value that a test can swap."""

from __future__ import annotations

import io
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from safedeploy.cli import main
from safedeploy.environment import Environment

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "manifests" / "demo.yaml")
VARS = ["--var", "GREETING=hi", "--var", "BREAK_HEALTH=0"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def quiet() -> Environment:
    """No terminal, no CI, no colour: what a pipe in a script sees."""
    return Environment(
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        stdout_tty=False,
        stderr_tty=False,
        stdin_tty=False,
        color=False,
        ci=False,
        step_summary=None,
        environ={"PATH": os.environ.get("PATH", "")},
    )


def out(environment: Environment) -> str:
    return environment.stdout.getvalue()  # type: ignore[attr-defined]


def err(environment: Environment) -> str:
    return environment.stderr.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    (tmp_path / "state" / "secrets").mkdir(parents=True)
    (tmp_path / "state" / "secrets" / "session-signing-key").write_text("x")
    return tmp_path / "state"


def test_main_writes_to_the_environment_and_returns_the_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environment = quiet()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    streams = sys.stdout, sys.stderr

    assert main(["lint", DEMO], environment) == 0
    assert main(["lint", DEMO, "--var", "NOEQUALS"], environment) == 1

    assert out(environment) == f"{DEMO}: ok\n"
    assert "error: --var 'NOEQUALS' is not NAME=VALUE" in err(environment)
    assert capsys.readouterr() == ("", "")  # nothing reached the process's own streams
    assert (sys.stdout, sys.stderr) == streams
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_help_and_a_bad_flag_are_exit_codes_not_system_exits() -> None:
    environment = quiet()
    assert main(["--help"], environment) == 0
    assert main(["plan", "--no-such-flag", DEMO], environment) == 1
    assert "Merge-safe deploys" in out(environment)
    assert "Error: No such option '--no-such-flag'" in err(environment)


def test_plan_is_coloured_only_when_the_environment_says_so(state: Path) -> None:
    plain, colored = quiet(), replace(quiet(), color=True)
    for environment in (plain, colored):
        args = ["plan", DEMO, *VARS, "--state-dir", str(state)]
        assert main(args, environment) == 0, err(environment)
    assert "demo-api (local): create" in out(plain)
    assert "\x1b[" not in out(plain)
    assert "\x1b[" in out(colored)


@pytest.mark.parametrize(
    ("variables", "terminal", "color"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": ""}, True, True),  # no-color.org: an empty value is unset
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, True, False),
    ],
)
def test_colour_follows_no_color_force_color_and_the_terminal(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], terminal: bool, color: bool
) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdout", Terminal() if terminal else io.StringIO())
    assert Environment.from_process().color is color


def test_ci_and_the_step_summary_are_read_once_from_the_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    environment = Environment.from_process()
    assert environment.ci and environment.step_summary == tmp_path / "summary.md"
    monkeypatch.delenv("CI")
    assert environment.ci and environment.environ["CI"] == "true"


def test_in_ci_plan_writes_the_step_summary_and_deploy_will_not_ask(
    state: Path, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    # stdin is a terminal here: CI alone is reason enough not to ask.
    environment = replace(quiet(), ci=True, stdin_tty=True, step_summary=summary)
    args = [DEMO, *VARS, "--state-dir", str(state)]

    assert main(["plan", *args], environment) == 0
    assert main(["deploy", *args], environment) == 1

    assert summary.read_text().startswith("**safedeploy plan: demo-api** (local)")
    assert "refusing to deploy without confirmation" in err(environment)
    assert "hint: review the plan, then pass --yes" in err(environment)
    assert not (state / "demo-api" / "history").exists()  # nothing was deployed
