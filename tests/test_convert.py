"""`safedeploy convert`: deploy scripts in, manifests out that load, lint, and leak nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from safedeploy.convert import ConvertedManifest, convert_script
from safedeploy.errors import SafedeployError
from safedeploy.lint import lint_manifest
from safedeploy.manifest import Manifest, load_manifest
from safedeploy.model import SecretRef

SCRIPTS = Path(__file__).parent / "scripts"
CANARY = "sk_live_CANARY0123456789abcdef"


def convert(text: str, base: Path = SCRIPTS) -> list[ConvertedManifest]:
    return convert_script(text, base, "deploy.sh")


def one(text: str, base: Path = SCRIPTS) -> ConvertedManifest:
    manifests = convert(text, base)
    assert len(manifests) == 1, manifests
    return manifests[0]


def script(name: str) -> ConvertedManifest:
    return one((SCRIPTS / name).read_text())


def data(manifest: ConvertedManifest) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(manifest.yaml)
    return loaded


def load(manifest: ConvertedManifest, tmp_path: Path, **variables: str) -> Manifest:
    path = tmp_path / manifest.filename
    path.write_text(manifest.yaml)
    return load_manifest(path, variables=variables, environ={})


def safedeploy(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safedeploy", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )


# --- the incident write-ups ---


def test_incident_gcloud_deploy_loads_and_lints_clean(tmp_path: Path) -> None:
    converted = script("deploy-prod.sh")
    assert (converted.service, converted.platform) == ("backend-api", "cloudrun")
    assert converted.filename == "backend-api.yaml"
    assert converted.not_understood == ()
    manifest = load(converted, tmp_path, TAG="v42", DATABASE_URL="postgres://db.internal:5432/app")
    assert manifest.image == "gcr.io/p/backend-api:v42"
    assert (manifest.project, manifest.region) == ("p", "us-central1")
    assert manifest.env == {
        "DATABASE_URL": "postgres://db.internal:5432/app",
        "REDIS_HOST": "10.110.183.147",
        "REDIS_PORT": "6379",
        "EXTENSION_BACKEND_URL": "https://ext.example.com",
    }
    # Passed from the shell in plain text: a secret to create, never an env value.
    assert manifest.secrets == {"CLERK_SECRET_KEY": SecretRef("TODO-clerk-secret-key")}
    assert "CLERK_SECRET_KEY: TODO-clerk-secret-key  # SD104: " in converted.yaml
    assert manifest.required == [
        "DATABASE_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "CLERK_SECRET_KEY",
        "EXTENSION_BACKEND_URL",
    ]
    settings = manifest.settings
    assert (settings.cpu, settings.memory, settings.timeout) == ("2", "2Gi", 600)
    assert settings.vpc_connector == ("projects/p/locations/us-central1/connectors/redis-connector")
    assert lint_manifest(manifest) == []
    assert "# Pass --var NAME=value (or export NAME) for: TAG, DATABASE_URL" in converted.yaml
    assert "#     path: /health" in converted.yaml
    assert "unmanaged: keep" in converted.yaml  # says why --set-env-vars is no longer a trap


def test_incident_apprunner_update_service_loads_and_lints_clean(tmp_path: Path) -> None:
    converted = script("deploy-notify.sh")
    assert (converted.service, converted.platform) == ("notify-api", "apprunner")
    assert converted.not_understood == (
        "--source-configuration AutoDeploymentsEnabled=false (line 3)",
        "--health-check-configuration Protocol=HTTP (line 3)",
        "--health-check-configuration Path=/health (line 3)",
    )
    assert "#   --health-check-configuration Path=/health (line 3)\n" in converted.yaml
    manifest = load(converted, tmp_path, IMAGE_TAG="v7")
    assert manifest.region == "us-east-1"
    assert manifest.image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/notify-api:v7"
    assert manifest.env == {
        "TWILIO_FROM_NUMBER": "+15005550006",
        "PUBLIC_BASE_URL": "https://notify.example.com",
    }
    assert manifest.secrets == {
        "DATABASE_URL": SecretRef(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:notify/database-url-AbCdEf"
        ),
        "TWILIO_AUTH_TOKEN": SecretRef("TODO-twilio-auth-token"),
    }
    assert "put its ARN here" in converted.yaml
    assert manifest.desired_spec().settings == {
        "port": 8080,
        "cpu": "1 vCPU",
        "memory": "2 GB",
        "instance_role": "arn:aws:iam::123456789012:role/notify-api",
        "egress": "VPC",
        "vpc_connector": (
            "arn:aws:apprunner:us-east-1:123456789012:vpcconnector/notify-vpc/1/0123456789abcdef"
        ),
    }
    assert lint_manifest(manifest) == []


def test_apprunner_create_service_from_a_file_with_the_default_region(tmp_path: Path) -> None:
    converted = script("create-notify.sh")
    assert converted.service == "notify-worker"
    assert "region: ${AWS_REGION}  # the AWS CLI's default region" in converted.yaml
    assert "export AWS_PROFILE=prod" in converted.yaml
    assert converted.not_understood == ()
    manifest = load(converted, tmp_path, AWS_REGION="eu-west-1")
    assert manifest.region == "eu-west-1"
    assert manifest.settings.access_role == "arn:aws:iam::123456789012:role/apprunner-ecr"
    assert manifest.command == ["python", "-m", "worker", "--queue", "sms"]
    # `$` means nothing in a JSON file: the text stays as written.
    assert manifest.env == {"GREETING_TEMPLATE": "Hello ${name}", "QUEUE": "sms"}


def test_apprunner_service_name_and_region_come_from_the_arn() -> None:
    converted = one(
        "aws --region eu-west-1 apprunner update-service --service-arn "
        "arn:aws:apprunner:eu-west-1:123456789012:service/api/0123 "
        "--instance-configuration Cpu=1024 --health-check-configuration Path=/up"
    )
    assert (data(converted)["service"], data(converted)["region"]) == ("api", "eu-west-1")
    assert data(converted)["image"] == "${IMAGE}"  # an update that keeps the image
    assert data(converted)["settings"] == {"cpu": "1 vCPU"}
    assert converted.not_understood == ("--health-check-configuration Path=/up (line 1)",)


# --- gcloud's flags ---


def test_custom_delimiters_keep_commas_in_values() -> None:
    converted = one(
        "gcloud run deploy api --image i --region r --project p "
        "--set-env-vars='^@^ORIGINS=https://a.example,https://b.example@MODE=fast' "
        '--update-env-vars "^:^TAGS=x,y:EMPTY="'
    )
    assert data(converted)["env"] == {
        "ORIGINS": "https://a.example,https://b.example",
        "MODE": "fast",
        "TAGS": "x,y",
        "EMPTY": "",
    }


def test_update_and_remove_fold_into_one_manifest_per_service() -> None:
    converted = one(
        "gcloud run deploy api --image i:1 --region r --project p --set-env-vars A=1,B=2,C=3\n"
        "gcloud beta run services update api --region r --update-env-vars D=4,B=22 \\\n"
        "  --remove-env-vars=B,C\n"
    )
    manifest = data(converted)
    assert manifest["env"] == {"A": "1", "B": "22", "D": "4"}  # gcloud removes, then updates
    assert manifest["remove"] == ["C"]
    assert manifest["required"] == ["A", "D", "B"]
    assert manifest["image"] == "i:1"
    assert "(lines 1, 2)" in converted.yaml


def test_the_same_service_in_two_projects_is_two_manifests() -> None:
    staging, prod = convert(
        "gcloud run deploy api --image i --region r --project staging\n"
        "gcloud run deploy api --image i --region r --project prod\n"
    )
    assert (data(staging)["project"], data(prod)["project"]) == ("staging", "prod")
    assert (staging.filename, prod.filename) == ("api.yaml", "api-2.yaml")


def test_secrets_flags(tmp_path: Path) -> None:
    converted = one(
        "gcloud run deploy api --image i --region r --project p "
        "--set-secrets DATABASE_URL=database-url:7,STRIPE_KEY=stripe-key:latest,CLERK=clerk\n"
        "gcloud run services update api "
        "--update-secrets=SHARED=projects/123/secrets/shared:2,/etc/certs/ca.pem=ca:1 "
        "--remove-secrets=STRIPE_KEY"
    )
    manifest = load(converted, tmp_path)
    assert manifest.secrets == {
        "DATABASE_URL": SecretRef("database-url", "7"),
        "CLERK": SecretRef("clerk"),
        "SHARED": SecretRef("projects/123/secrets/shared", "2"),
    }
    assert "  CLERK: clerk\n" in converted.yaml
    assert manifest.remove == ["STRIPE_KEY"]
    assert manifest.env == {}
    assert 'DATABASE_URL: {secret: database-url, version: "7"}' in converted.yaml
    assert converted.not_understood == (
        "--update-secrets item /etc/certs/ca.pem=ca:1: a file mount, not a variable (line 2)",
    )


def test_settings_flags(tmp_path: Path) -> None:
    converted = one(
        "gcloud run deploy api --image i --region us-central1 --project p --timeout=10m "
        "--concurrency 80 --min-instances=1 --max-instances 20 --port 8081 "
        "--service-account api@p.iam.gserviceaccount.com --vpc-connector=conn --vpc-egress all "
        "--add-cloudsql-instances main-db,other:us-east1:db --ingress internal "
        "--set-env-vars DATABASE_URL=/cloudsql/p:us-central1:main-db/app "
        "--allow-unauthenticated --platform managed --quiet"
    )
    manifest = load(converted, tmp_path)
    assert manifest.desired_spec().settings == {
        "timeout": 600,
        "concurrency": 80,
        "min_instances": 1,
        "max_instances": 20,
        "port": 8081,
        "service_account": "api@p.iam.gserviceaccount.com",
        "vpc_connector": "projects/p/locations/us-central1/connectors/conn",
        "egress": "all-traffic",
        "cloudsql_instances": ["p:us-central1:main-db", "other:us-east1:db"],
        "ingress": "internal",
    }
    assert lint_manifest(manifest) == []  # SD105: the socket's instance is attached
    assert "--allow-unauthenticated: who may invoke the service is IAM policy" in converted.yaml
    assert converted.not_understood == ()


@pytest.mark.parametrize(
    ("flag", "seconds"), [("600", 600), ("90s", 90), ("10m", 600), ("1h30m", 5400)]
)
def test_timeout_forms(flag: str, seconds: int) -> None:
    converted = one(f"gcloud run deploy api --image i --timeout {flag}")
    assert data(converted)["settings"] == {"timeout": seconds}


def test_settings_from_shell_variables_load_once_filled(tmp_path: Path) -> None:
    converted = one("gcloud run deploy api --image i --timeout $TIMEOUT --max-instances ${MAX}")
    manifest = load(
        converted,
        tmp_path,
        TIMEOUT="5m",
        MAX="3",
        CLOUDSDK_CORE_PROJECT="p",
        CLOUDSDK_RUN_REGION="r",
    )
    assert (manifest.settings.timeout, manifest.settings.max_instances) == (300, 3)
    assert "project: ${CLOUDSDK_CORE_PROJECT}  # gcloud's default project" in converted.yaml


def test_env_vars_file_is_read_beside_the_script(tmp_path: Path) -> None:
    converted = one("gcloud run deploy api --image i --env-vars-file env.prod.yaml")
    assert data(converted)["env"] == {
        "LOG_LEVEL": "info",
        "FEATURE_FLAGS": "a,b",
        "WORKERS": "4",
        "DEBUG": "false",
    }
    missing = one("gcloud run deploy api --image i --env-vars-file=nope.yaml", base=tmp_path)
    assert missing.not_understood == ("--env-vars-file=nope.yaml (line 1)",)


def test_unknown_flags_and_arguments_are_listed_never_dropped() -> None:
    converted = one(
        "gcloud run deploy api extra --image i --no-cpu-throttling "
        "--execution-environment gen2 --concurrency default --clear-vpc-connector --image"
    )
    expected = (
        "--no-cpu-throttling (line 1)",
        "--execution-environment=gen2 (line 1)",
        "--concurrency=default (line 1)",
        "--clear-vpc-connector (line 1)",
        "--image (line 1)",
        "the argument extra (line 1)",
    )
    assert converted.not_understood == expected
    listed = converted.yaml.split("# Not converted: carry these over by hand, or drop them:\n")[1]
    assert listed.startswith("".join(f"#   {item}\n" for item in expected))
    assert data(converted)["image"] == "i"


def test_clear_flags_replace_as_set_flags_do() -> None:
    converted = one(
        "gcloud run deploy api --image i --set-secrets A=a:1 --set-env-vars B=2\n"
        "gcloud run services update api --clear-env-vars --clear-secrets --update-env-vars C=3\n"
    )
    assert converted.not_understood == ()
    assert data(converted)["env"] == {"C": "3"}
    assert "secrets" not in data(converted)
    assert "--clear-env-vars replaces every variable" in converted.yaml


def test_a_variable_in_a_value_is_not_a_pasted_credential() -> None:
    converted = one(
        "gcloud run deploy api --image i "
        '--update-env-vars DATABASE_URL=postgres://app:$DB_PASSWORD@db/app,AUTH="Bearer $TOKEN"'
    )
    assert data(converted)["env"] == {
        "DATABASE_URL": "postgres://app:${DB_PASSWORD}@db/app",
        "AUTH": "Bearer ${TOKEN}",
    }


def test_labels_are_carried_when_the_whole_set_is_known(tmp_path: Path) -> None:
    converted = one(
        "gcloud run deploy api --image i --region r --project p --labels team=growth,env=prod\n"
        "gcloud run services update api --update-labels env=$ENV --remove-labels team\n"
    )
    assert data(converted)["settings"] == {"labels": {"env": "${ENV}"}}
    assert load(converted, tmp_path, ENV="prod").settings.labels == {"env": "prod"}
    web = convert("gcloud run services update web --update-labels team=web --labels oops")[0]
    assert "settings" not in data(web)  # neither is the whole set: listed, not guessed
    assert web.not_understood == ("--update-labels=team=web (line 1)", "--labels=oops (line 1)")


# --- credentials ---


def test_credentials_never_reach_the_output(tmp_path: Path) -> None:
    text = (
        "gcloud run deploy api --image i --region r --project p \\\n"
        f'  --set-env-vars "PAYMENTS={CANARY},DB_PASSWORD=hunter2-{CANARY}" \\\n'
        f"  --update-env-vars DATABASE_URL=postgres://app:{CANARY}@db/app \\\n"
        f"  --some-flag {CANARY} --set-build-env-vars NPM_TOKEN={CANARY} \\\n"
        f"  --update-env-vars=NOT_A_PAIR_{CANARY} --tag $(echo {CANARY}) {CANARY}\n"
        "aws apprunner update-service --service-name worker --region us-east-1 "
        '--source-configuration \'{"ImageRepository": {"ImageIdentifier": "img", '
        '"ImageConfiguration": {"RuntimeEnvironmentVariables": '
        f'{{"API_SECRET": "{CANARY}"}}}}}}}}\''
    )
    api, worker = convert(text)
    held = {"PAYMENTS", "DB_PASSWORD", "DATABASE_URL"}
    assert set(data(api)["secrets"]) == held
    assert "env" not in data(api)
    assert set(data(worker)["secrets"]) == {"API_SECRET"}
    for converted in (api, worker):
        assert CANARY not in converted.yaml + "".join(converted.not_understood)
        assert "hunter2" not in converted.yaml
        load(converted, tmp_path)
    assert api.yaml.count("# SD104: was a plain value in the script") == 3

    done = safedeploy("convert", "-", stdin=text)
    assert done.returncode == 0, done.stderr
    assert CANARY not in done.stdout + done.stderr
    assert "api: not converted: --some-flag=(sensitive) (line 1)" in done.stderr


@pytest.mark.parametrize(
    "value",
    [
        "host=db user=app password=hunter2 dbname=app",  # a libpq DSN
        "postgres://db.internal/app?sslmode=require&password=hunter2",
        "https://app:hunter2@db.internal/app",  # URL userinfo
        "--config=prod --db-password hunter2",  # a command line
        "Bearer hunter2",  # an Authorization header's token
    ],
)
def test_values_sensitive_by_shape_become_secrets(value: str) -> None:
    converted = one(f"gcloud run deploy api --image i --update-env-vars '^|^SETTING={value}'")
    assert "hunter2" not in converted.yaml
    assert data(converted)["secrets"] == {"SETTING": "TODO-setting"}


@pytest.mark.parametrize(
    "name",
    [
        "DB_PASSWORD",
        "STRIPE_API_KEY",
        "PRIVATEKEY",
    ],
)
def test_values_sensitive_by_name_become_secrets(name: str) -> None:
    converted = one(f"gcloud run deploy api --image i --update-env-vars {name}=hunter2")
    assert "hunter2" not in converted.yaml
    assert name in data(converted)["secrets"]


def test_values_from_the_shell_stay_templates() -> None:
    converted = one(
        "gcloud run deploy api --image i "
        "--update-env-vars GREETING=$GREETING,HOST=${DB_HOST:-db},TOKEN=$(vault read -field=t x) "
        "--args=--password,hunter2"
    )
    assert data(converted)["env"] == {"GREETING": "${GREETING}", "HOST": "${DB_HOST}"}
    assert data(converted)["secrets"] == {"TOKEN": "TODO-token"}
    assert converted.not_understood == ("--args=(sensitive) (line 1)",)
    assert "hunter2" not in converted.yaml


def test_public_keys_stay_plain() -> None:
    converted = one(
        "gcloud run deploy web --image i "
        "--set-env-vars NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY=pk_live_abc,CLERK_SECRET_KEY=$FROM_VAULT"
    )
    assert data(converted)["env"] == {"NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY": "pk_live_abc"}
    assert "CLERK_SECRET_KEY: TODO-clerk-secret-key  # SD104: was a plain value" in converted.yaml
    assert "FROM_VAULT" not in converted.yaml  # the variable is no longer needed


# --- reading shell ---


def test_quoting_edge_cases(tmp_path: Path) -> None:
    text = r"""
# a comment naming gcloud run deploy ghost --image nothing
set -e; cd "$(dirname "$0")" && echo "gcloud run deploy quoted-ghost"
gcloud run deploy "svc-$1" --image=gcr.io/p/app:$(git rev-parse --short HEAD) \
  --region "us-central1" --project 'p' \
  --update-env-vars 'PRICE=$5,TEMPLATE=${name}' \
  --update-env-vars "GREETING=hello world,HOME_DIR=\$HOME,QUOTE=say \"hi\"" \
  --update-env-vars URL=postgres://$USER@db.internal/app,COLOR=#fff \
  --update-env-vars TAG=${TAG:-latest} \
  --update-env-vars "YES=yes,NUMBER=8080,COLON=a: b,HASH=a #b,DASH=- x" 2>&1 | tee deploy.log
"""
    converted = one(text)
    assert converted.service == "svc-${ARG1}"
    manifest = load(converted, tmp_path, ARG1="api", IMAGE="abc123", USER="app", TAG="v1")
    assert manifest.service == "svc-api"
    assert manifest.image == "gcr.io/p/app:abc123"
    assert manifest.env == {
        "PRICE": "$5",
        "TEMPLATE": "${name}",
        "GREETING": "hello world",
        "HOME_DIR": "$HOME",
        "QUOTE": 'say "hi"',
        "URL": "postgres://app@db.internal/app",
        "COLOR": "#fff",
        "TAG": "v1",
        "YES": "yes",
        "NUMBER": "8080",
        "COLON": "a: b",
        "HASH": "a #b",
        "DASH": "- x",
    }
    assert "line 4: $(git rev-parse --short HEAD) runs in the shell: pass its output as --var" in (
        converted.yaml
    )
    assert "required:\n  - PRICE\n  - TEMPLATE\n" in converted.yaml  # too long for one line
    assert "line 4: ${TAG...} is written as ${TAG}: what the shell does to it" in converted.yaml
    assert converted.not_understood == ()


def test_an_unclosed_quote_names_its_line() -> None:
    with pytest.raises(SafedeployError) as error:
        convert('echo hi\ngcloud run deploy api --set-env-vars "A=1\n')
    assert error.value.where == "deploy.sh:2"


def test_other_commands_are_not_deploys() -> None:
    assert not convert(
        "gcloud run services describe api\ngcloud config set project p\n"
        "aws apprunner list-services\naws s3 cp x y\necho gcloud\n"
    )


# --- the command line ---


def test_cli_prints_manifests_separated_for_yaml() -> None:
    done = safedeploy("convert", str(SCRIPTS / "deploy-prod.sh"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == script("deploy-prod.sh").yaml.replace(
        "from deploy.sh", f"from {SCRIPTS / 'deploy-prod.sh'}"
    )
    two = safedeploy(
        "convert", "-", stdin="gcloud run deploy a --image i\ngcloud run deploy b --image i\n"
    )
    assert [d["service"] for d in yaml.safe_load_all(two.stdout)] == ["a", "b"]


def test_cli_out_dir_writes_each_service_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    done = safedeploy("convert", str(SCRIPTS / "deploy-notify.sh"), "--out-dir", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "notify-api.yaml").read_text() == script("deploy-notify.sh").yaml.replace(
        "from deploy.sh", f"from {SCRIPTS / 'deploy-notify.sh'}"
    )
    assert f"wrote {out / 'notify-api.yaml'}" in done.stderr
    assert "notify-api: not converted: --source-configuration AutoDeploymentsEnabled" in (
        done.stderr
    )
    again = safedeploy("convert", str(SCRIPTS / "deploy-notify.sh"), "--out-dir", str(out))
    assert again.returncode == 1
    assert "exists; nothing was written" in again.stderr


def test_cli_without_a_deploy_command_fails() -> None:
    done = safedeploy("convert", "-", stdin="echo nothing to see\n")
    assert done.returncode == 1
    assert "stdin: no deploy command found" in done.stderr
