"""The whole pipeline through the real CLI on the local platform: processes, probes, rollback."""

from __future__ import annotations

import json
import os
import re
import string
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safedeploy.providers.local import LocalProvider

APP = Path(__file__).resolve().parents[2] / "demo" / "app.py"
CANARY = "canary-5f1c9e0b-do-not-print"
PUBLIC = "public: [GREETING]\n"

MANIFEST = f"""\
service: shop-api
platform: local
command: [{sys.executable}, {APP}]
env:
  GREETING: ${{GREETING}}
  BREAK_HEALTH: "${{BREAK_HEALTH}}"
secrets:
  SESSION_SIGNING_KEY: session-signing-key
required: [GREETING, SESSION_SIGNING_KEY]
probes:
  - name: health
    path: /health
    expect: {{status: 200, json: {{ok: true}}}}
    retries: 2
    interval: 0.1
    timeout: 5
"""


@dataclass
class Done:
    code: int
    out: str
    err: str


@dataclass
class Sandbox:
    root: Path
    state: Path
    manifest: Path
    transcript: list[str]

    def run(self, *args: str, **vars: str) -> Done:
        argv = [sys.executable, "-m", "safedeploy", *args]
        argv += [f"--var={k}={v}" for k, v in vars.items()]
        env = {**os.environ, "SAFEDEPLOY_STATE_DIR": str(self.state), "CI": "true"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        self.transcript += [done.stdout, done.stderr]
        return Done(done.returncode, done.stdout, done.stderr)

    def deploy(self, greeting: str = "hello", broken: str = "0", *extra: str) -> Done:
        return self.run(
            "deploy", str(self.manifest), "--yes", *extra, GREETING=greeting, BREAK_HEALTH=broken
        )

    def service(self) -> dict[str, object]:
        path = self.state / "shop-api" / "service.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def serving(self) -> dict[str, object]:
        state = self.service()
        port = state["revisions"][state["active"]]["port"]  # type: ignore[index]
        return requests.get(f"http://127.0.0.1:{port}/", timeout=5).json()  # type: ignore[no-any-return]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    state = tmp_path / "state"
    (state / "secrets").mkdir(parents=True)
    (state / "secrets" / "session-signing-key").write_text(CANARY + "\n")
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    box = Sandbox(tmp_path, state, manifest, [])
    yield box
    LocalProvider("shop-api", state, tmp_path, os.environ).stop_all()


def test_deploy_change_then_broken_deploy_rolls_back(sandbox: Sandbox) -> None:
    first = sandbox.deploy("hello")
    assert first.code == 0, first.err
    assert "+ GREETING" in first.out
    good = sandbox.serving()
    assert good["greeting"] == "hello"

    second = sandbox.deploy("bonjour")
    assert second.code == 0, second.err
    assert "GREETING: (sensitive) -> ${GREETING}" in second.out  # a ${VAR} fill: its template
    assert "bonjour" not in second.out
    serving_before_break = sandbox.serving()
    assert serving_before_break["greeting"] == "bonjour"

    broken = sandbox.deploy("bonjour", "1")
    assert broken.code == 3, broken.err
    assert "rolled back" in broken.out + broken.err
    assert sandbox.serving()["revision"] == serving_before_break["revision"]

    status = sandbox.run("status", str(sandbox.manifest))  # reading needs no deploy variables
    assert f"{serving_before_break['revision']}  100%" in status.out

    history = sandbox.run("history", str(sandbox.manifest))
    outcomes = [line.split()[-1] for line in history.out.splitlines()[1:4]]
    assert outcomes == ["succeeded", "succeeded", "rolled-back"]


def test_rollback_command_serves_the_previous_revision(sandbox: Sandbox) -> None:
    assert sandbox.deploy("one").code == 0
    first = sandbox.serving()["revision"]
    assert sandbox.deploy("two").code == 0
    done = sandbox.run("rollback", str(sandbox.manifest))
    assert done.code == 0, done.err
    assert sandbox.serving()["revision"] == first
    assert sandbox.serving()["greeting"] == "one"


def test_no_change_deploys_nothing(sandbox: Sandbox) -> None:
    assert sandbox.deploy().code == 0
    generation = sandbox.service()["generation"]
    again = sandbox.deploy()
    assert again.code == 0
    assert "no changes" in again.err
    assert sandbox.service()["generation"] == generation


def test_refuses_to_deploy_without_yes_when_no_terminal(sandbox: Sandbox) -> None:
    done = sandbox.run("deploy", str(sandbox.manifest), GREETING="a", BREAK_HEALTH="0")
    assert done.code == 1
    assert "--yes" in done.err
    assert sandbox.service() == {}


def test_stale_saved_plan_is_refused(sandbox: Sandbox) -> None:
    plan_file = sandbox.root / "plan.json"
    planned = sandbox.run(
        "plan", str(sandbox.manifest), "--out", str(plan_file), GREETING="a", BREAK_HEALTH="0"
    )
    assert planned.code == 0, planned.err
    assert sandbox.deploy("other").code == 0  # the service moves after the plan was saved
    generation = sandbox.service()["generation"]
    stale = sandbox.deploy("a", "0", "--plan", str(plan_file))
    assert stale.code == 1
    assert "changed since the plan" in stale.err
    assert sandbox.service()["generation"] == generation


@pytest.mark.parametrize(
    ("planned", "applied"),
    [
        pytest.param(MANIFEST, MANIFEST.replace("env:\n", "env:\n  NEW: x\n"), id="a name added"),
        pytest.param(
            MANIFEST.replace("[GREETING,", "[SESSION_SIGNING_KEY,"),
            MANIFEST.replace("[GREETING,", "[SESSION_SIGNING_KEY,").replace("GREETING", "HELLO"),
            id="a name renamed",
        ),
        pytest.param(MANIFEST + PUBLIC, MANIFEST + PUBLIC, id="a public value changed"),
    ],
)
def test_saved_plan_with_other_inputs_is_refused(
    sandbox: Sandbox, planned: str, applied: str
) -> None:
    """Planning again at apply must give the same names, actions and public values."""
    plan_file = sandbox.root / "plan.json"
    sandbox.manifest.write_text(planned)
    done = sandbox.run(
        "plan", str(sandbox.manifest), "--out", str(plan_file), GREETING="a", BREAK_HEALTH="0"
    )
    assert done.code == 0, done.err
    sandbox.manifest.write_text(applied)
    greeting = "b" if "public:" in applied else "a"
    done = sandbox.run(
        "deploy", str(sandbox.manifest), "--yes", "--plan", str(plan_file),
        GREETING=greeting, HELLO=greeting, BREAK_HEALTH="0",
    )  # fmt: skip
    assert done.code == 1, done.err
    assert "gives another plan than the saved one" in done.err
    assert sandbox.service() == {}


def test_a_saved_plan_holds_no_value_and_no_digest(sandbox: Sandbox) -> None:
    """A hash of a low-entropy value is the value: a plan file keeps neither."""
    plan_file = sandbox.root / "plan.json"
    secret_fill = "pin-20481"
    done = sandbox.run(
        "plan", str(sandbox.manifest), "--out", str(plan_file),
        GREETING=secret_fill, BREAK_HEALTH="0",
    )  # fmt: skip
    assert done.code == 0, done.err
    text = plan_file.read_text()
    assert secret_fill not in text and CANARY not in text
    assert not re.search(r"[0-9a-fA-F]{16}", text), "a hex digest in the saved plan"
    assert '"salt"' not in text and '"digest"' not in text
    # A secret ${VAR} fill that changed is not seen (nothing of it is kept); the service is.
    applied = sandbox.deploy("pin-99999", "0", "--plan", str(plan_file))
    assert applied.code == 0, applied.err


def test_detailed_exitcode(sandbox: Sandbox) -> None:
    args = ("plan", str(sandbox.manifest), "--detailed-exitcode")
    assert sandbox.run(*args, GREETING="a", BREAK_HEALTH="0").code == 2
    assert sandbox.deploy("a").code == 0
    assert sandbox.run(*args, GREETING="a", BREAK_HEALTH="0").code == 0


BAD_INPUTS = {
    "malformed yaml": ("service: shop-api\nplatform: [local\n", "line"),
    "duplicate key": ("service: a\nservice: b\nplatform: local\ncommand: [x]\n", "2"),
    "unknown key": ("service: shop-api\nplatform: local\ncommand: [x]\nimgae: x\n", "4"),
    "wrong type": ("service: shop-api\nplatform: local\ncommand: [x]\nrequired: 5\n", "4"),
    "unset variable": (
        "service: shop-api\nplatform: local\ncommand: [x]\nenv:\n  A: ${NOPE}\n",
        "5",
    ),
    "service escapes the state folder": ("service: ../../x\nplatform: local\ncommand: [x]\n", "1"),
    "service name with a slash": ("service: a/b\nplatform: local\ncommand: [x]\n", "1"),
    **{
        f"probe {what}": (
            f"service: shop-api\nplatform: local\ncommand: [x]\nprobes:\n  - name: h\n    {line}\n",
            "6",
        )
        for what, line in {
            "regex": "expect: {regex: '('}",
            "method": "method: FETCH",
            "negative interval": "interval: -1",
            "zero timeout": "timeout: 0",
            "no successes": "successes: 0",
            "relative path": "path: health",
            "header with a line break": 'headers: {X-Token: "zq-header\\r\\nHost: evil"}',
            "header name": 'headers: {"X Token": b}',
        }.items()
    },
    "probe_url not a url": (
        "service: shop-api\nplatform: local\ncommand: [x]\nprobe_url: not a url\n",
        "4",
    ),
    "service name too long": (f"service: {'a' * 50}\nplatform: local\ncommand: [x]\n", "1"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_1_naming_the_line_and_starts_nothing(sandbox: Sandbox, case: str) -> None:
    text, line = BAD_INPUTS[case]
    sandbox.manifest.write_text(text)
    done = sandbox.deploy()
    assert done.code == 1
    assert str(sandbox.manifest) in done.err
    assert line in done.err
    assert "Traceback" not in done.err
    assert "zq-header" not in done.err + done.out  # a header value is never echoed
    assert sandbox.service() == {}
    assert sorted(p.name for p in sandbox.state.iterdir()) == ["secrets"]  # nothing written


def test_unknown_environment_lists_the_known_ones(sandbox: Sandbox) -> None:
    sandbox.manifest.write_text(MANIFEST + "environments:\n  staging: {env: {GREETING: hi}}\n")
    done = sandbox.deploy("a", "0", "--env", "prod")
    assert done.code == 1
    assert "staging" in done.err
    assert sandbox.service() == {}


def test_missing_secret_is_a_plan_error(sandbox: Sandbox) -> None:
    (sandbox.state / "secrets" / "session-signing-key").unlink()
    done = sandbox.deploy()
    assert done.code == 1
    assert "session-signing-key" in done.out
    assert sandbox.service() == {}


def test_missing_required_name_is_a_plan_error(sandbox: Sandbox) -> None:
    sandbox.manifest.write_text(MANIFEST.replace("required: [", "required: [STRIPE_KEY_ID, "))
    done = sandbox.deploy()
    assert done.code == 1
    assert "STRIPE_KEY_ID" in done.out
    assert sandbox.service() == {}


CANARY_MANIFEST = """\
service: shop-api
platform: local
command: [{python}, {app}, "--token=${{CMD_TOKEN}}"]
public: [GIT_SHA]
env:
  GREETING: ${{GREETING}}
  BREAK_HEALTH: "${{BREAK_HEALTH}}"
  DATABASE_URL: postgres://${{DB_USER}}@10.0.0.5/app
  GIT_SHA: ${{GIT_SHA}}
secrets:
  SESSION_SIGNING_KEY: session-signing-key
settings:
  service_account: ${{ACCOUNT}}@example.iam
  labels: {{team: "${{TEAM}}"}}
probes:
  - name: health
    path: /health
    headers: {{Authorization: "Bearer {bearer}", X-Token: "${{HEADER_TOKEN}}"}}
    expect: {{status: 200}}
    retries: 1
    interval: 0.1
    timeout: 5
  - name: unknown-path
    path: /${{PROBE_TOKEN}}
    expect: {{status: 404}}
    retries: 1
    interval: 0.1
    timeout: 5
"""
PLACES = (
    "secret", "GREETING", "DB_USER", "CMD_TOKEN", "ACCOUNT", "TEAM",
    "HEADER_TOKEN", "PROBE_TOKEN", "bearer", "drift",
)  # fmt: skip
canary_values = st.text(string.ascii_lowercase + string.digits, min_size=8, max_size=20)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({place: canary_values for place in PLACES}))
def test_no_sensitive_value_appears_in_any_output_or_file(random: dict[str, str]) -> None:
    """Canaries in every place a value can take, through the real CLI: plan in every format,
    --out, the step summary, deploy, a failed deploy's rollback, status and history; then every
    output and every file under the state folder is searched for each of them."""
    canaries = {place: f"zq{place.lower()[:4]}{value}" for place, value in random.items()}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        state = root / "state"
        (state / "secrets").mkdir(parents=True)
        (state / "secrets" / "session-signing-key").write_text(canaries["secret"] + "\n")
        manifest = root / "shop.yaml"
        manifest.write_text(
            CANARY_MANIFEST.format(python=sys.executable, app=APP, bearer=canaries["bearer"])
        )
        summary = root / "summary.md"
        box = Sandbox(root, state, manifest, [])
        fills = {k: v for k, v in canaries.items() if k.isupper()}
        variables = {**fills, "BREAK_HEALTH": "0", "GIT_SHA": "0a1b2c3d"}
        try:
            with mock.patch.dict(os.environ, {"GITHUB_STEP_SUMMARY": str(summary)}):
                _every_command(box, variables, canaries["drift"])
        finally:
            LocalProvider("shop-api", state, root, os.environ).stop_all()
        outputs = "\n".join(box.transcript)
        assert "0a1b2c3d" in outputs  # a public variable shows
        assert "postgres://${DB_USER}@10.0.0.5/app" in outputs  # a fill shows its template
        platform_store = state / "shop-api" / "service.json"
        written = [
            p
            for p in root.rglob("*")
            if p.is_file() and "secrets" not in p.parts and p != manifest  # the inputs
        ]
        assert summary in written and root / "p.json" in written
        for place, canary in canaries.items():
            assert canary not in outputs, place
            for path in written:
                # The local platform keeps plain values as a platform does, to start a revision
                # again; a revision's log is the app's own output. A secret is in neither.
                if path in (platform_store, *root.rglob("logs/*")) and place != "secret":
                    continue
                assert canary not in path.read_text(errors="replace"), (place, path)


def _every_command(box: Sandbox, variables: dict[str, str], drift: str) -> None:
    manifest = str(box.manifest)
    out = str(box.root / "p.json")
    assert box.run("plan", manifest, "--out", out, **variables).code == 0, box.transcript[-1]
    for fmt in ("json", "markdown"):
        assert box.run("plan", manifest, "--format", fmt, **variables).code == 0
    deployed = box.run("deploy", manifest, "--yes", **variables)
    assert deployed.code == 0, deployed.err
    state = box.service()
    state["revisions"][state["active"]]["env"]["LEGACY_DSN"] = drift  # type: ignore[index]
    (box.state / "shop-api" / "service.json").write_text(json.dumps(state))
    for fmt in ("text", "json", "markdown"):
        assert box.run("plan", manifest, "--format", fmt, **variables).code == 0
    broken = box.run(
        "deploy", manifest, "--yes", "--format", "json", **{**variables, "BREAK_HEALTH": "1"}
    )
    assert broken.code == 3, broken.err
    state = box.service()
    failed = next(name for name in state["revisions"] if name != state["active"])  # type: ignore[union-attr]
    refused = box.run("rollback", manifest, "--to", failed, **variables)  # probed alone: fails
    assert refused.code == 1, refused.err
    box.run("status", manifest, **variables)
    box.run("history", manifest, **variables)


def test_a_platform_error_that_echoes_a_value_is_masked(sandbox: Sandbox) -> None:
    """The local platform names the command it could not start: the scrubber masks the fill."""
    token = "zq-token-4471"
    sandbox.manifest.write_text(
        'service: bad-api\nplatform: local\ncommand: ["/no/bin-${TOKEN}"]\n'
    )
    done = sandbox.run("deploy", str(sandbox.manifest), "--yes", TOKEN=token)
    assert done.code == 1
    assert "cannot start revision" in done.err and "(sensitive)" in done.err
    assert token not in done.out + done.err
    written = [p for p in sandbox.state.rglob("*") if p.is_file() and "secrets" not in p.parts]
    assert written, "the failed release is recorded"
    for path in written:
        assert token not in path.read_text(), path


def test_secrets_from_a_dotenv_file(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    (sandbox.state / "secrets" / "session-signing-key").unlink()
    dotenv = sandbox.root / "local.env"
    dotenv.write_text(f"session-signing-key={CANARY}\n")
    monkeypatch.setenv("SAFEDEPLOY_LOCAL_SECRETS", str(dotenv))
    done = sandbox.deploy()
    assert done.code == 0, done.err
    assert CANARY not in done.out + done.err
    assert "SESSION_SIGNING_KEY" in sandbox.serving()["env"]  # type: ignore[operator]


def test_state_history_plans_and_logs_are_private(sandbox: Sandbox) -> None:
    """0600 files in 0700 folders: they say what runs where and who deployed it."""
    plan_file = sandbox.root / "plan.json"
    planned = sandbox.run(
        "plan", str(sandbox.manifest), "--out", str(plan_file), GREETING="a", BREAK_HEALTH="0"
    )
    assert planned.code == 0, planned.err
    assert sandbox.deploy("hello").code == 0
    assert sandbox.deploy("bye", "1").code == 3  # a rollback writes more records
    written = [p for p in (sandbox.state / "shop-api").rglob("*")]
    assert any(p.name.endswith(".log") for p in written)
    for path in [*written, plan_file]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert (sandbox.state / "shop-api").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("damaged", "text"),
    [
        ("history record", "{not json"),
        ("history record", '{"id": "x"}'),
        ("state", "[]"),
        ("state", ""),
    ],
)
def test_a_damaged_state_or_history_file_is_named_and_nothing_changes(
    sandbox: Sandbox, damaged: str, text: str
) -> None:
    assert sandbox.deploy("hello").code == 0
    folder = sandbox.state / "shop-api"
    target = (
        sorted((folder / "history").glob("*.json"))[-1]
        if damaged == "history record"
        else folder / "service.json"
    )
    good = target.read_text()
    target.write_text(text)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and "logs" not in p.parts}
    commands = [("status",), ("deploy", "--yes")]
    if damaged == "history record":  # `history` reads no platform state
        commands.append(("history",))
    try:
        for args in commands:
            done = sandbox.run(*args, str(sandbox.manifest), GREETING="changed", BREAK_HEALTH="0")
            assert done.code == 1, (args, done.err)
            assert str(target) in done.err and "move it aside" in done.err, done.err
            assert "internal error" not in done.err and "Traceback" not in done.err
        after = {
            p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and "logs" not in p.parts
        }
        assert after == before
    finally:
        target.write_text(good)  # so the fixture can stop the revision it started
