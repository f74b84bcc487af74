"""`aws apprunner create-service` and `update-service`: each option the way App Runner takes it."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from typing import Any, TypeVar

from safedeploy.convert.draft import Draft, Script
from safedeploy.convert.shell import SUBST, Flags, literal_text, whole

T = TypeVar("T")
Text = Callable[[str, str], str]  # (text, key) -> manifest text

VERBS = (["apprunner", "update-service"], ["apprunner", "create-service"])
_SERVICE_ARN = re.compile(r"arn:[\w-]+:apprunner:(?P<region>[\w-]+):\d*:service/(?P<name>[^/]+)/.*")
_INSTANCE: dict[tuple[str, ...], str] = {
    ("Cpu",): "cpu",
    ("Memory",): "memory",
    ("InstanceRoleArn",): "instance_role",
}
_NETWORK: dict[tuple[str, ...], str] = {
    ("EgressConfiguration", "EgressType"): "egress",
    ("EgressConfiguration", "VpcConnectorArn"): "vpc_connector",
}


def read(script: Script, line: int, flags: Flags) -> Draft:
    """Fold one `aws apprunner` command into its service's draft; what it cannot carry is listed."""
    shell = script.shell
    given = {flag: value for flag, value in flags if value is not None}
    arn = _SERVICE_ARN.fullmatch(given.get("--service-arn", ""))
    name = given.get("--service-name") or (arn["name"] if arn else None)
    region = given.get("--region") or (arn["region"] if arn else None)
    draft = script.draft(
        line,
        "apprunner",
        shell.text(name, "SERVICE") if name else "${SERVICE}",
        None,
        shell.text(region, "REGION") if region else None,
    )
    for flag, value in flags:
        if not _flag(script, draft, flag, value, known_arn=arn is not None):
            draft.not_understood(shell.shown(value, flag))
    return draft


def _flag(script: Script, draft: Draft, flag: str, value: str | None, known_arn: bool) -> bool:
    """Apply one flag to the draft; False when the manifest has no way to say it."""
    match flag, value:
        case ("--service-name" | "--region", str()):
            pass  # read before the draft was chosen
        case ("--service-arn", str()):
            return known_arn
        case ("--source-configuration", str()):
            _source(script, draft, value)
        case ("--instance-configuration", str()):
            _configuration(script, draft, flag, value, _INSTANCE)
        case ("--network-configuration", str()):
            _configuration(script, draft, flag, value, _NETWORK)
        case ("--profile", str()):
            draft.note(
                f"--profile {value}: safedeploy uses boto3's credential chain, "
                f"so export AWS_PROFILE={value}"
            )
        case ("--output" | "--query" | "--color", str()) | ("--debug" | "--no-cli-pager", None):
            pass  # how the AWS CLI talks, not what it deploys
        case _:
            return False
    return True


def _source(script: Script, draft: Draft, value: str) -> None:
    """--source-configuration: the image, and an ImageConfiguration that replaces it whole."""
    flag = "--source-configuration"
    read = _json(script, draft, flag, value)
    if read is None:
        return
    data, text, origin = read
    image = _pop(data, ("ImageRepository", "ImageIdentifier"), str)
    if image is not None:
        draft.image = text(image, "IMAGE")
    _pop(data, ("ImageRepository", "ImageRepositoryType"), str)  # follows from the image
    repository = data.get("ImageRepository")
    config = repository.get("ImageConfiguration") if isinstance(repository, dict) else None
    if isinstance(config, dict):
        _image_configuration(draft, config, text, origin)
    for path in _leaves(data):
        draft.not_understood(f"{flag} {path}")


def _image_configuration(draft: Draft, config: dict[str, Any], text: Text, origin: str) -> None:
    """Variables, secrets, port and start command: what App Runner replaces all at once."""
    draft.replace_env("ImageConfiguration (in --source-configuration)")
    draft.secrets.clear()
    variables = _pop(config, ("RuntimeEnvironmentVariables",), dict) or {}
    for name, raw in variables.items():
        if isinstance(raw, str):
            draft.set_env(name, text(raw, name), origin)
        else:
            draft.not_understood(f"--source-configuration RuntimeEnvironmentVariables.{name}")
    secrets = _pop(config, ("RuntimeEnvironmentSecrets",), dict) or {}
    for name, arn in secrets.items():
        if isinstance(arn, str):
            draft.set_secret(name, text(arn, name), "latest")
        else:
            draft.not_understood(f"--source-configuration RuntimeEnvironmentSecrets.{name}")
    port = _pop(config, ("Port",), str)
    if port is not None:
        number = whole(text(port, "port"))
        draft.settings["port"] = text(port, "port") if number is None else number
    command = _pop(config, ("StartCommand",), str)
    try:
        draft.command = shlex.split(text(command, "command")) if command else draft.command
    except ValueError:
        draft.not_understood("--source-configuration StartCommand: unbalanced quotes")


def _configuration(
    script: Script, draft: Draft, flag: str, value: str, members: dict[tuple[str, ...], str]
) -> None:
    """--instance-configuration, --network-configuration: a setting per member it knows."""
    read = _json(script, draft, flag, value)
    if read is None:
        return
    data, text, _ = read
    for path, key in members.items():
        found = _pop(data, path, str)
        if found is not None:
            draft.settings[key] = text(found, key)
    for leaf in _leaves(data):
        draft.not_understood(f"{flag} {leaf}")


def _json(
    script: Script, draft: Draft, flag: str, value: str
) -> tuple[dict[str, Any], Text, str] | None:
    """A flag's JSON object, inline or `file://`; how to read its strings (as shell text when
    inline, literally from a file); where it came from. None, listed, when unreadable."""
    read: Text = script.shell.text
    text, origin = value, "the script"
    if value.startswith("file://"):
        if SUBST in value or "$" in value:
            draft.not_understood(f"{flag}: the file is only known when the script runs")
            return None
        path = script.base_dir / script.shell.raw(value).removeprefix("file://")
        try:
            text, read, origin = path.read_text(encoding="utf-8"), literal_text, path.name
        except (OSError, UnicodeDecodeError) as exc:
            draft.not_understood(f"{flag}: cannot read {path.name} ({type(exc).__name__})")
            return None
    try:
        data = json.loads(text, strict=False)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        draft.not_understood(f"{flag}: not a JSON object (the CLI's shorthand is not read)")
        return None
    return data, read, origin


def _pop(data: dict[str, Any], path: tuple[str, ...], kind: type[T]) -> T | None:
    """Remove and return the member at path if it has the expected type; else it stays, listed."""
    parent: Any = data
    for part in path[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if isinstance(parent, dict) and isinstance(parent.get(path[-1]), kind):
        found: T = parent.pop(path[-1])
        return found
    return None


def _leaves(data: Any, prefix: str = "") -> list[str]:
    """The dotted paths of what is left in a JSON object: what the manifest did not take."""
    if not isinstance(data, dict):
        return [prefix]
    return [
        leaf
        for key, value in data.items()
        for leaf in _leaves(value, f"{prefix}.{key}" if prefix else key)
    ]
