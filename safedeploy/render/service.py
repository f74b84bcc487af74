"""One service for a person: what serves now (`status`), its releases (`history`) and where a
`rollback` left it. Plain text, as these are read at a terminal and pasted into tickets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from safedeploy.render.wording import columns

if TYPE_CHECKING:
    from safedeploy.deployer import DeployResult
    from safedeploy.facts import LiveService
    from safedeploy.history import HistoryStore, Release
    from safedeploy.manifest import Manifest


def render_status(manifest: Manifest, live: LiveService, history: HistoryStore | None) -> str:
    """Revisions and traffic, owned names, drift from a manifest file, and an interrupted release
    with the command that finishes it. `history`: None when nothing is deployed."""
    if live.spec is None or history is None:
        return f"{manifest.service}: not deployed"
    rows = [("REVISION", "TRAFFIC", "STATE", "CREATED")]
    rows += [
        (
            r.name,
            f"{r.percent}%",
            "ready" if r.ready else (r.message or "not ready"),
            r.created or "-",
        )
        for r in live.revisions
    ]
    lines = [
        f"{manifest.service} ({manifest.platform}) at {live.url or '(no URL)'}",
        *columns(rows),
        f"owned: {', '.join(sorted(live.owned)) or '(none)'}",
    ]
    if not manifest.by_name:  # a service named by flags has no manifest to drift from
        drift = sorted(set(live.spec.env) - manifest.declared)
        lines.append(f"drift (live, not in the manifest): {', '.join(drift) or '(none)'}")
    named = manifest.argument
    return "\n".join([*lines, *_lease(history, named), *_unfinished(history, named)])


def _lease(history: HistoryStore, named: str) -> list[str]:
    """Who holds the deploy lease, since and until when, and what frees one a killed run left."""
    from safedeploy.history import expired, is_stale, lease_holder

    lease = history.holder()
    if lease is None:
        return []
    until = f", expires {lease['expires']}" if "expires" in lease else ""
    when = f"since {lease.get('since')}{until}"
    if expired(lease) or is_stale(lease):
        return [f"deploy lease: left by {lease_holder(lease)} {when}; the next deploy takes it"]
    return [
        f"deploy lease: held by {lease_holder(lease)} {when}; "
        f"if that run was killed, `safedeploy unlock {named}` releases it"
    ]


def _unfinished(history: HistoryStore, named: str) -> list[str]:
    """An interrupted release is named until `rollback` finishes it (DESIGN.md "Interruption")."""
    from safedeploy.deployer import interrupted_note
    from safedeploy.history import unfinished

    stuck = unfinished(history.releases())
    if stuck is None:
        return []
    if history.held():
        return [f"release {stuck.id} is in progress now"]
    return [f"{interrupted_note(stuck)}: run `safedeploy rollback {named}` to finish it"]


def render_history(service: str, releases: Sequence[Release]) -> str:
    """The releases oldest first, then what each one that has a message said."""
    if not releases:
        return f"{service}: no releases yet"
    rows = [("RELEASE", "KIND", "TIME", "USER", "REVISION", "OUTCOME")]
    rows += [(r.id, r.kind, r.time, r.user, r.revision or "-", r.outcome.value) for r in releases]
    notes = [f"{r.id}: {r.message}" for r in releases if r.message]
    notes += [f"{r.id}: {_step(step)}" for r in releases for step in r.analysis]
    return "\n".join([*columns(rows), *notes])


def _step(record: dict[str, Any]) -> str:
    """What a canary step was judged on, as the deploy said it."""
    from safedeploy.analysis import Judgement, describe_step

    return describe_step(Judgement.from_record(record))


def render_result(result: DeployResult) -> str:
    """One line: the outcome, the revision serving and where, and what went wrong."""
    head = f"{result.service}: {result.outcome}"
    if result.revision:
        head += f", revision {result.revision}"
    if result.url:
        head += f" at {result.url}"
    if result.message:
        head += f" — {result.message}"
    return head
