"""`safedeploy convert`: one manifest per service, from the deploy commands of a shell script.

Retiring `deploy-prod.sh` must not mean re-typing forty variables, nor copying a pasted password
into a manifest: a value that looks like a credential becomes a `secrets:` entry to fill in, and
never appears in the output.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from safedeploy.errors import SafedeployError, location
from safedeploy.redact import MASK, is_sensitive_name, looks_like_credential

T = TypeVar("T")

_SUBST = "\x00"  # `\x00N\x00` stands for the script's N-th `$(...)` or backquoted command
_DOLLAR = "\x01"  # a `$` the shell leaves alone: in single quotes, or written `\$`
_BREAKS = "\n;&|()"  # what ends a simple command, outside quotes
_PUBLIC_MARKERS = ("PUBLIC", "PUBLISHABLE")  # names public by design, as lint's SD104 has it

# Shell text -> manifest text: a substitution, ${...}, $NAME or $1, or a `$` to keep literal.
_SHELL = re.compile(
    r"\x00(?P<subst>\d+)\x00"
    r"|\$\{(?P<braced>[^}]*)\}"
    r"|\$(?P<name>[A-Za-z_][A-Za-z0-9_]*|[0-9])"
    r"|[\x01$](?P<brace>\{)?"
)
_BRACED = re.compile(r"[#!]?(?P<name>[A-Za-z_][A-Za-z0-9_]*|[0-9]+)(?P<rest>.*)", re.DOTALL)
_PLACEHOLDER = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ASSIGNED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_REDIRECT = re.compile(r"(?:[0-9]*|&)(?:>>?|<)&?(?P<target>.*)", re.DOTALL)
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s?)?")
_SERVICE_ARN = re.compile(r"arn:[\w-]+:apprunner:(?P<region>[\w-]+):\d*:service/(?P<name>[^/]+)/.*")

_GCLOUD_VERBS = (["run", "deploy"], ["run", "services", "update"])
_APPRUNNER_VERBS = (["apprunner", "update-service"], ["apprunner", "create-service"])
# Flags that take no value (besides --no-* and --clear-*): the word after one is not its value.
_SWITCHES = frozenset(
    {
        "-q",
        "--quiet",
        "--async",
        "--debug",
        "--allow-unauthenticated",
        "--cpu-boost",
        "--cpu-throttling",
        "--default-url",
        "--invoker-iam-check",
        "--session-affinity",
        "--use-http2",
    }
)
_GCLOUD_TEXT = {
    "--cpu": "cpu",
    "--memory": "memory",
    "--service-account": "service_account",
    "--vpc-connector": "vpc_connector",
    "--ingress": "ingress",
}
_GCLOUD_NUMBERS = {
    "--concurrency": "concurrency",
    "--min-instances": "min_instances",
    "--max-instances": "max_instances",
    "--port": "port",
}
_DEFAULTS = {  # placeholders for what a script leaves to the tool's defaults or to the live service
    "project": ("${CLOUDSDK_CORE_PROJECT}", "gcloud's default project: the script names none"),
    "cloudrun region": ("${CLOUDSDK_RUN_REGION}", "gcloud's default region: the script names none"),
    "apprunner region": ("${AWS_REGION}", "the AWS CLI's default region: the script names none"),
    "image": ("${IMAGE}", "the script names no image: pass the one to deploy"),
}


@dataclass(frozen=True)
class ConvertedManifest:
    """One service's manifest as YAML text, and what the script said that it could not carry."""

    service: str
    platform: str
    filename: str  # SERVICE.yaml, unique within one script
    yaml: str
    not_understood: tuple[str, ...]  # e.g. "--no-cpu-throttling (line 9)", values masked


def convert_script(text: str, base_dir: Path, source: str = "stdin") -> list[ConvertedManifest]:
    """The manifests of every `gcloud run deploy | services update` and `aws apprunner
    create-service | update-service` in a script; the files it names are read from base_dir."""
    commands, substitutions = _split(text.replace("\r\n", "\n"), source)
    reader = _Reader(base_dir, substitutions)
    for line, command in commands:
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise SafedeployError(
                f"cannot read this command: {exc}", where=location(source, line)
            ) from None
        reader.read(line, _without_redirections(words))
    taken: set[str] = set()
    return [
        ConvertedManifest(
            service=draft.service,
            platform=draft.platform,
            filename=_filename(draft.service, taken),
            yaml=_render(draft, source),
            not_understood=tuple(draft.unknown),
        )
        for draft in reader.drafts
    ]


def convert_file(script: Path) -> list[ConvertedManifest]:
    """convert_script on a file, or on stdin for `-`; finding no deploy command is an error."""
    stdin = str(script) == "-"
    try:
        text = sys.stdin.read() if stdin else script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SafedeployError(f"cannot read the script: {exc}", where=str(script)) from None
    source = "stdin" if stdin else str(script)
    manifests = convert_script(text, Path.cwd() if stdin else script.parent, source)
    if not manifests:
        raise SafedeployError(
            "no deploy command found",
            where=source,
            hint="convert reads `gcloud run deploy`, `gcloud run services update` and "
            "`aws apprunner create-service` / `update-service` commands",
        )
    return manifests


def write_manifests(manifests: list[ConvertedManifest], out_dir: Path) -> list[Path]:
    """Write each as OUT_DIR/SERVICE.yaml; an existing file is an error, so no hand edit is lost."""
    paths = [out_dir / m.filename for m in manifests]
    existing = [p for p in paths if p.exists()]
    if existing:
        raise SafedeployError(
            f"{existing[0]} exists; nothing was written",
            hint="move it away, or convert into another --out-dir",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, manifest in zip(paths, manifests, strict=True):
        path.write_text(manifest.yaml, encoding="utf-8")
    return paths


# --- reading the script ---


def _split(text: str, source: str) -> tuple[list[tuple[int, str]], list[str]]:
    """The script's simple commands as (line, text), and its command substitutions set aside.

    shlex tokenizes one command well, but knows neither where a command ends, nor `$(...)`, nor
    that `#` starts a comment only at the start of a word; this pass does that much. It also
    marks each `$` the shell leaves alone, since shlex's output no longer tells.
    """
    commands: list[tuple[int, str]] = []
    substitutions: list[str] = []
    chars: list[str] = []
    line = start = opened = 1
    in_double = False
    i = 0

    def keep(chunk: str) -> None:
        nonlocal start
        if not chars and chunk.isspace():
            return
        start = start if chars else line
        chars.append(chunk)

    while i < len(text):
        char = text[i]
        if char == "'" and not in_double:
            end = text.find("'", i + 1)
            if end < 0:
                raise _unclosed(source, line)
            keep(text[i : end + 1].replace("$", _DOLLAR))
            line += text.count("\n", i, end)
            i = end + 1
            continue
        if char == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped == "\n":  # a line continuation
                line += 1
            else:  # shlex drops the backslash where the shell does
                keep(_DOLLAR if escaped == "$" else char + escaped)
            i += 2
            continue
        if text.startswith("$(", i) or char == "`":
            end = _closing(text, i)
            if end < 0:
                raise _unclosed(source, line)
            substitutions.append(text[i:end])
            keep(f"{_SUBST}{len(substitutions) - 1}{_SUBST}")
            line += text.count("\n", i, end)
            i = end
            continue
        if char == '"':
            in_double, opened = not in_double, line
        elif not in_double and char == "#" and (not chars or chars[-1][-1].isspace()):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif not in_double and char in _BREAKS and not _redirection(text, i):
            if chars:
                commands.append((start, "".join(chars)))
            chars.clear()
            line += 1 if char == "\n" else 0
            i += 1
            continue
        keep(char)
        line += 1 if char == "\n" else 0
        i += 1
    if in_double:
        raise _unclosed(source, opened)
    if chars:
        commands.append((start, "".join(chars)))
    return commands, substitutions


def _closing(text: str, i: int) -> int:
    """Where the `$(...)` or backquoted command at i ends (nested parentheses counted), or -1."""
    if text[i] == "`":
        end = text.find("`", i + 1)
        return end + 1 if end > 0 else -1
    depth = 0
    for j in range(i + 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    return -1


def _redirection(text: str, i: int) -> bool:
    """`2>&1` and `&> log`: an `&` that belongs to a redirection does not end the command."""
    return text[i] == "&" and ">" in (text[i - 1 : i], text[i + 1 : i + 2])


def _unclosed(source: str, line: int) -> SafedeployError:
    return SafedeployError(
        "a quote or `$(` opened here is never closed", where=location(source, line)
    )


def _without_redirections(words: list[str]) -> list[str]:
    """The words of a command without `> file`, `2>&1` and the like."""
    kept: list[str] = []
    skip = False
    for word in words:
        match = None if skip else _REDIRECT.fullmatch(word)
        if not skip and match is None:
            kept.append(word)
        skip = match is not None and not match["target"]
    return kept


def _parse(words: list[str]) -> tuple[list[str], list[tuple[str, str | None]]]:
    """Positional words, and (flag, value) pairs: `--flag=value`, `--flag value`, or a switch."""
    positionals: list[str] = []
    flags: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word == "-":
            positionals.append(word)
            continue
        name, equals, value = word.partition("=")
        if equals:
            flags.append((name, value))
        elif name in _SWITCHES or name.startswith(("--no-", "--clear-")):
            flags.append((name, None))
        elif i < len(words) and not words[i].startswith("-"):
            flags.append((name, words[i]))
            i += 1
        else:
            flags.append((name, None))
    return positionals, flags


def _items(value: str) -> list[str]:
    """A gcloud list or dict: comma-separated, or with `^DELIM^` first (`gcloud topic escaping`)."""
    delimiter = ","
    custom = re.match(r"\^([^^]+)\^", value)
    if custom:
        delimiter, value = custom[1], value[custom.end() :]
    return [item for item in value.split(delimiter) if item]


def _seconds(text: str) -> int | None:
    """gcloud's durations: `600`, `600s`, `10m`, `1h30m`."""
    match = _DURATION.fullmatch(text)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


# --- what the commands for one service add up to ---


@dataclass(frozen=True)
class _Held:
    """A credential the script passed in plain text: the manifest names a secret to create."""

    reason: str


@dataclass
class _Draft:
    """One service as the script leaves it: each command applied the way gcloud or AWS would."""

    platform: str
    service: str
    project: str | None
    region: str | None
    lines: list[int]
    image: str | None = None
    command: list[str] | None = None
    env: dict[str, str | _Held] = field(default_factory=dict)
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (secret, version)
    remove: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[str | None, str]] = field(default_factory=list)  # (about variable, text)
    unknown: list[str] = field(default_factory=list)

    def note(self, text: str, variable: str | None = None) -> None:
        """A remark for the header; one about a variable shows only if the manifest uses it."""
        self.notes.append((variable, f"line {self.lines[-1]}: {text}"))

    def not_understood(self, text: str) -> None:
        self.unknown.append(f"{text} (line {self.lines[-1]})")

    def set_env(self, name: str, value: str, origin: str) -> None:
        """A plain value, unless it is a credential: then a secret to create, and no value."""
        self._declare(name)
        sensitive = is_sensitive_name(name) and not any(m in name.upper() for m in _PUBLIC_MARKERS)
        if not (looks_like_credential(value) or (sensitive and value)):
            self.env[name] = value
            return
        then = "name it here" if self.platform == "cloudrun" else "put its ARN here"
        self.env[name] = _Held(
            f"SD104: was a plain value in {origin}; create the secret and {then}"
        )

    def set_secret(self, name: str, secret: str, version: str) -> None:
        self._declare(name)
        self.secrets[name] = (secret, version)

    def drop(self, name: str) -> None:
        self._declare(name)
        self.remove.append(name)

    def _declare(self, name: str) -> None:
        """A name is an env var or a secret, never both, and never also removed."""
        self.env.pop(name, None)
        self.secrets.pop(name, None)
        if name in self.remove:
            self.remove.remove(name)


class _Reader:
    """Folds the deploy commands of one script into drafts, one per service."""

    def __init__(self, base_dir: Path, substitutions: list[str]) -> None:
        self.base_dir = base_dir
        self.substitutions = substitutions
        self.drafts: list[_Draft] = []
        self.remarks: list[tuple[str, str]] = []  # (variable, note) made reading one command

    def read(self, line: int, words: list[str]) -> None:
        """Fold one command into its service's draft, when it is a deploy command."""
        tools = [i for i, w in enumerate(words) if w.rpartition("/")[2] in ("gcloud", "aws")]
        if not tools:
            return
        tool = words[tools[0]].rpartition("/")[2]
        positionals, flags = _parse(words[tools[0] + 1 :])
        if tool == "gcloud" and positionals[:1] in (["alpha"], ["beta"]):
            positionals = positionals[1:]
        verbs = _GCLOUD_VERBS if tool == "gcloud" else _APPRUNNER_VERBS
        verb = next((v for v in verbs if positionals[: len(v)] == v), None)
        if verb is None:
            return
        rest = positionals[len(verb) :]
        if tool == "gcloud":
            draft = self._gcloud(line, rest[0] if rest else None, flags)
            rest = rest[1:]  # the first is the service
        else:
            draft = self._apprunner(line, flags)
        for word in rest:
            draft.not_understood(f"the argument {self.shown(word)}")
        for variable, remark in self.remarks:
            draft.note(remark, variable)
        self.remarks.clear()

    def draft(
        self, line: int, platform: str, service: str, project: str | None, region: str | None
    ) -> _Draft:
        """The draft the command at `line` adds to: its service, in no other project or region."""
        for draft in reversed(self.drafts):
            if (
                (draft.platform, draft.service) == (platform, service)
                and _agrees(draft.project, project)
                and _agrees(draft.region, region)
            ):
                draft.project, draft.region = draft.project or project, draft.region or region
                draft.lines.append(line)
                return draft
        draft = _Draft(platform, service, project, region, lines=[line])
        self.drafts.append(draft)
        return draft

    # --- gcloud ---

    def _gcloud(
        self, line: int, service: str | None, flags: list[tuple[str, str | None]]
    ) -> _Draft:
        given = {flag: value for flag, value in flags if value is not None}
        project, region = given.get("--project"), given.get("--region")
        draft = self.draft(
            line,
            "cloudrun",
            self.text(service, "SERVICE") if service else "${SERVICE}",
            self.text(project, "PROJECT") if project is not None else None,
            self.text(region, "REGION") if region is not None else None,
        )
        # gcloud removes before it updates, whatever the order on the command line.
        for flag, value in sorted(flags, key=lambda f: not f[0].startswith("--remove-")):
            if not self._gcloud_flag(draft, flag, value):
                draft.not_understood(self.shown(value, flag))
        return draft

    def _gcloud_flag(self, draft: _Draft, flag: str, value: str | None) -> bool:
        """Apply one flag to the draft; False when the manifest has no way to say it."""
        settings = draft.settings
        match flag, value:
            case ("--allow-unauthenticated" | "--no-allow-unauthenticated", None):
                draft.note(
                    f"{flag}: who may invoke the service is IAM policy, which the manifest "
                    "does not manage; the live policy stays as it is"
                )
            case ("--quiet" | "-q" | "--async", None) | ("--format" | "--verbosity", str()):
                pass  # how gcloud talks, not what it deploys
            case ("--platform", str()):
                return value == "managed"
            case ("--project" | "--region", str()):
                pass  # read before the draft was chosen
            case ("--image", str()):
                draft.image = self.text(value, "IMAGE")
            case (name, str()) if name in _GCLOUD_TEXT:
                key = _GCLOUD_TEXT[name]
                settings[key] = self.text(value, key)
            case (name, str()) if name in _GCLOUD_NUMBERS:
                key = _GCLOUD_NUMBERS[name]
                number = _whole(self.text(value, key))
                if number is None:
                    return False
                settings[key] = number
            case ("--timeout", str()):
                text = self.text(value, "timeout")
                seconds = text if _PLACEHOLDER.search(text) else _seconds(text)
                if seconds is None:
                    return False
                settings["timeout"] = seconds
            case ("--vpc-egress", str()):
                egress = self.text(value, "egress")
                settings["egress"] = "all-traffic" if egress == "all" else egress
            case ("--add-cloudsql-instances" | "--set-cloudsql-instances", str()):
                kept = settings.get("cloudsql_instances", []) if flag.startswith("--add") else []
                added = [self.text(i, "cloudsql_instance") for i in _items(value)]
                settings["cloudsql_instances"] = [*kept, *(i for i in added if i not in kept)]
            case ("--set-env-vars" | "--update-env-vars", str()):
                self._env(draft, flag, value)
            case ("--env-vars-file", str()):
                return self._env_file(draft, value)
            case ("--set-secrets" | "--update-secrets", str()):
                self._secrets(draft, flag, value)
            case ("--remove-env-vars" | "--remove-secrets", str()):
                for name in _items(value):
                    draft.drop(name)
            case _:
                return False
        return True

    def _env(self, draft: _Draft, flag: str, value: str) -> None:
        if flag == "--set-env-vars":
            self._replace_env(draft, flag)
        for item in _items(value):
            name, equals, text = item.partition("=")
            if equals and name:
                draft.set_env(name, self.text(text, name), "the script")
            else:
                draft.not_understood(f"{flag} item {self.shown(item)}: not NAME=VALUE")

    def _env_file(self, draft: _Draft, value: str) -> bool:
        """gcloud's --env-vars-file: a YAML mapping that replaces every variable."""
        if _SUBST in value or "$" in value:
            return False  # the file is only known when the script runs
        path = self.base_dir / self.raw(value)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return False
        if not isinstance(data, dict):
            return False
        self._replace_env(draft, "--env-vars-file")
        for name, raw in data.items():
            if isinstance(raw, bool):
                raw = str(raw).lower()
            if isinstance(name, str) and isinstance(raw, str | int | float):
                draft.set_env(name, _literal(str(raw)), path.name)
            else:
                draft.not_understood(f"--env-vars-file {path.name}: the entry {name!r}")
        return True

    def _replace_env(self, draft: _Draft, what: str) -> None:
        """--set-env-vars and its kin replace every variable: the trap safedeploy exists for."""
        draft.env.clear()
        draft.note(
            f"{what} replaces every variable; safedeploy keeps the live ones this manifest "
            "does not name (unmanaged: keep) and shows them in the plan"
        )

    def _secrets(self, draft: _Draft, flag: str, value: str) -> None:
        """`NAME=SECRET:VERSION` items; a secret mounted as a file has no manifest form."""
        if flag == "--set-secrets":
            draft.secrets.clear()
        for item in _items(value):
            name, equals, reference = item.partition("=")
            secret, colon, version = reference.rpartition(":")
            secret, version = (secret, version) if colon else (reference, "latest")
            if name.startswith("/"):
                draft.not_understood(
                    f"{flag} item {self.shown(item)}: a file mount, not a variable"
                )
            elif not (equals and name and secret):
                draft.not_understood(f"{flag} item {self.shown(item)}: not NAME=SECRET:VERSION")
            else:
                draft.set_secret(name, self.text(secret, name), self.text(version, name))

    # --- aws apprunner ---

    def _apprunner(self, line: int, flags: list[tuple[str, str | None]]) -> _Draft:
        given = {flag: value for flag, value in flags if value is not None}
        arn = _SERVICE_ARN.fullmatch(given.get("--service-arn", ""))
        name = given.get("--service-name") or (arn["name"] if arn else None)
        region = given.get("--region") or (arn["region"] if arn else None)
        draft = self.draft(
            line,
            "apprunner",
            self.text(name, "SERVICE") if name else "${SERVICE}",
            None,
            self.text(region, "REGION") if region else None,
        )
        for flag, value in flags:
            if not self._apprunner_flag(draft, flag, value, known_arn=arn is not None):
                draft.not_understood(self.shown(value, flag))
        return draft

    def _apprunner_flag(self, draft: _Draft, flag: str, value: str | None, known_arn: bool) -> bool:
        """Apply one flag to the draft; False when the manifest has no way to say it."""
        match flag, value:
            case ("--service-name" | "--region", str()):
                pass  # read before the draft was chosen
            case ("--service-arn", str()):
                return known_arn
            case ("--source-configuration", str()):
                self._source(draft, value)
            case ("--instance-configuration", str()):
                self._configuration(draft, flag, value, _INSTANCE)
            case ("--network-configuration", str()):
                self._configuration(draft, flag, value, _NETWORK)
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

    def _source(self, draft: _Draft, value: str) -> None:
        """--source-configuration: the image, and an ImageConfiguration that replaces it whole."""
        flag = "--source-configuration"
        read = self.json(draft, flag, value)
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
            self._image_configuration(draft, config, text, origin)
        for path in _leaves(data):
            draft.not_understood(f"{flag} {path}")

    def _image_configuration(
        self, draft: _Draft, config: dict[str, Any], text: _Text, origin: str
    ) -> None:
        """Variables, secrets, port and start command: what App Runner replaces all at once."""
        self._replace_env(draft, "ImageConfiguration (in --source-configuration)")
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
            number = _whole(text(port, "port"))
            draft.settings["port"] = text(port, "port") if number is None else number
        command = _pop(config, ("StartCommand",), str)
        try:
            draft.command = shlex.split(text(command, "command")) if command else draft.command
        except ValueError:
            draft.not_understood("--source-configuration StartCommand: unbalanced quotes")

    def _configuration(
        self, draft: _Draft, flag: str, value: str, members: dict[tuple[str, ...], str]
    ) -> None:
        """--instance-configuration, --network-configuration: a setting per member it knows."""
        read = self.json(draft, flag, value)
        if read is None:
            return
        data, text, _ = read
        for path, key in members.items():
            found = _pop(data, path, str)
            if found is not None:
                draft.settings[key] = text(found, key)
        for leaf in _leaves(data):
            draft.not_understood(f"{flag} {leaf}")

    # --- values ---

    def json(
        self, draft: _Draft, flag: str, value: str
    ) -> tuple[dict[str, Any], _Text, str] | None:
        """A flag's JSON object, inline or `file://`; how to read its strings (as shell text when
        inline, literally from a file); where it came from. None, listed, when unreadable."""
        read: _Text = self.text
        text, origin = value, "the script"
        if value.startswith("file://"):
            if _SUBST in value or "$" in value:
                draft.not_understood(f"{flag}: the file is only known when the script runs")
                return None
            path = self.base_dir / self.raw(value).removeprefix("file://")
            try:
                text, read, origin = path.read_text(encoding="utf-8"), _literal_text, path.name
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

    def text(self, raw: str, key: str) -> str:
        """Shell text as manifest text: each variable a ${NAME}; a `$(...)` a ${KEY} to pass."""

        def replace(match: re.Match[str]) -> str:
            if match["subst"] is not None:
                command = self.substitutions[int(match["subst"])]
                name = re.sub(r"[^A-Z0-9_]", "_", key.upper())
                shown = "a command" if looks_like_credential(command) else command
                self.remarks.append(
                    (name, f"{shown} runs in the shell: pass its output as --var {name}")
                )
                return "${" + name + "}"
            if match["braced"] is not None:
                inner = _BRACED.fullmatch(match["braced"])
                if inner is None:
                    return "$" + match[0]
                placeholder = _placeholder(inner["name"])
                if inner["rest"] or match["braced"][:1] in ("#", "!"):
                    self.remarks.append(
                        (
                            placeholder[2:-1],
                            f"{match[0][:2]}{inner['name']}...}} is written as {placeholder}: "
                            "what the shell does to it (a default, a length, a pattern) is lost",
                        )
                    )
                return placeholder
            if match["name"] is not None:
                return _placeholder(match["name"])
            return "$${" if match["brace"] else "$"

        return _SHELL.sub(replace, raw)

    def raw(self, text: str) -> str:
        """The script's own words: the substitutions and literal `$` put back."""
        restored = re.sub(r"\x00(\d+)\x00", lambda m: self.substitutions[int(m[1])], text)
        return restored.replace(_DOLLAR, "$")

    def shown(self, value: str | None, flag: str = "") -> str:
        """A flag or word as a comment may show it: its value masked if it may be a credential."""
        if value is None:
            return flag
        text = self.raw(value)
        hidden = (
            is_sensitive_name(flag)
            or looks_like_credential(text)
            or any(is_sensitive_name(name) for name in _ASSIGNED.findall(text))
        )
        shown = MASK if hidden else text
        return f"{flag}={shown}" if flag else shown


_Text = Callable[[str, str], str]  # (text, key) -> manifest text
_INSTANCE: dict[tuple[str, ...], str] = {
    ("Cpu",): "cpu",
    ("Memory",): "memory",
    ("InstanceRoleArn",): "instance_role",
}
_NETWORK: dict[tuple[str, ...], str] = {
    ("EgressConfiguration", "EgressType"): "egress",
    ("EgressConfiguration", "VpcConnectorArn"): "vpc_connector",
}


def _agrees(one: str | None, other: str | None) -> bool:
    return one is None or other is None or one == other


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


def _whole(text: str) -> int | str | None:
    """A whole number, or a placeholder the manifest checks once it is filled; else None."""
    if re.fullmatch("[0-9]+", text):
        return int(text)
    return text if _PLACEHOLDER.search(text) else None


def _literal(text: str) -> str:
    """Text from a file, where `$` means nothing: a `${` stays literal in the manifest."""
    return text.replace("${", "$${")


def _literal_text(text: str, key: str) -> str:
    """_literal as a _Text reader: strings from a file need no placeholder names."""
    return _literal(text)


def _placeholder(name: str) -> str:
    """${NAME}; the positional $1 becomes ${ARG1}, since a manifest variable is a name."""
    return "${" + (f"ARG{name}" if name.isdigit() else name) + "}"


def _filename(service: str, taken: set[str]) -> str:
    """SERVICE.yaml, made safe as a file name and unique within one script."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "", service.replace("${", "")).strip(".") or "service"
    name, n = f"{stem}.yaml", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.yaml"
    taken.add(name)
    return name


# --- writing the manifest ---

_PROBE_STUB = [
    "# probes:  # checked on the new revision before it takes traffic",
    "#   - name: health",
    "#     path: /health",
    "#     expect: {status: 200}",
]


def _render(draft: _Draft, source: str) -> str:
    """The YAML a human will edit: the usual key order, and every TODO said in a comment."""
    body = [f"service: {_scalar(draft.service)}", f"platform: {draft.platform}"]
    if draft.platform == "cloudrun":
        body.append(_field("project", draft.project, "project"))
    body.append(_field("region", draft.region, f"{draft.platform} region"))
    body.append(_field("image", draft.image, "image"))
    if draft.command:
        body.append(f"command: {_flow(draft.command)}")
    plain = {n: v for n, v in draft.env.items() if isinstance(v, str)}
    held = {n: v.reason for n, v in draft.env.items() if isinstance(v, _Held)}
    body += _block("env", [f"{_scalar(n)}: {_scalar(v)}" for n, v in plain.items()])
    body += _block(
        "secrets",
        [
            *(f"{_scalar(n)}: {_reference(*ref)}" for n, ref in draft.secrets.items()),
            *(f"{_scalar(n)}: {_todo(n)}  # {reason}" for n, reason in held.items()),
        ],
    )
    body += _list("required", [*draft.env, *draft.secrets])
    body += _list("remove", draft.remove)
    body += _block("settings", [f"{k}: {_setting(v)}" for k, v in _settings(draft).items()])
    body += _PROBE_STUB

    lines = list(dict.fromkeys(draft.lines))
    where = f"line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}"
    header = [
        f"# Converted by `safedeploy convert` from {source} ({where}).",
        "# Review it, fill in each TODO, then `safedeploy plan` shows what a deploy would change.",
    ]
    variables = dict.fromkeys(_PLACEHOLDER.findall("\n".join(body)))
    if variables:
        header.append(f"# Pass --var NAME=value (or export NAME) for: {', '.join(variables)}")
    notes = [text for about, text in draft.notes if about is None or about in variables]
    header += _comments("Notes:", list(dict.fromkeys(notes)))
    header += _comments("Not converted: carry these over by hand, or drop them:", draft.unknown)
    return "\n".join([*header, *body]) + "\n"


def _field(key: str, value: str | None, default: str) -> str:
    """`key: value`, or the placeholder the tool's own default stands for, said in a comment."""
    if value is not None:
        return f"{key}: {_scalar(value)}"
    placeholder, why = _DEFAULTS[default]
    return f"{key}: {placeholder}  # {why}"


def _settings(draft: _Draft) -> dict[str, Any]:
    """The settings, with Cloud Run's short names made full the way gcloud makes them."""
    settings = dict(draft.settings)
    if draft.platform != "cloudrun":
        return settings
    project = draft.project or _DEFAULTS["project"][0]
    region = draft.region or _DEFAULTS["cloudrun region"][0]
    connector = settings.get("vpc_connector")
    if isinstance(connector, str) and "/" not in connector and "${" not in connector:
        settings["vpc_connector"] = f"projects/{project}/locations/{region}/connectors/{connector}"
    if "cloudsql_instances" in settings:
        settings["cloudsql_instances"] = [
            i if ":" in i or "${" in i else f"{project}:{region}:{i}"
            for i in settings["cloudsql_instances"]
        ]
    return settings


def _block(key: str, entries: list[str]) -> list[str]:
    return [f"{key}:", *(f"  {entry}" for entry in entries)] if entries else []


def _list(key: str, items: list[str]) -> list[str]:
    """`key: [a, b]` when it fits on a line, else one `- item` per line."""
    if not items:
        return []
    line = f"{key}: {_flow(items)}"
    return [line] if len(line) <= 100 else _block(key, [f"- {_scalar(i)}" for i in items])


def _comments(title: str, items: list[str]) -> list[str]:
    """A titled comment block, each item on one line of words, wrapped to the manifest's width."""
    wrapped = [
        f"#   {part}"
        for item in items
        for part in textwrap.wrap(" ".join(item.split()), 94, subsequent_indent="  ")
    ]
    return [f"# {title}", *wrapped] if items else []


def _reference(secret: str, version: str) -> str:
    if version == "latest":
        return _scalar(secret)
    return f"{{secret: {_scalar(secret, flow=True)}, version: {_scalar(version, flow=True)}}}"


def _todo(name: str) -> str:
    """A secret name to replace, derived from the variable: CLERK_SECRET_KEY -> clerk-secret-key."""
    return "TODO-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "secret")


def _setting(value: Any) -> str:
    if isinstance(value, list):
        return _flow(value)
    return str(value) if isinstance(value, int) else _scalar(value)


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(_scalar(item, flow=True) for item in items) + "]"


def _scalar(value: str, flow: bool = False) -> str:
    """Plain when YAML reads it back as the same text, else double-quoted (JSON is YAML)."""
    try:
        same = yaml.safe_load(f"[{value}]" if flow else value) == ([value] if flow else value)
    except yaml.YAMLError:
        same = False
    return value if same and "\n" not in value else json.dumps(value)
