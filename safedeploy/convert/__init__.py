"""`safedeploy convert`: one manifest per service, from the deploy commands of a shell script.

Retiring `deploy-prod.sh` must not mean re-typing forty variables, nor copying a pasted password
into a manifest: a value that looks like a credential becomes a `secrets:` entry to fill in, and
never appears in the output. What a command says that the manifest cannot carry is listed.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from safedeploy.convert import aws, gcloud
from safedeploy.convert.draft import Draft, Script
from safedeploy.convert.render import converted_from, render
from safedeploy.convert.shell import ShellText, parse_flags, split, without_redirections
from safedeploy.errors import SafedeployError, location


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
    commands, substitutions = split(text.replace("\r\n", "\n"), source)
    script = Script(ShellText(substitutions), base_dir)
    for line, command in commands:
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise SafedeployError(
                f"cannot read this command: {exc}", where=location(source, line)
            ) from None
        read_deploy(script, line, without_redirections(words))
    taken: set[str] = set()
    return [
        ConvertedManifest(
            service=draft.service,
            platform=draft.platform,
            filename=_filename(draft.service, taken),
            yaml=render(draft, converted_from(draft, source)),
            not_understood=tuple(draft.unknown),
        )
        for draft in script.drafts
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


def read_deploy(script: Script, line: int, words: list[str]) -> Draft | None:
    """Fold one command into its service's draft, when it is a deploy command: that draft."""
    tools = [i for i, w in enumerate(words) if w.rpartition("/")[2] in ("gcloud", "aws")]
    if not tools:
        return None
    tool = words[tools[0]].rpartition("/")[2]
    positionals, flags = parse_flags(
        words[tools[0] + 1 :], aws.LISTS if tool == "aws" else frozenset()
    )
    if tool == "gcloud" and positionals[:1] in (["alpha"], ["beta"]):
        positionals = positionals[1:]
    verbs = gcloud.VERBS if tool == "gcloud" else aws.VERBS
    verb = next((v for v in verbs if positionals[: len(v)] == v), None)
    if verb is None:
        return None
    rest = positionals[len(verb) :]
    if tool == "gcloud":
        draft = gcloud.read(script, line, rest[0] if rest else None, flags)
        rest = rest[1:]  # the first is the service
    else:
        draft = aws.read(script, line, flags)
    for word in rest:
        draft.not_understood(f"the argument {script.shell.shown(word)}")
    for variable, remark in script.shell.remarks:
        draft.note(remark, variable)
    script.shell.remarks.clear()
    return draft


def _filename(service: str, taken: set[str]) -> str:
    """SERVICE.yaml, made safe as a file name and unique within one script."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "", service.replace("${", "")).strip(".") or "service"
    name, n = f"{stem}.yaml", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.yaml"
    taken.add(name)
    return name
