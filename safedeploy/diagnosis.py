"""Why a deploy failed: the platform's facts made safe to show, the lines that matter, and hints
that tie what the app said to the manifest.

Pure: a provider's `Diagnosis` and what the deploy sent come in, an `Explanation` goes out.
Every line is untrusted (untrusted.clean). The platform's generic words ("failed to start and
listen on the port") are context, not causes: a hint comes from the app's own lines, and no
hint is better than a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from safedeploy.cancel import Cancelled, CancelToken
from safedeploy.facts import Condition, Diagnosis, LogLine, Unread
from safedeploy.history import Outcome, Release
from safedeploy.manifest import Manifest
from safedeploy.model import SecretRef, ServiceSpec
from safedeploy.probes import ProbeResult
from safedeploy.providers.base import Diagnoses, Provider
from safedeploy.redact import is_sensitive_name
from safedeploy.untrusted import clean

MAX_LINES = 20

_ERROR_WORDS = re.compile(
    r"Traceback|\b\w*(?:Error|Exception)\b|\bpanic:|\bfatal\b|\bFATAL\b|\bERROR\b|\bCRITICAL\b"
    r"|\bexited with\b|Permission denied|NOT_AUTHORIZED|not reachable",
)
_WARNING_WORDS = re.compile(r"\bWARN(?:ING)?\b|\bwarning\b|\bdeprecated\b", re.IGNORECASE)
_ERROR_SEVERITIES = {"ERROR", "CRITICAL", "ALERT", "EMERGENCY", "FATAL"}
_WARNING_SEVERITIES = {"WARNING", "WARN"}

_NAME = r"[A-Z][A-Z0-9_]{2,}"
_MISSING = [
    re.compile(r"KeyError: ['\"](?P<name>[A-Za-z_][A-Za-z0-9_]*)['\"]"),
    re.compile(
        rf"\b(?P<name>{_NAME})\b['\"`]?\s+(?:is|was)\s+(?:not\s+set|unset|missing|required)"
    ),
    re.compile(rf"\b(?P<name>{_NAME})\b['\"`]?\s+(?:must be set|not set|not configured)"),
    re.compile(
        rf"(?:missing|required|undefined|unset)\s+(?:required\s+)?(?:environment\s+)?"
        rf"(?:variable|env(?:\s+var)?|setting|key)s?\s*:?\s*['\"`]?(?P<name>{_NAME})\b",
        re.IGNORECASE,
    ),
]
_LISTENING = re.compile(
    r"listening (?:on|at) (?:[\w.:/\[\]-]*?:)?(?:port )?(?P<port>\d{2,5})\b", re.I
)
_GIVEN_PORT = re.compile(r"PORT=(?P<port>\d{2,5})")
_PORT_MESSAGE = re.compile(r"failed to start and listen on the port|did not listen on port", re.I)
_CLOUDSQL = re.compile(r"cloud ?sql|cloudsql", re.I)
_CLOUDSQL_FAILED = re.compile(r"not reachable|NOT_AUTHORIZED|connection refused|no such file", re.I)
_SECRET_DENIED = re.compile(
    r"Permission denied on secret:?\s*(?:projects/[^/\s]+/secrets/)?(?P<secret>[\w-]+)?", re.I
)


@dataclass(frozen=True)
class Sent:
    """What the failed revision was given, for hints to compare the app's words with."""

    env: Mapping[str, Any] = field(default_factory=dict)  # name -> value or SecretRef
    removed: frozenset[str] = frozenset()  # names the deploy took away
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, target: ServiceSpec, live: ServiceSpec | None) -> Sent:
        removed = frozenset(live.env) - frozenset(target.env) if live else frozenset()
        return cls(dict(target.env), removed, dict(target.settings))


@dataclass(frozen=True)
class Hint:
    key: str  # the manifest key to change: secrets.NAME, settings.port
    text: str


@dataclass(frozen=True)
class Explanation:
    """The "Why it failed" section, as every format shows it; every text is already clean."""

    source: str
    revision: str
    status: str | None = None
    conditions: tuple[Condition, ...] = ()
    lines: tuple[LogLine, ...] = ()
    hints: tuple[Hint, ...] = ()
    notes: tuple[str, ...] = ()  # what could not be read, and what reading it needs
    probe: str | None = None  # the start of a failed probe's response body

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Explanation:
        """The explanation a release record kept (its `diagnosis`)."""
        return cls(
            source=data["source"],
            revision=data["revision"],
            status=data.get("status"),
            conditions=tuple(Condition(**c) for c in data.get("conditions", ())),
            lines=tuple(LogLine(**line) for line in data.get("lines", ())),
            hints=tuple(Hint(**h) for h in data.get("hints", ())),
            notes=tuple(data.get("notes", ())),
            probe=data.get("probe"),
        )


FAILED = (Outcome.FAILED, Outcome.ROLLED_BACK, Outcome.ROLLBACK_FAILED, Outcome.LEFT_FAILED)


def failed_release(
    releases: Sequence[Release], wanted: str | None = None
) -> tuple[Release | None, Release | None]:
    """The release `why` explains (`wanted`, else the last that failed) and the newest success
    after it, if one followed."""
    chosen = [r for r in releases if r.id == wanted or (wanted is None and r.outcome in FAILED)]
    if not chosen:
        return None, None
    release = chosen[-1]
    later = [r for r in releases if r.id > release.id and r.outcome is Outcome.SUCCEEDED]
    return release, later[-1] if later else None


@dataclass(frozen=True)
class Recalled:
    """What `why` found: the release, the success that followed it, and why it failed."""

    release: Release
    later: Release | None
    why: Explanation | None


def why_release(
    manifest: Manifest,
    provider: Provider,
    releases: Sequence[Release],
    wanted: str | None,
    cancel: CancelToken,
) -> Recalled | None:
    """The release `why` explains, or None when there is none; hints compare the app's lines
    with what the manifest declares and what runs now."""
    release, later = failed_release(releases, wanted)
    if release is None:
        return None
    desired, live = manifest.desired_spec(), provider.read().spec
    sent = Sent({**(live.env if live else {}), **desired.env}, frozenset(), desired.settings)
    return Recalled(release, later, recall(release, provider, sent, cancel))


def recall(
    release: Release, provider: Provider, sent: Sent, cancel: CancelToken
) -> Explanation | None:
    """What the release's record kept of why it failed, else what the platform still has."""
    if release.diagnosis:
        return Explanation.from_record(release.diagnosis)
    if release.revision is None:
        return None
    probes = [ProbeResult(**p) for p in release.probes]
    since = datetime.fromisoformat(release.time)
    return gather(provider, release.revision, since, sent, probes, cancel)


def gather(
    provider: Provider,
    revision: str,
    since: datetime,
    sent: Sent,
    probes: Sequence[ProbeResult],
    cancel: CancelToken,
) -> Explanation | None:
    """Ask the platform what it recorded about `revision` and explain it; None when there is
    nothing to say or a signal came. A failure to read is a note in the section, never raised."""
    if cancel.cancelled:
        return None
    if isinstance(provider, Diagnoses):
        try:
            found = provider.diagnose(revision, since, cancel)
        except Cancelled:
            return None
        except Exception as exc:  # the deploy's outcome stands; the section says what failed
            unread = Unread("what the platform recorded", "the platform's read access", repr(exc))
            found = Diagnosis("the platform", revision, unread=(unread,))
    else:
        found = Diagnosis("the probes", revision)
    why = explain(found, sent, probes)
    return why if why.lines or why.conditions or why.status or why.probe or why.notes else None


def explain(
    diagnosis: Diagnosis,
    sent: Sent,
    probes: Sequence[ProbeResult] = (),
    *,
    max_lines: int = MAX_LINES,
) -> Explanation:
    """The facts cleaned, the lines that matter picked, and the hints they support."""
    lines = tuple(_clean_line(line) for line in diagnosis.lines)
    conditions = tuple(
        Condition(
            clean(c.type, 80),
            c.state and clean(c.state, 40),
            c.reason and clean(c.reason, 80),
            c.message and clean(c.message),
        )
        for c in diagnosis.conditions
    )
    failed = next((p for p in probes if not p.ok), None)
    probe = None
    if failed is not None and failed.body:
        probe = (
            f"{failed.name}: {failed.method} {failed.url} answered {failed.status}: {failed.body}"
        )
    notes = tuple(
        clean(f"{u.what} could not be read ({u.detail}): it needs {u.needs}")
        for u in diagnosis.unread
    )
    context = [c.message for c in conditions if c.message]
    if diagnosis.status:
        context.append(clean(diagnosis.status))
    texts = [line.text for line in lines]
    if probe:
        texts.append(probe)
    return Explanation(
        source=diagnosis.source,
        revision=diagnosis.revision,
        status=diagnosis.status and clean(diagnosis.status),
        conditions=conditions,
        lines=pick(lines, max_lines),
        hints=tuple(_unique(hints(texts, context, sent))),
        notes=notes,
        probe=probe,
    )


def _clean_line(line: LogLine) -> LogLine:
    severity = line.severity and clean(line.severity, 12).upper()
    return LogLine(line.time and clean(line.time, 40), severity, clean(line.text))


def rank(line: LogLine) -> int:
    """2 for an error, 1 for a warning, 0 for the rest: by the platform's severity, else words."""
    severity = (line.severity or "").upper()
    if severity in _ERROR_SEVERITIES or (
        severity in ("", "DEFAULT") and _ERROR_WORDS.search(line.text)
    ):
        return 2
    if severity in _WARNING_SEVERITIES or (
        severity in ("", "DEFAULT", "INFO") and _WARNING_WORDS.search(line.text)
    ):
        return 1
    return 0


def pick(lines: Sequence[LogLine], limit: int = MAX_LINES) -> tuple[LogLine, ...]:
    """At most `limit` lines, oldest first: the last errors and warnings, then the last of the
    rest to fill up (a traceback's frames around its error line)."""
    if len(lines) <= limit:
        return tuple(lines)
    order = sorted(range(len(lines)), key=lambda i: (rank(lines[i]) > 0, i), reverse=True)
    return tuple(lines[i] for i in sorted(order[:limit]))


def hints(texts: Sequence[str], context: Sequence[str], sent: Sent) -> Iterator[Hint]:
    """Hints from the app's lines (`texts`) against what the revision was sent; `context` (the
    platform's conditions and status) names a secret it could not read, and confirms a port
    problem the app's lines do not explain, nothing else."""
    crashed = False
    for text in texts:
        for pattern in _MISSING:
            for match in pattern.finditer(text):
                crashed = True
                hint = _missing(match["name"], sent)
                if hint is not None:
                    yield hint
        if _CLOUDSQL.search(text) and _CLOUDSQL_FAILED.search(text):
            yield _cloudsql(sent)
        listening = _LISTENING.search(text)
        given = _given_port([*texts, *context], sent)
        if listening and given and int(listening["port"]) != given:
            crashed = True  # explained: the port hint below would say less
            yield Hint(
                "settings.port",
                f"the app listens on port {listening['port']}, not on the PORT it was given "
                f"({given}): set `settings.port: {listening['port']}`, or have the app listen on "
                "$PORT",
            )
        crashed |= rank(LogLine(None, None, text)) == 2
    for text in [*texts, *context]:  # the platform's own words name a secret it could not read
        denied = _SECRET_DENIED.search(text)
        if denied:
            yield _secret_denied(denied, sent)
    if not crashed and any(_PORT_MESSAGE.search(c) for c in [*context, *texts]):
        given = _given_port([*texts, *context], sent)
        port = f" ({given})" if given else ""
        yield Hint(
            "settings.port",
            f"the container never listened on its port{port} and the app's lines show no crash: "
            "set `settings.port` to the port the app listens on, or have it listen on $PORT",
        )


def _missing(name: str, sent: Sent) -> Hint | None:
    block = "secrets" if is_sensitive_name(name) else "env"
    if name in sent.removed:
        return Hint(
            f"{block}.{name}",
            f"`{name}` was removed by this deploy and the app needs it: declare it in `{block}:`",
        )
    if name in sent.env:
        return None  # it was set: its value may be wrong, which the lines cannot tell
    where = "`secrets:`" if block == "secrets" else "`env:` (or `secrets:` if it is sensitive)"
    return Hint(f"{block}.{name}", f"`{name}` is not set on the new revision: add it to {where}")


def _secret_denied(match: re.Match[str], sent: Sent) -> Hint:
    secret = match["secret"]
    names = [
        name
        for name, value in sent.env.items()
        if isinstance(value, SecretRef) and secret and value.secret.rsplit("/", 1)[-1] == secret
    ]
    key = f"secrets.{names[0]}" if names else "secrets"
    account = sent.settings.get("service_account")
    who = f"`{account}`" if account else "the service's identity (`settings.service_account`)"
    return Hint(
        key, f"{who} cannot read the secret: grant it `roles/secretmanager.secretAccessor` on it"
    )


def _cloudsql(sent: Sent) -> Hint:
    instances = sent.settings.get("cloudsql_instances") or []
    named = ", ".join(f"`{i}`" for i in instances) if instances else "no instance"
    return Hint(
        "settings.cloudsql_instances",
        f"the app could not reach Cloud SQL: `settings.cloudsql_instances` names {named}; it "
        "must name the instance the app connects to, and the service account needs "
        "`roles/cloudsql.client`",
    )


def _given_port(texts: Sequence[str], sent: Sent) -> int | None:
    for text in texts:
        match = _GIVEN_PORT.search(text)
        if match:
            return int(match["port"])
    port = sent.settings.get("port")
    return int(port) if isinstance(port, int) else None


def _unique(found: Iterator[Hint]) -> Iterator[Hint]:
    seen: set[Hint] = set()
    for hint in found:
        if hint not in seen:
            seen.add(hint)
            yield hint
