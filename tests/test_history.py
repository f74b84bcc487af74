"""Release records and the deploy lease in a local folder."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safedeploy.errors import SafedeployError
from safedeploy.history import FolderHistory, Outcome, Release, new_release_id, who


def release(id_: str, outcome: Outcome = Outcome.SUCCEEDED) -> Release:
    return Release(
        id=id_,
        service="api",
        kind="deploy",
        time="2026-11-22T10:00:00+00:00",
        user="me@host",
        git_commit=None,
        image="img:1",
        owned=("A", "B"),
        traffic_before={"api-1": 100},
        revision=f"api-{id_}",
        outcome=outcome,
    )


def test_release_ids_sort_in_time_order_within_one_second() -> None:
    start = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
    ids = [new_release_id(start + timedelta(milliseconds=ms)) for ms in (1, 20, 300, 999)]
    assert ids == sorted(ids)
    assert all(len(i) <= 24 and i == i.lower() for i in ids)


def test_records_round_trip_oldest_first(tmp_path: Path) -> None:
    store = FolderHistory(tmp_path)
    store.save(release("20261122-100000-002-aaaa", Outcome.ROLLED_BACK))
    store.save(release("20261122-100000-001-bbbb"))
    assert [r.id for r in store.releases()] == [
        "20261122-100000-001-bbbb",
        "20261122-100000-002-aaaa",
    ]
    assert store.releases()[1].outcome is Outcome.ROLLED_BACK
    assert store.last_succeeded() == release("20261122-100000-001-bbbb")


def test_finishing_a_record_replaces_it(tmp_path: Path) -> None:
    store = FolderHistory(tmp_path)
    started = store.save(release("r1", Outcome.IN_PROGRESS))
    store.save(started.finished(Outcome.SUCCEEDED, "ok"))
    assert [(r.outcome, r.message) for r in store.releases()] == [(Outcome.SUCCEEDED, "ok")]


def test_second_lease_fails_fast_naming_the_holder(tmp_path: Path) -> None:
    store = FolderHistory(tmp_path)
    with store.lease("api"), pytest.raises(SafedeployError) as raised, store.lease("api"):
        pass
    assert who() in str(raised.value)
    assert "another deploy of api is running" in str(raised.value)
    with store.lease("api"):  # released after the first holder finished
        pass


def test_lease_left_by_a_dead_process_of_this_machine_is_taken_over(tmp_path: Path) -> None:
    store = FolderHistory(tmp_path)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / "lease").write_text(json.dumps({"holder": who(), "pid": dead, "since": "x"}))
    with store.lease("api"):
        assert json.loads((tmp_path / "lease").read_text())["pid"] == os.getpid()


def test_lease_held_on_another_machine_is_respected(tmp_path: Path) -> None:
    store = FolderHistory(tmp_path)
    (tmp_path / "lease").write_text(json.dumps({"holder": "ci@runner-7", "pid": 1, "since": "x"}))
    with pytest.raises(SafedeployError, match="ci@runner-7"), store.lease("api"):
        pass
