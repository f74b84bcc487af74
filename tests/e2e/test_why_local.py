"""Why a deploy failed, through the real CLI on the local platform: the section in every format,
`safedeploy why` afterwards, and a secret planted in the app's own lines that no output shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from safedeploy.providers.local import LocalProvider

DEMO = Path(__file__).resolve().parents[2] / "demo" / "app.py"
CANARY = "canary-7d2e41-signing-key"  # the secret safedeploy reads and registers
DB_PASSWORD = "hunter2-db-pass-never-read"  # a secret safedeploy never reads: masked by shape
TOKEN = "ghp_" + "Z" * 36

APP = f"""\
import os, runpy, sys
if os.environ.get("MODE") == "broken":
    print("\\x1b[31mstarting\\x1b[0m with key", os.environ["SESSION_SIGNING_KEY"], flush=True)
    print("connecting to postgres://shop:{DB_PASSWORD}@db.internal:5432/shop", flush=True)
    print("WARNING: token {TOKEN} is old\\x07", flush=True)
    print("Traceback (most recent call last):", file=sys.stderr)
    print("KeyError: 'CLERK_SECRET_KEY'", file=sys.stderr, flush=True)
    sys.exit(1)
runpy.run_path({str(DEMO)!r}, run_name="__main__")
"""

MANIFEST = f"""\
service: shop-api
platform: local
command: [{sys.executable}, app.py]
env:
  MODE: ${{MODE}}
secrets:
  SESSION_SIGNING_KEY: session-signing-key
probes:
  - name: health
    path: /health
    expect: {{status: 200}}
    retries: 1
    interval: 0.1
    timeout: 5
"""


@dataclass
class Done:
    code: int
    out: str
    err: str


@dataclass
class Box:
    root: Path
    state: Path
    manifest: Path
    said: list[str]

    def run(self, *args: str, **variables: str) -> Done:
        argv = [sys.executable, "-m", "safedeploy", *args]
        argv += [f"--var={k}={v}" for k, v in variables.items()]
        env = {**os.environ, "SAFEDEPLOY_STATE_DIR": str(self.state), "CI": "true"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        self.said += [done.stdout, done.stderr]
        return Done(done.returncode, done.stdout, done.stderr)

    def deploy(self, mode: str, *extra: str) -> Done:
        return self.run("deploy", str(self.manifest), "--yes", *extra, MODE=mode)

    def why(self, *extra: str) -> Done:
        return self.run("why", str(self.manifest), *extra)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    state = tmp_path / "state"
    (state / "secrets").mkdir(parents=True)
    (state / "secrets" / "session-signing-key").write_text(CANARY + "\n")
    (tmp_path / "app.py").write_text(APP)
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    yield Box(tmp_path, state, manifest, [])
    LocalProvider("shop-api", state, tmp_path, os.environ).stop_all()


def assert_clean(text: str) -> None:
    for planted in (CANARY, DB_PASSWORD, TOKEN, "\x1b", "\x07"):
        assert planted not in text


def test_a_failed_deploy_says_why_and_why_says_it_again(box: Box) -> None:
    assert box.deploy("ok").code == 0
    broken = box.deploy("broken")
    assert broken.code == 3, broken.err
    out = broken.out + broken.err
    assert "Why shop-api failed" in out
    assert "hint: secrets.CLERK_SECRET_KEY: CLERK_SECRET_KEY is not set on the new revision" in out
    assert "the process exited with code 1" in out
    assert "postgres://(sensitive)@db.internal" in out

    as_json = box.deploy("broken", "--format", "json")
    assert as_json.code == 3
    (result,) = json.loads(as_json.out)["results"]
    diagnosis = result["diagnosis"]
    assert diagnosis["revision"] == result["revision"]
    assert [h["key"] for h in diagnosis["hints"]] == ["secrets.CLERK_SECRET_KEY"]
    assert any("KeyError" in line["text"] for line in diagnosis["lines"])

    text = box.why()
    assert text.code == 0, text.err
    assert result["release_id"] in text.out
    assert "Why shop-api failed" in text.out
    markdown = box.why("--format", "markdown")
    assert "<details><summary>Why shop-api failed: `CLERK_SECRET_KEY` is not set" in markdown.out
    document = json.loads(box.why("--format", "json").out)
    assert document["release"] == result["release_id"]
    assert document["succeeded_after"] is None
    assert document["diagnosis"]["hints"] == diagnosis["hints"]

    first_failure = json.loads(box.why("--format", "json").out)["release"]
    assert box.deploy("ok").code == 0  # no change: the revision that serves is "ok" already
    box.manifest.write_text(MANIFEST.replace("env:\n", "env:\n  GREETING: salut\n"))
    assert box.deploy("ok").code == 0
    later = json.loads(box.why("--format", "json").out)
    assert later["release"] == first_failure and later["succeeded_after"] is not None
    assert "succeeded after it" in box.why().out

    for said in box.said:
        assert_clean(said)
    for record in (box.state / "shop-api" / "history").glob("*.json"):
        assert_clean(record.read_text())


def test_why_without_a_failed_release_exits_1(box: Box) -> None:
    assert box.deploy("ok").code == 0
    done = box.why()
    assert done.code == 1
    assert "no failed release" in done.err + done.out
    assert box.why("--release", "20991231-000000-000-0000").code == 1
