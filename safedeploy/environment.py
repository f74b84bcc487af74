"""What a command reads from its process, read once, so that tests can hand `cli.main` another."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class Environment:
    """The streams a command writes to, who is at them, and the variables it runs under."""

    stdout: TextIO
    stderr: TextIO
    stdout_tty: bool
    stderr_tty: bool
    stdin_tty: bool  # a person could answer a confirmation
    color: bool  # plan's text output on stdout is coloured
    ci: bool  # a CI job: nobody is there to confirm
    step_summary: Path | None  # GitHub Actions' job summary, appended to by plan and deploy
    environ: Mapping[str, str]

    @classmethod
    def from_process(cls) -> Environment:
        """Colour follows no-color.org and force-color.org: NO_COLOR wins, FORCE_COLOR colours
        a pipe too, else a terminal on stdout decides."""
        environ = dict(os.environ)
        stdout_tty = sys.stdout.isatty()
        summary = environ.get("GITHUB_STEP_SUMMARY")
        return cls(
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdout_tty=stdout_tty,
            stderr_tty=sys.stderr.isatty(),
            stdin_tty=sys.stdin is not None and sys.stdin.isatty(),  # None: started with it closed
            color=not environ.get("NO_COLOR") and (bool(environ.get("FORCE_COLOR")) or stdout_tty),
            ci=bool(environ.get("CI")),
            step_summary=Path(summary) if summary else None,
            environ=environ,
        )
