"""`safedeploy exec -- gcloud run deploy …`: the command a deploy script already runs, carried
out as a release like any other (read live, merge, plan, confirm, apply, probe, roll back).

The one behaviour that differs from the raw command is said in the plan: the live variables it
does not name are kept, and `--replace-env` drops them as the command itself would. Only click
is imported before the command runs, as in `cli`: the rest costs every other command nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from safedeploy.errors import ExitCode, SafedeployError
from safedeploy.session import Session

if TYPE_CHECKING:
    from safedeploy.context import Context
    from safedeploy.convert.command import Command
    from safedeploy.fleet import Fleet
    from safedeploy.manifest import Manifest
    from safedeploy.plan import Plan

ORIGIN = Path("exec")  # what messages name as the manifest; state goes beside it, in ./
F = TypeVar("F", bound=Callable[..., Any])
_EITHER = (
    "pass a MANIFEST, or --platform and --service (with --project, --region) as exec took them"
)


@click.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("words", metavar="-- COMMAND...", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "--dry-run", is_flag=True, help="Show the plan only; exit 2 when it changes anything."
)
@click.option("--probe", "probes", multiple=True, metavar="PATH", help="Probe PATH; repeatable.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="json: the plan (--dry-run) or what happened, for scripts on stdout.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--replace-env", is_flag=True, help="Drop the live variables it does not name, as it would."
)
@click.option("--print-manifest", is_flag=True, help="Print the manifest the command stands for.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SAFEDEPLOY_STATE_DIR",
    help="Where local state and history live [default: .safedeploy/ here].",
)
@click.pass_obj
def exec_command(
    session: Session,
    words: tuple[str, ...],
    dry_run: bool,
    probes: tuple[str, ...],
    fmt: str,
    yes: bool,
    replace_env: bool,
    print_manifest: bool,
    state_dir: Path | None,
) -> int:
    """Carry out a `gcloud run deploy` or `aws apprunner` deploy command merge-safely:
    `safedeploy exec [OPTIONS] -- gcloud run deploy SERVICE ...`."""
    from safedeploy.convert.command import read_command

    command = read_command(words, session.environment.environ, Path.cwd())
    if print_manifest:
        session.echo(command.manifest(probes), nl=False)
        return ExitCode.OK
    fleet, plan = _plan(session.context(state_dir), command, probes, replace_env)
    notes = _notes(plan, command, replace_env)
    if dry_run:
        return _show(session, plan, notes, fmt)
    return _deploy(session, fleet, plan, notes, yes=yes, as_json=fmt == "json")


def _show(session: Session, plan: Plan, notes: list[str], fmt: str) -> int:
    """--dry-run: the plan, and its exit code as `plan --detailed-exitcode` gives it."""
    from safedeploy.render import render

    as_json = fmt == "json"
    color = session.environment.color and not as_json
    session.echo(render([plan], "json" if as_json else "text", color=color), color=color)
    for note in notes:
        session.echo(note, err=as_json)
    session.step_summary("\n\n".join([render([plan], "markdown"), *notes]))
    return ExitCode.of(failed=not plan.ok, changes=plan.has_changes)


def _deploy(
    session: Session, fleet: Fleet, plan: Plan, notes: list[str], *, yes: bool, as_json: bool
) -> int:
    """What `deploy` does with a plan: show it, confirm, deploy, report."""
    from safedeploy.fleet import worst
    from safedeploy.progress import display
    from safedeploy.render import render, render_runs

    env = session.environment
    color = env.color and (env.stderr_tty or not as_json)  # json: the plan goes to stderr
    session.echo(render([plan], "text", color=color), err=as_json, color=color)
    for note in notes:
        session.echo(note, err=as_json)
    if not plan.ok:
        raise SafedeployError(
            "the plan has errors; nothing was changed", hint="fix the findings above"
        )
    if plan.has_changes and not yes:
        session.confirm()
    session.signals.phase = "deploy"
    terminal = env.stderr if env.stderr_tty else None
    with display(fleet.services, terminal=terminal, write=session.say) as progress:
        runs = fleet.deploy([plan], rollback=True, progress=progress)
    session.signals.phase = "ended"
    session.echo("\n" + render_runs(runs, "text"), err=as_json)
    if as_json:
        session.echo(render_runs(runs, "json"))
    session.step_summary(render_runs(runs, "markdown"))
    return worst(runs)


def _plan(
    context: Context, command: Command, probes: Sequence[str], replace_env: bool
) -> tuple[Fleet, Plan]:
    """Plan the command against the live service. What the service has besides what the command
    names is kept, unless `--replace-env` (or a --clear-* flag) drops it: then it is planned
    again with those names in `remove`, so that the plan shows each one dropped."""
    import msgspec

    manifest = _manifest(command, probes)
    fleet, plan = _plan_one(context, manifest)
    if not plan.target.image:  # the command names none, and there is no live one to keep
        raise SafedeployError(
            f"{plan.service} does not exist yet, and the command names no image; "
            "nothing was changed",
            hint="name the image to create it with",
        )
    dropped = _dropped(plan, command, replace_env)
    if not dropped:
        return fleet, plan
    return _plan_one(
        context, msgspec.structs.replace(manifest, remove=[*manifest.remove, *dropped])
    )


def _plan_one(context: Context, manifest: Manifest) -> tuple[Fleet, Plan]:
    from safedeploy.deployer import plan_service
    from safedeploy.fleet import Fleet

    fleet = Fleet(context, [manifest], parallel=1)
    provider = fleet.providers[manifest.service]
    history = context.history(manifest)
    return fleet, plan_service(manifest, provider, history, keep_unnamed=True)


def _manifest(command: Command, probes: Sequence[str]) -> Manifest:
    """The manifest the command stands for, with every value it passes; its findings name the
    command, not lines of a text nobody sees. The flags that name its service stand for its path
    wherever a later command is suggested."""
    import msgspec

    from safedeploy.manifest import load_manifest

    text = command.manifest(probes, deployed=True)
    manifest = load_manifest(ORIGIN, text=text, variables=command.variables, environ={})
    image = manifest.image if command.names_image else None  # none named: the live one stays
    named = {
        "--platform": manifest.platform,
        "--project": manifest.project,
        "--region": manifest.region,
        "--service": manifest.service,
    }
    flags = shlex.join(word for flag, value in named.items() if value for word in (flag, value))
    return msgspec.structs.replace(manifest, lines={}, image=image, by_name=flags)


def by_name(func: F) -> F:
    """--platform, --project, --region, --service: a service exec deployed has no manifest file,
    so `status`, `history` and `rollback` take these instead of one."""
    for name, metavar, what in [
        ("--service", "NAME", "The service."),
        ("--region", "REGION", "Its region [default: as exec finds it]."),
        ("--project", "ID", "Its project (cloudrun) [default: as exec finds it]."),
    ]:
        func = click.option(name, metavar=metavar, help=what)(func)
    platform = click.Choice(["cloudrun", "apprunner"])
    help_ = "Name the service instead of a MANIFEST, as for one `exec` deployed."
    return click.option("--platform", type=platform, help=help_)(func)


def named_manifest(environ: Mapping[str, str], given: dict[str, Any]) -> Manifest | None:
    """The manifest exec builds for the service the `by_name` flags name, taking them out of
    `given` (a command's parameters); None when there are none and a MANIFEST names it."""
    from safedeploy.convert.command import named_service

    flags = {key: given.pop(key) for key in ("platform", "project", "region", "service")}
    if not any(flags.values()):
        if given["manifest"] is None:
            raise SafedeployError("name the service: no MANIFEST and no --service", hint=_EITHER)
        return None
    if given["manifest"] is not None or given["env_name"] or given["variables"]:
        raise SafedeployError(
            "a MANIFEST (--env, --var) or the flags name it: not both", hint=_EITHER
        )
    if flags["platform"] is None or flags["service"] is None:
        raise SafedeployError("--platform and --service name a service together", hint=_EITHER)
    return _manifest(named_service(**flags, environ=environ), ())


def _kept(plan: Plan) -> list[str]:
    from safedeploy.merge import Action

    return [d.name for d in plan.variables if d.action is Action.KEPT_UNMANAGED]


def _dropped(plan: Plan, command: Command, replace_env: bool) -> list[str]:
    """The kept names the raw command would drop: of a kind it replaces, with `--replace-env`,
    or of a kind it clears (`--clear-env-vars`), which says so on purpose."""
    from safedeploy.model import SecretRef

    live = plan.live.env if plan.live else {}
    replaced = command.draft.replaced
    return [
        name
        for name in _kept(plan)
        if (flag := replaced.get("secrets" if isinstance(live.get(name), SecretRef) else "env"))
        and (replace_env or flag.startswith("--clear-"))
    ]


def _notes(plan: Plan, command: Command, replace_env: bool) -> list[str]:
    """Where exec and the raw command part, a line each: what is dropped, what is kept."""
    from safedeploy.merge import Action
    from safedeploy.render.wording import plural

    notes = []
    removed = [d.name for d in plan.variables if d.action is Action.REMOVED_LISTED]
    dropped = [name for name in removed if name not in command.draft.remove]
    if dropped:
        notes.append(
            f"drops {plural(len(dropped), 'variable')} your command did not name, as "
            f"{command.tool} would: {', '.join(dropped)}"
        )
    kept = _kept(plan)
    if kept:
        note = f"kept {plural(len(kept), 'variable')} your command did not name: {', '.join(kept)}"
        would = [] if replace_env else _dropped(plan, command, True)
        if would == kept:
            note += f"; `--replace-env` to drop them as {command.tool} would"
        elif would:
            note += f"; `--replace-env` drops {', '.join(would)} as {command.tool} would"
        notes.append(note)
    return notes
