"""`safedeploy migrate`: an App Runner manifest and its live service become an ECS Express manifest.

What runs is carried over, not only what the manifest declares: a live variable or secret the
manifest keeps (`unmanaged: keep`), the start command, port, cpu, memory, instance role (as the
task role) and health check path. Every App Runner setting without an ECS Express counterpart is
listed, in the manifest's header and to the caller, instead of being dropped.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from safedeploy.errors import SafedeployError
from safedeploy.manifest import Manifest
from safedeploy.model import Platform
from safedeploy.redact import is_sensitive

Json = dict[str, Any]

# App Runner's words for cpu and memory, as ECS's units (App Runner describes units too).
_CPU = {"0.25 vCPU": "256", "0.5 vCPU": "512", "1 vCPU": "1024", "2 vCPU": "2048", "4 vCPU": "4096"}
_MEMORY = {f"{gb:g} GB": str(int(gb * 1024)) for gb in (0.5, 1, 2, 3, 4, 6, 8, 10, 12)}
# App Runner settings safedeploy manages -> the ECS Express setting and how a value carries over.
_SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "cpu": ("cpu", lambda v: _CPU.get(str(v), str(v))),
    "memory": ("memory", lambda v: _MEMORY.get(str(v), str(v))),
    "port": ("port", int),
    "instance_role": ("task_role", str),
}
# Manifest settings with no ECS Express counterpart, and what to do instead.
_NO_COUNTERPART = {
    "access_role": "the execution_role pulls the image from ECR: give it ECR read access",
    "egress": "ECS Express tasks reach out through the subnets of settings.network",
    "vpc_connector": "put the tasks in the connector's subnets: settings.network",
}
# Live App Runner settings with no ECS Express counterpart: where DescribeService has them, when
# one is worth a note, and what to do instead.
_LIVE_ONLY: tuple[tuple[tuple[str, ...], Callable[[Any], bool], str], ...] = (
    (
        ("SourceConfiguration", "AutoDeploymentsEnabled"),
        bool,
        "ECS Express deploys only when asked: deploy from CI",
    ),
    (
        ("NetworkConfiguration", "EgressConfiguration", "VpcConnectorArn"),
        bool,
        "ECS Express runs in settings.network's subnets: choose ones that reach the same hosts",
    ),
    (
        ("NetworkConfiguration", "IngressConfiguration", "IsPubliclyAccessible"),
        lambda public: public is False,
        "a private App Runner service: give ECS Express private subnets in settings.network",
    ),
    (
        ("ObservabilityConfiguration", "ObservabilityConfigurationArn"),
        bool,
        "tracing: add the ADOT collector to the task yourself",
    ),
    (("EncryptionConfiguration", "KmsKey"), bool, "ECS Express encrypts with AWS-owned keys"),
    (
        ("AutoScalingConfigurationSummary", "AutoScalingConfigurationArn"),
        bool,
        "scale on settings.scaling (min, max, metric, target), not on App Runner's concurrency",
    ),
    (
        ("HealthCheckConfiguration", "Interval"),
        bool,
        "the health check's interval, timeout and thresholds: ECS Express takes only its path",
    ),
)
_ROLES = {
    "execution_role": "ecsTaskExecutionRole",
    "infrastructure_role": "ecsInfrastructureRoleForExpressServices",
}


def ecs_express_manifest(
    manifest: Manifest, written: Json, live: Json | None, cluster: str
) -> tuple[str, list[str]]:
    """The ECS Express manifest, and what had no counterpart. `written` is the App Runner
    manifest as its YAML states it (templates unfilled); `live` its DescribeService Service."""
    if manifest.platform is not Platform.APPRUNNER:
        raise SafedeployError(
            f"migrate reads an App Runner manifest, not a {manifest.platform} one",
            where=str(manifest.path),
        )
    notes: list[str] = []
    document: Json = {k: v for k, v in written.items() if k not in ("settings", "probe_url")}
    document["platform"] = str(Platform.ECS_EXPRESS)
    if cluster != "default":
        document["cluster"] = cluster
    account = live["ServiceArn"].split(":")[4] if live else "ACCOUNT_ID"
    for key, role in _ROLES.items():
        document[key] = f"arn:aws:iam::{account}:role/{role}"
    if "probe_url" in written:
        notes.append("probe_url: it points at the App Runner service; probes follow the new one")
    settings = _settings(written.get("settings") or {}, notes)
    if live is not None:
        _carry_live(document, settings, live, manifest, notes)
    if settings:
        document["settings"] = settings
    for name, overlay in (written.get("environments") or {}).items():
        if isinstance(overlay, dict) and isinstance(overlay.get("settings"), dict):
            overlay["settings"] = _settings(overlay["settings"], notes, f"environments.{name}.")
    ordered = _ordered(document)
    header = "# Migrated from App Runner by `safedeploy migrate`; review it, then plan.\n"
    header += "# execution_role and infrastructure_role name the roles ECS's console creates.\n"
    header += "".join(f"# not migrated: {note}\n" for note in notes)
    return header + yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False), notes


def _settings(written: Mapping[str, Any], notes: list[str], prefix: str = "") -> Json:
    """App Runner's settings in ECS Express's words; the rest noted."""
    settings: Json = {}
    for key, value in written.items():
        if key in _SETTINGS:
            name, carry = _SETTINGS[key]
            settings[name] = carry(value)
        else:
            why = _NO_COUNTERPART.get(key, "ECS Express has no such setting")
            notes.append(f"{prefix}settings.{key}: {why}")
    return settings


def _carry_live(
    document: Json, settings: Json, live: Json, manifest: Manifest, notes: list[str]
) -> None:
    """What runs and the manifest leaves as it is: kept variables and secrets, the start
    command, instance settings and the health check path."""
    repository = live["SourceConfiguration"]["ImageRepository"]
    config = repository.get("ImageConfiguration", {})
    if manifest.unmanaged == "keep":
        declared = manifest.declared | set(manifest.remove)
        plain = {k: v for k, v in config.get("RuntimeEnvironmentVariables", {}).items()}
        for name, value in sorted(plain.items()):
            if name in declared:
                continue
            if is_sensitive(name, value):
                notes.append(
                    f"env.{name}: the live value looks like a credential; move it to Secrets "
                    "Manager and list it under secrets:"
                )
            else:
                document.setdefault("env", {})[name] = value.replace("${", "$${")
        kept = config.get("RuntimeEnvironmentSecrets", {})
        for name, arn in sorted(kept.items()):
            if name not in declared:
                document.setdefault("secrets", {})[name] = arn
    if config.get("StartCommand") and "command" not in document:
        document["command"] = shlex.split(config["StartCommand"])
    instance = live.get("InstanceConfiguration", {})
    for key, member in (("cpu", "Cpu"), ("memory", "Memory"), ("instance_role", "InstanceRoleArn")):
        name, carry = _SETTINGS[key]
        if member in instance and name not in settings:
            settings[name] = carry(instance[member])
    if "Port" in config and "port" not in settings:
        settings["port"] = int(config["Port"])
    health = live.get("HealthCheckConfiguration", {})
    if health.get("Protocol") == "HTTP" and health.get("Path"):
        settings.setdefault("health_check_path", health["Path"])
    elif health:
        notes.append(
            "a TCP health check: ECS Express checks HTTP on settings.health_check_path "
            "(default /ping); set it to a path that answers 200"
        )
    for path, worth_a_note, why in _LIVE_ONLY:
        if worth_a_note(_get(live, path)):
            notes.append(f"{'.'.join(path)}: {why}")


def _get(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


_ORDER = (
    "service",
    "platform",
    "region",
    "cluster",
    "image",
    "execution_role",
    "infrastructure_role",
)


def _ordered(document: Json) -> Json:
    """The keys people read first, first; the rest as the App Runner manifest had them."""
    first = {k: document[k] for k in _ORDER if k in document}
    return {**first, **{k: v for k, v in document.items() if k not in first}}
