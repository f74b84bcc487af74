"""A plan is data: per-variable decisions, field changes, lint findings, the live fingerprint.

It is built once from a manifest and a live read, rendered, saved, compared, and executed as
it is: the deployer never decides again. Raw values live only in `target`, which is never
written out, nor is any digest of them: a hash of a low-entropy value is the value. A saved plan
is stale when the platform's version moved or when planning again gives another value-free view
(names, actions, public values).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from safedeploy.errors import SafedeployError
from safedeploy.facts import LiveService
from safedeploy.files import write_private
from safedeploy.lint import Finding, Severity, lint_manifest, lint_merge, lint_target
from safedeploy.manifest import Manifest
from safedeploy.merge import Action, Decision, merge_env
from safedeploy.model import ServiceSpec
from safedeploy.redact import MASK, scrub, shown

SCHEMA_VERSION = 1


class PlanAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    NONE = "none"


@dataclass(frozen=True)
class FieldChange:
    """A change to something other than env: `image`, `command`, `settings.memory`..."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Plan:
    service: str
    platform: str
    manifest: str
    action: PlanAction
    variables: tuple[Decision, ...]
    changes: tuple[FieldChange, ...]
    findings: tuple[Finding, ...]
    live_fingerprint: str
    owned: frozenset[str]  # the names this release will record as owned
    target: ServiceSpec = field(repr=False, compare=False)
    serving: dict[str, int] = field(default_factory=dict)  # the live split, to roll back to
    # What served, as read: a rollback of a one-configuration platform sends it again whole.
    live: ServiceSpec | None = field(default=None, repr=False, compare=False)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        """A plan with an error finding must not be applied."""
        return not self.errors

    @property
    def has_changes(self) -> bool:
        return self.action is not PlanAction.NONE

    def count(self, *actions: Action) -> int:
        return sum(1 for d in self.variables if d.action in actions)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON form (render/json.py, --out files); never holds a raw value."""
        return {
            "service": self.service,
            "platform": self.platform,
            "manifest": self.manifest,
            "action": self.action.value,
            "ok": self.ok,
            "variables": [{**asdict(d), "action": d.action.value} for d in self.variables],
            "changes": [asdict(c) for c in self.changes],
            "findings": [{**asdict(f), "severity": f.severity.value} for f in self.findings],
            "live_fingerprint": self.live_fingerprint,
            "serving": self.serving,
            "owned": sorted(self.owned),
        }

    def view(self) -> dict[str, Any]:
        """What a saved plan promises, without a value: names, actions and public values."""
        document = self.to_dict()
        kept = ("action", "variables", "changes", "owned")
        normal: dict[str, Any] = json.loads(json.dumps({k: document[k] for k in kept}))
        return normal


_UNCHANGED = {Action.UNCHANGED, Action.KEPT_UNMANAGED, Action.REFUSED_UNMANAGED}


def _managed_fields(spec: ServiceSpec | None) -> dict[str, Any]:
    """Everything but env, flattened to the names a plan shows: image, command, settings.X."""
    if spec is None:
        return {}
    fields: dict[str, Any] = {"image": spec.image, "command": list(spec.command)}
    fields.update({f"settings.{k}": v for k, v in spec.settings.items()})
    return {k: v for k, v in fields.items() if v not in (None, [])}


def field_changes(
    before: ServiceSpec | None, after: ServiceSpec, templates: Mapping[str, str] = {}
) -> tuple[FieldChange, ...]:
    """Image, command and settings changes: each top-level field whose value differs.

    `templates` (manifest key -> value as written): a field a ${VAR} filled shows its template,
    and its live value is masked, as the last fill of the same template.
    """
    old, new = _managed_fields(before), _managed_fields(after)
    names = {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
    return tuple(
        FieldChange(name, *_show_field(name, old.get(name), new.get(name), templates))
        for name in sorted(names)
    )


def _show_field(name: str, old: Any, new: Any, templates: Mapping[str, str]) -> tuple[Any, Any]:
    """A field's two sides as they may be shown: templates for ${VAR} fills, masks for the rest.

    The live side of a templated field is masked: it is the last fill of the same template.
    Command arguments can carry credentials too; they are shown through the same mask.
    """
    if name == "command":
        old = old and [shown("command", arg) for arg in old]
        new = new and [shown("command", arg) for arg in new]
    if not any(key == name or key.startswith(f"{name}.") for key in templates):
        return old, new
    return (None if old is None else MASK), _templated(new, name, templates)


def _templated(value: Any, key: str, templates: Mapping[str, str]) -> Any:
    """`value` with each part a ${VAR} filled shown as written."""
    if key in templates:
        return templates[key]
    if isinstance(value, dict):
        return {k: _templated(v, f"{key}.{k}", templates) for k, v in value.items()}
    if isinstance(value, list):
        return [_templated(v, f"{key}.{i}", templates) for i, v in enumerate(value)]
    return value


def build_plan(
    manifest: Manifest, live: LiveService, extra_findings: Sequence[Finding] = ()
) -> Plan:
    """Merge, diff and lint: everything deploy needs, decided once."""
    desired = manifest.desired_spec()
    live_spec = live.spec
    merged = merge_env(
        desired.env,
        live_spec.env if live_spec else {},
        live.owned,
        frozenset(manifest.remove),
        manifest.unmanaged,
        {
            name: manifest.templates[f"env.{name}"]
            for name in manifest.env
            if f"env.{name}" in manifest.templates
        },
    )
    settings = dict(live_spec.settings) if live_spec else {}
    settings.update(desired.settings)
    target = ServiceSpec(
        image=desired.image or (live_spec.image if live_spec else None),
        command=desired.command or (live_spec.command if live_spec else ()),
        env=merged.env,
        settings=settings,
    )
    changes = field_changes(live_spec, target, manifest.templates)
    findings = (
        *lint_manifest(manifest),
        *lint_merge(manifest, merged),
        *lint_target(manifest, target),
        *extra_findings,
    )
    if not live.exists:
        action = PlanAction.CREATE
    elif changes or any(d.action not in _UNCHANGED for d in merged.decisions):
        action = PlanAction.UPDATE
    else:
        action = PlanAction.NONE
    return Plan(
        service=manifest.service,
        platform=manifest.platform.value,
        manifest=str(manifest.path),
        action=action,
        variables=merged.decisions,
        changes=changes,
        findings=tuple(findings),
        live_fingerprint=live.fingerprint,
        owned=manifest.declared,
        target=target,
        serving=live.traffic,
        live=live_spec,
    )


def save_plans(plans: Sequence[Plan], path: Path) -> None:
    """The value-free plans, through the scrubber as every written file is."""
    write_private(path, scrub(json.dumps(plans_document(plans), indent=2, sort_keys=True)) + "\n")


def plans_document(plans: Sequence[Plan]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "plans": [p.to_dict() for p in plans]}


def load_saved(path: Path) -> dict[str, dict[str, Any]]:
    """A saved plan file, as service name -> saved plan."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SafedeployError(f"cannot read the plan file: {exc}", where=str(path)) from exc
    if not isinstance(document, dict) or document.get("schema_version") != SCHEMA_VERSION:
        raise SafedeployError(
            f"not a safedeploy plan of schema_version {SCHEMA_VERSION}",
            where=str(path),
            hint="save a new one with `safedeploy plan MANIFEST --out PLAN`",
        )
    return {p["service"]: p for p in document["plans"]}


def check_saved(plan: Plan, saved: dict[str, Any], plan_file: Path) -> None:
    """Refuse to apply when the service or the inputs moved since the saved plan was shown."""
    if saved["live_fingerprint"] != plan.live_fingerprint:
        raise SafedeployError(
            f"service {plan.service} changed since the plan was saved",
            where=str(plan_file),
            hint="run `safedeploy plan` again and review the new diff",
        )
    view = plan.view()
    if {k: saved.get(k) for k in view} != view:
        raise SafedeployError(
            f"planning {plan.service} again gives another plan than the saved one",
            where=str(plan_file),
            hint="deploy with the same --env and --var as the plan, or plan again",
        )
