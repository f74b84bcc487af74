"""The provider-neutral types every step shares: what a service runs and what is live.

Frozen, so a plan built from them cannot change under the executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Platform(StrEnum):
    CLOUDRUN = "cloudrun"
    APPRUNNER = "apprunner"
    LOCAL = "local"


@dataclass(frozen=True, order=True)
class SecretRef:
    """A reference to a secret the platform holds; never its value.

    `secret` is a Secret Manager name or resource name (cloudrun), a Secrets Manager / SSM ARN
    (apprunner), or a key of the local secret source (local).
    """

    secret: str
    version: str = "latest"

    def __str__(self) -> str:
        return f"secret:{self.secret}@{self.version}"


EnvValue = str | SecretRef


@dataclass(frozen=True)
class ServiceSpec:
    """The part of a service's configuration safedeploy manages.

    `settings` holds only the platform settings known to safedeploy (see manifest.Settings),
    keyed by their manifest names; a setting absent here is left as it is live.
    """

    image: str | None = None
    command: tuple[str, ...] = ()
    env: Mapping[str, EnvValue] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Revision:
    """One deployed version of a service and the share of traffic it serves."""

    name: str
    percent: int = 0
    ready: bool = True
    url: str | None = None  # where this revision alone answers (a tag URL, a local port)
    image: str | None = None
    created: str | None = None
    message: str | None = None  # why it is not ready, as the platform says


@dataclass(frozen=True)
class LiveService:
    """What the platform runs now, as read just before planning."""

    name: str
    spec: ServiceSpec | None  # None: the service does not exist yet
    fingerprint: str  # etag or a hash of the live configuration; apply refuses if it moved
    owned: frozenset[str] = frozenset()  # names the last safedeploy release declared
    revisions: tuple[Revision, ...] = ()
    url: str | None = None

    @property
    def exists(self) -> bool:
        return self.spec is not None

    @property
    def traffic(self) -> dict[str, int]:
        """The serving split: revision name -> percent, for revisions that serve any."""
        return {r.name: r.percent for r in self.revisions if r.percent > 0}
