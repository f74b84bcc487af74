"""`safedeploy exec -- <gcloud | aws command>` through the CLI, with the real clients against the
Cloud Run and App Runner doubles: the command a deploy script runs, made merge-safe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_apprunner
from clirun import Done, run_cli
from e2e.test_cloudrun import NAME, Cloud
from fakes.cloudrun import FakeCloudRun

from safedeploy.convert.command import read_command

aws = test_apprunner.aws  # the App Runner double and moto, as test_apprunner.py uses them
moto_url = test_apprunner.moto_url

CANARY = "canary-9f3e-do-not-print"
LIVE = {
    "DATABASE_URL": "postgres://10.0.0.8:5432/app",
    "REDIS_HOST": "10.0.0.5",
    "REDIS_PORT": "6379",
    "CLERK_SECRET_KEY": "sk_live_pasted_by_the_old_script_0000",  # the script set it, plain
}
DEPLOY = ["gcloud", "run", "deploy", "api", "--image", "app:2", "--region", "us-central1"]
DEPLOY += ["--project", "demo"]
# The incident's next run: the same --set-env-vars, without CLERK_SECRET_KEY.
INCIDENT = [
    *DEPLOY,
    "--set-env-vars",
    "DATABASE_URL=postgres://10.0.0.9:5432/app,REDIS_HOST=10.0.0.6",
]
KEPT = (
    "kept 2 variables your command did not name: CLERK_SECRET_KEY, REDIS_PORT; "
    "`--replace-env` to drop them as gcloud would"
)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with FakeCloudRun(seed=15) as fake:
        yield Cloud(fake, tmp_path)


def _exec(cloud: Cloud, *args: str, **exported: str) -> Done:
    """`safedeploy exec ARGS` with `exported` in its environment, as a deploy script's shell."""
    done = run_cli("exec", *args, env={**cloud.env(), **exported})
    cloud.transcript += [done.out, done.err]
    return done


def _seed(cloud: Cloud, env: dict[str, str], image: str = "app:1") -> None:
    containers = [{"image": image, "env": [{"name": k, "value": v} for k, v in env.items()]}]
    cloud.fake.seed_service(NAME, {"template": {"containers": containers}})


def _decisions(plan_json: str) -> dict[str, str]:
    (plan,) = json.loads(plan_json)["plans"]
    return {v["name"]: v["action"] for v in plan["variables"]}


# -- the incident --------------------------------------------------------------------------------


def test_the_incident_keeps_what_the_command_does_not_name_and_says_so(cloud: Cloud) -> None:
    _seed(cloud, LIVE)

    done = _exec(cloud, "--yes", "--", *INCIDENT)

    assert done.code == 0, done.err
    assert KEPT in done.out
    assert cloud.env_of() == {
        "DATABASE_URL": "postgres://10.0.0.9:5432/app",
        "REDIS_HOST": "10.0.0.6",
        "REDIS_PORT": "6379",
        "CLERK_SECRET_KEY": LIVE["CLERK_SECRET_KEY"],
    }
    assert cloud.service()["template"]["containers"][0]["image"] == "app:2"
    assert [c.rpc for c in cloud.fake.mutating_calls()].count("UpdateService") >= 1
    assert "sk_live_pasted" not in "".join(cloud.transcript)


def test_replace_env_drops_only_after_the_plan_shows_it_and_it_is_confirmed(cloud: Cloud) -> None:
    _seed(cloud, LIVE)

    unconfirmed = _exec(cloud, "--replace-env", "--", *INCIDENT)  # CI, no terminal, no --yes

    assert unconfirmed.code == 1
    assert "CLERK_SECRET_KEY = (sensitive) (listed in remove)" in unconfirmed.out
    drops = "drops 2 variables your command did not name, as gcloud would: CLERK_SECRET_KEY, "
    assert drops in unconfirmed.out
    assert "refusing to deploy without confirmation" in unconfirmed.err
    assert cloud.fake.mutating_calls() == []
    assert "CLERK_SECRET_KEY" in cloud.env_of()

    confirmed = _exec(cloud, "--replace-env", "--yes", "--", *INCIDENT)

    assert confirmed.code == 0, confirmed.err
    assert drops in confirmed.out
    assert set(cloud.env_of()) == {"DATABASE_URL", "REDIS_HOST"}


def test_a_secret_the_command_does_not_set_stays_with_replace_env_as_with_gcloud(
    cloud: Cloud,
) -> None:
    """--set-env-vars replaces plain values, not secrets; --clear-env-vars drops them unasked."""
    cloud.fake.add_secret("demo", "clerk", versions={1: ("ENABLED", "sk_x")})
    containers = [
        {
            "image": "app:1",
            "env": [
                {"name": "A", "value": "1"},
                {"name": "CLERK", "valueSource": {"secretKeyRef": {"secret": "clerk"}}},
            ],
        }
    ]
    cloud.fake.seed_service(NAME, {"template": {"containers": containers}})

    planned = _exec(cloud, "--dry-run", "--replace-env", "--", *DEPLOY, "--set-env-vars", "B=2")
    cleared = _exec(
        cloud, "--dry-run", "--", *DEPLOY, "--clear-env-vars", "--update-env-vars", "B=2"
    )

    assert planned.code == 2, planned.err
    assert "drops 1 variable your command did not name, as gcloud would: A" in planned.out
    assert "kept 1 variable your command did not name: CLERK" in planned.out
    assert "--replace-env" not in planned.out.split("kept 1 variable")[1]
    assert cleared.code == 2, cleared.err
    assert "drops 1 variable your command did not name, as gcloud would: A" in cleared.out


def test_an_env_vars_file_and_set_secrets_are_declared_and_the_rest_kept(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.fake.add_secret("demo", "clerk-secret-key", versions={1: ("ENABLED", "sk_x")})
    _seed(cloud, LIVE)
    (cloud.root / "env.prod.yaml").write_text("DATABASE_URL: postgres://10.0.0.9:5432/app\n")
    monkeypatch.chdir(cloud.root)
    secrets = ["--set-secrets", "CLERK_SECRET_KEY=clerk-secret-key:1"]

    done = _exec(cloud, "--yes", "--", *DEPLOY, "--env-vars-file", "env.prod.yaml", *secrets)

    assert done.code == 0, done.err
    assert cloud.env_of() == {
        "DATABASE_URL": "postgres://10.0.0.9:5432/app",
        "REDIS_HOST": "10.0.0.5",
        "REDIS_PORT": "6379",
        "CLERK_SECRET_KEY": {"secret": "clerk-secret-key", "version": "1"},
    }
    assert "kept 2 variables your command did not name: REDIS_HOST, REDIS_PORT" in done.out


# -- App Runner ----------------------------------------------------------------------------------


def test_app_runner_update_service_keeps_omitted_variables_and_secrets_in_one_update(
    aws: test_apprunner.Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = aws.create_live()
    source = {
        "ImageRepository": {
            "ImageIdentifier": f"{test_apprunner.REPO}:v2",
            "ImageRepositoryType": "ECR",
            "ImageConfiguration": {
                "RuntimeEnvironmentVariables": {"LOG_LEVEL": "debug"},
                "Port": "8080",
            },
        },
        "AuthenticationConfiguration": {"AccessRoleArn": test_apprunner.ACCESS_ROLE},
    }
    (aws.root / "src.json").write_text(json.dumps(source))
    monkeypatch.chdir(aws.root)
    command = ["aws", "apprunner", "update-service", "--service-arn", arn]

    done = aws.run("exec", "--yes", "--", *command, "--source-configuration", "file://src.json")

    assert done.code == 0, done.err
    (update,) = aws.fake.calls("UpdateService")
    assert [c.operation for c in aws.fake.mutating_calls()] == ["CreateService", "UpdateService"]
    image = update.body["SourceConfiguration"]["ImageRepository"]
    configuration = image["ImageConfiguration"]
    assert configuration["RuntimeEnvironmentVariables"] == {
        **test_apprunner.LIVE_ENV,
        "LOG_LEVEL": "debug",
    }
    assert configuration["RuntimeEnvironmentSecrets"] == {
        "JWT_SECRET": aws.secrets["JWT_SECRET"],
        "TWILIO_AUTH_TOKEN": aws.secrets["TWILIO_AUTH_TOKEN"],
    }
    assert image["ImageIdentifier"] == f"{test_apprunner.REPO}:v2"
    assert "kept 6 variables your command did not name: DATABASE_URL, FEATURE_SMS" in done.out
    assert "`--replace-env` to drop them as App Runner would" in done.out


def test_app_runner_create_service_creates_the_service(aws: test_apprunner.Aws) -> None:
    source = {
        "ImageRepository": {
            "ImageIdentifier": f"{test_apprunner.REPO}:v1",
            "ImageRepositoryType": "ECR",
            "ImageConfiguration": {
                "RuntimeEnvironmentVariables": {"LOG_LEVEL": "info"},
                "RuntimeEnvironmentSecrets": {"JWT_SECRET": aws.secrets["JWT_SECRET"]},
                "Port": "8080",
            },
        },
        "AuthenticationConfiguration": {"AccessRoleArn": test_apprunner.ACCESS_ROLE},
    }
    command = ["aws", "apprunner", "create-service", "--service-name", "notify-api"]
    command += ["--source-configuration", json.dumps(source)]
    instance = f"Cpu=1024,Memory=2048,InstanceRoleArn={test_apprunner.ROLE}"
    command += ["--instance-configuration", instance, "--region", "us-east-1"]

    done = aws.run("exec", "--yes", "--probe", "/health", "--", *command)

    assert done.code == 0, done.err
    active = aws.fake.active_config("notify-api")
    assert active is not None and active.env == {"LOG_LEVEL": "info"}
    assert active.secrets == {"JWT_SECRET": aws.secrets["JWT_SECRET"]}
    assert [c.operation for c in aws.fake.mutating_calls()] == ["CreateService"]


# -- refused before anything is read -------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--no-cpu-throttling"], "--no-cpu-throttling"),
        (["--source", "."], "--source=."),
        (["--allow-unauthenticated"], "--allow-unauthenticated: who may invoke the service"),
    ],
)
def test_a_flag_exec_cannot_carry_out_changes_nothing_and_is_named(
    cloud: Cloud, extra: list[str], named: str
) -> None:
    _seed(cloud, LIVE)

    done = _exec(cloud, "--yes", "--", *INCIDENT, *extra)

    assert done.code == 1
    assert "exec cannot carry out all this command says; nothing was read or changed" in done.err
    assert f"\n  {named}" in done.err
    assert cloud.fake.calls() == []  # not even a read


def test_what_is_not_a_deploy_command_is_refused(cloud: Cloud) -> None:
    script = _exec(cloud, "--", "./deploy-prod.sh", "v42")
    describe = _exec(cloud, "--", "gcloud", "run", "services", "describe", "api")
    nameless = _exec(cloud, "--", "gcloud", "run", "deploy", "--image", "app:2")

    assert (script.code, describe.code, nameless.code) == (1, 1, 1)
    assert "exec runs a gcloud or aws deploy command, not `./deploy-prod.sh`" in script.err
    assert "not a deploy command exec can run" in describe.err
    assert "the command names no service" in nameless.err
    assert cloud.fake.calls() == []


# -- provenance: what the shell expanded ---------------------------------------------------------


def test_a_value_from_an_exported_variable_is_masked_in_every_output(
    cloud: Cloud, tmp_path: Path
) -> None:
    _seed(cloud, LIVE)
    summary = tmp_path / "summary.md"
    command = [*DEPLOY, "--set-env-vars", f"DATABASE_URL=postgres://app:{CANARY}@db:5432/app"]
    shell = {"DB_PASSWORD": CANARY, "GITHUB_STEP_SUMMARY": str(summary)}

    dry = _exec(cloud, "--dry-run", "--", *command, **shell)
    printed = _exec(cloud, "--print-manifest", "--", *command, **shell)
    done = _exec(cloud, "--yes", "--format", "json", "--", *command, **shell)
    history = cloud.run("history", cloud.manifest("image: app:2\n"))

    assert dry.code == 2, dry.err
    assert "DATABASE_URL: (sensitive) -> postgres://app:${DB_PASSWORD}@db:5432/app" in dry.out
    assert printed.code == 0, printed.err
    assert "  DATABASE_URL: postgres://app:${DB_PASSWORD}@db:5432/app\n" in printed.out
    assert "for: DB_PASSWORD" in printed.out
    assert done.code == 0, done.err
    assert history.code == 0, history.err
    assert cloud.env_of()["DATABASE_URL"] == f"postgres://app:{CANARY}@db:5432/app"
    annotations = json.dumps(cloud.service()["annotations"])
    for text in [*cloud.transcript, summary.read_text(), annotations]:
        assert CANARY not in text


def test_a_plain_credential_in_the_command_is_refused_unseen(cloud: Cloud) -> None:
    _seed(cloud, LIVE)
    command = [*DEPLOY, "--set-env-vars", f"DB_PASSWORD={CANARY}"]

    exported = _exec(cloud, "--yes", "--", *command, DB_PASSWORD=CANARY)
    pasted = _exec(cloud, "--yes", "--", *command)
    printed = _exec(cloud, "--print-manifest", "--", *command)

    assert exported.code == pasted.code == 1
    assert "SD104" in exported.out and "SD104" in pasted.out
    assert "DB_PASSWORD: TODO-db-password  # SD104: was a plain value in the command" in (
        printed.out
    )
    assert cloud.fake.mutating_calls() == []
    assert all(CANARY not in text for text in cloud.transcript)


# -- a release like any other --------------------------------------------------------------------


def test_dry_run_exits_like_plan_and_a_first_adoption_is_no_change(cloud: Cloud) -> None:
    _seed(cloud, LIVE, image="app:2")
    same = [*DEPLOY, "--update-env-vars", "REDIS_PORT=6379"]

    unchanged = _exec(cloud, "--dry-run", "--", *same)
    changed = _exec(cloud, "--dry-run", "--format", "json", "--", *INCIDENT)

    assert unchanged.code == 0, unchanged.out
    assert changed.code == 2, changed.err
    assert _decisions(changed.out)["CLERK_SECRET_KEY"] == "kept-unmanaged"
    assert KEPT in changed.err  # stdout holds the JSON alone
    assert cloud.fake.mutating_calls() == []


def test_services_update_without_an_image_keeps_the_live_one(cloud: Cloud) -> None:
    _seed(cloud, LIVE, image="app:7")
    command = ["gcloud", "run", "services", "update", "api", "--remove-env-vars", "REDIS_PORT"]
    defaults = {"CLOUDSDK_CORE_PROJECT": "demo", "CLOUDSDK_RUN_REGION": "us-central1"}

    unset = _exec(cloud, "--yes", "--", *command, "--update-env-vars", "A=1")
    done = _exec(cloud, "--yes", "--", *command, "--update-env-vars", "A=1", **defaults)

    assert unset.code == 1
    assert "the command names no project, and CLOUDSDK_CORE_PROJECT is not set" in unset.err
    assert done.code == 0, done.err
    container = cloud.service()["template"]["containers"][0]
    assert container["image"] == "app:7"
    assert set(cloud.env_of()) == {*LIVE, "A"} - {"REDIS_PORT"}


def test_a_new_service_without_an_image_is_refused_before_any_change(cloud: Cloud) -> None:
    command = ["gcloud", "run", "deploy", "api", "--region", "us-central1", "--project", "demo"]

    done = _exec(cloud, "--yes", "--", *command, "--set-env-vars", "A=1")

    assert done.code == 1
    assert "api does not exist yet, and the command names no image" in done.err
    assert cloud.fake.mutating_calls() == []


def test_a_command_deployed_twice_keeps_what_the_second_leaves_out(cloud: Cloud) -> None:
    """What exec declared once is not dropped when the next command leaves it out."""
    _seed(cloud, LIVE)

    first = _exec(cloud, "--yes", "--", *INCIDENT)
    second = _exec(cloud, "--yes", "--", *DEPLOY, "--set-env-vars", "REDIS_HOST=10.0.0.7")

    assert first.code == second.code == 0, second.err
    assert cloud.env_of()["DATABASE_URL"] == "postgres://10.0.0.9:5432/app"
    assert "kept 3 variables your command did not name" in second.out


def test_rollback_history_and_status_work_on_what_exec_deployed(cloud: Cloud) -> None:
    _seed(cloud, LIVE)
    before = cloud.served_by()
    done = _exec(cloud, "--yes", "--probe", "/health", "--", *INCIDENT)
    printed = _exec(cloud, "--print-manifest", "--", *INCIDENT)
    manifest = cloud.root / "api.yaml"
    manifest.write_text(printed.out)

    history = cloud.run("history", str(manifest))
    status = cloud.run("status", str(manifest))
    rollback = cloud.run("rollback", str(manifest))

    assert done.code == 0, done.err
    assert "/health  GET" in done.err and "ok (1 attempt)" in done.err
    assert history.code == 0 and "deploy" in history.out, history.err
    assert status.code == 0, status.err
    assert rollback.code == 0, rollback.err
    assert cloud.served_by() == before


BY_NAME = ["--platform", "cloudrun", "--project", "demo", "--region", "us-central1"]
BY_NAME += ["--service", "api"]


def test_status_history_and_rollback_name_what_exec_deployed_by_its_service(cloud: Cloud) -> None:
    _seed(cloud, LIVE)
    before = cloud.served_by()
    done = _exec(cloud, "--yes", "--", *INCIDENT)

    status = cloud.run("status", *BY_NAME)
    history = cloud.run("history", *BY_NAME)
    rollback = cloud.run("rollback", *BY_NAME)
    unlock = cloud.run("unlock", *BY_NAME)
    defaults = {"CLOUDSDK_CORE_PROJECT": "demo", "CLOUDSDK_RUN_REGION": "us-central1"}
    after = run_cli(
        "history", "--platform", "cloudrun", "--service", "api", env=cloud.env() | defaults
    )

    assert done.code == 0, done.err
    assert status.code == 0, status.err
    assert status.out.startswith("api (cloudrun) at http")
    assert "owned: DATABASE_URL, REDIS_HOST" in status.out
    assert "drift" not in status.out  # a service named by flags has no manifest to drift from
    assert history.code == 0, history.err
    assert [line.split()[1:2] for line in history.out.splitlines()[1:]] == [["deploy"]]
    assert rollback.code == 0, rollback.err
    assert cloud.served_by() == before
    assert unlock.code == 0 and unlock.out == "api: no deploy lease is held\n", unlock.err
    assert after.code == 0, after.err
    assert "rollback" in after.out and "succeeded" in after.out


def test_a_manifest_and_the_flags_together_are_refused_before_any_call(cloud: Cloud) -> None:
    manifest = cloud.manifest("image: app:2\n")

    both = cloud.run("status", manifest, *BY_NAME)
    overlay = cloud.run("rollback", "--var", "TAG=2", *BY_NAME)
    neither = cloud.run("history")
    nameless = cloud.run("status", "--platform", "cloudrun", "--project", "demo")

    assert (both.code, overlay.code, neither.code, nameless.code) == (1, 1, 1, 1)
    assert "error: a MANIFEST (--env, --var) or the flags name it: not both" in both.err
    assert "not both" in overlay.err
    assert "error: name the service: no MANIFEST and no --service" in neither.err
    assert "--platform and --service name a service together" in nameless.err
    assert "pass a MANIFEST, or --platform and --service" in both.err
    assert cloud.fake.calls() == []


def test_an_interrupted_exec_release_names_the_rollback_that_finishes_it_by_service(
    aws: test_apprunner.Aws,
) -> None:
    arn = aws.create_live()
    update = ["aws", "apprunner", "update-service", "--service-arn", arn]
    named = ["--platform", "apprunner", "--region", "us-east-1", "--service", "notify-api"]
    rollback = f"`safedeploy rollback {' '.join(named)}`"

    def image(tag: str) -> list[str]:
        source = {"ImageRepository": {"ImageIdentifier": f"{test_apprunner.REPO}:{tag}"}}
        return [*update, "--source-configuration", json.dumps(source)]

    assert aws.run("exec", "--yes", "--", *image("v2")).code == 0
    assert aws.run("exec", "--yes", "--", *image("v3")).code == 0
    *_, last = sorted((aws.root / "state" / "notify-api" / "history").glob("*.json"))
    record = json.loads(last.read_text())
    last.write_text(json.dumps({**record, "outcome": "in-progress"}))  # as if killed serving v3

    refused = aws.run("exec", "--yes", "--", *image("v4"))
    status = aws.run("status", *named)
    finished = aws.run("rollback", *named)

    assert refused.code == 1
    assert "was interrupted and never finished" in refused.err
    assert f"run {rollback} to finish it" in refused.err
    assert status.code == 0, status.err
    assert f"was interrupted and never finished: run {rollback} to finish it" in status.out
    assert finished.code == 0, finished.err
    active = aws.fake.active_config("notify-api")
    assert active is not None and active.image == f"{test_apprunner.REPO}:v2"
    assert aws.run("exec", "--yes", "--", *image("v4")).code == 0


# -- tracing values to the exported variables they came from ------------------------------------


def _traced(value: str, **environ: str) -> tuple[str, dict[str, str]]:
    """How exec writes `A=value` from the command, and the variables it then fills."""
    command = read_command([*DEPLOY, "--update-env-vars", f"A={value}"], environ, Path.cwd())
    written = command.draft.env["A"]
    assert isinstance(written, str)
    return written, command.variables


def test_a_value_is_traced_to_the_longest_exported_value_it_holds() -> None:
    host, url = "db.internal.example", "postgres://db.internal.example/app"

    assert _traced(url, HOST=host) == ("postgres://${HOST}/app", {"HOST": host})
    assert _traced(url, HOST=host, URL=url) == ("${URL}", {"URL": url})
    assert _traced("x-db.internal.example-x-short", HOST=host, S="short") == (
        "x-${HOST}-x-short",
        {"HOST": host},
    )


def test_the_shells_and_ci_own_variables_are_not_sources_unless_named_as_credentials() -> None:
    own = {"HOME": "/home/runner", "GITHUB_REPOSITORY": "acme/backend", "AWS_REGION": "eu-west-1"}
    token = "ghs_0123456789abcdefghijklmnopqrstuvwxyz"

    assert _traced("/home/runner/acme/backend@eu-west-1", **own) == (
        "/home/runner/acme/backend@eu-west-1",
        {},
    )
    assert _traced(f"token {token}", GITHUB_TOKEN=token) == (
        "token ${GITHUB_TOKEN}",
        {"GITHUB_TOKEN": token},
    )


def test_what_a_manifest_cannot_template_stays_as_written_and_is_scrubbed() -> None:
    from safedeploy.redact import forget_all, scrub

    forget_all()
    assert _traced("a${literal}b") == ("a$${literal}b", {})
    assert _traced("cost$" + CANARY, PRICE=CANARY) == ("cost$" + CANARY, {})
    assert scrub("cost$" + CANARY) == "cost$(sensitive)"
    forget_all()


def test_the_manifest_exec_builds_is_loaded_from_text_naming_its_origin(cloud: Cloud) -> None:
    done = _exec(cloud, "--dry-run", "--probe", "health", "--", *INCIDENT)

    assert done.code == 1
    assert "error: exec:" in done.err and "a probe path starts with /" in done.err
    assert not list(cloud.root.glob("*.yaml")) and cloud.fake.calls() == []
