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
    ECS_EXPRESS = "ecs-express"
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
    busy: str | None = None  # a platform operation running on the service now, as it names it

    @property
    def exists(self) -> bool:
        return self.spec is not None

    @property
    def traffic(self) -> dict[str, int]:
        """The serving split: revision name -> percent, for revisions that serve any."""
        return {r.name: r.percent for r in self.revisions if r.percent > 0}


class Problem(StrEnum):
    """What a provider found wrong when it looked, before any change; the core judges it."""

    SECRET_MISSING = "secret-missing"  # the secret, or the version referenced, does not exist
    SECRET_DISABLED = "secret-disabled"  # the version exists but cannot be read in its state
    NOT_GRANTED = "not-granted"  # nothing found lets the service's identity read the secret
    NOT_CHECKED = "not-checked"  # a check could not be made (no permission, nothing to check as)
    UNSUPPORTED = "unsupported"  # a value the platform cannot take as written
    UNREACHABLE = "unreachable"  # a value points at what the service's network cannot reach
    REFUSED = "refused"  # the platform refused the update when asked to check it (validate)


@dataclass(frozen=True)
class Fact:
    """One finding of a provider, as data: codes, severities and wording are the core's."""

    problem: Problem
    key: str | None  # the manifest key: "secrets.NAME", "env.NAME", "settings.cpu", "image"
    detail: str  # what was found, in the platform's terms (never a value)
    remedy: str | None = None  # the platform's own way to fix it (a gcloud/aws command)
