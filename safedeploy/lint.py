"""Lint rules with stable codes: each finding names the key, the manifest line and a fix.

Errors block a deploy before any mutating call; warnings are shown in the plan. A problem in
a live value the manifest does not touch is only ever a (masked) warning.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote

from safedeploy.manifest import Manifest
from safedeploy.model import Platform, ServiceSpec
from safedeploy.redact import is_sensitive_name, looks_like_credential

if TYPE_CHECKING:  # `safedeploy lint` starts without them: a plan needs them, a manifest not
    from safedeploy.facts import Fact, LiveService
    from safedeploy.merge import MergeResult
    from safedeploy.providers.base import Capabilities


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    code: str  # stable, e.g. "SD102"
    severity: Severity
    key: str | None  # dotted manifest key, e.g. "env.DATABASE_URL"
    message: str  # never contains a sensitive value
    hint: str
    file: str | None = None
    line: int | None = None


class Rule(NamedTuple):
    """One lint rule as documented: its stable code, severity, what it catches, the usual fix.
    (A named tuple: it is made on every start, where a dataclass costs three times as much.)"""

    code: str
    severity: Severity
    summary: str
    hint: str


_E, _W = Severity.ERROR, Severity.WARNING
RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        Rule(
            "SD100",
            _E,
            "a `required` name is absent after the merge",
            "declare it in env: or secrets:, or keep it out of remove:",
        ),
        Rule(
            "SD101",
            _E,
            "a value has leading/trailing whitespace or control characters",
            "strip the value; when it comes from a file or shell, use printf '%s', not echo",
        ),
        Rule(
            "SD102",
            _E,
            "a URL points at localhost on a non-local platform",
            "use an address the service reaches from the platform: a service URL or a private IP",
        ),
        Rule(
            "SD103",
            _W,
            "two names differ only by case",
            "keep one spelling: code that reads one never sees the other",
        ),
        Rule(
            "SD104",
            _E,
            "a plaintext credential",
            "move it to secrets: and reference a secret instead of pasting its value",
        ),
        Rule(
            "SD105",
            _E,
            "a /cloudsql/ socket path for an instance the service does not attach",
            "add the instance to settings.cloudsql_instances, or fix the socket path",
        ),
        Rule(
            "SD106",
            _E,
            "an invalid or platform-reserved variable name",
            "use letters, digits and underscores, not starting with a digit",
        ),
        Rule(
            "SD107",
            _E,
            "a name declared twice, or both declared and listed in remove:",
            "keep the name in one place: env:, secrets: or remove:",
        ),
        Rule(
            "SD108",
            _E,
            "a live variable the manifest never owned, with unmanaged: fail",
            "declare it in the manifest, list it in remove:, or set unmanaged: keep",
        ),
        Rule(
            "SD109",
            _W,
            "a kept, unmanaged live value has a problem (never blocks a deploy)",
            "declare it in the manifest to fix it (under secrets: if it is a credential)",
        ),
        Rule(
            "SD110",
            _E,
            "a canary on a platform that cannot split traffic",
            "use `strategy: all-at-once`",
        ),
        Rule(
            "SD111",
            _E,
            "traffic analysis on a platform safedeploy reads no traffic figures from",
            "drop rollout.analysis; cloudrun and apprunner have it",
        ),
        Rule(
            "SD112",
            _E,
            "traffic analysis whose steps would outlast the deploy lease",
            "shorten rollout.analysis.interval, or use fewer steps",
        ),
        # What the platform reported when it looked (the providers' facts), judged here.
        Rule(
            "SD201",
            _E,
            "a referenced secret (or its version) does not exist",
            "create it, or fix the reference",
        ),
        Rule(
            "SD202",
            _E,
            "the referenced secret version cannot be read in its state",
            "enable it, or reference an enabled version",
        ),
        Rule(
            "SD204",
            _W,
            "a secret, or who may read it, could not be checked",
            "grant the deploying identity the right to read it, or check it by hand",
        ),
        Rule(
            "SD205",
            _E,
            "the platform refused the update when asked to check it",
            "fix the value the message names",
        ),
        Rule("SD206", _E, "a value Cloud Run cannot take", "use a value Cloud Run accepts"),
        Rule(
            "SD207",
            _E,
            "IAM proves the service's runtime account lacks a permission the service needs",
            "grant the role the message names (its gcloud command follows the message)",
        ),
        Rule(
            "SD301",
            _W,
            "a variable points at a host the service's network cannot reach",
            "give the VPC a NAT gateway, or use egress DEFAULT",
        ),
        Rule(
            "SD302",
            _E,
            "secrets are referenced but nothing lets the service read them",
            "set settings.instance_role to a role that may read those secrets",
        ),
        Rule("SD303", _E, "something App Runner cannot take as written", "see the message"),
        Rule(
            "SD304",
            _W,
            "a platform operation is in progress on the service",
            "deploy waits for it to end, then exits 1",
        ),
        Rule("SD305", _E, "something ECS Express cannot take as written", "see the message"),
    )
}

# The code of a provider's fact (`facts.Problem`, by value) on each platform (None: on every one).
_FACT_CODES: dict[tuple[str, Platform | None], str] = {
    ("secret-missing", None): "SD201",
    ("secret-disabled", None): "SD202",
    ("not-granted", None): "SD207",
    ("not-granted", Platform.APPRUNNER): "SD302",
    ("not-checked", None): "SD204",
    ("refused", None): "SD205",
    ("unsupported", None): "SD206",
    ("unsupported", Platform.APPRUNNER): "SD303",
    ("unsupported", Platform.ECS_EXPRESS): "SD305",
    ("unreachable", None): "SD301",
}

# A value check returns what is wrong with one plain value, in words that never quote it.
_ValueCheck = Callable[[Manifest, str, str], str | None]

_CHAR_NAMES = {
    "\r": "a carriage return (\\r)",
    "\n": "a newline (\\n)",
    "\t": "a tab (\\t)",
    " ": "a space",
}
_LOOPBACK = re.compile(
    r"://(?:[^/@\s]*@)?(localhost|127(?:\.\d{1,3}){3}|0\.0\.0\.0|\[::1\])(?=[:/?#\s]|$)",
    re.IGNORECASE,
)
_CLOUDSQL = re.compile(r"/cloudsql/([^/?&#\s,;'\"]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # exactly Unicode's category Cc
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = {Platform.CLOUDRUN: frozenset({"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"})}
# Names that say the value is public by design (NEXT_PUBLIC_..., *_PUBLISHABLE_KEY).
_PUBLIC_MARKERS = ("PUBLIC", "PUBLISHABLE")
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


def _stray(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf")


def _describe(char: str) -> str:
    return _CHAR_NAMES.get(char, f"an invisible character (U+{ord(char):04X})")


def _whitespace(manifest: Manifest, name: str, value: str) -> str | None:
    """SD101: a pasted trailing \\r or newline breaks auth and URLs in ways hard to see."""
    if value and _stray(value[0]):
        return f"starts with {_describe(value[0])}"
    if value and _stray(value[-1]):
        return f"ends with {_describe(value[-1])}"
    inner = _CONTROL.search(value)
    return f"contains {_describe(inner[0])}" if inner else None


def _localhost(manifest: Manifest, name: str, value: str) -> str | None:
    """SD102: a forgotten dev default (http://localhost:8001) fails only at runtime."""
    if manifest.platform is Platform.LOCAL:
        return None
    match = _LOOPBACK.search(value)
    if match is None:
        return None
    return f"points at {match.group(1)}, the container itself on {manifest.platform.value}"


def _credential(manifest: Manifest, name: str, value: str) -> str | None:
    """SD104: a pasted password lands in every console, log and `describe` output.

    The shape is judged on the value as the file writes it, without its ${VAR} parts: in
    `postgres://app:${DB_PASS}@host/app` nothing is pasted; the password comes from outside.
    """
    written = manifest.templates.get(f"env.{name}", value)
    if looks_like_credential(_PLACEHOLDER.sub("", written)):
        return "holds a value that looks like a credential, in plain text"
    upper = name.upper()
    if value and is_sensitive_name(name) and not any(m in upper for m in _PUBLIC_MARKERS):
        return "has a sensitive-looking name but a plain-text value"
    return None


def _cloudsql(manifest: Manifest, name: str, value: str) -> str | None:
    """SD105: a socket path to an unattached instance fails on the first query, not at deploy.

    A manifest that leaves cloudsql_instances as it is live is judged at plan time instead
    (lint_target), against the instances the service will have.
    """
    if manifest.settings.cloudsql_instances is None:
        return None
    return _unattached(value, manifest.settings.cloudsql_instances)


def _unattached(value: str, attached: Iterable[str]) -> str | None:
    missing = sorted({unquote(m) for m in _CLOUDSQL.findall(value)} - set(attached))
    if not missing:
        return None
    return (
        f"uses the Cloud SQL socket of {', '.join(missing)}, "
        "which settings.cloudsql_instances does not attach"
    )


_MANIFEST_CHECKS: tuple[tuple[str, _ValueCheck], ...] = (
    ("SD101", _whitespace),
    ("SD102", _localhost),
    ("SD104", _credential),
    ("SD105", _cloudsql),
)
# The same checks, run as warnings (SD109) on kept unmanaged live values.
_LIVE_CHECKS = tuple(c for c in _MANIFEST_CHECKS if c[0] in ("SD101", "SD102", "SD104"))


def _finding(
    manifest: Manifest,
    code: str,
    key: str | None,
    message: str,
    hint: str | None = None,
    at: str | None = None,
) -> Finding:
    """A finding for `key`, located at the line of `at` (default: the key itself)."""
    rule = RULES[code]
    return Finding(
        code=code,
        severity=rule.severity,
        key=key,
        message=message,
        hint=hint or rule.hint,
        file=str(manifest.path),
        line=manifest.line_of(where) if (where := at or key) else None,
    )


def _declared(manifest: Manifest) -> Iterator[tuple[str, str]]:
    """(dotted key, name) for every name env: and secrets: declare."""
    yield from ((f"env.{name}", name) for name in manifest.env)
    yield from ((f"secrets.{name}", name) for name in manifest.secrets)


def _values(manifest: Manifest) -> Iterator[Finding]:
    """SD101, SD102, SD104, SD105 on plain env values; secret references hold no value to judge."""
    for name, value in manifest.env.items():
        for code, check in _MANIFEST_CHECKS:
            problem = check(manifest, name, value)
            if problem:
                yield _finding(manifest, code, f"env.{name}", f"{name} {problem}")


def _case_clashes(manifest: Manifest) -> Iterator[Finding]:
    """SD103: `settings.database_url` vs `DATABASE_URL` — one of them is silently unused."""
    first: dict[str, str] = {}
    for key, name in _declared(manifest):
        seen = first.setdefault(name.upper(), name)
        if seen != name:
            yield _finding(manifest, "SD103", key, f"{name} differs from {seen} only by case")


def _bad_names(manifest: Manifest) -> Iterator[Finding]:
    """SD106: the platform rejects such names, or overwrites the reserved ones."""
    reserved = _RESERVED.get(manifest.platform, frozenset())
    for key, name in _declared(manifest):
        if not name:
            yield _finding(manifest, "SD106", key, "a variable name is empty")
        elif "=" in name:
            # NAME=value pasted as a name: keep what follows `=` out of the key and message.
            section, _, head = key.partition(".")
            masked = f"{section}.{head.partition('=')[0]}=…"
            message = "a variable name contains '='"
            hint = "write NAME: value, not NAME=value"
            yield _finding(manifest, "SD106", masked, message, hint, at=key)
        elif not _NAME.fullmatch(name):
            yield _finding(manifest, "SD106", key, f"{name!r} is not a portable variable name")
        elif name in reserved:
            message = f"{name} is reserved: {manifest.platform.value} sets it"
            hint = "drop it; set the container port with settings.port"
            yield _finding(manifest, "SD106", key, message, hint)


def _conflicts(manifest: Manifest) -> Iterator[Finding]:
    """SD107: a name with two sources of truth; the merge would pick one silently."""
    removed = set(manifest.remove)
    for key, name in _declared(manifest):
        if name in removed:
            message = f"{name} is declared and also listed in remove:"
            yield _finding(manifest, "SD107", key, message)
    for name in sorted(manifest.env.keys() & manifest.secrets.keys()):
        message = f"{name} is declared in both env: and secrets:"
        hint = "keep it in one of env: or secrets:"
        yield _finding(manifest, "SD107", f"secrets.{name}", message, hint)


def lint_manifest(manifest: Manifest) -> list[Finding]:
    """The rules that judge what the manifest declares (all `safedeploy lint` needs)."""
    return [
        *_bad_names(manifest),
        *_conflicts(manifest),
        *_case_clashes(manifest),
        *_values(manifest),
        *_analysis(manifest),
    ]


_MEASURED = (Platform.CLOUDRUN, Platform.APPRUNNER)  # the platforms whose metrics are read


def _analysis(manifest: Manifest) -> Iterator[Finding]:
    """SD111 where no figures are read; SD112 when waiting `interval` at every step would
    outlast the lease (the S3 store's, the one that expires), so another deploy could start."""
    analysis = manifest.rollout.analysis
    if analysis is None:
        return
    if manifest.platform not in _MEASURED:
        message = f"platform {manifest.platform} has no traffic figures to judge a step by"
        yield _finding(manifest, "SD111", "rollout.analysis", message)
    from safedeploy.history.s3 import LEASE_TTL

    steps = len(manifest.rollout.steps) if manifest.rollout.strategy == "canary" else 1
    lease = LEASE_TTL.total_seconds()
    if analysis.interval * steps >= lease:
        message = (
            f"{steps} step(s) of {analysis.interval:g}s take {analysis.interval * steps:g}s, "
            f"and the deploy lease lasts {lease:g}s"
        )
        yield _finding(manifest, "SD112", "rollout.analysis.interval", message)


def lint_merge(manifest: Manifest, merged: MergeResult) -> list[Finding]:
    """The rules judged after the merge: `required`, refused unmanaged names, live-only warnings."""
    from safedeploy.merge import Action

    findings = [
        _finding(
            manifest,
            "SD100",
            "required",
            f"required variable {name} is not set",
            at=f"required.{manifest.required.index(name)}",  # the list item's own line
        )
        for name in dict.fromkeys(manifest.required)
        if name not in merged.env
    ]
    for decision in merged.decisions:
        name = decision.name
        if decision.action is Action.REFUSED_UNMANAGED:
            message = f"live variable {name} is neither declared nor owned (unmanaged: fail)"
            findings.append(_finding(manifest, "SD108", "unmanaged", message))
        value = merged.env.get(name)
        if decision.action is Action.KEPT_UNMANAGED and isinstance(value, str):
            findings.extend(
                _finding(manifest, "SD109", "unmanaged", f"kept live {name} {problem} ({code})")
                for code, check in _LIVE_CHECKS
                if (problem := check(manifest, name, value))
            )
    return findings


def lint_target(manifest: Manifest, target: ServiceSpec) -> list[Finding]:
    """SD105 for a manifest that leaves cloudsql_instances as live: judged against the target."""
    if manifest.settings.cloudsql_instances is not None:
        return []
    attached = target.settings.get("cloudsql_instances") or ()
    return [
        _finding(manifest, "SD105", f"env.{name}", f"{name} {problem}")
        for name, value in manifest.env.items()
        if (problem := _unattached(value, attached))
    ]


def lint_platform(
    manifest: Manifest, live: LiveService, capabilities: Capabilities
) -> list[Finding]:
    """What the manifest asks that the platform cannot do, or not now (SD110, SD206, SD304)."""
    from safedeploy.history import new_release_id, revision_name

    findings = []
    if manifest.rollout.strategy == "canary" and not capabilities.traffic_split:
        message = f"platform {manifest.platform} cannot split traffic, so no canary"
        findings.append(_finding(manifest, "SD110", "rollout.strategy", message))
    longest = len(revision_name(manifest.service, new_release_id()))
    limit = capabilities.revision_name_limit
    if limit is not None and longest > limit:
        message = (
            f"revision names `{manifest.service}-<release id>` would be {longest} characters; "
            f"{manifest.platform} allows {limit}"
        )
        hint = f"use a service name of at most {len(manifest.service) - longest + limit} characters"
        findings.append(_finding(manifest, "SD206", "service", message, hint))
    if live.busy:
        findings.append(_finding(manifest, "SD304", None, f"{live.busy} is in progress"))
    return findings


def lint_facts(manifest: Manifest, facts: Iterable[Fact]) -> list[Finding]:
    """The provider's facts, judged; a problem in a kept live variable warns and never blocks."""
    findings = []
    for fact in facts:
        code = _FACT_CODES.get((fact.problem, manifest.platform)) or _FACT_CODES[fact.problem, None]
        kind, _, name = (fact.key or "").partition(".")
        if kind in ("env", "secrets") and name not in manifest.declared:
            findings.append(_finding(manifest, "SD109", "unmanaged", f"kept live {fact.detail}"))
        else:
            findings.append(_finding(manifest, code, fact.key or None, fact.detail, fact.remedy))
    return findings
