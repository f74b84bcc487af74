"""Several services at once over in-memory platforms: order, bounds, skips, a signal, whole lines.

Each service gets its own MemoryPlatform (the deployer tests' double with fault switches); a
small stand-in for Context hands them out, so these tests run the real Fleet and Deployer.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_deployer import MemoryPlatform, manifest

from safedeploy.cancel import CancelToken
from safedeploy.errors import ExitCode, SafedeployError
from safedeploy.facts import LiveService, Revision
from safedeploy.fleet import Fleet, ServiceRun, dependencies, worst
from safedeploy.history import FolderHistory, HistoryStore, Outcome
from safedeploy.manifest import Manifest
from safedeploy.plan import save_plans
from safedeploy.progress import Lines, LiveTable


@dataclass
class Platforms:
    """What Fleet asks of a Context: a provider, a history store and a probe per service."""

    root: Path
    platforms: dict[str, MemoryPlatform]
    cancel: CancelToken = field(default_factory=CancelToken)

    def provider(self, m: Manifest, progress: object = None) -> MemoryPlatform:
        return self.platforms[m.service]

    def history(self, m: Manifest) -> HistoryStore:
        return FolderHistory(self.root / "history" / m.service)

    def probe(self, m: Manifest, on_attempt: object = None) -> object:
        return self.platforms[m.service].probe


@dataclass
class Recorder:
    """A Progress that keeps everything, and a log of when each service applied and finished."""

    lines: list[str] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)
    runs: list[ServiceRun] = field(default_factory=list)

    def say(self, service: str, line: str) -> None:
        self.lines.append(line)

    def step(self, service: str, text: str) -> None:
        self.steps.append((service, text))

    def finished(self, run: ServiceRun) -> None:
        self.runs.append(run)


class Gauge:
    """How many services are between apply and ready at once, at most; and in what order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.events: list[tuple[str, str]] = []

    def enter(self, service: str) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.events.append((service, "start"))

    def leave(self, service: str) -> None:
        with self.lock:
            self.now -= 1
            self.events.append((service, "end"))


class Slow(MemoryPlatform):
    """Takes `seconds` to become ready, and tells the gauge."""

    def __init__(self, service: str, gauge: Gauge, seconds: float = 0.05) -> None:
        super().__init__()
        self.service, self.gauge, self.seconds = service, gauge, seconds

    def wait_ready(self, revision: Revision, cancel: CancelToken) -> Revision:
        self.gauge.enter(self.service)
        time.sleep(self.seconds)
        self.gauge.leave(self.service)
        return super().wait_ready(revision, cancel)


def fleet(
    tmp_path: Path,
    services: dict[str, list[str]],
    *,
    parallel: int = 4,
    platforms: dict[str, MemoryPlatform] | None = None,
) -> tuple[Fleet, dict[str, MemoryPlatform]]:
    """Services by name -> their depends_on, each on its own platform."""
    platforms = platforms or {name: MemoryPlatform() for name in services}
    manifests = [
        manifest(tmp_path, service=name, depends_on=deps, path=tmp_path / f"{name}.yaml")
        for name, deps in services.items()
    ]
    context = Platforms(tmp_path, platforms)
    return Fleet(context, manifests, parallel=parallel), platforms  # type: ignore[arg-type]


def deploy(f: Fleet, progress: Recorder | None = None) -> dict[str, ServiceRun]:
    runs = f.deploy(f.plan(), rollback=True, progress=progress or Recorder())
    return {r.service: r for r in runs}


# -- the order: depends_on, checked before anything is read ------------------------------------


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ({"api": ["auth"]}, "api depends on auth, which is not among the manifests given"),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "depends_on makes a cycle: "),
        ({"a": ["a"]}, "depends_on makes a cycle: a -> a"),
    ],
    ids=["unknown", "cycle", "itself"],
)
def test_a_bad_depends_on_is_an_error_before_any_read(
    tmp_path: Path, services: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(SafedeployError, match=message) as caught:
        fleet(tmp_path, services)
    assert caught.value.exit_code is ExitCode.FAILED


def test_the_error_points_at_the_manifest_line_and_a_cycle_names_each_service(
    tmp_path: Path,
) -> None:
    manifests = [
        manifest(tmp_path, service=n, depends_on=d, path=tmp_path / f"{n}.yaml")
        for n, d in {"a": ["b"], "b": ["c"], "c": ["a"]}.items()
    ]
    with pytest.raises(SafedeployError) as caught:
        dependencies(manifests)
    cycle = caught.value.what.removeprefix("depends_on makes a cycle: ").split(" -> ")
    assert set(cycle) == {"a", "b", "c"} and cycle[0] == cycle[-1]

    with pytest.raises(SafedeployError) as unknown:
        dependencies([manifest(tmp_path, service="api", depends_on=["auth"])])
    assert unknown.value.where == f"{tmp_path / 'api.yaml'} (depends_on)"


def test_one_service_in_two_manifests_is_an_error(tmp_path: Path) -> None:
    twice = [manifest(tmp_path, path=tmp_path / name) for name in ("a.yaml", "b.yaml")]
    with pytest.raises(SafedeployError, match="service api is in two manifests"):
        dependencies(twice)


def test_dependencies_finish_before_their_dependents_start(tmp_path: Path) -> None:
    gauge = Gauge()
    services = {"web": ["api"], "api": ["auth", "db"], "auth": [], "db": []}
    platforms = {name: Slow(name, gauge) for name in services}
    runs = deploy(fleet(tmp_path, services, platforms=platforms)[0])  # type: ignore[arg-type]

    assert {name: r.result.outcome for name, r in runs.items()} == dict.fromkeys(
        services, Outcome.SUCCEEDED
    )
    at = {event: i for i, event in enumerate(gauge.events)}
    for service, deps in services.items():
        for dep in deps:
            assert at[(dep, "end")] < at[(service, "start")], (dep, service)
    assert gauge.most <= 2  # auth and db may overlap; nothing else could run beside them


def test_no_more_than_parallel_services_deploy_at_once(tmp_path: Path) -> None:
    gauge = Gauge()
    names = [f"svc-{i}" for i in range(6)]
    platforms = {name: Slow(name, gauge, 0.1) for name in names}
    services: dict[str, list[str]] = {name: [] for name in names}
    f, _ = fleet(tmp_path, services, parallel=2, platforms=platforms)  # type: ignore[arg-type]
    start = time.monotonic()
    runs = deploy(f)
    assert gauge.most == 2
    assert time.monotonic() - start >= 0.3  # three rounds of two
    assert list(runs) == names  # reported in the order given, whatever order they ended in


# -- failures: skipped dependents, the worst exit code, nothing before a clean plan ---------------


def test_a_failed_dependency_skips_its_dependents_but_not_the_others(tmp_path: Path) -> None:
    services = {"auth": [], "api": ["auth"], "web": ["api"], "docs": []}
    f, platforms = fleet(tmp_path, services)
    platforms["auth"].faults["wait_ready"] = SafedeployError("revision failed to start")
    progress = Recorder()

    runs = deploy(f, progress)

    outcomes = {name: (r.result.outcome, r.result.exit_code) for name, r in runs.items()}
    assert outcomes == {
        "auth": (Outcome.ROLLED_BACK, ExitCode.ROLLED_BACK),
        "api": (Outcome.SKIPPED, ExitCode.FAILED),
        "web": (Outcome.SKIPPED, ExitCode.FAILED),
        "docs": (Outcome.SUCCEEDED, ExitCode.OK),
    }
    assert runs["api"].result.message == "not deployed: it depends on auth (rolled-back)"
    assert runs["web"].result.message == "not deployed: it depends on api (skipped)"
    assert platforms["api"].calls == platforms["web"].calls == []
    assert worst(list(runs.values())) is ExitCode.ROLLED_BACK
    assert "api: not deployed: it depends on auth (rolled-back)" in progress.lines
    assert {r.service for r in progress.runs} == set(services)


def test_a_refusal_before_apply_is_that_service_failing_with_its_exit_code(
    tmp_path: Path,
) -> None:
    f, platforms = fleet(tmp_path, {"a": [], "b": []})
    plans = f.plan()
    platforms["a"].generation += 1  # another writer between plan and apply
    progress = Recorder()

    runs = {r.service: r for r in f.deploy(plans, rollback=True, progress=progress)}

    assert runs["a"].result.outcome is Outcome.FAILED
    assert runs["a"].result.exit_code is ExitCode.FAILED
    assert "changed since the plan" in (runs["a"].result.message or "")
    assert any(line.startswith("a: error: ") for line in progress.lines)
    assert runs["b"].result.outcome is Outcome.SUCCEEDED


class Unreadable(MemoryPlatform):
    def read(self) -> LiveService:
        raise SafedeployError("permission denied", hint="grant roles/run.viewer")


def test_any_service_that_cannot_be_planned_fails_the_whole_plan(tmp_path: Path) -> None:
    one = {"a": MemoryPlatform(), "b": Unreadable()}
    with pytest.raises(SafedeployError, match="permission denied") as alone:
        fleet(tmp_path, {"a": [], "b": []}, platforms=one)[0].plan()
    assert alone.value.hint == "grant roles/run.viewer"  # one error comes as it was raised

    two = {"a": Unreadable(), "b": MemoryPlatform(), "c": Unreadable()}
    with pytest.raises(SafedeployError) as both:
        fleet(tmp_path, {name: [] for name in two}, platforms=two)[0].plan()
    assert both.value.what.startswith("2 of 3 services cannot be planned; nothing was changed:")
    assert both.value.what.count("permission denied") == 2
    assert all(p.calls == [] for p in two.values())


def test_a_saved_plan_is_refused_for_all_naming_each_service_that_moved(tmp_path: Path) -> None:
    f, platforms = fleet(tmp_path, {"a": [], "b": [], "c": []})
    saved = tmp_path / "plan.json"
    save_plans(f.plan(), saved)
    platforms["a"].generation += 1
    platforms["c"].generation += 1

    with pytest.raises(SafedeployError) as caught:
        f.check_saved(f.plan(), saved)

    what = caught.value.what
    assert what.startswith("2 of 3 services do not match the saved plan; nothing was changed")
    assert "service a changed since" in what and "service c changed since" in what
    assert "service b" not in what


# -- a signal ------------------------------------------------------------------------------


class Interrupted(MemoryPlatform):
    """A signal arrives while its revision starts; the wait ends when the token is cancelled."""

    def wait_ready(self, revision: Revision, cancel: CancelToken) -> Revision:
        cancel.cancel("cancelled by SIGTERM")  # what cli's handler does
        assert cancel.wait(10)
        cancel.check()
        raise AssertionError("the token did not stop the wait")


def test_a_signal_rolls_back_what_runs_and_starts_nothing_more(tmp_path: Path) -> None:
    platforms = {"auth": Interrupted(), "api": MemoryPlatform()}
    f, _ = fleet(tmp_path, {"auth": [], "api": ["auth"]}, platforms=platforms)

    runs = deploy(f)

    assert runs["auth"].result.outcome is Outcome.ROLLED_BACK
    assert "cancelled by SIGTERM; rolled back" in (runs["auth"].result.message or "")
    assert platforms["auth"].traffic == {"api-old": 100}
    assert runs["api"].result.outcome is Outcome.SKIPPED
    assert runs["api"].result.message == "not deployed: cancelled by SIGTERM"
    assert platforms["api"].calls == []


# -- what a person sees -------------------------------------------------------------------------


def test_lines_from_many_threads_are_never_split(tmp_path: Path) -> None:
    out: list[str] = []

    def slow_write(line: str) -> None:
        """Writes a character at a time, as a pipe under load may take a long line."""
        for char in line + "\n":
            out.append(char)
            time.sleep(0)

    lines = Lines(slow_write)
    expected = {f"svc-{t}: line {i} " + "x" * 40 for t in range(6) for i in range(20)}

    def speak(t: int) -> None:
        for i in range(20):
            lines.say(f"svc-{t}", f"svc-{t}: line {i} " + "x" * 40)

    threads = [threading.Thread(target=speak, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set("".join(out).splitlines()) == expected


def test_the_live_table_shows_each_step_and_prints_lines_whole(tmp_path: Path) -> None:
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    table = LiveTable(["auth", "api"], console)
    with table:
        table.say("auth", "auth: created revision auth-2")
        table.step("auth", "probe health: attempt 2 failed: status 503")
        snapshot = Console(file=io.StringIO(), width=100, color_system=None)
        snapshot.print(table)
        shown = snapshot.file.getvalue()  # type: ignore[attr-defined]
    assert "auth: created revision auth-2" in screen.getvalue()
    assert "probe health: attempt 2 failed: status 503" in shown
    assert "api" in shown and "waiting" in shown
