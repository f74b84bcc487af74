"""`--format json`: the stable schema for scripts, one key a line below.

    schema_version          int: plan.SCHEMA_VERSION; bumped only when a key changes meaning
    summary.services        int: how many services the document covers
    summary.changed         int: services whose plan is `create` or `update`
    summary.unchanged       int: services whose plan is `none`
    summary.errors          int: error findings over all services; any error means no deploy
    summary.warnings        int: warning findings over all services
    plans[]                 one object per service, in the order given
      .service              str: the service name
      .platform             str: cloudrun | apprunner | local
      .manifest             str: the manifest file the plan was built from
      .action               str: create | update | none
      .ok                   bool: false when the plan has an error finding and must not apply
      .variables[]          one per env name in desired, live or remove:, sorted by name
        .name               str: the variable name
        .action             str: a merge.Action value (added, changed, kept-unmanaged, ...)
        .before             str | null: the live value as it may be shown (masked), null if absent
        .after              str | null: the merged value as it may be shown, null if removed
        .sensitive          bool: the value is masked as "(sensitive)"
      .changes[]            image, command and settings.X changes, sorted by field
        .field              str: `image`, `command` or `settings.NAME`
        .before / .after    any: the value before and after, null where absent
      .findings[]           lint findings, errors and warnings
        .code               str: a stable rule code such as SD104
        .severity           str: error | warning
        .key                str | null: the dotted manifest key, e.g. env.DATABASE_URL
        .message / .hint    str: what is wrong and how to fix it
        .file / .line       str | null, int | null: where in the manifest
      .live_fingerprint     str: the live etag or hash the plan saw; apply refuses if it moved
      .owned                [str]: the names this release records as owned
      .salt / .digest       str: a salted HMAC of what apply will send, to check a saved plan

The counts the text and markdown renderers quote come from here too, so all three formats agree.

`deploy --format json` (render_runs_json), one key a line below:

    schema_version          int: 1
    exit_code               int: the process exit code, the worst of the services'
    results[]               one object per service, in the order given
      .service              str: the service name
      .outcome              str: succeeded | unchanged | failed | rolled-back | rollback-failed |
                            left-failed | skipped (a service it depends on failed)
      .exit_code            int: 0 | 1 | 3 | 4, as for the process
      .seconds              float: how long its deploy took (0 when skipped)
      .release_id           str | null: the release record written for it
      .revision             str | null: the revision it created
      .revision_url         str | null: where that revision alone answered (a tag URL)
      .url                  str | null: the service URL
      .traffic_before/after {revision: percent}: the split before and after
      .probes[]             each probe: name, url, ok, attempts, status, latency_ms, elapsed_ms,
                            error, method
      .message              str | null: what failed, and what serves now
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from safedeploy.merge import Action
from safedeploy.plan import Plan, PlanAction, plans_document

if TYPE_CHECKING:
    from safedeploy.fleet import ServiceRun

ACTION = {PlanAction.CREATE: "create", PlanAction.UPDATE: "update", PlanAction.NONE: "no change"}
_REMOVED = (Action.REMOVED_OWNED, Action.REMOVED_LISTED, Action.REMOVED_UNMANAGED)

# Control characters in a value would break a line or a table, or drive the terminal.
_VISIBLE = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F)}


def render_json(plans: Sequence[Plan]) -> str:
    document = {**plans_document(plans), "summary": summary(plans)}
    return json.dumps(document, indent=2, sort_keys=True)


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


def render_runs_json(runs: Sequence[ServiceRun]) -> str:
    """`deploy --format json`, as the module's docstring lists it."""
    from safedeploy.fleet import worst

    results = [{**asdict(r.result), "seconds": round(r.seconds, 3)} for r in runs]
    document = {"schema_version": 1, "exit_code": worst(runs), "results": results}
    return json.dumps(document, indent=2, sort_keys=True)


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
