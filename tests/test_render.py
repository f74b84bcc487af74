"""Renderers against golden files, plus the promises no golden can show at a glance.

Plans are built by hand: renderers format whatever they are given, so these tests do not wait
on merge or lint. Regenerate the goldens with `UPDATE_GOLDEN=1 pytest tests/test_render.py`
and review the diff like any other change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from safedeploy.lint import Finding, Severity
from safedeploy.merge import Action, Decision
from safedeploy.model import SecretRef, ServiceSpec
from safedeploy.plan import SCHEMA_VERSION, FieldChange, Plan, PlanAction
from safedeploy.render import Format, render
from safedeploy.render.markdown import FOLD_AFTER
from safedeploy.render.text import render_text

GOLDEN = Path(__file__).parent / "golden"
CANARY = "sk_live_CANARY_51Hx9q"  # a raw value that lives only in Plan.target
MASK = "(sensitive)"
CLERK = "secret:clerk-secret-key@latest"


def make_plan(
    service: str,
    action: PlanAction,
    variables: Sequence[Decision] = (),
    changes: Sequence[FieldChange] = (),
    findings: Sequence[Finding] = (),
    platform: str = "cloudrun",
) -> Plan:
    target = ServiceSpec(
        image="gcr.io/parallel-universe-prod/app:v42",
        env={"API_TOKEN": CANARY, "CLERK_SECRET_KEY": SecretRef("clerk-secret-key")},
    )
    return Plan(
        service=service,
        platform=platform,
        manifest=f"manifests/{service}.yaml",
        action=action,
        variables=tuple(variables),
        changes=tuple(changes),
        findings=tuple(findings),
        live_fingerprint=f"etag-{service}",
        owned=frozenset(d.name for d in variables if d.action in DECLARED),
        target=target,
    )


DECLARED = (Action.ADDED, Action.CHANGED, Action.UNCHANGED)


def var(name: str, action: Action, before: str | None, after: str | None) -> Decision:
    templated = after is not None and "${" in after
    return Decision(name, action, before, after, sensitive=MASK in (before, after) or templated)


def drift(name: str, action: Action = Action.KEPT_UNMANAGED) -> Decision:
    """A live value the manifest does not declare, kept or refused: shown by name only."""
    return Decision(name, action, None, None, sensitive=True)


CREATE = make_plan(
    "auth-service",
    PlanAction.CREATE,
    [
        var("CLERK_SECRET_KEY", Action.ADDED, None, CLERK),
        var("LOG_LEVEL", Action.ADDED, None, "info"),
    ],
    [
        FieldChange("image", None, "gcr.io/parallel-universe-prod/auth-service:v1"),
        FieldChange("settings.memory", None, "512Mi"),
    ],
)

# Every kind of decision in one plan (kept and removed-unmanaged cannot meet in a real manifest,
# but renderers do not judge); refused goes with its error in ERRORS.
UPDATE = make_plan(
    "backend-api",
    PlanAction.UPDATE,
    [
        var("API_TOKEN", Action.CHANGED, MASK, MASK),
        var("CLERK_SECRET_KEY", Action.CHANGED, MASK, CLERK),
        var("DATABASE_URL", Action.CHANGED, MASK, "postgres://app:${DB_PASS}@10.0.0.5/app"),
        drift("DEBUG_BANNER"),
        var(
            "EXTENSION_BACKEND_URL", Action.UNCHANGED, "https://ext.run.app", "https://ext.run.app"
        ),
        var("LEGACY_URL", Action.REMOVED_OWNED, MASK, None),
        var("LOG_FORMAT", Action.CHANGED, "%(levelname)s | %(message)s", "`json` | short"),
        var("NEW_FEATURE", Action.ADDED, None, "on"),
        var("OLD_FEATURE_FLAG", Action.REMOVED_LISTED, MASK, None),
        var("REDIS_HOST", Action.UNCHANGED, "10.110.183.147", "10.110.183.147"),
        drift("STRIPE_SECRET_KEY"),
        var("TMP_DEBUG", Action.REMOVED_UNMANAGED, MASK, None),
    ],
    [
        FieldChange("image", "gcr.io/p/backend-api:v41", "gcr.io/p/backend-api:v42"),
        FieldChange("settings.cloudsql_instances", [], ["p:us-central1:main"]),
    ],
    [
        Finding(
            "SD201",
            Severity.WARNING,
            "env.STRIPE_SECRET_KEY",
            "live variable STRIPE_SECRET_KEY holds a plaintext credential (kept, not managed)",
            "move it to Secret Manager and declare it under `secrets:`",
        )
    ],
)

NONE = make_plan(
    "frontend",
    PlanAction.NONE,
    [
        var("API_URL", Action.UNCHANGED, "https://api.example.com", "https://api.example.com"),
        var("NODE_ENV", Action.UNCHANGED, "production", "production"),
    ],
)

ERRORS = make_plan(
    "worker",
    PlanAction.UPDATE,
    [
        var("DATABASE_URL", Action.ADDED, None, "/cloudsql/p:us-central1:main"),
        drift("QUEUE_TOKEN", Action.REFUSED_UNMANAGED),
    ],
    findings=[
        Finding(
            "SD104",
            Severity.ERROR,
            "env.DATABASE_URL",
            "DATABASE_URL is a Cloud SQL socket path but no Cloud SQL instance is attached",
            "add the instance to settings.cloudsql_instances",
            file="manifests/worker.yaml",
            line=12,
        ),
        Finding(
            "SD110",
            Severity.ERROR,
            "unmanaged",
            "live variable QUEUE_TOKEN is not in the manifest and unmanaged is `fail`",
            "declare it, list it in remove:, or set unmanaged: keep",
            file="manifests/worker.yaml",
        ),
        Finding("SD205", Severity.WARNING, None, "no probes declared", ""),
    ],
    platform="apprunner",
)

LONG = make_plan(
    "batch",
    PlanAction.CREATE,
    [var(f"SHARD_{i:02}", Action.ADDED, None, str(i)) for i in range(FOLD_AFTER + 1)],
)

CASES = {
    "plan_create": [CREATE],
    "plan_update": [UPDATE],
    "plan_none": [NONE],
    "plan_error": [ERRORS],
    "plan_long": [LONG],
    "multi": [CREATE, UPDATE, NONE, ERRORS],
}
SUFFIX: dict[Format, str] = {"text": "txt", "markdown": "md", "json": "json"}
GOLDENS = [(case, fmt) for case in CASES for fmt in ("text", "markdown")]
GOLDENS += [("plan_update", "json"), ("multi", "json")]


def assert_golden(name: str, actual: str) -> None:
    """Renderers end without a newline (callers print them); golden files end with one."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(actual + "\n")
    assert path.exists(), f"no golden file {name}: run with UPDATE_GOLDEN=1 and review it"
    assert actual + "\n" == path.read_text()


@pytest.mark.parametrize(("case", "fmt"), GOLDENS)
def test_golden(case: str, fmt: Format) -> None:
    assert_golden(f"{case}.{SUFFIX[fmt]}", render(CASES[case], fmt))


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
@pytest.mark.parametrize("color", [False, True])
def test_raw_values_never_rendered(fmt: Format, color: bool) -> None:
    assert CANARY not in render(CASES["multi"], fmt, color=color)


def test_plain_text_has_no_escape_codes_and_colour_does() -> None:
    assert "\x1b" not in render_text(CASES["multi"], color=False)
    assert "\x1b[" in render_text(CASES["multi"], color=True)


def test_control_characters_in_values_are_made_visible() -> None:
    plan = make_plan("api", PlanAction.UPDATE, [var("KEY", Action.CHANGED, "a\x1b[2J", "b\r")])
    for fmt in ("text", "markdown"):
        out = render([plan], fmt)
        assert "\x1b" not in out and "\r" not in out
        assert "a\\x1b[2J" in out and "b\\r" in out


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_no_trailing_whitespace(fmt: Format) -> None:
    for line in render(CASES["multi"], fmt).splitlines():
        assert line == line.rstrip()


def test_sensitive_change_says_changed() -> None:
    assert "~ API_TOKEN: (sensitive) -> (sensitive) changed" in render([UPDATE], "text")


def test_markdown_escapes_cells() -> None:
    out = render([UPDATE], "markdown")
    assert "| `LOG_FORMAT` | `%(levelname)s \\| %(message)s` | `` `json` \\| short `` |" in out


def test_markdown_leads_with_the_verdict() -> None:
    first, _, rest = render([ERRORS], "markdown").partition("\n")
    assert first.startswith("**safedeploy plan: worker** (apprunner) — update:")
    assert "2 errors" in first
    assert rest.lstrip().startswith("> **Will not deploy:**")


def test_markdown_folds_long_sections() -> None:
    assert "<details><summary>Variables: 11 to change</summary>" in render([LONG], "markdown")
    assert "<details>" not in render([UPDATE], "markdown")


def test_json_round_trips_with_schema_and_summary() -> None:
    document = json.loads(render(CASES["multi"], "json"))
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["summary"] == {
        "services": 4,
        "changed": 3,
        "unchanged": 1,
        "errors": 2,
        "warnings": 2,
    }
    assert [p["service"] for p in document["plans"]] == [
        "auth-service",
        "backend-api",
        "frontend",
        "worker",
    ]
