"""The `ecs-express` platform: Amazon ECS Express Mode through boto3, on the provider protocol.

ECS Express runs one configuration at a time and deploys each update as its own canary, with
bake times and a circuit breaker that may roll it back. As on App Runner, a revision is the
configuration a release applied, under the name the core gave it, recorded in the history store,
so that a rollback can send a recorded configuration again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from safedeploy.aws import Clients, secret_exists, secret_facts, when
from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import SafedeployError, Unrecoverable, VersionMoved
from safedeploy.facts import Diagnosis, Fact, LiveService, Revision
from safedeploy.model import ServiceSpec
from safedeploy.providers import records
from safedeploy.providers.base import Candidate, Capabilities, Pending
from safedeploy.providers.ecs_express import checks, logs, mapping
from safedeploy.providers.ecs_express.client import (
    CANARY_NOTE,
    OPERATION_TIMEOUT,
    POLL_INTERVAL,
    SERVES_ALL,
    Deployment,
    EcsExpressApi,
    Json,
    Live,
    holder,
    short,
)
from safedeploy.providers.records import Revisions

ABSENT = "absent"  # the fingerprint of a service that does not exist


def _serves_all(deployment: Json) -> bool:
    """The deployment's target takes all production traffic (it bakes, or cleans up after)."""
    return deployment["status"] == "IN_PROGRESS" and deployment.get("lifecycleStage") in SERVES_ALL


class EcsExpressProvider:
    capabilities = Capabilities(traffic_split=False, candidate_url=False, owned_on_service=False)

    def __init__(
        self,
        service: str,
        region: str,
        revisions: Revisions,
        clients: Clients,
        *,
        cluster: str = "default",
        execution_role: str | None = None,
        infrastructure_role: str | None = None,
        poll_interval: float = POLL_INTERVAL,
        timeout: float = OPERATION_TIMEOUT,
        progress: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.service = service
        self.region = region
        self.revisions = revisions
        self.clients = clients
        self.roles = {  # what a create needs; an update keeps the live ones
            checks.EXECUTION_ROLE: execution_role,
            checks.INFRASTRUCTURE_ROLE: infrastructure_role,
        }
        self.progress = progress
        self.api = EcsExpressApi(
            service,
            region,
            cluster,
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
        shares = self._shares(live, names)
        running = live.running
        return LiveService(
            name=self.service,
            spec=mapping.spec(live.config),
            fingerprint=live.fingerprint,
            revisions=tuple(
                Revision(name, shares.get(name, 0)) for name in sorted({*names, *shares})
            ),
            url=live.url,
            busy=f"{holder(running)} since {when(running.get('startedAt') or running['createdAt'])}"
            if running
            else None,
        )

    def _name(self, config: Json, names: list[str]) -> str:
        made: datetime = config["createdAt"]
        return records.serving(self.revisions, names, self.service, mapping.spec(config), made)

    def _shares(self, live: Live, names: list[str]) -> dict[str, int]:
        """Revision name -> percent of production traffic, as the running deployment asks it."""
        running = live.running
        if running is None:
            return {self._name(live.config, names): 100}
        configs = {c["serviceRevisionArn"]: c for c in live.service["activeConfigurations"]}
        shares: dict[str, int] = {}
        for summary in (
            running["targetServiceRevision"],
            *running.get("sourceServiceRevisions", []),
        ):
            config = configs.get(summary["arn"])
            if config is not None:
                name = self._name(config, names)
                weight = round(summary.get("requestedProductionTrafficWeight", 0))
                shares[name] = shares.get(name, 0) + weight
        return shares

    def preflight(self, target: ServiceSpec) -> list[Fact]:
        exists = self.api.arn() is not None
        return [
            *checks.settings(target),
            *secret_facts(
                target, lambda ref: secret_exists(self.clients, ref, self.region), "ECS Express"
            ),
            *([] if exists else checks.roles(self.roles)),
        ]

    # -- operations --------------------------------------------------------------------------

    def apply(self, candidate: Candidate) -> Pending:
        """Exactly one update (or a create), built on the live container."""
        live = self.api.describe()
        if live is not None and live.running is not None:
            live = self._settled(live, live.running)
        if (live.fingerprint if live else ABSENT) != candidate.version:
            raise VersionMoved(where=self.api.where)
        target = candidate.target
        if live is not None:
            names = self.revisions.config_names()
            replaced = self._name(live.config, names)
            if replaced not in names:  # record what this release replaces, for its rollback
                spec = mapping.spec(live.config)
                self.revisions.save_config(
                    replaced, records.record(spec, records.sensitive(spec, target))
                )
        self.revisions.save_config(
            candidate.revision, records.record(target, records.sensitive(target, target))
        )
        if live is None:
            missing = list(checks.roles(self.roles))
            if missing:
                raise SafedeployError(
                    missing[0].detail, where=self.api.where, hint=missing[0].remedy
                )
            deployment = self.api.create({**mapping.changes({}, target), **self.roles})
        else:
            deployment = self.api.update(live.arn, mapping.changes(live.config, target))
        revision = Revision(candidate.revision, 0, ready=False, image=target.image)
        return Pending(candidate, revision, deployment)

    def _settled(self, live: Live, running: Json) -> Live | None:
        """The service once someone else's deployment ended: Busy if it outlasts the timeout.
        If it succeeded the plan still holds; if ECS rolled it back the version moved."""
        self.progress(f"{self.service}: waiting for {holder(running)} to end")
        try:
            self.api.wait(str(running["serviceDeploymentArn"]), lambda _deployment: False)
        except Unrecoverable:
            raise self.api.busy(live) from None
        return self.api.describe()

    def wait_ready(self, pending: Pending, cancel: CancelToken) -> Revision:
        """Until the new revision serves all traffic (it bakes), or ECS ends the deployment."""
        self.progress(f"{self.service}: {CANARY_NOTE}")
        deployment: Deployment = pending.operation
        arn = self.api.find(deployment)
        _judge(self.api.wait(arn, _serves_all, cancel), arn, final=False)
        live = self.api.describe()
        if live is None:
            raise SafedeployError(f"service {self.service} vanished", where=deployment.service_arn)
        for config in live.service["activeConfigurations"]:
            if config["serviceRevisionArn"] == deployment.revision_arn:
                # What ECS describes (its defaults filled in) is what this revision is.
                spec = mapping.spec(config)
                sensitive = records.sensitive(spec, pending.candidate.target)
                self.revisions.save_config(pending.revision.name, records.record(spec, sensitive))
        return replace(pending.revision, percent=100, ready=True, url=live.url)

    def route(self, split: Mapping[str, int], served: ServiceSpec | None = None) -> None:
        """Serve the named revision: it does already, or stop the deployment that bakes over
        it (ECS rolls back), or send its recorded configuration again and wait."""
        serving = [name for name, percent in split.items() if percent]
        if len(serving) != 1 or split[serving[0]] != 100:
            raise SafedeployError(f"ECS Express serves one configuration at a time, not {split}")
        name = serving[0]
        live = self.api.describe()
        if live is None:
            raise SafedeployError(f"there is no ECS Express service {self.service} to route")
        stored = records.recorded(self.revisions, name, self.api.where)
        running = live.running
        if running is not None and self._back_to(live, running, stored):
            return
        if running is None and records.is_config(stored, mapping.spec(live.config)):
            return  # nothing to send: it serves already, or ECS itself restored it
        spec = records.to_send(stored, mapping.spec(live.config), name, served, self._say)
        deployment = self.api.update(live.arn, mapping.changes(live.config, spec))
        arn = self.api.find(deployment)
        _judge(self.api.wait(arn, _serves_all), arn, final=False)

    def _back_to(self, live: Live, running: Json, stored: Json) -> bool:
        """With a deployment running: True once the recorded configuration serves through it
        (it is its target, or it is the source and ECS rolled the deployment back)."""
        arn = str(running["serviceDeploymentArn"])
        configs = {c["serviceRevisionArn"]: c for c in live.service["activeConfigurations"]}
        target = configs.get(running["targetServiceRevision"]["arn"])
        if target is not None and records.is_config(stored, mapping.spec(target)):
            _judge(self.api.wait(arn, _serves_all), arn, final=False)
            return True
        sources = [configs.get(s["arn"]) for s in running.get("sourceServiceRevisions", [])]
        if not any(c is not None and records.is_config(stored, mapping.spec(c)) for c in sources):
            return False
        if not running["status"].startswith("ROLLBACK"):
            self.progress(f"{self.service}: stopping ECS deployment {short(arn)} (ROLLBACK)")
            self.api.stop(arn)
        ended = self.api.wait(arn, lambda _deployment: False)
        if ended["status"] != "ROLLBACK_SUCCESSFUL":
            _judge(ended, arn, final=True)
        return True

    def retire(self, keep: Revision, cancel: CancelToken = NEVER) -> None:
        """Wait for the deployment to finish: ECS stops the old tasks after the last bake, and
        may still roll back until then. Raise unless it succeeded and `keep` serves."""
        live = self.api.describe()
        if live is None:
            raise SafedeployError(f"service {self.service} vanished", where=self.api.where)
        running = live.running
        if running is not None:
            arn = str(running["serviceDeploymentArn"])
            _judge(self.api.wait(arn, lambda _deployment: False, cancel), arn, final=True)
            live = self.api.describe() or live
        stored = self.revisions.config(keep.name)
        if stored is not None and not records.is_config(stored, mapping.spec(live.config)):
            if running is None and live.deployment is not None:  # it ended before we looked
                last = live.deployment
                _judge(last, str(last["serviceDeploymentArn"]), final=True)
            raise SafedeployError(
                f"revision {keep.name} does not serve: ECS runs another configuration",
                where=self.api.where,
                hint="see the service's deployments in the ECS console",
            )

    def diagnose(self, revision: str, since: datetime, cancel: CancelToken) -> Diagnosis:
        """The deployment's status, breaker, rollback and alarms, and its log lines (logs.py)."""
        return logs.diagnose(self.api, self.clients, revision, since, cancel)

    def discard(self, candidate: Revision) -> None:
        """Nothing to remove: the candidate's recorded configuration stays as evidence."""


def _judge(deployment: Json, arn: str, *, final: bool) -> None:
    """Nothing when the deployment succeeded (or, unless `final`, serves all traffic); else
    raise with what ECS said. A rollback by ECS leaves the previous revision serving; a
    deployment stopped by someone else or a failed rollback is for a person to judge."""
    status = deployment["status"]
    if status == "SUCCESSFUL" or (not final and _serves_all(deployment)):
        return
    reason = (deployment.get("rollback") or {}).get("reason") or deployment.get("statusReason")
    why = reason.rstrip(". ") if reason else "ECS gave no reason"
    if status == "ROLLBACK_SUCCESSFUL":
        raise SafedeployError(
            f"ECS rolled deployment {short(arn)} back (ROLLBACK_SUCCESSFUL): {why}; "
            "the previous revision serves again",
            where=arn,
            hint="the stopped tasks' reasons and the service's events in the ECS console say more",
        )
    if status == "ROLLBACK_FAILED":
        raise Unrecoverable(
            f"ECS could not roll deployment {short(arn)} back (ROLLBACK_FAILED): {why}",
            where=arn,
            hint="look at the service in the ECS console before deploying again",
        )
    if status == "STOPPED":
        raise Unrecoverable(
            f"ECS deployment {short(arn)} was stopped before it finished (STOPPED): {why}",
            where=arn,
            hint="another update superseded it or someone stopped it: see the service's "
            "deployments before deploying again",
        )
    raise SafedeployError(f"ECS deployment {short(arn)} is {status}: {why}", where=arn)


@dataclass(frozen=True)
class Described:
    """What `import` needs of a live service: where it is, its spec, the roles it was made with."""

    arn: str
    spec: ServiceSpec
    execution_role: str | None
    infrastructure_role: str | None


def describe(service: str, region: str, cluster: str, clients: Clients) -> Described | None:
    """The live service for `import`; None when there is no such service."""
    live = EcsExpressApi(service, region, cluster, clients).describe()
    if live is None:
        return None
    return Described(
        live.arn,
        mapping.spec(live.config),
        live.config.get("executionRoleArn"),
        live.service.get("infrastructureRoleArn"),
    )
