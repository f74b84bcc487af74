"""What the deploy commands of one script add up to: a draft manifest per service."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safedeploy.convert.shell import PLACEHOLDER, ShellText, hidden
from safedeploy.redact import is_sensitive_name

_PUBLIC_MARKERS = ("PUBLIC", "PUBLISHABLE")  # names public by design, as lint's SD104 has it


@dataclass(frozen=True)
class Held:
    """A credential the script passed in plain text: the manifest names a secret to create.
    `text` is the value as manifest text, for `exec`, which deploys it; convert never writes it."""

    reason: str
    text: str = field(repr=False)


@dataclass
class Draft:
    """One service as the script leaves it: each command applied the way gcloud or AWS would."""

    platform: str
    service: str
    project: str | None
    region: str | None
    lines: list[int]
    image: str | None = None
    command: list[str] | None = None
    env: dict[str, str | Held] = field(default_factory=dict)
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (secret, version)
    remove: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[str | None, str]] = field(default_factory=list)  # (about variable, text)
    unknown: list[str] = field(default_factory=list)
    # "env" or "secrets" -> what replaced every live one of that kind (`--set-env-vars`, ...)
    replaced: dict[str, str] = field(default_factory=dict)

    def note(self, text: str, variable: str | None = None) -> None:
        """A remark for the header; one about a variable shows only if the manifest uses it."""
        self.notes.append((variable, f"line {self.lines[-1]}: {text}"))

    def not_understood(self, text: str) -> None:
        self.unknown.append(f"{text} (line {self.lines[-1]})")

    def set_env(self, name: str, value: str, origin: str) -> None:
        """A plain value, unless it may be a credential: then a secret to create, and no value.

        `password=` inside a DSN counts, since a manifest is committed where many can read it;
        a ${VAR} in it does not, as lint's SD104 has it: that part comes from outside.
        """
        self._declare(name)
        sensitive = is_sensitive_name(name) and not any(m in name.upper() for m in _PUBLIC_MARKERS)
        if not (hidden(PLACEHOLDER.sub("", value)) or (sensitive and value)):
            self.env[name] = value
            return
        then = "name it here" if self.platform == "cloudrun" else "put its ARN here"
        reason = f"SD104: was a plain value in {origin}; create the secret and {then}"
        self.env[name] = Held(reason, value)

    def set_secret(self, name: str, secret: str, version: str) -> None:
        self._declare(name)
        self.secrets[name] = (secret, version)

    def drop(self, name: str) -> None:
        self._declare(name)
        self.remove.append(name)

    def replace_env(self, what: str) -> None:
        """--set-env-vars and its kin replace every variable: the trap safedeploy exists for."""
        self.env.clear()
        self.replaced["env"] = what
        self.note(
            f"{what} replaces every variable; safedeploy keeps the live ones this manifest "
            "does not name (unmanaged: keep) and shows them in the plan"
        )

    def replace_secrets(self, what: str) -> None:
        """--set-secrets and its kin replace every secret, as --set-env-vars does plain values."""
        self.secrets.clear()
        self.replaced["secrets"] = what

    def _declare(self, name: str) -> None:
        """A name is an env var or a secret, never both, and never also removed."""
        self.env.pop(name, None)
        self.secrets.pop(name, None)
        if name in self.remove:
            self.remove.remove(name)


@dataclass
class Script:
    """One script being read: its shell text, the folder it names files from, its drafts."""

    shell: ShellText
    base_dir: Path
    drafts: list[Draft] = field(default_factory=list)

    def draft(
        self, line: int, platform: str, service: str, project: str | None, region: str | None
    ) -> Draft:
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
        draft = Draft(platform, service, project, region, lines=[line])
        self.drafts.append(draft)
        return draft


def _agrees(one: str | None, other: str | None) -> bool:
    return one is None or other is None or one == other
