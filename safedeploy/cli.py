"""The command line: parse, build the context, call one function, print. No decisions here."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from safedeploy.cancel import CancelToken
from safedeploy.errors import ExitCode, SafedeployError

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


parallel_option = click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    metavar="N",
    help="Work on up to N services at once (deploys in depends_on order).",
)


def _parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SafedeployError(
                f"--var {pair!r} is not NAME=VALUE", hint="write --var IMAGE_TAG=v42"
            )
        variables[name] = value
    return variables


def _manifest_paths(paths: Sequence[Path]) -> Iterator[Path]:
    """Files as given; a folder stands for the *.yaml and *.yml manifests in it."""
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not found:  # an empty folder deploying nothing must not look like success
            raise SafedeployError(
                "no manifests here (*.yaml, *.yml)",
                where=str(path),
                hint="name the manifest files, or the folder that holds them",
            )
        yield from found


def _load(
    paths: Sequence[Path],
    env_name: str | None,
    variables: Sequence[str],
    *,
    unset_ok: frozenset[str] = frozenset(),
) -> list[Any]:
    """Load manifests; `unset_ok`: where an unset variable may stay as written (manifest.py)."""
    from safedeploy.manifest import load_manifest

    values = _parse_vars(variables)
    return [
        load_manifest(p, env_name=env_name, variables=values, unset_ok=unset_ok)
        for p in _manifest_paths(paths)
    ]


def _context(state_dir: Path | None) -> Any:
    from safedeploy.context import Context

    return Context(state_dir=state_dir, cancel=_signals.cancel)


class _Signals:
    """What SIGINT, SIGTERM and SIGHUP do (DESIGN.md "Interruption"): before anything changes,
    stop there; during a deploy, the first one cancels it (it rolls back) and any further one is
    told that the rollback carries on; during `rollback`, every one is told so."""

    def __init__(self) -> None:
        self.cancel = CancelToken()
        self.phase: str | None = None  # None | "deploy" | "rollback" | "ended"

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.phase is None:
            raise KeyboardInterrupt  # nothing changed yet: stop here, as Ctrl-C always did
        if self.phase == "ended":
            _say("the deploy has ended; reporting what happened")
            return
        if self.phase == "deploy" and not self.cancel.cancelled:
            self.cancel.cancel(f"cancelled by {signal.Signals(signum).name}")
            _say("cancelling: rolling back what this deploy changed …")
        else:
            _say("rollback in progress; carrying on — only SIGKILL stops it")


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_signals = _Signals()


def _say(text: str) -> None:
    click.echo(text, err=True)


def _color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _step_summary(markdown: str) -> None:
    """Append to the GitHub Actions job summary when running there; a blank line after it keeps
    the next block (a deploy after its plan) from running into a list or a table."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        from safedeploy.redact import scrub

        with open(path, "a") as handle:
            handle.write(scrub(markdown) + "\n\n")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="safedeploy")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Merge-safe deploys: read the live service, merge the manifest, show the diff,
    apply it, probe the new revision, and roll back by itself when the probes fail."""
    ctx.obj = {"debug": debug}


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
def plan(
    manifests: tuple[Path, ...],
    env_name: str | None,
    variables: tuple[str, ...],
    state_dir: Path | None,
    fmt: str,
    out: Path | None,
    detailed_exitcode: bool,
    validate: bool,
    parallel: int,
) -> None:
    """Show what a deploy would change, without changing anything."""
    from safedeploy.fleet import Fleet
    from safedeploy.plan import save_plans
    from safedeploy.render import render

    loaded = _load(manifests, env_name, variables)
    plans = Fleet(_context(state_dir), loaded, parallel=parallel).plan(validate=validate)
    click.echo(render(plans, fmt, color=_color()))  # type: ignore[arg-type]
    _step_summary(render(plans, "markdown"))
    if out:
        save_plans(plans, out)
        _say(f"plan saved to {out}")
    if not all(p.ok for p in plans):
        sys.exit(ExitCode.FAILED)
    if detailed_exitcode and any(p.has_changes for p in plans):
        sys.exit(ExitCode.CHANGES)


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
def deploy(
    manifests: tuple[Path, ...],
    env_name: str | None,
    variables: tuple[str, ...],
    state_dir: Path | None,
    plan_file: Path | None,
    yes: bool,
    no_rollback: bool,
    fmt: str,
    parallel: int,
) -> None:
    """Plan, confirm, apply, probe, and roll back by itself on failure.

    Every service is planned before any is deployed; a service whose dependency failed is
    skipped. The exit code is the worst of the services' (4 > 3 > 1 > 0)."""
    from safedeploy.fleet import Fleet, worst
    from safedeploy.progress import display
    from safedeploy.render import render, render_runs

    loaded = _load(manifests, env_name, variables)
    fleet = Fleet(_context(state_dir), loaded, parallel=parallel)
    plans = fleet.plan()
    as_json = fmt == "json"
    click.echo(render(plans, "text", color=_color()), err=as_json)
    if plan_file:
        fleet.check_saved(plans, plan_file)
    if not all(p.ok for p in plans):
        raise SafedeployError(
            "the plan has errors; nothing was changed", hint="fix the findings above"
        )
    if any(p.has_changes for p in plans) and not yes:
        _confirm()
    _signals.phase = "deploy"
    with display(fleet.services, terminal=sys.stderr.isatty(), write=_say) as progress:
        runs = fleet.deploy(plans, rollback=not no_rollback, progress=progress)
    _signals.phase = "ended"
    click.echo("\n" + render_runs(runs, "text"), err=as_json)
    if as_json:
        click.echo(render_runs(runs, "json"))
    _step_summary(render_runs(runs, "markdown"))
    sys.exit(worst(runs))


def _confirm() -> None:
    if not sys.stdin.isatty() or os.environ.get("CI"):
        raise SafedeployError(
            "refusing to deploy without confirmation: there is no terminal to ask on",
            hint="review the plan, then pass --yes",
        )
    if not click.confirm("Apply these changes?", default=False):
        raise SafedeployError("cancelled; nothing was changed")


def _describe_result(result: Any) -> str:
    head = f"{result.service}: {result.outcome}"
    if result.revision:
        head += f", revision {result.revision}"
    if result.url:
        head += f" at {result.url}"
    if result.message:
        head += f" — {result.message}"
    return head


@cli.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@manifest_inputs
@click.option(
    "--to",
    "to",
    metavar="REVISION",
    help="Serve this revision [default: the one before the last release].",
)
def rollback(
    manifest: Path,
    env_name: str | None,
    variables: tuple[str, ...],
    state_dir: Path | None,
    to: str | None,
) -> None:
    """Serve an earlier revision again, probe it, and record the rollback."""
    from safedeploy.deployer import Deployer

    context = _context(state_dir)
    from safedeploy.manifest import FOR_READING

    (loaded,) = _load([manifest], env_name, variables, unset_ok=FOR_READING)
    deployer = Deployer(
        loaded,
        context.provider(loaded, progress=_say),  # says which values it took from live
        context.history(loaded),
        say=_say,
        probe=context.probe(loaded),
    )
    _signals.phase = "rollback"
    result = deployer.rollback(to)
    click.echo(_describe_result(result))
    sys.exit(result.exit_code)


@cli.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@manifest_inputs
def history(
    manifest: Path, env_name: str | None, variables: tuple[str, ...], state_dir: Path | None
) -> None:
    """List the releases of the service, oldest first."""
    context = _context(state_dir)
    from safedeploy.manifest import FOR_READING

    (loaded,) = _load([manifest], env_name, variables, unset_ok=FOR_READING)
    releases = context.history(loaded).releases()
    if not releases:
        click.echo(f"{loaded.service}: no releases yet")
        return
    rows = [("RELEASE", "KIND", "TIME", "USER", "REVISION", "OUTCOME")]
    rows += [(r.id, r.kind, r.time, r.user, r.revision or "-", r.outcome.value) for r in releases]
    click.echo(_table(rows))
    for r in releases:
        if r.message:
            click.echo(f"{r.id}: {r.message}")


@cli.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@manifest_inputs
def status(
    manifest: Path, env_name: str | None, variables: tuple[str, ...], state_dir: Path | None
) -> None:
    """Show what serves now: revisions and traffic, the URL, owned names and drift."""
    context = _context(state_dir)
    from safedeploy.manifest import FOR_READING

    (loaded,) = _load([manifest], env_name, variables, unset_ok=FOR_READING)
    live = context.provider(loaded).read()
    if not live.exists:
        click.echo(f"{loaded.service}: not deployed")
        return
    click.echo(f"{loaded.service} ({loaded.platform}) at {live.url or '(no URL)'}")
    rows = [("REVISION", "TRAFFIC", "STATE", "CREATED")]
    for r in live.revisions:
        rows.append(
            (
                r.name,
                f"{r.percent}%",
                "ready" if r.ready else (r.message or "not ready"),
                r.created or "-",
            )
        )
    click.echo(_table(rows))
    click.echo(f"owned: {', '.join(sorted(live.owned)) or '(none)'}")
    drift = sorted(set(live.spec.env) - loaded.declared) if live.spec else []
    click.echo(f"drift (live, not in the manifest): {', '.join(drift) or '(none)'}")
    _say_unfinished(context.history(loaded), manifest)


def _say_unfinished(store: Any, manifest: Path) -> None:
    """An interrupted release is named until `rollback` finishes it (DESIGN.md "Interruption")."""
    from safedeploy.deployer import interrupted_note
    from safedeploy.history import unfinished

    stuck = unfinished(store.releases())
    if stuck is None:
        return
    if store.held():
        click.echo(f"release {stuck.id} is in progress now")
    else:
        click.echo(f"{interrupted_note(stuck)}: run `safedeploy rollback {manifest}` to finish it")


@cli.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@manifest_inputs
def lint(
    manifests: tuple[Path, ...],
    env_name: str | None,
    variables: tuple[str, ...],
    state_dir: Path | None,
) -> None:
    """Check manifests without reading any live service."""
    from safedeploy.lint import lint_manifest

    failed = False
    from safedeploy.manifest import AS_TEMPLATE

    for manifest in _load(manifests, env_name, variables, unset_ok=AS_TEMPLATE):
        findings = lint_manifest(manifest)
        for f in findings:
            where = f"{f.file}:{f.line}" if f.line else f.file
            click.echo(f"{f.severity} {f.code} {f.key} ({where}): {f.message}\n  hint: {f.hint}")
        failed |= any(f.severity == "error" for f in findings)
        if not findings:
            click.echo(f"{manifest.path}: ok")
    sys.exit(ExitCode.FAILED if failed else ExitCode.OK)


@cli.command("import")
@click.option("--platform", type=click.Choice(["cloudrun", "apprunner"]), required=True)
@click.option("--project", help="The Google Cloud project id (cloudrun).")
@click.option("--region", required=True, help="The region, e.g. us-central1 or us-east-1.")
@click.option("--service", required=True, help="The live service to import.")
@click.option("--container", help="The container to manage, when there are sidecars.")
def import_(
    platform: str, project: str | None, region: str, service: str, container: str | None
) -> None:
    """Print a manifest of a live service: `import ... > manifests/SERVICE.yaml`."""
    if platform == "apprunner":
        from safedeploy.importer import apprunner_manifest
        from safedeploy.providers.apprunner import describe

        found = describe(service, region, _context(None).aws())
        click.echo(apprunner_manifest(service, region, found), nl=False)
        return
    if not project:
        raise click.UsageError("--platform cloudrun needs --project")
    from safedeploy.importer import cloudrun_manifest

    click.echo(
        cloudrun_manifest(_context(None).cloudrun(project, region, service, container)), nl=False
    )


@cli.command()
@click.argument(
    "script", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write SERVICE.yaml files here instead of printing them.",
)
def convert(script: Path, out_dir: Path | None) -> None:
    """Write manifests from the gcloud run / aws apprunner deploys of a script (- for stdin)."""
    from safedeploy.convert import convert_file, write_manifests

    manifests = convert_file(script)
    for manifest in manifests:
        for item in manifest.not_understood:
            _say(f"{manifest.service}: not converted: {item}")
    if out_dir is None:
        click.echo("---\n".join(m.yaml for m in manifests), nl=False)
    else:
        for path in write_manifests(manifests, out_dir):
            _say(f"wrote {path}")


@cli.command()
def schema() -> None:
    """Print the manifest's JSON Schema (for editors)."""
    from safedeploy.manifest import manifest_schema

    click.echo(json.dumps(manifest_schema(), indent=2))


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def main() -> None:
    """The one place errors become output and exit codes; every byte written to stdout and
    stderr passes through the scrubber (redact.py), whoever writes it."""
    from safedeploy.redact import ScrubbedStream, forget_all

    global _signals
    forget_all()  # a process runs one command; tests run many in one process
    _signals = _Signals()
    handlers = {signum: signal.signal(signum, _signals.handle) for signum in _SIGNALS}
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ScrubbedStream(sys.stdout), ScrubbedStream(sys.stderr)
    try:
        _main()
    finally:
        sys.stdout, sys.stderr = streams
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _main() -> None:
    debug = "--debug" in sys.argv
    try:
        cli.main(standalone_mode=False)
    except SafedeployError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted; nothing was changed", err=True)
        sys.exit(ExitCode.FAILED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.FAILED)
    except Exception as exc:
        if debug:  # printed here, so that the traceback passes through the scrubber too
            import traceback

            traceback.print_exc()
            sys.exit(ExitCode.FAILED)
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)",
            err=True,
        )
        sys.exit(ExitCode.FAILED)
