"""The three-way merge of desired (manifest), live (service) and owned (last release) env.

This is the core promise: a live variable disappears only by a rule of the README's "How the
merge decides", never because a manifest is incomplete. Pure: data in, data out.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from safedeploy.model import EnvValue
from safedeploy.redact import MASK, Sensitive, is_sensitive, shown


class Action(StrEnum):
    """What the merge did with one variable name."""

    ADDED = "added"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    KEPT_UNMANAGED = "kept-unmanaged"  # live, never owned, unmanaged: keep -> drift
    REMOVED_OWNED = "removed-owned"  # owned before, dropped from the manifest on purpose
    REMOVED_LISTED = "removed-listed"  # listed in remove:
    REMOVED_UNMANAGED = "removed-unmanaged"  # live, never owned, unmanaged: remove
    REFUSED_UNMANAGED = "refused-unmanaged"  # live, never owned, unmanaged: fail -> plan fails


# Undeclared live names whose live value stays in the merged env.
_KEEPS_LIVE = frozenset({Action.KEPT_UNMANAGED, Action.REFUSED_UNMANAGED})


@dataclass(frozen=True)
class Decision:
    """One variable's fate, with display values already masked (redact.shown).

    `before` is the live value and `after` the merged one, as they may be shown: None where
    the variable is absent, and None on both sides for kept drift, which is shown by name only.
    Raw values never leave the merge except in MergeResult.env.
    """

    name: str
    action: Action
    before: str | None
    after: str | None
    sensitive: bool


@dataclass(frozen=True)
class MergeResult:
    env: dict[str, EnvValue]  # the merged env to apply (raw values)
    decisions: tuple[Decision, ...]  # one per name in desired | live, sorted by name


def merge_env(
    desired: Mapping[str, EnvValue],
    live: Mapping[str, EnvValue],
    owned: Set[str],
    remove: Set[str],
    unmanaged: Literal["keep", "remove", "fail"],
    templates: Mapping[str, str] = {},
) -> MergeResult:
    """Apply the README's merge table to every name in desired | live.

    A name in `remove` that is neither desired nor live needs no decision; a name both
    desired and in `remove` keeps its desired value here and is an error in lint (SD107).
    `templates`: name -> the value as written, for desired values a ${VAR} filled.
    """
    env: dict[str, EnvValue] = {}
    decisions: list[Decision] = []
    for name in sorted(desired.keys() | live.keys()):
        action = _decide(name, desired, live, owned, remove, unmanaged)
        before = live.get(name)
        if name not in desired and isinstance(before, str):
            before = Sensitive(before)  # a live value the manifest does not declare
        if name in desired:
            env[name] = desired[name]
        elif action in _KEEPS_LIVE and before is not None:
            env[name] = before
        decisions.append(_decision(name, action, before, env.get(name), templates.get(name)))
    return MergeResult(env=env, decisions=tuple(decisions))


def _decision(
    name: str, action: Action, before: EnvValue | None, after: EnvValue | None, template: str | None
) -> Decision:
    """How one name's values may be shown: by where they came from first, then by heuristics."""
    sensitive = any(is_sensitive(name, v) for v in (before, after) if v is not None)
    if action in _KEEPS_LIVE:
        return Decision(name, action, None, None, sensitive)
    if template is not None:
        # The live value of a templated name is the last fill of the same template.
        shown_before = None if before is None else MASK if isinstance(before, str) else str(before)
        return Decision(name, action, shown_before, template, sensitive)
    return Decision(name, action, shown(name, before), shown(name, after), sensitive)


def _decide(
    name: str,
    desired: Mapping[str, EnvValue],
    live: Mapping[str, EnvValue],
    owned: Set[str],
    remove: Set[str],
    unmanaged: Literal["keep", "remove", "fail"],
) -> Action:
    """One row of the merge table, first match wins; `name` is in desired or live."""
    if name in desired:
        if name not in live:
            return Action.ADDED
        # A plain value never equals a SecretRef, so switching kinds is a change.
        return Action.CHANGED if live[name] != desired[name] else Action.UNCHANGED
    if name in remove:
        return Action.REMOVED_LISTED
    if name in owned:
        return Action.REMOVED_OWNED
    return {
        "keep": Action.KEPT_UNMANAGED,
        "remove": Action.REMOVED_UNMANAGED,
        "fail": Action.REFUSED_UNMANAGED,
    }[unmanaged]
