"""One deploy command as the shell handed it to `safedeploy exec`, as a manifest.

The command is read as `convert` reads a script's (every flag it understands, AWS shorthand
included), after the shell has expanded it: so each value an exported variable filled is traced
back to that variable and written `${NAME}`, and is sensitive by where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from safedeploy.convert import read_deploy
from safedeploy.convert.draft import Draft, Held, Script
from safedeploy.convert.render import render
from safedeploy.convert.shell import DOLLAR, ShellText, literal
from safedeploy.errors import SafedeployError
from safedeploy.redact import is_sensitive_name, register

_FILLED = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # how a manifest fills text
ORIGIN = "Made by `safedeploy exec` from the command it was given."
TRACED_MIN_LENGTH = 8  # shorter values (`true`, `8080`) are found everywhere by chance
# The shell's, CI's and the deploy tools' own variables: a value holding one of theirs did not
# come from the deploy's configuration. A name that says credential counts all the same.
_OWN = re.compile(
    r"_|CI|CIRCLECI|COLORTERM|DISPLAY|EDITOR|HOME|HOSTNAME|LANG|LANGUAGE|LOGNAME|MAIL|OLDPWD|PAGER"
    r"|PATH|PWD|SHELL|SHLVL|TEMP|TERM|TMP|TMPDIR|TZ|USER|VIRTUAL_ENV|VISUAL|PYTHON.*"
    r"|(?:ACTIONS|BITBUCKET|BUILDKITE|CI|CIRCLE|GITHUB|GITLAB|JENKINS|RUNNER|TRAVIS)_.*"
    r"|(?:LC|SSH|TERM|XDG|AWS|CLOUDSDK|GOOGLE|SAFEDEPLOY)_.*"
)
# What convert only remarks on, and exec cannot carry out: what to do instead.
_INVOKERS = (
    "who may invoke the service is IAM policy, which safedeploy leaves as it is: drop the flag "
    "(grant roles/run.invoker once with `gcloud run services add-iam-policy-binding`)"
)
_REFUSED = {
    "--allow-unauthenticated": _INVOKERS,
    "--no-allow-unauthenticated": _INVOKERS,
    "--profile": "safedeploy uses boto3's credential chain: drop the flag, export AWS_PROFILE",
}
# Where gcloud and the AWS CLI look for what a command does not say: key -> (flag, variables).
_DEFAULTS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "cloudrun": {
        "project": ("--project", ("CLOUDSDK_CORE_PROJECT",)),
        "region": ("--region", ("CLOUDSDK_RUN_REGION",)),
    },
    "apprunner": {"region": ("--region", ("AWS_REGION", "AWS_DEFAULT_REGION"))},
}
_STAND_IN = "the-live-image"  # loads a manifest that names no image; Command.names_image says so


@dataclass(frozen=True)
class Command:
    """What the command would deploy, as a draft manifest, and the variables its values use."""

    draft: Draft
    variables: dict[str, str] = field(repr=False)  # NAME -> value, for each ${NAME} in it

    @property
    def names_image(self) -> bool:
        return self.draft.image is not None

    @property
    def tool(self) -> str:
        """Who replaces every variable when the command says so, as the plan words it."""
        return "gcloud" if self.draft.platform == "cloudrun" else "App Runner"

    def manifest(self, probes: Sequence[str] = (), *, deployed: bool = False) -> str:
        """The manifest's text: as `convert` would write it (a credential becomes a secret to
        create), or `deployed`, holding every value the command passes."""
        notes = [(about, text.removeprefix("line 1: ")) for about, text in self.draft.notes]
        draft = replace(self.draft, notes=notes)  # one command: no line to point at
        if deployed:
            env: dict[str, str | Held] = {
                n: v.text if isinstance(v, Held) else v for n, v in draft.env.items()
            }
            draft = replace(draft, env=env, image=draft.image or _STAND_IN)
        return render(draft, ORIGIN, [literal(path) for path in probes])


def read_command(words: Sequence[str], environ: Mapping[str, str], base_dir: Path) -> Command:
    """The command after `exec --`; anything it says that cannot be carried out is an error
    naming it, before anything is read. `base_dir`: where `file://` and --env-vars-file are."""
    tool = words[0].rpartition("/")[2] if words else ""
    if tool not in ("gcloud", "aws"):
        raise SafedeployError(
            f"exec runs a gcloud or aws deploy command, not `{' '.join(words[:1])}`",
            hint="safedeploy exec -- gcloud run deploy SERVICE ...; for a script, "
            "`safedeploy convert SCRIPT` writes manifests",
        )
    sources = _exported(environ)
    script = Script(ShellText([]), base_dir)
    draft = read_deploy(script, 1, [word.replace("$", DOLLAR) for word in words])
    if draft is None:
        raise SafedeployError(
            "not a deploy command exec can run",
            hint="exec runs `gcloud run deploy`, `gcloud run services update`, "
            "`aws apprunner create-service` and `aws apprunner update-service`",
        )
    refused = [_shown(item.removesuffix(" (line 1)"), sources) for item in draft.unknown]
    for word in words:
        flag = word.partition("=")[0]
        if flag in _REFUSED:
            refused.append(f"{flag}: {_REFUSED[flag]}")
    if refused:
        raise SafedeployError(
            "exec cannot carry out all this command says; nothing was read or changed:\n  "
            + "\n  ".join(refused),
            hint="drop what it cannot carry (what is live for it stays as it is), "
            "or move to a manifest: `safedeploy convert` lists the same",
        )
    _fill_defaults(draft, environ)
    return Command(draft, _trace(draft, sources))


def named_service(
    platform: str,
    service: str,
    project: str | None,
    region: str | None,
    environ: Mapping[str, str],
) -> Command:
    """A service named by flags, not by a command (`status --platform cloudrun --service S …`):
    what exec would read for it, with the project and region found where exec finds them."""
    draft = Draft(
        platform, literal(service), project and literal(project), region and literal(region), []
    )
    _fill_defaults(draft, environ)
    return Command(draft, {})


def _fill_defaults(draft: Draft, environ: Mapping[str, str]) -> None:
    """The service, project and region: the command's, or where its tool looks for them."""
    if draft.service == "${SERVICE}":  # every `$` of the command is literal: none of its own
        raise SafedeployError("the command names no service", hint="name the service to deploy")
    for key, (flag, variables) in _DEFAULTS[draft.platform].items():
        if getattr(draft, key):
            continue
        value = next((environ[v] for v in variables if environ.get(v)), None)
        if value is None:
            raise SafedeployError(
                f"the command names no {key}, and {' and '.join(variables)} "
                f"{'is' if len(variables) == 1 else 'are'} not set",
                hint=f"add {flag} to the command (safedeploy does not read the CLI's config)",
            )
        setattr(draft, key, literal(value))


def _exported(environ: Mapping[str, str]) -> dict[str, str]:
    """value -> NAME of each exported variable a value of the command may have come from."""
    found: dict[str, str] = {}
    for name in sorted(environ):
        value = environ[name]
        own = _OWN.fullmatch(name) is not None
        if len(value) >= TRACED_MIN_LENGTH and (is_sensitive_name(name) or not own):
            found.setdefault(value, name)
    return found


def _pattern(sources: Mapping[str, str]) -> re.Pattern[str] | None:
    """The exported values, longest first, so that a value inside another is not taken first."""
    if not sources:
        return None
    return re.compile("|".join(re.escape(v) for v in sorted(sources, key=len, reverse=True)))


def _shown(text: str, sources: Mapping[str, str]) -> str:
    """Text as a message may show it: each exported value as ${NAME}."""
    pattern = _pattern(sources)
    return text if pattern is None else pattern.sub(lambda m: "${" + sources[m[0]] + "}", text)


def _trace(draft: Draft, sources: Mapping[str, str]) -> dict[str, str]:
    """Write each env value that holds an exported value as a template of it; the variables
    those templates use. Every such value, and every credential passed in plain text, is
    registered with the scrubber, so no output shows it."""
    pattern = _pattern(sources)
    variables: dict[str, str] = {}
    for name, value in list(draft.env.items()):  # each set again in turn: the order stays
        text = value.text if isinstance(value, Held) else value
        raw = text.replace("$${", "${")
        if isinstance(value, Held):
            register(raw)
        found = [] if pattern is None else pattern.findall(raw)
        for fill in found:
            register(fill)
        template = _template(raw, pattern, sources) if pattern and found else None
        if template is not None:
            variables.update((sources[fill], fill) for fill in found)
        draft.set_env(name, template or text, "the command")
    return variables


def _template(raw: str, pattern: re.Pattern[str], sources: Mapping[str, str]) -> str | None:
    """`raw` as manifest text with each exported value a ${NAME}; None where the manifest cannot
    say so (a literal `$` right before one): the value then stays as it is, scrubbed."""
    parts: list[str] = []
    last = 0
    for match in pattern.finditer(raw):
        parts += [literal(raw[last : match.start()]), "${" + sources[match[0]] + "}"]
        last = match.end()
    template = "".join([*parts, literal(raw[last:])])
    values = {name: value for value, name in sources.items()}
    filled = _FILLED.sub(lambda m: "${" if m[1] is None else values[m[1]], template)
    return template if filled == raw else None
