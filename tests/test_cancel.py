"""The cancellation token and what a command's signal handler does with it."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from safedeploy.cancel import Cancelled, CancelToken
from safedeploy.session import Signals


def test_wait_ends_as_soon_as_another_thread_cancels() -> None:
    token = CancelToken()
    threading.Timer(0.05, token.cancel, args=("cancelled by SIGTERM",)).start()
    started = time.monotonic()
    assert token.wait(30)
    assert time.monotonic() - started < 10
    with pytest.raises(Cancelled, match="cancelled by SIGTERM"):
        token.sleep(30)


def test_the_first_reason_stays() -> None:
    token = CancelToken()
    assert not token.wait(0)
    token.check()
    token.cancel("cancelled by SIGINT")
    token.cancel("cancelled by SIGTERM")
    assert token.reason == "cancelled by SIGINT"


def test_a_signal_before_anything_changes_stops_there() -> None:
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        Signals(said.append).handle(signal.SIGTERM, None)
    assert said == []


def test_during_a_deploy_the_first_signal_cancels_and_later_ones_carry_on() -> None:
    said: list[str] = []
    signals = Signals(said.append)
    signals.phase = "deploy"
    signals.handle(signal.SIGTERM, None)
    signals.handle(signal.SIGINT, None)
    assert signals.cancel.reason == "cancelled by SIGTERM"
    assert said == [
        "cancelling: rolling back what this deploy changed …",
        "rollback in progress; carrying on — only SIGKILL stops it",
    ]


def test_during_a_rollback_no_signal_cancels() -> None:
    said: list[str] = []
    signals = Signals(said.append)
    signals.phase = "rollback"
    signals.handle(signal.SIGHUP, None)
    assert not signals.cancel.cancelled
    assert said == ["rollback in progress; carrying on — only SIGKILL stops it"]
