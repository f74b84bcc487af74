"""Probes for a private service (`probe_auth: id-token`): requests carry a Google ID token."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import requests

from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import SafedeployError
from safedeploy.probes import OnAttempt, ProbeResult, run_probes


class Probed(Protocol):
    """What a probe reads of a manifest: its probes (providers do not import the manifest)."""

    @property
    def probes(self) -> Sequence[Any]: ...


class ServiceUrl(Protocol):
    """The provider, as far as a probe needs it: the service's own URL."""

    def service_url(self) -> str | None: ...


class IdTokenProbe:
    """Probes whose requests carry a Google ID token for the service's own run.app URL.

    Cloud Run accepts that audience on every URL of the service. The URL is read once, when the
    first probe runs (the service exists by then, and its URL never changes); `fetch` (audience
    -> token) is google-auth's unless a test replaces it; a token is fetched once per audience
    and reused (they last an hour). `on_attempt` sees each attempt, as plain probes let it.
    """

    def __init__(
        self,
        provider: ServiceUrl,
        fetch: Callable[[str], str] | None = None,
        on_attempt: OnAttempt | None = None,
    ) -> None:
        self.provider = provider
        self.fetch = fetch or _fetch_id_token
        self.on_attempt = on_attempt
        self._audience: str | None = None
        self._tokens: dict[str, str] = {}

    def __call__(
        self, manifest: Probed, url: str, cancel: CancelToken = NEVER
    ) -> list[ProbeResult]:
        if self._audience is None:
            self._audience = self.provider.service_url()
        audience = self._audience or url
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
