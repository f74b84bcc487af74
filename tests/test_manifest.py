"""load_manifest: every bad input names file, line and key; every shorthand loads as documented."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import msgspec
import pytest
from ruamel.yaml import YAML

from safedeploy.errors import SafedeployError, location
from safedeploy.manifest import (
    AS_TEMPLATE,
    FOR_READING,
    Manifest,
    load_manifest,
    manifest_schema,
)
from safedeploy.model import Platform, SecretRef, ServiceSpec
from safedeploy.redact import MASK, Sensitive, scrub

# Lines 1-3 of every table manifest; the case's own text starts at line 4.
LOCAL = "service: api\nplatform: local\ncommand: [python, app.py]\n"

BAD = [
    # (id, manifest text, --env, line, key, words the message or hint must contain)
    ("yaml-syntax", LOCAL + "env: [a\nimage: x\n", None, 5, None, ["invalid YAML"]),
    ("yaml-tab", LOCAL + "env:\n\tA: b\n", None, 5, None, ["invalid YAML"]),
    ("two-documents", LOCAL + "---\nservice: b\n", None, 4, None, ["invalid YAML"]),
    ("duplicate-top", LOCAL + "service: other\n", None, 4, "service", ["lines 1 and 4"]),
    (
        "duplicate-env",
        LOCAL + 'env:\n  A: "1"\n  B: x\n  A: "2"\n',
        None,
        7,
        "env.A",
        ["twice", "lines 5 and 7"],
    ),
    ("empty-file", "# nothing\n", None, 1, None, ["empty"]),
    ("not-a-mapping", "- service: api\n", None, 1, None, ["not a mapping"]),
    ("unknown-top", LOCAL + "setings: {}\n", None, 4, "setings", ["did you mean `settings`"]),
    (
        "unknown-nested",
        LOCAL + "settings:\n  memroy: 512Mi\n",
        None,
        5,
        "settings.memroy",
        ["unknown key `memroy`", "did you mean `memory`"],
    ),
    (
        "unknown-in-probe",
        LOCAL + "probes:\n  - name: h\n    expect: {statuss: 200}\n",
        None,
        6,
        "probes.0.expect.statuss",
        ["did you mean `status`"],
    ),
    ("internal-key", LOCAL + "lines: {}\n", None, 4, "lines", ["unknown key `lines`"]),
    (
        "unknown-in-selected-overlay",
        LOCAL + "environments:\n  staging:\n    regoin: eu\n",
        "staging",
        6,
        "environments.staging.regoin",
        ["did you mean `region`"],
    ),
    (
        "unknown-in-other-overlay",
        LOCAL + "environments:\n  staging:\n    env: {A: b}\n  prod:\n    imagee: x\n",
        None,
        8,
        "environments.prod.imagee",
        ["did you mean `image`"],
    ),
    (
        "overlay-not-mapping",
        LOCAL + "environments:\n  staging: eu\n",
        None,
        5,
        "environments.staging",
        ["not a mapping"],
    ),
    ("wrong-type-int", LOCAL + "settings:\n  port: http\n", None, 5, "settings.port", ["whole"]),
    ("bool-for-int", LOCAL + "settings:\n  port: true\n", None, 5, "settings.port", ["whole"]),
    ("wrong-type-list", LOCAL + "required: DATABASE_URL\n", None, 4, "required", ["a list"]),
    ("wrong-literal", LOCAL + "unmanaged: drop\n", None, 4, "unmanaged", ["'keep'", "'fail'"]),
    ("wrong-platform", "service: a\nplatform: heroku\n", None, 2, "platform", ["'cloudrun'"]),
    ("bad-duration", LOCAL + "settings:\n  timeout: soon\n", None, 5, "settings.timeout", ["30s"]),
    (
        "fractional-timeout",
        LOCAL + "settings:\n  timeout: 1.5s\n",
        None,
        5,
        "settings.timeout",
        ["whole number"],
    ),
    (
        "env-number",
        LOCAL + "env:\n  REDIS_PORT: 6379\n",
        None,
        5,
        "env.REDIS_PORT",
        ["a number", "must be strings", 'REDIS_PORT: "'],
    ),
    ("env-bool", LOCAL + "env:\n  DEBUG: true\n", None, 5, "env.DEBUG", ["a boolean", "quote"]),
    ("env-null", LOCAL + "env:\n  EMPTY:\n", None, 5, "env.EMPTY", ["no value", 'EMPTY: ""']),
    ("env-key-number", LOCAL + "env:\n  8080: port\n", None, 5, "env.8080", ["not text"]),
    (
        "unset-var",
        LOCAL + "env:\n  TAG: v-${IMAGE_TAG}\n",
        None,
        5,
        "env.TAG",
        ["IMAGE_TAG is not set", "--var IMAGE_TAG=value or export IMAGE_TAG"],
    ),
    ("unclosed-var", LOCAL + "image: x:${TAG\n", None, 4, "image", ["not closed"]),
    ("bad-var-name", LOCAL + "image: x:${TAG-1}\n", None, 4, "image", ["not a variable name"]),
    (
        "unknown-environment",
        LOCAL + "environments:\n  staging: {}\n  production: {}\n",
        "prodution",
        4,
        "environments",
        ["no such environment", "did you mean `production`", "production, staging"],
    ),
    ("no-environments", LOCAL, "staging", 1, "environments", ["no `environments:`"]),
    ("secret-colons", LOCAL + "secrets:\n  A: db:7:x\n", None, 5, "secrets.A", ["name:version"]),
    ("secret-empty", LOCAL + 'secrets:\n  A: ""\n', None, 5, "secrets.A", ["secret reference"]),
    ("secret-null", LOCAL + "secrets:\n  A:\n", None, 5, "secrets.A", ["got nothing"]),
    ("secret-number", LOCAL + "secrets:\n  A: 7\n", None, 5, "secrets.A", ["got a number"]),
    ("secret-arn-s3", LOCAL + "secrets:\n  A: arn:aws:s3:::b\n", None, 5, "secrets.A", ["ARN"]),
    (
        "secret-bad-resource",
        LOCAL + "secrets:\n  A: projects/p/secret/s\n",
        None,
        5,
        "secrets.A",
        ["resource name"],
    ),
    (
        "secret-mapping-typo",
        LOCAL + "secrets:\n  A: {secret: db, versoin: 7}\n",
        None,
        5,
        "secrets.A",
        ["`versoin`"],
    ),
    (
        "secret-version-twice",
        LOCAL + "secrets:\n  A: {secret: 'db:3', version: 7}\n",
        None,
        5,
        "secrets.A",
        ["twice"],
    ),
    ("missing-service", "platform: local\ncommand: [a]\n", None, 1, "service", ["`service`"]),
    ("missing-platform", "service: api\n", None, 1, "platform", ["`platform`"]),
    (
        "missing-probe-name",
        LOCAL + "probes:\n  - path: /health\n",
        None,
        5,
        "probes.0.name",
        ["missing required key `name`"],
    ),
    (
        "probe-bound",
        LOCAL + "probes:\n  - name: h\n    interval: -1\n",
        None,
        6,
        "probes.0.interval",
        ["expected a number >= 0"],
    ),
    (
        "probe-method",
        LOCAL + "probes:\n  - name: h\n    method: FETCH\n",
        None,
        6,
        "probes.0.method",
        ["'GET'", "'OPTIONS'"],
    ),
    (
        "probe-header-name",
        LOCAL + "probes:\n  - name: h\n    headers: {X-A: a, X B: b}\n",
        None,
        6,
        "probes.0.headers",
        ["`X B` is not a header name"],
    ),
    (
        "label-value-number",
        LOCAL + "settings:\n  labels:\n    team: web\n    tier: 2\n",
        None,
        7,
        "settings.labels.tier",
        ["expected text, got a number"],
    ),
    ("steps-decreasing", LOCAL + "rollout: {steps: [50, 10, 100]}\n", None, 4, "rollout.steps", []),
    ("steps-not-100", LOCAL + "rollout:\n  steps: [10, 50]\n", None, 5, "rollout.steps", []),
    ("steps-zero", LOCAL + "rollout:\n  steps: [0, 100]\n", None, 5, "rollout.steps", []),
    ("steps-empty", LOCAL + "rollout:\n  steps: []\n", None, 5, "rollout.steps", []),
    ("local-needs-command", "service: a\nplatform: local\n", None, 2, "command", ["needs"]),
    (
        "cloudrun-needs-image",
        "service: a\nplatform: cloudrun\nproject: p\nregion: r\n",
        None,
        2,
        "image",
        ["platform cloudrun needs `image`"],
    ),
    (
        "cloudrun-needs-project",
        "service: a\nplatform: cloudrun\nimage: i\nregion: r\n",
        None,
        2,
        "project",
        ["needs `project`"],
    ),
    (
        "apprunner-needs-region",
        "service: web-api\nplatform: apprunner\nimage: i\n",
        None,
        2,
        "region",
        ["needs `region`"],
    ),
]


def write(tmp_path: Path, text: str, name: str = "svc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "env_name", "line", "key", "words"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_manifest_names_file_line_and_key(
    tmp_path: Path, text: str, env_name: str | None, line: int, key: str | None, words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SafedeployError) as caught:
        load_manifest(path, env_name=env_name, environ={})
    error = caught.value
    assert error.where == location(path, line, key)
    assert error.hint, "every manifest error says what to do"
    for word in words:
        assert word in str(error)


def test_steps_error_explains_the_rule(tmp_path: Path) -> None:
    path = write(tmp_path, LOCAL + "rollout: {steps: [50, 10, 100]}\n")
    with pytest.raises(SafedeployError, match="increasing percentages from 1 to 100"):
        load_manifest(path)


def test_every_problem_is_listed_first_by_line(tmp_path: Path) -> None:
    path = write(tmp_path, LOCAL + "settings:\n  port: x\nunmanaged: drop\nrollbak: off\n")
    with pytest.raises(SafedeployError) as caught:
        load_manifest(path)
    assert caught.value.where == location(path, 5, "settings.port")
    assert f"also {location(path, 6, 'unmanaged')}" in caught.value.what
    assert f"also {location(path, 7, 'rollbak')}" in caught.value.what


def test_errors_never_repeat_a_value(tmp_path: Path) -> None:
    path = write(tmp_path, LOCAL + "env:\n  PIN: 918273\n")
    with pytest.raises(SafedeployError) as caught:
        load_manifest(path)
    assert "918273" not in str(caught.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SafedeployError, match="cannot read"):
        load_manifest(tmp_path / "absent.yaml")


FULL = """\
service: backend-api
platform: cloudrun
project: prod-project
region: us-central1
image: gcr.io/prod-project/backend-api:${IMAGE_TAG}
env:
  REDIS_HOST: 10.110.183.147
  LOG_LEVEL: info
secrets:
  CLERK_SECRET_KEY: clerk-secret-key
  DATABASE_URL: {secret: database-url, version: "7"}
required: [CLERK_SECRET_KEY, DATABASE_URL, REDIS_HOST]
settings:
  memory: 512Mi
  timeout: 5m
probes:
  - name: health
    path: /health
    expect: {status: 200, json: {ok: true}, max_latency: 2s}
rollout:
  strategy: canary
  steps: [10, 50, 100]
environments:
  staging:
    project: staging-project
    env:
      LOG_LEVEL: debug
      FEATURE_X: "on"
    settings: {memory: 1Gi}
    required: [CLERK_SECRET_KEY]
  prod:
    image: gcr.io/prod-project/backend-api:${PROD_ONLY_TAG}
"""


def test_full_manifest_loads(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    manifest = load_manifest(path, environ={"IMAGE_TAG": "v1"})
    assert manifest.path == path
    assert manifest.image == "gcr.io/prod-project/backend-api:v1"
    assert manifest.env == {"REDIS_HOST": "10.110.183.147", "LOG_LEVEL": "info"}
    assert manifest.secrets == {
        "CLERK_SECRET_KEY": SecretRef("clerk-secret-key"),
        "DATABASE_URL": SecretRef("database-url", "7"),
    }
    assert manifest.settings.timeout == 300
    assert manifest.probes[0].expect.max_latency == 2.0
    assert manifest.probes[0].expect.json_subset == {"ok": True}
    assert manifest.rollout.steps == [10, 50, 100]
    assert "environments" not in msgspec.structs.asdict(manifest)
    assert not any(key.startswith("environments") for key in manifest.lines)


def test_lines_cover_keys_and_items(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, FULL), environ={"IMAGE_TAG": "v1"})
    assert manifest.lines["service"] == 1
    assert manifest.lines["image"] == 5
    assert manifest.lines["env"] == 6
    assert manifest.lines["env.LOG_LEVEL"] == 8
    assert manifest.lines["secrets.DATABASE_URL"] == 11
    assert manifest.lines["settings.memory"] == 14
    assert manifest.lines["probes.0"] == 17
    assert manifest.lines["probes.0.path"] == 18
    assert manifest.lines["required.2"] == 12


def test_line_of_falls_back_to_the_nearest_parent(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, FULL), environ={"IMAGE_TAG": "v1"})
    assert manifest.line_of("env.REDIS_HOST") == 7
    assert manifest.line_of("env.NOT_THERE") == 6
    assert manifest.line_of("probes.0.expect.json.ok") == 19
    assert manifest.line_of("nothing") is None


def test_overlay_deep_merges_and_points_at_its_lines(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, FULL), env_name="staging", environ={"IMAGE_TAG": "v1"})
    assert manifest.project == "staging-project"
    assert manifest.env == {"REDIS_HOST": "10.110.183.147", "LOG_LEVEL": "debug", "FEATURE_X": "on"}
    assert manifest.settings.memory == "1Gi"
    assert manifest.settings.timeout == 300  # kept from the top level
    assert manifest.required == ["CLERK_SECRET_KEY"]  # lists replace
    assert manifest.lines["project"] == 25
    assert manifest.lines["env.LOG_LEVEL"] == 27
    assert manifest.lines["env.FEATURE_X"] == 28
    assert manifest.lines["env.REDIS_HOST"] == 7
    assert manifest.lines["env"] == 6
    assert manifest.lines["settings.memory"] == 29
    assert manifest.lines["settings.timeout"] == 15
    assert manifest.lines["required"] == 30
    assert "required.2" not in manifest.lines  # the replaced list's items are gone


def test_overlay_vars_are_only_needed_when_selected(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    load_manifest(path, environ={"IMAGE_TAG": "v1"})  # PROD_ONLY_TAG unset: fine
    with pytest.raises(SafedeployError) as caught:
        load_manifest(path, env_name="prod", environ={"IMAGE_TAG": "v1"})
    assert caught.value.where == location(path, 32, "environments.prod.image")
    assert "PROD_ONLY_TAG" in caught.value.what
    prod = load_manifest(path, env_name="prod", environ={"PROD_ONLY_TAG": "p1"})
    assert prod.image == "gcr.io/prod-project/backend-api:p1"


def test_var_beats_environ(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    manifest = load_manifest(path, variables={"IMAGE_TAG": "flag"}, environ={"IMAGE_TAG": "env"})
    assert manifest.image == "gcr.io/prod-project/backend-api:flag"


def test_environ_defaults_to_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGE_TAG", "from-os")
    manifest = load_manifest(write(tmp_path, FULL))
    assert manifest.image == "gcr.io/prod-project/backend-api:from-os"


def test_empty_variable_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    with pytest.raises(SafedeployError, match="IMAGE_TAG is set but empty"):
        load_manifest(path, variables={"IMAGE_TAG": ""}, environ={"IMAGE_TAG": "v1"})


def test_dollar_escape_and_no_rescan(tmp_path: Path) -> None:
    text = LOCAL + "env:\n  LITERAL: $${HOME}/x\n  DOLLARS: a$$b\n  FILLED: ${A}-${B}\n"
    manifest = load_manifest(write(tmp_path, text), variables={"A": "${B}", "B": "2"})
    assert manifest.env == {"LITERAL": "${HOME}/x", "DOLLARS": "a$$b", "FILLED": "${B}-2"}


def test_keys_are_not_interpolated(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, LOCAL + "env:\n  ${NOT_A_VAR}: x\n"), environ={})
    assert manifest.env == {"${NOT_A_VAR}": "x"}


@pytest.mark.parametrize(
    ("written", "ref"),
    [
        ("clerk-secret-key", SecretRef("clerk-secret-key", "latest")),
        ("database-url:7", SecretRef("database-url", "7")),
        ("{secret: database-url, version: 7}", SecretRef("database-url", "7")),
        ('{secret: database-url, version: "7"}', SecretRef("database-url", "7")),
        ("{secret: database-url}", SecretRef("database-url", "latest")),
        ("projects/p/secrets/s", SecretRef("projects/p/secrets/s", "latest")),
        ("projects/p/secrets/s/versions/3", SecretRef("projects/p/secrets/s", "3")),
        ("{secret: projects/p/secrets/s, version: 4}", SecretRef("projects/p/secrets/s", "4")),
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
            SecretRef("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf", "latest"),
        ),
        (
            "arn:aws:ssm:us-east-1:123456789012:parameter/app/db",
            SecretRef("arn:aws:ssm:us-east-1:123456789012:parameter/app/db", "latest"),
        ),
        ("db-url:${DB_VERSION}", SecretRef("db-url", "9")),
    ],
)
def test_secret_shorthands(tmp_path: Path, written: str, ref: SecretRef) -> None:
    path = write(tmp_path, LOCAL + f"secrets:\n  DATABASE_URL: {written}\n")
    manifest = load_manifest(path, variables={"DB_VERSION": "9"})
    assert manifest.secrets == {"DATABASE_URL": ref}


def test_coercions(tmp_path: Path) -> None:
    text = LOCAL + (
        "settings: {cpu: 1, timeout: 300, port: '${PORT}', concurrency: 0x10}\n"
        "probes:\n"
        "  - {name: a, interval: 250ms, timeout: 1m, expect: {max_latency: 500ms}}\n"
        "  - {name: b, interval: 2, expect: {max_latency: 1.5}}\n"
    )
    manifest = load_manifest(write(tmp_path, text), variables={"PORT": "8080"})
    assert manifest.settings.cpu == "1"
    assert manifest.settings.timeout == 300
    assert manifest.settings.port == 8080
    assert manifest.settings.concurrency == 16
    first, second = manifest.probes
    assert (first.interval, first.timeout, first.expect.max_latency) == (0.25, 60.0, 0.5)
    assert (second.interval, second.expect.max_latency) == (2.0, 1.5)


def test_env_names_are_kept_as_given(tmp_path: Path) -> None:
    text = LOCAL + "env:\n  database_url: a\n  DATABASE_URL: b\n"
    assert load_manifest(write(tmp_path, text)).env == {"database_url": "a", "DATABASE_URL": "b"}


def test_desired_spec_and_declared(tmp_path: Path) -> None:
    text = LOCAL + "env:\n  A: '1'\nsecrets:\n  B: b-secret:2\nsettings: {memory: 256Mi}\n"
    manifest = load_manifest(write(tmp_path, text))
    assert manifest.desired_spec() == ServiceSpec(
        image=None,
        command=("python", "app.py"),
        env={"A": "1", "B": SecretRef("b-secret", "2")},
        settings={"memory": "256Mi"},
    )
    assert manifest.declared == frozenset({"A", "B"})
    assert manifest.platform is Platform.LOCAL


def test_schema_is_valid_and_describes_the_yaml(tmp_path: Path) -> None:
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    properties = schema["properties"]
    assert "environments" in properties
    assert "path" not in properties and "lines" not in properties
    assert set(schema["required"]) == {"service", "platform"}
    written = YAML(typ="safe").load(FULL)
    jsonschema.validate(written, schema)
    written["environments"]["staging"]["regoin"] = "eu"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(written, schema)


def test_schema_accepts_the_shorthands() -> None:
    document = {
        "service": "a",
        "platform": "cloudrun",
        "secrets": {"A": "a:7", "B": {"secret": "b", "version": 7}},
        "settings": {"timeout": "5m", "cpu": 1},
        "probes": [{"name": "h", "expect": {"max_latency": "500ms"}}],
    }
    jsonschema.validate(document, manifest_schema())


def test_models_still_construct_directly() -> None:
    manifest = Manifest(service="a", platform=Platform.LOCAL)
    assert manifest.path == Path("-")
    assert manifest.line_of("env") is None


def test_duplicate_inside_an_overlay_names_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, LOCAL + "environments:\n  staging:\n    region: a\n    region: b\n")
    with pytest.raises(SafedeployError) as caught:
        load_manifest(path)
    assert caught.value.where == location(path, 7, "environments.staging.region")
    assert "lines 6 and 7" in caught.value.what


def test_yaml_anchors_and_merge_keys_load(tmp_path: Path) -> None:
    text = LOCAL + (
        "environments:\n"
        "  staging: &staging\n"
        "    env: {MODE: staging, LOG_LEVEL: debug}\n"
        "  preview:\n"
        "    <<: *staging\n"
        "    region: eu\n"
    )
    manifest = load_manifest(write(tmp_path, text), env_name="preview")
    assert manifest.env == {"MODE": "staging", "LOG_LEVEL": "debug"}
    assert manifest.region == "eu"
    assert manifest.lines["region"] == 9


def test_reading_commands_keep_unset_variables_that_only_a_deploy_uses(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "service: api\nplatform: cloudrun\nproject: ${PROJECT}\nregion: r\n"
        "image: repo/api:${IMAGE_TAG}\nenv:\n  GREETING: ${GREETING}\n"
    )
    manifest = load_manifest(path, variables={"PROJECT": "p"}, environ={}, unset_ok=FOR_READING)
    assert manifest.image == "repo/api:${IMAGE_TAG}"
    assert manifest.env == {"GREETING": "${GREETING}"}
    with pytest.raises(SafedeployError, match="variable PROJECT is not set"):
        load_manifest(
            path, environ={}, unset_ok=FOR_READING
        )  # the service's address is still needed
    with pytest.raises(SafedeployError, match="variable IMAGE_TAG is not set"):
        load_manifest(path, variables={"PROJECT": "p"}, environ={})
    template = load_manifest(path, environ={}, unset_ok=AS_TEMPLATE)  # lint: no variable set
    assert (template.project, template.image) == ("${PROJECT}", "repo/api:${IMAGE_TAG}")


def test_a_filled_value_is_sensitive_and_keeps_its_template(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "service: api\nplatform: cloudrun\nproject: p\nregion: r\n"
        "image: repo/api:${GIT_SHA}\npublic: [GIT_SHA]\n"
        "env:\n  DATABASE_URL: postgres://app:${DB_PASS}@db/app\n  SHA: ${GIT_SHA}\n"
        "  LITERAL: $${NOT_A_VAR}\n"
        "settings:\n  labels: {team: '${TEAM}'}\n"
    )
    values = {"DB_PASS": "hunter2-long", "GIT_SHA": "0a1b2c3", "TEAM": "payments"}
    manifest = load_manifest(path, environ=values)
    assert manifest.templates == {
        "env.DATABASE_URL": "postgres://app:${DB_PASS}@db/app",
        "settings.labels.team": "${TEAM}",
    }  # not image (not a secret), not a public variable, not a literal `$${`
    env = manifest.desired_spec().env
    assert isinstance(env["DATABASE_URL"], Sensitive) and str(env["DATABASE_URL"]) == MASK
    assert env["DATABASE_URL"] == "postgres://app:hunter2-long@db/app"  # the raw value, to apply
    assert not isinstance(env["SHA"], Sensitive) and not isinstance(env["LITERAL"], Sensitive)
    assert scrub("dsn=postgres://app:hunter2-long@db/app") == f"dsn={MASK}"
    assert "public" in manifest_schema()["properties"]


@pytest.mark.parametrize(
    ("platform", "name", "ok"),
    [
        ("cloudrun", "backend-api", True),
        ("cloudrun", "Backend", False),
        ("cloudrun", "api-", False),
        ("cloudrun", "1api", False),
        ("cloudrun", "a" * 49, True),
        ("cloudrun", "a" * 50, False),
        ("apprunner", "Web_Api-2", True),
        ("apprunner", "web", False),
        ("apprunner", "a" * 41, False),
        ("local", "../x", False),
    ],
)
def test_service_names_follow_the_platform(
    tmp_path: Path, platform: str, name: str, ok: bool
) -> None:
    needs = {
        "cloudrun": "image: i\nproject: p\nregion: r\n",
        "apprunner": "image: i\nregion: us-east-1\n",
        "local": "command: [x]\n",
    }
    path = tmp_path / "m.yaml"
    path.write_text(f"service: {name!r}\nplatform: {platform}\n{needs[platform]}")
    if ok:
        assert load_manifest(path).service == name
        return
    with pytest.raises(SafedeployError) as caught:
        load_manifest(path)
    assert caught.value.where == f"{path}:1 (service)"
    assert "service name has" in str(caught.value.hint)


BOMB = (
    "service: x\nplatform: local\ncommand: [x]\n"
    + f"a: &a [{', '.join(['lol'] * 9)}]\n"
    + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
)
HOSTILE = {
    "billion laughs": (BOMB, "expands to more than"),
    "self-referencing alias": ("a: &a [*a]\n", "nests deeper than"),
    "self-merging mapping": ("env: &e {<<: *e}\n", "refer to themselves"),
    "deep nesting": ("".join(f"{'  ' * i}k{i}:\n" for i in range(40)) + "  " * 40 + "x\n", "nests"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_refused_cheaply(tmp_path: Path, case: str) -> None:
    """Refused with a line, before the expansion could cost memory (a 9^9 bomb is ~400M items)."""
    import tracemalloc

    text, what = HOSTILE[case]
    path = tmp_path / "m.yaml"
    path.write_text(text)
    tracemalloc.start()
    try:
        with pytest.raises(SafedeployError) as caught:
            load_manifest(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert what in caught.value.what
    assert str(caught.value.where).startswith(f"{path}:")
    assert peak < 32 * 1024 * 1024


def test_an_oversized_manifest_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("service: x\n# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(SafedeployError) as caught:
        load_manifest(path)
    assert "reads at most 1,048,576" in caught.value.what
    assert caught.value.where == str(path)
