"""The Cloud Run platform: the Cloud Run Admin API v2 over REST, and Secret Manager for preflight.

How a deploy maps onto Cloud Run:

- `apply` patches the Service exactly as `read` saw it, never a rebuilt one: it changes the image,
  the env and the settings the plan changes, names the new revision `<service>-<release id>`, and
  sends the etag read at plan time, so a service changed in between is a 409, never overwritten.
  The new revision gets no traffic and the tag `candidate`. Traffic that followed LATEST is pinned
  to the revision serving it, or the new revision would take all of it at once.
- Traffic moves by revision name, so a rollback serves exactly the revisions that served before.
- Annotations safedeploy writes: on the service, `safedeploy.dev/managed-env` (the owned names,
  comma-separated and sorted) and `safedeploy.dev/releases` (JSON records of the last releases);
  on each revision's template, `safedeploy.dev/release` (the release that made it).
- The Google SDKs are imported on first use: commands on other platforms never load them.
- Endpoints and credentials follow gcloud: CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN and
  CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER, CLOUDSDK_AUTH_ACCESS_TOKEN, else Application
  Default Credentials. 429, 503, 504 and dropped connections are retried with backoff within a
  bounded time (SAFEDEPLOY_CLOUDRUN_BACKOFF: the first wait in seconds); other errors surface
  at once, with the API's message and the resource's name.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests

from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import SafedeployError
from safedeploy.history import HistoryStore, Outcome, Release, last_succeeded, new_release_id
from safedeploy.importer import manifest_text
from safedeploy.lint import Finding, Severity
from safedeploy.manifest import Manifest
from safedeploy.model import EnvValue, LiveService, Revision, SecretRef, ServiceSpec
from safedeploy.probes import ProbeResult, run_probes
from safedeploy.providers.base import Capabilities
from safedeploy.redact import reveal, scrub

if TYPE_CHECKING:
    from safedeploy.probes import OnAttempt

RUN_ENDPOINT = "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN"
SECRETS_ENDPOINT = "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"
ACCESS_TOKEN = "CLOUDSDK_AUTH_ACCESS_TOKEN"
BACKOFF = "SAFEDEPLOY_CLOUDRUN_BACKOFF"

MANAGED_ENV = "safedeploy.dev/managed-env"
RELEASE = "safedeploy.dev/release"
TRAFFIC_BEFORE = "safedeploy.dev/traffic-before"  # on a revision: what served when it was made
RELEASES = "safedeploy.dev/releases"
CANDIDATE = "candidate"
KEEP_RELEASES = 20
NO_SERVICE = ""  # the fingerprint of a service that does not exist yet

_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_ACCESS_ROLES = ("roles/secretmanager.secretAccessor", "roles/secretmanager.admin")
_MAX_REVISION_NAME = 63
_WAIT_SLICE = 1.0  # seconds an operation is polled before the cancel token is asked again
# The values gcloud takes for --egress and --ingress, and the API's enum names for them.
EGRESS = {"all-traffic": "ALL_TRAFFIC", "private-ranges-only": "PRIVATE_RANGES_ONLY"}
INGRESS = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
    "none": "INGRESS_TRAFFIC_NONE",
}


@dataclass(frozen=True)
class Pace:
    """How long to wait; tests shrink `backoff` through SAFEDEPLOY_CLOUDRUN_BACKOFF."""

    backoff: float = 1.0  # the first wait before a retry or an operation poll; doubles to 16x
    budget: float = 120.0  # seconds one call may spend on retries of transient errors
    ready_timeout: float = 900.0  # seconds a revision may take to become ready
    call_timeout: float = 60.0  # seconds one HTTP request may take

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Pace:
        raw = environ.get(BACKOFF)
        if raw is None:
            return cls()
        try:
            return cls(backoff=float(raw))
        except ValueError:
            raise SafedeployError(
                f"{BACKOFF}={raw!r} is not a number of seconds", hint=f"e.g. {BACKOFF}=0.5"
            ) from None


def _gx() -> Any:
    """google.api_core.exceptions, imported when first needed."""
    from google.api_core import exceptions

    return exceptions


class _Google:
    """The SDK clients, made on first use with gcloud's endpoint and credential conventions."""

    def __init__(self, environ: Mapping[str, str], pace: Pace) -> None:
        self.environ = environ
        self.pace = pace

    @cached_property
    def credentials(self) -> Any:
        token = self.environ.get(ACCESS_TOKEN)
        if token:
            from google.oauth2.credentials import Credentials

            return Credentials(token)  # type: ignore[no-untyped-call]
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, _ = google.auth.default(scopes=[_SCOPE])
        except DefaultCredentialsError as exc:
            raise _no_credentials("no Google credentials were found") from exc
        return credentials

    def _options(self, variable: str) -> dict[str, str]:
        """gcloud's override (`http://127.0.0.1:PORT/` works too); the REST paths bring /v2/."""
        endpoint = self.environ.get(variable, "").rstrip("/")
        return {"api_endpoint": endpoint} if endpoint else {}

    @cached_property
    def services(self) -> Any:
        from google.cloud import run_v2

        return run_v2.ServicesClient(
            transport="rest",
            credentials=self.credentials,
            client_options=self._options(RUN_ENDPOINT),
        )

    @cached_property
    def revisions(self) -> Any:
        from google.cloud import run_v2

        return run_v2.RevisionsClient(
            transport="rest",
            credentials=self.credentials,
            client_options=self._options(RUN_ENDPOINT),
        )

    @cached_property
    def secrets(self) -> Any:
        from google.cloud import secretmanager_v1

        return secretmanager_v1.SecretManagerServiceClient(
            transport="rest",
            credentials=self.credentials,
            client_options=self._options(SECRETS_ENDPOINT),
        )

    @cached_property
    def retry(self) -> Any:
        """Transient errors only, on every call (by default the SDK retries only some reads):
        429, 503, 504, and their kin on the wire, a dropped or timed-out connection."""
        from google.api_core.retry import Retry, if_exception_type

        gx = _gx()
        transient = (gx.TooManyRequests, gx.ServiceUnavailable, gx.GatewayTimeout)
        return Retry(
            predicate=if_exception_type(*transient, requests.ConnectionError, requests.Timeout),
            initial=self.pace.backoff,
            maximum=self.pace.backoff * 16,
            multiplier=2.0,
            timeout=self.pace.budget,
        )

    def call(self, method: Callable[..., Any], /, **kwargs: Any) -> Any:
        """One API call with the retry policy; when the budget runs out, the last error."""
        try:
            return method(**kwargs, retry=self.retry, timeout=self.pace.call_timeout)
        except _gx().RetryError as exc:
            if exc.cause is None:
                raise
            raise exc.cause from None

    def wait(self, operation: Any, cancel: CancelToken = NEVER) -> Any:
        """Follow a long-running operation to its end; its error is raised as a Google error.

        Polled a slice at a time so that a cancelled token ends the wait (not the operation)
        within a slice; concurrent.futures.TimeoutError after `ready_timeout`.
        """
        from google.api_core.future.polling import _OperationNotComplete
        from google.api_core.retry import Retry, if_exception_type

        polling = Retry(
            predicate=if_exception_type(_OperationNotComplete),
            initial=self.pace.backoff,
            maximum=self.pace.backoff * 16,
            multiplier=1.5,
            timeout=self.pace.ready_timeout,
        )
        deadline = time.monotonic() + self.pace.ready_timeout
        while True:
            cancel.check()
            left = deadline - time.monotonic()
            try:
                return operation.result(
                    retry=self.retry, polling=polling, timeout=min(_WAIT_SLICE, max(left, 0.0))
                )
            except concurrent.futures.TimeoutError:
                if time.monotonic() >= deadline:
                    raise


def _no_credentials(why: str) -> SafedeployError:
    return SafedeployError(
        f"cannot authenticate to Google Cloud: {why}",
        hint="run `gcloud auth application-default login`, or set CLOUDSDK_AUTH_ACCESS_TOKEN "
        "(e.g. to the output of `gcloud auth print-access-token`)",
    )


def _api_message(exc: Any) -> str:
    """The API's own message: from the REST error body when there is one, else the exception's."""
    response = getattr(exc, "response", None)
    if isinstance(response, requests.Response):
        try:
            return str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            pass
    return str(exc.message)


@contextmanager
def _errors(resource: str) -> Iterator[None]:
    """Google's typed errors as SafedeployErrors that name the resource and say what to do."""
    from google.auth import exceptions as auth

    gx = _gx()
    try:
        yield
    except gx.GoogleAPICallError as exc:
        message = _api_message(exc)
        if isinstance(exc, gx.Conflict):
            raise SafedeployError(
                f"the service changed since it was read; nothing was overwritten ({message})",
                where=resource,
                hint="run `safedeploy plan` again and review the new diff",
            ) from exc
        if isinstance(exc, gx.Unauthenticated):
            raise _no_credentials(message) from exc
        hints = {
            gx.Forbidden: "the caller needs roles/run.developer on the service (and "
            "roles/iam.serviceAccountUser on its service account); see `gcloud auth list`",
            gx.NotFound: "check `project:`, `region:` and the names in the manifest",
            gx.TooManyRequests: "the API kept refusing for lack of quota; try again later",
            gx.ServiceUnavailable: "the API stayed unavailable through the retries; try later",
            gx.GatewayTimeout: "the API kept timing out through the retries; try again later",
        }
        hint = next((h for kind, h in hints.items() if isinstance(exc, kind)), None)
        raise SafedeployError(message, where=resource, hint=hint) from exc
    except (auth.RefreshError, auth.DefaultCredentialsError, auth.TransportError) as exc:
        raise _no_credentials(str(exc)) from exc
    except requests.RequestException as exc:
        raise SafedeployError(
            f"cannot reach the API: {type(exc).__name__}",
            where=resource,
            hint=f"check the network, and {RUN_ENDPOINT} or {SECRETS_ENDPOINT} if set",
        ) from exc


class CloudRunProvider:
    capabilities = Capabilities(traffic_split=True, candidate_url=True, owned_on_service=True)

    def __init__(
        self,
        project: str,
        region: str,
        service: str,
        *,
        container: str | None = None,
        environ: Mapping[str, str],
        pace: Pace | None = None,
    ) -> None:
        self.project = project
        self.region = region
        self.service = service
        self.container = container
        self.parent = f"projects/{project}/locations/{region}"
        self.resource = f"{self.parent}/services/{service}"
        self.google = _Google(environ, pace or Pace.from_environ(environ))
        self._seen: Any = None  # the Service as last read: apply patches it when its etag matches
        self._operation: Any = None  # the apply in flight, followed by wait_ready

    # -- reading ------------------------------------------------------------------------------

    def _get(self) -> Any:
        """The Service, or None when it does not exist."""
        with _errors(self.resource):
            try:
                service = self.google.call(self.google.services.get_service, name=self.resource)
            except _gx().NotFound:
                return None
        self._seen = service
        return service

    def _existing(self) -> Any:
        service = self._get()
        if service is None:
            raise SafedeployError(f"{self.resource} does not exist", hint="see `safedeploy status`")
        return service

    def _revisions(self) -> list[Any]:
        with _errors(self.resource):
            pager = self.google.call(self.google.revisions.list_revisions, parent=self.resource)
            return list(pager)

    @property
    def url(self) -> str | None:
        """The service's own URL, as last read."""
        return str(self._seen.uri) or None if self._seen is not None else None

    def read(self) -> LiveService:
        service = self._get()
        if service is None:
            return LiveService(name=self.service, spec=None, fingerprint=NO_SERVICE)
        serving = _serving(service)
        tags = _tag_urls(service)
        return LiveService(
            name=self.service,
            spec=spec_of(service, self.container),
            fingerprint=service.etag,
            owned=owned_names(service.annotations.get(MANAGED_ENV, "")),
            revisions=tuple(_revision(r, serving, tags) for r in self._revisions()),
            url=service.uri or None,
        )

    # -- preflight ----------------------------------------------------------------------------

    def preflight(self, target: ServiceSpec) -> list[Finding]:
        """Settings Cloud Run cannot take, then every secret reference, read-only."""
        findings = _setting_findings(self.service, target)
        refs = {n: v for n, v in sorted(target.env.items()) if isinstance(v, SecretRef)}
        account = target.settings.get("service_account")
        checked: set[str] = set()
        for name, ref in refs.items():
            secret = _secret_path(self.project, ref.secret)
            problems = self._check_version(name, ref, secret)
            findings += problems
            if not problems and secret not in checked:
                checked.add(secret)
                findings += self._check_access(name, ref, secret, account)
        return findings

    def _check_version(self, name: str, ref: SecretRef, secret: str) -> list[Finding]:
        gx = _gx()
        key = f"secrets.{name}"
        try:
            with _errors(secret):
                version = self.google.call(
                    self.google.secrets.get_secret_version, name=f"{secret}/versions/{ref.version}"
                )
        except SafedeployError as exc:
            if isinstance(exc.__cause__, gx.NotFound):
                return [
                    _found(
                        "SD201",
                        key,
                        f"{name}: secret {ref.secret} (version {ref.version}) does not exist",
                        "create it in Secret Manager, or fix the reference",
                    )
                ]
            if isinstance(exc.__cause__, gx.Forbidden):
                message = f"{name}: cannot read secret {ref.secret}: {exc.what}"
                return [_found("SD204", key, message, _CANNOT_READ)]
            raise
        state = version.state.name
        if state != "ENABLED":
            number = version.name.rsplit("/", 1)[-1]
            return [
                _found(
                    "SD202",
                    key,
                    f"{name}: version {number} of secret {ref.secret} ({ref.version}) is {state}",
                    f"enable it (`gcloud secrets versions enable {number} --secret "
                    f"{secret.rsplit('/', 1)[-1]}`) or reference an enabled version",
                )
            ]
        return []

    def _check_access(
        self, name: str, ref: SecretRef, secret: str, account: str | None
    ) -> list[Finding]:
        key = f"secrets.{name}"
        if not account:
            return [
                _found(
                    "SD204",
                    key,
                    f"{name}: no service_account is set, so access to {ref.secret} was not checked",
                    "declare settings.service_account to have its access checked",
                )
            ]
        try:
            with _errors(secret):
                policy = self.google.call(
                    self.google.secrets.get_iam_policy, request={"resource": secret}
                )
        except SafedeployError as exc:
            if isinstance(exc.__cause__, _gx().Forbidden):
                return [
                    _found(
                        "SD204",
                        key,
                        f"{name}: cannot read the IAM policy of secret {ref.secret}, "
                        f"so access by {account} was not checked",
                        _CANNOT_READ,
                    )
                ]
            raise
        members = {m for b in policy.bindings if b.role in _ACCESS_ROLES for m in b.members}
        if f"serviceAccount:{account}" in members:
            return []
        return [
            _found(
                "SD203",
                key,
                f"{name}: {account} has no secretAccessor grant on secret {ref.secret} itself; "
                "unless the project grants it, the new revision will not start",
                f"gcloud secrets add-iam-policy-binding {secret.rsplit('/', 1)[-1]} "
                f"--member serviceAccount:{account} --role roles/secretmanager.secretAccessor",
            )
        ]

    # -- changing -----------------------------------------------------------------------------

    def _patched(
        self, fingerprint: str, target: ServiceSpec, owned: frozenset[str], release_id: str
    ) -> Any:
        """The Service to send: the one read at plan time with the plan's changes, and no more."""
        from google.cloud import run_v2

        revision = f"{self.service}-{release_id}"
        serving: dict[str, int] = {}
        if fingerprint == NO_SERVICE:
            container = run_v2.Container(name=self.container or "")
            service = run_v2.Service(template=run_v2.RevisionTemplate(containers=[container]))
        else:
            service = run_v2.Service.deserialize(
                run_v2.Service.serialize(self._as_read(fingerprint))
            )
            serving = _serving(service)
            service.traffic = _with_candidate(service, revision)
        before = spec_of(service, self.container)
        container = _container(service.template, self.container)
        if target.image:
            container.image = target.image
        _patch_env(container, target.env)
        _patch_settings(service, container, before.settings, target.settings)
        service.template.revision = revision
        service.template.annotations[RELEASE] = release_id
        # An interrupted release is finished from its revision alone (`rollback`): keep the split.
        service.template.annotations[TRAFFIC_BEFORE] = json.dumps(serving, sort_keys=True)
        service.annotations[MANAGED_ENV] = ",".join(sorted(owned))
        return service

    def _as_read(self, fingerprint: str) -> Any:
        """The Service as read when the plan was made; refuse at once if it has moved since."""
        if self._seen is None or self._seen.etag != fingerprint:
            self._get()
        if self._seen is None or self._seen.etag != fingerprint:
            raise SafedeployError(
                "the service changed since the plan; nothing was overwritten",
                where=self.resource,
                hint="run `safedeploy plan` again and review the new diff",
            )
        return self._seen

    def _send(self, service: Any, fingerprint: str, *, validate_only: bool = False) -> Any:
        """Create or update: the one write of a deploy's configuration; returns the operation."""
        from google.cloud import run_v2

        with _errors(self.resource):
            if fingerprint == NO_SERVICE:
                request = run_v2.CreateServiceRequest(
                    parent=self.parent,
                    service_id=self.service,
                    service=service,
                    validate_only=validate_only,
                )
                return self.google.call(self.google.services.create_service, request=request)
            request = run_v2.UpdateServiceRequest(service=service, validate_only=validate_only)
            return self.google.call(self.google.services.update_service, request=request)

    def apply(
        self, fingerprint: str, target: ServiceSpec, owned: frozenset[str], release_id: str
    ) -> Revision:
        service = self._patched(fingerprint, target, owned, release_id)
        self._operation = self._send(service, fingerprint)
        return Revision(name=service.template.revision, ready=False, image=target.image)

    def validate(
        self, fingerprint: str, target: ServiceSpec, owned: frozenset[str]
    ) -> list[Finding]:
        """The update apply would send, checked by the API itself (validate_only), nothing made."""
        service = self._patched(fingerprint, target, owned, new_release_id())
        try:
            with _errors(self.resource):
                self.google.wait(self._send(service, fingerprint, validate_only=True))
        except SafedeployError as exc:
            hint = exc.hint or "fix the value the message names"
            return [_found("SD205", None, f"Cloud Run refused the update: {exc.what}", hint)]
        return []

    def wait_ready(self, revision: Revision, cancel: CancelToken) -> Revision:
        name = f"{self.resource}/revisions/{revision.name}"
        operation, self._operation = self._operation, None
        try:
            with _errors(self.resource):
                service = self.google.wait(operation, cancel) if operation else self._existing()
        except SafedeployError as exc:
            try:
                reason = self._not_ready(name) or exc.what
            except SafedeployError:
                reason = exc.what
            raise SafedeployError(
                reason,
                where=name,
                hint=f"see its logs: gcloud run revisions describe {revision.name} "
                f"--region {self.region} --project {self.project}",
            ) from exc
        except concurrent.futures.TimeoutError:
            raise SafedeployError(
                f"not ready after {self.google.pace.ready_timeout:.0f}s", where=name
            ) from None
        self._seen = service
        message = self._not_ready(name)
        if message is not None:
            raise SafedeployError(message, where=name)
        tags = _tag_urls(service)
        return Revision(
            name=revision.name,
            ready=True,
            url=tags.get(revision.name) or service.uri or None,
            image=revision.image,
        )

    def _not_ready(self, name: str) -> str | None:
        """Why the revision is not ready, as its Ready condition says; None when it is."""
        with _errors(name):
            found = self.google.call(self.google.revisions.get_revision, name=name)
        ready = _ready_condition(found)
        if ready is not None and ready.state.name == "CONDITION_SUCCEEDED":
            return None
        return str(ready.message) if ready is not None and ready.message else "not ready"

    def _update(self, service: Any) -> None:
        """A write after apply (traffic, tags, records): against the etag just read, followed."""
        with _errors(self.resource):
            self._seen = self.google.wait(
                self.google.call(self.google.services.update_service, service=service)
            )

    def route(self, split: Mapping[str, int]) -> None:
        """One update of `traffic`; tags stay, the candidate's only while it is in the split."""
        from google.cloud import run_v2

        service = self._existing()
        pinned = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
        traffic = [
            run_v2.TrafficTarget(type_=pinned, revision=name, percent=percent)
            for name, percent in split.items()
            if percent
        ]
        traffic += [
            run_v2.TrafficTarget(type_=t.type_, revision=t.revision, tag=t.tag)
            for t in service.traffic
            if t.tag and (t.tag != CANDIDATE or split.get(t.revision))
        ]
        service.traffic = traffic
        self._update(service)

    def retire(self, keep: Revision) -> None:
        self._untag()

    def discard(self, candidate: Revision) -> None:
        """The candidate loses its tag and keeps its revision, as evidence."""
        self._untag()

    def preview(self, revision: Revision) -> Revision:
        """Give an existing revision the candidate tag (no traffic moves): its tag URL."""
        service = self._existing()
        service.traffic = _with_candidate(service, revision.name)
        self._update(service)
        url = _tag_urls(self._seen).get(revision.name)
        if not url:
            raise SafedeployError(f"revision {revision.name} got no tag URL", where=self.resource)
        return replace(revision, url=url)

    def _untag(self) -> None:
        service = self._existing()
        if not any(t.tag == CANDIDATE for t in service.traffic):
            return
        service.traffic = _without_candidate(service.traffic)
        self._update(service)

    # -- history ------------------------------------------------------------------------------

    def releases(self) -> list[Release]:
        """Finished releases from the service's records; interrupted ones from revisions alone."""
        service = self._get()
        if service is None:
            return []
        found = {r.id: r for r in _records(service, self.service)}
        for revision in self._revisions():
            release_id = revision.annotations.get(RELEASE)
            if release_id and release_id not in found:
                found[release_id] = _interrupted(self.service, release_id, revision)
        return sorted(found.values(), key=lambda r: r.id)

    def record(self, release: Release) -> None:
        """Add a finished release to the service's records, without waiting for the operation:
        the record is stored once the API accepts the write. Retried when another write wins."""
        for _ in range(3):
            service = self._existing()
            records = [_record(r) for r in _records(service, self.service) if r.id != release.id]
            records.append(_record(release))
            service.annotations[RELEASES] = json.dumps(
                records[-KEEP_RELEASES:], separators=(",", ":"), sort_keys=True
            )
            try:
                with _errors(self.resource):
                    self.google.call(self.google.services.update_service, service=service)
                return
            except SafedeployError as exc:
                if not isinstance(exc.__cause__, _gx().Conflict):
                    raise SafedeployError(
                        f"release {release.id} ended {release.outcome}, but its record could "
                        f"not be written: {exc.what}",
                        where=self.resource,
                    ) from exc
        raise SafedeployError(
            f"release {release.id} ended {release.outcome}, but the service kept changing "
            "while its record was written",
            where=self.resource,
        )


class CloudRunHistory:
    """Release history kept on the service itself, so every machine (a fresh CI runner) sees it.

    A deploy records itself when it finishes, as JSON in the service annotation
    `safedeploy.dev/releases` (the last 20); until then its revision's `safedeploy.dev/release`
    annotation is the evidence, listed as in-progress. A deploy that failed before changing
    anything leaves no record. The lease is a local one (FolderHistory's): across machines, the
    etag of each write is what keeps two deploys from overwriting each other.
    """

    def __init__(self, provider: CloudRunProvider, local: HistoryStore) -> None:
        self.provider = provider
        self.local = local

    def save(self, release: Release) -> Release:
        if release.outcome is not Outcome.IN_PROGRESS and release.revision is not None:
            self.provider.record(release)
        return release

    def releases(self) -> list[Release]:
        return self.provider.releases()

    def last_succeeded(self) -> Release | None:
        return last_succeeded(self.releases())

    def lease(self, service: str) -> AbstractContextManager[None]:
        return self.local.lease(service)

    def held(self) -> bool:
        return self.local.held()


class IdTokenProbe:
    """Probes for a private service (`probe_auth: id-token`): requests carry a Google ID token.

    The token's audience is the service's own run.app URL, which Cloud Run accepts on every URL of
    the service. `fetch` (audience -> token) is google-auth's unless a test replaces it; a token
    is fetched once per audience and reused (they last an hour). `on_attempt` sees each attempt,
    as the deployer's plain probes let it.
    """

    def __init__(
        self,
        provider: CloudRunProvider,
        fetch: Callable[[str], str] | None = None,
        on_attempt: OnAttempt | None = None,
    ) -> None:
        self.provider = provider
        self.fetch = fetch or _fetch_id_token
        self.on_attempt = on_attempt
        self._tokens: dict[str, str] = {}

    def __call__(
        self, manifest: Manifest, url: str, cancel: CancelToken = NEVER
    ) -> list[ProbeResult]:
        audience = self.provider.url or url
        if audience not in self._tokens:
            self._tokens[audience] = self.fetch(audience)
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {self._tokens[audience]}"
            return run_probes(
                manifest.probes,
                url,
                session=session,
                sleep=cancel.sleep,
                on_attempt=self.on_attempt,
            )


def _fetch_id_token(audience: str) -> str:
    import google.auth.transport.requests
    import google.oauth2.id_token
    from google.auth.exceptions import DefaultCredentialsError, RefreshError

    try:
        token: str = google.oauth2.id_token.fetch_id_token(  # type: ignore[no-untyped-call]
            google.auth.transport.requests.Request(), audience
        )
    except (DefaultCredentialsError, RefreshError) as exc:
        raise SafedeployError(
            f"cannot get a Google ID token for {audience}: {exc}",
            hint="ID tokens need a service account: set GOOGLE_APPLICATION_CREDENTIALS to its key "
            "or to an impersonation config, or run on Google Cloud",
        ) from exc
    return token


# -- Cloud Run <-> the neutral model (pure) ---------------------------------------------------


def owned_names(annotation: str) -> frozenset[str]:
    """`safedeploy.dev/managed-env`: names, comma-separated (env names cannot hold a comma)."""
    return frozenset(name.strip() for name in annotation.split(",") if name.strip())


def _container(template: Any, name: str | None) -> Any:
    """The container the manifest addresses: `container:` by name, else the ingress one."""
    containers = list(template.containers)
    if name:
        for container in containers:
            if container.name == name:
                return container
        known = ", ".join(c.name or "(unnamed)" for c in containers)
        raise SafedeployError(
            f"the service has no container {name!r}; it has: {known}",
            hint="fix `container:` in the manifest",
        )
    return next((c for c in containers if c.ports), containers[0])


def _env_value(var: Any) -> EnvValue:
    if "value_source" in var:
        ref = var.value_source.secret_key_ref
        return SecretRef(ref.secret, ref.version or "latest")
    return str(var.value)


def _env_var(name: str, value: EnvValue) -> Any:
    from google.cloud import run_v2

    if isinstance(value, SecretRef):
        ref = run_v2.SecretKeySelector(secret=value.secret, version=value.version)
        return run_v2.EnvVar(name=name, value_source=run_v2.EnvVarSource(secret_key_ref=ref))
    return run_v2.EnvVar(name=name, value=reveal(value))  # the apply path: the raw value


def _cloudsql_volumes(template: Any) -> list[Any]:
    return [v for v in template.volumes if "cloud_sql_instance" in v]


def spec_of(service: Any, container_name: str | None) -> ServiceSpec:
    """The part of a Service safedeploy manages, in the manifest's terms (Settings keys)."""
    template = service.template
    container = _container(template, container_name)
    limits = container.resources.limits
    settings: dict[str, Any] = {
        "min_instances": template.scaling.min_instance_count,
        "labels": dict(service.labels),
    }
    optional = {
        "cpu": limits.get("cpu"),
        "memory": limits.get("memory"),
        "timeout": int(template.timeout.total_seconds()) if "timeout" in template else None,
        "concurrency": template.max_instance_request_concurrency,
        "max_instances": template.scaling.max_instance_count,
        "service_account": template.service_account,
        "vpc_connector": template.vpc_access.connector,
        "egress": _name_of(EGRESS, template.vpc_access.egress.name),
        "cloudsql_instances": [
            i for v in _cloudsql_volumes(template) for i in v.cloud_sql_instance.instances
        ],
        "ingress": _name_of(INGRESS, service.ingress.name),
        "port": container.ports[0].container_port if container.ports else None,
    }
    settings.update({k: v for k, v in optional.items() if v})
    return ServiceSpec(
        image=container.image or None,
        env={var.name: _env_value(var) for var in container.env},
        settings=settings,
    )


def _name_of(names: Mapping[str, str], api_name: str) -> str | None:
    return next((name for name, api in names.items() if api == api_name), None)


def _patch_env(container: Any, env: Mapping[str, EnvValue]) -> None:
    """Keep each live variable's entry where the value is unchanged; replace, drop, append."""
    present = {var.name for var in container.env}
    patched = [
        var if _env_value(var) == env[var.name] else _env_var(var.name, env[var.name])
        for var in container.env
        if var.name in env
    ]
    patched += [_env_var(name, value) for name, value in sorted(env.items()) if name not in present]
    container.env = patched


def _patch_settings(
    service: Any, container: Any, before: Mapping[str, Any], after: Mapping[str, Any]
) -> None:
    """Write the settings whose value changes; the rest of the Service stays as read."""
    from google.cloud import run_v2

    template = service.template
    for key, value in after.items():
        if before.get(key) == value:
            continue
        if key in ("cpu", "memory"):
            container.resources.limits[key] = value
        elif key == "timeout":
            template.timeout = {"seconds": value}
        elif key == "concurrency":
            template.max_instance_request_concurrency = value
        elif key == "min_instances":
            template.scaling.min_instance_count = value
        elif key == "max_instances":
            template.scaling.max_instance_count = value
        elif key == "service_account":
            template.service_account = value
        elif key == "vpc_connector":
            template.vpc_access.connector = value
        elif key == "egress":
            template.vpc_access.egress = EGRESS[value]
        elif key == "ingress":
            service.ingress = INGRESS[value]
        elif key == "labels":
            service.labels = value
        elif key == "port":
            if container.ports:
                container.ports[0].container_port = value
            else:
                container.ports = [run_v2.ContainerPort(container_port=value)]
        elif key == "cloudsql_instances":
            _patch_cloudsql(template, container, value)


def _patch_cloudsql(template: Any, container: Any, instances: list[str]) -> None:
    """One Cloud SQL volume holds the instances, mounted at /cloudsql; none for an empty list."""
    from google.cloud import run_v2

    volumes = _cloudsql_volumes(template)
    keep = volumes[0] if volumes and instances else None
    dropped = {v.name for v in volumes if v is not keep}
    if instances and keep is None:
        keep = run_v2.Volume(name="cloudsql", cloud_sql_instance={"instances": instances})
        template.volumes = [*template.volumes, keep]
        container.volume_mounts = [
            *container.volume_mounts,
            run_v2.VolumeMount(name="cloudsql", mount_path="/cloudsql"),
        ]
    elif keep is not None:
        keep.cloud_sql_instance.instances = instances
    template.volumes = [v for v in template.volumes if v.name not in dropped]
    for each in template.containers:
        each.volume_mounts = [m for m in each.volume_mounts if m.name not in dropped]


def _without_candidate(traffic: Any) -> list[Any]:
    """Traffic with the candidate tag gone: a tag-only target goes, a serving one stays."""
    kept = []
    for target in traffic:
        if target.tag == CANDIDATE:
            if not target.percent:
                continue
            target.tag = ""
        kept.append(target)
    return kept


def _with_candidate(service: Any, revision: str) -> list[Any]:
    """The live traffic, pinned to revisions, plus the new revision at 0% with the candidate tag."""
    from google.cloud import run_v2

    kinds = run_v2.TrafficTargetAllocationType
    latest = _short(service.latest_ready_revision)
    traffic = _without_candidate(service.traffic)
    for target in traffic:
        if (
            target.type_ == kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
            and target.percent
            and latest
        ):
            target.type_ = kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
            target.revision = latest
    traffic.append(
        run_v2.TrafficTarget(
            type_=kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, revision=revision, tag=CANDIDATE
        )
    )
    return traffic


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _target_revision(service: Any, target: Any) -> str:
    """The revision a traffic status serves: LATEST means the latest ready one."""
    return str(target.revision) or _short(service.latest_ready_revision)


def _serving(service: Any) -> dict[str, int]:
    """Revision -> percent, from what the service actually serves (trafficStatuses)."""
    split: dict[str, int] = {}
    for status in service.traffic_statuses:
        if status.percent:
            name = _target_revision(service, status)
            split[name] = split.get(name, 0) + status.percent
    return split


def _tag_urls(service: Any) -> dict[str, str]:
    """Revision -> a URL that reaches it alone: its candidate tag's, else any tag's."""
    urls: dict[str, str] = {}
    for status in sorted(service.traffic_statuses, key=lambda s: s.tag != CANDIDATE):
        if status.tag and status.uri:
            urls.setdefault(_target_revision(service, status), status.uri)
    return urls


def _ready_condition(revision: Any) -> Any:
    return next((c for c in revision.conditions if c.type_ == "Ready"), None)


def _revision(found: Any, serving: Mapping[str, int], tags: Mapping[str, str]) -> Revision:
    name = _short(found.name)
    ready = _ready_condition(found)
    ok = ready is not None and ready.state.name == "CONDITION_SUCCEEDED"
    container = next(iter(found.containers), None)
    return Revision(
        name=name,
        percent=serving.get(name, 0),
        ready=ok,
        url=tags.get(name),
        image=container.image if container is not None else None,
        created=found.create_time.isoformat(timespec="seconds") if "create_time" in found else None,
        message=None if ok or ready is None else str(ready.message) or None,
    )


def _secret_path(project: str, secret: str) -> str:
    return secret if secret.startswith("projects/") else f"projects/{project}/secrets/{secret}"


# The preflight codes (README's lint table); SD201 means the same on every platform.
_SEVERITY = {
    "SD201": Severity.ERROR,  # a referenced secret or version does not exist
    "SD202": Severity.ERROR,  # the referenced version is not ENABLED
    "SD203": Severity.WARNING,  # no secretAccessor grant on the secret itself
    "SD204": Severity.WARNING,  # a secret or its access could not be checked
    "SD205": Severity.ERROR,  # plan --validate: the API refused the update
    "SD206": Severity.ERROR,  # a value Cloud Run cannot take
}
_CANNOT_READ = "grant the deployer roles/secretmanager.viewer on the secret to have it checked"


def _found(code: str, key: str | None, message: str, hint: str) -> Finding:
    return Finding(code, _SEVERITY[code], key, message, hint)


def _setting_findings(service: str, target: ServiceSpec) -> list[Finding]:
    """SD206: values Cloud Run cannot take, found before anything is sent."""
    findings = [
        _found(
            "SD206",
            f"settings.{key}",
            f"settings.{key} {target.settings[key]!r} is not a Cloud Run value",
            f"use one of: {', '.join(names)}",
        )
        for key, names in (("egress", EGRESS), ("ingress", INGRESS))
        if key in target.settings and target.settings[key] not in names
    ]
    longest = len(f"{service}-{new_release_id()}")
    if longest > _MAX_REVISION_NAME:
        findings.append(
            _found(
                "SD206",
                "service",
                f"revision names `{service}-<release id>` would be {longest} characters; "
                f"Cloud Run allows {_MAX_REVISION_NAME}",
                f"use a service name of at most {len(service) - longest + _MAX_REVISION_NAME} "
                "characters",
            )
        )
    return findings


# -- release records ----------------------------------------------------------------------------

_MESSAGE_LIMIT = 500


def _record(release: Release) -> dict[str, Any]:
    """What a release keeps on the service: no probe transcripts, owned names live elsewhere.

    Its message went through the scrubber, as every record does: a platform error may echo a value.
    """
    record = asdict(release)
    del record["probes"], record["owned"], record["service"]
    message = scrub(release.message) if release.message else release.message
    if message and len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 1] + "…"
    record["message"] = message
    return record


def _records(service: Any, name: str) -> list[Release]:
    """The records in `safedeploy.dev/releases`; one that does not parse is left out."""
    try:
        raw = json.loads(service.annotations.get(RELEASES, "[]"))
        return [
            Release(**{**r, "service": name, "outcome": Outcome(r["outcome"]), "owned": ()})
            for r in (_without_digest(r) for r in raw)
        ]
    except (ValueError, TypeError, KeyError):
        return []


def _without_digest(record: dict[str, Any]) -> dict[str, Any]:
    """Records written before digests were dropped carry `manifest_digest`; it is not read."""
    return {k: v for k, v in record.items() if k != "manifest_digest"}


def _interrupted(service: str, release_id: str, revision: Any) -> Release:
    """A revision safedeploy made whose release never recorded an end."""
    container = next(iter(revision.containers), None)
    try:
        before = json.loads(revision.annotations.get(TRAFFIC_BEFORE, "{}"))
    except ValueError:
        before = {}
    return Release(
        id=release_id,
        service=service,
        kind="deploy",
        time=revision.create_time.isoformat(timespec="seconds"),
        user="unknown",
        git_commit=None,
        image=container.image if container is not None else None,
        owned=(),
        traffic_before=before if isinstance(before, dict) else {},
        revision=_short(revision.name),
    )


# -- import -------------------------------------------------------------------------------------


def import_manifest(provider: CloudRunProvider) -> str:
    """A manifest of the live service: `import` then `plan` shows no changes."""
    service = provider._get()
    if service is None:
        raise SafedeployError(
            f"{provider.resource} does not exist", hint="check --project, --region and --service"
        )
    container = None
    if len(service.template.containers) > 1:
        container = _container(service.template, provider.container).name
    address = {
        "service": provider.service,
        "platform": "cloudrun",
        "project": provider.project,
        "region": provider.region,
        "container": container,
    }
    return manifest_text(provider.resource, address, spec_of(service, provider.container))
