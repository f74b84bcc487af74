"""Release history kept on the Cloud Run service itself, so every machine (a fresh CI runner)
sees it.

A deploy records itself when it finishes, as JSON in the service annotation
`safedeploy.dev/releases` (the last 20); until then its revision's `safedeploy.dev/release`
annotation is the evidence, listed as in-progress. A deploy that failed before changing anything
leaves no record. The lease is a local one (FolderHistory's): across machines, the etag of each
write is what keeps two deploys from overwriting each other.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any

from safedeploy.errors import SafedeployError, VersionMoved
from safedeploy.history import HistoryStore, Outcome, Release, last_succeeded
from safedeploy.providers.cloudrun.client import Google, errors
from safedeploy.providers.cloudrun.mapping import RELEASE, TRAFFIC_BEFORE
from safedeploy.redact import scrub

RELEASES = "safedeploy.dev/releases"
KEEP_RELEASES = 20
_MESSAGE_LIMIT = 500
_WRITES = 3  # tries of a record's write when another write wins the etag


class CloudRunHistory:
    """Records in the annotations of `resource` (a Cloud Run service), read and written through
    the provider's clients; the lease from `local`."""

    def __init__(self, google: Google, resource: str, local: HistoryStore) -> None:
        self.google = google
        self.resource = resource
        self.service = resource.rsplit("/", 1)[-1]
        self.local = local

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

    def lease(self, service: str) -> AbstractContextManager[None]:
        return self.local.lease(service)

    def held(self) -> bool:
        return self.local.held()


def _record(release: Release) -> dict[str, Any]:
    """What a release keeps on the service: no probe transcripts, owned names live elsewhere.

    Its message went through the scrubber, as every record does: a platform error may echo a value.
    """
    record = asdict(release)
    del record["probes"], record["owned"], record["service"]
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
