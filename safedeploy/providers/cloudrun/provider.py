"""The Cloud Run provider: the Cloud Run Admin API v2 over REST; Secret Manager and Policy
Troubleshooter for preflight.

How the core's operations map onto Cloud Run:

- `apply` reads the Service, refuses if its etag is not the candidate's version (this run's
  lease write aside: it moves the etag, not the configuration), and sends it back with the
  image, env and settings of the target, the revision named as the core named it, and that
  etag, so a service changed in between is a 409, never overwritten. The new revision gets
  no traffic and the tag `candidate`. Traffic that followed LATEST is pinned to the revision
  serving it, or the new revision would take all of it at once.
- Traffic moves by revision name, so a rollback serves exactly the revisions that served before.
- `read` reports what runs: the revision that serves the largest share, which after a rollback
  is not the template. The owned names live on the service (`safedeploy.dev/managed-env`); each
  revision's template names the release that made it and the split that served before it.
- Nothing read is kept between calls: each call reads the Service it changes (one GET).
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import SafedeployError, VersionMoved
from safedeploy.facts import Diagnosis, Fact, LiveService, Problem, Revision, TrafficFigures
from safedeploy.model import ServiceSpec
from safedeploy.providers.base import Candidate, Capabilities, Pending
from safedeploy.providers.cloudrun import logs, metrics, preflight
from safedeploy.providers.cloudrun.client import Google, Pace, errors
from safedeploy.providers.cloudrun.mapping import (
    CANDIDATE,
    MANAGED_ENV,
    MAX_REVISION_NAME,
    NO_SERVICE,
    RELEASE,
    TRAFFIC_BEFORE,
    container_of,
    owned_names,
    ready_condition,
    revision_of,
    routed,
    running,
    serving,
    spec_of,
    tag_urls,
    with_candidate,
    without_candidate,
    write_env,
    write_settings,
)


class CloudRunProvider:
    capabilities = Capabilities(
        traffic_split=True,
        candidate_url=True,
        owned_on_service=True,
        revision_name_limit=MAX_REVISION_NAME,
    )

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
        self.google = Google(environ, pace or Pace.from_environ(environ))

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> LiveService:
        service = self.google.service(self.resource)
        if service is None:
            return LiveService(name=self.service, spec=None, fingerprint=NO_SERVICE)
        revisions = self.google.revisions_of(self.resource)
        split = serving(service)
        tags = tag_urls(service)
        return LiveService(
            name=self.service,
            spec=spec_of(service, running(service, revisions, split), self.container),
            fingerprint=service.etag,
            owned=owned_names(service.annotations.get(MANAGED_ENV, "")),
            revisions=tuple(revision_of(r, split, tags) for r in revisions),
            url=service.uri or None,
        )

    def service_url(self) -> str | None:
        """The service's own run.app URL, None before it exists (one GET, no revisions)."""
        service = self.google.service(self.resource)
        return str(service.uri) or None if service is not None else None

    def managed_container(self) -> str | None:
        """The name of the container read as the service's when sidecars run beside it (an
        import must name it); None with one container, or no service."""
        service = self.google.service(self.resource)
        if service is None or len(service.template.containers) < 2:
            return None
        return str(container_of(service.template, self.container).name)

    def diagnose(self, revision: str, since: datetime, cancel: CancelToken) -> Diagnosis:
        """The revision's conditions and its own lines in Cloud Logging (cloudrun/logs.py)."""
        return logs.diagnose(self.google, self.resource, revision, since, cancel)

    def traffic(
        self, revision: str, start: datetime, end: datetime, *, latency: bool = False
    ) -> TrafficFigures:
        """What the revision answered in the window, from Cloud Monitoring (metrics.py)."""
        return metrics.traffic(self.google, self.resource, revision, start, end, latency)

    def preflight(self, target: ServiceSpec) -> list[Fact]:
        """Settings Cloud Run cannot take, every secret reference, then the runtime account's
        access to the secrets and Cloud SQL instances, read-only."""
        return preflight.facts(self.google, self.project, target)

    # -- changing -----------------------------------------------------------------------------

    def _patched(self, candidate: Candidate) -> Any:
        """The Service to send: the one live at `candidate.version` with the target written."""
        from google.cloud import run_v2

        if len(candidate.revision) > MAX_REVISION_NAME:
            raise SafedeployError(
                f"revision name {candidate.revision} is {len(candidate.revision)} characters; "
                f"Cloud Run allows {MAX_REVISION_NAME}",
                where=self.resource,
                hint="use a shorter service name",
            )
        before: dict[str, int] = {}
        if candidate.version == NO_SERVICE:
            container = run_v2.Container(name=self.container or "")
            service = run_v2.Service(template=run_v2.RevisionTemplate(containers=[container]))
        else:
            service = self.google.service(self.resource)
            if service is None or service.etag != candidate.version:
                raise VersionMoved(where=self.resource)
            before = serving(service)
            service.traffic = with_candidate(service, candidate.revision)
        target = candidate.target
        container = container_of(service.template, self.container)
        if target.image:
            container.image = target.image
        write_env(container, target.env)
        write_settings(service, container, target.settings)
        service.template.revision = candidate.revision
        service.template.annotations[RELEASE] = candidate.release_id
        # An interrupted release is finished from its revision alone (`rollback`): keep the split.
        service.template.annotations[TRAFFIC_BEFORE] = json.dumps(before, sort_keys=True)
        service.annotations[MANAGED_ENV] = ",".join(sorted(candidate.owned))
        return service

    def _send(self, service: Any, version: str, *, validate_only: bool = False) -> Any:
        """Create or update: the one write of a deploy's configuration; returns the operation."""
        from google.cloud import run_v2

        with errors(self.resource):
            if version == NO_SERVICE:
                request = run_v2.CreateServiceRequest(
                    parent=self.parent,
                    service_id=self.service,
                    service=service,
                    validate_only=validate_only,
                )
                return self.google.call(self.google.services.create_service, request=request)
            request = run_v2.UpdateServiceRequest(service=service, validate_only=validate_only)
            return self.google.call(self.google.services.update_service, request=request)

    def apply(self, candidate: Candidate) -> Pending:
        operation = self._send(self._patched(candidate), candidate.version)
        revision = Revision(name=candidate.revision, ready=False, image=candidate.target.image)
        return Pending(candidate, revision, operation)

    def validate(self, candidate: Candidate) -> list[Fact]:
        """The update apply would send, checked by the API itself (validate_only), nothing made."""
        service = self._patched(candidate)
        try:
            with errors(self.resource):
                self.google.wait(self._send(service, candidate.version, validate_only=True))
        except SafedeployError as exc:
            detail = f"Cloud Run refused the update: {exc.what}"
            return [
                Fact(Problem.REFUSED, "", detail, exc.hint or "fix the value the message names")
            ]
        return []

    def wait_ready(self, pending: Pending, cancel: CancelToken) -> Revision:
        revision = pending.revision
        name = f"{self.resource}/revisions/{revision.name}"
        try:
            with errors(self.resource):
                service = self.google.wait(pending.operation, cancel)
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
        message = self._not_ready(name)
        if message is not None:
            raise SafedeployError(message, where=name)
        return replace(
            revision, ready=True, url=tag_urls(service).get(revision.name) or service.uri or None
        )

    def _not_ready(self, name: str) -> str | None:
        """Why the revision is not ready, as its Ready condition says; None when it is."""
        with errors(name):
            found = self.google.call(self.google.revisions.get_revision, name=name)
        ready = ready_condition(found)
        if ready is not None and ready.state.name == "CONDITION_SUCCEEDED":
            return None
        return str(ready.message) if ready is not None and ready.message else "not ready"

    def route(self, split: Mapping[str, int], served: ServiceSpec | None = None) -> None:
        """One update of `traffic`; tags stay, the candidate's only while it is in the split.
        `served` is not needed: a revision keeps its configuration, so traffic alone restores."""
        service = self.google.existing(self.resource)
        service.traffic = routed(service, split)
        self.google.update(service)

    def retire(self, keep: Revision, cancel: CancelToken = NEVER) -> None:
        self._untag()

    def discard(self, candidate: Revision) -> None:
        """The candidate loses its tag and keeps its revision, as evidence."""
        self._untag()

    def preview(self, revision: Revision) -> Revision:
        """Give an existing revision the candidate tag (no traffic moves): its tag URL."""
        service = self.google.existing(self.resource)
        service.traffic = with_candidate(service, revision.name)
        url = tag_urls(self.google.update(service)).get(revision.name)
        if not url:
            raise SafedeployError(f"revision {revision.name} got no tag URL", where=self.resource)
        return replace(revision, url=url)

    def _untag(self) -> None:
        service = self.google.existing(self.resource)
        if not any(t.tag == CANDIDATE for t in service.traffic):
            return
        service.traffic = without_candidate(service.traffic)
        self.google.update(service)
