"""A draft as the YAML a human will edit: the usual key order, and every TODO said in a comment."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import yaml

from safedeploy.convert.draft import Draft, Held
from safedeploy.convert.shell import PLACEHOLDER

_DEFAULTS = {  # placeholders for what a script leaves to the tool's defaults or to the live service
    "project": ("${CLOUDSDK_CORE_PROJECT}", "gcloud's default project: the script names none"),
    "cloudrun region": ("${CLOUDSDK_RUN_REGION}", "gcloud's default region: the script names none"),
    "apprunner region": ("${AWS_REGION}", "the AWS CLI's default region: the script names none"),
    "image": ("${IMAGE}", "the script names no image: pass the one to deploy"),
}
_PROBE_STUB = [
    "# probes:  # checked on the new revision before it takes traffic",
    "#   - name: health",
    "#     path: /health",
    "#     expect: {status: 200}",
]


def converted_from(draft: Draft, source: str) -> str:
    """The header's first line for a manifest convert made from a script's lines."""
    lines = list(dict.fromkeys(draft.lines))
    where = f"line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}"
    return f"Converted by `safedeploy convert` from {source} ({where})."


def render(draft: Draft, origin: str, probes: Sequence[str] = ()) -> str:
    """The manifest's text, with a header that says where it came from (`origin`, its first
    line) and what is left to do; a smoke probe of each path in `probes`, else a commented one."""
    body = [f"service: {_scalar(draft.service)}", f"platform: {draft.platform}"]
    if draft.platform == "cloudrun":
        body.append(_field("project", draft.project, "project"))
    body.append(_field("region", draft.region, f"{draft.platform} region"))
    body.append(_field("image", draft.image, "image"))
    if draft.command:
        body.append(f"command: {_flow(draft.command)}")
    plain = {n: v for n, v in draft.env.items() if isinstance(v, str)}
    held = {n: v.reason for n, v in draft.env.items() if isinstance(v, Held)}
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
    body += _probes(probes) if probes else _PROBE_STUB

    header = [
        f"# {origin}",
        "# Review it, fill in each TODO, then `safedeploy plan` shows what a deploy would change.",
    ]
    variables = dict.fromkeys(PLACEHOLDER.findall("\n".join(body)))
    if variables:
        header.append(f"# Pass --var NAME=value (or export NAME) for: {', '.join(variables)}")
    notes = [text for about, text in draft.notes if about is None or about in variables]
    header += _comments("Notes:", list(dict.fromkeys(notes)))
    header += _comments("Not converted: carry these over by hand, or drop them:", draft.unknown)
    return "\n".join([*header, *body]) + "\n"


def _probes(paths: Sequence[str]) -> list[str]:
    """Smoke probes, each named by its path."""
    return [
        "probes:",
        *(f"  - {{name: {_scalar(p, flow=True)}, path: {_scalar(p, flow=True)}}}" for p in paths),
    ]


def _field(key: str, value: str | None, default: str) -> str:
    """`key: value`, or the placeholder the tool's own default stands for, said in a comment."""
    if value is not None:
        return f"{key}: {_scalar(value)}"
    placeholder, why = _DEFAULTS[default]
    return f"{key}: {placeholder}  # {why}"


def _settings(draft: Draft) -> dict[str, Any]:
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
    """A titled comment block, each item wrapped between words only, so an ARN stays whole."""
    wrapped = [
        f"#   {part}"
        for item in items
        for part in textwrap.wrap(
            " ".join(item.split()),
            94,
            subsequent_indent="  ",
            break_on_hyphens=False,
            break_long_words=False,
        )
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
    if isinstance(value, dict):
        pairs = (f"{_scalar(k, flow=True)}: {_scalar(v, flow=True)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
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
