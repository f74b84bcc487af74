"""The counts and words every plan and deploy rendering shares, so the formats agree."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from safedeploy.merge import Action
from safedeploy.plan import Plan, PlanAction

if TYPE_CHECKING:
    from safedeploy.fleet import ServiceRun

ACTION = {PlanAction.CREATE: "create", PlanAction.UPDATE: "update", PlanAction.NONE: "no change"}
_REMOVED = (Action.REMOVED_OWNED, Action.REMOVED_LISTED, Action.REMOVED_UNMANAGED)

# Control characters in a value would break a line or a table, or drive the terminal.
_VISIBLE = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F)}


def summary(plans: Sequence[Plan]) -> dict[str, int]:
    changed = sum(1 for p in plans if p.has_changes)
    return {
        "services": len(plans),
        "changed": changed,
        "unchanged": len(plans) - changed,
        "errors": sum(len(p.errors) for p in plans),
        "warnings": sum(len(p.warnings) for p in plans),
    }


def overall(plans: Sequence[Plan]) -> str:
    """The verdict over several services: `3 services: 2 to change, 1 unchanged · 1 error`."""
    totals = summary(plans)
    words = f"{totals['services']} services: {totals['changed']} to change, "
    words += f"{totals['unchanged']} unchanged"
    return " · ".join([words, *finding_counts(totals["errors"], totals["warnings"])])


def deploy_verdict(runs: Sequence[ServiceRun]) -> str:
    """`3 services: 1 succeeded, 1 rolled-back, 1 skipped · exit 3`."""
    from safedeploy.fleet import worst
    from safedeploy.history import Outcome

    counts = Counter(r.result.outcome for r in runs)
    words = ", ".join(f"{counts[o]} {o.value}" for o in Outcome if counts[o])
    return f"{plural(len(runs), 'service')}: {words} · exit {int(worst(runs))}"


def run_row(run: ServiceRun) -> tuple[str, str, str, str, str]:
    """service, outcome, revision, duration, exit code: one line of a deploy's summary."""
    result = run.result
    took = "-" if result.outcome.value == "skipped" else f"{run.seconds:.1f}s"
    return (
        run.service,
        result.outcome.value,
        result.revision or "-",
        took,
        str(int(result.exit_code)),
    )


def finding_counts(errors: int, warnings: int) -> list[str]:
    return [plural(n, word) for n, word in ((errors, "error"), (warnings, "warning")) if n]


def tally(plan: Plan) -> str:
    """What one plan changes, counted: `1 added, 3 kept; image changed`.

    Unchanged variables are left out: they are the bulk of most plans and not the news.
    """
    counts = [
        (plan.count(Action.ADDED), "added"),
        (plan.count(Action.CHANGED), "changed"),
        (plan.count(*_REMOVED), "removed"),
        (plan.count(Action.REFUSED_UNMANAGED), "refused"),
        (plan.count(Action.KEPT_UNMANAGED), "kept"),
    ]
    parts = [", ".join(f"{n} {word}" for n, word in counts if n)]
    fields = [c.field for c in plan.changes]
    if fields:
        named = ", ".join(fields) if len(fields) <= 2 else plural(len(fields), "field")
        parts.append(f"{named} changed")
    return "; ".join(p for p in parts if p)


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as lines of left-aligned columns two spaces apart; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def as_text(value: Any) -> str:
    """One line for any shown value: strings as they are, with control characters (a trailing
    `\\r`, an escape sequence) made visible; an empty string as `""`; the rest as JSON."""
    if isinstance(value, str):
        return visible(value) if value else '""'
    return json.dumps(value, sort_keys=True)


def visible(text: str) -> str:
    return text.translate(_VISIBLE)
