"""What preflight finds before any call that changes something: values ECS Express cannot take
and secrets that do not exist. Each is a Fact: the core gives it a code and a severity.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from safedeploy.facts import Fact, Problem
from safedeploy.model import ServiceSpec
from safedeploy.providers.ecs_express.mapping import SETTINGS

CPU = ("256", "512", "1024", "2048", "4096", "8192", "16384")  # Fargate's CPU units
ARCHITECTURES = ("X86_64", "ARM64")
METRICS = ("AVERAGE_CPU", "AVERAGE_MEMORY", "REQUEST_COUNT_PER_TARGET")
EXECUTION_ROLE = "executionRoleArn"
INFRASTRUCTURE_ROLE = "infrastructureRoleArn"
# What a create needs that an update keeps: the API's member -> the manifest's key, what it is.
_ROLES = {
    EXECUTION_ROLE: ("execution_role", "ecsTaskExecutionRole", "pulls the image and reads secrets"),
    INFRASTRUCTURE_ROLE: (
        "infrastructure_role",
        "ecsInfrastructureRoleForExpressServices",
        "lets ECS manage the load balancer, scaling and networking",
    ),
}


def settings(target: ServiceSpec) -> Iterator[Fact]:
    """What ECS Express cannot take as written, caught before any call."""
    values = target.settings
    for key in sorted(set(values) - set(SETTINGS)):
        message = f"settings.{key} has no ECS Express counterpart that safedeploy manages"
        yield Fact(
            Problem.UNSUPPORTED,
            f"settings.{key}",
            message,
            "ECS Express takes: " + ", ".join(SETTINGS),
        )
    for key, allowed, written in (
        ("cpu", CPU, "CPU units"),
        ("cpu_architecture", ARCHITECTURES, "an architecture"),
    ):
        value = values.get(key)
        if value is not None and str(value) not in allowed:
            message = f"settings.{key} {value!r} is not one of ECS Express's {written}"
            yield Fact(
                Problem.UNSUPPORTED,
                f"settings.{key}",
                message,
                f"write one of {', '.join(allowed)}",
            )
    memory = values.get("memory")
    if memory is not None and not str(memory).isdigit():
        message = f"settings.memory {memory!r} is not a number of MiB, as ECS describes it"
        yield Fact(
            Problem.UNSUPPORTED, "settings.memory", message, 'write MiB, e.g. "2048" for 2 GB'
        )
    path = values.get("health_check_path")
    if path is not None and not str(path).startswith("/"):
        message = f"settings.health_check_path {path!r} does not start with /"
        yield Fact(Problem.UNSUPPORTED, "settings.health_check_path", message, f"write /{path}")
    metric = (values.get("scaling") or {}).get("metric")
    if metric is not None and metric not in METRICS:
        message = f"settings.scaling.metric {metric!r} is not a metric ECS Express scales on"
        yield Fact(
            Problem.UNSUPPORTED, "settings.scaling", message, f"write one of {', '.join(METRICS)}"
        )


def roles(given: Mapping[str, str | None]) -> Iterator[Fact]:
    """A create needs both roles; an update keeps the live ones."""
    for member, (key, example, does) in _ROLES.items():
        if not given.get(member):
            message = f"creating an ECS Express service needs {key} (the role that {does})"
            remedy = f"set {key}: arn:aws:iam::ACCOUNT_ID:role/{example}"
            yield Fact(Problem.UNSUPPORTED, key, message, remedy)
