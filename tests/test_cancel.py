"""The cancellation token and what the CLI's signal handler does with it."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from safedeploy import cli
from safedeploy.cancel import Cancelled, CancelToken


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
    with pytest.raises(KeyboardInterrupt):
        cli._Signals().handle(signal.SIGTERM, None)


def test_during_a_deploy_the_first_signal_cancels_and_later_ones_carry_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    signals = cli._Signals()
    signals.phase = "deploy"
    signals.handle(signal.SIGTERM, None)
    signals.handle(signal.SIGINT, None)
    assert signals.cancel.reason == "cancelled by SIGTERM"
    err = capsys.readouterr().err
    assert "cancelling: rolling back" in err
    assert "rollback in progress; carrying on — only SIGKILL stops it" in err


def test_during_a_rollback_no_signal_cancels(capsys: pytest.CaptureFixture[str]) -> None:
    signals = cli._Signals()
    signals.phase = "rollback"
    signals.handle(signal.SIGHUP, None)
    assert not signals.cancel.cancelled
    assert "rollback in progress; carrying on" in capsys.readouterr().err
