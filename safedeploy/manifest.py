"""Load a manifest: YAML with line numbers -> `environments` overlay -> ${VARS} -> pydantic.

Every error names the file, the line and the key, and nothing is loaded half-way.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from yaml import (
    CSafeLoader,
    MappingNode,
    MarkedYAMLError,
    Node,
    ScalarNode,
    SequenceNode,
    YAMLError,
)

from safedeploy.errors import SafedeployError, location
from safedeploy.model import Platform, SecretRef, ServiceSpec
from safedeploy.redact import Sensitive, register

# --- coercions the YAML may rely on (each one is documented in the JSON Schema) ---

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_DURATION_SCHEMA = {
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": rf"^{_DURATION.pattern}$"}],
    "description": 'seconds: a number, or a duration like "30s", "500ms", "5m", "1h"',
}


def _seconds(value: object) -> object:
    """Read `2`, `"2s"`, `"500ms"`, `"5m"` as seconds, so YAML can say durations the usual way."""
    if isinstance(value, bool):
        raise PydanticCustomError("duration", "expected a duration, not true/false")
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if not match:
            raise PydanticCustomError("duration", "expected a duration")
        return float(match[1]) * _UNIT_SECONDS[match[2]]
    return value


def _no_bool(value: object) -> object:
    """Refuse true/false where a number belongs: pydantic would read `true` as 1."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "expected a whole number, not true/false")
    return value


def _cpu_text(value: object) -> object:
    """`cpu: 1` and `cpu: 0.5` are how people write CPUs; keep them as the text the API takes."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _env_text(value: object) -> object:
    """Env values are text: a YAML number, bool or empty value would change on the way out."""
    if isinstance(value, str):
        return value
    if value is None:
        raise PydanticCustomError("env_value", "has no value; env values must be strings")
    raise PydanticCustomError(
        "env_value", "YAML read {kind} here; env values must be strings", {"kind": _kind(value)}
    )


_ARN = re.compile(r"arn:[a-z-]+:(secretsmanager|ssm):\S+")
_RESOURCE = re.compile(r"projects/([^/\s]+)/secrets/([^/\s]+)(?:/versions/([^/\s]+))?")
_SHORT = re.compile(r"([^:\s]+)(?::([^:\s/]+))?")
_VERSION = re.compile(r"[^:\s/]+")


def _secret_text(text: str) -> SecretRef:
    """`name`, `name:version`, a Secret Manager resource name, or an ARN (whole: it has colons)."""
    if not text.strip():
        raise PydanticCustomError("secret_ref", "the secret reference is empty")
    if text.startswith("arn:"):
        if not _ARN.fullmatch(text):
            raise PydanticCustomError("secret_ref", "not a Secrets Manager or SSM parameter ARN")
        return SecretRef(text)
    if text.startswith("projects/"):
        match = _RESOURCE.fullmatch(text)
        if not match:
            raise PydanticCustomError("secret_ref", "not a Secret Manager resource name")
        return SecretRef(f"projects/{match[1]}/secrets/{match[2]}", match[3] or "latest")
    match = _SHORT.fullmatch(text)
    if not match:
        raise PydanticCustomError("secret_ref", "not a secret reference")
    return SecretRef(match[1], match[2] or "latest")


def _secret_ref(value: object) -> object:
    """Turn each shorthand of DESIGN.md into a SecretRef; a reference is never a value."""
    if isinstance(value, SecretRef):
        return value
    if isinstance(value, str):
        return _secret_text(value)
    if not isinstance(value, Mapping):
        raise PydanticCustomError(
            "secret_ref", "expected a secret reference, got {kind}", {"kind": _kind(value)}
        )
    unknown = sorted(set(value) - {"secret", "version"}, key=str)
    if unknown:
        raise PydanticCustomError(
            "secret_ref", "unknown key `{key}` in a secret reference", {"key": unknown[0]}
        )
    secret, version = value.get("secret"), value.get("version")
    if not isinstance(secret, str):
        raise PydanticCustomError("secret_ref", "`secret:` must name the secret")
    ref = _secret_text(secret)
    if version is None:
        return ref
    if ref.version != "latest":
        raise PydanticCustomError("secret_ref", "the version is given twice")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise PydanticCustomError("secret_ref", "`version:` must be a version number or alias")
    return SecretRef(ref.secret, version)


Int = Annotated[int, BeforeValidator(_no_bool)]
Seconds = Annotated[float, BeforeValidator(_seconds), WithJsonSchema(_DURATION_SCHEMA)]
WholeSeconds = Annotated[int, BeforeValidator(_seconds), WithJsonSchema(_DURATION_SCHEMA)]
CpuText = Annotated[str, BeforeValidator(_cpu_text), WithJsonSchema({"type": ["string", "number"]})]
EnvText = Annotated[str, BeforeValidator(_env_text)]
Secret = Annotated[
    SecretRef,
    BeforeValidator(_secret_ref),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "object",
                    "properties": {
                        "secret": {"type": "string", "minLength": 1},
                        "version": {"type": ["string", "integer"]},
                    },
                    "required": ["secret"],
                    "additionalProperties": False,
                },
            ],
            "description": "name, name:version, {secret, version}, projects/P/secrets/S"
            "[/versions/V], or a Secrets Manager / SSM parameter ARN",
        }
    ),
]


# --- the models ---


class Strict(BaseModel):
    # Built on first use, where _no_pydantic_plugins() spares the plugin scan.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Expect(Strict):
    status: Int = Field(200, ge=100, le=599)
    json_subset: dict[str, Any] | None = Field(default=None, alias="json")
    contains: str | None = None  # a substring the body must contain
    regex: str | None = None  # a regular expression the body must match (re.search)
    max_latency: Seconds | None = Field(None, gt=0)  # seconds; "2s" and "500ms" in YAML

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        """A regex that cannot compile fails every attempt: refuse it before any deploy."""
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise PydanticCustomError(
                    "probe_regex", "not a regular expression: {why}", {"why": str(exc)}
                ) from None
        return regex


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")  # control characters and the space


class ProbeSpec(Strict):
    """One HTTP smoke check against the new revision, retried until it holds or times out.

    Every field is checked at load: a probe that cannot run would fail only after a revision
    was started, turning a typo into a rollback.
    """

    name: str
    path: str = "/"
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    expect: Expect = Field(default_factory=Expect)
    retries: Int = Field(10, ge=0)  # failed attempts allowed before the probe fails
    interval: Seconds = Field(1.0, ge=0)  # seconds between attempts ("500ms" accepted)
    successes: Int = Field(1, ge=1)  # consecutive passing attempts needed
    timeout: Seconds = Field(30.0, gt=0)  # seconds for the whole probe, all attempts ("1m")

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/") or _CONTROL.search(path):
            raise PydanticCustomError("probe_path", "a probe path starts with / and has no spaces")
        return path

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        """A CR or LF in a header would split the request; values are never echoed."""
        for name, value in headers.items():
            if not _TOKEN.fullmatch(name):
                raise PydanticCustomError(
                    "probe_header", "`{name}` is not a header name", {"name": name[:40]}
                )
            if _CONTROL.search(value.replace(" ", "").replace("\t", "")):
                raise PydanticCustomError(
                    "probe_header",
                    "the value of `{name}` holds a line break or control character",
                    {"name": name},
                )
        return headers


class Settings(Strict):
    """Platform settings safedeploy can declare; an unset one is left as it is live."""

    cpu: CpuText | None = None  # `1` and `0.5` become text
    memory: str | None = None
    timeout: WholeSeconds | None = None  # seconds; "300s" and "5m" are accepted in YAML
    concurrency: Int | None = None
    min_instances: Int | None = None
    max_instances: Int | None = None
    service_account: str | None = None
    instance_role: str | None = None  # apprunner: the IAM role ARN the service runs as
    vpc_connector: str | None = None
    egress: str | None = None
    cloudsql_instances: list[str] | None = None
    ingress: str | None = None
    labels: dict[str, str] | None = None
    port: Int | None = None


class Rollout(Strict):
    strategy: Literal["canary", "all-at-once"] = "all-at-once"
    steps: list[Int] = Field(default_factory=lambda: [100])

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[int]) -> list[int]:
        """Traffic only moves forward and always ends with the new revision serving all of it."""
        in_range = all(1 <= step <= 100 for step in steps)
        increasing = all(a < b for a, b in pairwise(steps))
        if not (steps and in_range and increasing and steps[-1] == 100):
            raise PydanticCustomError(
                "rollout_steps", "steps must be increasing percentages from 1 to 100, ending at 100"
            )
        return steps


class Manifest(Strict):
    """A validated manifest with every ${VAR} filled and the --env overlay applied."""

    service: str
    platform: Platform
    project: str | None = None
    region: str | None = None
    image: str | None = None
    command: list[str] | None = None  # local platform: argv instead of an image
    env: dict[str, EnvText] = Field(default_factory=dict)
    secrets: dict[str, Secret] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    unmanaged: Literal["keep", "remove", "fail"] = "keep"
    settings: Settings = Field(default_factory=Settings)
    probes: list[ProbeSpec] = Field(default_factory=list)
    rollout: Rollout = Field(default_factory=Rollout)
    rollback: Literal["auto", "off"] = "auto"
    probe_url: str | None = None

    @field_validator("probe_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        """Probes go to http(s) with a host; a template (lint) is judged once it is filled."""
        if url is None or "${" in url:
            return url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or _CONTROL.search(url):
            raise PydanticCustomError("probe_url", "not an http:// or https:// URL with a host")
        return url

    probe_auth: Literal["id-token"] | None = None
    container: str | None = None
    history: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    public: list[str] = Field(
        default_factory=list,
        description="variables whose ${VAR} fills may be shown in plans (say GIT_SHA); "
        "every other fill is shown as its template",
    )

    # Where the manifest came from, for errors and findings; not part of the YAML.
    path: Path = Field(default=Path("-"), exclude=True)
    lines: dict[str, int] = Field(default_factory=dict, exclude=True, repr=False)
    # dotted key -> the value as written, for each value a non-public ${VAR} filled
    templates: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    def line_of(self, key: str) -> int | None:
        """The line of a dotted key (`env.FOO`, `secrets.BAR`, `image`) or of its nearest parent."""
        return _nearest_line(self.lines, key)

    def desired_spec(self) -> ServiceSpec:
        """The service as the manifest declares it: plain env and secret references together.

        An env value a ${VAR} filled is Sensitive: where it came from says it may be a secret.
        """
        env: dict[str, str | SecretRef] = {
            name: Sensitive(value) if f"env.{name}" in self.templates else value
            for name, value in self.env.items()
        }
        env.update(self.secrets)
        return ServiceSpec(
            image=self.image,
            command=tuple(self.command or ()),
            env=env,
            settings=self.settings.model_dump(exclude_none=True),
        )

    @property
    def declared(self) -> frozenset[str]:
        """The names this manifest owns: written as the last-applied names on deploy."""
        return frozenset(self.env) | frozenset(self.secrets)


# Bounds on what a manifest may be, so a hostile file in a pull request costs nothing to refuse.
MAX_BYTES = 1024 * 1024
MAX_NODES = 20_000  # values after alias expansion; 1,000 variables take about 1,000
MAX_DEPTH = 32
_INTERNAL = ("path", "lines", "templates")  # Manifest fields that are not YAML keys
_NO_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"
_PLATFORM_NEEDS = {
    Platform.CLOUDRUN: {
        "image": "image: REGISTRY/NAME:TAG",
        "project": "project: PROJECT_ID",
        "region": "region: us-central1",
    },
    Platform.APPRUNNER: {"image": "image: REGISTRY/NAME:TAG", "region": "region: us-east-1"},
    Platform.LOCAL: {"command": "command: [python, -m, app]"},
}
# Each platform's documented service-name rule; `local` follows Cloud Run's. A checked name is
# also safe in a path: it never holds `/` or `..`.
_CLOUD_RUN_NAME = (
    re.compile(r"[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?"),
    "lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen, "
    "at most 49 characters",
)
_SERVICE_NAMES = {
    Platform.CLOUDRUN: _CLOUD_RUN_NAME,
    Platform.LOCAL: _CLOUD_RUN_NAME,
    Platform.APPRUNNER: (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{3,39}"),
        "4 to 40 letters, digits, hyphens and underscores, starting with a letter or digit",
    ),
}


_VAR = re.compile(r"\$\$\{|\$\{(?P<name>[^}]*)(?P<close>\}?)")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Where an unset ${VAR} may stay as written: commands that only read never use what a deploy
# sends; lint checks the manifest as a template, so no variable need be set.
FOR_READING = frozenset({"image", "command", "env"})
AS_TEMPLATE = frozenset({"*"})
_NOT_SECRET = {"image"}  # an image reference renders resolved: it is not a secret
_NUMBER = ("expected a whole number", "write a whole number, like 3 or 8080")
_MAPPING = ("expected a mapping", "write `key: value` lines indented under it")
_PLAIN_TYPES = {  # pydantic's type errors, said plainly: (what, hint); "got ..." is added
    "string_type": ("expected text", 'quote it, e.g. "8080", so YAML keeps it as text'),
    "int_type": _NUMBER,
    "int_parsing": _NUMBER,
    "int_from_float": _NUMBER,
    "float_type": ("expected a number", "write a number, e.g. 1.5"),
    "float_parsing": ("expected a number", "write a number, e.g. 1.5"),
    "bool_type": ("expected true or false", "write true or false, unquoted"),
    "bool_parsing": ("expected true or false", "write true or false, unquoted"),
    "list_type": ("expected a list", "write a list: [a, b], or one `- item` per line"),
    "dict_type": _MAPPING,
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
}
_HINTS = {
    "probe_regex": "fix the pattern (Python `re` syntax), or use `contains:` for plain text",
    "probe_path": "write the path from the service's root, e.g. /health",
    "probe_header": "header names are letters, digits and -; a value is one line",
    "probe_url": "e.g. probe_url: https://api.example.com",
    "duration": 'write seconds (30) or a duration: "30s", "500ms", "5m", "1h"',
    "rollout_steps": "e.g. steps: [10, 50, 100]",
    "secret_ref": "write a secret name (database-url), name:version (database-url:7), "
    '{secret: database-url, version: "7"}, projects/P/secrets/S[/versions/V], '
    "or an arn:aws:secretsmanager:... / arn:aws:ssm:... ARN",
}
_ANY_HINT = "`safedeploy schema` lists every key and the values it takes"


# --- loading ---


def load_manifest(
    path: Path,
    *,
    env_name: str | None = None,
    variables: Mapping[str, str] = {},
    environ: Mapping[str, str] | None = None,
    unset_ok: frozenset[str] = frozenset(),
) -> Manifest:
    """Parse, overlay `environments[env_name]`, fill ${VARS}, validate: all of it or an error.

    `variables` (the --var flags) win over `environ` (default: the process environment).
    `unset_ok`: the top-level keys (FOR_READING, or AS_TEMPLATE for all) where an unset
    variable stays as written instead of being an error.
    """
    doc = _Doc(path)
    data = doc.parse()
    overlays = doc.overlays(data.pop("environments", None))
    if env_name is not None and env_name not in overlays:
        raise doc.unknown_environment(env_name, sorted(overlays))
    lines = {k: v for k, v in doc.raw_lines.items() if not _under(k, "environments")}
    selected, selected_lines = data, lines
    for name, overlay in overlays.items():
        merged_lines = dict(lines)
        merged = _merge(data, overlay, merged_lines, _overlay_lines(doc.raw_lines, name))
        if name == env_name:
            selected, selected_lines = merged, merged_lines
        else:  # not deployed now, so its ${VARS} may be unset; its keys must still be known
            doc.focus(name, merged_lines)
            doc.check_keys(merged)
    doc.focus(env_name, selected_lines)
    environ = os.environ if environ is None else environ
    public = selected.get("public")
    doc.public = frozenset(public) if isinstance(public, list) else frozenset()
    filled = doc.interpolate(selected, "", variables, environ, unset_ok=unset_ok)
    manifest = doc.validate(filled)
    doc.check_platform(manifest)
    for probe in manifest.probes:  # a header is sensitive by where it goes: an Authorization
        for value in probe.headers.values():
            register(value)
    return manifest


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of the YAML users write (for editors): no internals, plus `environments`."""
    schema = Manifest.model_json_schema(by_alias=True)
    properties = schema["properties"]
    for name in _INTERNAL:
        del properties[name]
    overlay = {"type": "object", "properties": dict(properties), "additionalProperties": False}
    properties["environments"] = {
        "type": "object",
        "description": "name -> partial manifest, deep-merged over the top level by --env NAME",
        "additionalProperties": overlay,
    }
    schema["title"] = "safedeploy manifest (v1)"
    schema["description"] = "One service per file; `safedeploy schema` prints this schema."
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


_MERGE = "tag:yaml.org,2002:merge"


class _Yaml(CSafeLoader):
    """libyaml's parser (fast, with a line for every node) reading YAML 1.2's plain scalars.

    PyYAML's default, YAML 1.1, reads `on`, `no` and `off` as booleans and `010` as eight;
    YAML 1.2 keeps those words as text (`rollback: off` means "off") and reads `010` as ten.
    """

    def construct_yaml_int(self, node: ScalarNode) -> int:
        """`0x1F`, `0o17`, `0b101`, `1_000`, and `010` as ten."""
        digits = node.value.replace("_", "")
        prefixed = digits.lstrip("+-")[:2] in ("0b", "0o", "0x")
        return int(digits, 0 if prefixed else 10)


_Yaml.yaml_implicit_resolvers = {}  # YAML 1.2's below, instead of the YAML 1.1 ones inherited
for _tag, _pattern, _first in (  # YAML 1.2's core schema, plus the merge key and timestamps
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?(?:0b[0-1_]+|0o?[0-7_]+|[0-9_]+|0x[0-9a-fA-F_]+)", "-+0123456789"),
    (
        "float",
        r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|\.(?:inf|Inf|INF))|\.(?:nan|NaN|NAN)",
        "-+0123456789.",
    ),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("merge", r"<<", "<"),
    (
        "timestamp",
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}"
        r":[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?",
        "0123456789",
    ),
):
    _Yaml.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(rf"(?:{_pattern})\Z"), _first
    )
_Yaml.add_constructor("tag:yaml.org,2002:int", _Yaml.construct_yaml_int)


class _Doc:
    """One manifest file being loaded, and the lines its errors point at."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw_lines: dict[str, int] = {}  # every key as written, `environments.*` included
        self.lines = self.raw_lines  # the keys of the manifest being checked now
        self.overlay: str | None = None  # the environment merged into it, if any
        self.yaml: _Yaml  # the file being read; set by parse()
        self.nodes = 0  # values built so far, aliases expanded; bounded by MAX_NODES
        self.public: frozenset[str] = frozenset()  # variables whose fills may be shown
        self.templates: dict[str, str] = {}  # dotted key -> value as written, see Manifest

    def focus(self, overlay: str | None, lines: dict[str, int]) -> None:
        """Point errors at a manifest merged from the top level and `overlay`."""
        self.overlay, self.lines = overlay, lines

    def error(self, key: str, what: str, hint: str | None = None) -> SafedeployError:
        """An error at `key`, or at its nearest parent that has a line (the first line if none)."""
        line = _nearest_line(self.lines, key) or 1
        return SafedeployError(what, where=location(self.path, line, self.written(key)), hint=hint)

    def written(self, key: str) -> str | None:
        """`key` as the file spells it: a key that an overlay set is under `environments.NAME`."""
        anchor = key
        while anchor and anchor not in self.lines:
            anchor = anchor.rpartition(".")[0]
        overlaid = f"environments.{self.overlay}."
        if self.overlay and anchor and self.raw_lines.get(overlaid + anchor) == self.lines[anchor]:
            return overlaid + key
        return key or None

    def parse(self) -> dict[str, Any]:
        """The top-level mapping as plain data; fills `lines` for every key and list item."""
        try:
            size = self.path.stat().st_size
            if size > MAX_BYTES:  # refused before a byte is parsed
                raise SafedeployError(
                    f"the manifest is {size:,} bytes; safedeploy reads at most {MAX_BYTES:,}",
                    where=str(self.path),
                    hint="a manifest describes one service; split or trim it",
                )
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SafedeployError(
                f"cannot read the manifest: {exc}", where=str(self.path)
            ) from None
        self.yaml = _Yaml(text)
        try:
            root = self.yaml.get_single_node()
            tree = None if root is None else self._plain(root, "")
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = ", ".join(p for p in (exc.context, exc.problem) if p)
            raise SafedeployError(
                f"invalid YAML: {problem}",
                where=location(self.path, mark.line + 1 if mark else None),
                hint="check indentation, colons, quotes and brackets here and on the line above",
            ) from None
        except YAMLError as exc:
            raise SafedeployError(f"invalid YAML: {exc}", where=str(self.path)) from None
        if not isinstance(tree, dict):
            what = "the manifest is empty" if tree is None else "the manifest is not a mapping"
            raise self.error("", what, hint="start it with `service: NAME` and `platform: ...`")
        return tree

    def _plain(self, node: Node, key: str, depth: int = 0) -> Any:
        """Plain Python data from a YAML node, recording the line of each key and list item.

        Aliases are expanded here, so the nodes built and the depth are bounded: a few hundred
        bytes of nested aliases ("billion laughs") or a self-referencing anchor are refused in
        milliseconds instead of growing to gigabytes.
        """
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            what = (
                f"expands to more than {MAX_NODES:,} values"
                if depth <= MAX_DEPTH
                else f"nests deeper than {MAX_DEPTH} levels"
            )
            raise SafedeployError(
                f"the manifest {what} (anchors and aliases included)",
                where=location(self.path, node.start_mark.line + 1, key or None),
                hint=f"a manifest needs neither; keep aliases few and nesting under {MAX_DEPTH}",
            )
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                child = _join(key, index)
                self.raw_lines[child] = item.start_mark.line + 1
                items.append(self._plain(item, child, depth + 1))
            return items
        if isinstance(node, MappingNode):
            data = {}
            for name, (line, value) in self._pairs(node, key, depth).items():
                child = _join(key, name)
                self.raw_lines[child] = line
                data[name] = self._plain(value, child, depth + 1)
            return data
        return self.yaml.construct_object(node)

    def _pairs(self, node: MappingNode, key: str, depth: int) -> dict[str, tuple[int, Node]]:
        """A mapping's keys -> (line, value node); keys from a `<<:` merge come after its own.

        A repeated key is an error naming both lines: YAML silently keeping one is how values
        get lost.
        """
        pairs: dict[str, tuple[int, Node]] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                many = isinstance(value_node, SequenceNode)
                merged += value_node.value if many else [value_node]
                continue
            name = self.yaml.construct_object(key_node, deep=True)
            child = _join(key, name)
            if not isinstance(name, str):
                self.raw_lines[child] = line  # so the error below has its line
                raise self.error(
                    child, f"the key `{name}` is not text", hint=f'quote it: "{name}":'
                )
            if name in pairs:
                raise SafedeployError(
                    f"`{child}` is given twice, on lines {pairs[name][0]} and {line}",
                    where=location(self.path, line, child),
                    hint="keep one of them",
                )
            pairs[name] = line, value_node
        for source in merged:  # the first merged mapping wins, as in YAML's merge key spec
            if not isinstance(source, MappingNode):
                raise SafedeployError(
                    "invalid YAML: `<<:` merges a mapping or a list of mappings",
                    where=location(self.path, source.start_mark.line + 1, key or None),
                    hint="write `<<: *anchor` or `<<: [*one, *two]`",
                )
            self.nodes += 1  # a merge chain counts like nesting: `&a {<<: *a}` must end
            if depth > MAX_DEPTH or self.nodes > MAX_NODES:
                raise SafedeployError(
                    "the manifest's `<<:` merges go too deep or refer to themselves",
                    where=location(self.path, source.start_mark.line + 1, key or None),
                    hint="merge a plain anchored mapping",
                )
            for name, pair in self._pairs(source, key, depth + 1).items():
                pairs.setdefault(name, pair)
        return pairs

    def overlays(self, environments: Any) -> dict[str, dict[str, Any]]:
        """The `environments:` mapping, each overlay checked to be a mapping of manifest keys."""
        if environments is None:
            return {}
        if not isinstance(environments, dict):
            raise self.error(
                "environments",
                "`environments` must map environment names to overlays",
                hint="e.g. environments: {staging: {project: my-staging}}",
            )
        for name, overlay in environments.items():
            key = f"environments.{name}"
            if not isinstance(overlay, dict):
                raise self.error(
                    key,
                    f"the overlay for environment `{name}` is not a mapping",
                    hint="write the keys it changes, e.g. {region: europe-west1}",
                )
            if "environments" in overlay:
                raise self.error(
                    f"{key}.environments",
                    "environments cannot be nested",
                    hint="move this overlay to the top-level `environments:`",
                )
        return environments

    def unknown_environment(self, name: str, known: list[str]) -> SafedeployError:
        """--env names an environment the manifest does not have."""
        if not known:
            return self.error(
                "environments",
                f"--env {name}: this manifest has no `environments:`",
                hint=f"add `environments: {{{name}: {{...}}}}` or drop --env",
            )
        hint = f"known environments: {', '.join(known)}"
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            hint = f"did you mean `{close[0]}`? {hint}"
        return self.error("environments", f"--env {name}: no such environment", hint=hint)

    def interpolate(
        self,
        value: Any,
        key: str,
        variables: Mapping[str, str],
        environ: Mapping[str, str],
        *,
        unset_ok: frozenset[str] = frozenset(),
    ) -> Any:
        """Fill ${NAME} in every string value (never in keys); `$${` is a literal `${`.

        A value a non-public variable filled is recorded as its template, and the filled text
        is registered with the scrubber: where it came from makes it sensitive.
        """
        if isinstance(value, dict):
            return {
                k: self.interpolate(v, _join(key, k), variables, environ, unset_ok=unset_ok)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [
                self.interpolate(v, _join(key, i), variables, environ, unset_ok=unset_ok)
                for i, v in enumerate(value)
            ]
        if not isinstance(value, str):
            return value
        top = key.partition(".")[0]
        private: list[str] = []

        def fill(match: re.Match[str]) -> str:
            if match[0] == "$${":
                return "${"
            name = match["name"]
            if not match["close"]:
                raise self.error(key, f"`${{{name}` is not closed", hint="write ${NAME}")
            if not _VAR_NAME.fullmatch(name):
                raise self.error(
                    key,
                    f"`${{{name}}}` is not a variable name",
                    hint="names are letters, digits and _; write $${ for a literal ${",
                )
            filled = variables[name] if name in variables else environ.get(name)
            if not filled and (top in unset_ok or "*" in unset_ok):
                return match[0]
            if not filled:  # never an empty string: that is how `image: repo:` gets deployed
                state = "is not set" if filled is None else "is set but empty"
                raise self.error(
                    key,
                    f"variable {name} {state}",
                    hint=f"pass --var {name}=value or export {name}",
                )
            if name not in self.public and top not in _NOT_SECRET:
                private.append(filled)
            return filled

        result = _VAR.sub(fill, value)
        if private:
            self.templates[key] = value
            for filled in (*private, result):
                register(filled)
        return result

    def validate(self, data: dict[str, Any]) -> Manifest:
        """The Manifest, or one error that lists every problem, the first by line in front."""
        try:
            return self._build(data)
        except ValidationError as exc:
            raise self._explain(exc.errors()) from None

    def check_keys(self, data: dict[str, Any]) -> None:
        """Refuse unknown keys only, for an overlay that is not loaded now."""
        try:
            self._build(data)
        except ValidationError as exc:
            unknown = [e for e in exc.errors() if e["type"] == "extra_forbidden"]
            if unknown:
                raise self._explain(unknown) from None

    def _build(self, data: dict[str, Any]) -> Manifest:
        """Validate; `path` and `lines` come from the loader, never from the YAML."""
        for name in _INTERNAL:
            if name in data:
                raise self.error(name, *self._unknown_key(name))
        with _no_pydantic_plugins():
            return Manifest.model_validate(
                {**data, "path": self.path, "lines": self.lines, "templates": self.templates}
            )

    def _explain(self, errors: list[ErrorDetails]) -> SafedeployError:
        """All of pydantic's errors as one, so a user fixes them in one pass, top to bottom."""
        problems = sorted(
            (self._problem(e) for e in errors),
            key=lambda p: _nearest_line(self.lines, p[0]) or 0,
        )
        key, what, hint = problems[0]
        for other_key, other_what, _ in problems[1:]:
            other_line = _nearest_line(self.lines, other_key) or 1
            other = location(self.path, other_line, self.written(other_key))
            what += f"\n  also {other}: {other_what}"
        return self.error(key, what, hint)

    def _problem(self, error: ErrorDetails) -> tuple[str, str, str | None]:
        """(dotted key, what, hint) for one pydantic error, in the words of the YAML."""
        key = ".".join(str(part) for part in error["loc"])
        name = key.rpartition(".")[2]
        kind = error["type"]
        if kind == "extra_forbidden":
            return key, *self._unknown_key(key)
        if kind == "missing":
            return key, f"missing required key `{name}`", f"add `{name}:`"
        if kind == "env_value":
            if error["input"] is None:
                return key, error["msg"], f'write {name}: "" for an empty value, or delete the line'
            return key, error["msg"], f'quote the value: {name}: "..." keeps it as written'
        if kind in _PLAIN_TYPES:
            what, hint = _PLAIN_TYPES[kind]
            return key, f"{what}, got {_kind(error['input'])}", hint
        return key, error["msg"].replace("Input should be", "expected"), _HINTS.get(kind, _ANY_HINT)

    def _unknown_key(self, key: str) -> tuple[str, str]:
        """What and hint for an unknown key, suggesting the closest known key for a typo."""
        parent, _, name = key.rpartition(".")
        known = _known_keys(parent)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys here: {', '.join(known)}"
        return f"unknown key `{name}`", hint

    def check_platform(self, manifest: Manifest) -> None:
        """The keys a platform cannot run without, and a service name it takes: caught at load,
        not halfway into a deploy (and before the name is ever part of a path)."""
        pattern, rule = _SERVICE_NAMES[manifest.platform]
        if not pattern.fullmatch(manifest.service):
            raise SafedeployError(
                f"`{manifest.service}` is not a {manifest.platform} service name",
                where=location(self.path, manifest.line_of("service"), "service"),
                hint=f"a {manifest.platform} service name has {rule}",
            )
        for key, example in _PLATFORM_NEEDS[manifest.platform].items():
            if not getattr(manifest, key):
                raise SafedeployError(
                    f"platform {manifest.platform} needs `{key}`",
                    where=location(self.path, manifest.line_of("platform"), key),
                    hint=f"add `{example}`",
                )


@contextmanager
def _no_pydantic_plugins() -> Iterator[None]:
    """While the models build: pydantic reads every installed package's entry points to find
    plugins (~10 ms), and these models use none. The variable is restored right after."""
    saved = os.environ.get(_NO_PLUGINS)
    os.environ[_NO_PLUGINS] = "__all__"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[_NO_PLUGINS]
        else:
            os.environ[_NO_PLUGINS] = saved


def _merge(
    base: dict[str, Any],
    overlay: dict[str, Any],
    lines: dict[str, int],
    overlay_lines: dict[str, int],
    prefix: str = "",
) -> dict[str, Any]:
    """Deep-merge an overlay: mappings merge, anything else replaces; `lines` follow the values."""
    merged = dict(base)
    for name, value in overlay.items():
        key = _join(prefix, name)
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = _merge(merged[name], value, lines, overlay_lines, key)
            continue
        replaced = merged.get(name)
        merged[name] = value
        if isinstance(replaced, dict | list) or isinstance(value, dict | list):
            # A list or mapping takes the lines of its items along, which needs a scan of
            # `lines`; a plain value has only its own line, so 1,000 overrides stay linear.
            for stale in [k for k in lines if _under(k, key)]:
                del lines[stale]
            lines.update({k: v for k, v in overlay_lines.items() if _under(k, key)})
        else:
            lines[key] = overlay_lines[key]
    return merged


def _overlay_lines(lines: dict[str, int], name: str) -> dict[str, int]:
    """The lines of one overlay, keyed as if it were the top level."""
    prefix = f"environments.{name}."
    return {k.removeprefix(prefix): v for k, v in lines.items() if k.startswith(prefix)}


def _known_keys(parent: str) -> list[str]:
    """The YAML keys allowed under a dotted key, for typo suggestions."""
    model: type[BaseModel] = Manifest
    for part in parent.split(".") if parent else ():
        if part.isdigit():
            continue
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        sub = _model_in(fields[part].annotation) if part in fields else None
        if sub is None:
            return []
        model = sub
    keys = [f.alias or n for n, f in model.model_fields.items() if not f.exclude]
    return [*keys, "environments"] if model is Manifest else keys


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as `Settings`, `list[ProbeSpec]` or `Expect | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found:
            return found
    return None


def _nearest_line(lines: Mapping[str, int], key: str) -> int | None:
    """A key absent from the file (a missing one, a merged default) points at its parent."""
    while key:
        if key in lines:
            return lines[key]
        key = key.rpartition(".")[0]
    return None


def _join(key: str, name: object) -> str:
    return f"{key}.{name}" if key else str(name)


def _under(key: str, parent: str) -> bool:
    return key == parent or key.startswith(parent + ".")


def _kind(value: object) -> str:
    """What YAML made of a value, in words, without repeating the value (it may be sensitive)."""
    if value is None:
        return "nothing"
    if isinstance(value, float) and not value.is_integer():
        return "a number with a fraction"
    for types, words in (
        (bool, "a boolean"),
        (int | float, "a number"),
        (str, "text"),
        (list, "a list"),
        (dict, "a mapping"),
    ):
        if isinstance(value, types):
            return words
    return f"a {type(value).__name__}"  # dates and times
