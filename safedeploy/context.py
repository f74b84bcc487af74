"""Builds the parts a command needs once (provider, history store) so tests can swap them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from safedeploy.errors import SafedeployError
from safedeploy.history import FolderHistory, HistoryStore
from safedeploy.manifest import Manifest
from safedeploy.model import Platform
from safedeploy.providers.base import Provider


@dataclass
class Context:
    state_dir: Path | None = None  # default: .safedeploy/ beside each manifest
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def state_for(self, manifest: Manifest) -> Path:
        return self.state_dir or manifest.path.parent / ".safedeploy"

    def history(self, manifest: Manifest) -> HistoryStore:
        return FolderHistory(self.state_for(manifest) / manifest.service / "history")

    def provider(self, manifest: Manifest) -> Provider:
        """The platform adapter; cloud SDKs are imported only here, when a manifest needs them."""
        if manifest.platform is Platform.LOCAL:
            from safedeploy.providers.local import LocalProvider

            last = self.history(manifest).last_succeeded()
            return LocalProvider(
                manifest.service,
                self.state_for(manifest),
                manifest.path.parent.resolve(),
                frozenset(last.owned) if last else frozenset(),
                self.environ,
            )
        raise SafedeployError(
            f"platform {manifest.platform} is not available in this version of safedeploy",
            where=str(manifest.path),
            hint="the local platform works today; cloudrun and apprunner are on their way",
        )
