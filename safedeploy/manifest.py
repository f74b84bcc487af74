"""Load a manifest: YAML with line numbers -> `environments` overlay -> ${VARS} -> msgspec.

Every error names the file, the line and the key, and nothing is loaded half-way. What a
manifest may say is `schema`; reading the YAML file itself is `yaml_lines`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from msgspec import field

from safedeploy.errors import SafedeployError, location
from safedeploy.model import Platform, SecretRef, ServiceSpec
from safedeploy.redact import Sensitive, register
from safedeploy.schema import (
    Analysis,
    Document,
    Expect,
    ProbeSpec,
    Rollout,
    Settings,
    manifest_schema,
)
from safedeploy.validation import Problem, check
from safedeploy.yaml_lines import join, read_yaml

__all__ = [  # the models are defined in `schema` and used from here
    "AS_TEMPLATE",
    "FOR_READING",
    "Analysis",
    "Expect",
    "Manifest",
    "ProbeSpec",
    "Rollout",
    "Settings",
    "load_manifest",
    "manifest_schema",
]


class Manifest(Document, frozen=True):
    """A validated manifest with every ${VAR} filled and the --env overlay applied."""

    # Where the manifest came from, for errors and findings; not part of the YAML.
    path: Path = Path("-")
    lines: dict[str, int] = field(default_factory=dict)
    # dotted key -> the value as written, for each value a non-public ${VAR} filled
    templates: dict[str, str] = field(default_factory=dict)
    # A manifest that is no file (`exec` builds one): the flags that name its service instead.
    by_name: str = ""

    @property
    def argument(self) -> str:
        """How a command line names this manifest: its path, or the flags that name its service."""
        return self.by_name or shlex.quote(str(self.path))

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
        settings = msgspec.to_builtins(self.settings)  # a block (scaling) as a plain mapping
        return ServiceSpec(
            image=self.image,
            command=tuple(self.command or ()),
            env=env,
            settings={name: value for name, value in settings.items() if value is not None},
        )

    @property
    def declared(self) -> frozenset[str]:
        """The names this manifest owns: written as the last-applied names on deploy."""
        return frozenset(self.env) | frozenset(self.secrets)


_PLATFORM_NEEDS = {
    Platform.CLOUDRUN: {
        "image": "image: REGISTRY/NAME:TAG",
        "project": "project: PROJECT_ID",
        "region": "region: us-central1",
    },
    Platform.APPRUNNER: {"image": "image: REGISTRY/NAME:TAG", "region": "region: us-east-1"},
    Platform.ECS_EXPRESS: {"image": "image: REGISTRY/NAME:TAG", "region": "region: us-east-1"},
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
    Platform.ECS_EXPRESS: (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}"),
        "up to 255 letters, digits, hyphens and underscores, starting with a letter or digit",
    ),
}


_VAR = re.compile(r"\$\$\{|\$\{(?P<name>[^}]*)(?P<close>\}?)")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Where an unset ${VAR} may stay as written: commands that only read never use what a deploy
# sends; lint checks the manifest as a template, so no variable need be set.
FOR_READING = frozenset({"image", "command", "env"})
AS_TEMPLATE = frozenset({"*"})
_NOT_SECRET = {"image"}  # an image reference renders resolved: it is not a secret
# --- loading ---


def load_manifest(
    path: Path,
    *,
    env_name: str | None = None,
    variables: Mapping[str, str] = {},
    environ: Mapping[str, str] | None = None,
    unset_ok: frozenset[str] = frozenset(),
    text: str | None = None,
) -> Manifest:
    """Parse, overlay `environments[env_name]`, fill ${VARS}, validate: all of it or an error.

    `variables` (the --var flags) win over `environ` (default: the process environment).
    `unset_ok`: the top-level keys (FOR_READING, or AS_TEMPLATE for all) where an unset
    variable stays as written instead of being an error. `text`: a manifest that is no file
    (`exec` builds one from a command); `path` then names where it came from, in messages.
    """
    doc = _Doc(path, text)
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


class _Doc:
    """One manifest file being loaded, and the lines its errors point at."""

    def __init__(self, path: Path, text: str | None = None) -> None:
        self.path = path
        self.text = text  # the manifest's text when it is no file
        self.raw_lines: dict[str, int] = {}  # every key as written, `environments.*` included
        self.lines = self.raw_lines  # the keys of the manifest being checked now
        self.overlay: str | None = None  # the environment merged into it, if any
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
        tree, self.raw_lines = read_yaml(self.path, self.text)
        self.lines = self.raw_lines
        if not isinstance(tree, dict):
            what = "the manifest is empty" if tree is None else "the manifest is not a mapping"
            raise self.error("", what, hint="start it with `service: NAME` and `platform: ...`")
        return tree

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
        from difflib import get_close_matches  # only when there is an error to word

        close = get_close_matches(name, known, n=1)
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
                k: self.interpolate(v, join(key, k), variables, environ, unset_ok=unset_ok)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [
                self.interpolate(v, join(key, i), variables, environ, unset_ok=unset_ok)
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
        checked = check(data)
        if isinstance(checked, list):
            raise self._explain(checked)
        fields = msgspec.structs.asdict(checked)
        return Manifest(**fields, path=self.path, lines=self.lines, templates=self.templates)

    def check_keys(self, data: dict[str, Any]) -> None:
        """Refuse unknown keys only, for an overlay that is not loaded now."""
        checked = check(data)
        unknown = [p for p in checked if p.unknown_key] if isinstance(checked, list) else []
        if unknown:
            raise self._explain(unknown)

    def _explain(self, problems: list[Problem]) -> SafedeployError:
        """All the problems as one error, so a user fixes them in one pass, top to bottom."""
        problems = sorted(problems, key=lambda p: _nearest_line(self.lines, p.key) or 0)
        first, *others = problems
        what = first.what
        for other in others:
            other_line = _nearest_line(self.lines, other.key) or 1
            what += (
                f"\n  also {location(self.path, other_line, self.written(other.key))}: {other.what}"
            )
        return self.error(first.key, what, first.hint)

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
        key = join(prefix, name)
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


def _nearest_line(lines: Mapping[str, int], key: str) -> int | None:
    """A key absent from the file (a missing one, a merged default) points at its parent."""
    while key:
        if key in lines:
            return lines[key]
        key = key.rpartition(".")[0]
    return None


def _under(key: str, parent: str) -> bool:
    return key == parent or key.startswith(parent + ".")
