"""The command line: parse the arguments, call the pipeline, print what it returns.

Each command reads as the steps it runs; wording lives in render/, decisions (exit codes
included) beside the code that makes them, and the process (streams, terminals, CI) in one
Environment value that `main` is given or reads once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from safedeploy.dropin import by_name, exec_command, named_manifest
from safedeploy.environment import Environment
from safedeploy.errors import ExitCode, SafedeployError
from safedeploy.session import Session, manifest_paths, parse_vars, running

if TYPE_CHECKING:
    from safedeploy.context import Context
    from safedeploy.manifest import Manifest

F = TypeVar("F", bound=Callable[..., Any])


def manifest_inputs(func: F) -> F:
    """--env, --var and --state-dir: what every command that loads a manifest takes."""
    func = click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SAFEDEPLOY_STATE_DIR",
        help="Where local state and history live [default: .safedeploy/ beside the manifest].",
    )(func)
    func = click.option(
        "--var",
        "variables",
        multiple=True,
        metavar="NAME=VALUE",
        help="Fill ${NAME} in the manifest.",
    )(func)
    func = click.option(
        "--env", "env_name", metavar="NAME", help="Apply the manifest's environments.NAME overlay."
    )(func)
    return func


def one_service(func: F) -> F:
    """MANIFEST, or the flags that name a service `exec` deployed (it has no manifest file)."""
    path = click.Path(exists=True, dir_okay=False, path_type=Path)
    return click.argument("manifest", required=False, type=path)(manifest_inputs(by_name(func)))


parallel_option = click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    metavar="N",
    help="Work on up to N services at once (deploys in depends_on order).",
)


def _load(
    session: Session,
    paths: Sequence[Path],
    env_name: str | None,
    variables: Sequence[str],
    *,
    unset_ok: frozenset[str] = frozenset(),
) -> list[Any]:
    """Load manifests; `unset_ok`: where an unset variable may stay as written (manifest.py)."""
    from safedeploy.manifest import load_manifest

    values = parse_vars(variables)
    return [
        load_manifest(
            p,
            env_name=env_name,
            variables=values,
            environ=session.environment.environ,
            unset_ok=unset_ok,
        )
        for p in manifest_paths(paths)
    ]


def _one(session: Session, given: dict[str, Any]) -> tuple[Context, Manifest]:
    """The context and the manifest `one_service` names, for a command that reads it."""
    from safedeploy.manifest import FOR_READING

    context = session.context(given.pop("state_dir"))
    named = named_manifest(session.environment.environ, given)
    if named is not None:
        return context, named
    (loaded,) = _load(session, [given.pop("manifest")], **given, unset_ok=FOR_READING)
    return context, loaded


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="safedeploy")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
def cli(debug: bool) -> None:
    """Merge-safe deploys: read the live service, merge the manifest, show the diff,
    apply it, probe the new revision, and roll back by itself when the probes fail."""
    # --debug is read by _main, which reports errors after click has returned.


cli.add_command(exec_command)


@cli.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@manifest_inputs
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan for `deploy --plan`.",
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option(
    "--validate",
    is_flag=True,
    help="Also have the platform check the update without making it (cloudrun).",
)
@parallel_option
@click.pass_obj
def plan(
    session: Session,
    manifests: tuple[Path, ...],
    env_name: str | None,
    variables: tuple[str, ...],
    state_dir: Path | None,
    fmt: str,
    out: Path | None,
    detailed_exitcode: bool,
    validate: bool,
    parallel: int,
) -> int:
    """Show what a deploy would change, without changing anything."""
    from safedeploy.fleet import Fleet
    from safedeploy.plan import save_plans
    from safedeploy.render import render

    loaded = _load(session, manifests, env_name, variables)
    plans = Fleet(session.context(state_dir), loaded, parallel=parallel).plan(validate=validate)
    color = session.environment.color
    session.echo(render(plans, fmt, color=color), color=color)  # type: ignore[arg-type]
    session.step_summary(render(plans, "markdown"))
    if out:
        save_plans(plans, out)
        session.say(f"plan saved to {out}")
    changes = detailed_exitcode and any(p.has_changes for p in plans)
    return ExitCode.of(failed=not all(p.ok for p in plans), changes=changes)


@cli.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@manifest_inputs
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Apply exactly this saved plan; refuse if the service moved since.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-rollback", is_flag=True, help="On failure, leave the new revision for a human.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="json: print what happened for scripts on stdout (the plan goes to stderr).",
)
@parallel_option
@click.pass_obj
def deploy(
    session: Session,
    manifests: tuple[Path, ...],
    env_name: str | None,
    variables: tuple[str, ...],
    state_dir: Path | None,
    plan_file: Path | None,
    yes: bool,
    no_rollback: bool,
    fmt: str,
    parallel: int,
) -> int:
    """Plan, confirm, apply, probe, and roll back by itself on failure.

    Every service is planned before any is deployed; a service whose dependency failed is
    skipped. The exit code is the worst of the services' (4 > 3 > 1 > 0)."""
    from safedeploy.fleet import Fleet, worst
    from safedeploy.progress import display
    from safedeploy.render import render, render_runs

    env = session.environment
    loaded = _load(session, manifests, env_name, variables)
    fleet = Fleet(session.context(state_dir), loaded, parallel=parallel)
    plans = fleet.plan()
    as_json = fmt == "json"
    color = env.color and (env.stderr_tty or not as_json)  # json: the plan goes to stderr
    session.echo(render(plans, "text", color=color), err=as_json, color=color)
    if plan_file:
        fleet.check_saved(plans, plan_file)
    if not all(p.ok for p in plans):
        raise SafedeployError(
            "the plan has errors; nothing was changed", hint="fix the findings above"
        )
    if any(p.has_changes for p in plans) and not yes:
        session.confirm()
    session.signals.phase = "deploy"
    terminal = env.stderr if env.stderr_tty else None
    with display(fleet.services, terminal=terminal, write=session.say) as progress:
        runs = fleet.deploy(plans, rollback=not no_rollback, progress=progress)
    session.signals.phase = "ended"
    session.echo("\n" + render_runs(runs, "text"), err=as_json)
    if as_json:
        session.echo(render_runs(runs, "json"))
    session.step_summary(render_runs(runs, "markdown"))
    return worst(runs)


@cli.command()
@one_service
@click.option(
    "--to",
    "to",
    metavar="REVISION",
    help="Serve this revision [default: the one before the last release].",
)
@click.pass_obj
def rollback(session: Session, /, to: str | None, **given: Any) -> int:
    """Serve an earlier revision again, probe it, and record the rollback."""
    from safedeploy.render.service import render_result
    from safedeploy.rollback import Rollback

    context, loaded = _one(session, given)
    deployer = Rollback(
        loaded,
        context.provider(loaded, progress=session.say),  # says which values it took from live
        context.history(loaded),
        say=session.say,
        probe=context.probe(loaded),
    )
    session.signals.phase = "rollback"
    result = deployer.rollback(to)
    session.echo(render_result(result))
    return result.exit_code


@cli.command()
@one_service
@click.pass_obj
def history(session: Session, /, **given: Any) -> None:
    """List the releases of the service, oldest first."""
    from safedeploy.render.service import render_history

    context, loaded = _one(session, given)
    session.echo(render_history(loaded.service, context.history(loaded).releases()))


@cli.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@manifest_inputs
@click.option("--release", metavar="ID", help="[default: the last failed release]")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text")
@click.pass_obj
def why(session: Session, /, manifest: Path, release: str | None, fmt: str, **given: Any) -> int:
    """Say why the last failed release failed (exit 1 when none did)."""
    from safedeploy.diagnosis import why_release
    from safedeploy.manifest import FOR_READING
    from safedeploy.render.why import render_why

    context = session.context(given.pop("state_dir"))
    (loaded,) = _load(session, [manifest], **given, unset_ok=FOR_READING)
    releases = context.history(loaded).releases()
    provider = context.provider(loaded, progress=session.waiting)
    found = why_release(loaded, provider, releases, release, context.cancel)
    session.echo(render_why(loaded.service, release, found, fmt))
    return ExitCode.of(failed=found is None)


@cli.command()
@one_service
@click.pass_obj
def status(session: Session, /, **given: Any) -> None:
    """Show what serves now: revisions and traffic, the URL, owned names and drift."""
    from safedeploy.render.service import render_status

    context, loaded = _one(session, given)
    live = context.provider(loaded, progress=session.waiting).read()
    store = context.history(loaded) if live.exists else None
    session.echo(render_status(loaded, live, store))


@cli.command()
@one_service
@click.option("--yes", is_flag=True, help="Release it without asking.")
@click.pass_obj
def unlock(session: Session, /, yes: bool, **given: Any) -> int:
    """Release the deploy lease a killed run left (as `terraform force-unlock`); nothing else."""
    from safedeploy.history import lease_holder

    context, loaded = _one(session, given)
    store = context.history(loaded)
    lease = store.holder()
    if lease is None:
        session.echo(f"{loaded.service}: no deploy lease is held")
        return ExitCode.OK
    held = f"{lease_holder(lease)} since {lease.get('since')}"
    session.echo(f"{loaded.service}: the deploy lease is held by {held}")
    if not yes:
        session.confirm("Release it?", "release the lease", "its holder")
    released = store.unlock(lease)
    session.echo(f"{loaded.service}: " + ("released" if released else "it changed; kept"))
    return ExitCode.of(failed=not released)


@cli.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@manifest_inputs
@click.pass_obj
def lint(
    session: Session,
    manifests: tuple[Path, ...],
    env_name: str | None,
    variables: tuple[str, ...],
    state_dir: Path | None,
) -> int:
    """Check manifests without reading any live service."""
    from safedeploy.lint import Severity, lint_manifest
    from safedeploy.manifest import AS_TEMPLATE
    from safedeploy.render.findings import render_findings

    failed = False
    for manifest in _load(session, manifests, env_name, variables, unset_ok=AS_TEMPLATE):
        findings = lint_manifest(manifest)
        session.echo(render_findings(manifest.path, findings))
        failed |= any(f.severity is Severity.ERROR for f in findings)
    return ExitCode.of(failed=failed)


@cli.command("import")
@click.option(
    "--platform", type=click.Choice(["cloudrun", "apprunner", "ecs-express"]), required=True
)
@click.option("--project", help="The Google Cloud project id (cloudrun).")
@click.option("--region", required=True, help="The region, e.g. us-central1 or us-east-1.")
@click.option("--service", required=True, help="The live service to import.")
@click.option("--container", help="The container to manage, when there are sidecars.")
@click.option("--cluster", default="default", show_default=True, help="The ECS cluster.")
@click.pass_obj
def import_(
    session: Session,
    platform: str,
    project: str | None,
    region: str,
    service: str,
    container: str | None,
    cluster: str,
) -> None:
    """Print a manifest of a live service: `import ... > manifests/SERVICE.yaml`."""
    context = session.context(None)
    if platform == "ecs-express":
        from safedeploy.importer import ecs_express_manifest
        from safedeploy.providers import ecs_express

        described = ecs_express.describe(service, region, cluster, context.aws())
        session.echo(ecs_express_manifest(service, region, cluster, described), nl=False)
        return
    if platform == "apprunner":
        from safedeploy.importer import apprunner_manifest
        from safedeploy.providers.apprunner import describe

        found = describe(service, region, context.aws())
        session.echo(apprunner_manifest(service, region, found), nl=False)
        return
    if not project:
        raise click.UsageError("--platform cloudrun needs --project")
    from safedeploy.importer import cloudrun_manifest

    session.echo(cloudrun_manifest(context.cloudrun(project, region, service, container)), nl=False)


@cli.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cluster", default="default", show_default=True, help="The ECS cluster.")
@click.pass_obj
def migrate(session: Session, manifest: Path, cluster: str) -> None:
    """Print an ECS Express manifest for an App Runner one and its live service."""
    from safedeploy.manifest import AS_TEMPLATE, load_manifest
    from safedeploy.migrate import ecs_express_manifest
    from safedeploy.providers.apprunner.client import AppRunnerApi
    from safedeploy.yaml_lines import read_yaml

    loaded = load_manifest(manifest, unset_ok=AS_TEMPLATE)
    # load_manifest refuses an apprunner manifest without a region.
    api = AppRunnerApi(loaded.service, str(loaded.region), session.context(None).aws())
    described = api.describe()
    written, _ = read_yaml(manifest)
    text, notes = ecs_express_manifest(
        loaded, written, described.service if described else None, cluster
    )
    for note in notes:
        session.say(f"{loaded.service}: not migrated: {note}")
    session.echo(text, nl=False)


@cli.command()
@click.argument(
    "script", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write SERVICE.yaml files here instead of printing them.",
)
@click.pass_obj
def convert(session: Session, script: Path, out_dir: Path | None) -> None:
    """Write manifests from the gcloud run / aws apprunner deploys of a script (- for stdin)."""
    from safedeploy.convert import convert_file, write_manifests

    manifests = convert_file(script)
    for manifest in manifests:
        for item in manifest.not_understood:
            session.say(f"{manifest.service}: not converted: {item}")
    if out_dir is None:
        session.echo("---\n".join(m.yaml for m in manifests), nl=False)
    else:
        for path in write_manifests(manifests, out_dir):
            session.say(f"wrote {path}")


@cli.command()
@click.pass_obj
def schema(session: Session) -> None:
    """Print the manifest's JSON Schema (for editors)."""
    import json

    from safedeploy.manifest import manifest_schema

    session.echo(json.dumps(manifest_schema(), indent=2))


def main(argv: Sequence[str] | None = None, environment: Environment | None = None) -> int:
    """Run one command and return its exit code: `argv` are the arguments after the program's
    name (default: the process's), `environment` what the process is (default: read it now).

    The one place errors become output and exit codes; every byte written to stdout and stderr
    passes through the scrubber (redact.py), whoever writes it."""
    from safedeploy.redact import forget_all

    forget_all()  # a process runs one command; tests run many in one process
    with running(environment or Environment.from_process()) as session:
        return _main(argv, session)


def _main(argv: Sequence[str] | None, session: Session) -> int:
    debug = "--debug" in (sys.argv if argv is None else argv)
    try:
        return int(cli.main(argv, standalone_mode=False, obj=session) or ExitCode.OK)
    except SafedeployError as exc:
        session.say(f"error: {exc}")
        return exc.exit_code
    except click.exceptions.Abort:
        session.say("aborted; nothing was changed")
        return ExitCode.FAILED
    except click.ClickException as exc:
        exc.show(session.environment.stderr)
        return ExitCode.FAILED
    except Exception as exc:
        if debug:  # printed here, so that the traceback passes through the scrubber too
            import traceback

            traceback.print_exc(file=session.environment.stderr)
            return ExitCode.FAILED
        session.say(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)"
        )
        return ExitCode.FAILED
