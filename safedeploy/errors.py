"""One error type that carries what went wrong, where, what to do next, and its exit code.

Only `cli` turns these into output; everything below raises them. Providers raise the plain
type and the three kinds below, which word once what every platform reports alike.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The process exit codes that scripts rely on (the README's "Commands")."""

    OK = 0
    FAILED = 1  # failed with no change made
    CHANGES = 2  # plan --detailed-exitcode: changes present
    ROLLED_BACK = 3  # deploy failed and was rolled back
    NEEDS_HUMAN = 4  # deploy failed and the rollback failed too

    @classmethod
    def of(cls, *, failed: bool, changes: bool = False) -> ExitCode:
        """`plan` and `lint`: a failure outranks changes, which count where they are asked for."""
        if failed:
            return cls.FAILED
        return cls.CHANGES if changes else cls.OK


class SafedeployError(Exception):
    """An error a user can act on: `what` happened at `where`; `hint` says what to do."""

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        hint: str | None = None,
        exit_code: ExitCode = ExitCode.FAILED,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def location(file: object, line: int | None = None, key: str | None = None) -> str:
    """`file:line (key)`, the one way errors and findings point into a manifest."""
    text = str(file)
    if line is not None:
        text += f":{line}"
    if key:
        text += f" ({key})"
    return text


class VersionMoved(SafedeployError):
    """A provider found the service changed since the plan read it: nothing was written."""

    def __init__(self, where: str) -> None:
        super().__init__(
            "the service changed since the plan; nothing was changed",
            where=where,
            hint="run `safedeploy plan` again and review the new diff",
        )


class Busy(SafedeployError):
    """Someone else is changing the service now: another deploy's lease, a platform operation."""

    def __init__(self, service: str, holder: str, since: object, *, where: str, hint: str) -> None:
        super().__init__(
            f"another deploy of {service} is running: {holder} since {since}",
            where=where,
            hint=hint,
        )


class Unrecoverable(SafedeployError):
    """The platform left the service in a state only a person can judge; nothing is retried."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(what, where=where, hint=hint, exit_code=ExitCode.NEEDS_HUMAN)
