"""The deployer's policy over a stateful in-memory platform with fault switches.

The platform here is a double of the Provider protocol, so each failure point (apply, ready,
candidate probe, a canary step, a cancelled token, the rollback itself) can be switched on by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from safedeploy.cancel import NEVER, Cancelled, CancelToken
from safedeploy.deployer import Deployer, plan_service
from safedeploy.errors import ExitCode, SafedeployError, Unrecoverable, VersionMoved
from safedeploy.facts import Fact, LiveService, Revision
from safedeploy.history import FolderHistory, Outcome, Release
from safedeploy.manifest import Manifest, ProbeSpec, Rollout
from safedeploy.model import ServiceSpec
from safedeploy.probes import ProbeResult
from safedeploy.providers.base import Candidate, Capabilities, Pending
from safedeploy.rollback import Rollback


class MemoryPlatform:
    """Revisions and a traffic split in memory; `faults` maps a method name to what it raises."""

    def __init__(self, *, traffic_split: bool = True) -> None:
        self.capabilities = Capabilities(
            traffic_split=traffic_split, candidate_url=True, owned_on_service=True
        )
        self.specs = {"api-old": ServiceSpec(image="img:1", env={"KEEP": "1"})}
        self.traffic: dict[str, int] = {"api-old": 100}
        self.generation = 1
        self.calls: list[tuple[str, object]] = []
        self.faults: dict[str, BaseException] = {}
        self.broken: set[str] = set()  # revisions whose probe fails

    def _call(self, name: str, arg: object = None) -> None:
        self.calls.append((name, arg))
        if name in self.faults:
            raise self.faults.pop(name)

    def read(self) -> LiveService:
        if not self.traffic:
            return LiveService("api", None, str(self.generation))
        active = max(self.traffic, key=lambda n: self.traffic[n])
        return LiveService(
            "api",
            self.specs[active],
            str(self.generation),
            revisions=tuple(
                Revision(n, self.traffic.get(n, 0), url=f"http://{n}") for n in self.specs
            ),
            url="http://service",
        )

    def preflight(self, target: ServiceSpec) -> list[Fact]:
        return []

    def apply(self, candidate: Candidate) -> Pending:
        self._call("apply", candidate.target)
        if candidate.version != str(self.generation):
            raise VersionMoved(where="api")
        name = candidate.revision
        self.specs[name] = candidate.target
        self.generation += 1
        return Pending(candidate, Revision(name, 0, url=f"http://{name}"))

    def wait_ready(self, pending: Pending, cancel: CancelToken) -> Revision:
        self._call("wait_ready", pending.revision.name)
        return pending.revision

    def route(self, split: Mapping[str, int], served: ServiceSpec | None = None) -> None:
        self._call("route", dict(split))
        self.traffic = dict(split)
        self.generation += 1

    def retire(self, keep: Revision, cancel: CancelToken = NEVER) -> None:
        self._call("retire", keep.name)

    def discard(self, candidate: Revision) -> None:
        self._call("discard", candidate.name)

    def probe(self, manifest: Manifest, url: str, cancel: CancelToken) -> list[ProbeResult]:
        """Probe the candidate by its URL, the service by whichever revision serves most."""
        host = url.removeprefix("http://")
        serving = max(self.traffic, key=lambda n: self.traffic[n]) if host == "service" else host
        ok = serving not in self.broken
        return [
            ProbeResult(
                "health", url, ok, 1, 200 if ok else 500, 1.0, 1.0, None if ok else "status 500"
            )
        ]


def manifest(tmp_path: Path, **fields: object) -> Manifest:
    values: dict[str, object] = {
        "service": "api",
        "platform": "cloudrun",
        "project": "p",
        "region": "r",
        "image": "img:2",
        "env": {"NEW": "1"},
        "probes": [ProbeSpec(name="health", path="/health")],
        "path": tmp_path / "api.yaml",
    }
    values.update(fields)
    return Manifest(**values)  # type: ignore[arg-type]


def run(tmp_path: Path, platform: MemoryPlatform, m: Manifest, *, rollback: bool = True):  # type: ignore[no-untyped-def]
    history = FolderHistory(tmp_path / "history")
    deployer = Deployer(m, platform, history, say=lambda _: None, probe=platform.probe)
    return deployer.deploy(
        plan_service(m, platform, FolderHistory(tmp_path / "history")), rollback=rollback
    ), history


def test_success_promotes_and_records(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    result, history = run(tmp_path, platform, manifest(tmp_path))
    assert result.exit_code is ExitCode.OK
    assert platform.traffic == {result.revision: 100}
    assert platform.specs[result.revision].env == {"KEEP": "1", "NEW": "1"}
    assert [r.outcome for r in history.releases()] == [Outcome.SUCCEEDED]


def test_failed_candidate_probe_rolls_back_before_any_traffic_moves(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    m = manifest(tmp_path)
    original = platform.apply

    def apply_broken(candidate: Candidate) -> Pending:
        """The new revision answers 500."""
        pending = original(candidate)
        platform.broken.add(pending.revision.name)
        return pending

    platform.apply = apply_broken  # type: ignore[method-assign]
    result, history = run(tmp_path, platform, m)
    assert result.exit_code is ExitCode.ROLLED_BACK
    assert platform.traffic == {"api-old": 100}
    assert ("discard", result.revision) in platform.calls
    assert history.releases()[-1].outcome is Outcome.ROLLED_BACK
    assert "probe health failed" in (result.message or "")


def test_canary_failure_puts_back_the_exact_split(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    platform.specs["api-older"] = ServiceSpec(image="img:0")
    platform.traffic = {"api-old": 70, "api-older": 30}
    m = manifest(tmp_path, rollout=Rollout(strategy="canary", steps=[10, 50, 100]))
    calls = 0

    def probe(manifest: Manifest, url: str, cancel: CancelToken) -> list[ProbeResult]:
        nonlocal calls
        calls += 1
        ok = calls != 3  # the 50% step fails; the candidate, 10% and restored probes pass
        return [ProbeResult("health", url, ok, 1, 200, 1.0, 1.0, None if ok else "status 500")]

    platform.probe = probe  # type: ignore[method-assign]
    result, _ = run(tmp_path, platform, m)
    routes = [arg for name, arg in platform.calls if name == "route"]
    candidate = result.revision
    assert routes == [
        {candidate: 10, "api-old": 63, "api-older": 27},
        {candidate: 50, "api-old": 35, "api-older": 15},
        {"api-old": 70, "api-older": 30},
    ]
    assert result.exit_code is ExitCode.ROLLED_BACK
    assert platform.traffic == {"api-old": 70, "api-older": 30}


@pytest.mark.parametrize(
    "fault",
    [
        SafedeployError("revision failed to start"),
        Cancelled("cancelled by SIGTERM"),
        RuntimeError("boom"),
    ],
    ids=["not-ready", "cancelled", "unexpected"],
)
def test_any_failure_after_apply_rolls_back(tmp_path: Path, fault: BaseException) -> None:
    platform = MemoryPlatform()
    platform.faults["wait_ready"] = fault
    result, history = run(tmp_path, platform, manifest(tmp_path))
    assert result.exit_code is ExitCode.ROLLED_BACK
    assert platform.traffic == {"api-old": 100}
    assert history.releases()[-1].outcome is Outcome.ROLLED_BACK


def test_rollback_that_fails_too_exits_4_with_both_causes(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    platform.faults["wait_ready"] = SafedeployError("revision failed to start")
    platform.faults["route"] = SafedeployError("traffic update refused")
    result, history = run(tmp_path, platform, manifest(tmp_path))
    assert result.exit_code is ExitCode.NEEDS_HUMAN
    assert "revision failed to start" in (result.message or "")
    assert "traffic update refused" in (result.message or "")
    assert history.releases()[-1].outcome is Outcome.ROLLBACK_FAILED


def test_platform_that_cannot_restore_exits_4_without_our_rollback(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    platform.faults["wait_ready"] = Unrecoverable("ROLLBACK_FAILED")
    result, _ = run(tmp_path, platform, manifest(tmp_path))
    assert result.exit_code is ExitCode.NEEDS_HUMAN
    assert not [c for c in platform.calls if c[0] == "route"]


def test_rollback_off_leaves_the_failure_for_a_human(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    platform.faults["wait_ready"] = SafedeployError("revision failed to start")
    result, history = run(tmp_path, platform, manifest(tmp_path), rollback=False)
    assert result.exit_code is ExitCode.NEEDS_HUMAN
    assert not [c for c in platform.calls if c[0] == "route"]
    assert history.releases()[-1].outcome is Outcome.LEFT_FAILED


def test_apply_refused_is_exit_1_and_recorded(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    m = manifest(tmp_path)
    plan = plan_service(m, platform, FolderHistory(tmp_path / "history"))
    platform.generation += 1  # another writer between plan and apply
    history = FolderHistory(tmp_path / "history")
    deployer = Deployer(m, platform, history, say=lambda _: None, probe=platform.probe)
    with pytest.raises(SafedeployError, match="changed since the plan"):
        deployer.deploy(plan, rollback=True)
    assert platform.traffic == {"api-old": 100}
    assert history.releases()[-1].outcome is Outcome.FAILED


def test_plan_with_errors_makes_no_call(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    m = manifest(tmp_path, required=["MISSING"])
    with pytest.raises(SafedeployError, match="nothing was changed"):
        run(tmp_path, platform, m)
    assert platform.calls == []


def test_no_changes_deploys_nothing(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    m = manifest(tmp_path, image="img:1", env={})
    result, history = run(tmp_path, platform, m)
    assert result.outcome is Outcome.UNCHANGED
    assert platform.calls == []
    assert history.releases() == []


def test_canary_on_a_platform_without_traffic_split_is_a_plan_error(tmp_path: Path) -> None:
    platform = MemoryPlatform(traffic_split=False)
    m = manifest(tmp_path, rollout=Rollout(strategy="canary", steps=[50, 100]))
    plan = plan_service(m, platform, FolderHistory(tmp_path / "history"))
    assert [f.code for f in plan.errors] == ["SD110"]


def test_rollback_command_routes_to_the_revision_before_the_last_release(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    first, history = run(tmp_path, platform, manifest(tmp_path))
    deployer = Rollback(
        manifest(tmp_path), platform, history, say=lambda _: None, probe=platform.probe
    )
    result = deployer.rollback(None)
    assert result.exit_code is ExitCode.OK
    assert platform.traffic == {"api-old": 100}
    assert [r.kind for r in history.releases()] == ["deploy", "rollback"]
    assert history.releases()[-1].traffic_before == {first.revision: 100}


def test_a_first_deploy_that_cannot_be_taken_back_needs_a_human(tmp_path: Path) -> None:
    """Like Cloud Run: a new service serves its first revision at once and cannot serve nothing."""
    platform = MemoryPlatform()
    platform.specs, platform.traffic = {}, {}
    original = platform.apply

    def create_serving(candidate: Candidate) -> Pending:
        pending = original(candidate)
        platform.traffic = {pending.revision.name: 100}
        platform.broken.add(pending.revision.name)
        return pending

    platform.apply = create_serving  # type: ignore[method-assign]
    result, history = run(tmp_path, platform, manifest(tmp_path))
    assert result.exit_code is ExitCode.NEEDS_HUMAN
    assert f"serves {result.revision} 100%, not nothing as before" in (result.message or "")
    assert history.releases()[-1].outcome is Outcome.ROLLBACK_FAILED


# -- an interrupted release (kill -9 left it in progress) ----------------------------------------


def interrupted(tmp_path: Path, platform: MemoryPlatform) -> FolderHistory:
    """A deploy killed at 100%: its release stays in progress, its revision serves."""
    history = FolderHistory(tmp_path / "history")
    platform.specs["api-new"] = ServiceSpec(image="img:2")
    platform.traffic = {"api-new": 100}
    history.save(
        Release(
            id="20261204-120000-000-abcd",
            service="api",
            kind="deploy",
            time="2026-12-04T12:00:00+00:00",
            user="ci@runner",
            git_commit=None,
            image="img:2",
            owned=("NEW",),
            traffic_before={"api-old": 100},
            revision="api-new",
        )
    )
    return history


def test_deploy_refuses_while_an_interrupted_release_left_the_service_changed(
    tmp_path: Path,
) -> None:
    platform = MemoryPlatform()
    history = interrupted(tmp_path, platform)
    deployer = Deployer(manifest(tmp_path), platform, history, say=lambda _: None)
    with pytest.raises(SafedeployError) as refused:
        deployer.deploy(plan_service(manifest(tmp_path), platform, history), rollback=True)
    assert refused.value.exit_code is ExitCode.FAILED
    assert "release 20261204-120000-000-abcd (deploy of api-new" in refused.value.what
    assert "safedeploy rollback" in (refused.value.hint or "")
    assert [name for name, _ in platform.calls] == []


def test_deploy_goes_on_when_the_service_serves_what_it_served_before(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    history = interrupted(tmp_path, platform)
    platform.traffic = {"api-old": 100}  # it was put back by hand
    result, _ = run(tmp_path, platform, manifest(tmp_path))
    assert result.exit_code is ExitCode.OK
    stuck = next(r for r in history.releases() if r.id == "20261204-120000-000-abcd")
    assert stuck.outcome is Outcome.ROLLED_BACK


def test_rollback_finishes_an_interrupted_release(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    history = interrupted(tmp_path, platform)
    deployer = Rollback(
        manifest(tmp_path), platform, history, say=lambda _: None, probe=platform.probe
    )
    result = deployer.rollback(None)
    assert result.exit_code is ExitCode.OK
    assert platform.traffic == {"api-old": 100}
    assert ("discard", "api-new") in platform.calls
    stuck, own = history.releases()
    assert stuck.outcome is Outcome.ROLLED_BACK
    assert own.kind == "rollback" and own.outcome is Outcome.SUCCEEDED
    assert own.traffic_before == {"api-new": 100}


def test_a_cancelled_token_rolls_back_at_the_next_step(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    token = CancelToken()
    original = platform.wait_ready

    def cancelled_while_waiting(pending: Pending, cancel: CancelToken) -> Revision:
        token.cancel("cancelled by SIGTERM")  # the wait itself ends; the step boundary sees it
        return original(pending, cancel)

    platform.wait_ready = cancelled_while_waiting  # type: ignore[method-assign]
    history = FolderHistory(tmp_path / "history")
    m = manifest(tmp_path)
    deployer = Deployer(
        m, platform, history, say=lambda _: None, probe=platform.probe, cancel=token
    )
    result = deployer.deploy(
        plan_service(m, platform, FolderHistory(tmp_path / "history")), rollback=True
    )
    assert result.exit_code is ExitCode.ROLLED_BACK
    assert result.message == "cancelled by SIGTERM; rolled back, serving api-old 100% again"
    assert not any(name == "route" and arg != {"api-old": 100} for name, arg in platform.calls)
    assert history.releases()[-1].outcome is Outcome.ROLLED_BACK


def test_a_deploy_with_no_changes_still_names_an_interrupted_release(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    history = interrupted(tmp_path, platform)
    platform.specs["api-new"] = ServiceSpec(image="img:2", env={"NEW": "1"})  # what it asks
    m = manifest(tmp_path)
    plan = plan_service(m, platform, FolderHistory(tmp_path / "history"))
    assert not plan.has_changes
    with pytest.raises(SafedeployError, match="was interrupted and never finished"):
        Deployer(m, platform, history, say=lambda _: None).deploy(plan, rollback=True)


def test_a_service_name_too_long_for_the_platforms_revision_names_is_a_plan_error(
    tmp_path: Path,
) -> None:
    platform = MemoryPlatform()
    platform.capabilities = Capabilities(
        traffic_split=True, candidate_url=True, owned_on_service=True, revision_name_limit=63
    )
    long = manifest(tmp_path, service="a" * 45)
    plan = plan_service(long, platform, FolderHistory(tmp_path / "history"))
    [finding] = [f for f in plan.errors if f.code == "SD206"]
    assert "70 characters" in finding.message and "at most 38" in (finding.hint or "")
    short = manifest(tmp_path, service="a" * 38)
    assert not plan_service(short, platform, FolderHistory(tmp_path / "h2")).errors
