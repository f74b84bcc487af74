"""Every lint rule: a failing and a passing case, where it points, and that it never leaks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from safedeploy.lint import (
    RULES,
    Finding,
    Severity,
    lint_facts,
    lint_manifest,
    lint_merge,
    lint_target,
)
from safedeploy.manifest import Manifest, Settings
from safedeploy.merge import MergeResult, merge_env
from safedeploy.model import EnvValue, Platform, SecretRef, ServiceSpec

CANARY = "sk_live_CANARY0123456789abcdef"
LINES = {
    "env": 5,
    "env.VALUE": 6,
    "env.OTHER": 7,
    "secrets": 9,
    "secrets.VALUE": 10,
    "secrets.value": 11,
    "required": 12,
    "required.1": 13,
    "remove": 14,
    "unmanaged": 15,
}


def manifest(**fields: Any) -> Manifest:
    base: dict[str, Any] = {
        "service": "x",
        "platform": "cloudrun",
        "project": "p",
        "region": "r",
        "image": "i",
        "path": Path("m.yaml"),
        "lines": LINES,
    }
    return Manifest(**{**base, **fields})


def merged(
    m: Manifest, live: dict[str, EnvValue], owned: frozenset[str] = frozenset()
) -> MergeResult:
    return merge_env(m.desired_spec().env, live, owned, frozenset(m.remove), m.unmanaged)


def only(findings: list[Finding], code: str) -> Finding:
    """The one finding with `code`, checked against the rule table and the manifest."""
    hits = [f for f in findings if f.code == code]
    assert len(hits) == 1, findings
    finding = hits[0]
    assert finding.severity is RULES[code].severity
    assert finding.file == "m.yaml"
    assert finding.hint
    return finding


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


# (code, manifest fields that trip it, the key and line it must name, words the message has)
MANIFEST_FAILS = {
    "SD101 trailing carriage return": (
        "SD101",
        {"env": {"VALUE": "https://a.example\r"}},
        "env.VALUE",
        6,
        "carriage return (\\r)",
    ),
    "SD101 leading space": ("SD101", {"env": {"VALUE": " debug"}}, "env.VALUE", 6, "starts with"),
    "SD101 inner newline": ("SD101", {"env": {"VALUE": "a\nb"}}, "env.VALUE", 6, "newline"),
    "SD101 byte order mark": ("SD101", {"env": {"VALUE": "\ufeffx"}}, "env.VALUE", 6, "U+FEFF"),
    "SD102 localhost": (
        "SD102",
        {"env": {"VALUE": "http://localhost:8001"}},
        "env.VALUE",
        6,
        "localhost",
    ),
    "SD102 127.0.0.1": ("SD102", {"env": {"VALUE": "redis://127.0.0.1/0"}}, "env.VALUE", 6, "127"),
    "SD102 0.0.0.0": ("SD102", {"env": {"VALUE": "http://0.0.0.0"}}, "env.VALUE", 6, "0.0.0.0"),
    "SD102 ipv6 loopback": ("SD102", {"env": {"VALUE": "http://[::1]:80/"}}, "env.VALUE", 6, "::1"),
    "SD103 case clash": (
        "SD103",
        {"secrets": {"VALUE": SecretRef("a"), "value": SecretRef("b")}},
        "secrets.value",
        11,
        "only by case",
    ),
    "SD104 sensitive name": ("SD104", {"env": {"DB_PASSWORD": "pw"}}, "env.DB_PASSWORD", 5, "name"),
    "SD104 credential value": ("SD104", {"env": {"VALUE": CANARY}}, "env.VALUE", 6, "credential"),
    "SD104 password in url": (
        "SD104",
        {"env": {"VALUE": "postgres://u:pw@db/app"}},
        "env.VALUE",
        6,
        "credential",
    ),
    "SD105 unattached instance": (
        "SD105",
        {
            "env": {"VALUE": "postgresql://u@/db?host=/cloudsql/proj:us-central1:main"},
            "settings": Settings(cloudsql_instances=[]),
        },
        "env.VALUE",
        6,
        "proj:us-central1:main",
    ),
    "SD105 other instance attached": (
        "SD105",
        {
            "env": {"VALUE": "host=/cloudsql/proj:r:main"},
            "settings": Settings(cloudsql_instances=["proj:r:replica"]),
        },
        "env.VALUE",
        6,
        "proj:r:main",
    ),
    "SD106 empty name": ("SD106", {"env": {"": "x"}}, "env.", 5, "empty"),
    "SD106 not portable": ("SD106", {"env": {"1ST": "x"}}, "env.1ST", 5, "portable"),
    "SD106 dash": (
        "SD106",
        {"secrets": {"MY-KEY": SecretRef("k")}},
        "secrets.MY-KEY",
        9,
        "'MY-KEY'",
    ),
    "SD106 reserved on cloudrun": ("SD106", {"env": {"PORT": "8080"}}, "env.PORT", 5, "reserved"),
    "SD107 declared and removed": (
        "SD107",
        {"env": {"VALUE": "1"}, "remove": ["VALUE"]},
        "env.VALUE",
        6,
        "remove:",
    ),
    "SD107 env and secrets": (
        "SD107",
        {"env": {"VALUE": "1"}, "secrets": {"VALUE": SecretRef("v")}},
        "secrets.VALUE",
        10,
        "both",
    ),
}

MANIFEST_PASSES = {
    "SD101 clean value": ("SD101", {"env": {"VALUE": "https://a.example"}}),
    "SD101 inner space": ("SD101", {"env": {"VALUE": "two words"}}),
    "SD102 real host": ("SD102", {"env": {"VALUE": "http://10.0.0.5:8001"}}),
    "SD102 local platform": (
        "SD102",
        {"platform": "local", "command": ["x"], "env": {"VALUE": "http://localhost:1"}},
    ),
    "SD102 localhost-like host": ("SD102", {"env": {"VALUE": "https://localhost.example.com"}}),
    "SD103 distinct names": (
        "SD103",
        {"env": {"VALUE": "1"}, "secrets": {"OTHER": SecretRef("o")}},
    ),
    "SD104 secret reference": ("SD104", {"secrets": {"DB_PASSWORD": SecretRef("db-pw")}}),
    "SD104 public by name": ("SD104", {"env": {"NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY": "pk_live_1"}}),
    "SD104 url without password": ("SD104", {"env": {"VALUE": "postgres://u@db/app"}}),
    "SD105 attached": (
        "SD105",
        {
            "env": {"VALUE": "host=/cloudsql/proj:r:main"},
            "settings": Settings(cloudsql_instances=["proj:r:main"]),
        },
    ),
    "SD106 reserved elsewhere": (
        "SD106",
        {"platform": "apprunner", "env": {"PORT": "8080", "_ok1": "x"}},
    ),
    "SD107 removed, not declared": ("SD107", {"env": {"VALUE": "1"}, "remove": ["OTHER"]}),
}


@pytest.mark.parametrize("case", MANIFEST_FAILS.values(), ids=MANIFEST_FAILS.keys())
def test_manifest_rule_fails(case: tuple[str, dict[str, Any], str, int, str]) -> None:
    code, fields, key, line, words = case
    finding = only(lint_manifest(manifest(**fields)), code)
    assert (finding.key, finding.line) == (key, line)
    assert words in finding.message


@pytest.mark.parametrize("case", MANIFEST_PASSES.values(), ids=MANIFEST_PASSES.keys())
def test_manifest_rule_passes(case: tuple[str, dict[str, Any]]) -> None:
    code, fields = case
    assert code not in codes(lint_manifest(manifest(**fields)))


def test_clean_manifest_has_no_findings() -> None:
    m = manifest(
        env={"LOG_LEVEL": "info", "API_URL": "https://api.example.com"},
        secrets={"DB_PASSWORD": SecretRef("db-password", "7")},
        required=["DB_PASSWORD"],
        remove=["OLD_FLAG"],
    )
    assert lint_manifest(m) == []
    assert lint_merge(m, merged(m, {"OLD_FLAG": "1"})) == []


def test_name_with_equals_sign_keeps_its_value_out() -> None:
    m = manifest(env={f"STRIPE_KEY={CANARY}": ""}, lines={f"env.STRIPE_KEY={CANARY}": 8})
    finding = only(lint_manifest(m), "SD106")
    assert (finding.key, finding.line) == ("env.STRIPE_KEY=…", 8)
    assert CANARY not in finding.message + finding.hint


def test_sd100_required_missing() -> None:
    m = manifest(env={"VALUE": "1"}, required=["VALUE", "GONE", "KEPT"], remove=["GONE"])
    finding = only(lint_merge(m, merged(m, {"GONE": "1", "KEPT": "1"})), "SD100")
    assert (finding.key, finding.line) == ("required", 13)
    assert "GONE" in finding.message


def test_sd100_required_present() -> None:
    m = manifest(env={"VALUE": "1"}, required=["VALUE", "KEPT"])
    assert "SD100" not in codes(lint_merge(m, merged(m, {"KEPT": "1"})))


def test_sd108_refused_unmanaged() -> None:
    m = manifest(unmanaged="fail")
    findings = lint_merge(m, merged(m, {"STRAY": "1", "OWNED": "1"}, owned=frozenset({"OWNED"})))
    finding = only(findings, "SD108")
    assert (finding.key, finding.line) == ("unmanaged", 15)
    assert "STRAY" in finding.message


@pytest.mark.parametrize("unmanaged", ["keep", "remove"])
def test_sd108_not_without_fail(unmanaged: str) -> None:
    m = manifest(unmanaged=unmanaged)
    assert "SD108" not in codes(lint_merge(m, merged(m, {"STRAY": "1"})))


@pytest.mark.parametrize(
    ("value", "rule"),
    [("x\r", "SD101"), ("http://localhost:1", "SD102"), (CANARY, "SD104")],
    ids=["whitespace", "localhost", "credential"],
)
def test_sd109_warns_on_kept_live_values(value: str, rule: str) -> None:
    m = manifest()
    findings = lint_merge(m, merged(m, {"STRIPE_VALUE": value}))
    finding = only(findings, "SD109")
    assert finding.severity is Severity.WARNING
    assert (finding.key, finding.line) == ("unmanaged", 15)
    assert "STRIPE_VALUE" in finding.message and rule in finding.message
    assert not any(f.severity is Severity.ERROR for f in findings)


def test_sd109_not_for_declared_or_clean_values() -> None:
    m = manifest(env={"VALUE": "x"})
    live: dict[str, EnvValue] = {"VALUE": "x\r", "CLEAN": "x", "REF": SecretRef("r")}
    assert "SD109" not in codes(lint_merge(m, merged(m, live)))


def test_canary_never_appears_in_any_finding() -> None:
    url = f"postgresql://u:{CANARY}@/db?host=/cloudsql/p:r:i"
    m = manifest(
        env={
            "DB_PASSWORD": f" {CANARY}\r",
            "VALUE": url,
            "value": CANARY,
            "PORT": CANARY,
            "API_URL": f"http://localhost/{CANARY}",
        },
        secrets={"VALUE": SecretRef("v")},
        required=["MISSING"],
        remove=["PORT"],
        unmanaged="fail",
    )
    live: dict[str, EnvValue] = {"STRAY": CANARY, "OTHER": f"http://127.0.0.1/{CANARY}\n"}
    findings = [*lint_manifest(m), *lint_merge(m, merged(m, live)), *lint_target(m, ServiceSpec())]
    kept = manifest(unmanaged="keep")
    findings += lint_merge(kept, merged(kept, live))
    assert codes(findings) == {code for code in RULES if code < "SD110"}  # what a manifest judges
    for f in findings:
        assert CANARY not in f.message + f.hint + str(f.key)


def test_rule_table_documents_every_code() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert list(RULES) == sorted(RULES)
    assert list(RULES) == re.findall(r"^\| (SD\d{3}) \|", readme, re.MULTILINE)
    assert all(rule.summary and rule.hint for rule in RULES.values())


def test_sd105_left_to_live_is_judged_against_the_target() -> None:
    """A manifest that does not declare cloudsql_instances keeps the live ones: judge those."""
    m = manifest(env={"DATABASE_URL": "postgresql://u@/db?host=/cloudsql/proj:r:main"})
    assert "SD105" not in codes(lint_manifest(m))
    attached = ServiceSpec(settings={"cloudsql_instances": ["proj:r:main"]})
    assert lint_target(m, attached) == []
    finding = only(lint_target(m, ServiceSpec()), "SD105")
    assert finding.key == "env.DATABASE_URL" and "proj:r:main" in finding.message


@pytest.mark.parametrize("as_template", [False, True])
def test_sd104_judges_a_fill_as_written(tmp_path: Path, as_template: bool) -> None:
    """`postgres://app:${DB_PASS}@...` pastes no password; `postgres://app:pw@...` does."""
    from safedeploy.manifest import AS_TEMPLATE, load_manifest

    path = tmp_path / "m.yaml"
    path.write_text(
        "service: x\nplatform: local\ncommand: [app]\nenv:\n"
        "  DATABASE_URL: postgres://app:${DB_PASS}@10.0.0.5/app\n"
        "  PASTED_URL: postgres://app:hunter2x@10.0.0.5/app\n"
    )
    loaded = load_manifest(
        path,
        variables={} if as_template else {"DB_PASS": "hunter2x"},
        environ={},
        unset_ok=AS_TEMPLATE if as_template else frozenset(),
    )
    findings = [f for f in lint_manifest(loaded) if f.code == "SD104"]
    assert [f.key for f in findings] == ["env.PASTED_URL"]


@pytest.mark.parametrize("platform", list(Platform))
def test_every_problem_a_provider_reports_has_a_code_on_every_platform(platform: Platform) -> None:
    from safedeploy.facts import Fact, Problem

    m = manifest(platform=platform)
    for problem in Problem:
        [finding] = lint_facts(m, [Fact(problem, "settings.cpu", "found")])
        assert finding.code in RULES and finding.message == "found"
