"""What preflight finds before any call that changes something: values App Runner cannot take,
secrets that do not exist or that nothing can read, hosts VPC egress cannot reach.

Each is a Fact: the core gives it a code and a severity, and words a kept variable's problem.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

from safedeploy.aws import secret_facts
from safedeploy.facts import Fact, Problem
from safedeploy.model import SecretRef, ServiceSpec
from safedeploy.providers.apprunner.mapping import CPU, MEMORY, PRIVATE_ECR, PUBLIC_ECR, SETTINGS
from safedeploy.redact import is_sensitive

_HTTPS_HOST = re.compile(r"https://(?:[^/@\s]*@)?([^/:?#\s]+)", re.IGNORECASE)
_PRIVATE_SUFFIXES = (".internal", ".local", ".localhost", ".lan")


def settings(target: ServiceSpec, exists: bool) -> Iterator[Fact]:
    """What App Runner cannot take as written, caught before any call."""
    values, image = target.settings, target.image or ""
    for key in sorted(set(values) - set(SETTINGS)):
        message = f"settings.{key} has no App Runner counterpart that safedeploy manages"
        remedy = "App Runner takes: " + ", ".join(SETTINGS)
        yield Fact(Problem.UNSUPPORTED, f"settings.{key}", message, remedy)
    for key, forms, unit in (("cpu", CPU, "vCPU"), ("memory", MEMORY, "GB")):
        value = values.get(key)
        if value is not None and value not in forms.values():
            written = forms.get(str(value), f"{value} {unit}")
            if written not in forms.values():
                written = f"one of {', '.join(forms.values())}"
            message = f"settings.{key} {value!r} is not how App Runner describes it"
            remedy = f"write {written!r}, so that plans compare like with like"
            yield Fact(Problem.UNSUPPORTED, f"settings.{key}", message, remedy)
    egress, connector = values.get("egress"), values.get("vpc_connector")
    if egress not in (None, "DEFAULT", "VPC") or (egress == "VPC") != bool(connector):
        message = f"egress {egress!r} with{'' if connector else 'out'} a VPC connector"
        remedy = "write egress: VPC with settings.vpc_connector, or egress: DEFAULT without"
        yield Fact(Problem.UNSUPPORTED, "settings.egress", message, remedy)
    if not (image.startswith(PUBLIC_ECR) or PRIVATE_ECR.match(image)):
        message = "App Runner runs images from Amazon ECR or ECR Public only"
        yield Fact(Problem.UNSUPPORTED, "image", message, "push the image to one of them")
    elif not exists and PRIVATE_ECR.match(image) and not values.get("access_role"):
        message = "a new service from private ECR needs a role App Runner pulls the image with"
        remedy = "set settings.access_role (an IAM role App Runner's build service may assume)"
        yield Fact(Problem.UNSUPPORTED, "image", message, remedy)


def secrets(target: ServiceSpec, secret_exists: Callable[[str], bool]) -> Iterator[Fact]:
    """Each secret exists and takes no version; an instance role is there to read them."""
    yield from secret_facts(target, secret_exists, "App Runner")
    refs = [name for name, value in sorted(target.env.items()) if isinstance(value, SecretRef)]
    if refs and not target.settings.get("instance_role"):
        message = f"{', '.join(refs)} reference secrets, but no instance role can read them"
        remedy = "set settings.instance_role to a role that may read those secrets"
        yield Fact(Problem.NOT_GRANTED, "settings.instance_role", message, remedy)


def egress(target: ServiceSpec) -> Iterator[Fact]:
    """With VPC egress, public hosts are out of reach unless the VPC has a NAT gateway.

    The Twilio incident: SMS calls timed out after egress moved to a VPC without one.
    """
    if target.settings.get("egress") != "VPC":
        return
    for name, value in sorted(target.env.items()):
        hosts = (
            [h for h in _HTTPS_HOST.findall(value) if _public(h)] if isinstance(value, str) else []
        )
        if hosts:
            shown_hosts = "" if is_sensitive(name, value) else f" ({', '.join(hosts)})"
            message = f"{name} points at a public https host{shown_hosts}, but egress is VPC"
            remedy = (
                "VPC egress reaches the internet only through a NAT gateway: give the VPC one, "
                "or use egress: DEFAULT"
            )
            yield Fact(Problem.UNREACHABLE, f"env.{name}", message, remedy)


def _public(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return "." in host and not host.lower().endswith(_PRIVATE_SUFFIXES)
