"""Carry out a plan: apply -> wait ready -> probe -> promote -> record.

Any failure after apply (not ready, a failed probe, a cancelled token) puts back the traffic split
that served before, probes it, and records both what failed and what serves now. The token is
checked between steps; the rollback's own waits ignore it, so a further signal cannot cut it
short. The deployer never decides again what to change: it runs the plan it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from safedeploy.analysis import describe_step, watch
from safedeploy.cancel import NEVER, Cancelled, CancelToken
from safedeploy.diagnosis import Explanation, Sent, gather
from safedeploy.errors import ExitCode, SafedeployError, Unrecoverable
from safedeploy.facts import Revision
from safedeploy.history import (
    HistoryStore,
    Outcome,
    Release,
    git_commit,
    new_release_id,
    revision_name,
    unfinished,
    who,
)
from safedeploy.lint import lint_facts, lint_platform
from safedeploy.manifest import Manifest
from safedeploy.model import ServiceSpec
from safedeploy.plan import Plan, build_plan
from safedeploy.probes import OnAttempt, ProbeResult, describe, run_probes
from safedeploy.providers.base import Candidate, Measures, Pending, Provider, Validates

Say = Callable[[str], None]
# Probes of a manifest at a URL; the token ends the waits between attempts (NEVER in a rollback).
Probe = Callable[[Manifest, str, CancelToken], list[ProbeResult]]


@dataclass(frozen=True)
class DeployResult:
    """What happened, for people and for scripts."""

    service: str
    outcome: Outcome
    exit_code: ExitCode
    release_id: str | None = None
    revision: str | None = None
    revision_url: str | None = None  # where the new revision alone answered (a tag URL)
    url: str | None = None
    traffic_before: dict[str, int] = field(default_factory=dict)
    traffic_after: dict[str, int] = field(default_factory=dict)
    probes: tuple[ProbeResult, ...] = ()
    message: str | None = None
    diagnosis: Explanation | None = None  # why it failed, on exit 3 and 4
    analysis: tuple[dict[str, Any], ...] = ()  # each canary step's figures and verdict


class DeployFailed(Exception):
    """A failure after apply: the deployer rolls back, then reports `reason`."""

    def __init__(
        self, reason: str, probes: Sequence[ProbeResult] = (), *, needs_human: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.probes = tuple(probes)
        self.needs_human = needs_human  # the platform says it cannot be put back by us


def plan_service(
    manifest: Manifest,
    provider: Provider,
    history: HistoryStore,
    *,
    validate: bool = False,
    keep_unnamed: bool = False,
) -> Plan:
    """Read the live service and plan against it; the only provider calls are reads, and with
    `validate` the update the platform checks without making it. `keep_unnamed` (exec): plan
    as if nothing were owned, so a name the manifest leaves out is kept, as a command names
    only what it changes."""
    live = provider.read()
    if keep_unnamed:
        live = replace(live, owned=frozenset())
    elif not provider.capabilities.owned_on_service:
        last = history.last_succeeded()
        live = replace(live, owned=frozenset(last.owned) if last else frozenset())
    plan = build_plan(manifest, live, lint_platform(manifest, live, provider.capabilities))
    facts = provider.preflight(plan.target)
    if validate and plan.has_changes:
        if not isinstance(provider, Validates):
            raise SafedeployError(
                f"platform {manifest.platform} cannot check an update without making it",
                hint="drop --validate",
            )
        facts += provider.validate(_candidate(plan, new_release_id(), plan.live_fingerprint))
    return replace(plan, findings=(*plan.findings, *lint_facts(manifest, facts)))


def _candidate(plan: Plan, release_id: str, version: str) -> Candidate:
    """The plan's decision to make a new revision, as the provider carries it out."""
    return Candidate(
        version=version,
        target=plan.target,
        owned=plan.owned,
        revision=revision_name(plan.service, release_id),
        release_id=release_id,
    )


class Deployer:
    def __init__(
        self,
        manifest: Manifest,
        provider: Provider,
        history: HistoryStore,
        *,
        say: Say,
        probe: Probe | None = None,
        on_attempt: OnAttempt | None = None,
        cancel: CancelToken = NEVER,
    ) -> None:
        self.manifest = manifest
        self.provider = provider
        self.history = history
        self.say = say
        self.cancel = cancel
        # `on_attempt` lets a terminal show each probe attempt live; a given `probe` runs its own.
        self.probe = probe or (
            lambda m, url, token: run_probes(
                m.probes, url, sleep=token.sleep, on_attempt=on_attempt
            )
        )

    # -- deploy ------------------------------------------------------------------------------

    def deploy(self, plan: Plan, *, rollback: bool) -> DeployResult:
        if not plan.ok:
            raise SafedeployError(
                f"the plan for {plan.service} has {len(plan.errors)} error(s); nothing was changed",
                where=plan.manifest,
                hint="fix the findings above, then plan again",
            )
        if not plan.has_changes:
            stuck = unfinished(self.history.releases())
            if stuck is not None and not self.history.held():
                self._refuse_if_changed(stuck, plan.serving)
            self.say(f"{plan.service}: no changes; nothing to deploy")
            return DeployResult(plan.service, Outcome.UNCHANGED, ExitCode.OK)
        with self.history.lease(plan.service, plan.live_fingerprint) as version:
            if self.cancel.cancelled:  # a signal came as this deploy was about to start
                message = f"not deployed: {self.cancel.reason}"
                return DeployResult(plan.service, Outcome.SKIPPED, ExitCode.FAILED, message=message)
            stuck = unfinished(self.history.releases())  # we hold the lease: its holder is gone
            if stuck is not None:
                self._refuse_if_changed(stuck, plan.serving)
            result = self._deploy(plan, version or plan.live_fingerprint, rollback=rollback)
            if stuck is not None:  # it serves what served before it: recorded as put back
                self.say(f"{plan.service}: {interrupted_note(stuck)}; marked rolled back")
                message = "interrupted; what served before it was found serving again"
                self.history.save(stuck.finished(Outcome.ROLLED_BACK, message))
            return result

    def _refuse_if_changed(self, stuck: Release, serving: dict[str, int]) -> None:
        """An interrupted release that left the service changed is finished by `rollback` first;
        deploying over it would record its split as the one to come back to."""
        if serving != stuck.traffic_before:
            raise SafedeployError(
                f"{interrupted_note(stuck)}; the service serves {describe_split(serving)}, "
                f"not {describe_split(stuck.traffic_before)} as before it; nothing was changed",
                where=str(self.manifest.path),
                hint=f"run `safedeploy rollback {self.manifest.argument}` to finish it, "
                "then deploy again",
            )

    def _deploy(self, plan: Plan, version: str, *, rollback: bool) -> DeployResult:
        """`version`: the platform's version to apply against (the plan's, or the one the
        lease's own write left)."""
        release = self._start_release(
            "deploy",
            plan.serving,
            image=plan.target.image or " ".join(plan.target.command[:1]) or None,
            owned=tuple(sorted(plan.owned)),
        )
        try:
            pending = self.provider.apply(_candidate(plan, release.id, version))
        except SafedeployError as exc:
            self.history.save(release.finished(Outcome.FAILED, exc.what))
            raise
        candidate = pending.revision
        release = self.history.save(replace(release, revision=candidate.name))
        self.say(f"{plan.service}: created revision {candidate.name}")
        probes: list[ProbeResult] = []
        try:
            self.cancel.check()
            candidate = self._wait(pending)
            self.cancel.check()
            if self.provider.capabilities.candidate_url and candidate.url:
                probes += self._probe(candidate.url, f"candidate {candidate.name}", self.cancel)
            for percent in self._steps(plan.serving):
                self.cancel.check()
                split = self._split(plan.serving, candidate, percent)
                self.provider.route(split)
                self.say(f"{plan.service}: {candidate.name} serves {percent}%")
                probes += self._probe(
                    self._service_url(), f"the service at {percent}%", self.cancel
                )
                release, failed = self._analyse(release, percent, candidate.name, split)
                if failed:
                    raise DeployFailed(failed)
            self.cancel.check()
            self.provider.retire(candidate, self.cancel)
        except Exception as exc:
            failure = as_failure(exc)
            probes += failure.probes
            result = self._after_failure(release, plan, candidate, failure, probes, rollback)
        else:
            result = self._finish(release, Outcome.SUCCEEDED, ExitCode.OK, None, probes)
        return replace(result, revision_url=candidate.url)

    def _analyse(
        self, release: Release, percent: int, candidate: str, split: dict[str, int]
    ) -> tuple[Release, str | None]:
        """Judge the step by the traffic it took (analysis.py), recording its figures; the
        reason to roll back, if any."""
        analysis = self.manifest.rollout.analysis
        if analysis is None or not isinstance(self.provider, Measures):
            return release, None
        stable = [name for name, share in split.items() if share and name != candidate]
        judged = watch(self.provider, analysis, percent, candidate, stable, self.cancel)
        self.say(f"{self.manifest.service}: {describe_step(judged)}")
        release = self.history.save(replace(release, analysis=(*release.analysis, asdict(judged))))
        return release, describe_step(judged) if judged.failed else None

    def _wait(self, pending: Pending) -> Revision:
        name = pending.revision.name
        try:
            ready = self.provider.wait_ready(pending, self.cancel)
        except SafedeployError as exc:
            raise DeployFailed(
                f"revision {name} did not become ready: {exc.what}",
                needs_human=isinstance(exc, Unrecoverable),
            ) from exc
        self.say(f"{self.manifest.service}: revision {name} is ready")
        return ready

    def _steps(self, serving: dict[str, int]) -> list[int]:
        """Canary steps share traffic with what served before; with nothing serving, 100 at once."""
        rollout = self.manifest.rollout
        return rollout.steps if rollout.strategy == "canary" and serving else [100]

    @staticmethod
    def _split(old: dict[str, int], candidate: Revision, percent: int) -> dict[str, int]:
        """The candidate at `percent`, the rest shared as it was before, in proportion."""
        split = {candidate.name: percent}
        rest = 100 - percent
        total = sum(old.values())
        if rest and total:
            shares = {name: rest * share // total for name, share in old.items()}
            first = next(iter(shares))
            shares[first] += rest - sum(shares.values())
            split.update({name: share for name, share in shares.items() if share})
        return split

    def _service_url(self) -> str:
        url = self.manifest.probe_url or self.provider.read().url
        if not url:
            raise DeployFailed("the service has no URL to probe")
        return url

    def _probe(self, url: str, what: str, cancel: CancelToken = NEVER) -> list[ProbeResult]:
        if not self.manifest.probes:
            return []
        self.say(f"{self.manifest.service}: probing {what}")
        results = self.probe(self.manifest, url, cancel)
        for result in results:  # every line names its service: deploys of several interleave
            self.say(f"{self.manifest.service}:   {describe(result)}")
        failed = [r for r in results if not r.ok]
        if failed:
            raise DeployFailed(
                f"probe {failed[0].name} failed on {what}: {failed[0].error}", results
            )
        return results

    # -- failure and rollback ----------------------------------------------------------------

    def _after_failure(
        self,
        release: Release,
        plan: Plan,
        candidate: Revision,
        failure: DeployFailed,
        probes: list[ProbeResult],
        rollback: bool,
    ) -> DeployResult:
        self.say(f"{release.service}: deploy failed: {failure.reason}")
        outcome, code = Outcome.ROLLBACK_FAILED, ExitCode.NEEDS_HUMAN
        if failure.needs_human:
            message = f"{failure.reason}; the platform could not restore the service"
        elif not rollback or self.manifest.rollback == "off":
            outcome = Outcome.LEFT_FAILED
            message = f"{failure.reason}; rollback is off, so the service is left as it is"
        else:
            self.say(f"{release.service}: rolling back to {describe_split(plan.serving)}")
            try:
                probes += self._restore(plan.serving, candidate, plan.live)
            except Exception as exc:
                message = f"{failure.reason}; the rollback failed too: {as_failure(exc).reason}"
            else:
                outcome, code = Outcome.ROLLED_BACK, ExitCode.ROLLED_BACK
                message = f"{failure.reason}; " + (
                    f"rolled back, serving {describe_split(plan.serving)} again"
                    if plan.serving
                    else "rolled back: nothing served before and nothing serves now"
                )
        sent = Sent.of(plan.target, plan.live)
        since = datetime.fromisoformat(release.time)
        why = gather(self.provider, candidate.name, since, sent, probes, self.cancel)
        return self._finish(release, outcome, code, message, probes, why)

    def _restore(
        self, split: dict[str, int], candidate: Revision | None, served: ServiceSpec | None = None
    ) -> list[ProbeResult]:
        """Serve `split` again, move the candidate out of the way, check that the platform
        serves the split, and probe it: one way back for a failed and an interrupted release."""
        if split:
            self.provider.route(split, served)
        if candidate is not None:
            self.provider.discard(candidate)
        serving = self.provider.read().traffic
        if serving != split:
            raise DeployFailed(
                f"the service serves {describe_split(serving)}, "
                f"not {describe_split(split)} as before"
            )
        return self._probe(self._service_url(), "the restored service") if split else []

    def _start_release(
        self,
        kind: str,
        serving: dict[str, int],
        *,
        image: str | None,
        owned: tuple[str, ...],
        revision: str | None = None,
    ) -> Release:
        """Record the release before anything changes, so a crash leaves evidence."""
        return self.history.save(
            Release(
                id=new_release_id(),
                service=self.manifest.service,
                kind=kind,
                time=datetime.now(UTC).isoformat(timespec="seconds"),
                user=who(),
                git_commit=git_commit(self.manifest.path.parent),
                image=image,
                owned=owned,
                traffic_before=serving,
                revision=revision,
            )
        )

    def _finish(
        self,
        release: Release,
        outcome: Outcome,
        code: ExitCode,
        message: str | None,
        probes: list[ProbeResult],
        why: Explanation | None = None,
    ) -> DeployResult:
        """Record the outcome (and why it failed) and say what serves now."""
        diagnosis = None if why is None else asdict(why)
        self.history.save(
            release.finished(
                outcome, message, probes=tuple(asdict(p) for p in probes), diagnosis=diagnosis
            )
        )
        after = self.provider.read()
        return DeployResult(
            release.service,
            outcome,
            code,
            release_id=release.id,
            revision=release.revision,
            url=after.url,
            traffic_before=release.traffic_before,
            traffic_after=after.traffic,
            probes=tuple(probes),
            message=message,
            diagnosis=why,
            analysis=release.analysis,
        )


def as_failure(exc: Exception) -> DeployFailed:
    if isinstance(exc, DeployFailed):
        return exc
    if isinstance(exc, Cancelled):
        return DeployFailed(exc.reason)
    if isinstance(exc, SafedeployError):
        return DeployFailed(exc.what, needs_human=isinstance(exc, Unrecoverable))
    return DeployFailed(f"unexpected {type(exc).__name__}: {exc}")


def interrupted_note(release: Release) -> str:
    """How every command names a release that never finished."""
    what = f"{release.kind} of {release.revision}" if release.revision else release.kind
    return f"release {release.id} ({what}, {release.time}) was interrupted and never finished"


def describe_split(split: dict[str, int]) -> str:
    return ", ".join(f"{name} {percent}%" for name, percent in split.items()) or "nothing"
