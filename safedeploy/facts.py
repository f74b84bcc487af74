"""What a provider reports: the service as it runs, what it found wrong, why a revision failed,
and the traffic a revision served. Data only: the core judges it.

Apart from `model` so that `lint` and `--help` start without building these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from safedeploy.model import ServiceSpec


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


@dataclass(frozen=True)
class Condition:
    """A platform's own status of a revision (Cloud Run's `ContainerHealthy`, `Ready`)."""

    type: str
    state: str | None = None  # as the platform says it: CONDITION_FAILED, False, ...
    reason: str | None = None
    message: str | None = None  # untrusted text: the core cleans it before showing it


@dataclass(frozen=True)
class LogLine:
    """One line a revision wrote, as the platform stored it; untrusted text."""

    time: str | None  # ISO 8601 when the platform keeps one
    severity: str | None  # the platform's word (ERROR, WARNING, ...); None when it keeps none
    text: str


@dataclass(frozen=True)
class Unread:
    """What a provider could not read, and what reading it needs (a permission, an API)."""

    what: str  # "Cloud Logging entries of revision api-0001"
    needs: str  # "logging.logEntries.list (roles/logging.viewer)"
    detail: str  # what the platform answered, in its terms (never a value)


@dataclass(frozen=True)
class Diagnosis:
    """What a platform recorded about a revision that failed: facts only, no verdict."""

    source: str  # where it was read: "Cloud Run + Cloud Logging", "local process"
    revision: str
    status: str | None = None  # the operation's error or the process's exit, as reported
    conditions: tuple[Condition, ...] = ()
    lines: tuple[LogLine, ...] = ()  # oldest first
    unread: tuple[Unread, ...] = ()


@dataclass(frozen=True)
class TrafficFigures:
    """What a revision answered in a window, as the platform's metrics count it: no verdict."""

    requests: int
    errors: int  # answered with a 5xx
    p95_ms: float | None = None  # the 95th percentile latency, when it was asked for and known
    points: int = 0  # the metric samples the window held (metrics arrive late)
