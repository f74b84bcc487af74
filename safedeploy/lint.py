"""Lint rules with stable codes: each finding names the key, the manifest line and a fix.

Errors block a deploy before any mutating call; warnings are shown in the plan. A problem in
a live value the manifest does not touch is only ever a (masked) warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from safedeploy.manifest import Manifest
from safedeploy.merge import MergeResult


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


def lint_manifest(manifest: Manifest) -> list[Finding]:
    """The rules that judge what the manifest declares (all `safedeploy lint` needs)."""
    raise NotImplementedError


def lint_merge(manifest: Manifest, merged: MergeResult) -> list[Finding]:
    """The rules judged after the merge: `required`, refused unmanaged names, live-only warnings."""
    raise NotImplementedError
