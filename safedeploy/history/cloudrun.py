"""Release history and the deploy lease kept on the Cloud Run service itself, so every machine (a
fresh CI runner) sees them.

A deploy records itself when it finishes, as JSON in the service annotation
`safedeploy.dev/releases` (the last 20); until then its revision's `safedeploy.dev/release`
annotation is the evidence, listed as in-progress. A deploy that failed before changing anything
leaves no record.

The lease is the annotation `safedeploy.dev/lease` (holder, process, CI run, since, expiry),
written against the etag just read, so of two runners exactly one takes it; the other fails
before any write of its own. It is removed on every ending; one left by a killed run expires
after longer than the longest deploy its manifest allows, and `safedeploy unlock` removes it
sooner. A first deploy has no service to hold it yet: it takes the local lease instead, and two
machines creating one service at once are told apart by the create itself (409).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from safedeploy.errors import Busy, SafedeployError, VersionMoved
from safedeploy.history import (
    HistoryStore,
    Outcome,
    Release,
    expired,
    is_stale,
    last_succeeded,
    lease_holder,
    new_lease,
)
from safedeploy.providers.cloudrun.client import Google, errors
from safedeploy.providers.cloudrun.mapping import RELEASE, TRAFFIC_BEFORE
from safedeploy.redact import scrub

if TYPE_CHECKING:
    from safedeploy.manifest import Manifest

RELEASES = "safedeploy.dev/releases"
LEASE = "safedeploy.dev/lease"
KEEP_RELEASES = 20
_MESSAGE_LIMIT = 500
_WRITES = 3  # tries of a record's write when another write wins the etag
_SLACK = timedelta(minutes=10)  # on top of the longest deploy: API calls between the waits


def lease_ttl(manifest: Manifest, ready_timeout: float) -> timedelta:
    """Longer than the longest deploy the manifest allows: the candidate and every canary step
    each wait up to `ready_timeout`, take traffic for the analysis interval and run every probe
    to its timeout, then a last write."""
    rounds = 1 + len(manifest.rollout.steps)
    analysis = manifest.rollout.analysis
    per_round = sum(p.timeout for p in manifest.probes) + (analysis.interval if analysis else 0)
    return timedelta(seconds=(rounds + 1) * ready_timeout + rounds * per_round) + _SLACK


class CloudRunHistory:
    """Records and the lease in the annotations of `resource` (a Cloud Run service), read and
    written through the provider's clients; `local` holds the lease of a first deploy."""

    def __init__(
        self, google: Google, resource: str, local: HistoryStore, lease_for: timedelta
    ) -> None:
        self.google = google
        self.resource = resource
        self.service = resource.rsplit("/", 1)[-1]
        self.local = local
        self.lease_for = lease_for

    def save(self, release: Release) -> Release:
        if release.outcome is not Outcome.IN_PROGRESS and release.revision is not None:
            self.record(release)
        return release

    def releases(self) -> list[Release]:
        """Finished releases from the service's records; interrupted ones from revisions alone."""
        service = self.google.service(self.resource)
        if service is None:
            return []
        found = {r.id: r for r in _records(service, self.service)}
        for revision in self.google.revisions_of(self.resource):
            release_id = revision.annotations.get(RELEASE)
            if release_id and release_id not in found:
                found[release_id] = _interrupted(self.service, release_id, revision)
        return sorted(found.values(), key=lambda r: r.id)

    def record(self, release: Release) -> None:
        """Add a finished release to the service's records, without waiting for the operation:
        the record is stored once the API accepts the write. Retried when another write wins."""
        for _ in range(_WRITES):
            service = self.google.existing(self.resource)
            records = [_record(r) for r in _records(service, self.service) if r.id != release.id]
            records.append(_record(release))
            service.annotations[RELEASES] = json.dumps(
                records[-KEEP_RELEASES:], separators=(",", ":"), sort_keys=True
            )
            try:
                with errors(self.resource):
                    self.google.call(self.google.services.update_service, service=service)
                return
            except VersionMoved:
                continue
            except SafedeployError as exc:
                raise SafedeployError(
                    f"release {release.id} ended {release.outcome}, but its record could "
                    f"not be written: {exc.what}",
                    where=self.resource,
                ) from exc
        raise SafedeployError(
            f"release {release.id} ended {release.outcome}, but the service kept changing "
            "while its record was written",
            where=self.resource,
        )

    def last_succeeded(self) -> Release | None:
        return last_succeeded(self.releases())

    @contextmanager
    def lease(self, service: str, version: str | None = None) -> Iterator[str | None]:
        """Hold the deploy lease on the service (the local one before it exists). The lease's
        write is made against `version` when one is given, so it also proves that nothing else
        changed the service since the plan; the etag it leaves is the one to go on from."""
        if self.google.service(self.resource) is None:
            with self.local.lease(service, version) as unchanged:
                yield unchanged
            return
        mine = {**new_lease(self.lease_for), "token": uuid4().hex}
        after = self._take(service, mine, version)
        try:
            yield after
        finally:
            self._release(mine)

    def _take(self, service: str, mine: dict[str, Any], version: str | None) -> str:
        """Write the lease against the etag just read, or against `version`, the one a plan
        read (then any other change since is VersionMoved); a live one held by another names it.
        Returns the etag after the write."""
        for _ in range(_WRITES):
            live = self.google.existing(self.resource)
            current = _lease_of(live)
            if current is not None and not (expired(current) or is_stale(current)):
                raise Busy(
                    service,
                    lease_holder(current),
                    current.get("since"),
                    where=self.resource,
                    hint=f"wait for it to finish; if it was killed, `safedeploy unlock` releases "
                    f"the lease (it expires at {current.get('expires')})",
                )
            if version is not None and live.etag != version:
                raise VersionMoved(where=self.resource)
            live.annotations[LEASE] = json.dumps(mine, sort_keys=True)
            try:
                return self._write(live)
            except VersionMoved:  # read again: another lease is Busy, another change moved it
                continue
        raise SafedeployError(
            f"could not take the deploy lease: {service} kept changing", where=self.resource
        )

    def _release(self, mine: dict[str, Any]) -> None:
        """Remove the lease if it is still ours (`unlock` may have let another run take it)."""
        for _ in range(_WRITES):
            if self.unlock(mine):
                return
            if _lease_of(self.google.existing(self.resource)) != mine:
                return
        raise SafedeployError(
            "the deploy lease could not be released: the service kept changing",
            where=self.resource,
            hint="`safedeploy unlock` releases it",
        )

    def held(self) -> bool:
        service = self.google.service(self.resource)
        current = _lease_of(service) if service is not None else None
        if current is None:
            return self.local.held()
        return not (expired(current) or is_stale(current))

    def holder(self) -> dict[str, Any] | None:
        service = self.google.service(self.resource)
        return (_lease_of(service) if service is not None else None) or self.local.holder()

    def unlock(self, lease: dict[str, Any]) -> bool:
        """Remove `lease` with one write against the etag read (no traffic, no tag moves); with
        none on the service, the local lease of a first deploy."""
        service = self.google.service(self.resource)
        current = _lease_of(service) if service is not None else None
        if current is None:
            return self.local.unlock(lease)
        if current != lease:
            return False
        del service.annotations[LEASE]
        try:
            self._write(service)
        except VersionMoved:
            return False
        return True

    def _write(self, service: Any) -> str:
        """One write of the service's annotations against its etag; the etag it leaves, from the
        operation's metadata (the Service as written), else from its end."""
        with errors(self.resource):
            operation = self.google.call(self.google.services.update_service, service=service)
            written = operation.metadata
            if written is None or not written.etag:
                written = self.google.wait(operation)
        return str(written.etag)


def _lease_of(service: Any) -> dict[str, Any] | None:
    """The lease on the service; one that does not parse is no lease."""
    try:
        lease = json.loads(service.annotations.get(LEASE, "null"))
    except ValueError:
        return None
    return lease if isinstance(lease, dict) else None


def _record(release: Release) -> dict[str, Any]:
    """What a release keeps on the service: no probe transcripts or diagnosis (annotations are
    small; `why` reads the platform again), owned names live elsewhere.

    Its message went through the scrubber, as every record does: a platform error may echo a value.
    """
    record = asdict(release)
    del record["probes"], record["owned"], record["service"], record["diagnosis"]
    message = scrub(release.message) if release.message else release.message
    if message and len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 1] + "…"
    record["message"] = message
    return record


def _records(service: Any, name: str) -> list[Release]:
    """The records in `safedeploy.dev/releases`; one that does not parse is left out."""
    try:
        raw = json.loads(service.annotations.get(RELEASES, "[]"))
        return [
            Release(**{**r, "service": name, "outcome": Outcome(r["outcome"]), "owned": ()})
            for r in (_without_digest(r) for r in raw)
        ]
    except (ValueError, TypeError, KeyError):
        return []


def _without_digest(record: dict[str, Any]) -> dict[str, Any]:
    """Records written before digests were dropped carry `manifest_digest`; it is not read."""
    return {k: v for k, v in record.items() if k != "manifest_digest"}


def _interrupted(service: str, release_id: str, revision: Any) -> Release:
    """A revision safedeploy made whose release never recorded an end."""
    container = next(iter(revision.containers), None)
    try:
        before = json.loads(revision.annotations.get(TRAFFIC_BEFORE, "{}"))
    except ValueError:
        before = {}
    return Release(
        id=release_id,
        service=service,
        kind="deploy",
        time=revision.create_time.isoformat(timespec="seconds"),
        user="unknown",
        git_commit=None,
        image=container.image if container is not None else None,
        owned=(),
        traffic_before=before if isinstance(before, dict) else {},
        revision=revision.name.rsplit("/", 1)[-1],
    )
