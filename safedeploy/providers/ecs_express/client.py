"""The ECS Express API as the provider uses it: finding the service, reading it with its current
service deployment, starting updates and waiting for deployments to end.

Throttling and server errors are retried by botocore's retry mode (safedeploy.aws); nothing is
retried here. Deployments are polled with backoff, honouring the cancel token, up to a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from safedeploy.aws import Clients, aws_errors, error_code, when
from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import Busy, SafedeployError, Unrecoverable
from safedeploy.providers.ecs_express import mapping

Json = dict[str, Any]

POLL_INTERVAL = 5.0  # seconds before the first re-poll of a deployment; SAFEDEPLOY_POLL_INTERVAL
MAX_POLL_INTERVAL = 30.0
OPERATION_TIMEOUT = 30 * 60.0  # two 3-minute bakes and the scaling around them; generous
TERMINAL = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
SERVES_ALL = ("BAKE_TIME", "CLEAN_UP")  # lifecycle stages in which the target takes all traffic
CANARY_NOTE = (
    "ECS Express deploys as a canary (5% of traffic, a 3-minute bake, then 100% and another "
    "3-minute bake before the old tasks stop), so this takes minutes, and ECS may roll the "
    "deployment back on its own"
)


@dataclass(frozen=True)
class Live:
    """One read of the service: DescribeExpressGatewayService and its current deployment."""

    service: Json
    deployment: Json | None  # DescribeServiceDeployments of `currentDeployment`

    @property
    def arn(self) -> str:
        return str(self.service["serviceArn"])

    @property
    def config(self) -> Json:
        """What ECS means the service to run: the target while a deployment runs."""
        configs: list[Json] = self.service["activeConfigurations"]
        return configs[0]

    @property
    def running(self) -> Json | None:
        """The deployment in progress on the service, if any."""
        if self.deployment is not None and self.deployment["status"] not in TERMINAL:
            return self.deployment
        return None

    @property
    def url(self) -> str | None:
        return mapping.endpoint(self.config)

    @property
    def fingerprint(self) -> str:
        return mapping.fingerprint(self.service)


@dataclass(frozen=True)
class Deployment:
    """A deployment this run started: the service and the revision it deploys."""

    service_arn: str
    revision_arn: str  # the target service revision
    arn: str | None = None  # known at once after a create; found by listing after an update


class EcsExpressApi:
    """One service's calls. The only memo is the service's ARN: a name's ARN never changes."""

    def __init__(
        self,
        service: str,
        region: str,
        cluster: str,
        clients: Clients,
        *,
        poll_interval: float = POLL_INTERVAL,
        timeout: float = OPERATION_TIMEOUT,
        progress: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.service = service
        self.region = region
        self.cluster = cluster
        self.clients = clients
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.progress = progress
        self._arn: str | None = None

    @property
    def _api(self) -> Any:
        return self.clients.get("ecs", self.region)

    @property
    def where(self) -> str:
        return self._arn or f"ECS Express service {self.service} ({self.cluster}, {self.region})"

    def arn(self) -> str | None:
        """The service's ARN from ListServices, or None while there is no such service."""
        if self._arn is None:
            suffix = f"/{self.service}"
            with aws_errors("list the cluster's services", self.where):
                try:
                    for page in self._api.get_paginator("list_services").paginate(
                        cluster=self.cluster
                    ):
                        found = [a for a in page.get("serviceArns", []) if a.endswith(suffix)]
                        if found:
                            self._arn = str(found[0])
                            break
                except ClientError as exc:
                    if error_code(exc) != "ClusterNotFoundException":
                        raise
        return self._arn

    def describe(self) -> Live | None:
        """The service and its current deployment, or None when there is no active service."""
        arn = self.arn()
        if arn is None:
            return None
        service = self._service(arn)
        if service is None:
            return None
        current = service.get("currentDeployment")
        deployment = self.deployment(current) if current else None
        ended = deployment is not None and deployment["status"] in TERMINAL
        if ended and len(service["activeConfigurations"]) > 1:  # it ended between the reads
            service = self._service(arn)
        return Live(service, deployment) if service is not None else None

    def _service(self, arn: str) -> Json | None:
        with aws_errors("describe the service", self.where):
            try:
                service: Json = self._api.describe_express_gateway_service(serviceArn=arn)[
                    "service"
                ]
            except ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return None
                raise
        if service["status"]["statusCode"] == "INACTIVE" or not service["activeConfigurations"]:
            return None
        return service

    def deployment(self, arn: str) -> Json:
        with aws_errors("describe the service deployment", arn):
            found = self._api.describe_service_deployments(serviceDeploymentArns=[arn])
        deployments: list[Json] = found.get("serviceDeployments", [])
        if not deployments:
            raise SafedeployError(f"ECS describes no service deployment {arn}", where=self.where)
        return deployments[0]

    def create(self, request: Json) -> Deployment:
        with aws_errors("create the service", self.where):
            created = self._api.create_express_gateway_service(
                serviceName=self.service, cluster=self.cluster, **request
            )["service"]
        self._arn = str(created["serviceArn"])
        revision = created["activeConfigurations"][0]["serviceRevisionArn"]
        return Deployment(self._arn, str(revision), created.get("currentDeployment"))

    def update(self, arn: str, changes: Json) -> Deployment:
        with aws_errors("update the service", self.where):
            updated = self._api.update_express_gateway_service(serviceArn=arn, **changes)
        revision = updated["service"]["targetConfiguration"]["serviceRevisionArn"]
        return Deployment(arn, str(revision))

    def stop(self, deployment_arn: str) -> None:
        """Roll the deployment back (ECS Express deployments stop only with ROLLBACK)."""
        with aws_errors("stop the service deployment", deployment_arn):
            self._api.stop_service_deployment(
                serviceDeploymentArn=deployment_arn, stopType="ROLLBACK"
            )

    def find(self, deployment: Deployment) -> str:
        """The ARN of the deployment of `deployment.revision_arn`, newest first."""
        if deployment.arn is not None:
            return deployment.arn
        for summary in self._deployments(deployment.service_arn):
            if summary.get("targetServiceRevisionArn") == deployment.revision_arn:
                return str(summary["serviceDeploymentArn"])
        raise SafedeployError(
            f"ECS lists no deployment of {deployment.revision_arn}", where=deployment.service_arn
        )

    def _deployments(self, service_arn: str) -> Iterator[Json]:
        """ListServiceDeployments page after page (botocore has no paginator for it)."""
        params: Json = {"service": service_arn, "cluster": self.cluster}
        while True:
            with aws_errors("list the service deployments", service_arn):
                page = self._api.list_service_deployments(**params)
            yield from page.get("serviceDeployments", [])
            if not page.get("nextToken"):
                return
            params["nextToken"] = page["nextToken"]

    def wait(self, arn: str, until: Callable[[Json], bool], cancel: CancelToken = NEVER) -> Json:
        """Poll the deployment until `until` holds or it ends, with backoff; Unrecoverable when
        it outlasts the timeout. Cancelled ends the wait (not the deployment) between polls."""
        start = time.monotonic()
        interval = self.poll_interval
        while True:
            deployment = self.deployment(arn)
            if deployment["status"] in TERMINAL or until(deployment):
                return deployment
            elapsed = time.monotonic() - start
            if elapsed >= self.timeout:
                raise Unrecoverable(
                    f"ECS service deployment {short(arn)} did not end within {self.timeout:.0f}s",
                    where=arn,
                    hint="watch it in the ECS console; it may still end either way",
                )
            stage = deployment.get("lifecycleStage")
            self.progress(
                f"{self.service}: ECS deployment {deployment['status']}"
                f"{f' ({stage})' if stage else ''} ({elapsed:.0f}s)"
            )
            cancel.sleep(min(interval, self.timeout - elapsed))
            interval = min(interval * 1.5, MAX_POLL_INTERVAL)

    def busy(self, live: Live) -> Busy:
        """The lease's message, naming ECS's running deployment as the holder."""
        running = live.running or {}
        return Busy(
            self.service,
            holder(running),
            when(running.get("startedAt") or running.get("createdAt")),
            where=self.where,
            hint="wait for it to end (aws ecs list-service-deployments), then deploy again",
        )


def short(arn: str) -> str:
    """A deployment's id, the last part of its ARN."""
    return arn.rsplit("/", 1)[-1]


def holder(deployment: Json) -> str:
    """A deployment as messages name it: its id, status and stage."""
    stage = deployment.get("lifecycleStage")
    state = f"{deployment.get('status', '?')}{f', {stage}' if stage else ''}"
    return f"ECS service deployment {short(deployment.get('serviceDeploymentArn', '?'))} ({state})"
