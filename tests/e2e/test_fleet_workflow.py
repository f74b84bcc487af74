"""The team's workflow over several Cloud Run services: one pull-request comment for all of them,
a saved plan that is refused whole when any service moved, and many deploys at once.

The CLI runs in-process against the loopback double, as in test_cloudrun.py, with a job summary
file where GitHub Actions would have one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes.cloudrun import AppRequest, AppResponse, FakeCloudRun, default_app
from test_fleet import Recorder

from e2e.test_cloudrun import PROBES, Cloud
from safedeploy.context import Context
from safedeploy.fleet import Fleet
from safedeploy.manifest import load_manifest


@dataclass
class Team(Cloud):
    """Cloud Run with several services, and the GitHub job summary file."""

    def env(self) -> dict[str, str | None]:
        return {**super().env(), "GITHUB_STEP_SUMMARY": str(self.summary)}

    @property
    def summary(self) -> Path:
        return self.root / "summary.md"

    def seed(self, service: str, image: str = "app:1", **env: str) -> None:
        container = {"image": image, "env": [{"name": k, "value": v} for k, v in env.items()]}
        self.fake.seed_service(_name(service), {"template": {"containers": [container]}})

    def write(self, service: str, body: str = "", depends_on: tuple[str, ...] = ()) -> str:
        path = self.root / "manifests" / f"{service}.yaml"
        path.parent.mkdir(exist_ok=True)
        needs = f"depends_on: [{', '.join(depends_on)}]\n" if depends_on else ""
        path.write_text(
            f"service: {service}\nplatform: cloudrun\nproject: demo\nregion: us-central1\n"
            f"{needs}{body}"
        )
        return str(path)

    def image(self, service: str) -> str:
        return str(self.fake.service(_name(service))["template"]["containers"][0]["image"])


def _name(service: str) -> str:
    return f"projects/demo/locations/us-central1/services/{service}"


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    with FakeCloudRun(seed=5) as fake:
        yield Team(fake, tmp_path)


def _three(team: Team) -> str:
    """auth changes its image, web changes a variable and keeps a pasted key, docs is as live."""
    team.seed("auth", LOG_LEVEL="info")
    team.seed("web", API_URL="https://a.example.com", STRIPE_SECRET_KEY="sk_live_51HxQ2eKZvKYlo")
    team.seed("docs", LOG_LEVEL="info")
    team.write("auth", "image: app:2\nenv: {LOG_LEVEL: info}\n")
    team.write("web", "image: app:1\nenv: {API_URL: https://b.example.com}\n", ("auth",))
    team.write("docs", "image: app:1\nenv: {LOG_LEVEL: info}\n")
    return str(team.root / "manifests")


def test_a_pull_request_gets_one_comment_for_every_service(team: Team) -> None:
    manifests = _three(team)

    done = team.run("plan", manifests, "--format", "markdown")

    assert done.code == 0, done.err
    first, *rest = done.out.splitlines()
    assert first == "**safedeploy plan** — 3 services: 2 to change, 1 unchanged · 1 warning"
    comment = "\n".join(rest)
    assert "### auth (cloudrun) — update: image changed" in comment
    assert "| `image` | `app:1` | `app:2` |" in comment
    assert "| `API_URL` | `https://a.example.com` | `https://b.example.com` | changed |" in comment
    assert "(drift): `STRIPE_SECRET_KEY`" in comment and "sk_live" not in comment
    assert "**No change:** `docs` (cloudrun)" in comment
    assert team.summary.read_text() == done.out + "\n"  # the job summary holds the same comment
    assert team.fake.mutating_calls() == []


def test_a_saved_plan_is_refused_whole_when_any_service_moved(team: Team) -> None:
    manifests = _three(team)
    plan_file = str(team.root / "plan.json")
    assert team.run("plan", manifests, "--out", plan_file).code == 0
    for service in ("auth", "docs"):  # someone deploys by hand in between
        team.fake.external_update(
            _name(service), lambda spec: spec["template"]["containers"][0]["env"].clear()
        )
    team.fake.clear_calls()

    done = team.run("deploy", manifests, "--plan", plan_file, "--yes")

    assert done.code == 1
    assert "2 of 3 services do not match the saved plan; nothing was changed" in done.err
    assert "service auth changed since the plan was saved" in done.err
    assert "service docs changed since the plan was saved" in done.err
    assert "service web" not in done.err
    assert team.fake.mutating_calls() == []


def test_a_saved_plan_deploys_every_service_it_holds(team: Team) -> None:
    manifests = _three(team)
    plan_file = str(team.root / "plan.json")
    assert team.run("plan", manifests, "--out", plan_file).code == 0

    done = team.run("deploy", manifests, "--plan", plan_file, "--yes", "--parallel", "3")

    assert done.code == 0, done.err
    assert "3 services: 2 succeeded, 1 unchanged · exit 0" in done.out
    assert team.image("auth") == "app:2"


def test_many_services_deploy_at_once_and_a_failed_dependency_skips_its_dependents(
    team: Team,
) -> None:
    for service in ("auth", "api", "web", "docs"):
        team.seed(service, LOG_LEVEL="info")
    broken = "env: {BREAK_HEALTH: '1'}\n"  # the double's app answers /health with 500
    team.write("auth", "image: app:2\n" + broken + PROBES)
    team.write("api", "image: app:2\n" + PROBES, ("auth",))
    team.write("web", "image: app:2\n" + PROBES, ("api",))
    team.write("docs", "image: app:2\n" + PROBES)
    manifests = str(team.root / "manifests")

    done = team.run("deploy", manifests, "--yes", "--parallel", "2", "--format", "json")

    assert done.code == 3, done.err
    document = json.loads(done.out)
    results = {r["service"]: r for r in document["results"]}
    assert list(results) == ["api", "auth", "docs", "web"]  # the folder's order
    assert {s: (r["outcome"], r["exit_code"]) for s, r in results.items()} == {
        "auth": ("rolled-back", 3),
        "api": ("skipped", 1),
        "web": ("skipped", 1),
        "docs": ("succeeded", 0),
    }
    assert document["exit_code"] == 3
    assert results["web"]["message"] == "not deployed: it depends on api (skipped)"
    assert results["docs"]["seconds"] > 0 and results["api"]["seconds"] == 0
    assert team.image("api") == team.image("web") == "app:1"  # never touched
    assert team.image("docs") == "app:2"
    assert "auth: deploy failed: probe health failed on candidate" in done.err
    summary = team.summary.read_text()
    assert summary.startswith("**safedeploy deploy** — 4 services: ")
    assert "| `auth` | **rolled-back** |" in summary
    assert "- `api`: not deployed: it depends on auth (rolled-back)" in summary


def test_probe_attempts_reach_the_live_display(team: Team) -> None:
    answers: list[int] = []

    def flaky(request: AppRequest) -> AppResponse:
        """/health fails once, then passes."""
        if request.path == "/health":
            answers.append(1)
            return AppResponse.json({"ok": len(answers) > 1}, 500 if len(answers) == 1 else 200)
        return default_app(request)

    team.seed("api")
    team.fake.set_app(":flaky", flaky)
    path = team.write("api", "image: app:flaky\n" + PROBES)
    environ: dict[str, Any] = {k: v for k, v in team.env().items() if v is not None}
    fleet = Fleet(Context(environ=environ), [load_manifest(Path(path))], parallel=1)
    progress = Recorder()

    (run,) = fleet.deploy(fleet.plan(), rollback=True, progress=progress)

    assert run.result.exit_code == 0, run.result.message
    steps = [text for _, text in progress.steps]
    assert steps[:3] == [
        "starting",
        "probe health: attempt 1 failed: status 500, expected 200",
        "probe health: attempt 2 ok",
    ]


def test_a_dependency_cycle_is_named_and_nothing_is_read(team: Team) -> None:
    team.write("auth", "image: app:2\n", ("web",))
    team.write("web", "image: app:2\n", ("auth",))
    manifests = str(team.root / "manifests")

    cycle = team.run("deploy", manifests, "--yes")
    (team.root / "manifests" / "web.yaml").unlink()
    unknown = team.run("plan", manifests)

    assert cycle.code == 1
    assert "depends_on makes a cycle: " in cycle.err
    assert "auth -> web -> auth" in cycle.err or "web -> auth -> web" in cycle.err
    assert unknown.code == 1
    assert "auth depends on web, which is not among the manifests given" in unknown.err
    assert team.fake.calls() == []
