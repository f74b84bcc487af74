"""Cancellation as a token: a signal sets it, the deployer checks it between steps, waits end early.

Nothing is injected into threads: each wait asks the token, so a step is never cut in half and a
rollback, which waits with a token nobody cancels, always runs to its end.
"""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised at a step boundary once the token is set; `reason` says who cancelled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CancelToken:
    """Set once (by the first signal), read by every thread; a fresh token is never cancelled."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "cancelled"

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as the token is cancelled."""
        return self._event.wait(max(0.0, seconds))

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.reason)

    def sleep(self, seconds: float) -> None:
        """A sleep for a retry loop: it ends early, raising Cancelled, when the token is set."""
        self.wait(seconds)
        self.check()


NEVER = CancelToken()  # for waits that must run to their end (a rollback's); nothing cancels it
