"""A stateful test double of the AWS App Runner API, served over real HTTP on loopback.

moto has no App Runner, so the provider is tested against this double instead: real boto3 with
real botocore serialisation, signing and retries, pointed at ``FakeAppRunner.endpoint`` through
``AWS_ENDPOINT_URL_APPRUNNER``. Each service's *active* configuration is served over real HTTPS
on its own loopback port, behind a certificate from a throwaway CA (``ca_bundle``), so that
``"https://" + ServiceUrl`` probes run for real and after a rollback answer as the old image.

Faithful to the real API (botocore's model ``apprunner/2020-05-15`` and the API reference):

- awsJson1_0: ``POST /`` with ``X-Amz-Target: AppRunner.<Operation>``, JSON both ways; errors as
  ``{"__type": ..., "Message": ...}``, 400 for client errors and 500 for
  InternalServiceErrorException; throttling as ``ThrottlingException``, which the model does not
  declare but botocore retries by its code. Requests must be SigV4-signed for this region.
- request validation straight from the model: required members, enums, lengths, integer ranges
  and patterns (the server-side checks botocore leaves to the service), answered with
  InvalidRequestException; plus the documented rules an access role is needed for private ECR
  and a VPC connector is needed exactly when egress is VPC.
- the shapes of Service, ServiceSummary and OperationSummary; ARNs
  ``arn:aws:apprunner:REGION:123456789012:service/NAME/ID`` with a 32-hex ServiceId;
  epoch-second timestamps; a ServiceUrl without a scheme; defaults from the API reference
  (port 8080, 1 vCPU / 2 GB, TCP health check on "/" every 5 s, public ingress, default egress).
- UpdateService changes only the blocks it carries, and inside a block only the members it
  carries, each replaced whole: an ``ImageRepository`` without ``ImageConfiguration`` drops every
  RuntimeEnvironmentVariable and RuntimeEnvironmentSecret, the trap safedeploy exists for.
- operations are asynchronous: meanwhile the service is OPERATION_IN_PROGRESS and UpdateService
  answers InvalidStateException "Service cannot be updated in the current state:
  OPERATION_IN_PROGRESS." (the wording seen from the real service). ListOperations is newest
  first. A deployment that fails App Runner's own health check is rolled back by App Runner
  (ROLLBACK_SUCCEEDED; the old configuration is described and keeps serving); a failed creation
  leaves the service CREATE_FAILED, which a later UpdateService may repair.

Simplified or invented:

- one account (123456789012) and one region per double; image sources only (no
  CodeRepository); only CreateService, DescribeService, ListServices, UpdateService,
  ListOperations and ListTagsForResource, anything else is UnknownOperationException.
- time is counted in polls, not seconds: an operation stays IN_PROGRESS through
  ``operation_polls`` DescribeService/ListOperations calls on its service and ends on the next
  one. There is no PENDING phase.
- without MaxResults a page holds ``page_size`` items (2 by default) where the real API returns
  everything, so that callers' NextToken loops are exercised.
- model patterns are applied as full matches in which "." also matches a newline.
- health: an image starts unless it contains UNHEALTHY_MARKER (or its registered app says it
  does not); an HTTP health check passes on a 2xx from the app at its Path. A BADPROBE_MARKER
  image starts and passes the TCP check but answers 500 on /health.
- Cpu and Memory are normalised to units ("1 vCPU" -> "1024"), as DescribeService is believed
  to show them.
- after ROLLBACK_FAILED (reachable only through ``fail_next_deployment``) the real service's state
  is undocumented: the double describes the requested configuration as RUNNING and serves 503.
- error messages other than the InvalidStateException one are not the real wording.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import ipaddress
import json
import re
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import botocore.session
from botocore.model import Shape
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Json = dict[str, Any]

ACCOUNT_ID = "123456789012"
#: An image whose identifier contains this never starts: App Runner's own health check fails.
UNHEALTHY_MARKER = "unhealthy"
#: An image whose identifier contains this starts and passes a TCP check, but /health answers 500.
BADPROBE_MARKER = "badprobe"

IN_PROGRESS = "OPERATION_IN_PROGRESS"
_DEPLOYMENT_FAILURES = ("FAILED", "ROLLBACK_SUCCEEDED", "ROLLBACK_FAILED")
# Blocks of a service's configuration that UpdateService may carry (EncryptionConfiguration and
# Tags are set at creation only).
_UPDATABLE_BLOCKS = (
    "SourceConfiguration",
    "InstanceConfiguration",
    "HealthCheckConfiguration",
    "NetworkConfiguration",
    "ObservabilityConfiguration",
)
_DEFAULT_BLOCKS: Json = {
    "InstanceConfiguration": {"Cpu": "1024", "Memory": "2048"},
    "HealthCheckConfiguration": {
        "Protocol": "TCP",
        "Path": "/",
        "Interval": 5,
        "Timeout": 2,
        "HealthyThreshold": 1,
        "UnhealthyThreshold": 5,
    },
    "NetworkConfiguration": {
        "EgressConfiguration": {"EgressType": "DEFAULT"},
        "IngressConfiguration": {"IsPubliclyAccessible": True},
        "IpAddressType": "IPV4",
    },
    "ObservabilityConfiguration": {"ObservabilityEnabled": False},
}
_CPU_UNITS = {
    "0.25 vCPU": "256",
    "0.5 vCPU": "512",
    "1 vCPU": "1024",
    "2 vCPU": "2048",
    "4 vCPU": "4096",
}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


class ApiError(Exception):
    """An App Runner error response: its ``__type``, message and HTTP status."""

    def __init__(self, error_type: str, message: str, status: int = 400) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.status = status


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidRequestException", message)


@dataclass(frozen=True)
class Call:
    """One request the double received, whatever it answered (``status``)."""

    operation: str
    body: Json
    status: int


@dataclass(frozen=True)
class ServiceConfig:
    """A service's configuration as App Runner keeps it: the request's blocks, defaults filled in.

    ``blocks`` holds SourceConfiguration, InstanceConfiguration, HealthCheckConfiguration,
    NetworkConfiguration, ObservabilityConfiguration, AutoScalingConfigurationArn and, when set
    at creation, EncryptionConfiguration.
    """

    blocks: Json

    @property
    def image(self) -> str:
        return str(self.blocks["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"])

    @property
    def env(self) -> dict[str, str]:
        """RuntimeEnvironmentVariables: plain values."""
        return dict(self._image_configuration.get("RuntimeEnvironmentVariables", {}))

    @property
    def secrets(self) -> dict[str, str]:
        """RuntimeEnvironmentSecrets: variable name -> Secrets Manager / SSM reference."""
        return dict(self._image_configuration.get("RuntimeEnvironmentSecrets", {}))

    @property
    def _image_configuration(self) -> Json:
        image_configuration: Json = self.blocks["SourceConfiguration"]["ImageRepository"].get(
            "ImageConfiguration", {}
        )
        return image_configuration


class RunningConfig(Protocol):
    """What an app sees of the configuration it runs as, on App Runner or ECS Express."""

    @property
    def image(self) -> str: ...

    @property
    def env(self) -> dict[str, str]: ...

    @property
    def secrets(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class AppRequest:
    """An HTTPS request to a service's URL, with the active configuration that answers it."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    config: RunningConfig


@dataclass(frozen=True)
class AppResponse:
    """What the app answers: bytes and str are sent as they are, anything else as JSON."""

    status: int
    body: Any = None


App = Callable[[AppRequest], AppResponse]


def default_app(request: AppRequest) -> AppResponse:
    """A well-behaved service, so that tests only write an app when they need a misbehaving one.

    ``GET /health`` answers 200 ``{"ok": true}`` (500 for a BADPROBE_MARKER image); ``GET /``
    says which image runs with which variable names, so a probe can tell old from new.
    """
    config = request.config
    if request.path == "/health":
        healthy = BADPROBE_MARKER not in config.image
        return AppResponse(200 if healthy else 500, {"ok": healthy})
    if request.path == "/":
        return AppResponse(
            200,
            {"image": config.image, "env": sorted(config.env), "secrets": sorted(config.secrets)},
        )
    return AppResponse(404, {"error": "not found"})


@dataclass(frozen=True)
class _RegisteredApp:
    app: App
    starts: Callable[[ServiceConfig], bool]


_DEFAULT_APP = _RegisteredApp(default_app, lambda config: UNHEALTHY_MARKER not in config.image)


@dataclass
class _Operation:
    id: str
    type: str
    target_arn: str
    started_at: float
    polls_left: int
    candidate: ServiceConfig  # the configuration this operation deploys
    status: str = "IN_PROGRESS"
    updated_at: float = 0.0
    ended_at: float | None = None

    def summary(self) -> Json:
        summary: Json = {
            "Id": self.id,
            "Type": self.type,
            "Status": self.status,
            "TargetArn": self.target_arn,
            "StartedAt": self.started_at,
            "UpdatedAt": self.updated_at,
        }
        if self.ended_at is not None:
            summary["EndedAt"] = self.ended_at
        return summary


@dataclass
class _Service:
    name: str
    id: str
    arn: str
    created_at: float
    config: ServiceConfig  # what DescribeService shows
    server: LoopbackServer
    tags: list[Json]
    active: ServiceConfig | None = None  # what the URL serves
    status: str = IN_PROGRESS
    updated_at: float = 0.0
    operations: list[_Operation] = field(default_factory=list)  # newest first

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def summary(self) -> Json:
        return {
            "ServiceName": self.name,
            "ServiceId": self.id,
            "ServiceArn": self.arn,
            "ServiceUrl": self.url,
            "CreatedAt": self.created_at,
            "UpdatedAt": self.updated_at,
            "Status": self.status,
        }

    def describe(self) -> Json:
        blocks = copy.deepcopy(self.config.blocks)
        autoscaling_arn = blocks.pop("AutoScalingConfigurationArn")
        # .../autoscalingconfiguration/NAME[/REVISION[/ID]]
        _, name, *rest = autoscaling_arn.split(":", 5)[5].split("/")
        revision = int(rest[0]) if rest and rest[0].isdigit() else 1
        return {
            **self.summary(),
            **blocks,
            "AutoScalingConfigurationSummary": {
                "AutoScalingConfigurationArn": autoscaling_arn,
                "AutoScalingConfigurationName": name,
                "AutoScalingConfigurationRevision": revision,
            },
        }


class AwsJsonDouble:
    """What every AWS JSON-protocol double here shares: the loopback API endpoint, SigV4 and
    model checks, the call log, fault switches, and a CA for the services' HTTPS servers.

    A subclass names its protocol in the class attributes, fills ``_operations`` and keeps its
    services (each with a ``server``) in ``_services``.
    """

    signing_name: str  # SigV4 service name and botocore model
    target_prefix: str  # before the operation in X-Amz-Target
    content_type: str
    server_error: str  # the error type answered with 500
    invalid_error: str  # the error type for a request the model refuses
    message_key: str  # "Message" or "message", as the service spells it

    def __init__(self, region: str, tls_prefix: str) -> None:
        self.region = region
        self._lock = threading.RLock()
        self._services: dict[str, Any] = {}  # by ARN, in creation order
        self._calls: list[Call] = []
        self._faults: dict[str, list[ApiError]] = {}
        self._operations: dict[str, Callable[[Json], Json]] = {}
        self._tls_dir = tempfile.TemporaryDirectory(prefix=tls_prefix)
        #: Path of the CA certificate that signs every service's HTTPS certificate.
        self.ca_bundle, self._tls = make_tls(Path(self._tls_dir.name))
        self._api = LoopbackServer(self._respond_api)
        #: Base URL for the service's AWS_ENDPOINT_URL_* variable (or boto3's endpoint_url).
        self.endpoint = f"http://127.0.0.1:{self._api.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every server and join its threads; the double is unusable afterwards."""
        with self._lock:
            services = list(self._services.values())
        self._api.close()
        for service in services:
            service.server.close()
        self._tls_dir.cleanup()

    def fail_next(
        self,
        operation: str,
        error_type: str | None = None,
        status: int | None = None,
        times: int = 1,
        message: str = "Injected failure.",
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` with an error instead of running them.

        By default the service's server error, as 500; any other type defaults to 400, as the
        real services answer. botocore retries 5xx and throttling on its own.
        """
        error_type = error_type or self.server_error
        if status is None:
            status = 500 if error_type == self.server_error else 400
        with self._lock:
            self._faults.setdefault(operation, []).extend(
                ApiError(error_type, message, status) for _ in range(times)
            )

    def throttle_next(self, operation: str, times: int = 1, status: int = 400) -> None:
        """Throttle the next ``times`` calls: ThrottlingException, as 400 (the usual) or 429."""
        self.fail_next(operation, "ThrottlingException", status, times, "Rate exceeded")

    def calls(self, operation: str | None = None) -> list[Call]:
        """Every request received, in order (operation, params, status), optionally filtered."""
        with self._lock:
            return [c for c in self._calls if operation is None or c.operation == operation]

    def mutating_calls(self) -> list[Call]:
        """Every request that could change something: all but Describe* and List*."""
        return [c for c in self.calls() if not c.operation.startswith(("Describe", "List"))]

    def _respond_api(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        operation = headers.get("x-amz-target", "").removeprefix(self.target_prefix)
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = None
        with self._lock:
            try:
                status, payload = 200, self._dispatch(method, path, headers, operation, params)
            except ApiError as error:
                status = error.status
                payload = {"__type": error.error_type, self.message_key: error.message}
            self._calls.append(Call(operation, params if isinstance(params, dict) else {}, status))
        response_headers = {
            "Content-Type": self.content_type,
            "x-amzn-RequestId": str(uuid.uuid4()),
        }
        return status, response_headers, json.dumps(payload).encode()

    def _dispatch(
        self, method: str, path: str, headers: Mapping[str, str], operation: str, params: Any
    ) -> Json:
        if method != "POST" or path != "/":
            raise ApiError("UnknownOperationException", f"{method} {path}: use POST /.", 404)
        check_signature(headers.get("authorization", ""), self.signing_name, self.region)
        handler = self._operations.get(operation)
        if handler is None:
            raise ApiError(
                "UnknownOperationException", f"{operation!r} is not implemented by this double."
            )
        if not isinstance(params, dict):
            raise ApiError("SerializationException", "The request body is not a JSON object.")
        faults = self._faults.get(operation)
        if faults:
            raise faults.pop(0)
        try:
            validate(input_shape(operation, self.signing_name), params, "")
        except ApiError as error:
            raise ApiError(self.invalid_error, error.message) from None
        return handler(params)


class FakeAppRunner(AwsJsonDouble):
    """The App Runner double: an API endpoint, one HTTPS server per service, fault switches.

    Use it as a context manager (or call ``close()``) so its servers and threads stop.
    """

    signing_name = "apprunner"
    target_prefix = "AppRunner."
    content_type = "application/x-amz-json-1.0"
    server_error = "InternalServiceErrorException"
    invalid_error = "InvalidRequestException"
    message_key = "Message"

    def __init__(
        self, *, region: str = "us-east-1", operation_polls: int = 2, page_size: int = 2
    ) -> None:
        super().__init__(region, "fake-apprunner-")
        #: How many DescribeService/ListOperations polls see a new operation still in progress.
        self.operation_polls = operation_polls
        #: Items per page when a List call carries no MaxResults.
        self.page_size = page_size
        self._services: dict[str, _Service] = {}  # by ARN, in creation order
        self._deployment_outcomes: list[str] = []
        self._apps: dict[str, _RegisteredApp] = {}
        self._autoscaling_arn = (
            f"arn:aws:apprunner:{region}:{ACCOUNT_ID}:autoscalingconfiguration/"
            f"DefaultConfiguration/1/{uuid.uuid4().hex}"
        )
        self._operations = {
            "CreateService": self._create_service,
            "DescribeService": self._describe_service,
            "ListServices": self._list_services,
            "UpdateService": self._update_service,
            "ListOperations": self._list_operations,
            "ListTagsForResource": self._list_tags_for_resource,
        }

    # ----- fault switches -------------------------------------------------------------------

    def fail_next_deployment(self, outcome: str = "ROLLBACK_FAILED", times: int = 1) -> None:
        """Make the next ``times`` operations end in ``outcome`` whatever the health check says.

        ``outcome`` is FAILED, ROLLBACK_SUCCEEDED or ROLLBACK_FAILED; with nothing to roll back
        to (a creation), every failure is FAILED and the service CREATE_FAILED.
        """
        if outcome not in _DEPLOYMENT_FAILURES:
            raise ValueError(f"outcome must be one of {_DEPLOYMENT_FAILURES}, not {outcome!r}")
        with self._lock:
            self._deployment_outcomes.extend([outcome] * times)

    def external_update(
        self, name: str, request: Json | None = None, *, polls: int | None = None
    ) -> str:
        """Start an operation as another writer would, and return its OperationId.

        With ``request`` (UpdateService-shaped, without ServiceArn) it is a console edit: an
        UPDATE_SERVICE; without, an automatic redeployment of the current configuration: a
        START_DEPLOYMENT. ``polls`` overrides ``operation_polls`` (make it large to hold the
        service in OPERATION_IN_PROGRESS). Not in the call log: the code under test did not
        make it. Raises ApiError as UpdateService would.
        """
        with self._lock:
            service = self._by_name(name)
            if request is None:
                return self._start_update(service, {}, polls, "START_DEPLOYMENT").id
            validate(input_shape("UpdateService"), {"ServiceArn": service.arn, **request}, "")
            return self._start_update(service, request, polls, "UPDATE_SERVICE").id

    # ----- apps and inspection --------------------------------------------------------------

    def register_app(
        self, image: str, app: App, *, starts: bool | Callable[[ServiceConfig], bool] = True
    ) -> None:
        """Serve ``image`` (an exact ImageIdentifier) with ``app`` instead of ``default_app``.

        ``starts`` says whether a configuration of this image comes up at all: ``False`` (or a
        predicate on the configuration, e.g. "DATABASE_URL is set") fails App Runner's own
        health check, so App Runner rolls the deployment back.
        """
        predicate = starts if callable(starts) else (lambda _config: starts)
        with self._lock:
            self._apps[image] = _RegisteredApp(app, predicate)

    def active_config(self, name: str) -> ServiceConfig | None:
        """The configuration the service's URL serves now, or None when nothing serves."""
        with self._lock:
            active = self._by_name(name).active
            return None if active is None else copy.deepcopy(active)

    # ----- the API endpoint -----------------------------------------------------------------

    # ----- operations -----------------------------------------------------------------------

    def _create_service(self, params: Json) -> Json:
        name = params["ServiceName"]
        if any(s.name == name for s in self._services.values()):
            raise _invalid(f"Service with the provided name already exists: {name}")
        blocks = {key: copy.deepcopy(params[key]) for key in _UPDATABLE_BLOCKS if key in params}
        blocks["AutoScalingConfigurationArn"] = params.get(
            "AutoScalingConfigurationArn", self._autoscaling_arn
        )
        if "EncryptionConfiguration" in params:
            blocks["EncryptionConfiguration"] = copy.deepcopy(params["EncryptionConfiguration"])
        config = _complete(blocks)
        service_id = uuid.uuid4().hex
        arn = f"arn:aws:apprunner:{self.region}:{ACCOUNT_ID}:service/{name}/{service_id}"
        service = _Service(
            name=name,
            id=service_id,
            arn=arn,
            created_at=time.time(),
            config=config,
            server=LoopbackServer(functools.partial(self._serve_app, arn), self._tls),
            tags=copy.deepcopy(params.get("Tags", [])),
        )
        self._services[arn] = service
        operation = self._start_operation(service, "CREATE_SERVICE", config, None)
        return {"Service": service.describe(), "OperationId": operation.id}

    def _describe_service(self, params: Json) -> Json:
        service = self._by_arn(params["ServiceArn"])
        self._poll(service)
        return {"Service": service.describe()}

    def _list_services(self, params: Json) -> Json:
        summaries = [s.summary() for s in self._services.values()]
        page, next_token = self._page(summaries, params, "ListServices")
        return {"ServiceSummaryList": page, **next_token}

    def _update_service(self, params: Json) -> Json:
        service = self._by_arn(params["ServiceArn"])
        operation = self._start_update(service, params, None, "UPDATE_SERVICE")
        return {"Service": service.describe(), "OperationId": operation.id}

    def _list_operations(self, params: Json) -> Json:
        service = self._by_arn(params["ServiceArn"])
        self._poll(service)
        summaries = [o.summary() for o in service.operations]
        page, next_token = self._page(summaries, params, f"ListOperations {service.arn}")
        return {"OperationSummaryList": page, **next_token}

    def _list_tags_for_resource(self, params: Json) -> Json:
        return {"Tags": copy.deepcopy(self._by_arn(params["ResourceArn"]).tags)}

    # ----- state ----------------------------------------------------------------------------

    def _by_arn(self, arn: str) -> _Service:
        service = self._services.get(arn)
        if service is None:
            raise ApiError("ResourceNotFoundException", f"Service not found: {arn}")
        return service

    def _by_name(self, name: str) -> _Service:
        for service in self._services.values():
            if service.name == name:
                return service
        raise LookupError(f"the double has no service named {name!r}")

    def _start_update(
        self, service: _Service, request: Json, polls: int | None, kind: str
    ) -> _Operation:
        """Deploy the live configuration with ``request``'s blocks merged over it."""
        if service.status == IN_PROGRESS:
            raise ApiError(
                "InvalidStateException",
                f"Service cannot be updated in the current state: {service.status}.",
            )
        blocks = copy.deepcopy(service.config.blocks)
        for key in _UPDATABLE_BLOCKS:
            if key in request:
                blocks[key] = {**blocks.get(key, {}), **copy.deepcopy(request[key])}
        if "AutoScalingConfigurationArn" in request:
            blocks["AutoScalingConfigurationArn"] = request["AutoScalingConfigurationArn"]
        return self._start_operation(service, kind, _complete(blocks), polls)

    def _start_operation(
        self, service: _Service, kind: str, candidate: ServiceConfig, polls: int | None
    ) -> _Operation:
        now = time.time()
        operation = _Operation(
            id=str(uuid.uuid4()),
            type=kind,
            target_arn=service.arn,
            started_at=now,
            updated_at=now,
            polls_left=self.operation_polls if polls is None else polls,
            candidate=candidate,
        )
        service.operations.insert(0, operation)
        service.config = candidate
        service.status = IN_PROGRESS
        service.updated_at = now
        return operation

    def _poll(self, service: _Service) -> None:
        """Count one poll against the service's running operation; end it when none are left."""
        operation = service.operations[0] if service.operations else None
        if operation is None or operation.ended_at is not None:
            return
        if operation.polls_left > 0:
            operation.polls_left -= 1
            return
        self._finish(service, operation)

    def _finish(self, service: _Service, operation: _Operation) -> None:
        candidate = operation.candidate
        if self._deployment_outcomes:
            outcome = self._deployment_outcomes.pop(0)
        else:
            outcome = "SUCCEEDED" if self._passes_health_check(candidate) else "ROLLBACK_SUCCEEDED"
        if service.active is None and outcome.startswith("ROLLBACK"):
            outcome = "FAILED"  # nothing has ever run, so there is nothing to roll back to
        now = time.time()
        operation.status, operation.ended_at, operation.updated_at = outcome, now, now
        service.updated_at = now
        service.status = "RUNNING"
        if outcome == "SUCCEEDED":
            service.active = candidate
        elif outcome == "ROLLBACK_FAILED":
            service.active = None
        elif service.active is None:
            service.status = "CREATE_FAILED"
        else:
            service.config = service.active

    def _passes_health_check(self, config: ServiceConfig) -> bool:
        """App Runner's own check: the image must start; an HTTP check also wants a 2xx."""
        registered = self._apps.get(config.image, _DEFAULT_APP)
        if not registered.starts(config):
            return False
        health_check = config.blocks["HealthCheckConfiguration"]
        if health_check["Protocol"] != "HTTP":
            return True
        request = AppRequest("GET", health_check["Path"], "", {}, b"", config)
        return 200 <= registered.app(request).status < 300

    def _page(self, items: list[Json], params: Json, scope: str) -> tuple[list[Json], Json]:
        """One page of ``items`` and, when more follow, ``{"NextToken": ...}`` to fetch them."""
        size = params.get("MaxResults", self.page_size)
        start = 0
        if "NextToken" in params:
            start = _decode_token(params["NextToken"], scope)
        end = start + size
        if end >= len(items):
            return items[start:], {}
        token = json.dumps({"scope": scope, "offset": end}).encode()
        return items[start:end], {"NextToken": base64.urlsafe_b64encode(token).decode()}

    # ----- the services' own URLs -----------------------------------------------------------

    def _serve_app(
        self, arn: str, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            config = self._services[arn].active
            if config is None:
                return 503, {"Content-Type": "text/plain"}, b"no healthy deployment\n"
            registered = self._apps.get(config.image, _DEFAULT_APP)
        url = urlsplit(path)
        return encode(
            registered.app(AppRequest(method, url.path, url.query, headers, body, config))
        )


def encode(response: AppResponse) -> tuple[int, dict[str, str], bytes]:
    """An app's answer as HTTP: bytes and str as they are, anything else as JSON."""
    if isinstance(response.body, bytes):
        return response.status, {"Content-Type": "application/octet-stream"}, response.body
    if isinstance(response.body, str):
        return response.status, {"Content-Type": "text/plain"}, response.body.encode()
    payload = b"" if response.body is None else json.dumps(response.body).encode()
    return response.status, {"Content-Type": "application/json"}, payload


def check_signature(authorization: str, service: str, region: str) -> None:
    """Refuse unsigned requests and requests signed for another region or service."""
    scope = _CREDENTIAL_SCOPE.search(authorization)
    if scope is None:
        raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    signed_region, signed_service = scope.groups()
    if signed_service != service:
        raise ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
            403,
        )
    if signed_region != region:
        raise ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{signed_region}'.",
            403,
        )


# ----- configuration ------------------------------------------------------------------------


def _complete(blocks: Json) -> ServiceConfig:
    """Fill in App Runner's defaults, normalise units and apply the rules the model cannot say."""
    for key, default in _DEFAULT_BLOCKS.items():
        blocks[key] = {**copy.deepcopy(default), **blocks.get(key, {})}
    source = blocks.get("SourceConfiguration", {})
    if "CodeRepository" in source:
        raise _invalid("CodeRepository sources are not supported by this test double.")
    repository = source.get("ImageRepository")
    if repository is None:
        raise _invalid("SourceConfiguration must contain an ImageRepository.")
    repository.setdefault("ImageConfiguration", {}).setdefault("Port", "8080")
    private_ecr = repository["ImageRepositoryType"] == "ECR"
    # Documented default: on for an image in the service's own account's ECR, off otherwise.
    source.setdefault(
        "AutoDeploymentsEnabled",
        private_ecr and repository["ImageIdentifier"].startswith(f"{ACCOUNT_ID}."),
    )
    if private_ecr and "AccessRoleArn" not in source.get("AuthenticationConfiguration", {}):
        raise _invalid("AuthenticationConfiguration.AccessRoleArn is required for ECR images.")
    egress = blocks["NetworkConfiguration"]["EgressConfiguration"]
    if (egress.get("EgressType") == "VPC") != ("VpcConnectorArn" in egress):
        raise _invalid("VpcConnectorArn is required with, and only valid with, EgressType VPC.")
    instance = blocks["InstanceConfiguration"]
    instance["Cpu"] = _CPU_UNITS.get(instance["Cpu"], instance["Cpu"])
    memory = instance["Memory"]
    if memory.endswith(" GB"):
        instance["Memory"] = str(int(float(memory.removesuffix(" GB")) * 1024))
    return ServiceConfig(blocks)


def _decode_token(token: str, scope: str) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if decoded["scope"] == scope:
            return int(decoded["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise _invalid("The NextToken is not valid for this request.")


# ----- validation from botocore's model -----------------------------------------------------


@functools.cache
def input_shape(operation: str, service: str = "apprunner") -> Shape:
    """The request shape of ``operation`` in botocore's model of ``service``."""
    model = botocore.session.get_session().get_service_model(service)
    return model.operation_model(operation).input_shape


def validate(shape: Shape, value: Any, path: str) -> None:
    """Check ``value`` against the model's constraints, as the service does after botocore."""
    kind = shape.type_name
    where = path or "the request"
    if kind == "structure":
        if not isinstance(value, dict):
            raise _invalid(f"{where} must be an object.")
        for name in shape.required_members:
            if name not in value:
                raise _invalid(f"Missing required member {name} in {where}.")
        for name, member in shape.members.items():
            if name in value:
                validate(member, value[name], f"{path}.{name}" if path else name)
    elif kind == "list":
        if not isinstance(value, list):
            raise _invalid(f"{where} must be a list.")
        for index, item in enumerate(value):
            validate(shape.member, item, f"{path}[{index}]")
    elif kind == "map":
        if not isinstance(value, dict):
            raise _invalid(f"{where} must be a map.")
        for key, item in value.items():
            validate(shape.key, key, f"{path} key")
            validate(shape.value, item, f"{path}.{key}")
    elif kind == "string":
        _validate_string(shape, value, where)
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid(f"{where} must be an integer.")
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise _invalid(f"{where} must be between {low} and {high}.")
    elif kind == "boolean" and not isinstance(value, bool):
        raise _invalid(f"{where} must be a boolean.")


def _validate_string(shape: Shape, value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise _invalid(f"{where} must be a string.")
    # The service does not echo values the model marks sensitive (environment values).
    shown = "" if shape.metadata.get("sensitive") else f" '{value}'"
    low, high = shape.metadata.get("min", 0), shape.metadata.get("max")
    if len(value) < low or (high is not None and len(value) > high):
        raise _invalid(f"Value{shown} at {where} must have a length between {low} and {high}.")
    if shape.enum and value not in shape.enum:
        raise _invalid(f"Value{shown} at {where} must be one of {shape.enum}.")
    pattern = shape.metadata.get("pattern")
    if pattern is not None and re.fullmatch(_python_pattern(pattern), value, re.DOTALL) is None:
        raise _invalid(f"Value{shown} at {where} must match the pattern {pattern}.")


def _python_pattern(pattern: str) -> str:
    """The model's pattern for Python's re, which lacks \\p{..}: letters and digits as \\w,
    separators as \\s (a little wider than Unicode's classes, so nothing valid is refused)."""
    return pattern.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\w").replace(r"\p{Z}", r"\s")


# ----- loopback HTTP(S) ---------------------------------------------------------------------

Responder = Callable[[str, str, Mapping[str, str], bytes], tuple[int, dict[str, str], bytes]]


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the server's responder; HTTP/1.0, so each connection ends."""

    server: LoopbackServer
    timeout = 10  # a stalled client cannot hold close() for longer

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, response_headers, payload = self.server.respond(
            self.command, self.path, headers, body
        )
        self.send_response(status)
        for name, value in response_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the call log is the record, and test output stays readable."""


class LoopbackServer(ThreadingHTTPServer):
    """A server on 127.0.0.1:0, served from a daemon thread; close() joins every thread."""

    daemon_threads = False  # so that server_close() joins the request threads
    block_on_close = True

    def __init__(self, respond: Responder, tls: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self._tls = tls
        super().__init__(("127.0.0.1", 0), _Handler)
        # A short poll interval: shutdown() waits up to one interval, once per server.
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fake-apprunner-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        connection, address = super().get_request()
        if self._tls is not None:
            # The handshake then happens in the request's thread, not the accepting one.
            connection = self._tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that reject the certificate or hang up: tests provoke both."""
        if not isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            super().handle_error(request, client_address)

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()


def make_tls(directory: Path) -> tuple[str, ssl.SSLContext]:
    """A throwaway CA and a certificate it signs for 127.0.0.1 and localhost.

    Returns the CA's PEM path (for REQUESTS_CA_BUNDLE) and a server context using the
    certificate. The extensions are the ones strict verifiers (X509_STRICT) insist on.
    """
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-apprunner test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    cert_path = directory / "server.pem"
    key_path = directory / "server-key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return str(ca_path), context


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
