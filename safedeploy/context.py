"""Builds the parts a command needs once (provider, history store) so tests can swap them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_never

from safedeploy.cancel import CancelToken
from safedeploy.errors import SafedeployError
from safedeploy.history import FolderHistory, HistoryStore
from safedeploy.manifest import Manifest
from safedeploy.model import Platform
from safedeploy.providers.base import Provider

if TYPE_CHECKING:
    from safedeploy.aws import Clients
    from safedeploy.deployer import Probe
    from safedeploy.history.s3 import S3History
    from safedeploy.probes import OnAttempt
    from safedeploy.providers.cloudrun import CloudRunProvider


@dataclass
class Context:
    state_dir: Path | None = None  # default: .safedeploy/ beside each manifest
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cancel: CancelToken = field(default_factory=CancelToken)  # set by a signal (cli.main)
    _aws: Clients | None = field(default=None, init=False, repr=False)
    _cloudrun: dict[tuple[Any, ...], CloudRunProvider] = field(
        default_factory=dict, init=False, repr=False
    )

    def state_for(self, manifest: Manifest) -> Path:
        return self.state_dir or manifest.path.parent / ".safedeploy"

    def history(self, manifest: Manifest) -> HistoryStore:
        if manifest.platform is Platform.CLOUDRUN:
            from safedeploy.history.cloudrun import CloudRunHistory, lease_ttl

            provider = self._cloudrun_of(manifest)
            ttl = lease_ttl(manifest, provider.google.pace.ready_timeout)
            return CloudRunHistory(provider.google, provider.resource, self._store(manifest), ttl)
        return self._store(manifest)

    def _store(self, manifest: Manifest) -> FolderHistory | S3History:
        """`history: s3://BUCKET/PREFIX` in the manifest, else a folder in the state dir."""
        if manifest.history and manifest.history.startswith("s3://"):
            from safedeploy.history.s3 import S3History

            return S3History(manifest.history, manifest.service, manifest.region, self.aws())
        return FolderHistory(self.state_for(manifest) / manifest.service / "history")

    def aws(self) -> Clients:
        """One boto3 session for every AWS client of this run (credentials resolved once)."""
        from safedeploy.aws import Clients

        if self._aws is None:
            self._aws = Clients()
        return self._aws

    def seconds(self, name: str, default: float) -> float:
        """A duration from the environment (SAFEDEPLOY_POLL_INTERVAL=0 makes tests fast)."""
        text = self.environ.get(name)
        try:
            return default if text is None else max(0.0, float(text))
        except ValueError:
            raise SafedeployError(f"{name}={text!r} is not a number of seconds") from None

    def cloudrun(
        self, project: str, region: str, service: str, container: str | None = None
    ) -> CloudRunProvider:
        """One Cloud Run adapter per service and run: provider, history and probes share it."""
        key = (project, region, service, container)
        if key not in self._cloudrun:
            from safedeploy.providers.cloudrun import CloudRunProvider

            self._cloudrun[key] = CloudRunProvider(
                project, region, service, container=container, environ=self.environ
            )
        return self._cloudrun[key]

    def _cloudrun_of(self, manifest: Manifest) -> CloudRunProvider:
        # load_manifest refuses a cloudrun manifest without project and region.
        return self.cloudrun(
            str(manifest.project), str(manifest.region), manifest.service, manifest.container
        )

    def probe(self, manifest: Manifest, on_attempt: OnAttempt | None = None) -> Probe | None:
        """Probes that carry a Google ID token (`probe_auth: id-token`); None: plain probes."""
        if manifest.probe_auth == "id-token" and manifest.platform is Platform.CLOUDRUN:
            from safedeploy.providers.cloudrun import IdTokenProbe

            return IdTokenProbe(self._cloudrun_of(manifest), on_attempt=on_attempt)
        return None

    def provider(
        self, manifest: Manifest, progress: Callable[[str], None] | None = None
    ) -> Provider:
        """The platform adapter; cloud SDKs are imported only here, when a manifest needs them.

        `progress` takes a platform's waiting lines (App Runner); by default they are dropped.
        """
        if manifest.platform is Platform.CLOUDRUN:
            return self._cloudrun_of(manifest)
        if manifest.platform is Platform.LOCAL:
            from safedeploy.providers.local import LocalProvider

            return LocalProvider(
                manifest.service,
                self.state_for(manifest),
                manifest.path.parent.resolve(),
                self.environ,
            )
        if manifest.platform is Platform.APPRUNNER:
            from safedeploy.providers import apprunner

            return apprunner.AppRunnerProvider(
                manifest.service,
                str(manifest.region),  # load_manifest refuses an apprunner manifest without one
                self._store(manifest),
                self.aws(),
                poll_interval=self.seconds("SAFEDEPLOY_POLL_INTERVAL", apprunner.POLL_INTERVAL),
                timeout=self.seconds("SAFEDEPLOY_OPERATION_TIMEOUT", apprunner.OPERATION_TIMEOUT),
                progress=progress or _progress,
            )
        if manifest.platform is Platform.ECS_EXPRESS:
            from safedeploy.providers import ecs_express

            return ecs_express.EcsExpressProvider(
                manifest.service,
                str(manifest.region),  # load_manifest refuses an ecs-express manifest without one
                self._store(manifest),
                self.aws(),
                cluster=manifest.cluster,
                execution_role=manifest.execution_role,
                infrastructure_role=manifest.infrastructure_role,
                poll_interval=self.seconds("SAFEDEPLOY_POLL_INTERVAL", ecs_express.POLL_INTERVAL),
                timeout=self.seconds("SAFEDEPLOY_OPERATION_TIMEOUT", ecs_express.OPERATION_TIMEOUT),
                progress=progress or _progress,
            )
        assert_never(manifest.platform)


def _progress(text: str) -> None:
    """Waiting lines go where the command sends them (cli: to a terminal); else nowhere."""
