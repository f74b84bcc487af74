"""The `apprunner` platform: AWS App Runner through boto3, on the provider protocol.

App Runner has no revisions and no traffic split. Here a revision is the configuration a
release applied, under the name the core gave it, recorded in the history store (see records),
so a rollback can send a recorded configuration again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from safedeploy.aws import Clients, secret_exists, when
from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import SafedeployError, VersionMoved
from safedeploy.facts import Diagnosis, Fact, LiveService, Revision, TrafficFigures
from safedeploy.model import ServiceSpec
from safedeploy.providers import records
from safedeploy.providers.apprunner import checks, logs, mapping, metrics
from safedeploy.providers.apprunner.client import (
    OPERATION_TIMEOUT,
    POLL_INTERVAL,
    AppRunnerApi,
    Live,
    Operation,
    holder,
)
from safedeploy.providers.base import Candidate, Capabilities, Pending
from safedeploy.providers.records import Revisions

ABSENT = "absent"  # the fingerprint of a service that does not exist


class AppRunnerProvider:
    capabilities = Capabilities(traffic_split=False, candidate_url=False, owned_on_service=False)

    def __init__(
        self,
        service: str,
        region: str,
        revisions: Revisions,
        clients: Clients,
        *,
        poll_interval: float = POLL_INTERVAL,
        timeout: float = OPERATION_TIMEOUT,
        progress: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.service = service
        self.revisions = revisions
        self.progress = progress
        self.api = AppRunnerApi(
            service,
            region,
            clients,
            poll_interval=poll_interval,
            timeout=timeout,
            progress=progress,
        )

    def _say(self, text: str) -> None:
        """A progress line of this service."""
        self.progress(f"{self.service}: {text}")

    # -- reading -----------------------------------------------------------------------------

    def read(self) -> LiveService:
        """The live configuration as a revision of its own; owned names are history's."""
        live = self.api.describe()
        if live is None:
            return LiveService(self.service, None, ABSENT)
        names = self.revisions.config_names()
        serving = self._serving(live, names)
        running = live.running
        return LiveService(
            name=self.service,
            spec=live.spec,
            fingerprint=live.fingerprint,
            revisions=tuple(
                Revision(name, 100 if name == serving else 0) for name in sorted({*names, serving})
            ),
            url=live.url,
            busy=f"{holder(running)} since {when(running['StartedAt'])}" if running else None,
        )

    def _serving(self, live: Live, names: list[str]) -> str:
        made: datetime = (live.operation or {}).get("StartedAt") or live.service["CreatedAt"]
        return records.serving(self.revisions, names, self.service, live.spec, made)

    def preflight(self, target: ServiceSpec) -> list[Fact]:
        """Read-only checks; whether the service exists is the ARN lookup `read` already made."""
        return [
            *checks.settings(target, exists=self.api.arn() is not None),
            *checks.secrets(target, self._secret_exists),
            *checks.egress(target),
        ]

    def _secret_exists(self, reference: str) -> bool:
        return secret_exists(self.api.clients, reference, self.api.region)

    # -- operations --------------------------------------------------------------------------

    def apply(self, candidate: Candidate) -> Pending:
        live = self.api.settled()
        if (live.fingerprint if live else ABSENT) != candidate.version:
            raise VersionMoved(where=self.api.where)
        target = candidate.target
        if live is not None:
            names = self.revisions.config_names()
            replaced = self._serving(live, names)
            if replaced not in names:  # record what this release replaces, for its rollback
                sensitive = records.sensitive(live.spec, target)
                self.revisions.save_config(replaced, records.record(live.spec, sensitive))
        self.revisions.save_config(
            candidate.revision, records.record(target, records.sensitive(target, target))
        )
        if live is None:
            operation = self.api.create(mapping.changes({}, target))
        else:
            operation = self.api.update(live.arn, mapping.changes(live.service, target))
        revision = Revision(candidate.revision, 0, ready=False, image=target.image)
        return Pending(candidate, revision, operation)

    def wait_ready(self, pending: Pending, cancel: CancelToken) -> Revision:
        operation: Operation = pending.operation
        self.api.finish(operation, cancel)
        live = self.api.describe()
        if live is None:
            raise SafedeployError(f"service {self.service} vanished", where=operation.arn)
        # What App Runner describes now (its defaults filled in) is what this revision is.
        sensitive = records.sensitive(live.spec, pending.candidate.target)
        self.revisions.save_config(pending.revision.name, records.record(live.spec, sensitive))
        return replace(pending.revision, percent=100, ready=True, url=live.url)

    def route(self, split: Mapping[str, int], served: ServiceSpec | None = None) -> None:
        """Send the named revision's recorded configuration again, unless it is what runs."""
        serving = [name for name, percent in split.items() if percent]
        if len(serving) != 1 or split[serving[0]] != 100:
            raise SafedeployError(f"App Runner serves one configuration at a time, not {split}")
        name = serving[0]
        live = self.api.settled()
        if live is None:
            raise SafedeployError(f"there is no App Runner service {self.service} to route")
        stored = records.recorded(self.revisions, name, self.api.where)
        if records.is_config(stored, live.spec):
            return  # nothing to send: it serves already, or App Runner itself restored it
        spec = records.to_send(stored, live.spec, name, served, self._say)
        changes = mapping.changes(live.service, spec)
        if changes:
            self.api.finish(self.api.update(live.arn, changes))

    def retire(self, keep: Revision, cancel: CancelToken = NEVER) -> None:
        """Nothing to stop: App Runner runs only the configuration that serves."""

    def diagnose(self, revision: str, since: datetime, cancel: CancelToken) -> Diagnosis:
        """The operation's status and the service's log groups in the window (logs.py)."""
        return logs.diagnose(self.api, self.api.clients, revision, since, cancel)

    def traffic(
        self, revision: str, start: datetime, end: datetime, *, latency: bool = False
    ) -> TrafficFigures:
        """What the service answered in the window (metrics.py): one configuration serves."""
        return metrics.traffic(self.api, self.api.clients, start, end, latency)

    def discard(self, candidate: Revision) -> None:
        """Nothing to remove: the candidate's recorded configuration stays as evidence."""


def describe(service: str, region: str, clients: Clients) -> tuple[str, ServiceSpec] | None:
    """The live service's ARN and spec, for `import`; None when there is no such service."""
    live = AppRunnerApi(service, region, clients).describe()
    return (live.arn, live.spec) if live else None
