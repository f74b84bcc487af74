"""The provider-neutral types every step shares: what a manifest declares and a service runs.

What a provider reports about a service (what is live, its problems, why it failed, its traffic)
is in `facts`. Frozen, so a plan built from them cannot change under the executor.
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
