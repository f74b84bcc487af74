"""The Cloud Run deploy lease, on the service itself: two processes that share nothing but the
double (each its own state folder), a lease a killed run left elsewhere, `status` and `unlock`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fakes.cloudrun import AppRequest, AppResponse, default_app

from e2e.test_cloudrun import NAME, PROBES, Cloud, _env, candidate_tags, seed, serving
from e2e.test_cloudrun import cloud as cloud  # the fixture
from safedeploy.history import who
from safedeploy.history.cloudrun import lease_ttl
from safedeploy.manifest import load_manifest

LEASE = "safedeploy.dev/lease"
CANARY = "rollout: {strategy: canary, steps: [10, 50, 100]}\n"


def _lease(cloud: Cloud) -> dict[str, Any] | None:
    raw = cloud.service().get("annotations", {}).get(LEASE)
    return json.loads(raw) if raw else None


def _slow_health(request: AppRequest) -> AppResponse:
    if request.path == "/health":
        time.sleep(1)  # the first deploy holds its lease while it probes
    return default_app(request)


def _leave_lease(cloud: Cloud, **lease: Any) -> None:
    """A lease a run on another machine left when it was killed."""

    def put(spec: dict[str, Any]) -> None:
        spec.setdefault("annotations", {})[LEASE] = json.dumps(lease)

    cloud.fake.external_update(NAME, put)


def test_a_second_machine_fails_fast_naming_the_holder_and_writes_nothing(cloud: Cloud) -> None:
    old = seed(cloud, _env(A="1"))
    cloud.fake.set_app("app:slow", _slow_health)
    first = cloud.manifest("image: app:slow\n" + CANARY + PROBES, "first.yaml")
    second = cloud.manifest("image: app:3\n" + PROBES, "second.yaml")
    ci = {
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_ACTOR": "octocat",
    }
    env = {k: v for k, v in {**os.environ, **cloud.env(), **ci}.items() if v is not None}
    env["SAFEDEPLOY_STATE_DIR"] = str(cloud.root / "runner-a")
    argv = [sys.executable, "-m", "safedeploy", "deploy", first, "--yes"]
    holder = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while (lease := _lease(cloud)) is None:
            assert time.monotonic() < deadline and holder.poll() is None, holder.communicate()
            time.sleep(0.02)
        writes = len(cloud.fake.calls("UpdateService"))
        busy = cloud.run("deploy", second, "--yes", "--state-dir", str(cloud.root / "runner-b"))
        shown = cloud.run("status", second, "--state-dir", str(cloud.root / "runner-b"))
    finally:
        out, err = holder.communicate(timeout=90)
    cloud.transcript += [out, err]

    assert holder.returncode == 0, err
    assert busy.code == 1
    run = "https://github.com/acme/api/actions/runs/4242"
    assert f"another deploy of api is running: {who()} (pid {holder.pid}, {run} by octocat)" in (
        busy.err
    )
    assert f"since {lease['since']}" in busy.err and "safedeploy unlock" in busy.err
    # the second run wrote nothing, its own lease included: no write carries its process
    mine = [
        c
        for c in cloud.fake.calls("UpdateService")[writes:]
        if f'"pid": {os.getpid()}' in c.body.get("annotations", {}).get(LEASE, "")
    ]
    assert mine == []
    assert f"deploy lease: held by {who()} (pid {holder.pid}" in shown.out
    assert f"expires {lease['expires']}" in shown.out
    # it outlives the longest deploy the manifest allows: 4 rounds of 900 s waits and probes
    held = datetime.fromisoformat(lease["expires"]) - datetime.fromisoformat(lease["since"])
    assert held > timedelta(seconds=5 * 900)
    assert _lease(cloud) is None  # released on success
    new = cloud.service()["template"]["revision"]
    assert serving(cloud) == {new: 100} and new != old
    assert not (cloud.root / "runner-b").exists()  # nothing local: the lease is on the service


def test_a_lease_a_killed_run_left_is_shown_and_unlock_releases_it_alone(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    since = datetime.now(UTC).replace(microsecond=0)
    left = {
        "holder": "ci@runner-7",
        "pid": 31337,
        "since": since.isoformat(),
        "expires": (since + timedelta(hours=2)).isoformat(),
        "token": "t",
    }
    _leave_lease(cloud, **left)
    manifest = cloud.manifest("image: app:2\n" + PROBES)
    before = cloud.service()

    busy = cloud.run("deploy", manifest, "--yes")
    status = cloud.run("status", manifest)
    refused = cloud.run("unlock", manifest)  # CI: nobody to ask
    unlocked = cloud.run("unlock", manifest, "--yes")
    after = cloud.service()
    again = cloud.run("unlock", manifest, "--yes")
    deployed = cloud.run("deploy", manifest, "--yes")

    assert busy.code == 1 and "ci@runner-7 (pid 31337) since" in busy.err
    assert status.code == 0
    assert f"deploy lease: held by ci@runner-7 (pid 31337) since {left['since']}" in status.out
    assert f"expires {left['expires']}" in status.out and "safedeploy unlock" in status.out
    assert refused.code == 1 and "pass --yes" in refused.err
    assert unlocked.code == 0, unlocked.err
    assert "held by ci@runner-7" in unlocked.out and "released" in unlocked.out
    # nothing else moved: no traffic, no tag, no revision
    assert after["traffic"] == before["traffic"] and after["template"] == before["template"]
    assert LEASE not in after.get("annotations", {})
    assert again.code == 0 and "no deploy lease is held" in again.out
    assert deployed.code == 0, deployed.err


def test_an_expired_lease_is_taken_over(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    long_ago = datetime.now(UTC) - timedelta(days=1)
    _leave_lease(
        cloud,
        holder="ci@runner-7",
        pid=1,
        since=long_ago.isoformat(),
        expires=(long_ago + timedelta(hours=1)).isoformat(),
    )
    manifest = cloud.manifest("image: app:2\n" + PROBES)

    status = cloud.run("status", manifest)
    done = cloud.run("deploy", manifest, "--yes")

    assert "left by ci@runner-7 (pid 1)" in status.out and "the next deploy takes it" in status.out
    assert done.code == 0, done.err
    assert _lease(cloud) is None


def test_the_lease_is_released_after_a_rollback(cloud: Cloud) -> None:
    seed(cloud, _env(A="1"))
    cloud.fake.set_app("app:sick", lambda request: AppResponse.json({"ok": False}, 503))
    manifest = cloud.manifest("image: app:sick\n" + PROBES)

    done = cloud.run("deploy", manifest, "--yes")
    back = cloud.run("rollback", manifest)

    assert done.code == 3
    assert _lease(cloud) is None and candidate_tags(cloud) == []
    assert back.code == 1, back.out + back.err
    assert _lease(cloud) is None


def test_the_lease_outlives_every_wait_the_manifest_allows(cloud: Cloud) -> None:
    path = cloud.manifest(
        "image: app:2\nrollout:\n  strategy: canary\n  steps: [10, 50, 100]\n"
        "  analysis: {interval: 10m}\n" + PROBES
    )
    manifest = load_manifest(Path(path))

    # 4 rounds (the candidate, 3 steps) of a 5 s probe and a 600 s analysis, 5 ready waits
    assert lease_ttl(manifest, 900) == timedelta(seconds=5 * 900 + 4 * 605, minutes=10)


def test_a_first_deploy_holds_the_local_lease_and_unlock_releases_it(cloud: Cloud) -> None:
    lease = cloud.root / "state" / "api" / "history" / "lease"
    lease.parent.mkdir(parents=True)
    lease.write_text(json.dumps({"holder": "ci@elsewhere", "pid": 5, "since": "2026-12-01"}))
    manifest = cloud.manifest("image: app:1\n" + PROBES)

    busy = cloud.run("deploy", manifest, "--yes")
    written = cloud.fake.mutating_calls()
    unlocked = cloud.run("unlock", manifest, "--yes")
    deployed = cloud.run("deploy", manifest, "--yes")

    assert busy.code == 1 and "ci@elsewhere (pid 5) since 2026-12-01" in busy.err
    assert written == []
    assert unlocked.code == 0 and "released" in unlocked.out
    assert deployed.code == 0, deployed.err
    assert not lease.exists() and _lease(cloud) is None
