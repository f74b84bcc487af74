"""Real signals to a real `safedeploy deploy` process, at each step boundary, on `local` and
against the Cloud Run double: it rolls back, records it, lets go of the lease and exits 3.

Nothing here sleeps to hit a step: the app (or the double) makes a step last until the signal
comes, and the test signals once the step's line is on the process's stderr.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from fakes.cloudrun import AppRequest, AppResponse, FakeCloudRun, default_app

from safedeploy.providers.local import LocalProvider

# MODE=ok is healthy; slow-start never listens in time; unhealthy: /health is 503; once:
# /health passes twice (the candidate's probe), then 503. HEALTH_DELAY: seconds per /health.
APP = """\
import json, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = os.environ.get("MODE", "")
if MODE == "slow-start":
    time.sleep(120)
passes = [2 if MODE == "once" else 0]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            time.sleep(float(os.environ.get("HEALTH_DELAY") or 0))
            ok = MODE == "ok" or (MODE == "once" and passes[0] > 0)
            passes[0] -= 1
            self.reply(200 if ok else 503, {"ok": ok})
        else:
            self.reply(200, {"greeting": os.environ.get("GREETING")})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

LOCAL = """\
service: shop-api
platform: local
command: [{python}, {app}]
public: [GREETING, MODE, HEALTH_DELAY]
env:
  GREETING: ${{GREETING}}
  MODE: "${{MODE}}"
  HEALTH_DELAY: "${{HEALTH_DELAY}}"
probes:
  - name: health
    path: /health
    expect: {{status: 200}}
    successes: 2
    retries: {retries}
    interval: 0.2
    timeout: 120
"""
FOREVER = 100_000  # retries: a failing probe lasts until the signal


class Process:
    """A running `safedeploy` whose stderr is read line by line as it comes."""

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "safedeploy", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.popen.stderr is not None
        self.reader = threading.Thread(target=self._read, args=(self.popen.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line)

    def wait_for(self, text: str) -> None:
        """Until a line of stderr holds `text`; the step it names has begun."""
        while not any(text in line for line in self.seen):
            try:
                self.seen.append(self.lines.get(timeout=60))
            except queue.Empty:
                self.popen.kill()
                raise AssertionError(f"no line with {text!r} in:\n{''.join(self.seen)}") from None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.popen.send_signal(signum)

    def finish(self) -> tuple[int, str, str]:
        assert self.popen.stdout is not None
        out = self.popen.stdout.read()
        self.popen.wait(timeout=120)
        self.reader.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.popen.returncode, out, "".join(self.seen)


@dataclass
class Local:
    root: Path
    state: Path
    manifest: Path
    env: dict[str, str] = field(default_factory=dict)
    retries: int = FOREVER

    def start(self, *argv: str, **variables: str) -> Process:
        app = self.root / "app.py"
        text = LOCAL.format(python=sys.executable, app=app, retries=self.retries)
        self.manifest.write_text(text)
        args = [*argv, str(self.manifest)]
        if argv[0] == "deploy":
            args += ["--yes", *(f"--var={k}={v}" for k, v in variables.items())]
        return Process(args, self.env)

    def run(self, *argv: str, **variables: str) -> tuple[int, str, str]:
        return self.start(*argv, **variables).finish()

    def deploy(self, greeting: str, mode: str = "ok", delay: str = "0") -> Process:
        return self.start("deploy", GREETING=greeting, MODE=mode, HEALTH_DELAY=delay)

    def greeting(self) -> str:
        state = json.loads((self.state / "shop-api" / "service.json").read_text())
        port = state["revisions"][state["active"]]["port"]
        body = requests.get(f"http://127.0.0.1:{port}/", timeout=5).json()
        return str(body["greeting"])

    def releases(self) -> list[dict[str, object]]:
        folder = self.state / "shop-api" / "history"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

    def lease(self) -> Path:
        return self.state / "shop-api" / "history" / "lease"


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    (tmp_path / "app.py").write_text(APP)
    manifest = tmp_path / "shop.yaml"
    state = tmp_path / "state"
    env = {**os.environ, "SAFEDEPLOY_STATE_DIR": str(state), "CI": "true"}
    yield Local(tmp_path, state, manifest, env)
    LocalProvider("shop-api", state, tmp_path, os.environ).stop_all()


# The line that says a step has begun, and the app mode that keeps it going until the signal.
LOCAL_STEPS = {
    "waiting-ready": ("created revision", "slow-start"),
    "probing-candidate": ("probing candidate", "unhealthy"),
    "probing-after-switch": ("serves 100%", "once"),
}


@pytest.mark.parametrize("signals", [1, 2], ids=["once", "twice"])
@pytest.mark.parametrize("step", list(LOCAL_STEPS))
def test_local_signal_at_a_step_rolls_back(local: Local, step: str, signals: int) -> None:
    delay = "0.5" if signals == 2 else "0"  # the rollback probes this revision: it lasts
    code, _, err = local.deploy("before", delay=delay).finish()
    assert code == 0, err
    line, mode = LOCAL_STEPS[step]

    deploy = local.deploy("after", mode)
    deploy.wait_for(line)
    deploy.signal()
    if signals == 2:
        deploy.wait_for("rolling back to")
        deploy.signal(signal.SIGINT)
    code, out, err = deploy.finish()

    assert code == 3, err
    assert "cancelling: rolling back" in err
    if signals == 2:
        assert "rollback in progress; carrying on — only SIGKILL stops it" in err
    assert "nothing was changed" not in out + err
    assert local.greeting() == "before"
    assert not local.lease().exists()
    last = local.releases()[-1]
    assert last["outcome"] == "rolled-back"
    assert "cancelled by SIGTERM" in str(last["message"])


def test_sigkill_leaves_an_interrupted_release_that_rollback_finishes(local: Local) -> None:
    code, _, err = local.deploy("before").finish()
    assert code == 0, err
    deploy = local.deploy("after", "once")
    deploy.wait_for("serves 100%")  # the new revision serves; its probe never passes
    deploy.signal(signal.SIGKILL)
    deploy.finish()
    assert local.greeting() == "after"
    assert local.releases()[-1]["outcome"] == "in-progress"

    code, out, _ = local.run("status")
    assert code == 0
    assert "was interrupted and never finished" in out
    assert "safedeploy rollback" in out

    code, _, err = local.deploy("again").finish()
    assert code == 1
    assert "was interrupted and never finished" in err and "safedeploy rollback" in err
    assert local.greeting() == "after"  # refused: nothing changed

    code, out, err = local.run("rollback")
    assert code == 0, err
    assert local.greeting() == "before"
    outcomes = [(r["kind"], r["outcome"]) for r in local.releases()]
    # the refused deploy recorded nothing: it refused before anything changed
    assert outcomes == [
        ("deploy", "succeeded"),
        ("deploy", "rolled-back"),  # the interrupted one, finished
        ("rollback", "succeeded"),
    ]
    assert "was interrupted" not in local.run("status")[1]


def test_local_rollback_to_a_broken_revision_changes_nothing(local: Local) -> None:
    local.retries = 1
    assert local.deploy("healthy").finish()[0] == 0
    assert local.deploy("broken", "unhealthy").finish()[0] == 3  # rolled back, kept stopped
    broken = str(local.releases()[-1]["revision"])

    code, out, err = local.run("rollback", "--to", broken)

    assert code == 1, err
    assert "refused" in out and "nothing changed" in out
    assert local.greeting() == "healthy"
    assert local.releases()[-1]["outcome"] == "failed"


# -- Cloud Run, through the double ---------------------------------------------------------------

NAME = "projects/demo/locations/us-central1/services/api"
CLOUDRUN = """\
service: api
platform: cloudrun
project: demo
region: us-central1
image: {image}
rollout:
  strategy: canary
  steps: [50, 100]
probes:
  - name: health
    path: /health
    expect: {{status: 200}}
    successes: 2
    retries: {retries}
    interval: 0.2
    timeout: 120
"""


def once_app(request: AppRequest) -> AppResponse:
    """Healthy on its first /health (the candidate's probe), 503 ever after."""
    if request.path.startswith("/health"):
        passes = ONCE.setdefault(request.revision, 2)
        ONCE[request.revision] = passes - 1
        return AppResponse.json({"ok": passes > 0}, 200 if passes > 0 else 503)
    return default_app(request)


ONCE: dict[str, int] = {}


@dataclass
class Cloud:
    fake: FakeCloudRun
    root: Path

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": f"{self.fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": f"{self.fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_POLICYTROUBLESHOOTER": f"{self.fake.endpoint}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": f"{self.fake.endpoint}/",
            "CLOUDSDK_AUTH_ACCESS_TOKEN": "test-token",
            "SAFEDEPLOY_CLOUDRUN_BACKOFF": "0.01",
            "SAFEDEPLOY_STATE_DIR": str(self.root / "state"),
            "CI": "true",
        }
        for name in ("GITHUB_STEP_SUMMARY", "GOOGLE_APPLICATION_CREDENTIALS"):
            env.pop(name, None)
        return env

    def start(self, *argv: str, image: str, retries: int = FOREVER) -> Process:
        path = self.root / "api.yaml"
        path.write_text(CLOUDRUN.format(image=image, retries=retries))
        extra = ["--yes"] if argv[0] == "deploy" else []
        return Process([*argv, str(path), *extra], self.env())

    def serving(self) -> dict[str, int]:
        """Revision -> percent, as the service reports what it serves (LATEST resolved)."""
        service = self.fake.service(NAME)
        latest = service["latestReadyRevision"].rsplit("/", 1)[-1]
        return {
            t.get("revision") or latest: t["percent"]
            for t in service["trafficStatuses"]
            if t.get("percent")
        }

    def records(self) -> list[dict[str, object]]:
        annotations = self.fake.service(NAME).get("annotations", {})
        return list(json.loads(annotations.get("safedeploy.dev/releases", "[]")))


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    ONCE.clear()
    with FakeCloudRun(seed=5) as fake:
        fake.set_app("app:once", once_app)
        live = fake.seed_service(NAME, {"template": {"containers": [{"image": "app:1"}]}})
        yield Cloud(fake, tmp_path)
    assert live


CLOUD_STEPS = {
    "waiting-ready": ("created revision", "app:slow"),
    "probing-candidate": ("probing candidate", "app:sick"),
    "between-canary-steps": ("serves 50%", "app:once"),
}


@pytest.mark.parametrize("signals", [1, 2], ids=["once", "twice"])
@pytest.mark.parametrize("step", list(CLOUD_STEPS))
def test_cloudrun_signal_at_a_step_rolls_back(cloud: Cloud, step: str, signals: int) -> None:
    before = cloud.serving()
    line, image = CLOUD_STEPS[step]
    cloud.fake.set_app("app:sick", lambda request: AppResponse.json({"ok": False}, 503))
    if step == "waiting-ready":
        cloud.fake.operation_latency = 600  # the revision does not become ready by itself

    deploy = cloud.start("deploy", image=image)
    deploy.wait_for(line)
    deploy.signal()
    # The rollback's operations end: at once, or (twice) after long enough for a second signal.
    cloud.fake.operation_latency = 2.0 if signals == 2 else 0.0
    if signals == 2:
        deploy.wait_for("rolling back to")
        deploy.signal(signal.SIGHUP)
    code, _, err = deploy.finish()

    assert code == 3, err
    if signals == 2:
        assert "rollback in progress; carrying on" in err
    assert cloud.serving() == before
    assert not any(t.get("tag") == "candidate" for t in cloud.fake.service(NAME)["traffic"])
    assert not (cloud.root / "state" / "api" / "history" / "lease").exists()
    assert "safedeploy.dev/lease" not in cloud.fake.service(NAME).get("annotations", {})
    last = cloud.records()[-1]
    assert last["outcome"] == "rolled-back"
    assert "cancelled by SIGTERM" in str(last["message"])


def test_cloudrun_rollback_to_a_broken_revision_changes_nothing(cloud: Cloud) -> None:
    healthy = cloud.serving()
    cloud.fake.set_app("app:sick", lambda request: AppResponse.json({"ok": False}, 503))
    assert cloud.start("deploy", image="app:sick", retries=1).finish()[0] == 3
    (broken,) = [
        r["name"].rsplit("/", 1)[-1]
        for r in cloud.fake.revisions(NAME)
        if r["containers"][0]["image"] == "app:sick"
    ]

    code, out, err = cloud.start("rollback", "--to", broken, image="app:1", retries=1).finish()

    assert code == 1, err
    assert "refused" in out and "nothing changed" in out
    assert cloud.serving() == healthy
    assert not any(t.get("tag") == "candidate" for t in cloud.fake.service(NAME)["traffic"])


def test_cloudrun_sigkill_mid_canary_then_rollback_finishes_from_annotations(cloud: Cloud) -> None:
    before = cloud.serving()
    deploy = cloud.start("deploy", image="app:once")
    deploy.wait_for("serves 50%")
    deploy.signal(signal.SIGKILL)
    deploy.finish()
    assert cloud.serving() != before  # a split on an unverified revision, and no record of it

    code, out, err = cloud.start("status", image="app:once").finish()
    assert code == 0, err
    assert "was interrupted and never finished" in out

    code, _, err = cloud.start("deploy", image="app:2").finish()
    assert code == 1
    assert "safedeploy rollback" in err

    code, out, err = cloud.start("rollback", image="app:once").finish()
    assert code == 0, err
    assert cloud.serving() == before
    records = cloud.records()
    assert [r["outcome"] for r in records[-2:]] == ["rolled-back", "succeeded"]
    assert records[-1]["kind"] == "rollback"
