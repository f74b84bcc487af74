"""A stateful test double of Amazon ECS Express Mode, served over real HTTP on loopback.

moto has no Express Mode, so the coming provider is tested against this double: real boto3 with
real botocore serialisation, signing and retries, pointed at ``FakeEcsExpress.endpoint`` through
``AWS_ENDPOINT_URL_ECS``. Each service's serving revision answers over HTTPS on its own loopback
port (``ingressPaths[].endpoint``, without a scheme), behind the App Runner double's throwaway CA
(``ca_bundle``), so probes run for real and, after a rollback, answer as the old revision.

It is built from botocore's model ``ecs/2014-11-13`` (awsJson1_1, ``X-Amz-Target:
AmazonEC2ContainerServiceV20141113.<Operation>``): requests are validated against the model,
errors use the codes the model lists for each operation (and ThrottlingException, which
botocore retries by its code), and an ``UpdateExpressGatewayService``
that carries ``primaryContainer`` replaces the container whole, the trap safedeploy exists for.
``tests/fakes/ECS_EXPRESS.md`` lists what it assumes where AWS's documentation is silent.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fakes.apprunner import (
    ACCOUNT_ID,
    ApiError,
    App,
    AppRequest,
    AppResponse,
    AwsJsonDouble,
    Json,
    LoopbackServer,
    default_app,
    encode,
)

#: An image whose name contains this never passes the load balancer's health check.
BROKEN_MARKER = "broken"

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
#: Lifecycle stages an Express (canary) deployment walks through, from the model's enum; the
#: TEST_TRAFFIC stages belong to blue/green deployments with a test listener, which Express has not.
STAGES = (
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
)
#: From this stage on the new revision takes all production traffic.
_SHIFTED = STAGES.index("POST_PRODUCTION_TRAFFIC_SHIFT")
TERMINAL = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
_FORCED_OUTCOMES = ("ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
# Members of a service revision that Create and Update may carry; each one sent replaces the
# live one whole.
_CONFIG_KEYS = (
    "executionRoleArn",
    "taskRoleArn",
    "cpu",
    "memory",
    "cpuArchitecture",
    "networkConfiguration",
    "healthCheckPath",
    "primaryContainer",
    "scalingTarget",
)
# Defaults the model's documentation states: 256 CPU units, 512 MiB, /ping, container port 80.
_DEFAULTS: Json = {"cpu": "256", "memory": "512", "healthCheckPath": "/ping"}
_DEFAULT_PORT = 80
_BREAKER_THRESHOLD = 3  # the documented minimum of the circuit breaker's threshold
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidParameterException", message)


@dataclass(frozen=True)
class Revision:
    """One service revision: the configuration its tasks run, defaults filled in."""

    arn: str
    task_definition_arn: str
    config: Json
    created_at: float

    @property
    def image(self) -> str:
        return str(self.config["primaryContainer"]["image"])

    @property
    def env(self) -> dict[str, str]:
        """Plain variables, by name."""
        return {
            e["name"]: e["value"] for e in self.config["primaryContainer"].get("environment", [])
        }

    @property
    def secrets(self) -> dict[str, str]:
        """Secret variables: name -> Secrets Manager or SSM ARN (valueFrom)."""
        return {
            s["name"]: s["valueFrom"] for s in self.config["primaryContainer"].get("secrets", [])
        }

    @property
    def health_check_path(self) -> str:
        return str(self.config["healthCheckPath"])

    def describe(self, endpoint: str) -> Json:
        return {
            "serviceRevisionArn": self.arn,
            "taskDefinitionArn": self.task_definition_arn,
            **copy.deepcopy(self.config),
            "ingressPaths": [{"accessType": "PUBLIC", "endpoint": endpoint}],
            "createdAt": self.created_at,
        }


def ecs_default_app(request: AppRequest) -> AppResponse:
    """App Runner's well-behaved app, which also answers Express's default health path /ping."""
    if request.path == "/ping":
        return AppResponse(200, {"ok": True})
    return default_app(request)


@dataclass
class _Deployment:
    """A service deployment, moved on one step per poll of its service."""

    arn: str
    service_arn: str
    cluster_arn: str
    target: Revision
    source: Revision | None
    created_at: float
    status: str = "PENDING"
    stage: int = -1  # index in STAGES, -1 while PENDING
    polls_in_stage: int = 0  # polls that have seen the current status and stage
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    stopped_at: float | None = None
    status_reason: str | None = None
    rollback: Json | None = None
    breaker: str = "MONITORING"
    failures: int = 0
    rollback_outcome: str = "ROLLBACK_SUCCESSFUL"  # how a rollback of it ends

    @property
    def running(self) -> bool:
        return self.status not in TERMINAL

    @property
    def shifted(self) -> bool:
        """Whether the target takes all production traffic."""
        return self.status in ("IN_PROGRESS", "SUCCESSFUL") and self.stage >= _SHIFTED

    def brief(self) -> Json:
        brief: Json = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service_arn,
            "clusterArn": self.cluster_arn,
            "createdAt": self.created_at,
            "targetServiceRevisionArn": self.target.arn,
            "status": self.status,
        }
        for key, value in (
            ("startedAt", self.started_at),
            ("finishedAt", self.finished_at),
            ("statusReason", self.status_reason),
        ):
            if value is not None:
                brief[key] = value
        return brief

    def describe(self) -> Json:
        weight = 100.0 if self.shifted else 0.0
        described: Json = {
            **self.brief(),
            "updatedAt": self.updated_at,
            "targetServiceRevision": {
                "arn": self.target.arn,
                "requestedProductionTrafficWeight": weight,
            },
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                "strategy": "CANARY",
                "bakeTimeInMinutes": 3,
                "canaryConfiguration": {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 3},
            },
            "deploymentCircuitBreaker": {
                "status": self.breaker,
                "failureCount": self.failures,
                "threshold": _BREAKER_THRESHOLD,
            },
        }
        described.pop("targetServiceRevisionArn")
        if self.source is not None:
            described["sourceServiceRevisions"] = [
                {"arn": self.source.arn, "requestedProductionTrafficWeight": 100.0 - weight}
            ]
        if self.stage >= 0:
            described["lifecycleStage"] = STAGES[self.stage]
        if self.stopped_at is not None:
            described["stoppedAt"] = self.stopped_at
        if self.rollback is not None:
            described["rollback"] = dict(self.rollback)
        return described


@dataclass
class _Service:
    name: str
    cluster: str
    arn: str
    infrastructure_role: str
    tags: list[Json]
    created_at: float
    latest: Revision  # what ECS means the service to run; a rollback sets it back
    server: LoopbackServer
    serving: Revision | None = None  # what the endpoint answers as
    status: str = "ACTIVE"
    updated_at: float = 0.0
    revisions: int = 1
    deployments: list[_Deployment] = field(default_factory=list)  # newest first

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def running(self) -> _Deployment | None:
        current = self.deployments[0] if self.deployments else None
        return current if current is not None and current.running else None

    def describe(self, *, tags: bool) -> Json:
        running = self.running
        active = [self.latest] if running is None else [running.target]
        if running is not None and running.source is not None:
            active.append(running.source)
        described: Json = {
            "cluster": self.cluster,
            "serviceName": self.name,
            "serviceArn": self.arn,
            "infrastructureRoleArn": self.infrastructure_role,
            "status": {"statusCode": self.status},
            "activeConfigurations": [r.describe(self.endpoint) for r in active],
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.deployments:
            described["currentDeployment"] = self.deployments[0].arn
        if tags:
            described["tags"] = copy.deepcopy(self.tags)
        return described


class FakeEcsExpress(AwsJsonDouble):
    """The ECS Express double: an API endpoint, one HTTPS server per service, fault switches.

    Time is counted in polls: every DescribeExpressGatewayService, ListServiceDeployments and
    DescribeServiceDeployments call that concerns a service moves its running deployment one
    step. A stage lasts ``stage_polls`` polls, BAKE_TIME ``bake_polls`` (it is the long one).
    Use it as a context manager (or call ``close()``) so its servers and threads stop.
    """

    signing_name = "ecs"
    target_prefix = TARGET_PREFIX
    content_type = "application/x-amz-json-1.1"
    server_error = "ServerException"
    invalid_error = "InvalidParameterException"
    message_key = "message"

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        stage_polls: int = 1,
        bake_polls: int = 3,
        page_size: int = 2,
    ) -> None:
        super().__init__(region, "fake-ecs-express-")
        self.stage_polls = stage_polls
        self.bake_polls = bake_polls
        #: Items per page when a List call carries no maxResults (ECS's own default is larger).
        self.page_size = page_size
        self._services: dict[str, _Service] = {}  # by ARN, in creation order
        self._clusters = {"default"}
        self._forced: list[str] = []
        self._apps: dict[str, tuple[App, Callable[[Revision], bool]]] = {}
        self._operations = {
            "CreateExpressGatewayService": self._create,
            "DescribeExpressGatewayService": self._describe,
            "UpdateExpressGatewayService": self._update,
            "DeleteExpressGatewayService": self._delete,
            "ListServices": self._list_services,
            "ListServiceDeployments": self._list_deployments,
            "DescribeServiceDeployments": self._describe_deployments,
            "StopServiceDeployment": self._stop_deployment,
        }

    # ----- fault switches -------------------------------------------------------------------

    def fail_next_deployment(self, outcome: str = "ROLLBACK_SUCCESSFUL", times: int = 1) -> None:
        """Trip the circuit breaker of the next ``times`` deployments whatever their health.

        ``outcome`` is ROLLBACK_SUCCESSFUL or ROLLBACK_FAILED; a first deployment has nothing
        to roll back to and always ends ROLLBACK_FAILED.
        """
        if outcome not in _FORCED_OUTCOMES:
            raise ValueError(f"outcome must be one of {_FORCED_OUTCOMES}, not {outcome!r}")
        with self._lock:
            self._forced.extend([outcome] * times)

    # ----- apps and inspection --------------------------------------------------------------

    def register_app(
        self, image: str, app: App, *, starts: bool | Callable[[Revision], bool] = True
    ) -> None:
        """Serve ``image`` (exactly as sent) with ``app`` instead of ``ecs_default_app``.

        ``starts`` says whether a revision of this image comes up at all (or a predicate on the
        revision); one that does not trips the circuit breaker.
        """
        predicate = starts if callable(starts) else (lambda _revision: starts)
        with self._lock:
            self._apps[image] = (app, predicate)

    def serving(self, name: str, cluster: str = "default") -> Revision | None:
        """The revision the service's endpoint answers as now, or None when nothing serves."""
        with self._lock:
            return copy.deepcopy(self._services[self._service_arn(cluster, name)].serving)

    # ----- operations -----------------------------------------------------------------------

    def _create(self, params: Json) -> Json:
        for key in ("executionRoleArn", "primaryContainer"):
            if key not in params:
                raise _invalid(f"{key} is required to create an Express service.")
        self._check_roles(params)
        cluster = _short_name(params.get("cluster", "default"), "cluster")
        name = params.get("serviceName") or f"svc-{uuid.uuid4().hex[:12]}"
        arn = self._service_arn(cluster, name)
        existing = self._services.get(arn)
        if existing is not None and existing.status != "INACTIVE":
            raise _invalid("Creation of service was not idempotent.")
        if existing is not None:
            existing.server.close()
        self._clusters.add(cluster)
        revision = self._revision(cluster, name, 1, _complete({}, params))
        now = time.time()
        service = _Service(
            name=name,
            cluster=self._cluster_arn(cluster),
            arn=arn,
            infrastructure_role=params["infrastructureRoleArn"],
            tags=copy.deepcopy(params.get("tags", [])),
            created_at=now,
            updated_at=now,
            latest=revision,
            server=LoopbackServer(functools.partial(self._serve_app, arn), self._tls),
        )
        self._services[arn] = service
        self._start_deployment(service, revision, None)
        return {"service": service.describe(tags=True)}

    def _describe(self, params: Json) -> Json:
        arn = params["serviceArn"]
        if not arn.startswith("arn:"):
            raise _invalid(f"Invalid identifier: {arn} is not an ARN.")
        service = self._services.get(arn)
        if service is None:
            raise ApiError("ResourceNotFoundException", f"Service not found: {arn}")
        self._poll(service)
        return {"service": service.describe(tags="TAGS" in params.get("include", []))}

    def _update(self, params: Json) -> Json:
        service = self._active(params["serviceArn"])
        if "taskDefinitionArn" in params:
            raise _invalid("taskDefinitionArn is not supported by this test double.")
        self._check_roles(params)
        service.revisions += 1
        name, cluster = service.name, _short_name(service.cluster, "cluster")
        revision = self._revision(
            cluster, name, service.revisions, _complete(service.latest.config, params)
        )
        running = service.running
        if running is not None:
            self._end(running, "STOPPED", "Superseded by a newer service deployment.")
        service.latest = revision
        service.updated_at = time.time()
        self._start_deployment(service, revision, service.serving)
        return {
            "service": {
                "serviceArn": service.arn,
                "cluster": service.cluster,
                "serviceName": service.name,
                "status": {"statusCode": service.status},
                "targetConfiguration": revision.describe(service.endpoint),
                "createdAt": service.created_at,
                "updatedAt": service.updated_at,
            }
        }

    def _delete(self, params: Json) -> Json:
        service = self._active(params["serviceArn"])
        running = service.running
        if running is not None:
            self._end(running, "STOPPED", "The service is being deleted.")
        service.status, service.serving, service.updated_at = "DRAINING", None, time.time()
        return {"service": service.describe(tags=False)}

    def _list_services(self, params: Json) -> Json:
        cluster = self._known_cluster(params.get("cluster", "default"))
        arns = [
            s.arn
            for s in self._services.values()
            if s.cluster == self._cluster_arn(cluster) and s.status != "INACTIVE"
        ]
        page, token = self._page(arns, params, f"ListServices {cluster}")
        return {"serviceArns": page, **token}

    def _list_deployments(self, params: Json) -> Json:
        cluster = self._known_cluster(params.get("cluster", "default"))
        service = self._services.get(self._service_arn(cluster, _short_name(params["service"])))
        if service is None:
            raise ApiError("ServiceNotFoundException", "Service not found.")
        self._poll(service)
        wanted = params.get("status")
        after = params.get("createdAt", {}).get("after", float("-inf"))
        before = params.get("createdAt", {}).get("before", float("inf"))
        briefs = [
            d.brief()
            for d in service.deployments
            if (wanted is None or d.status in wanted) and after <= d.created_at <= before
        ]
        page, token = self._page(briefs, params, f"ListServiceDeployments {service.arn}")
        return {"serviceDeployments": page, **token}

    def _describe_deployments(self, params: Json) -> Json:
        found: list[_Deployment] = []
        failures: list[Json] = []
        for arn in params["serviceDeploymentArns"]:
            deployment = self._deployment(arn)
            if deployment is None:
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                found.append(deployment)
        for service_arn in dict.fromkeys(d.service_arn for d in found):
            self._poll(self._services[service_arn])
        return {"serviceDeployments": [d.describe() for d in found], "failures": failures}

    def _stop_deployment(self, params: Json) -> Json:
        arn = params["serviceDeploymentArn"]
        if params.get("stopType", "ROLLBACK") != "ROLLBACK":
            raise _invalid("Express service deployments can only be stopped with ROLLBACK.")
        deployment = self._deployment(arn)
        if deployment is None:
            raise ApiError("ServiceDeploymentNotFoundException", f"Not found: {arn}")
        if not deployment.running or deployment.status.startswith("ROLLBACK"):
            raise ApiError("ConflictException", f"The service deployment is {deployment.status}.")
        self._start_rollback(deployment, "ROLLBACK_REQUESTED", "Stopped by StopServiceDeployment.")
        return {"serviceDeploymentArn": arn}

    # ----- deployments ----------------------------------------------------------------------

    def _start_deployment(
        self, service: _Service, target: Revision, source: Revision | None
    ) -> None:
        now = time.time()
        deployment_id = uuid.uuid4().hex[:20]
        service.deployments.insert(
            0,
            _Deployment(
                arn=f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:service-deployment/"
                f"{_short_name(service.cluster, 'cluster')}/{service.name}/{deployment_id}",
                service_arn=service.arn,
                cluster_arn=service.cluster,
                target=target,
                source=source,
                created_at=now,
                updated_at=now,
            ),
        )

    def _poll(self, service: _Service) -> None:
        """One poll's worth of time for the service: its running deployment moves one step."""
        if service.status == "DRAINING":
            service.status = "INACTIVE"
        deployment = service.running
        if deployment is None:
            return
        if deployment.status in ("PENDING", "IN_PROGRESS"):
            # Every state is seen by at least one poll; PENDING as long as a stage.
            baking = deployment.stage >= 0 and STAGES[deployment.stage] == "BAKE_TIME"
            if deployment.polls_in_stage < (self.bake_polls if baking else self.stage_polls):
                deployment.polls_in_stage += 1
                return
            deployment.polls_in_stage = 1
        deployment.updated_at = time.time()
        if deployment.status == "PENDING":
            deployment.status, deployment.stage = "IN_PROGRESS", 0
            deployment.started_at = deployment.updated_at
        elif deployment.status == "ROLLBACK_REQUESTED":
            deployment.status = "ROLLBACK_IN_PROGRESS"
        elif deployment.status == "ROLLBACK_IN_PROGRESS":
            self._finish_rollback(service, deployment)
        elif STAGES[deployment.stage] == "SCALE_UP" and (
            self._forced or not self._starts(deployment.target)
        ):
            if self._forced:
                deployment.rollback_outcome = self._forced.pop(0)
            deployment.breaker, deployment.failures = "TRIGGERED", _BREAKER_THRESHOLD
            reason = "Circuit breaker: tasks of the new revision failed their health checks."
            self._start_rollback(deployment, "ROLLBACK_IN_PROGRESS", reason)
        elif deployment.stage + 1 < len(STAGES):
            deployment.stage += 1
            if deployment.shifted:
                service.serving = deployment.target
        else:
            deployment.breaker = "MONITORING_COMPLETE"
            self._end(deployment, "SUCCESSFUL", None)

    def _start_rollback(self, deployment: _Deployment, status: str, reason: str) -> None:
        now = time.time()
        deployment.status, deployment.status_reason, deployment.updated_at = status, reason, now
        deployment.rollback = {"reason": reason, "startedAt": now}
        if deployment.source is not None:
            deployment.rollback["serviceRevisionArn"] = deployment.source.arn

    def _finish_rollback(self, service: _Service, deployment: _Deployment) -> None:
        if deployment.source is None or deployment.rollback_outcome == "ROLLBACK_FAILED":
            service.serving = None
            self._end(deployment, "ROLLBACK_FAILED", deployment.status_reason)
            return
        service.serving = service.latest = deployment.source
        self._end(deployment, "ROLLBACK_SUCCESSFUL", deployment.status_reason)

    def _end(self, deployment: _Deployment, status: str, reason: str | None) -> None:
        now = time.time()
        deployment.status, deployment.status_reason = status, reason
        deployment.updated_at = deployment.finished_at = now
        if status == "STOPPED":
            deployment.stopped_at = now

    def _starts(self, revision: Revision) -> bool:
        """ECS's own view of health: tasks start and the app answers 2xx on the health path."""
        if BROKEN_MARKER in revision.image:
            return False
        app, starts = self._apps.get(revision.image, (ecs_default_app, lambda _r: True))
        if not starts(revision):
            return False
        request = AppRequest("GET", revision.health_check_path, "", {}, b"", revision)
        return 200 <= app(request).status < 300

    # ----- state ----------------------------------------------------------------------------

    def _service_arn(self, cluster: str, name: str) -> str:
        return f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:service/{cluster}/{name}"

    def _cluster_arn(self, cluster: str) -> str:
        return f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:cluster/{cluster}"

    def _known_cluster(self, value: str) -> str:
        cluster = _short_name(value, "cluster")
        if cluster not in self._clusters:
            raise ApiError("ClusterNotFoundException", "Cluster not found.")
        return cluster

    def _active(self, arn: str) -> _Service:
        """The service Update and Delete act on: it must exist and be ACTIVE."""
        service = self._services.get(arn)
        if service is None:
            raise ApiError("ServiceNotFoundException", "Service not found.")
        if service.status != "ACTIVE":
            raise ApiError("ServiceNotActiveException", "Service was not ACTIVE.")
        return service

    def _deployment(self, arn: str) -> _Deployment | None:
        for service in self._services.values():
            for deployment in service.deployments:
                if deployment.arn == arn:
                    return deployment
        return None

    def _revision(self, cluster: str, name: str, number: int, config: Json) -> Revision:
        prefix = f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}"
        return Revision(
            arn=f"{prefix}:service-revision/{cluster}/{name}/{number:020d}",
            task_definition_arn=f"{prefix}:task-definition/{cluster}-{name}:{number}",
            config=config,
            created_at=time.time(),
        )

    def _check_roles(self, params: Json) -> None:
        for key in ("executionRoleArn", "infrastructureRoleArn", "taskRoleArn"):
            if key in params and _ROLE_ARN.fullmatch(params[key]) is None:
                raise ApiError("ClientException", f"{key} is not an IAM role ARN: {params[key]}")

    def _page(self, items: list[Any], params: Json, scope: str) -> tuple[list[Any], Json]:
        """One page of ``items`` and, when more follow, ``{"nextToken": ...}``."""
        start = _decode_token(params["nextToken"], scope) if "nextToken" in params else 0
        end = start + params.get("maxResults", self.page_size)
        if end >= len(items):
            return items[start:], {}
        token = json.dumps({"scope": scope, "offset": end}).encode()
        return items[start:end], {"nextToken": base64.urlsafe_b64encode(token).decode()}

    # ----- the services' endpoints ----------------------------------------------------------

    def _serve_app(
        self, arn: str, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            revision = self._services[arn].serving
            if revision is None:
                return 503, {"Content-Type": "text/plain"}, b"no healthy targets\n"
            app = self._apps.get(revision.image, (ecs_default_app,))[0]
        url = urlsplit(path)
        return encode(app(AppRequest(method, url.path, url.query, headers, body, revision)))


def _complete(live: Json, request: Json) -> Json:
    """The revision ``request`` asks for: each member it carries replaces the live one whole."""
    config = {**_DEFAULTS, **copy.deepcopy(live)}
    config.update({k: copy.deepcopy(request[k]) for k in _CONFIG_KEYS if k in request})
    config["primaryContainer"].setdefault("containerPort", _DEFAULT_PORT)
    if not config["healthCheckPath"].startswith("/"):
        raise _invalid("healthCheckPath must start with a forward slash.")
    environment = config["primaryContainer"].get("environment", [])
    if any(set(e) != {"name", "value"} for e in environment):
        raise _invalid("Every environment variable needs a name and a value.")
    names = [e["name"] for e in environment]
    names += [s["name"] for s in config["primaryContainer"].get("secrets", [])]
    if len(names) != len(set(names)):
        raise _invalid("Environment variable and secret names must be unique.")
    return config


def _short_name(value: str, kind: str = "service") -> str:
    """A cluster or service name, given either as itself or as its ARN."""
    if value.startswith("arn:"):
        return value.rsplit("/", 1)[-1] if kind == "service" else value.split(f"{kind}/", 1)[-1]
    return value


def _decode_token(token: str, scope: str) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if decoded["scope"] == scope:
            return int(decoded["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise _invalid("The nextToken is not valid for this request.")
