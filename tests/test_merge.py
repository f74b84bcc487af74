"""The three-way merge: every row of the README's merge table, every Action, and its invariants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safedeploy.lint import lint_merge
from safedeploy.manifest import Manifest
from safedeploy.merge import Action, merge_env
from safedeploy.model import EnvValue, SecretRef
from safedeploy.redact import MASK, Sensitive, is_sensitive

Unmanaged = Literal["keep", "remove", "fail"]
ABSENT = object()  # the name is not in the merged env


@dataclass(frozen=True)
class Case:
    """One variable X through the merge: its inputs, its action, its merged value."""

    desired: Mapping[str, EnvValue] = field(default_factory=dict)
    live: Mapping[str, EnvValue] = field(default_factory=dict)
    owned: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()
    unmanaged: Unmanaged = "keep"
    action: Action | None = None  # None: no decision at all
    merged: object = ABSENT


X = frozenset({"X"})
REF = SecretRef("x-secret")
CASES = {
    # desired: yes -> the desired value, whatever live and owned say
    "added": Case(desired={"X": "1"}, action=Action.ADDED, merged="1"),
    "added, owned before": Case(desired={"X": "1"}, owned=X, action=Action.ADDED, merged="1"),
    "changed": Case(desired={"X": "2"}, live={"X": "1"}, action=Action.CHANGED, merged="2"),
    "unchanged": Case(desired={"X": "1"}, live={"X": "1"}, action=Action.UNCHANGED, merged="1"),
    "plain to secret": Case(
        desired={"X": REF}, live={"X": "x-secret"}, action=Action.CHANGED, merged=REF
    ),
    "secret to plain": Case(
        desired={"X": "x-secret"}, live={"X": REF}, action=Action.CHANGED, merged="x-secret"
    ),
    "secret version": Case(
        desired={"X": SecretRef("x-secret", "2")},
        live={"X": REF},
        action=Action.CHANGED,
        merged=SecretRef("x-secret", "2"),
    ),
    "secret unchanged": Case(
        desired={"X": REF}, live={"X": REF}, action=Action.UNCHANGED, merged=REF
    ),
    "desired and removed: desired wins, lint refuses": Case(
        desired={"X": "2"}, live={"X": "1"}, remove=X, action=Action.CHANGED, merged="2"
    ),
    # desired: no, listed in remove:, live -> removed, owned or not
    "listed": Case(live={"X": "1"}, remove=X, action=Action.REMOVED_LISTED),
    "listed and owned": Case(live={"X": "1"}, remove=X, owned=X, action=Action.REMOVED_LISTED),
    "listed beats unmanaged keep": Case(
        live={"X": "1"}, remove=X, unmanaged="keep", action=Action.REMOVED_LISTED
    ),
    "listed beats unmanaged fail": Case(
        live={"X": "1"}, remove=X, unmanaged="fail", action=Action.REMOVED_LISTED
    ),
    "listed, not live: nothing": Case(remove=X),
    # desired: no, live, owned -> removed on purpose, whatever unmanaged says
    "owned, dropped": Case(live={"X": "1"}, owned=X, action=Action.REMOVED_OWNED),
    "owned, dropped, unmanaged fail": Case(
        live={"X": "1"}, owned=X, unmanaged="fail", action=Action.REMOVED_OWNED
    ),
    # desired: no, live, never owned -> the unmanaged policy
    "unmanaged keep": Case(live={"X": "1"}, action=Action.KEPT_UNMANAGED, merged="1"),
    "unmanaged remove": Case(live={"X": "1"}, unmanaged="remove", action=Action.REMOVED_UNMANAGED),
    "unmanaged fail": Case(
        live={"X": "1"}, unmanaged="fail", action=Action.REFUSED_UNMANAGED, merged="1"
    ),
    "unmanaged keep, secret": Case(live={"X": REF}, action=Action.KEPT_UNMANAGED, merged=REF),
    # desired: no, live: no -> nothing
    "owned, gone": Case(owned=X),
    "nothing": Case(),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_merge_table(case: Case) -> None:
    result = merge_env(case.desired, case.live, case.owned, case.remove, case.unmanaged)
    assert [d.action for d in result.decisions] == ([case.action] if case.action else [])
    assert result.env.get("X", ABSENT) == case.merged


def test_every_action_is_covered() -> None:
    assert {c.action for c in CASES.values()} >= set(Action)


def test_decisions_sorted_and_masked() -> None:
    result = merge_env(
        desired={"B_URL": "https://b.example", "DB_PASSWORD": SecretRef("db-password")},
        live={"DB_PASSWORD": "hunter2", "A_TOKEN": "t0ken", "B_URL": "https://b.example"},
        owned=frozenset(),
        remove=frozenset(),
        unmanaged="keep",
    )
    by_name = {d.name: d for d in result.decisions}
    assert list(by_name) == ["A_TOKEN", "B_URL", "DB_PASSWORD"]
    assert by_name["DB_PASSWORD"].before == MASK
    assert by_name["DB_PASSWORD"].after == "secret:db-password@latest"
    assert by_name["DB_PASSWORD"].sensitive
    assert (by_name["A_TOKEN"].before, by_name["A_TOKEN"].after) == (None, None)  # by name only
    assert by_name["A_TOKEN"].sensitive
    assert by_name["B_URL"].after == "https://b.example"
    assert not by_name["B_URL"].sensitive


def test_live_values_the_manifest_does_not_declare_are_never_shown() -> None:
    """Kept drift goes by name only; a removed one is masked, whatever its name or look."""
    result = merge_env(
        desired={},
        live={"KEPT": "host=db password=x", "GONE": "plain-looking", "LISTED": "also-plain"},
        owned=frozenset({"GONE"}),
        remove=frozenset({"LISTED"}),
        unmanaged="keep",
    )
    shown = {d.name: (d.before, d.after, d.sensitive) for d in result.decisions}
    assert shown == {
        "GONE": (MASK, None, True),
        "KEPT": (None, None, True),
        "LISTED": (MASK, None, True),
    }
    assert isinstance(result.env["KEPT"], Sensitive)


def test_a_templated_value_shows_its_template_and_masks_the_last_fill() -> None:
    result = merge_env(
        desired={"DATABASE_URL": Sensitive("postgres://app:pw-new@db/app")},
        live={"DATABASE_URL": "postgres://app:pw-old@db/app"},
        owned=frozenset(),
        remove=frozenset(),
        unmanaged="keep",
        templates={"DATABASE_URL": "postgres://app:${DB_PASS}@db/app"},
    )
    (d,) = result.decisions
    assert (d.action, d.before, d.after, d.sensitive) == (
        Action.CHANGED,
        MASK,
        "postgres://app:${DB_PASS}@db/app",
        True,
    )


def test_merge_does_not_touch_its_inputs() -> None:
    desired, live = {"A": "1"}, {"A": "0", "B": "2"}
    merge_env(desired, live, frozenset({"B"}), frozenset(), "keep")
    assert (desired, live) == ({"A": "1"}, {"A": "0", "B": "2"})


# Property tests. Names mix plain and sensitive ones; values mix plain values, secret refs and
# canary credentials, whose text no plain value can contain.
NAMES = ["A", "B", "C", "URL", "DB_PASSWORD", "API_KEY"]
names = st.sampled_from(NAMES)
canaries = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=12).map(
    lambda s: f"sk_live_{s}"
)
refs = st.builds(SecretRef, st.sampled_from(["s1", "s2"]), st.sampled_from(["latest", "2"]))
values: st.SearchStrategy[EnvValue] = st.one_of(st.sampled_from(["v1", "v2"]), canaries, refs)
envs = st.dictionaries(names, values, max_size=6)
name_sets = st.frozensets(names, max_size=4)
policies: st.SearchStrategy[Unmanaged] = st.sampled_from(["keep", "remove", "fail"])
merge_inputs = st.tuples(envs, envs, name_sets, name_sets, policies)
MergeArgs = tuple[
    dict[str, EnvValue], dict[str, EnvValue], frozenset[str], frozenset[str], Unmanaged
]
examples = settings(max_examples=100, deadline=None)


@examples
@given(merge_inputs)
def test_live_names_vanish_only_by_a_rule(args: MergeArgs) -> None:
    desired, live, owned, remove, unmanaged = args
    result = merge_env(desired, live, owned, remove, unmanaged)
    for name in live.keys() - result.env.keys():
        assert name not in desired
        assert name in remove or name in owned or unmanaged == "remove"


@examples
@given(merge_inputs)
def test_desired_values_win(args: MergeArgs) -> None:
    desired, live, owned, remove, unmanaged = args
    result = merge_env(desired, live, owned, remove, unmanaged)
    for name, value in desired.items():
        assert result.env[name] == value


@examples
@given(merge_inputs)
def test_one_decision_per_name(args: MergeArgs) -> None:
    desired, live, owned, remove, unmanaged = args
    result = merge_env(desired, live, owned, remove, unmanaged)
    names = [d.name for d in result.decisions]
    assert names == sorted(set(names))
    assert set(names) == desired.keys() | live.keys() | (remove & live.keys())


@examples
@given(merge_inputs)
def test_no_sensitive_value_is_shown(args: MergeArgs) -> None:
    desired, live, owned, remove, unmanaged = args
    result = merge_env(desired, live, owned, remove, unmanaged)
    secrets = {v for env in (desired, live) for k, v in env.items() if is_sensitive(k, v)}
    canary_texts = {v for v in secrets if isinstance(v, str) and v.startswith("sk_live_")}
    for d in result.decisions:
        undeclared = d.name not in desired
        for raw, shown in ((live.get(d.name), d.before), (result.env.get(d.name), d.after)):
            if isinstance(raw, str) and (undeclared or is_sensitive(d.name, raw)):
                assert shown in (MASK, None) and d.sensitive
            assert not any(c in (shown or "") for c in canary_texts)


def _manifest(
    env: dict[str, str],
    secrets: dict[str, SecretRef],
    required: list[str],
    remove: frozenset[str],
    unmanaged: Unmanaged,
) -> Manifest:
    return Manifest(
        service="x",
        platform="cloudrun",
        project="p",
        region="r",
        image="i",
        env=env,
        secrets=secrets,
        required=required,
        remove=sorted(remove),
        unmanaged=unmanaged,
        path=Path("m.yaml"),
    )


@examples
@given(
    st.dictionaries(names, st.sampled_from(["v1", "v2"]), max_size=4),
    st.dictionaries(names, refs, max_size=3),
    st.lists(names, max_size=4),
    envs,
    name_sets,
    name_sets,
    policies,
)
def test_required_names_survive_or_the_plan_fails(
    env: dict[str, str],
    secrets: dict[str, SecretRef],
    required: list[str],
    live: dict[str, EnvValue],
    owned: frozenset[str],
    remove: frozenset[str],
    unmanaged: Unmanaged,
) -> None:
    manifest = _manifest(env, secrets, required, remove, unmanaged)
    desired = manifest.desired_spec().env
    result = merge_env(desired, live, owned, remove, unmanaged)
    removed_by_rule = {
        n for n in live if n not in desired and (n in remove or n in owned or unmanaged == "remove")
    }
    for name in required:
        if name in desired or (name in live and name not in removed_by_rule):
            assert name in result.env
    missing = [n for n in dict.fromkeys(required) if n not in result.env]
    sd100 = [f.message for f in lint_merge(manifest, result) if f.code == "SD100"]
    assert sd100 == [f"required variable {n} is not set" for n in missing]
