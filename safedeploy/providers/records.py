"""Recorded configurations, for the platforms that run one configuration at a time (App Runner,
ECS Express): each release's configuration is kept in the history store, under the revision
name the core gave it, so that a rollback can send it again.

A sensitive plain value is recorded only as the fact that it was there (no value, no digest),
so a rollback that sends a recorded configuration again takes each such value from the live
service, and says which.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from safedeploy.errors import SafedeployError
from safedeploy.model import EnvValue, SecretRef, ServiceSpec
from safedeploy.redact import Sensitive, is_sensitive

Json = dict[str, Any]

MATCH_DEPTH = 20  # recorded revisions compared with the live configuration, newest first
COMMAND = "the start command"  # its place among sensitive names
_SENSITIVE = {"sensitive": True}  # a plain value that was there and is not stored


class Revisions(Protocol):
    """Where recorded configurations live: the history store (FolderHistory, S3History)."""

    def config_names(self) -> list[str]: ...

    def config(self, revision: str) -> dict[str, Any] | None: ...

    def save_config(self, revision: str, config: dict[str, Any]) -> None: ...


def sensitive(spec: ServiceSpec, target: ServiceSpec) -> frozenset[str]:
    """Names of `spec` whose plain value is never recorded, judged against `target`, the core's
    merged configuration: Sensitive there (a ${VAR} fill, a kept live value the manifest does
    not declare), absent there (a value this release removes), or sensitive by name or look."""
    names = {
        name
        for name, value in spec.env.items()
        if isinstance(value, str)
        and (
            name not in target.env
            or is_sensitive(name, target.env[name])
            or is_sensitive(name, value)
        )
    }
    if any(isinstance(part, Sensitive) for part in target.command) or is_sensitive(
        "command", shlex.join(spec.command)
    ):
        names.add(COMMAND)
    return frozenset(names)


def record(spec: ServiceSpec, sensitive: frozenset[str]) -> Json:
    """A revision's configuration as stored: of a sensitive plain value, only that it was there.

    Equal to a stored record, given the names that record holds as sensitive, exactly when
    `spec` is its revision in every value that was stored.
    """
    command = shlex.join(spec.command)
    return {
        "image": spec.image,
        "command": _SENSITIVE if COMMAND in sensitive and command else command,
        "settings": dict(spec.settings),
        "env": {
            name: _stored(value, name in sensitive) for name, value in sorted(spec.env.items())
        },
    }


def _stored(value: EnvValue, sensitive: bool) -> Any:
    if isinstance(value, SecretRef):
        return {"secret": value.secret}
    return _SENSITIVE if sensitive else value


def _withheld(stored: Any) -> bool:
    """A sensitive plain value not stored; records from before 0.x kept `{"hmac": ...}`."""
    return stored == _SENSITIVE or (isinstance(stored, dict) and "hmac" in stored)


def sensitive_in(stored: Json) -> frozenset[str]:
    names = {name for name, value in stored["env"].items() if _withheld(value)}
    return frozenset(names | ({COMMAND} if _withheld(stored["command"]) else set()))


def is_config(stored: Json, spec: ServiceSpec) -> bool:
    """Whether `spec` is the recorded configuration, in every value the record holds."""
    return record(spec, sensitive_in(stored)) == stored


def serving(
    revisions: Revisions, names: list[str], service: str, spec: ServiceSpec, made: datetime
) -> str:
    """The revision of `names` whose record the live configuration is, or a name for an
    unrecorded one.

    An unrecorded configuration (created or edited outside safedeploy) is named after the
    moment the operation that made it started, so a plan and the apply that follows agree.
    """
    for name in reversed(names[-MATCH_DEPTH:]):
        stored = revisions.config(name)
        if stored is not None and is_config(stored, spec):
            return name
    return f"{service}-{made.astimezone(UTC):%Y%m%d-%H%M%S}-unrecorded"


def recorded(revisions: Revisions, revision: str, where: str) -> Json:
    """The recorded configuration of `revision`; an error naming where to look without one."""
    stored = revisions.config(revision)
    if stored is None:
        raise SafedeployError(
            f"no recorded configuration for revision {revision}",
            where=where,
            hint="see `safedeploy status` for the revisions safedeploy recorded",
        )
    return stored


def to_send(
    stored: Json,
    live: ServiceSpec,
    revision: str,
    served: ServiceSpec | None,
    progress: Callable[[str], None],
) -> ServiceSpec:
    """What serves `revision` again: the configuration as this run read it while it served (its
    values held in memory only), else the record with each sensitive value taken from live,
    saying which."""
    if served is not None and is_config(stored, served):
        return served
    spec, taken = restore(stored, live, revision)
    if taken:
        progress(
            f"took {', '.join(taken)} from the live service: sensitive plain values are never "
            "recorded (move them to secrets: to restore them exactly)"
        )
    return spec


def restore(stored: Json, live: ServiceSpec, revision: str) -> tuple[ServiceSpec, list[str]]:
    """The recorded configuration, and the names whose value was taken from the live service.

    A sensitive plain value is never stored, so it comes from the live service; where the live
    service no longer has it, refuse and say which.
    """
    taken: list[str] = []
    missing: list[str] = []

    def value(name: str, kept: Any, current: str | None) -> Any:
        if not _withheld(kept):
            return SecretRef(kept["secret"]) if isinstance(kept, dict) else kept
        if current:
            taken.append(name)
            return current
        missing.append(name)
        return None

    env = {
        name: value(name, kept, _plain(live.env.get(name))) for name, kept in stored["env"].items()
    }
    command = value(COMMAND, stored["command"], shlex.join(live.command))
    if missing:
        raise SafedeployError(
            f"cannot restore revision {revision}: the live service no longer has "
            f"{', '.join(missing)}, and sensitive plain values are never stored",
            hint="set them by hand, or move them to secrets: so that any release can restore them",
        )
    spec = ServiceSpec(
        image=stored["image"],
        command=tuple(shlex.split(command)),
        env=env,
        settings=stored["settings"],
    )
    return spec, taken


def _plain(value: EnvValue | None) -> str | None:
    return value if isinstance(value, str) else None
