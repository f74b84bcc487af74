"""App Runner's Service JSON and the neutral ServiceSpec, both ways.

Every UpdateService starts from the live configuration and changes only safedeploy's members
(image, variables, secrets, start command and the settings in SETTINGS); a block that would not
change is left out, so authentication, auto-deployments, health check, observability, auto
scaling and encryption are never re-sent with defaults.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from safedeploy.model import EnvValue, SecretRef, ServiceSpec
from safedeploy.redact import MASK, reveal

Json = dict[str, Any]

CPU = {"256": "0.25 vCPU", "512": "0.5 vCPU", "1024": "1 vCPU", "2048": "2 vCPU", "4096": "4 vCPU"}
MEMORY = {str(int(gb * 1024)): f"{gb:g} GB" for gb in (0.5, 1, 2, 3, 4, 6, 8, 10, 12)}
_UNITS = {words: units for forms in (CPU, MEMORY) for units, words in forms.items()}
PRIVATE_ECR = re.compile(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")
PUBLIC_ECR = "public.ecr.aws/"
_IMAGE_CONFIG = ("SourceConfiguration", "ImageRepository", "ImageConfiguration")
_BLOCKS = ("SourceConfiguration", "InstanceConfiguration", "NetworkConfiguration")


def _units(value: Any) -> Any:
    """Cpu and memory as the units App Runner describes ("1 vCPU" is "1024"); others as given."""
    return _UNITS.get(value, value) if isinstance(value, str) else value


def _port(described: Any) -> int | None:
    return int(described) if str(described).isdigit() else None


@dataclass(frozen=True)
class Setting:
    """Where App Runner keeps one manifest setting, and how its value reads and is sent."""

    path: tuple[str, ...]  # into a described Service
    read: Callable[[Any], Any] = lambda described: described  # as the manifest writes it
    send: Callable[[Any], Any] | None = _units  # as UpdateService takes it; None: see _egress


# The settings safedeploy manages on App Runner, in the order messages list them.
SETTINGS: Mapping[str, Setting] = {
    "cpu": Setting(("InstanceConfiguration", "Cpu"), lambda v: CPU.get(v, v)),
    "memory": Setting(("InstanceConfiguration", "Memory"), lambda v: MEMORY.get(v, v)),
    "port": Setting((*_IMAGE_CONFIG, "Port"), _port, str),
    "instance_role": Setting(("InstanceConfiguration", "InstanceRoleArn")),
    "access_role": Setting(("SourceConfiguration", "AuthenticationConfiguration", "AccessRoleArn")),
    "egress": Setting(("NetworkConfiguration", "EgressConfiguration", "EgressType"), send=None),
    "vpc_connector": Setting(
        ("NetworkConfiguration", "EgressConfiguration", "VpcConnectorArn"), send=None
    ),
}


def _get(service: Json, path: tuple[str, ...]) -> Any:
    value: Any = service
    for key in path:
        value = value.get(key, {}) if isinstance(value, dict) else {}
    return None if value == {} else value


def _put(blocks: Json, path: tuple[str, ...], value: Any) -> None:
    *parents, last = path
    for key in parents:
        blocks = blocks.setdefault(key, {})
    blocks[last] = value


def service_url(url: str) -> str:
    """Where probes go: App Runner's ServiceUrl has no scheme, and is served over HTTPS."""
    return url if "://" in url else f"https://{url}"


def spec(service: Json) -> ServiceSpec:
    """The part of a described service safedeploy manages, in the manifest's words."""
    repository = service["SourceConfiguration"]["ImageRepository"]
    config = repository.get("ImageConfiguration", {})
    env: dict[str, EnvValue] = dict(config.get("RuntimeEnvironmentVariables", {}))
    env.update({k: SecretRef(v) for k, v in config.get("RuntimeEnvironmentSecrets", {}).items()})
    settings = {key: setting.read(_get(service, setting.path)) for key, setting in SETTINGS.items()}
    return ServiceSpec(
        image=repository["ImageIdentifier"],
        command=tuple(shlex.split(config.get("StartCommand", ""))),
        env=env,
        settings={k: v for k, v in settings.items() if v is not None},
    )


def fingerprint(service: Json, operation: Json | None) -> str:
    """Every block with no variable value and no start command, and the latest operation's id.

    Every change to a service is an operation, so the id moves whenever anything does; the
    blocks tell an operation that App Runner rolled back from one that finished. No value
    goes in, sensitive or not: a digest of a low-entropy value is the value. UpdatedAt and
    Status are left out: an operation that merely finishes leaves the plan valid.
    """
    blocks = copy.deepcopy({k: v for k, v in service.items() if k not in ("Status", "UpdatedAt")})
    config = blocks["SourceConfiguration"]["ImageRepository"].get("ImageConfiguration", {})
    config["RuntimeEnvironmentVariables"] = sorted(config.get("RuntimeEnvironmentVariables", {}))
    config["StartCommand"] = MASK if config.get("StartCommand") else None
    canonical = json.dumps([blocks, (operation or {}).get("Id")], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def changes(live: Json, target: ServiceSpec) -> Json:
    """The blocks of an UpdateService (or CreateService, from {}) that make `live` `target`.

    Each block is the live one with only safedeploy's members changed, and a block that would
    not change is left out: what the manifest does not declare is never sent.
    """
    blocks = {name: copy.deepcopy(live.get(name, {})) for name in _BLOCKS}
    repository = blocks["SourceConfiguration"].setdefault("ImageRepository", {})
    if repository.get("ImageIdentifier") != target.image:
        repository["ImageIdentifier"] = target.image
        repository["ImageRepositoryType"] = (
            "ECR_PUBLIC" if (target.image or "").startswith(PUBLIC_ECR) else "ECR"
        )
    had_config = "ImageConfiguration" in repository
    config = repository.pop("ImageConfiguration", {})
    for member, values in (
        (
            "RuntimeEnvironmentVariables",
            {k: reveal(v) for k, v in target.env.items() if isinstance(v, str)},  # apply path
        ),
        (
            "RuntimeEnvironmentSecrets",
            {k: v.secret for k, v in target.env.items() if isinstance(v, SecretRef)},
        ),
    ):
        config.pop(member, None)
        if values:
            config[member] = values
    if target.command and tuple(shlex.split(config.get("StartCommand", ""))) != target.command:
        config["StartCommand"] = shlex.join(target.command)
    if config or had_config:
        repository["ImageConfiguration"] = config

    for key, value in target.settings.items():
        setting = SETTINGS.get(key)
        if setting and setting.send and _units(_get(live, setting.path)) != setting.send(value):
            _put(blocks, setting.path, setting.send(value))
    _egress(blocks["NetworkConfiguration"], target.settings)
    return {k: v for k, v in blocks.items() if v and v != live.get(k, {})}


def _egress(network: Json, settings: Mapping[str, Any]) -> None:
    """The egress block is sent whole: the connector only with VPC egress, dropped otherwise."""
    if "egress" in settings:
        egress = {"EgressType": settings["egress"]}
        if settings["egress"] == "VPC" and settings.get("vpc_connector"):
            egress["VpcConnectorArn"] = settings["vpc_connector"]
        network["EgressConfiguration"] = egress
