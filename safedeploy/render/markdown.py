"""`--format markdown`: a pull-request comment a reviewer can judge from its first line.

Below the verdict, each service lists only what moves: changed variables and fields, kept drift
and findings. Sections longer than FOLD_AFTER rows fold into <details> so the verdict stays in view.
Of many services, those with nothing to show share one line at the end. A deploy's results are
one table (the GitHub job summary).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from safedeploy.lint import Finding
from safedeploy.merge import Action
from safedeploy.plan import Plan
from safedeploy.render.why import promoted, why_markdown
from safedeploy.render.wording import (
    ACTION,
    as_text,
    deploy_verdict,
    finding_counts,
    overall,
    plural,
    run_row,
    tally,
    visible,
)

if TYPE_CHECKING:
    from safedeploy.fleet import ServiceRun

FOLD_AFTER = 10

_DECISION = {
    Action.ADDED: "added",
    Action.CHANGED: "changed",
    Action.REMOVED_OWNED: "removed: owned and dropped from the manifest",
    Action.REMOVED_LISTED: "removed: listed in `remove`",
    Action.REMOVED_UNMANAGED: "removed: not in manifest, `unmanaged: remove`",
    Action.REFUSED_UNMANAGED: "**refused**: not in manifest, `unmanaged: fail`",
}


def render_markdown(plans: Sequence[Plan]) -> str:
    if len(plans) == 1:
        plan = plans[0]
        lines = [f"**safedeploy plan: {plan.service}** ({plan.platform}) — {_verdict(plan)}"]
    else:
        lines = [f"**safedeploy plan** — {overall(plans)}"]
    errors = sum(len(p.errors) for p in plans)
    if errors:
        lines += ["", f"> **Will not deploy:** fix the {plural(errors, 'error')} below first."]
    quiet = [p for p in plans if _quiet(p)] if len(plans) > 1 else []
    for plan in plans:
        if plan in quiet:
            continue
        if len(plans) > 1:
            lines += ["", f"### {plan.service} ({plan.platform}) — {_verdict(plan)}"]
        lines += _service(plan)
    if quiet:
        names = ", ".join(f"{_code(p.service)} ({p.platform})" for p in quiet)
        lines += ["", f"**No change:** {names}"]
    return "\n".join(lines)


def _quiet(plan: Plan) -> bool:
    """Nothing to change, to flag or to report as drift: a name in a list says it all."""
    return not (plan.has_changes or plan.findings or plan.count(Action.KEPT_UNMANAGED))


def _verdict(plan: Plan) -> str:
    counts = tally(plan)
    words = f"{ACTION[plan.action]}: {counts}" if counts else ACTION[plan.action]
    return " · ".join([words, *finding_counts(len(plan.errors), len(plan.warnings))])


def _service(plan: Plan) -> list[str]:
    lines: list[str] = []
    moved = [d for d in plan.variables if d.action in _DECISION]
    if moved:
        table = [_row("Variable", "Before", "After", "Decision"), _row(*["---"] * 4)]
        table += [
            _row(_code(d.name), _cell(d.before), _cell(d.after), _DECISION[d.action]) for d in moved
        ]
        lines += _section(f"Variables: {len(moved)} to change", table, len(moved))
    unchanged = plan.count(Action.UNCHANGED)
    if unchanged:
        lines += ["", f"{plural(unchanged, 'unchanged variable')} not listed."]
    if plan.changes:
        table = [_row("Field", "Before", "After"), _row(*["---"] * 3)]
        table += [_row(_code(c.field), _cell(c.before), _cell(c.after)) for c in plan.changes]
        lines += _section(f"Fields: {len(plan.changes)} to change", table, len(plan.changes))
    kept = [d.name for d in plan.variables if d.action is Action.KEPT_UNMANAGED]
    if kept:
        names = ", ".join(_code(name) for name in kept)
        note = f"Live variables the manifest does not declare, kept as they are (drift): {names}"
        lines += _section(f"Kept (not in manifest): {len(kept)}", [note], len(kept))
    if plan.findings:
        # Never folded: an error is why the plan will not deploy, so it stays in view.
        lines += ["", f"**Findings: {len(plan.findings)}**", ""]
        lines += [line for f in plan.findings for line in _finding(f)]
    return lines


def _section(title: str, body: list[str], rows: int) -> list[str]:
    """A titled block; one with more than FOLD_AFTER rows folds into <details>."""
    if rows > FOLD_AFTER:
        return ["", f"<details><summary>{title}</summary>", "", *body, "", "</details>"]
    return ["", f"**{title}**", "", *body]


def _finding(f: Finding) -> list[str]:
    where = f"{f.file}:{f.line}" if f.file and f.line else f.file
    head = " ".join(_code(part) for part in (f.code, f.key, where) if part)
    lines = [f"- **{f.severity.value}** {head}: {visible(f.message)}"]
    return [*lines, f"  - hint: {visible(f.hint)}"] if f.hint else lines


def _row(*cells: str) -> str:
    """A table row; `\\|` keeps a pipe in a value from splitting the cell, even in a code span."""
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _cell(value: Any) -> str:
    """A shown value as a code span, so `*`, `_` and `<` in it stay literal; absent is empty."""
    return "" if value is None else _code(as_text(value))


def _code(text: str) -> str:
    """A code span that survives backticks in the text: the fence outgrows the longest run."""
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" or text[:1] == text[-1:] == " " else ""
    return f"{fence}{pad}{visible(text)}{pad}{fence}"


def render_runs_markdown(runs: Sequence[ServiceRun]) -> str:
    """The verdict, one row per service, then what each one that has a message said."""
    lines = [f"**safedeploy deploy** — {deploy_verdict(runs)}", ""]
    lines += [_row("Service", "Outcome", "Revision", "Time", "Exit"), _row(*["---"] * 5)]
    for run in runs:
        service, outcome, revision, took, code = run_row(run)
        failed = run.result.exit_code != 0
        lines.append(
            _row(
                _code(service),
                f"**{outcome}**" if failed else outcome,
                "" if revision == "-" else _code(revision),
                took,
                code,
            )
        )
    notes = [run for run in runs if run.result.message]
    if notes:
        lines.append("")
    for run in notes:
        first, *rest = str(run.result.message).splitlines()
        lines.append(f"- {_code(run.service)}: {visible(first)}")
        lines += [f"  {visible(line.strip())}" for line in rest]
    for run in runs:
        steps = promoted(run.result.analysis)
        lines += [""] * bool(steps) + [f"- {_code(run.service)}: {visible(s)}" for s in steps]
        if run.result.diagnosis is not None:
            lines += why_markdown(run.service, run.result.diagnosis)
    return "\n".join(lines)
