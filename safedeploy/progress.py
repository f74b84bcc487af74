"""What a person sees while services deploy: whole lines in a log, or a live table on a terminal.

Several services deploy at once, so every line is written whole under one lock: two services'
output never meets mid-line. On a terminal a table above the log shows each service's current
step and probe attempts; rich is imported only then, as it is slow to import.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from safedeploy.fleet import ServiceRun


class Lines:
    """Plain output for logs and pipes: each `say` a whole line, in the order they happen."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._lock = threading.Lock()

    def __enter__(self) -> Lines:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def say(self, service: str, line: str) -> None:
        with self._lock:
            self._write(line)

    def step(self, service: str, text: str) -> None:
        """Steps are for a live display; a log has the lines that say them."""

    def finished(self, run: ServiceRun) -> None:
        """The summary at the end says how each service ended."""


@dataclass
class _Row:
    step: str = "waiting"
    started: float | None = None
    seconds: float | None = None  # once finished


class LiveTable:
    """A terminal: the log scrolls above a table of every service's step and elapsed time."""

    def __init__(self, services: Sequence[str], console: Console) -> None:
        from rich.live import Live

        self._rows = {service: _Row() for service in services}
        self._lock = threading.Lock()
        self._console = console
        self._live = Live(  # transient: the summary printed after it says how each one ended
            self,
            console=self._console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> LiveTable:
        self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()

    def say(self, service: str, line: str) -> None:
        from rich.text import Text

        # The console prints a whole line under its own lock, above the table while it is live.
        # Never under ours: its refresh holds the console's lock to draw the table, which
        # takes ours.
        self._console.print(Text(line))
        self.step(service, line.split("\n")[0])

    def step(self, service: str, text: str) -> None:
        with self._lock:
            row = self._rows[service]
            row.step = text.removeprefix(f"{service}:").strip()
            if row.started is None:
                row.started = time.monotonic()

    def finished(self, run: ServiceRun) -> None:
        with self._lock:
            row = self._rows[run.service]
            row.step = f"{run.result.outcome} (exit {int(run.result.exit_code)})"
            row.seconds = run.seconds

    def __rich__(self) -> Any:
        """The table as it is now; rich's refresh thread calls this a few times a second."""
        from rich.table import Table

        table = Table(box=None, show_edge=False, pad_edge=False)
        for column in ("SERVICE", "STEP", "TIME"):  # one row a service: a long step is cut
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        now = time.monotonic()
        with self._lock:
            for service, row in self._rows.items():
                seconds = row.seconds
                if seconds is None and row.started is not None:
                    seconds = now - row.started
                table.add_row(service, row.step, "" if seconds is None else f"{seconds:.0f}s")
        return table


def display(
    services: Sequence[str], *, terminal: TextIO | None, write: Callable[[str], None]
) -> LiveTable | Lines:
    """A live table on `terminal` for a person there; without one, whole lines through `write`."""
    if terminal is None:
        return Lines(write)
    from rich.console import Console

    return LiveTable(services, Console(file=terminal, highlight=False))
