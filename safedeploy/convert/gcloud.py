"""`gcloud run deploy` and `gcloud run services update`: each flag the way gcloud applies it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from safedeploy.convert.draft import Draft, Script
from safedeploy.convert.shell import PLACEHOLDER, SUBST, Flags, literal, whole

VERBS = (["run", "deploy"], ["run", "services", "update"])
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s?)?")
_TEXT = {
    "--cpu": "cpu",
    "--memory": "memory",
    "--service-account": "service_account",
    "--vpc-connector": "vpc_connector",
    "--ingress": "ingress",
}
_NUMBERS = {
    "--concurrency": "concurrency",
    "--min-instances": "min_instances",
    "--max-instances": "max_instances",
    "--port": "port",
}


def read(script: Script, line: int, service: str | None, flags: Flags) -> Draft:
    """Fold one gcloud command into its service's draft; a flag it cannot carry is listed."""
    shell = script.shell
    given = {flag: value for flag, value in flags if value is not None}
    project, region = given.get("--project"), given.get("--region")
    draft = script.draft(
        line,
        "cloudrun",
        shell.text(service, "SERVICE") if service else "${SERVICE}",
        shell.text(project, "PROJECT") if project is not None else None,
        shell.text(region, "REGION") if region is not None else None,
    )
    # gcloud removes before it updates, whatever the order on the command line.
    for flag, value in sorted(flags, key=lambda f: not f[0].startswith("--remove-")):
        if not _flag(script, draft, flag, value):
            draft.not_understood(shell.shown(value, flag))
    return draft


def _flag(script: Script, draft: Draft, flag: str, value: str | None) -> bool:
    """Apply one flag to the draft; False when the manifest has no way to say it."""
    settings, text = draft.settings, script.shell.text
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
            draft.image = text(value, "IMAGE")
        case (name, str()) if name in _TEXT:
            key = _TEXT[name]
            settings[key] = text(value, key)
        case (name, str()) if name in _NUMBERS:
            key = _NUMBERS[name]
            number = whole(text(value, key))
            if number is None:
                return False
            settings[key] = number
        case ("--timeout", str()):
            written = text(value, "timeout")
            seconds = written if PLACEHOLDER.search(written) else _seconds(written)
            if seconds is None:
                return False
            settings["timeout"] = seconds
        case ("--vpc-egress", str()):
            egress = text(value, "egress")
            settings["egress"] = "all-traffic" if egress == "all" else egress
        case ("--add-cloudsql-instances" | "--set-cloudsql-instances", str()):
            kept = settings.get("cloudsql_instances", []) if flag.startswith("--add") else []
            added = [text(i, "cloudsql_instance") for i in _items(value)]
            settings["cloudsql_instances"] = [*kept, *(i for i in added if i not in kept)]
        case ("--set-env-vars" | "--update-env-vars", str()):
            _env(script, draft, flag, value)
        case ("--env-vars-file", str()):
            return _env_file(script, draft, value)
        case ("--set-secrets" | "--update-secrets", str()):
            _secrets(script, draft, flag, value)
        case ("--remove-env-vars" | "--remove-secrets", str()):
            for name in _items(value):
                draft.drop(name)
        case ("--clear-env-vars", None):
            draft.replace_env(flag)
        case ("--clear-secrets", None):
            draft.replace_secrets(flag)
        case ("--labels", str()):
            labels = _labels(script, value)
            if labels is None:
                return False
            settings["labels"] = labels
        case ("--update-labels", str()) if "labels" in settings:
            labels = _labels(script, value)
            if labels is None:
                return False
            settings["labels"].update(labels)
        case ("--remove-labels", str()) if "labels" in settings:
            for name in _items(value):
                settings["labels"].pop(name, None)
        case _:
            return False
    return True


def _env(script: Script, draft: Draft, flag: str, value: str) -> None:
    if flag == "--set-env-vars":
        draft.replace_env(flag)
    for item in _items(value):
        name, equals, text = item.partition("=")
        if equals and name:
            draft.set_env(name, script.shell.text(text, name), "the script")
        else:
            draft.not_understood(f"{flag} item {script.shell.shown(item)}: not NAME=VALUE")


def _labels(script: Script, value: str) -> dict[str, str] | None:
    """`KEY=VALUE,...`, or None. The manifest's labels are the whole set, so --update-labels and
    --remove-labels are carried only after a --labels, and listed otherwise."""
    items = [item.partition("=") for item in _items(value)]
    if not all(key and equals for key, equals, _ in items):
        return None
    return {key: script.shell.text(text, key) for key, _, text in items}


def _env_file(script: Script, draft: Draft, value: str) -> bool:
    """gcloud's --env-vars-file: a YAML mapping that replaces every variable."""
    if SUBST in value or "$" in value:
        return False  # the file is only known when the script runs
    path = script.base_dir / Path(script.shell.raw(value))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(data, dict):
        return False
    draft.replace_env("--env-vars-file")
    for name, raw in data.items():
        if isinstance(raw, bool):
            raw = str(raw).lower()
        if isinstance(name, str) and isinstance(raw, str | int | float):
            draft.set_env(name, literal(str(raw)), path.name)
        else:
            draft.not_understood(f"--env-vars-file {path.name}: the entry {name!r}")
    return True


def _secrets(script: Script, draft: Draft, flag: str, value: str) -> None:
    """`NAME=SECRET:VERSION` items; a secret mounted as a file has no manifest form."""
    shell = script.shell
    if flag == "--set-secrets":
        draft.replace_secrets(flag)
    for item in _items(value):
        name, equals, reference = item.partition("=")
        secret, colon, version = reference.rpartition(":")
        secret, version = (secret, version) if colon else (reference, "latest")
        if name.startswith("/"):
            draft.not_understood(f"{flag} item {shell.shown(item)}: a file mount, not a variable")
        elif not (equals and name and secret):
            draft.not_understood(f"{flag} item {shell.shown(item)}: not NAME=SECRET:VERSION")
        else:
            draft.set_secret(name, shell.text(secret, name), shell.text(version, name))


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
