"""What a manifest may say: msgspec Structs with their constraints, YAML's shorthands, JSON Schema.

msgspec checks types and bounds; what it cannot express (a regex that compiles, a probe path,
header names, rollout steps, a probe URL) is checked in `__post_init__` and raised as `Invalid`,
which names the field. `manifest` reads the YAML and turns failures into file:line errors.

No `from __future__ import annotations` here: msgspec would evaluate the annotations' text on
the first load (a few ms on every command); as objects they cost less, once, at import.
"""

import re
from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, Struct, field

from safedeploy.model import Platform, SecretRef


class Invalid(ValueError):
    """A value msgspec's types cannot judge: what is wrong, what to write, and which field."""

    def __init__(self, what: str, hint: str, key: str | None = None) -> None:
        super().__init__(what)
        self.what, self.hint, self.key = what, hint, key


# --- shorthands YAML may use, read into a field's value before msgspec validates it ---

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_DURATION_HINT = 'write seconds (30) or a duration: "30s", "500ms", "5m", "1h"'
_DURATION_SCHEMA = {
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": rf"^{_DURATION.pattern}$"}],
    "description": 'seconds: a number, or a duration like "30s", "500ms", "5m", "1h"',
}


def seconds(value: object) -> object:
    """Read `2`, `"2s"`, `"500ms"`, `"5m"` as seconds, so YAML can say durations the usual way."""
    if isinstance(value, bool):
        raise Invalid("expected a duration, not true/false", _DURATION_HINT)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if not match:
            raise Invalid("expected a duration", _DURATION_HINT)
        return float(match[1]) * _UNIT_SECONDS[match[2]]
    return value


_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")
_PERCENT_HINT = 'write a percentage: "1%", "0.5%"'
_PERCENT_SCHEMA = {
    "type": "string",
    "pattern": rf"^{_PERCENT.pattern}$",
    "description": 'a percentage, like "1%" or "0.5%"',
}


def share(value: object) -> object:
    """Read `"1%"` as the share 0.01; a share is written as a percentage, never a bare number,
    so `1` cannot be taken for 1% or 100%."""
    if isinstance(value, str):
        match = _PERCENT.fullmatch(value.strip())
        if match:
            return float(match[1]) / 100
    raise Invalid("expected a percentage", _PERCENT_HINT)


def cpu_text(value: object) -> object:
    """`cpu: 1` and `cpu: 0.5` are how people write CPUs; keep them as the text the API takes."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


_ARN = re.compile(r"arn:[a-z-]+:(secretsmanager|ssm):\S+")
_RESOURCE = re.compile(r"projects/([^/\s]+)/secrets/([^/\s]+)(?:/versions/([^/\s]+))?")
_SHORT = re.compile(r"([^:\s]+)(?::([^:\s/]+))?")
_VERSION = re.compile(r"[^:\s/]+")
_SECRET_HINT = (
    "write a secret name (database-url), name:version (database-url:7), "
    '{secret: database-url, version: "7"}, projects/P/secrets/S[/versions/V], '
    "or an arn:aws:secretsmanager:... / arn:aws:ssm:... ARN"
)
_SECRET_SCHEMA = {
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


def _secret_text(text: str) -> SecretRef:
    """`name`, `name:version`, a Secret Manager resource name, or an ARN (whole: it has colons)."""
    if not text.strip():
        raise Invalid("the secret reference is empty", _SECRET_HINT)
    if text.startswith("arn:"):
        if not _ARN.fullmatch(text):
            raise Invalid("not a Secrets Manager or SSM parameter ARN", _SECRET_HINT)
        return SecretRef(text)
    if text.startswith("projects/"):
        match = _RESOURCE.fullmatch(text)
        if not match:
            raise Invalid("not a Secret Manager resource name", _SECRET_HINT)
        return SecretRef(f"projects/{match[1]}/secrets/{match[2]}", match[3] or "latest")
    match = _SHORT.fullmatch(text)
    if not match:
        raise Invalid("not a secret reference", _SECRET_HINT)
    return SecretRef(match[1], match[2] or "latest")


def secret_ref(value: object) -> SecretRef:
    """Turn each shorthand of DESIGN.md into a SecretRef; a reference is never a value."""
    if isinstance(value, SecretRef):
        return value
    if isinstance(value, str):
        return _secret_text(value)
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a secret reference, got {kind(value)}", _SECRET_HINT)
    unknown = sorted(set(value) - {"secret", "version"}, key=str)
    if unknown:
        raise Invalid(f"unknown key `{unknown[0]}` in a secret reference", _SECRET_HINT)
    secret, version = value.get("secret"), value.get("version")
    if not isinstance(secret, str):
        raise Invalid("`secret:` must name the secret", _SECRET_HINT)
    ref = _secret_text(secret)
    if version is None:
        return ref
    if ref.version != "latest":
        raise Invalid("the version is given twice", _SECRET_HINT)
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise Invalid("`version:` must be a version number or alias", _SECRET_HINT)
    return SecretRef(ref.secret, version)


# Where YAML may write a shorthand: dotted path (`*` is every item or key) -> (read, JSON Schema
# of what may be written there). The loader reads them before msgspec validates the rest.
SHORTHANDS: dict[str, tuple[Callable[[object], object], dict[str, Any]]] = {
    "settings.cpu": (cpu_text, {"type": ["string", "number"]}),
    "settings.timeout": (seconds, _DURATION_SCHEMA),  # whole seconds: "5m", not "1.5s"
    "probes.*.interval": (seconds, _DURATION_SCHEMA),
    "probes.*.timeout": (seconds, _DURATION_SCHEMA),
    "probes.*.expect.max_latency": (seconds, _DURATION_SCHEMA),
    "rollout.analysis.interval": (seconds, _DURATION_SCHEMA),
    "rollout.analysis.max_latency_p95": (seconds, _DURATION_SCHEMA),
    "rollout.analysis.max_error_rate": (share, _PERCENT_SCHEMA),
    "secrets.*": (secret_ref, _SECRET_SCHEMA),
}


def kind(value: object) -> str:
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


# --- the Structs ---


class _Strict(Struct, frozen=True, forbid_unknown_fields=True):
    """A part of the manifest: unknown keys are errors, and a loaded value never changes."""


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")  # control characters and the space


class Expect(_Strict, frozen=True):
    status: Annotated[int, Meta(ge=100, le=599)] = 200
    json_subset: dict[str, Any] | None = field(default=None, name="json")
    contains: str | None = None  # a substring the body must contain
    regex: str | None = None  # a regular expression the body must match (re.search)
    max_latency: Annotated[float, Meta(gt=0)] | None = None  # seconds; "2s" in YAML

    def __post_init__(self) -> None:
        """A regex that cannot compile fails every attempt: refuse it before any deploy."""
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise Invalid(
                    f"not a regular expression: {exc}",
                    "fix the pattern (Python `re` syntax), or use `contains:` for plain text",
                    "regex",
                ) from None


class ProbeSpec(_Strict, frozen=True):
    """One HTTP smoke check against the new revision, retried until it holds or times out.

    Every field is checked at load: a probe that cannot run would fail only after a revision
    was started, turning a typo into a rollback.
    """

    name: str
    path: str = "/"
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expect: Expect = field(default_factory=Expect)
    retries: Annotated[int, Meta(ge=0)] = 10  # failed attempts allowed before the probe fails
    interval: Annotated[float, Meta(ge=0)] = 1.0  # seconds between attempts ("500ms")
    successes: Annotated[int, Meta(ge=1)] = 1  # consecutive passing attempts needed
    timeout: Annotated[float, Meta(gt=0)] = 30.0  # seconds for the whole probe ("1m")

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or _CONTROL.search(self.path):
            raise Invalid(
                "a probe path starts with / and has no spaces",
                "write the path from the service's root, e.g. /health",
                "path",
            )
        hint = "header names are letters, digits and -; a value is one line"
        for name, value in self.headers.items():  # a CR or LF would split the request
            if not _TOKEN.fullmatch(name):
                raise Invalid(f"`{name[:40]}` is not a header name", hint, "headers")
            if _CONTROL.search(value.replace(" ", "").replace("\t", "")):
                what = f"the value of `{name}` holds a line break or control character"
                raise Invalid(what, hint, "headers")  # the value itself is never echoed


class Scaling(_Strict, frozen=True, omit_defaults=True):
    """ecs-express: task count bounds and the metric to track. ECS replaces the block whole:
    what it does not state takes ECS's default."""

    min: Annotated[int, Meta(ge=0)] | None = None
    max: Annotated[int, Meta(ge=1)] | None = None
    metric: Literal["AVERAGE_CPU", "AVERAGE_MEMORY", "REQUEST_COUNT_PER_TARGET"] | None = None
    target: Annotated[int, Meta(ge=1)] | None = None


class Network(_Strict, frozen=True, omit_defaults=True):
    """ecs-express: where the tasks run. ECS replaces the block whole, as for scaling."""

    subnets: list[str] | None = None
    security_groups: list[str] | None = None


class Settings(_Strict, frozen=True):
    """Platform settings safedeploy can declare; an unset one is left as it is live."""

    cpu: str | None = None  # `1` and `0.5` in YAML become text
    memory: str | None = None
    timeout: int | None = None  # seconds; "300s" and "5m" are accepted in YAML
    concurrency: int | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    service_account: str | None = None
    instance_role: str | None = None  # apprunner: the IAM role ARN the service runs as
    access_role: str | None = None  # apprunner: the IAM role ARN it pulls a private ECR image with
    vpc_connector: str | None = None
    egress: str | None = None
    cloudsql_instances: list[str] | None = None
    ingress: str | None = None
    labels: dict[str, str] | None = None
    port: int | None = None
    task_role: str | None = None  # ecs-express: the IAM role ARN the tasks run as
    health_check_path: str | None = None
    cpu_architecture: Literal["X86_64", "ARM64"] | None = None
    scaling: Scaling | None = None
    network: Network | None = None


class Analysis(_Strict, frozen=True):
    """Each canary step (an App Runner bake) judged by the traffic it took (analysis.py)."""

    interval: Annotated[float, Meta(gt=0)] = 120.0  # seconds a step takes traffic ("2m")
    max_error_rate: Annotated[float, Meta(ge=0, le=1)] = 0.01  # 5xx share ("1%")
    max_latency_p95: Annotated[float, Meta(gt=0)] | None = None  # seconds ("800ms")
    min_requests: Annotated[int, Meta(ge=1)] = 50  # fewer: inconclusive
    inconclusive: Literal["rollback", "promote"] = "rollback"


class Rollout(_Strict, frozen=True):
    strategy: Literal["canary", "all-at-once"] = "all-at-once"
    steps: list[int] = field(default_factory=lambda: [100])
    analysis: Analysis | None = None

    def __post_init__(self) -> None:
        """Traffic only moves forward and always ends with the new revision serving all of it."""
        steps = self.steps
        in_range = all(1 <= step <= 100 for step in steps)
        increasing = all(a < b for a, b in pairwise(steps))
        if not (steps and in_range and increasing and steps[-1] == 100):
            raise Invalid(
                "steps must be increasing percentages from 1 to 100, ending at 100",
                "e.g. steps: [10, 50, 100]",
                "steps",
            )


class Document(_Strict, frozen=True):
    """One manifest as YAML states it, every ${VAR} filled and the --env overlay applied."""

    service: str
    platform: Platform
    project: str | None = None
    region: str | None = None
    cluster: str = "default"  # ecs-express
    execution_role: str | None = None  # ecs-express: needed to create the service
    infrastructure_role: str | None = None  # ecs-express: needed to create the service
    image: str | None = None
    command: list[str] | None = None  # local platform: argv instead of an image
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, SecretRef] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    unmanaged: Literal["keep", "remove", "fail"] = "keep"
    settings: Settings = field(default_factory=Settings)
    probes: list[ProbeSpec] = field(default_factory=list)
    rollout: Rollout = field(default_factory=Rollout)
    rollback: Literal["auto", "off"] = "auto"
    probe_url: str | None = None
    probe_auth: Literal["id-token"] | None = None
    container: str | None = None
    history: str | None = None
    depends_on: list[str] = field(default_factory=list)
    public: Annotated[
        list[str],
        Meta(
            description="variables whose ${VAR} fills may be shown in plans (say GIT_SHA); "
            "every other fill is shown as its template"
        ),
    ] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Code may name the platform as text; every caller compares against the enum.
        msgspec.structs.force_setattr(self, "platform", Platform(self.platform))
        url = self.probe_url  # a template (lint) is judged once it is filled
        if url is None or "${" in url:
            return
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or _CONTROL.search(url):
            raise Invalid(
                "not an http:// or https:// URL with a host",
                "e.g. probe_url: https://api.example.com",
                "probe_url",
            )


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of the YAML users write (for editors), shorthands and `environments`."""
    generated = msgspec.json.schema(Document)
    definitions = generated["$defs"]
    for path, (_, written) in SHORTHANDS.items():
        _write_shorthand(definitions, definitions["Document"], path.split("."), written)
    del definitions["SecretRef"]  # secrets are written as shorthands only
    schema = definitions.pop("Document")
    properties = schema["properties"]
    overlay = {"type": "object", "properties": dict(properties), "additionalProperties": False}
    properties["environments"] = {
        "type": "object",
        "description": "name -> partial manifest, deep-merged over the top level by --env NAME",
        "additionalProperties": overlay,
    }
    schema["title"] = "safedeploy manifest (v1)"
    schema["description"] = "One service per file; `safedeploy schema` prints this schema."
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "$defs": definitions,
    }


def _write_shorthand(
    definitions: dict[str, Any], node: dict[str, Any], parts: list[str], written: dict[str, Any]
) -> None:
    """Put what YAML may write at `parts` in place of the generated schema of the value."""
    if "anyOf" in node:  # `X | None`: the shorthand stands for X
        node = next(branch for branch in node["anyOf"] if branch.get("type") != "null")
    if "$ref" in node:
        node = definitions[node["$ref"].rpartition("/")[2]]
    part, *rest = parts
    if part == "*":
        holder, name = node, "items" if node["type"] == "array" else "additionalProperties"
    else:
        holder, name = node["properties"], part
    if rest:
        _write_shorthand(definitions, holder[name], rest, written)
    elif "anyOf" in holder[name]:
        holder[name] = {"anyOf": [written, {"type": "null"}], "default": None}
    else:
        holder[name] = {**written, **{k: v for k, v in holder[name].items() if k == "default"}}
