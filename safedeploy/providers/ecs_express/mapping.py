"""ECS Express's service configuration and the neutral ServiceSpec, both ways.

An update that carries `primaryContainer` replaces the container whole, so the container sent is
always the live one with only safedeploy's members changed (image, variables, secrets, command,
port): log configuration, repository credentials and whatever else it holds stay as they are.
Every other member of an update replaces its live block too, and is sent only when it changes.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from safedeploy.model import EnvValue, SecretRef, ServiceSpec
from safedeploy.redact import reveal

Json = dict[str, Any]

CONTAINER = "primaryContainer"


@dataclass(frozen=True)
class Setting:
    """Where ECS Express keeps one manifest setting: a member of the configuration (or of the
    container), and for a block the manifest's name of each of its fields."""

    member: str
    fields: Mapping[str, str] = field(default_factory=dict)  # manifest name -> API name
    in_container: bool = False

    def read(self, config: Json) -> Any:
        """The live value, as the manifest writes it; None when ECS describes none."""
        value = (config.get(CONTAINER, {}) if self.in_container else config).get(self.member)
        if not self.fields or value is None:
            return value
        return {name: value[api] for name, api in self.fields.items() if api in value} or None

    def send(self, value: Any) -> Any:
        """The value as the API takes it: a block is sent whole, as the manifest states it."""
        if not self.fields:
            return value
        return {api: value[name] for name, api in self.fields.items() if name in value}


# The settings safedeploy manages on ECS Express, in the order messages list them.
SETTINGS: Mapping[str, Setting] = {
    "cpu": Setting("cpu"),
    "memory": Setting("memory"),
    "cpu_architecture": Setting("cpuArchitecture"),
    "port": Setting("containerPort", in_container=True),
    "task_role": Setting("taskRoleArn"),
    "health_check_path": Setting("healthCheckPath"),
    "scaling": Setting(
        "scalingTarget",
        {
            "min": "minTaskCount",
            "max": "maxTaskCount",
            "metric": "autoScalingMetric",
            "target": "autoScalingTargetValue",
        },
    ),
    "network": Setting(
        "networkConfiguration", {"subnets": "subnets", "security_groups": "securityGroups"}
    ),
}


def spec(config: Json) -> ServiceSpec:
    """The part of a described configuration safedeploy manages, in the manifest's words."""
    container = config[CONTAINER]
    env: dict[str, EnvValue] = {
        e["name"]: e.get("value", "") for e in container.get("environment", [])
    }
    env.update({s["name"]: SecretRef(s["valueFrom"]) for s in container.get("secrets", [])})
    settings = {key: setting.read(config) for key, setting in SETTINGS.items()}
    return ServiceSpec(
        image=container["image"],
        command=tuple(container.get("command", [])),
        env=env,
        settings={k: v for k, v in settings.items() if v is not None},
    )


def endpoint(config: Json) -> str | None:
    """Where probes go: the public ingress path's endpoint, served over HTTPS; the API may give
    it with or without a scheme."""
    paths = sorted(config.get("ingressPaths", []), key=lambda p: p.get("accessType") != "PUBLIC")
    if not paths:
        return None
    url = str(paths[0]["endpoint"])
    return url if "://" in url else f"https://{url}"


def fingerprint(service: Json) -> str:
    """The revision ECS means to run and its current deployment, and nothing of any value.

    Every update makes a new service revision and a new deployment, and a rollback by ECS sets
    the revision back, so these two move whenever the configuration does; no variable value
    goes in, sensitive or not. A deployment that merely goes on or finishes leaves it as it is.
    """
    configs = service.get("activeConfigurations", [])
    moved = {
        "revision": configs[0]["serviceRevisionArn"] if configs else None,
        "deployment": service.get("currentDeployment"),
    }
    return hashlib.sha256(json.dumps(moved, sort_keys=True).encode()).hexdigest()[:16]


def container(live: Json, target: ServiceSpec) -> Json:
    """The live container with the target's image, variables, secrets, command and port.

    Kept variables keep their place; new ones follow in name order.
    """
    sent = copy.deepcopy(live)
    if target.image:
        sent["image"] = target.image
    plain = {k: reveal(v) for k, v in target.env.items() if isinstance(v, str)}  # apply path
    secrets = {k: v.secret for k, v in target.env.items() if isinstance(v, SecretRef)}
    for member, values, key in (("environment", plain, "value"), ("secrets", secrets, "valueFrom")):
        order = [e["name"] for e in live.get(member, []) if e["name"] in values]
        order += sorted(set(values) - set(order))
        sent.pop(member, None)
        if order:
            sent[member] = [{"name": name, key: values[name]} for name in order]
    if target.command:
        sent["command"] = list(target.command)
    port = target.settings.get("port")
    if port is not None:
        sent["containerPort"] = int(port)
    return sent


def changes(live: Json, target: ServiceSpec) -> Json:
    """The members of an update from the live configuration `live` (empty for a create) to
    `target`; a member that would not change is left out."""
    request: Json = {}
    sent = container(live.get(CONTAINER, {}), target)
    if sent != live.get(CONTAINER):
        request[CONTAINER] = sent
    for key, value in target.settings.items():
        setting = SETTINGS.get(key)
        if setting is None or setting.in_container or value is None:
            continue
        if setting.send(value) != live.get(setting.member):
            request[setting.member] = setting.send(value)
    return request
