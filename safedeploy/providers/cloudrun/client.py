"""The Google SDK clients: endpoints and credentials as gcloud has them, retries, typed errors.

- The SDKs are imported on first use: commands on other platforms never load them.
- Endpoints and credentials follow gcloud: CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN,
  _SECRETMANAGER, _POLICYTROUBLESHOOTER and _CLOUDRESOURCEMANAGER, CLOUDSDK_AUTH_ACCESS_TOKEN,
  else Application Default Credentials. 429, 503, 504 and dropped connections are retried with
  backoff within a bounded time (SAFEDEPLOY_CLOUDRUN_BACKOFF: the first wait in seconds); other
  errors surface at once, with the API's message and the resource's name.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import requests

from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import SafedeployError, VersionMoved

RUN_ENDPOINT = "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN"
SECRETS_ENDPOINT = "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"
TROUBLESHOOTER_ENDPOINT = "CLOUDSDK_API_ENDPOINT_OVERRIDES_POLICYTROUBLESHOOTER"
PROJECTS_ENDPOINT = "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER"
ACCESS_TOKEN = "CLOUDSDK_AUTH_ACCESS_TOKEN"
BACKOFF = "SAFEDEPLOY_CLOUDRUN_BACKOFF"

_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_WAIT_SLICE = 1.0  # seconds an operation is polled before the cancel token is asked again


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


def gx() -> Any:
    """google.api_core.exceptions, imported when first needed."""
    from google.api_core import exceptions

    return exceptions


class Google:
    """The SDK clients, made on first use with gcloud's endpoint and credential conventions.

    Its memos are the clients and the credentials: nothing read from a service is kept.
    """

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
            raise no_credentials("no Google credentials were found") from exc
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
    def troubleshooter(self) -> Any:
        from google.cloud import policytroubleshooter_iam_v3

        return policytroubleshooter_iam_v3.PolicyTroubleshooterClient(
            transport="rest",
            credentials=self.credentials,
            client_options=self._options(TROUBLESHOOTER_ENDPOINT),
        )

    @cached_property
    def projects(self) -> Any:
        from google.cloud import resourcemanager_v3

        return resourcemanager_v3.ProjectsClient(
            transport="rest",
            credentials=self.credentials,
            client_options=self._options(PROJECTS_ENDPOINT),
        )

    @cached_property
    def retry(self) -> Any:
        """Transient errors only, on every call (by default the SDK retries only some reads):
        429, 503, 504, and their kin on the wire, a dropped or timed-out connection."""
        from google.api_core.retry import Retry, if_exception_type

        exceptions = gx()
        transient = (
            exceptions.TooManyRequests,
            exceptions.ServiceUnavailable,
            exceptions.GatewayTimeout,
        )
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
        except gx().RetryError as exc:
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

    def service(self, resource: str) -> Any:
        """The Service as it is now, or None when it does not exist."""
        with errors(resource):
            try:
                return self.call(self.services.get_service, name=resource)
            except gx().NotFound:
                return None

    def existing(self, resource: str) -> Any:
        """The Service as it is now; an error when it does not exist."""
        service = self.service(resource)
        if service is None:
            raise SafedeployError(f"{resource} does not exist", hint="see `safedeploy status`")
        return service

    def revisions_of(self, resource: str) -> list[Any]:
        with errors(resource):
            return list(self.call(self.revisions.list_revisions, parent=resource))

    def update(self, service: Any) -> Any:
        """A write after apply (traffic, tags) against the etag just read; the Service after it."""
        with errors(service.name):
            return self.wait(self.call(self.services.update_service, service=service))


def no_credentials(why: str) -> SafedeployError:
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
def errors(resource: str) -> Iterator[None]:
    """Google's typed errors as SafedeployErrors that name the resource and say what to do.

    A 409 is the etag (or a create) finding the service changed: VersionMoved, nothing written.
    """
    from google.auth import exceptions as auth

    exceptions = gx()
    try:
        yield
    except exceptions.GoogleAPICallError as exc:
        if isinstance(exc, exceptions.Conflict):
            raise VersionMoved(where=resource) from exc
        message = _api_message(exc)
        if isinstance(exc, exceptions.Unauthenticated):
            raise no_credentials(message) from exc
        hints = {
            exceptions.Forbidden: "the caller needs roles/run.developer on the service (and "
            "roles/iam.serviceAccountUser on its service account); see `gcloud auth list`",
            exceptions.NotFound: "check `project:`, `region:` and the names in the manifest",
            exceptions.TooManyRequests: "the API kept refusing for lack of quota; try again later",
            exceptions.ServiceUnavailable: "the API stayed unavailable through the retries; "
            "try later",
            exceptions.GatewayTimeout: "the API kept timing out through the retries; try again "
            "later",
        }
        hint = next((h for kind, h in hints.items() if isinstance(exc, kind)), None)
        raise SafedeployError(message, where=resource, hint=hint) from exc
    except (auth.RefreshError, auth.DefaultCredentialsError, auth.TransportError) as exc:
        raise no_credentials(str(exc)) from exc
    except requests.RequestException as exc:
        raise SafedeployError(
            f"cannot reach the API: {type(exc).__name__}",
            where=resource,
            hint=f"check the network, and {RUN_ENDPOINT} or {SECRETS_ENDPOINT} if set",
        ) from exc
