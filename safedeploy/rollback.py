"""Serve an earlier revision again, on demand: `safedeploy rollback [--to REVISION]`.

The same machinery as a deploy's own way back (restore, probe, record), with a lease and a
history entry of its own. With no `--to`, an interrupted release is finished first: what served
before it is put back. A revision that can answer alone (`Previews`) is probed before any traffic
moves to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from safedeploy.deployer import (
    Deployer,
    DeployResult,
    as_failure,
    describe_split,
    interrupted_note,
)
from safedeploy.errors import ExitCode, SafedeployError
from safedeploy.facts import LiveService, Revision
from safedeploy.history import Outcome, Release, unfinished
from safedeploy.probes import ProbeResult
from safedeploy.providers.base import Previews


class Rollback(Deployer):
    """A deployer that serves an earlier revision instead of applying a plan."""

    def rollback(self, to: str | None) -> DeployResult:
        """Serve an earlier revision again, whole, with its own probe and history entry; with no
        `to`, an interrupted release is finished first: what served before it is put back."""
        with self.history.lease(self.manifest.service):
            releases = self.history.releases()
            stuck = unfinished(releases)  # we hold the lease: its holder is gone
            if stuck is not None and to is None:
                return self._finish_interrupted(stuck, releases)
            live = self.provider.read()
            target = to or self._previous_revision()
            known = {r.name for r in live.revisions}
            if target not in known:
                raise SafedeployError(
                    f"{self.manifest.service} has no revision {target}",
                    hint=f"choose one of: {', '.join(sorted(known)) or 'none'}",
                )
            release = self._start_rollback(live, releases, target)
            probes: list[ProbeResult] = []
            refused = self._probe_alone(Revision(target), probes)
            if refused is not None:
                message = (
                    f"rollback to {target} refused: {refused}; nothing changed, "
                    f"{describe_split(live.traffic)} still serves"
                )
                return self._finish(release, Outcome.FAILED, ExitCode.FAILED, message, probes)
            self.say(f"{self.manifest.service}: routing 100% to {target}")
            try:
                self.provider.route({target: 100})
            except SafedeployError as exc:  # one call refused: nothing changed
                self.history.save(release.finished(Outcome.FAILED, exc.what))
                raise
            try:
                self.provider.retire(Revision(target))
                probes += self._probe(self._service_url(), f"revision {target}")
            except Exception as exc:
                message = f"rollback to {target} failed: {as_failure(exc).reason}"
                return self._finish(
                    release, Outcome.ROLLBACK_FAILED, ExitCode.NEEDS_HUMAN, message, probes
                )
            if stuck is not None:
                message = f"interrupted; rollback {release.id} then served {target}"
                self.history.save(stuck.finished(Outcome.ROLLED_BACK, message))
            return self._finish(
                release, Outcome.SUCCEEDED, ExitCode.OK, f"serving {target}", probes
            )

    def _probe_alone(self, revision: Revision, probes: list[ProbeResult]) -> str | None:
        """Probe a revision on its own URL before it gets traffic; why it failed, or None.
        A platform that cannot (App Runner) is said so, and the probe after routing decides."""
        if not isinstance(self.provider, Previews):
            self.say(
                f"{self.manifest.service}: {self.manifest.platform} cannot serve {revision.name} "
                "before routing to it, so it is probed after the switch"
            )
            return None
        try:
            alone = self.provider.preview(revision)
            probes += self._probe(alone.url or "", f"revision {revision.name} before any traffic")
        except Exception as exc:
            try:
                self.provider.discard(revision)  # its tag goes: nothing else was touched
            except SafedeployError as again:
                return f"{as_failure(exc).reason} (and removing its tag failed: {again.what})"
            return as_failure(exc).reason
        return None

    def _finish_interrupted(self, stuck: Release, releases: list[Release]) -> DeployResult:
        """Put back what served before an interrupted release, probe it, record both."""
        split = stuck.traffic_before
        if not split:
            raise SafedeployError(
                f"{interrupted_note(stuck)}, and nothing served before it",
                hint="deploy again, or choose a revision with `rollback --to REVISION`",
            )
        live = self.provider.read()
        target = max(split, key=lambda name: split[name])
        release = self._start_rollback(live, releases, target)
        self.say(
            f"{self.manifest.service}: {interrupted_note(stuck)}; putting back "
            f"{describe_split(split)}"
        )
        probes: list[ProbeResult] = []
        try:
            probes += self._restore(split, Revision(stuck.revision) if stuck.revision else None)
        except Exception as exc:
            message = f"finishing release {stuck.id} failed: {as_failure(exc).reason}"
            return self._finish(
                release, Outcome.ROLLBACK_FAILED, ExitCode.NEEDS_HUMAN, message, probes
            )
        done = f"interrupted; rollback {release.id} put back {describe_split(split)}"
        self.history.save(stuck.finished(Outcome.ROLLED_BACK, done))
        message = f"finished interrupted release {stuck.id}: serving {describe_split(split)}"
        return self._finish(release, Outcome.SUCCEEDED, ExitCode.OK, message, probes)

    def _previous_revision(self) -> str:
        """The revision that served before the last release that succeeded."""
        last = self.history.last_succeeded()
        if last is not None and last.traffic_before:
            return max(last.traffic_before, key=lambda name: last.traffic_before[name])
        raise SafedeployError(
            f"no earlier release of {self.manifest.service} to roll back to",
            hint="name one with `--to REVISION` (see `safedeploy status`)",
        )

    def _start_rollback(self, live: LiveService, releases: list[Release], target: str) -> Release:
        """The record of a rollback to `target`, written before anything moves."""
        return self._start_release(
            "rollback",
            live.traffic,
            image=next((r.image for r in live.revisions if r.name == target), None),
            owned=_owned(releases, target, live.owned),
            revision=target,
        )


def _owned(releases: Sequence[Release], revision: str, live: frozenset[str]) -> tuple[str, ...]:
    """The names a revision's own release owned; else what the live service says."""
    return next(
        (r.owned for r in reversed(releases) if r.revision == revision), tuple(sorted(live))
    )
