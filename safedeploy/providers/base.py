"""The narrow surface the deployer drives, and what each platform can and cannot do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from safedeploy.cancel import CancelToken
from safedeploy.lint import Finding
from safedeploy.model import LiveService, Revision, ServiceSpec


@dataclass(frozen=True)
class Capabilities:
    traffic_split: bool  # can serve a revision to a share of traffic (canary steps)
    candidate_url: bool  # a new revision can be probed before it gets any traffic


class Provider(Protocol):
    """A platform adapter. Every mutating call is guarded by the fingerprint the plan saw."""

    capabilities: Capabilities

    def read(self) -> LiveService:
        """The service as it runs now (spec None when it does not exist yet)."""
        ...

    def preflight(self, target: ServiceSpec) -> list[Finding]:
        """Read-only checks of what apply would need (secrets exist, access granted)."""
        ...

    def apply(
        self, fingerprint: str, target: ServiceSpec, owned: frozenset[str], release_id: str
    ) -> Revision:
        """Create the new revision with no traffic; refuse if the service left `fingerprint`."""
        ...

    def wait_ready(self, revision: Revision, cancel: CancelToken) -> Revision:
        """Block until the revision can serve; raise with the platform's reason when it cannot,
        Cancelled when `cancel` is set first (the revision may still come up)."""
        ...

    def route(self, split: Mapping[str, int]) -> None:
        """Serve the given split (revision name -> percent, summing to 100)."""
        ...

    def retire(self, keep: Revision) -> None:
        """After success: drop the candidate tag, stop what no longer serves."""
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

    def validate(
        self, fingerprint: str, target: ServiceSpec, owned: frozenset[str]
    ) -> list[Finding]:
        """Findings for what the platform refuses in the update apply would send."""
        ...
