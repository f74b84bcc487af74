"""Terminal output: a verdict line per service, then one calm line per change.

Colour only marks the kind of change (green add, yellow change, red remove or error); without
it the output is plain text, so logs, pipes and golden files read the same.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from safedeploy.history import Outcome
from safedeploy.lint import Finding, Severity
from safedeploy.merge import Action, Decision
from safedeploy.plan import FieldChange, Plan
from safedeploy.render.why import promoted, why_text
from safedeploy.render.wording import (
    ACTION,
    as_text,
    columns,
    deploy_verdict,
    overall,
    plural,
    run_row,
    tally,
    visible,
)

if TYPE_CHECKING:
    from safedeploy.fleet import ServiceRun

# One output line: pieces of text, each with a rich style ("" for none).
Line = tuple[tuple[str, str], ...]

_STYLE = {"+": "green", "~": "yellow", "-": "red", "!": "red", "=": "dim"}

_REASON = {
    Action.REMOVED_OWNED: "owned and dropped from the manifest",
    Action.REMOVED_LISTED: "listed in remove",
    Action.REMOVED_UNMANAGED: "not in manifest; unmanaged: remove",
}


def render_text(plans: Sequence[Plan], *, color: bool) -> str:
    lines: list[Line] = []
    for i, plan in enumerate(plans):
        if i:
            lines.append(())
        lines.extend(_plan(plan))
    if len(plans) > 1:
        lines += [(), ((overall(plans), "bold"),)]
    if color:
        return _colored(lines)
    return "\n".join("".join(text for text, _ in line) for line in lines).rstrip("\n")


def _colored(lines: list[Line]) -> str:
    """The lines styled by rich; imported only for a terminal, as it is slow to import."""
    from rich.console import Console
    from rich.text import Text

    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=True,
        color_system="standard",
        width=100,
        highlight=False,
        soft_wrap=True,  # long values stay on their line instead of wrapping at 100 columns
    )
    for line in lines:
        console.print(Text.assemble(*line))
    return out.getvalue().rstrip("\n")


def _plan(plan: Plan) -> Iterator[Line]:
    counts = tally(plan)
    verdict = [
        (visible(f"{plan.service} ({plan.platform}): {ACTION[plan.action]}"), "bold"),
        (f" — {counts}" if counts else "", ""),
    ]
    if plan.errors:
        verdict.append((f" · {plural(len(plan.errors), 'error')}: will not deploy", "bold red"))
    if plan.warnings:
        verdict.append((f" · {plural(len(plan.warnings), 'warning')}", "yellow"))
    yield tuple(verdict)
    quiet = (Action.UNCHANGED, Action.KEPT_UNMANAGED)
    yield from (_variable(d) for d in plan.variables if d.action not in quiet)
    yield from (_field(c) for c in plan.changes)
    kept = [d for d in plan.variables if d.action is Action.KEPT_UNMANAGED]
    yield from (_line("=", f"{d.name} kept (not in manifest; drift)") for d in kept)
    for finding in plan.findings:
        yield from _finding(finding)


def _variable(d: Decision) -> Line:
    if d.action is Action.ADDED:
        return _line("+", f"{d.name} = {as_text(d.after)}")
    if d.action is Action.CHANGED:
        # Masked values read the same on both sides; say that they differ all the same.
        same = " changed" if d.before == d.after else ""
        return _line("~", f"{d.name}: {as_text(d.before)} -> {as_text(d.after)}{same}")
    if d.action is Action.REFUSED_UNMANAGED:
        return _line("!", f"{d.name} refused (not in manifest; unmanaged: fail)")
    return _line("-", f"{d.name} = {as_text(d.before)} ({_REASON[d.action]})")


def _field(c: FieldChange) -> Line:
    if c.before is None:
        return _line("+", f"{c.field} = {as_text(c.after)}")
    if c.after is None:
        return _line("-", f"{c.field} = {as_text(c.before)}")
    return _line("~", f"{c.field}: {as_text(c.before)} -> {as_text(c.after)}")


def _line(symbol: str, words: str) -> Line:
    return ("  ", ""), (f"{symbol} {visible(words)}", _STYLE[symbol])


def _finding(f: Finding) -> Iterator[Line]:
    where = f"{f.file}:{f.line}" if f.file and f.line else f.file
    head = " ".join(part for part in (f.code, f.key, where and f"({where})") if part)
    style = "red" if f.severity is Severity.ERROR else "yellow"
    yield ("  ", ""), (f.severity.value, style), (" ", ""), (visible(f"{head}: {f.message}"), "")
    if f.hint:
        yield ((visible(f"    hint: {f.hint}"), "dim"),)


def render_runs_text(runs: Sequence[ServiceRun]) -> str:
    """The verdict, a table of the services, then what each one that has a message said."""
    rows = [("SERVICE", "OUTCOME", "REVISION", "TIME", "EXIT"), *map(run_row, runs)]
    table = ["  " + line for line in columns(rows)]
    notes = [line for run in runs for line in _note(run)]
    return "\n".join([deploy_verdict(runs), *table, *notes])


def _note(run: ServiceRun) -> list[str]:
    """`service: message`, its later lines (a hint) indented below, then why it failed; after a
    release that succeeded, where the service answers (a first deploy's new URL)."""
    why = [] if run.result.diagnosis is None else why_text(run.service, run.result.diagnosis)
    why = [*(f"{run.service}: {step}" for step in promoted(run.result.analysis)), *why]
    if run.result.outcome is Outcome.SUCCEEDED and run.result.url:
        why = [f"{run.service}: serving at {visible(run.result.url)}", *why]
    if not run.result.message:
        return why
    first, *rest = run.result.message.splitlines()
    return [visible(f"{run.service}: {first}"), *(f"  {visible(line)}" for line in rest), *why]
