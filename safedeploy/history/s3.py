"""Release records, revision configurations and the deploy lease in S3 (`history: s3://B/P`).

Deploys of one service from two machines must not interleave, so the lease is an S3
conditional write: PutObject with If-None-Match: * succeeds for exactly one writer. A lease
past its expiry was left by a run that crashed; the next deploy takes it over with If-Match
on its ETag, so no lock ever needs a human to clear it.

Layout under s3://BUCKET/PREFIX/SERVICE/: releases/ID.json (history.encode), configs/NAME.json,
lease.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from safedeploy.aws import Clients, aws_errors, error_code
from safedeploy.errors import Busy, SafedeployError
from safedeploy.history import (
    Outcome,
    Release,
    decode,
    encode,
    expired,
    is_stale,
    lease_holder,
    new_lease,
)
from safedeploy.redact import scrub

LEASE_TTL = timedelta(hours=1)  # longer than any deploy's bounded waits
# What S3 answers a conditional write that lost: 412, or 409 when two raced at once.
_LOST = ("PreconditionFailed", "ConditionalRequestConflict")


class S3History:
    """The HistoryStore of one service in S3; objects are whole JSON documents."""

    def __init__(self, url: str, service: str, region: str | None, clients: Clients) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise SafedeployError(f"{url!r} names no bucket", hint="write s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = "/".join(p for p in (prefix.strip("/"), service) if p)
        self.region = region
        self.clients = clients

    @property
    def _s3(self) -> Any:
        return self.clients.get("s3", self.region)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- objects -----------------------------------------------------------------------------

    def _get(self, key: str) -> tuple[str, str] | None:
        """The object's text and ETag, or None when there is none."""
        with aws_errors("read the history", self._where(key)):
            try:
                found = self._s3.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) == "NoSuchKey":
                    return None
                raise
            return found["Body"].read().decode(), str(found["ETag"])

    def _put(self, key: str, text: str, **condition: str) -> str | None:
        """Write the object if `condition` holds: its ETag, or None when another writer won."""
        with aws_errors("write the history", self._where(key)):
            try:
                done = self._s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=text.encode(),
                    ContentType="application/json",
                    **condition,
                )
            except ClientError as exc:
                if condition and error_code(exc) in _LOST:
                    return None
                raise
            return str(done["ETag"])

    def _names(self, folder: str) -> list[str]:
        """The object names under `folder`/ without their `.json`, sorted."""
        start = self._key(folder) + "/"
        names: list[str] = []
        request = {"Bucket": self.bucket, "Prefix": start}
        with aws_errors("list the history", self._where(start)):
            while True:
                page = self._s3.list_objects_v2(**request)
                names += [
                    o["Key"][len(start) :].removesuffix(".json") for o in page.get("Contents", [])
                ]
                if not page.get("IsTruncated"):
                    return sorted(names)
                request["ContinuationToken"] = page["NextContinuationToken"]

    # -- the HistoryStore protocol ----------------------------------------------------------

    def save(self, release: Release) -> Release:
        self._put(self._key(f"releases/{release.id}.json"), encode(release))
        return release

    def releases(self) -> list[Release]:
        """All records, oldest first (release ids sort by time)."""
        return [self._release(name) for name in self._names("releases")]

    def last_succeeded(self) -> Release | None:
        """Newest first, stopping at the first success: one or two reads, not the whole history."""
        for name in reversed(self._names("releases")):
            release = self._release(name)
            if release.outcome is Outcome.SUCCEEDED:
                return release
        return None

    def _release(self, name: str) -> Release:
        found = self._get(self._key(f"releases/{name}.json"))
        if found is None:
            raise SafedeployError("a release record vanished while it was read", where=name)
        return decode(found[0])

    def config_names(self) -> list[str]:
        return self._names("configs")

    def config(self, revision: str) -> dict[str, Any] | None:
        found = self._get(self._key(f"configs/{revision}.json"))
        return json.loads(found[0]) if found else None

    def save_config(self, revision: str, config: dict[str, Any]) -> None:
        self._put(self._key(f"configs/{revision}.json"), scrub(json.dumps(config, sort_keys=True)))

    def held(self) -> bool:
        found = self._get(self._key("lease.json"))
        if found is None:
            return False
        current = json.loads(found[0])
        return not (expired(current) or is_stale(current))

    def holder(self) -> dict[str, Any] | None:
        found = self._get(self._key("lease.json"))
        return json.loads(found[0]) if found else None

    def unlock(self, lease: dict[str, Any]) -> bool:
        key = self._key("lease.json")
        found = self._get(key)
        if found is None or json.loads(found[0]) != lease:
            return False
        with aws_errors("release the deploy lease", self._where(key)):
            try:
                self._s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=found[1])
            except ClientError as exc:
                if error_code(exc) not in (*_LOST, "NoSuchKey"):
                    raise
                return False
        return True

    @contextmanager
    def lease(self, service: str, version: str | None = None) -> Iterator[str | None]:
        """Hold the deploy lease; a second deploy fails fast and names the holder."""
        key = self._key("lease.json")
        etag = self._take(service, key, json.dumps(new_lease(LEASE_TTL)))
        try:
            yield version
        finally:
            with aws_errors("release the deploy lease", self._where(key)):
                try:
                    self._s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
                except ClientError as exc:
                    # Gone or replaced: a later run took the expired lease over and holds it.
                    if error_code(exc) not in (*_LOST, "NoSuchKey"):
                        raise

    def _take(self, service: str, key: str, text: str) -> str:
        """Create the lease, or take over one that expired; else name who holds it."""
        for _ in range(2):
            etag = self._put(key, text, IfNoneMatch="*")
            if etag is not None:
                return etag
            found = self._get(key)
            if found is None:
                continue  # released between the two calls
            current, current_etag = json.loads(found[0]), found[1]
            if expired(current) or is_stale(current):  # a dead process's, on this machine
                etag = self._put(key, text, IfMatch=current_etag)
                if etag is not None:
                    return etag
            raise Busy(
                service,
                lease_holder(current),
                current.get("since"),
                where=self._where(key),
                hint=f"wait for it to finish; a lease left by a killed run expires at "
                f"{current.get('expires')}, or `safedeploy unlock` releases it now",
            )
        raise SafedeployError(f"could not take the deploy lease for {service}", where=key)
