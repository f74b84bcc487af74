"""Release records: one per deploy or rollback, written before anything changes.

A record starts `in-progress` and is finished with its outcome, so an interrupted run leaves
evidence the next run can read. Records hold names, images and revisions, never a value.
The store also holds the deploy lease, so two deploys of one service never interleave.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from uuid import uuid4

from safedeploy.errors import Busy, SafedeployError
from safedeploy.files import FILE_MODE, private_folder, read_json, unreadable, write_private
from safedeploy.redact import scrub


class Outcome(StrEnum):
    IN_PROGRESS = "in-progress"
    SUCCEEDED = "succeeded"
    UNCHANGED = "unchanged"
    FAILED = "failed"  # failed before anything changed
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"
    LEFT_FAILED = "left-failed"  # failed with rollback off: a human decides
    SKIPPED = "skipped"  # never started: a dependency failed or a signal came first (not recorded)


@dataclass(frozen=True)
class Release:
    id: str
    service: str
    kind: str  # "deploy" | "rollback"
    time: str
    user: str
    git_commit: str | None
    image: str | None
    owned: tuple[str, ...]
    traffic_before: dict[str, int]
    revision: str | None = None  # the revision this release created or routed to
    outcome: Outcome = Outcome.IN_PROGRESS
    message: str | None = None
    probes: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    diagnosis: dict[str, Any] | None = None  # why it failed: diagnosis.Explanation as a record
    analysis: tuple[dict[str, Any], ...] = ()  # each canary step's figures: analysis.Judgement

    def finished(self, outcome: Outcome, message: str | None = None, **changes: Any) -> Release:
        return replace(self, outcome=outcome, message=message, **changes)


def new_release_id(now: datetime | None = None) -> str:
    """Sortable to the millisecond, unique, valid in a revision name: `20261122-153512-042-3fa2`."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}-{uuid4().hex[:4]}"


def revision_name(service: str, release_id: str) -> str:
    """The one way a new revision is named, on every platform: after the release that made it."""
    return f"{service}-{release_id}"


def who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (OSError, KeyError):
        return "unknown"


def git_commit(directory: Path) -> str | None:
    """The commit of the repository holding the manifest, if any; a deploy is traceable to it."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


class HistoryStore(Protocol):
    """Where the release records and the deploy lease of one service live."""

    def save(self, release: Release) -> Release: ...

    def releases(self) -> list[Release]:
        """All records, oldest first."""
        ...

    def last_succeeded(self) -> Release | None: ...

    def lease(self, service: str, version: str | None = None) -> AbstractContextManager[str | None]:
        """Hold the deploy lease; a second deploy fails fast and names the holder. Yields the
        platform version a plan made at `version` goes on from: `version` itself, unless the
        lease is kept on the service, whose version the lease's own write moves."""
        ...

    def held(self) -> bool:
        """Whether a live deploy holds the lease now (not one left by a process that died)."""
        ...

    def holder(self) -> dict[str, Any] | None:
        """The lease as recorded (see `new_lease`), live or left by a run that was killed."""
        ...

    def unlock(self, lease: dict[str, Any]) -> bool:
        """Remove `lease` if it is still the one recorded (`unlock`); whether it was."""
        ...


def new_lease(ttl: timedelta | None) -> dict[str, Any]:
    """Who holds a lease, as every store records it: user@host and process, since when, until
    when (None: while its process runs), and under GitHub Actions the run's URL and actor."""
    now = datetime.now(UTC)
    lease: dict[str, Any] = {
        "holder": who(),
        "pid": os.getpid(),
        "since": now.isoformat(timespec="seconds"),
    }
    if ttl is not None:
        lease["expires"] = (now + ttl).isoformat(timespec="seconds")
    run, actor = os.environ.get("GITHUB_RUN_ID"), os.environ.get("GITHUB_ACTOR")
    if run:
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        lease["run"] = f"{server}/{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{run}"
    if actor:
        lease["actor"] = actor
    return lease


def lease_holder(lease: dict[str, Any]) -> str:
    """`alice@ci-7 (pid 42, https://github.com/o/r/actions/runs/9 by alice)`: whom to ask."""
    extra = [f"pid {lease['pid']}"] if "pid" in lease else []
    if "run" in lease:
        extra.append(f"{lease['run']} by {lease.get('actor', 'unknown')}")
    return f"{lease.get('holder', 'unknown')}" + (f" ({', '.join(extra)})" if extra else "")


def expired(lease: dict[str, Any]) -> bool:
    """Past its stated expiry (a lease without one expires with its process: `is_stale`)."""
    try:
        return datetime.fromisoformat(str(lease["expires"])) < datetime.now(UTC)
    except (KeyError, ValueError):
        return False


def last_succeeded(releases: list[Release]) -> Release | None:
    done = [r for r in releases if r.outcome is Outcome.SUCCEEDED]
    return done[-1] if done else None


def unfinished(releases: list[Release]) -> Release | None:
    """The newest release when it never ended: interrupted, unless its holder still runs."""
    return releases[-1] if releases and releases[-1].outcome is Outcome.IN_PROGRESS else None


def encode(release: Release) -> str:
    """The one record format every store writes: JSON, keys sorted, through the scrubber."""
    return scrub(json.dumps(asdict(release), indent=2, sort_keys=True)) + "\n"


def decode(text: str) -> Release:
    data = json.loads(text)
    data["outcome"] = Outcome(data["outcome"])
    data["owned"] = tuple(data["owned"])
    data["probes"] = tuple(data["probes"])
    data["analysis"] = tuple(data.get("analysis", ()))
    data.pop("manifest_digest", None)  # records before 0.x kept a digest; it is not read
    return Release(**data)


class FolderHistory:
    """Release records and the deploy lease of one service, in a local folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, release: Release) -> Release:
        _write(self.folder / f"{release.id}.json", encode(release))
        return release

    def releases(self) -> list[Release]:
        """All records, oldest first."""
        if not self.folder.is_dir():
            return []
        records = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                records.append(decode(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise unreadable(path, "a release record", exc) from None
        return records

    def last_succeeded(self) -> Release | None:
        return last_succeeded(self.releases())

    @contextmanager
    def lease(self, service: str, version: str | None = None) -> Iterator[str | None]:
        """Hold the deploy lease; a second deploy fails fast and names the holder."""
        private_folder(self.folder)
        path = self.folder / "lease"
        holder = new_lease(None)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
                break
            except FileExistsError:
                current = _read_lease(path)
                if current and is_stale(current):
                    path.unlink(missing_ok=True)
                    continue
                current = current or {}
                raise Busy(
                    service,
                    lease_holder(current),
                    current.get("since"),
                    where=str(path),
                    hint="wait for it to finish; if it was killed, `safedeploy unlock` releases "
                    "the lease",
                ) from None
        else:
            raise SafedeployError(f"could not take the deploy lease for {service}", where=str(path))
        with os.fdopen(fd, "w") as handle:
            json.dump(holder, handle)
        try:
            yield version
        finally:
            path.unlink(missing_ok=True)

    def held(self) -> bool:
        current = _read_lease(self.folder / "lease")
        return current is not None and not is_stale(current)

    def holder(self) -> dict[str, Any] | None:
        return _read_lease(self.folder / "lease")

    def unlock(self, lease: dict[str, Any]) -> bool:
        if _read_lease(self.folder / "lease") != lease:
            return False
        (self.folder / "lease").unlink(missing_ok=True)
        return True

    # A platform without revisions (App Runner) records each revision's configuration here.

    def config_names(self) -> list[str]:
        """The revisions with a recorded configuration, in name order (oldest first)."""
        return sorted(path.stem for path in (self.folder / "configs").glob("*.json"))

    def config(self, revision: str) -> dict[str, Any] | None:
        path = self.folder / "configs" / f"{revision}.json"
        return read_json(path, "a recorded configuration") if path.is_file() else None

    def save_config(self, revision: str, config: dict[str, Any]) -> None:
        _write(self.folder / "configs" / f"{revision}.json", json.dumps(config, sort_keys=True))


def _write(path: Path, text: str) -> None:
    """Whole or not at all, private, and through the scrubber."""
    write_private(path, scrub(text))


def _read_lease(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_stale(lease: dict[str, Any]) -> bool:
    """A lease left by a process of this machine that no longer runs can be taken over."""
    if not str(lease.get("holder", "")).endswith(f"@{socket.gethostname()}"):
        return False
    try:
        os.kill(int(lease["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False
