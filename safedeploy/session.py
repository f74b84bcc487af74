"""One run of a command: the Environment it writes through, and what a signal does to it."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO, cast

import click

from safedeploy.cancel import CancelToken
from safedeploy.environment import Environment
from safedeploy.errors import SafedeployError

if TYPE_CHECKING:
    from safedeploy.context import Context

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Signals:
    """What SIGINT, SIGTERM and SIGHUP do (DESIGN.md "Interruption"): before anything changes,
    stop there; during a deploy, the first one cancels it (it rolls back) and any further one is
    told that the rollback carries on; during `rollback`, every one is told so."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.cancel = CancelToken()
        self.phase: str | None = None  # None | "deploy" | "rollback" | "ended"
        self._say = say

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.phase is None:
            raise KeyboardInterrupt  # nothing changed yet: stop here, as Ctrl-C always did
        if self.phase == "ended":
            self._say("the deploy has ended; reporting what happened")
            return
        if self.phase == "deploy" and not self.cancel.cancelled:
            self.cancel.cancel(f"cancelled by {signal.Signals(signum).name}")
            self._say("cancelling: rolling back what this deploy changed …")
        else:
            self._say("rollback in progress; carrying on — only SIGKILL stops it")


class Session:
    """One run of a command: the Environment it writes through and its signal state."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.signals = Signals(self.say)

    def echo(self, text: str, *, err: bool = False, nl: bool = True, color: bool = False) -> None:
        stream = self.environment.stderr if err else self.environment.stdout
        click.echo(text, file=stream, nl=nl, color=color)

    def say(self, text: str) -> None:
        """A line for the person running the command, on stderr."""
        self.echo(text, err=True)

    def waiting(self, text: str) -> None:
        """Waiting on a platform, shown only to a person at a terminal."""
        if self.environment.stderr_tty:
            self.say(text)

    def confirm(
        self, question: str = "Apply these changes?", what: str = "deploy", shown: str = "the plan"
    ) -> None:
        """Ask before a change; with nobody to ask (no terminal, or CI), refuse."""
        if not self.environment.stdin_tty or self.environment.ci:
            raise SafedeployError(
                f"refusing to {what} without confirmation: there is no terminal to ask on",
                hint=f"review {shown}, then pass --yes",
            )
        if not click.confirm(question, default=False):
            raise SafedeployError("cancelled; nothing was changed")

    def context(self, state_dir: Path | None) -> Context:
        from safedeploy.context import Context

        return Context(
            state_dir=state_dir, environ=self.environment.environ, cancel=self.signals.cancel
        )

    def step_summary(self, markdown: str) -> None:
        """Append to the GitHub Actions job summary when running there; a blank line after it
        keeps the next block (a deploy after its plan) from running into a list or a table."""
        path = self.environment.step_summary
        if path:
            from safedeploy.redact import scrub

            with open(path, "a") as handle:
                handle.write(scrub(markdown) + "\n\n")


@contextmanager
def running(environment: Environment) -> Iterator[Session]:
    """A Session whose streams pass through the scrubber (redact.py) and whose Signals handle
    SIGINT, SIGTERM and SIGHUP; meanwhile sys.stdout and sys.stderr are those scrubbed streams
    too, for rich, click's prompts, tracebacks and libraries. All is put back after."""
    from safedeploy.redact import ScrubbedStream

    scrubbed = replace(  # a ScrubbedStream passes everything but `write` to the stream it wraps
        environment,
        stdout=cast(TextIO, ScrubbedStream(environment.stdout)),
        stderr=cast(TextIO, ScrubbedStream(environment.stderr)),
    )
    session = Session(scrubbed)
    handlers = {signum: signal.signal(signum, session.signals.handle) for signum in _SIGNALS}
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = scrubbed.stdout, scrubbed.stderr
    try:
        yield session
    finally:
        sys.stdout, sys.stderr = streams
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    """--var NAME=VALUE pairs as a mapping; a pair without `=` is refused."""
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SafedeployError(
                f"--var {pair!r} is not NAME=VALUE", hint="write --var IMAGE_TAG=v42"
            )
        variables[name] = value
    return variables


def manifest_paths(paths: Sequence[Path]) -> Iterator[Path]:
    """Files as given; a folder stands for the *.yaml and *.yml manifests in it."""
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not found:  # an empty folder deploying nothing must not look like success
            raise SafedeployError(
                "no manifests here (*.yaml, *.yml)",
                where=str(path),
                hint="name the manifest files, or the folder that holds them",
            )
        yield from found
