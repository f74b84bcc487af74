"""Run the CLI in-process the way the console script does, for tests that drive it often."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from click.testing import CliRunner

from safedeploy.cli import main


@dataclass
class Done:
    code: int
    out: str
    err: str


def run_cli(*args: str, env: Mapping[str, str | None] | None = None) -> Done:
    """`safedeploy ARGS...` through cli.main, the one place errors become exit codes."""
    with CliRunner().isolation(env=env) as (out, err, _):
        code = main(args)
        return Done(code, out.getvalue().decode(), err.getvalue().decode())
