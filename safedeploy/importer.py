"""`safedeploy import`: the manifest of a live service, so adoption starts from what runs.

One writer for every platform: each provider supplies where the service is and its spec.
A plain value that looks sensitive is never written; it is named in a comment with SD104 and
stays live (unmanaged: keep) until it moves to the platform's secret store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import yaml

from safedeploy.errors import SafedeployError
from safedeploy.facts import LiveService
from safedeploy.model import SecretRef, ServiceSpec
from safedeploy.redact import is_sensitive

PROBE_STUB = """\
# probes:
#   - name: health
#     path: /health
#     expect: {status: 200}
"""


def manifest_text(source: str, address: Mapping[str, Any], spec: ServiceSpec) -> str:
    """YAML for `address` (service, platform, project, region, ...) and the live spec."""
    plain = {n: v for n, v in sorted(spec.env.items()) if isinstance(v, str)}
    held = [n for n, v in plain.items() if is_sensitive(n, v)]
    document: dict[str, Any] = {k: v for k, v in address.items() if v is not None}
    document["image"] = spec.image
    sections = {
        "command": list(spec.command),
        "env": {n: v for n, v in plain.items() if n not in held},
        "secrets": {n: _secret(v) for n, v in sorted(spec.env.items()) if isinstance(v, SecretRef)},
        "settings": dict(sorted(spec.settings.items())),
    }
    document.update({k: v for k, v in sections.items() if v})
    header = f"# Imported from {source} by `safedeploy import`; review it, then plan.\n"
    header += "".join(
        f"# {n}: not copied, the live value looks like a credential (SD104); "
        "move it to the secret store and list it under secrets:\n"
        for n in held
    )
    body = yaml.safe_dump(_escaped(document), sort_keys=False, default_flow_style=False)
    return header + body + PROBE_STUB


def _secret(ref: SecretRef) -> Any:
    return ref.secret if ref.version == "latest" else {"secret": ref.secret, "version": ref.version}


def _escaped(value: Any) -> Any:
    """A live `${` is text, not a variable: write it as `$${` so loading gives it back."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    return value


# -- App Runner --------------------------------------------------------------------------------


def apprunner_manifest(service: str, region: str, found: tuple[str, ServiceSpec] | None) -> str:
    """The manifest of a live App Runner service, from its ARN and spec as the provider read
    them (`describe`): `import` then `plan` shows no changes."""
    if found is None:
        raise SafedeployError(
            f"there is no App Runner service {service} in {region}",
            hint="check --service and --region",
        )
    arn, spec = found
    return manifest_text(arn, {"service": service, "platform": "apprunner", "region": region}, spec)


# -- ECS Express -------------------------------------------------------------------------------


class EcsExpressService(Protocol):
    """What import reads of an ECS Express service (the provider's `describe`)."""

    @property
    def arn(self) -> str: ...

    @property
    def spec(self) -> ServiceSpec: ...

    @property
    def execution_role(self) -> str | None: ...

    @property
    def infrastructure_role(self) -> str | None: ...


def ecs_express_manifest(
    service: str, region: str, cluster: str, found: EcsExpressService | None
) -> str:
    """The manifest of a live ECS Express service, with the roles it was created with (kept for
    a create elsewhere): `import` then `plan` shows no changes."""
    if found is None:
        raise SafedeployError(
            f"there is no ECS Express service {service} in cluster {cluster} ({region})",
            hint="check --service, --cluster and --region",
        )
    address = {
        "service": service,
        "platform": "ecs-express",
        "region": region,
        "cluster": None if cluster == "default" else cluster,
        "execution_role": found.execution_role,
        "infrastructure_role": found.infrastructure_role,
    }
    return manifest_text(found.arn, address, found.spec)


# -- Cloud Run ---------------------------------------------------------------------------------


class CloudRunService(Protocol):
    """What import reads of a Cloud Run service (the provider; importer sits below providers)."""

    project: str
    region: str
    service: str
    resource: str

    def read(self) -> LiveService: ...

    def managed_container(self) -> str | None: ...


def cloudrun_manifest(provider: CloudRunService) -> str:
    """The manifest of a live Cloud Run service: `import` then `plan` shows no changes."""
    live = provider.read()
    if live.spec is None:
        raise SafedeployError(
            f"{provider.resource} does not exist", hint="check --project, --region and --service"
        )
    address = {
        "service": provider.service,
        "platform": "cloudrun",
        "project": provider.project,
        "region": provider.region,
        "container": provider.managed_container(),
    }
    return manifest_text(provider.resource, address, live.spec)
