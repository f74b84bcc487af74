"""The "Why it failed" section: what the platform recorded about a failed revision, the lines
that matter and the hints, as text and as a collapsed markdown block. Every text in an
Explanation is already clean (diagnosis.explain); this only lays it out."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from safedeploy.diagnosis import Explanation, Recalled
from safedeploy.facts import LogLine


def promoted(analysis: Sequence[dict[str, Any]]) -> list[str]:
    """The canary steps a deploy went on after, with their figures: what a promotion was based
    on (a step that rolled back is in the deploy's message already)."""
    from safedeploy.analysis import Judgement, describe_step

    steps = [Judgement.from_record(step) for step in analysis]
    return [describe_step(step) for step in steps if not step.failed]


def why_text(service: str, why: Explanation) -> list[str]:
    """The section for a terminal or a log: a heading, then indented facts."""
    lines = [f"Why {service} failed: revision {why.revision} ({why.source})"]
    lines += [f"  hint: {h.key}: {_plain(h.text)}" for h in why.hints]
    if why.status:
        lines.append(f"  status: {why.status}")
    lines += [
        f"  condition {_condition(c.type, c.state, c.reason, c.message)}" for c in why.conditions
    ]
    if why.probe:
        lines.append(f"  probe {why.probe}")
    if why.lines:
        lines.append(f"  log ({len(why.lines)} lines that matter, oldest first):")
        lines += [f"    {_log(line)}" for line in why.lines]
    lines += [f"  not read: {note}" for note in why.notes]
    return lines


def why_markdown(service: str, why: Explanation) -> list[str]:
    """A collapsed <details> block; its summary carries the first hint, or the status."""
    lead = why.hints[0].text if why.hints else why.status or f"revision {why.revision}"
    lines = ["", f"<details><summary>Why {_html(service)} failed: {_html(lead)}</summary>", ""]
    lines.append(f"Revision `{why.revision}`, read from {why.source}.")
    if why.hints:
        lines += ["", *(f"- **hint** `{h.key}`: {_html(h.text)}" for h in why.hints)]
    facts = [f"status: {why.status}"] if why.status else []
    facts += [
        f"condition {_condition(c.type, c.state, c.reason, c.message)}" for c in why.conditions
    ]
    if why.probe:
        facts.append(f"probe {why.probe}")
    facts += [_log(line) for line in why.lines]
    if facts:
        fence = "`" * max(
            3, 1 + max(len(run) for f in facts for run in re.findall("`+", f) or [""])
        )
        lines += ["", f"{fence}text", *facts, fence]
    lines += ["", *(f"- not read: {_html(note)}" for note in why.notes)] if why.notes else []
    return [*lines, "", "</details>"]


def _condition(kind: str, state: str | None, reason: str | None, message: str | None) -> str:
    head = " ".join(part for part in (kind, state, reason and f"({reason})") if part)
    return f"{head}: {message}" if message else head


def _log(line: LogLine) -> str:
    return "  ".join(part for part in (line.time, line.severity, line.text) if part)


def _plain(text: str) -> str:
    """A hint's code spans read as plain quotes at a terminal."""
    return text.replace("`", "")


def _html(text: str) -> str:
    """Text in markdown outside a code block: no tag or entity of its own."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_why(service: str, wanted: str | None, found: Recalled | None, fmt: str) -> str:
    """`safedeploy why`: which release, how it ended and what it said, then the section."""
    if found is None:
        missing = f"no release {wanted}" if wanted else "no failed release"
        if fmt == "json":
            return json.dumps({"schema_version": 1, "service": service, "release": None})
        return f"{service}: {missing} in its history"
    release, later, why = found.release, found.later, found.why
    what = f"{release.kind} of {release.revision}" if release.revision else release.kind
    head = f"release {release.id} ({what}, {release.time}) ended {release.outcome.value}"
    after = f"release {later.id} succeeded after it" if later else None
    if fmt == "json":
        document = {
            "schema_version": 1,
            "service": service,
            "release": release.id,
            "revision": release.revision,
            "outcome": release.outcome.value,
            "message": release.message,
            "succeeded_after": later.id if later else None,
            "diagnosis": None if why is None else asdict(why),
        }
        return json.dumps(document, indent=2, sort_keys=True)
    nothing = "the platform has nothing more on it"
    if fmt == "markdown":
        lines = [f"**safedeploy why: {_html(service)}** — {_html(head)}"]
        lines += [f"> {_html(text)}" for text in (release.message, after) if text]
        return "\n".join([*lines, *(why_markdown(service, why) if why else ["", nothing])])
    lines = [f"{service}: {head}", *(f"  {text}" for text in (release.message, after) if text)]
    return "\n".join([*lines, *(why_text(service, why) if why else [f"  {nothing}"])])
