"""Several services at once: every one planned first, then deployed in `depends_on` order.

Nothing is deployed unless every service planned cleanly. Deploys then run on a bounded pool of
threads, each as soon as the services it depends on have succeeded; one whose dependency failed
is skipped. Each service has its own provider, history store and Deployer, so the threads share
nothing but the progress display, and each service's steps are the ones it would take alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Protocol, TypeVar

from safedeploy.context import Context
from safedeploy.deployer import Deployer, DeployResult, plan_service
from safedeploy.errors import ExitCode, SafedeployError, location
from safedeploy.history import Outcome
from safedeploy.manifest import Manifest, ProbeSpec
from safedeploy.plan import Plan, check_saved, load_saved

_POLL = 0.25  # seconds the main thread waits at a time, so a signal's handler runs promptly

A = TypeVar("A")
T = TypeVar("T")


class Progress(Protocol):
    """Where a deploy's events go: whole lines for a log, or a live table on a terminal."""

    def say(self, service: str, line: str) -> None:
        """A line for the log; it names its service."""

    def step(self, service: str, text: str) -> None:
        """What the service is doing now (a probe attempt): shown live, never logged."""

    def finished(self, run: ServiceRun) -> None:
        """The service is done, one way or another."""


@dataclass(frozen=True)
class ServiceRun:
    """One service's part in a deploy: what happened, and how long it took."""

    result: DeployResult
    seconds: float

    @property
    def service(self) -> str:
        return self.result.service


def worst(runs: Sequence[ServiceRun]) -> ExitCode:
    """The process exit code: the worst of the services' (4 > 3 > 1 > 0)."""
    return max((r.result.exit_code for r in runs), default=ExitCode.OK)


def dependencies(manifests: Sequence[Manifest]) -> dict[str, tuple[str, ...]]:
    """Each service's `depends_on`, checked: one manifest per service, every name among them,
    no cycle. A typo would otherwise drop an ordering without a word."""
    paths: dict[str, Path] = {}
    for m in manifests:
        if m.service in paths:
            raise SafedeployError(
                f"service {m.service} is in two manifests: {paths[m.service]} and {m.path}",
                hint="deploy each service from one manifest",
            )
        paths[m.service] = m.path
    for m in manifests:
        unknown = [name for name in m.depends_on if name not in paths]
        if unknown:
            raise SafedeployError(
                f"{m.service} depends on {', '.join(unknown)}, which is not among the "
                "manifests given",
                where=location(m.path, m.line_of("depends_on"), "depends_on"),
                hint="give its manifest too (an unchanged service costs one read), "
                "or correct the name",
            )
    graph = {m.service: tuple(dict.fromkeys(m.depends_on)) for m in manifests}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise SafedeployError(
            f"depends_on makes a cycle: {cycle}", hint="one of them must not wait for the other"
        ) from None
    return graph


class Fleet:
    """The services of one command: their manifests, providers and deploy order."""

    def __init__(self, context: Context, manifests: Sequence[Manifest], *, parallel: int) -> None:
        self.context = context
        self.graph = dependencies(manifests)
        self.manifests = {m.service: m for m in manifests}
        self.parallel = parallel
        self._progress: Progress | None = None  # while deploying
        # Made here, one at a time: each service gets its own provider (Cloud Run clients are
        # per service; App Runner's share one thread-safe boto3 client per region).
        self.providers = {
            m.service: context.provider(m, progress=self._waiting_line(m.service))
            for m in manifests
        }

    @property
    def services(self) -> list[str]:
        return list(self.manifests)

    # -- plan --------------------------------------------------------------------------------

    def plan(self, *, validate: bool = False) -> list[Plan]:
        """Plan every service, reads in parallel; any service that cannot be planned fails all."""

        def one(service: str) -> Plan:
            manifest = self.manifests[service]
            history = self.context.history(manifest)
            return plan_service(manifest, self.providers[service], history, validate=validate)

        with ThreadPoolExecutor(self.parallel, thread_name_prefix="plan") as pool:
            outcomes = list(pool.map(lambda service: _attempt(one, service), self.services))
        return _all_or_error(outcomes, "cannot be planned")

    def check_saved(self, plans: Sequence[Plan], plan_file: Path) -> None:
        """Refuse the whole set when any service moved since `plan --out`, naming each one."""
        saved = load_saved(plan_file)

        def one(plan: Plan) -> None:
            if plan.service not in saved:
                raise SafedeployError(
                    f"the saved plan has no service {plan.service}", where=str(plan_file)
                )
            check_saved(plan, saved[plan.service], plan_file)

        _all_or_error([_attempt(one, p) for p in plans], "do not match the saved plan")

    # -- deploy ------------------------------------------------------------------------------

    def deploy(
        self, plans: Sequence[Plan], *, rollback: bool, progress: Progress
    ) -> list[ServiceRun]:
        """Deploy in dependency order, `parallel` at a time; the runs in the manifests' order.

        A cancelled token (a signal) stops starting services; each running deploy sees the same
        token at its next step boundary or wait, so it rolls back as it would alone.
        """
        self._progress = progress
        by_service = {p.service: p for p in plans}
        runs: dict[str, ServiceRun] = {}
        running: dict[Future[ServiceRun], str] = {}
        sorter = TopologicalSorter(self.graph)
        sorter.prepare()
        ready: list[str] = []
        cancel = self.context.cancel
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="deploy") as pool:
            while sorter.is_active() and not (cancel.cancelled and not running):
                ready += sorter.get_ready()
                for service in list(ready):
                    failed = [d for d in self.graph[service] if runs[d].result.exit_code]
                    if failed:
                        ready.remove(service)
                        runs[service] = self._skip(service, _because(failed, runs), progress)
                        sorter.done(service)
                while ready and len(running) < self.parallel and not cancel.cancelled:
                    plan = by_service[ready.pop(0)]
                    running[pool.submit(self._deploy_one, plan, rollback, progress)] = plan.service
                if running:
                    done, _ = wait(running, timeout=_POLL, return_when=FIRST_COMPLETED)
                    for future in done:
                        service = running.pop(future)
                        runs[service] = future.result()
                        sorter.done(service)
        for service in self.services:
            if service not in runs:
                runs[service] = self._skip(service, cancel.reason, progress)
        return [runs[s] for s in self.services]

    def _deploy_one(self, plan: Plan, rollback: bool, progress: Progress) -> ServiceRun:
        service = plan.service
        manifest = self.manifests[service]
        started = time.monotonic()
        progress.step(service, "starting")

        def attempt(spec: ProbeSpec, n: int, error: str | None) -> None:
            outcome = f"failed: {error}" if error else "ok"
            progress.step(service, f"probe {spec.name}: attempt {n} {outcome}")

        deployer = Deployer(
            manifest,
            self.providers[service],
            self.context.history(manifest),
            say=lambda line: progress.say(service, line),
            probe=self.context.probe(manifest, on_attempt=attempt),
            on_attempt=attempt,
            cancel=self.context.cancel,
        )
        try:
            result = deployer.deploy(plan, rollback=rollback)
        except SafedeployError as exc:  # refused before anything changed: lease, etag, apply
            progress.say(service, f"{service}: error: {exc}")
            result = DeployResult(service, Outcome.FAILED, exc.exit_code, message=str(exc))
        run = ServiceRun(result, time.monotonic() - started)
        progress.finished(run)
        return run

    def _skip(self, service: str, why: str, progress: Progress) -> ServiceRun:
        message = f"not deployed: {why}"
        progress.say(service, f"{service}: {message}")
        run = ServiceRun(
            DeployResult(service, Outcome.SKIPPED, ExitCode.FAILED, message=message), 0
        )
        progress.finished(run)
        return run

    def _waiting_line(self, service: str) -> Callable[[str], None]:
        """A platform's waiting line (App Runner's operation status) becomes the service's step."""

        def step(text: str) -> None:
            if self._progress is not None:
                self._progress.step(service, text)

        return step


def _attempt(func: Callable[[A], T], arg: A) -> T | SafedeployError:
    """The result of func(arg), or the SafedeployError it raised."""
    try:
        return func(arg)
    except SafedeployError as exc:
        return exc


def _all_or_error(outcomes: Sequence[T | SafedeployError], failing: str) -> list[T]:
    """The outcomes when none is an error; else one error that names every failed service."""
    errors = [o for o in outcomes if isinstance(o, SafedeployError)]
    if not errors:
        return [o for o in outcomes if not isinstance(o, SafedeployError)]
    if len(errors) == 1:
        raise errors[0]
    lines = "\n".join(f"  {e}".replace("\n", "\n  ") for e in errors)
    raise SafedeployError(
        f"{len(errors)} of {len(outcomes)} services {failing}; nothing was changed:\n{lines}",
        exit_code=max(e.exit_code for e in errors),
    )


def _because(failed: Sequence[str], runs: dict[str, ServiceRun]) -> str:
    return "it depends on " + ", ".join(f"{d} ({runs[d].result.outcome})" for d in failed)
