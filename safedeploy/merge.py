"""The three-way merge of desired (manifest), live (service) and owned (last release) env.

This is the core promise: a live variable disappears only by a rule in DESIGN.md, never
because a manifest is incomplete. Pure: data in, data out.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from safedeploy.model import EnvValue


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


@dataclass(frozen=True)
class Decision:
    """One variable's fate, with display values already masked (redact.shown).

    `before` is the live value and `after` the merged one, as they may be shown: None where
    the variable is absent. Raw values never leave the merge except in MergeResult.env.
    """

    name: str
    action: Action
    before: str | None
    after: str | None
    sensitive: bool


@dataclass(frozen=True)
class MergeResult:
    env: dict[str, EnvValue]  # the merged env to apply (raw values)
    decisions: tuple[Decision, ...]  # one per name in desired | live | remove, sorted by name


def merge_env(
    desired: Mapping[str, EnvValue],
    live: Mapping[str, EnvValue],
    owned: Set[str],
    remove: Set[str],
    unmanaged: Literal["keep", "remove", "fail"],
) -> MergeResult:
    raise NotImplementedError
