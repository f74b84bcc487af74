"""`lint`'s output: each finding with where it is and how to fix it, or that a manifest is ok.

Imports nothing beyond the standard library, as `lint` runs in pre-commit hooks and must start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safedeploy.lint import Finding


def render_findings(path: Path, findings: Sequence[Finding]) -> str:
    if not findings:
        return f"{path}: ok"
    lines = []
    for f in findings:
        where = f"{f.file}:{f.line}" if f.line else f.file
        lines.append(f"{f.severity} {f.code} {f.key} ({where}): {f.message}\n  hint: {f.hint}")
    return "\n".join(lines)
