"""`aws apprunner create-service` and `update-service`: each option read as the AWS CLI reads it
(JSON, its shorthand, or `file://`), carried where the manifest has a key for it, and every field
it has none for listed by its path."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from safedeploy.convert.draft import Draft, Script
from safedeploy.convert.shell import DOLLAR, SHELL, SUBST, Flags, hidden, whole
from safedeploy.convert.shorthand import looks_like_json, parse
from safedeploy.redact import MASK

T = TypeVar("T")

VERBS = (["apprunner", "update-service"], ["apprunner", "create-service"])
LISTS = frozenset({"--tags"})  # list options: the CLI takes every word up to the next option
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
# What App Runner takes that no manifest key manages: read all the same, each field listed.
_UNMANAGED = frozenset(
    {
        "--health-check-configuration",
        "--observability-configuration",
        "--encryption-configuration",
        "--tags",
    }
)
# Cpu and memory in the words App Runner describes them with, which the manifest uses.
_WORDS = {
    "cpu": {str(int(n * 1024)): f"{n:g} vCPU" for n in (0.25, 0.5, 1, 2, 4)},
    "memory": {str(int(gb * 1024)): f"{gb:g} GB" for gb in (0.5, 1, 2, 3, 4, 6, 8, 10, 12)},
}
# While shorthand is parsed, each shell expansion, and each private-use character already there,
# is held aside as one private-use character; afterwards each is put back.
_HELD = re.compile("[\ue000-\uf8ff]")
_TO_HOLD = re.compile(f"{SHELL.pattern}|{_HELD.pattern}")


class _Unreadable(Exception):
    """A value convert cannot read: said in the list of what was not converted, never a crash."""


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
    items = 0  # of the list options, each word one item
    for flag, value in flags:
        where = ""
        if flag in LISTS:
            where, items = f"[{items}]", items + 1
        if not _flag(script, draft, flag, value, where, known_arn=arn is not None):
            draft.not_understood(shell.shown(value, flag))
    return draft


def _flag(
    script: Script, draft: Draft, flag: str, value: str | None, where: str, known_arn: bool
) -> bool:
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
        case (name, str()) if name in _UNMANAGED:
            read = _structure(script, draft, flag, value)
            if read is not None:
                _list_left(script, draft, flag, read[0], "" if isinstance(read[0], list) else where)
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
    read = _structure(script, draft, flag, value)
    if read is None:
        return
    data, origin = read
    if isinstance(data, dict):
        image = _pop(data, ("ImageRepository", "ImageIdentifier"), str)
        if image is not None:
            draft.image = script.shell.text(image, "IMAGE")
        _pop(data, ("ImageRepository", "ImageRepositoryType"), str)  # follows from the image
        role = _pop(data, ("AuthenticationConfiguration", "AccessRoleArn"), str)
        if role is not None:
            draft.settings["access_role"] = script.shell.text(role, "access_role")
        repository = data.get("ImageRepository")
        config = repository.get("ImageConfiguration") if isinstance(repository, dict) else None
        if isinstance(config, dict):
            _image_configuration(script, draft, config, origin)
    _list_left(script, draft, flag, data)


def _image_configuration(script: Script, draft: Draft, config: dict[str, Any], origin: str) -> None:
    """Variables, secrets, port and start command: what App Runner replaces all at once. What
    is carried is taken out of `config`; what stays is listed."""
    text = script.shell.text
    what = "ImageConfiguration (in --source-configuration)"
    draft.replace_env(what)
    draft.replace_secrets(what)
    variables = config.get("RuntimeEnvironmentVariables")
    if isinstance(variables, dict):
        for name, raw in list(variables.items()):
            if isinstance(raw, str):
                del variables[name]
                draft.set_env(name, text(raw, name), origin)
    secrets = config.get("RuntimeEnvironmentSecrets")
    if isinstance(secrets, dict):
        for name, arn in list(secrets.items()):
            if isinstance(arn, str):
                del secrets[name]
                draft.set_secret(name, text(arn, name), "latest")
    port = _pop(config, ("Port",), str)
    if port is not None:
        number = whole(text(port, "port"))
        draft.settings["port"] = text(port, "port") if number is None else number
    command = config.get("StartCommand")
    if isinstance(command, str) and not hidden(script.shell.raw(command), "StartCommand"):
        try:
            draft.command = shlex.split(text(command, "command")) or draft.command
            del config["StartCommand"]
        except ValueError:
            pass  # unbalanced quotes: listed as it is


def _configuration(
    script: Script, draft: Draft, flag: str, value: str, members: dict[tuple[str, ...], str]
) -> None:
    """--instance-configuration, --network-configuration: a setting per member it knows."""
    read = _structure(script, draft, flag, value)
    if read is None:
        return
    data = read[0]
    if isinstance(data, dict):
        for path, key in members.items():
            found = _pop(data, path, str)
            if found is not None:
                written = script.shell.text(found, key)
                draft.settings[key] = _WORDS.get(key, {}).get(written, written)
    _list_left(script, draft, flag, data)


def _list_left(script: Script, draft: Draft, flag: str, data: Any, where: str = "") -> None:
    """Each field the manifest did not take, by its path, its value shown unless it may be a
    credential: never a field dropped without a word."""
    for path, value in _leaves(data, where):
        text = script.shell.raw(value) if isinstance(value, str) else json.dumps(value)
        shown = MASK if hidden(text, path.rpartition(".")[2]) else text
        draft.not_understood(f"{flag}{'' if path.startswith('[') else ' '}{path}={shown}")


# --- reading a value as the AWS CLI does ---


def _structure(script: Script, draft: Draft, flag: str, value: str) -> tuple[Any, str] | None:
    """An option's value as the AWS CLI reads it: a whole `file://` replaced by the file's text,
    then JSON when it starts with `{` or `[`, else shorthand; and where it came from. Strings
    stay shell text, a file's with every `$` literal. None, listed, when it cannot be read."""
    origin = "the script"
    try:
        if value.startswith(("file://", "fileb://")):
            origin = script.shell.raw(value).rpartition("/")[2]
            value = _file(script, value)
        if looks_like_json(value):
            return json.loads(value, strict=False), origin
        return _shorthand(script, value), origin
    except _Unreadable as exc:
        draft.not_understood(f"{flag}: {exc}")
    except json.JSONDecodeError as exc:
        draft.not_understood(f"{flag}: not valid JSON ({exc.msg} at character {exc.pos + 1})")
    except ValueError as exc:
        draft.not_understood(f"{flag}: not the AWS CLI's shorthand ({exc})")
    return None


def _shorthand(script: Script, value: str) -> dict[str, Any]:
    """Shorthand as the CLI would parse it once the shell has expanded the word: each `$NAME`,
    `${...}` or `$(...)` is read as one opaque value and put back afterwards."""
    held: list[str] = []

    def hold(match: re.Match[str]) -> str:
        if len(held) > 0xF8FF - 0xE000:
            raise _Unreadable("too many shell expansions to read")
        held.append(match[0])
        return chr(0xE000 + len(held) - 1)

    def put_back(text: str) -> str:
        return _HELD.sub(lambda m: held[ord(m[0]) - 0xE000], text)

    masked = _TO_HOLD.sub(hold, value)
    if held and not _HELD.sub("", masked).strip():
        raise _Unreadable("the value is only known when the script runs")

    def paramfile(text: str) -> str | None:
        if not text.startswith(("file://", "fileb://")):
            return None
        return _HELD.sub(hold, _file(script, put_back(text)))

    return {key: _mapped(value, put_back) for key, value in parse(masked, paramfile).items()}


def _file(script: Script, reference: str) -> str:
    """The text of a `file://` the script names, read beside the script; every `$` literal."""
    if SUBST in reference or "$" in reference:
        raise _Unreadable(f"{script.shell.shown(reference)} is only known when the script runs")
    name = script.shell.raw(reference)
    if name.startswith("fileb://"):
        raise _Unreadable(f"{name} is read as bytes, which a manifest cannot hold")
    path = script.base_dir / name.removeprefix("file://")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Unreadable(f"cannot read {path.name} ({type(exc).__name__})") from None
    if SUBST in text:
        raise _Unreadable(f"{path.name} is not text")
    return text.replace("$", DOLLAR)


def _mapped(data: Any, change: Callable[[str], str]) -> Any:
    """data with `change` applied to every string in it."""
    if isinstance(data, dict):
        return {key: _mapped(value, change) for key, value in data.items()}
    if isinstance(data, list):
        return [_mapped(value, change) for value in data]
    return change(data) if isinstance(data, str) else data


def _pop(data: dict[str, Any], path: tuple[str, ...], kind: type[T]) -> T | None:
    """Remove and return the member at path if it has the expected type; else it stays, listed."""
    parent: Any = data
    for part in path[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if isinstance(parent, dict) and isinstance(parent.get(path[-1]), kind):
        found: T = parent.pop(path[-1])
        return found
    return None


def _leaves(data: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every scalar left: `Path`, `EgressConfiguration.EgressType`, `[0].Key`."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, f"{path}.{key}" if path else key)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _leaves(value, f"{path}[{index}]")
    else:
        yield path, data
