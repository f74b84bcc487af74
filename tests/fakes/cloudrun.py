"""A stateful loopback double of the Cloud Run Admin API v2 and the Secret Manager v1 calls we use.

Why it exists: safedeploy drives Cloud Run through the real ``google.cloud.run_v2`` client over its
REST transport. A mock of that client would only test our beliefs about it. This double speaks the
REST JSON the client sends and expects, over HTTP on 127.0.0.1, so tests run the real client with
``client_options={"api_endpoint": fake.endpoint}`` and ``AnonymousCredentials()`` (the REST
transport keeps an ``http://`` scheme given in the endpoint). It also serves every service's HTTP
traffic on loopback, so probes hit real URLs that route to the right revision.

Faithful to the real API (checked against the installed client and public reports):

- URI templates, verbs and bodies of Create/Get/List/Update/DeleteService, Get/List/DeleteRevision,
  GetOperation, and Secret Manager GetSecret, GetSecretVersion, AccessSecretVersion (GET
  ``...:access``) and GetIamPolicy (GET ``...:getIamPolicy``). Query parameters ``serviceId``,
  ``validateOnly``, ``allowMissing``, ``updateMask``, ``pageSize``/``pageToken``.
- Bodies are parsed with the real protobuf types: an unknown field is a 400, and enums arrive as
  names or numbers (the client sends numbers with ``$alt=json;enum-encoding=int``).
- Errors are Google REST error bodies ``{"error": {"code", "message", "status"}}``; the client maps
  them by HTTP status alone: 404 NotFound, 409 Conflict (ALREADY_EXISTS and ABORTED), 400
  BadRequest (INVALID_ARGUMENT, FAILED_PRECONDITION), 429 TooManyRequests, 503 ServiceUnavailable.
- UpdateService without ``updateMask`` replaces the whole spec: an env var left out of the body is
  gone. Output-only fields echoed back by a client are ignored. A set ``etag`` that differs from
  the stored one is 409 ABORTED (AIP-154; google.api_core raises Conflict); an empty etag is not
  checked. Every change bumps ``generation`` and ``etag``.
- Server defaults are filled in (ingress, launch stage, scaling, timeout, concurrency, service
  account, cpu/memory limits, port 8080, 100% to LATEST), so a live service carries values its
  author never wrote, as the real one does.
- Each mutation answers a ``google.longrunning.Operation`` named
  ``projects/P/locations/R/operations/<uuid>`` whose ``metadata`` and ``response`` are the Service
  (or Revision) with ``@type`` ``type.googleapis.com/google.cloud.run.v2.Service``.
- A changed template makes a revision: named ``template.revision`` if given (it must start with
  ``<service>-``; reusing an existing name with another configuration is 409 "Revision named '...'
  with different configuration already exists."), else ``<service>-<5 digits>-<3 chars>``.
- A revision that cannot start leaves the service serving what it served before: its Ready
  condition fails, the service's ``terminalCondition`` fails with "Revision '...' is not ready and
  cannot serve traffic. ...", ``latestReadyRevision``, ``trafficStatuses`` and
  ``observedGeneration`` keep their old values, and the operation ends with error code 9
  (FAILED_PRECONDITION; public logs show 13 INTERNAL before 2025). Traffic naming a revision
  that does not exist fails the same way, as reported for the real API.
- Secret references are checked when a revision starts: a service account without
  ``roles/secretmanager.secretAccessor`` on the secret or its project, a missing secret or a
  version that is not ENABLED fails the revision (reason SECRETS_ACCESS_CHECK_FAILED).
- Policy Troubleshooter v3 and Resource Manager ``projects.get`` are served too (``fake.iam``,
  tests/fakes/iam.py), from the secrets' bindings and the grants a test sets.
- Secret Manager: ``latest`` is the most recently created version, whatever its state; accessing a
  DISABLED or DESTROYED version is 400 FAILED_PRECONDITION; ``payload.data`` is base64.
- Deleting a revision that serves traffic, or the latest one, is 400 FAILED_PRECONDITION.
- New services may not use labels or annotations in the ``run.googleapis.com/``,
  ``cloud.googleapis.com/``, ``serving.knative.dev/`` or ``autoscaling.knative.dev/`` namespaces.

Simplified:

- Responses spell enums as names even when numbers are asked for; the client reads both.
- No IAM on the admin API: any credentials pass unless ``token=`` is set, then only that bearer.
- Reconciliation advances only when an operation is polled (``operation_polls``), and after
  ``operation_latency`` seconds when that is set; never by time alone.
- Only secret-level IAM bindings count; a secret added without bindings is readable by anyone.
- Secret versions resolve when a revision is created, as if all its instances started then.
- Names carry project ids where the real API sometimes answers with project numbers.
- Texts of the etag, traffic-validation and name-prefix errors are paraphrased; statuses are not.
- A write that only moves traffic succeeds once its targets are ready, even while
  ``latestCreatedRevision`` still names a revision that failed (a rollback by traffic); the real
  API may go on reporting that failure in ``terminalCondition``.
- Not served: Jobs, WorkerPools, IAM on services, ListOperations/WaitOperation, ``dataCrc32c``.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from google.cloud import run_v2
from google.protobuf import json_format
from google.protobuf.message import Message

from fakes.iam import FakeIam, IamError

Json = dict[str, Any]

# Canonical status -> HTTP status, as Google APIs map google.rpc.Code over REST.
_HTTP_STATUS: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_GRPC_FAILED_PRECONDITION = 9
_GRPC_NOT_FOUND = 5
_SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
_REVISION_TYPE = "type.googleapis.com/google.cloud.run.v2.Revision"
_LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
_BY_REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
_ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"
_ACCESS = "secretmanager.versions.access"
_MUTATING_RPCS = frozenset({"CreateService", "UpdateService", "DeleteService", "DeleteRevision"})
# Service fields only the server writes: a client that echoes them back in an update is ignored.
_OUTPUT_ONLY = frozenset(
    {
        "name",
        "uid",
        "generation",
        "createTime",
        "updateTime",
        "deleteTime",
        "expireTime",
        "creator",
        "lastModifier",
        "urls",
        "observedGeneration",
        "terminalCondition",
        "conditions",
        "latestReadyRevision",
        "latestCreatedRevision",
        "trafficStatuses",
        "uri",
        "satisfiesPzs",
        "threatDetectionEnabled",
        "reconciling",
        "etag",
    }
)
# Template fields a revision records (the template's own ``revision`` is the revision's name).
_REVISION_FIELDS = frozenset(f.json_name for f in run_v2.Revision.pb().DESCRIPTOR.fields)
# Label and annotation namespaces the v2 API refuses in new resources.
_RESERVED_PREFIXES = (
    "run.googleapis.com/",
    "cloud.googleapis.com/",
    "serving.knative.dev/",
    "autoscaling.knative.dev/",
)
_CONTAINER_FAILED = (
    "The user-provided container failed to start and listen on the port defined provided by the "
    "PORT={port} environment variable within the allocated timeout. This can happen when the "
    "container port is misconfigured or if the timeout is too short. The health check timeout can "
    "be extended. Logs for this revision might contain more information."
)


class ApiError(Exception):
    """A failed call, answered as the Google REST error body the client library parses."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self.status]

    def body(self) -> Json:
        return {"error": {"code": self.http_status, "message": self.message, "status": self.status}}


@dataclass(frozen=True)
class AppRequest:
    """One HTTP request to a revision, with what that revision's container would see."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    revision: str
    image: str
    env: Mapping[str, str]


@dataclass(frozen=True)
class AppResponse:
    """What a revision's app answers."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"

    @classmethod
    def json(cls, payload: object, status: int = 200) -> AppResponse:
        return cls(status, json.dumps(payload).encode(), "application/json")


App = Callable[[AppRequest], AppResponse]


def default_app(request: AppRequest) -> AppResponse:
    """A well-behaved service: ``GET /health`` is 200 ``{"ok": true}``, ``GET /`` names the
    revision. ``BREAK_HEALTH=1`` in the revision's env makes ``/health`` 500, so a test can break
    a deploy through configuration alone. It never echoes env values: they may be secrets."""
    path = urlsplit(request.path).path
    if path == "/health":
        if request.env.get("BREAK_HEALTH") == "1":
            return AppResponse.json({"ok": False}, 500)
        return AppResponse.json({"ok": True})
    if path == "/":
        return AppResponse.json({"revision": request.revision, "image": request.image})
    return AppResponse.json({"error": "not found"}, 404)


def failing_health_app(request: AppRequest) -> AppResponse:
    """A revision that starts and serves, but whose ``/health`` is 500: the deploy that
    "succeeded" while users see errors."""
    if urlsplit(request.path).path == "/health":
        return AppResponse.json({"ok": False}, 500)
    return default_app(request)


@dataclass(frozen=True)
class CallRecord:
    """One request the fake received, as it arrived (enums as the client sent them)."""

    rpc: str
    method: str
    path: str
    query: Mapping[str, str]
    body: Json | None
    status: int


@dataclass
class _Revision:
    resource: Json
    template: Json  # what it was made from: a reused name must carry the same template
    image: str
    env: dict[str, str]
    failure: str | None  # why it can never become ready
    failure_reason: Json  # the Ready condition's reason field for that failure


@dataclass(frozen=True)
class _Route:
    revision: str  # short name
    percent: int
    tag: str


@dataclass
class _Service:
    resource: Json
    routes: list[_Route] = field(default_factory=list)  # as of the last successful reconcile
    requests_served: int = 0


@dataclass
class _Operation:
    resource: Json
    polls_left: int
    done_after: float  # time.monotonic() before which no poll finds it done
    finish: Callable[
        [], Json
    ]  # runs once at completion; returns {"response": ...} or {"error": ...}


@dataclass
class _SecretVersion:
    state: str
    data: bytes
    create_time: str
    destroy_time: str = ""


@dataclass
class _Secret:
    create_time: str
    versions: dict[int, _SecretVersion]
    bindings: dict[str, list[str]] | None


Handler = Callable[[dict[str, str], dict[str, str], Json | None], Json]


class _LoopbackServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 and a free port, serving from its own daemon thread."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], fake: FakeCloudRun) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.fake = fake
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _AppServer(_LoopbackServer):
    """The URL of a service (``tag == ""``) or of one of its traffic tags."""

    def __init__(self, fake: FakeCloudRun, service: str, tag: str) -> None:
        self.service = service
        self.tag = tag
        super().__init__(_AppHandler, fake)


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keeps test output clean; the call log records API requests instead."""

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes, content_type: str, extra: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _ApiHandler(_QuietHandler):
    server: _LoopbackServer

    def _handle(self) -> None:
        status, payload = self.server.fake._handle_api(
            self.command, self.path, self.headers.get("Authorization", ""), self._read_body()
        )
        self._reply(status, json.dumps(payload).encode(), "application/json; charset=UTF-8", {})

    do_GET = do_POST = do_PATCH = do_DELETE = _handle


class _AppHandler(_QuietHandler):
    server: _AppServer

    def _handle(self) -> None:
        response, revision = self.server.fake._serve_app(
            self.server.service,
            self.server.tag,
            self.command,
            self.path,
            dict(self.headers.items()),
            self._read_body(),
        )
        extra = {"X-Fake-Revision": revision} if revision else {}
        self._reply(response.status, response.body, response.content_type, extra)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class FakeCloudRun:
    """Cloud Run Admin v2 + Secret Manager v1 on ``self.endpoint``; use as a context manager.

    ``operation_polls``: how many GetOperation calls an operation answers ``done: false`` before it
    completes (0: mutations answer a finished operation). Until then the service is
    ``reconciling`` and its new revision not yet ready. ``latency``: seconds added to every API
    call. ``operation_latency``: seconds of wall time an operation takes before a poll can find it
    done (on top of ``operation_polls``), like a real rollout's minutes. ``app``: the app every
    revision runs unless ``set_app`` says otherwise. ``token``: if set, API calls must carry
    ``Authorization: Bearer <token>``. ``seed`` fixes generated names.

    Every service gets its own loopback listener (its ``uri``), which splits requests among the
    serving revisions by percent, deterministically; every traffic tag gets one too (the ``uri``
    in ``trafficStatuses``), which keeps its port when the tag moves. Responses carry
    ``X-Fake-Revision`` naming the revision that answered.
    """

    def __init__(
        self,
        *,
        operation_polls: int = 0,
        latency: float = 0.0,
        operation_latency: float = 0.0,
        app: App = default_app,
        token: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.operation_polls = operation_polls
        self.latency = latency
        self.operation_latency = operation_latency
        self.token = token
        self._default_app = app
        self._lock = threading.RLock()
        self._random = random.Random(seed)
        self._services: dict[str, _Service] = {}
        self._revisions: dict[str, _Revision] = {}
        self._operations: dict[str, _Operation] = {}
        self._secrets: dict[str, _Secret] = {}
        self._faults: dict[str, deque[ApiError]] = {}
        self._before: dict[str, deque[Callable[[], object]]] = {}
        self._start_failures: list[tuple[str, str | None]] = []
        self._apps: list[tuple[str, App]] = []
        self._calls: list[CallRecord] = []
        self._listeners: dict[tuple[str, str], _AppServer] = {}
        self.iam = FakeIam(self._secret_members)
        self._routes = self._route_table()
        self._api = _LoopbackServer(_ApiHandler, self)
        self.endpoint = self._api.url

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FakeCloudRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops the API server and every service URL; joins their threads."""
        with self._lock:
            servers: list[_LoopbackServer] = [*self._listeners.values(), self._api]
            self._listeners.clear()
        for server in servers:
            server.stop()

    # -- fault switches ----------------------------------------------------------------------

    def fail_next(
        self, rpc: str, status: str = "UNAVAILABLE", times: int = 1, message: str | None = None
    ) -> None:
        """Makes the next ``times`` calls of ``rpc`` (e.g. "UpdateService") fail with ``status``
        (a canonical code such as "UNAVAILABLE" or "RESOURCE_EXHAUSTED"), before any effect."""
        text = message or f"{status} (injected by FakeCloudRun.fail_next)."
        with self._lock:
            self._faults.setdefault(rpc, deque()).extend(
                ApiError(status, text) for _ in range(times)
            )

    def before_next(self, rpc: str, action: Callable[[], object]) -> None:
        """Runs ``action`` (say, an ``external_update``) just before the next call of ``rpc`` is
        handled: another writer that slips in between a client's read and its write."""
        with self._lock:
            self._before.setdefault(rpc, deque()).append(action)

    def fail_to_start(self, image_contains: str, message: str | None = None) -> None:
        """Revisions whose image contains ``image_contains`` never become ready. ``message``
        replaces the real "container failed to start and listen on the port" text."""
        with self._lock:
            self._start_failures.append((image_contains, message))

    def set_app(self, image_contains: str, app: App) -> None:
        """Revisions whose image contains ``image_contains`` run ``app`` (first match wins)."""
        with self._lock:
            self._apps.append((image_contains, app))

    def external_update(self, name: str, mutate: Callable[[Json], None]) -> Json:
        """Another writer changes the service behind the client's back: ``mutate`` edits a copy
        of its spec, which is applied at once (etag, generation, maybe a revision). Returns the
        service as stored afterwards."""
        with self._lock:
            spec = _spec_of(self._services[name].resource)
            mutate(spec)
            self._write(name, _parse_service(spec), validate_only=False, settle_now=True)
            return self.service(name)

    # -- seeding and inspection --------------------------------------------------------------

    def seed_service(self, name: str, service: Json) -> Json:
        """Creates ``name`` (``projects/P/locations/R/services/S``) from a camelCase Service dict
        without a request, fully reconciled. Returns it as stored."""
        project, location, service_id = _service_parts(name)
        with self._lock:
            spec = _parse_service(service)
            self._create(project, location, service_id, spec, validate_only=False, settle_now=True)
            return self.service(name)

    def service(self, name: str) -> Json:
        """The stored service, as GetService would answer it."""
        with self._lock:
            return copy.deepcopy(self._services[name].resource)

    def revisions(self, service_name: str) -> list[Json]:
        """The service's revisions, newest first."""
        prefix = f"{service_name}/revisions/"
        with self._lock:
            return [
                copy.deepcopy(rev.resource)
                for name, rev in reversed(self._revisions.items())
                if name.startswith(prefix)
            ]

    def add_secret(
        self,
        project: str,
        secret_id: str,
        versions: Mapping[int | str, tuple[str, bytes | str]] | None = None,
        iam_bindings: Mapping[str, list[str]] | None = None,
    ) -> str:
        """Adds ``projects/P/secrets/S`` with ``{version: (state, data)}``; state is ENABLED,
        DISABLED or DESTROYED. ``iam_bindings`` maps role -> members ("serviceAccount:..."); left
        None, the secret is readable by every service account. Returns the secret's name."""
        name = f"projects/{project}/secrets/{secret_id}"
        with self._lock:
            self._secrets[name] = _Secret(
                create_time=_now(),
                versions={},
                bindings=None if iam_bindings is None else dict(iam_bindings),
            )
            for version, (state, data) in sorted((versions or {}).items(), key=lambda v: int(v[0])):
                raw = data.encode() if isinstance(data, str) else data
                self._secrets[name].versions[int(version)] = _SecretVersion(state, raw, _now())
            self._set_destroy_times(self._secrets[name])
        return name

    def add_secret_version(
        self, secret_name: str, data: bytes | str, state: str = "ENABLED"
    ) -> str:
        """Adds a version (becoming ``latest``) to a secret; returns the version's name."""
        with self._lock:
            secret = self._secrets[secret_name]
            number = max(secret.versions, default=0) + 1
            raw = data.encode() if isinstance(data, str) else data
            secret.versions[number] = _SecretVersion(state, raw, _now())
            self._set_destroy_times(secret)
        return f"{secret_name}/versions/{number}"

    def set_secret_version_state(self, secret_name: str, version: int, state: str) -> None:
        """Enables, disables or destroys a version, as an operator would."""
        with self._lock:
            secret = self._secrets[secret_name]
            secret.versions[version].state = state
            self._set_destroy_times(secret)

    # -- call log ----------------------------------------------------------------------------

    def calls(self, rpc: str | None = None) -> list[CallRecord]:
        """Every API request received, oldest first; only those of ``rpc`` if given."""
        with self._lock:
            return [call for call in self._calls if rpc is None or call.rpc == rpc]

    def mutating_calls(self) -> list[CallRecord]:
        """The requests that ask for a change, whether or not they succeeded."""
        return [call for call in self.calls() if call.rpc in _MUTATING_RPCS]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- API dispatch ------------------------------------------------------------------------

    def _route_table(self) -> list[tuple[str, re.Pattern[str], str, Handler]]:
        seg = r"[^/:]+"
        loc = rf"/v2/projects/(?P<project>{seg})/locations/(?P<location>{seg})"
        svc = rf"{loc}/services/(?P<service>{seg})"
        rev = rf"{svc}/revisions/(?P<revision>{seg})"
        secret = rf"/v1/projects/(?P<project>{seg})/secrets/(?P<secret>{seg})"
        version = rf"{secret}/versions/(?P<version>{seg})"
        table: list[tuple[str, str, str, Handler]] = [
            ("POST", rf"{loc}/services", "CreateService", self._create_service),
            ("GET", rf"{loc}/services", "ListServices", self._list_services),
            ("GET", svc, "GetService", self._get_service),
            ("PATCH", svc, "UpdateService", self._update_service),
            ("DELETE", svc, "DeleteService", self._delete_service),
            ("GET", rf"{svc}/revisions", "ListRevisions", self._list_revisions),
            ("GET", rev, "GetRevision", self._get_revision),
            ("DELETE", rev, "DeleteRevision", self._delete_revision),
            ("GET", rf"{loc}/operations/(?P<operation>{seg})", "GetOperation", self._get_operation),
            ("GET", secret, "GetSecret", self._get_secret),
            ("GET", rf"{secret}:getIamPolicy", "GetIamPolicy", self._get_iam_policy),
            ("GET", version, "GetSecretVersion", self._get_secret_version),
            ("GET", rf"{version}:access", "AccessSecretVersion", self._access_secret_version),
            ("POST", "/v3/iam:troubleshoot", "TroubleshootIamPolicy", _iam(self.iam.troubleshoot)),
            ("GET", rf"/v3/projects/(?P<project>{seg})", "GetProject", _iam(self.iam.get_project)),
        ]
        return [(verb, re.compile(path), rpc, handler) for verb, path, rpc, handler in table]

    def _handle_api(
        self, method: str, raw_path: str, authorization: str, raw_body: bytes
    ) -> tuple[int, Json]:
        if self.latency:
            time.sleep(self.latency)
        raw, _, raw_query = raw_path.partition("?")
        path = unquote(raw)
        query = {key: values[-1] for key, values in parse_qs(raw_query).items()}
        rpc, handler, params = "Unknown", None, {}
        for verb, pattern, name, candidate in self._routes:
            match = pattern.fullmatch(path)
            if verb == method and match:
                rpc, handler, params = name, candidate, match.groupdict()
                break
        body: Json | None = None
        with self._lock:
            try:
                body = _decode_body(raw_body)
                if self.token is not None and authorization != f"Bearer {self.token}":
                    raise ApiError(
                        "UNAUTHENTICATED",
                        "Request had invalid authentication credentials. Expected OAuth 2 access "
                        "token, login cookie or other valid authentication credential.",
                    )
                if handler is None:
                    raise ApiError("NOT_FOUND", f"FakeCloudRun does not serve {method} {path}.")
                before = self._before.get(rpc)
                if before:
                    before.popleft()()
                faults = self._faults.get(rpc)
                if faults:
                    raise faults.popleft()
                status, payload = 200, handler(params, query, body)
            except ApiError as err:
                status, payload = err.http_status, err.body()
            self._calls.append(CallRecord(rpc, method, path, query, body, status))
        return status, payload

    # -- services ----------------------------------------------------------------------------

    def _create_service(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        service_id = query.get("serviceId", "")
        if not re.fullmatch(r"[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?", service_id):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"service_id '{service_id}' must begin with a letter, contain only lowercase "
                "letters, digits and hyphens, not end with a hyphen, and be under 50 characters.",
            )
        spec = _parse_service(body)
        validate_only = query.get("validateOnly") == "true"
        return self._create(
            p["project"],
            p["location"],
            service_id,
            spec,
            validate_only=validate_only,
            settle_now=False,
        )

    def _create(
        self,
        project: str,
        location: str,
        service_id: str,
        spec: Json,
        *,
        validate_only: bool,
        settle_now: bool,
    ) -> Json:
        name = f"projects/{project}/locations/{location}/services/{service_id}"
        if name in self._services:
            raise ApiError("ALREADY_EXISTS", f"Resource '{service_id}' already exists.")
        for where, mapping in _labelled(spec):
            reserved = [key for key in mapping if key.startswith(_RESERVED_PREFIXES)]
            if reserved:
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"{where} {reserved[0]!r}: Cloud Run API v2 does not support labels or "
                    "annotations in the run.googleapis.com, cloud.googleapis.com, "
                    "serving.knative.dev or autoscaling.knative.dev namespaces.",
                )
        return self._write(name, spec, validate_only=validate_only, settle_now=settle_now)

    def _get_service(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        return copy.deepcopy(self._service_state(p).resource)

    def _list_services(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        prefix = f"projects/{p['project']}/locations/{p['location']}/services/"
        items = [
            copy.deepcopy(svc.resource)
            for name, svc in sorted(self._services.items())
            if name.startswith(prefix)
        ]
        return _page(items, "services", query)

    def _update_service(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        incoming = _parse_service(body)
        validate_only = query.get("validateOnly") == "true"
        name = _service_name(p)
        svc = self._services.get(name)
        if svc is None:
            if query.get("allowMissing") != "true":
                raise _not_found("SERVICE", p["service"], p)
            return self._create(
                p["project"],
                p["location"],
                p["service"],
                incoming,
                validate_only=validate_only,
                settle_now=False,
            )
        etag = incoming.get("etag")
        if etag and etag != svc.resource["etag"]:
            raise ApiError(
                "ABORTED",
                f"Resource '{p['service']}' has changed since etag {etag} was read; "
                "read it again and retry.",
            )
        mask = query.get("updateMask", "")
        spec = _apply_mask(svc.resource, incoming, mask) if mask else incoming
        return self._write(name, spec, validate_only=validate_only, settle_now=False)

    def _delete_service(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        svc = self._service_state(p)
        name = _service_name(p)
        etag = query.get("etag")
        if etag and etag != svc.resource["etag"]:
            raise ApiError("ABORTED", f"Resource '{p['service']}' has changed since etag {etag}.")
        snapshot = copy.deepcopy(svc.resource)
        if query.get("validateOnly") != "true":
            del self._services[name]
            for rev_name in [r for r in self._revisions if r.startswith(f"{name}/revisions/")]:
                del self._revisions[rev_name]
            for key in [k for k in self._listeners if k[0] == name]:
                self._listeners.pop(key).stop()
        return self._start_operation(
            name,
            _SERVICE_TYPE,
            snapshot,
            lambda: {"response": {"@type": _SERVICE_TYPE, **snapshot}},
        )

    def _write(self, name: str, spec: Json, *, validate_only: bool, settle_now: bool) -> Json:
        """Stores a new desired state for the service (creating it if new) and starts the
        operation that reconciles it. The spec replaces the old one whole."""
        project, _, service_id = _service_parts(name)
        spec = _canonical(run_v2.Service, _with_defaults(_spec_of(spec), project))
        _validate_spec(spec, service_id)
        svc = self._services.get(name)
        old = svc.resource if svc else {}
        generation = int(old.get("generation", "0")) + 1
        revision, is_new = self._revision_for(name, service_id, spec["template"], old, generation)
        brought_up = f"{name}/revisions/{revision}" if revision else ""
        now = _now()
        resource = {
            **{key: value for key, value in old.items() if key in _OUTPUT_ONLY},
            **spec,
            "name": name,
            "generation": str(generation),
            "updateTime": now,
            "etag": _etag(),
            "reconciling": True,
            "terminalCondition": _condition("Ready", "CONDITION_RECONCILING", now),
        }
        if brought_up:
            resource["latestCreatedRevision"] = brought_up
        if not old:
            resource.update(uid=str(uuid.uuid4()), createTime=now)
        if validate_only:
            preview = _canonical(run_v2.Service, resource)
            return self._start_operation(
                name,
                _SERVICE_TYPE,
                preview,
                lambda: {"response": {"@type": _SERVICE_TYPE, **preview}},
            )
        if svc is None:
            svc = self._services[name] = _Service(resource={})
            url = self._listener(name, "").url
            resource.update(uri=url, urls=[url])
        if is_new:
            self._create_revision(name, revision, spec, now)
        svc.resource = _canonical(run_v2.Service, resource)
        return self._start_operation(
            name,
            _SERVICE_TYPE,
            copy.deepcopy(svc.resource),
            lambda: self._finish_service(name, brought_up),
            polls=0 if settle_now else None,
        )

    def _revision_for(
        self, name: str, service_id: str, template: Json, old: Json, generation: int
    ) -> tuple[str, bool]:
        """Which revision the template maps to, and whether it must be created. An unchanged
        template makes none; a named one may be reused only with the very same configuration."""
        if old and template == old.get("template"):
            return "", False
        wanted = template.get("revision", "")
        if wanted:
            existing = self._revisions.get(f"{name}/revisions/{wanted}")
            if existing is not None and existing.template != template:
                raise ApiError(
                    "ALREADY_EXISTS",
                    f"Revision named '{wanted}' with different configuration already exists.",
                )
            return wanted, existing is None
        alphabet = string.ascii_lowercase + string.digits
        while True:
            suffix = "".join(self._random.choices(alphabet, k=3))
            generated = f"{service_id}-{generation:05d}-{suffix}"
            if f"{name}/revisions/{generated}" not in self._revisions:
                return generated, True

    def _finish_service(self, name: str, brought_up: str) -> Json:
        svc = self._services.get(name)
        if svc is None:
            return {"error": {"code": _GRPC_NOT_FOUND, "message": f"Service {name} was deleted."}}
        failure = self._reconcile(svc, brought_up)
        if failure:
            return {"error": {"code": _GRPC_FAILED_PRECONDITION, "message": failure}}
        return {"response": {"@type": _SERVICE_TYPE, **copy.deepcopy(svc.resource)}}

    def _reconcile(self, svc: _Service, brought_up: str) -> str | None:
        """Brings up the revision a write made (if any) and routes traffic as the spec says. On
        failure the service keeps serving what it served; returns the failure message. A write
        that only moves traffic succeeds whenever its targets are ready, even after a failed
        deploy: that is how a rollback by traffic works."""
        res = svc.resource
        now = _now()
        failure = None
        revision = self._revisions.get(brought_up)
        if revision is not None:
            self._settle_revision(revision, now)
            if revision.failure:
                failure = _not_ready(brought_up, revision)
            elif brought_up == res.get("latestCreatedRevision"):
                res["latestReadyRevision"] = brought_up
        routes: list[_Route] = []
        reason: dict[str, str]
        if failure is None:
            routes, failure = self._resolve_traffic(res)
        if failure is None:
            svc.routes = routes
            res["trafficStatuses"] = [self._traffic_status(res["name"], t) for t in res["traffic"]]
            res["observedGeneration"] = res["generation"]
            res["terminalCondition"] = _condition("Ready", "CONDITION_SUCCEEDED", now)
            state, reason = "CONDITION_SUCCEEDED", {}
        else:
            state, reason = "CONDITION_FAILED", {"message": failure, "reason": "REVISION_FAILED"}
            res["terminalCondition"] = _condition("Ready", state, now, **reason)
        res["conditions"] = [
            _condition("RoutesReady", state, now, **reason),
            _condition("ConfigurationsReady", state, now, **reason),
        ]
        res["reconciling"] = False
        svc.resource = _canonical(run_v2.Service, res)
        return failure

    def _resolve_traffic(self, res: Json) -> tuple[list[_Route], str | None]:
        routes = []
        for target in res["traffic"]:
            if target["type"] == _LATEST:
                full = res.get("latestReadyRevision", "")
            else:
                full = f"{res['name']}/revisions/{target['revision']}"
            revision = self._revisions.get(full)
            if revision is None:
                return [], (
                    f"Revision '{target.get('revision', '')}' does not exist or is deleted. "
                    "Update all traffic to route to currently available revisions."
                )
            if revision.failure:
                return [], _not_ready(full, revision)
            short = full.rsplit("/", 1)[1]
            routes.append(_Route(short, target.get("percent", 0), target.get("tag", "")))
        return routes, None

    def _traffic_status(self, name: str, target: Json) -> Json:
        status = dict(target)
        if target.get("tag"):
            status["uri"] = self._listener(name, target["tag"]).url
        return status

    def _listener(self, name: str, tag: str) -> _AppServer:
        """The loopback URL serving the service (tag "") or one tag; made on first use and kept
        while the service lives, so a tag URL stays the same when the tag moves."""
        key = (name, tag)
        if key not in self._listeners:
            self._listeners[key] = _AppServer(self, name, tag)
        return self._listeners[key]

    def _service_state(self, p: dict[str, str]) -> _Service:
        svc = self._services.get(_service_name(p))
        if svc is None:
            raise _not_found("SERVICE", p["service"], p)
        return svc

    # -- revisions ---------------------------------------------------------------------------

    def _create_revision(self, service_name: str, short: str, spec: Json, now: str) -> None:
        template = spec["template"]
        project, _, service_id = _service_parts(service_name)
        container = _ingress_container(template)
        port = container["ports"][0]["containerPort"]
        # What Cloud Run sets in every container, then the revision's own variables.
        env = {
            "PORT": str(port),
            "K_SERVICE": service_id,
            "K_REVISION": short,
            "K_CONFIGURATION": service_id,
        }
        failure: str | None = None
        reason: Json = {}
        for needle, message in self._start_failures:
            if needle in container["image"]:
                failure = message or _CONTAINER_FAILED.format(port=port)
                reason = {"revisionReason": "HEALTH_CHECK_CONTAINER_ERROR"}
                break
        for var in container.get("env", []):
            ref = var.get("valueSource", {}).get("secretKeyRef")
            if ref is None:
                env[var["name"]] = var.get("value", "")
                continue
            try:
                env[var["name"]] = self._secret_for(project, ref, template["serviceAccount"])
            except ApiError as err:
                if failure is None:
                    failure, reason = err.message, {"reason": "SECRETS_ACCESS_CHECK_FAILED"}
        full = f"{service_name}/revisions/{short}"
        resource = {
            **{key: value for key, value in template.items() if key in _REVISION_FIELDS},
            "name": full,
            "uid": str(uuid.uuid4()),
            "generation": "1",
            "createTime": now,
            "updateTime": now,
            "launchStage": spec["launchStage"],
            "service": service_name,
            "reconciling": True,
            "conditions": [_condition("Ready", "CONDITION_RECONCILING", now)],
            "etag": _etag(),
        }
        self._revisions[full] = _Revision(
            resource=_canonical(run_v2.Revision, resource),
            template=copy.deepcopy(template),
            image=container["image"],
            env=env,
            failure=failure,
            failure_reason=reason,
        )

    def _settle_revision(self, revision: _Revision, now: str) -> None:
        """Ends a revision's start-up: ready, or failed for good."""
        res = revision.resource
        if not res.get("reconciling"):
            return
        if revision.failure:
            failed = {"message": revision.failure, **revision.failure_reason}
            res["conditions"] = [
                _condition("Ready", "CONDITION_FAILED", now, **failed),
                _condition("ContainerHealthy", "CONDITION_FAILED", now, **failed),
            ]
        else:
            res["conditions"] = [
                _condition(kind, "CONDITION_SUCCEEDED", now)
                for kind in ("Ready", "ContainerHealthy", "ResourcesAvailable")
            ]
        res["reconciling"] = False
        res["observedGeneration"] = res["generation"]
        revision.resource = _canonical(run_v2.Revision, res)

    def _get_revision(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        return copy.deepcopy(self._revision_state(p).resource)

    def _list_revisions(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        self._service_state(p)
        return _page(self.revisions(_service_name(p)), "revisions", query)

    def _delete_revision(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        revision = self._revision_state(p)
        svc = self._service_state(p)
        short = p["revision"]
        full = revision.resource["name"]
        if any(route.revision == short for route in svc.routes):
            raise ApiError(
                "FAILED_PRECONDITION",
                f"Revision '{short}' is receiving traffic and cannot be deleted.",
            )
        if full in (
            svc.resource.get("latestCreatedRevision"),
            svc.resource.get("latestReadyRevision"),
        ):
            raise ApiError(
                "FAILED_PRECONDITION",
                f"Revision '{short}' is the latest revision of its service and cannot be deleted.",
            )
        snapshot = copy.deepcopy(revision.resource)
        if query.get("validateOnly") != "true":
            del self._revisions[full]
        return self._start_operation(
            _service_name(p),
            _REVISION_TYPE,
            snapshot,
            lambda: {"response": {"@type": _REVISION_TYPE, **snapshot}},
        )

    def _revision_state(self, p: dict[str, str]) -> _Revision:
        revision = self._revisions.get(f"{_service_name(p)}/revisions/{p['revision']}")
        if revision is None:
            raise _not_found("REVISION", p["revision"], p)
        return revision

    # -- operations --------------------------------------------------------------------------

    def _start_operation(
        self,
        resource_name: str,
        type_url: str,
        metadata: Json,
        finish: Callable[[], Json],
        polls: int | None = None,
    ) -> Json:
        location = "/".join(resource_name.split("/")[:4])
        name = f"{location}/operations/{uuid.uuid4()}"
        latency = self.operation_latency if polls is None else 0.0
        op = _Operation(
            resource={"name": name, "metadata": {"@type": type_url, **metadata}, "done": False},
            polls_left=self.operation_polls if polls is None else polls,
            done_after=time.monotonic() + latency,
            finish=finish,
        )
        self._operations[name] = op
        if op.polls_left <= 0 and not latency:
            self._complete(op)
        return copy.deepcopy(op.resource)

    def _complete(self, op: _Operation) -> None:
        op.resource.update(op.finish())
        op.resource["done"] = True

    def _get_operation(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        name = f"projects/{p['project']}/locations/{p['location']}/operations/{p['operation']}"
        op = self._operations.get(name)
        if op is None:
            raise ApiError("NOT_FOUND", f"Operation {name} not found.")
        if not op.resource["done"]:
            op.polls_left -= 1
            if op.polls_left <= 0 and time.monotonic() >= op.done_after:
                self._complete(op)
        return copy.deepcopy(op.resource)

    # -- the data plane ----------------------------------------------------------------------

    def _serve_app(
        self, service: str, tag: str, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[AppResponse, str]:
        """Routes one request on a service or tag URL to a revision and runs its app."""
        with self._lock:
            svc = self._services.get(service)
            if svc is None:
                return AppResponse(404, b"Service not found."), ""
            route = _pick_route(svc, tag)
            if route is None:
                if tag:
                    return AppResponse(404, f"No traffic tag '{tag}'.".encode()), ""
                return AppResponse(503, b"Service Unavailable: no revision is serving."), ""
            revision = self._revisions[f"{service}/revisions/{route.revision}"]
            app = next(
                (app for needle, app in self._apps if needle in revision.image), self._default_app
            )
            request = AppRequest(
                method, path, headers, body, route.revision, revision.image, dict(revision.env)
            )
        return app(request), route.revision

    # -- Secret Manager ----------------------------------------------------------------------

    def _get_secret(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        name = f"projects/{p['project']}/secrets/{p['secret']}"
        secret = self._secret(name)
        return {
            "name": name,
            "replication": {"automatic": {}},
            "createTime": secret.create_time,
            "etag": f'"{secret.create_time}"',
        }

    def _get_secret_version(
        self, p: dict[str, str], query: dict[str, str], body: Json | None
    ) -> Json:
        name = f"projects/{p['project']}/secrets/{p['secret']}"
        number = self._version_number(name, p["version"])
        version = self._secrets[name].versions[number]
        resource: Json = {
            "name": f"{name}/versions/{number}",
            "createTime": version.create_time,
            "state": version.state,
            "replicationStatus": {"automatic": {}},
            "etag": f'"{version.create_time}"',
        }
        if version.destroy_time:
            resource["destroyTime"] = version.destroy_time
        return resource

    def _access_secret_version(
        self, p: dict[str, str], query: dict[str, str], body: Json | None
    ) -> Json:
        name = f"projects/{p['project']}/secrets/{p['secret']}"
        resolved, data = self._access(name, p["version"])
        return {"name": resolved, "payload": {"data": base64.b64encode(data).decode()}}

    def _get_iam_policy(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        secret = self._secret(f"projects/{p['project']}/secrets/{p['secret']}")
        bindings = [
            {"role": role, "members": list(members)}
            for role, members in sorted((secret.bindings or {}).items())
            if members
        ]
        # etag is bytes in the proto, so base64 on the wire; "ACAB" is what an empty policy has.
        if not bindings:
            return {"etag": "ACAB"}
        return {"version": 1, "etag": "BwYAAAAAAAE=", "bindings": bindings}

    def _secret(self, name: str) -> _Secret:
        secret = self._secrets.get(name)
        if secret is None:
            raise ApiError("NOT_FOUND", f"Secret [{name}] not found.")
        return secret

    def _version_number(self, secret_name: str, version: str) -> int:
        """Resolves ``latest`` (the most recently created version, whatever its state) or a
        version number."""
        secret = self._secret(secret_name)
        if version == "latest":
            if not secret.versions:
                raise ApiError("NOT_FOUND", f"Secret [{secret_name}] not found or has no versions.")
            return max(secret.versions)
        if not version.isdigit() or int(version) not in secret.versions:
            raise ApiError(
                "NOT_FOUND", f"Secret Version [{secret_name}/versions/{version}] not found."
            )
        return int(version)

    def _access(self, secret_name: str, version: str) -> tuple[str, bytes]:
        number = self._version_number(secret_name, version)
        resolved = f"{secret_name}/versions/{number}"
        found = self._secrets[secret_name].versions[number]
        if found.state != "ENABLED":
            raise ApiError(
                "FAILED_PRECONDITION", f"Secret Version [{resolved}] is in {found.state} state."
            )
        return resolved, found.data

    def _secret_for(self, project: str, ref: Json, service_account: str) -> str:
        """The value a revision's env var gets from Secret Manager, checked as Cloud Run checks
        it when the revision starts: the service account must be an accessor of the secret."""
        secret = ref.get("secret", "")
        secret_name = (
            secret if secret.startswith("projects/") else f"projects/{project}/secrets/{secret}"
        )
        version = ref.get("version") or "latest"
        self._secret(secret_name)
        resource = f"//secretmanager.googleapis.com/{secret_name}"
        if self.iam.access(service_account, resource, _ACCESS) != "CAN_ACCESS":
            raise ApiError(
                "PERMISSION_DENIED",
                f"Permission denied on secret: {secret_name}/versions/{version} for Revision "
                f"service account {service_account}. The service account used must be granted "
                f"the 'Secret Manager Secret Accessor' role ({_ACCESSOR_ROLE}) at the secret, "
                "project or higher level.",
            )
        return self._access(secret_name, version)[1].decode("utf-8", errors="replace")

    def _secret_members(self, name: str, role: str) -> list[str] | None:
        """The members `role` is bound to on secret `name`; None when it has no bindings set."""
        secret = self._secrets.get(name)
        if secret is None or secret.bindings is None:
            return None
        return secret.bindings.get(role, [])

    @staticmethod
    def _set_destroy_times(secret: _Secret) -> None:
        for version in secret.versions.values():
            if version.state == "DESTROYED" and not version.destroy_time:
                version.destroy_time = _now()
                version.data = b""


# -- pure helpers ---------------------------------------------------------------------------


def _iam(handler: Handler) -> Handler:
    """An IAM handler whose errors are answered as every other API error is."""

    def call(p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        try:
            return handler(p, query, body)
        except IamError as err:
            raise ApiError(err.status, err.message) from err

    return call


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _etag() -> str:
    return f'"{uuid.uuid4().hex}"'


def _decode_body(raw: bytes) -> Json | None:
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise ApiError("INVALID_ARGUMENT", f"Invalid JSON payload received. {err}") from err
    if not isinstance(body, dict):
        raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
    return body


def _canonical(message_type: Any, resource: Json) -> Json:
    """Round-trips through the real proto type: the JSON the real API would print (camelCase,
    enum names, int64 as strings, defaults omitted), and a loud failure if the fake drifts."""
    message: Message = message_type.pb()()
    json_format.ParseDict(resource, message)
    canonical: Json = json_format.MessageToDict(message)
    return canonical


def _parse_service(body: Json | None) -> Json:
    try:
        return _canonical(run_v2.Service, body or {})
    except json_format.ParseError as err:
        raise ApiError("INVALID_ARGUMENT", f"Invalid JSON payload received. {err}") from err


def _spec_of(resource: Json) -> Json:
    return {key: copy.deepcopy(value) for key, value in resource.items() if key not in _OUTPUT_ONLY}


def _apply_mask(current: Json, incoming: Json, mask: str) -> Json:
    """Takes from ``incoming`` only the fields the update mask names (snake or camel case)."""
    result = _spec_of(current)
    for path in filter(None, (part.strip() for part in mask.split(","))):
        keys = [re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key) for key in path.split(".")]
        source: Any = incoming
        for key in keys:
            source = source.get(key) if isinstance(source, dict) else None
        target = result
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        if source is None:
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = copy.deepcopy(source)
    return result


def _with_defaults(spec: Json, project: str) -> Json:
    """Fills what the real server fills, so the stored spec differs from what was sent in the
    same ways (and comparing templates ignores defaults written or left out)."""
    spec = copy.deepcopy(spec)
    spec.setdefault("ingress", "INGRESS_TRAFFIC_ALL")
    spec.setdefault("launchStage", "GA")
    if not spec.get("traffic"):
        spec["traffic"] = [{"type": _LATEST, "percent": 100}]
    for target in spec["traffic"]:
        target.setdefault("type", _BY_REVISION if target.get("revision") else _LATEST)
    template = spec.setdefault("template", {})
    template.setdefault("scaling", {}).setdefault("maxInstanceCount", 100)
    template.setdefault("timeout", "300s")
    template.setdefault("serviceAccount", f"{project}-compute@developer.gserviceaccount.com")
    template.setdefault("maxInstanceRequestConcurrency", 80)
    containers = template.get("containers", [])
    for container in containers:
        limits = container.setdefault("resources", {}).setdefault("limits", {})
        limits.setdefault("cpu", "1000m")
        limits.setdefault("memory", "512Mi")
    if containers and not any(c.get("ports") for c in containers):
        containers[0]["ports"] = [{"name": "http1", "containerPort": 8080}]
    return spec


def _validate_spec(spec: Json, service_id: str) -> None:
    """The synchronous 400s: what the API refuses before it starts an operation."""
    template = spec["template"]
    containers = template.get("containers", [])
    if not containers or not all(c.get("image") for c in containers):
        raise ApiError("INVALID_ARGUMENT", "template.containers: every container needs an image.")
    wanted = template.get("revision", "")
    if wanted and not wanted.startswith(f"{service_id}-"):
        raise ApiError(
            "INVALID_ARGUMENT",
            f"template.revision '{wanted}' must be prefixed by the service name "
            f"'{service_id}' followed by a hyphen.",
        )
    traffic = spec["traffic"]
    total = sum(target.get("percent", 0) for target in traffic)
    if total != 100:
        raise ApiError("INVALID_ARGUMENT", f"traffic: percentages must add up to 100, not {total}.")
    tags = [target["tag"] for target in traffic if target.get("tag")]
    if len(tags) != len(set(tags)):
        raise ApiError("INVALID_ARGUMENT", "traffic: each tag may appear only once.")
    for target in traffic:
        by_revision = target["type"] == _BY_REVISION
        if by_revision != bool(target.get("revision")):
            raise ApiError(
                "INVALID_ARGUMENT",
                "traffic: a target names a revision exactly when its type is "
                f"{_BY_REVISION}: {target}",
            )


def _labelled(spec: Json) -> list[tuple[str, Mapping[str, str]]]:
    template = spec.get("template", {})
    return [
        ("labels", spec.get("labels", {})),
        ("annotations", spec.get("annotations", {})),
        ("template.labels", template.get("labels", {})),
        ("template.annotations", template.get("annotations", {})),
    ]


def _ingress_container(template: Json) -> Json:
    """The container that receives requests: the one with a port (defaults give one)."""
    containers: list[Json] = template["containers"]
    return next(c for c in containers if c.get("ports"))


def _not_ready(full_name: str, revision: _Revision) -> str:
    short = full_name.rsplit("/", 1)[1]
    return f"Revision '{short}' is not ready and cannot serve traffic. {revision.failure}"


def _condition(kind: str, state: str, when: str, **extra: str) -> Json:
    return {"type": kind, "state": state, "lastTransitionTime": when, **extra}


def _pick_route(svc: _Service, tag: str) -> _Route | None:
    """A tag URL goes to its tag's revision. The service URL splits by percent, deterministically:
    request n takes slot (37 * n) mod 100, and 37 is coprime with 100, so every 100 consecutive
    requests match the percentages exactly, interleaved rather than in blocks."""
    if tag:
        return next((route for route in svc.routes if route.tag == tag), None)
    weighted = [route for route in svc.routes if route.percent > 0]
    if not weighted:
        return None
    slot = (37 * svc.requests_served) % 100
    svc.requests_served += 1
    for route in weighted:
        if slot < route.percent:
            return route
        slot -= route.percent
    return weighted[-1]


def _page(items: list[Json], key: str, query: dict[str, str]) -> Json:
    start = int(query.get("pageToken") or 0)
    size = int(query.get("pageSize") or 0) or len(items)
    page: Json = {key: items[start : start + size]} if items[start : start + size] else {}
    if start + size < len(items):
        page["nextPageToken"] = str(start + size)
    return page


def _service_name(p: Mapping[str, str]) -> str:
    return f"projects/{p['project']}/locations/{p['location']}/services/{p['service']}"


def _service_parts(name: str) -> tuple[str, str, str]:
    match = re.fullmatch(r"projects/([^/]+)/locations/([^/]+)/services/([^/]+)", name)
    if match is None:
        raise ValueError(f"not a service name: {name!r}")
    project, location, service_id = match.groups()
    return project, location, service_id


def _not_found(kind: str, short: str, p: Mapping[str, str]) -> ApiError:
    return ApiError(
        "NOT_FOUND",
        f"Resource '{short}' of kind '{kind}' in region '{p['location']}' in project "
        f"'{p['project']}' does not exist.",
    )
