"""The provider protocol: what the core asks of a platform, and what a platform can do.

A provider reads the live service into the neutral model, carries out the operations the core
decided (a candidate, a traffic split, a tag removed) and reports facts and errors as data. It
decides nothing: finding codes, severities, exit codes, revision names and the wording of
refusals live in the core. It keeps no state between calls that a later call depends on:
whatever `wait_ready` needs, `apply` returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from safedeploy.cancel import NEVER, CancelToken
from safedeploy.facts import Diagnosis, Fact, LiveService, Revision, TrafficFigures
from safedeploy.model import ServiceSpec


@dataclass(frozen=True)
class Capabilities:
    traffic_split: bool  # can serve a revision to a share of traffic (canary steps)
    candidate_url: bool  # a new revision can be probed before it gets any traffic
    owned_on_service: bool  # keeps the owned names on the service itself; else history does
    revision_name_limit: int | None = None  # the longest revision name the platform takes


@dataclass(frozen=True)
class Candidate:
    """The core's decision to make a new revision, carried out as it is."""

    version: str  # the platform version the plan read (etag, fingerprint): refused if it moved
    target: ServiceSpec  # the whole merged configuration
    owned: frozenset[str]  # the names this release owns
    revision: str  # the name the core gave the new revision
    release_id: str


@dataclass(frozen=True)
class Pending:
    """A candidate on its way up: what `wait_ready` needs, so the provider keeps nothing."""

    candidate: Candidate
    revision: Revision
    operation: Any = field(default=None, compare=False, repr=False)  # the platform's handle


class Provider(Protocol):
    """A platform adapter. Every mutating call is guarded by the version the plan saw."""

    capabilities: Capabilities

    def read(self) -> LiveService:
        """The service as it runs now (spec None when it does not exist yet)."""
        ...

    def preflight(self, target: ServiceSpec) -> list[Fact]:
        """Read-only checks of what apply would need (secrets exist, access granted, values the
        platform takes)."""
        ...

    def apply(self, candidate: Candidate) -> Pending:
        """Create the candidate with no traffic; raise VersionMoved if the service left
        `candidate.version`."""
        ...

    def wait_ready(self, pending: Pending, cancel: CancelToken) -> Revision:
        """Block until the revision can serve; raise with the platform's reason when it cannot,
        Cancelled when `cancel` is set first (the revision may still come up)."""
        ...

    def route(self, split: Mapping[str, int], served: ServiceSpec | None = None) -> None:
        """Serve the given split (revision name -> percent, summing to 100). `served`: when the
        split puts back what served at plan time, that configuration as read then (its values
        only in memory), for a platform that must send a configuration again rather than move
        traffic."""
        ...

    def retire(self, keep: Revision, cancel: CancelToken = NEVER) -> None:
        """After success: drop the candidate tag, stop what no longer serves; where the platform
        still finishes the deploy (ECS Express bakes), wait for it, ending when `cancel` is set."""
        ...

    def discard(self, candidate: Revision) -> None:
        """After failure: take the candidate out of the way, keeping it as evidence."""
        ...


@runtime_checkable
class Previews(Protocol):
    """A provider that can make an existing revision answer alone, with no traffic, so that
    `rollback --to` probes it before anything moves (not App Runner: it runs one configuration)."""

    def preview(self, revision: Revision) -> Revision:
        """The revision reachable on its own URL; `discard` takes that away again."""
        ...


@runtime_checkable
class Validates(Protocol):
    """A provider whose platform can check an update without making it (`plan --validate`)."""

    def validate(self, candidate: Candidate) -> list[Fact]:
        """REFUSED facts for what the platform refuses in the update apply would send."""
        ...


@runtime_checkable
class Diagnoses(Protocol):
    """A provider that can report what the platform recorded about a failed revision: its
    conditions, the operation's error and the revision's own log lines since `since`."""

    def diagnose(self, revision: str, since: datetime, cancel: CancelToken) -> Diagnosis:
        """Facts only; what could not be read goes in `unread`, never raised."""
        ...


@runtime_checkable
class Measures(Protocol):
    """A provider that can count what a revision answered in a window (its requests, 5xx and
    latency), so the core can judge a canary step by real traffic."""

    def traffic(
        self, revision: str, start: datetime, end: datetime, *, latency: bool = False
    ) -> TrafficFigures:
        """The platform's figures as they are, however few; `latency`: read the p95 too."""
        ...
