"""Adoption from the incident write-ups' deploy scripts, through the CLI: convert, fill in the
TODO the converter leaves, lint, then plan against the doubles. The plan keeps every live
variable the old script did not name: the variables its `--set-env-vars` (or App Runner's
ImageConfiguration) would have wiped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_apprunner
from fakes.cloudrun import FakeCloudRun

from e2e.test_cloudrun import Cloud

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
aws = test_apprunner.aws  # the App Runner double and moto, as test_apprunner.py uses them
moto_url = test_apprunner.moto_url


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with FakeCloudRun(seed=11) as fake:
        yield Cloud(fake, tmp_path)


def _decisions(plan_json: str) -> dict[str, str]:
    (plan,) = json.loads(plan_json)["plans"]
    return {v["name"]: v["action"] for v in plan["variables"]}


def test_the_gcloud_incident_script_converted_keeps_what_it_never_named(cloud: Cloud) -> None:
    cloud.fake.add_secret("p", "clerk-secret-key", versions={1: ("ENABLED", "sk_x")})
    live = {
        "DATABASE_URL": "postgres://db.internal:5432/app",
        "REDIS_HOST": "10.110.183.147",
        "REDIS_PORT": "6379",
        "CLERK_SECRET_KEY": "sk_live_pasted_by_the_old_script_0000",
        "EXTENSION_BACKEND_URL": "https://ext.example.com",
        "SENTRY_DSN": "https://public@sentry.example.com/7",  # set in the console, never scripted
        "FEATURE_REPORTS": "on",
    }
    container = {"image": "gcr.io/p/backend-api:v41", "env": _env(live)}
    name = "projects/p/locations/us-central1/services/backend-api"
    cloud.fake.seed_service(name, {"template": {"containers": [container]}})
    folder = cloud.root / "manifests"

    converted = cloud.run("convert", str(SCRIPTS / "deploy-prod.sh"), "--out-dir", str(folder))
    manifest = folder / "backend-api.yaml"
    manifest.write_text(manifest.read_text().replace("TODO-clerk-secret-key", "clerk-secret-key"))
    variables = ["--var", "TAG=v42", "--var", "DATABASE_URL=postgres://db.internal:5432/app"]
    linted = cloud.run("lint", str(manifest), *variables)
    planned = cloud.run("plan", str(manifest), *variables, "--format", "json")

    assert converted.code == 0, converted.err
    assert linted.code == 0, linted.out
    assert planned.code == 0, planned.err
    decisions = _decisions(planned.out)
    assert decisions["SENTRY_DSN"] == decisions["FEATURE_REPORTS"] == "kept-unmanaged"
    assert decisions["CLERK_SECRET_KEY"] == "changed"  # a plain value becomes a secret reference
    assert decisions["REDIS_HOST"] == decisions["DATABASE_URL"] == "unchanged"
    assert cloud.fake.mutating_calls() == []
    assert all("sk_live_pasted" not in text for text in cloud.transcript)


def test_the_app_runner_incident_script_converted_keeps_what_it_never_named(
    aws: test_apprunner.Aws,
) -> None:
    aws.create_live()  # variables and secrets set over time, most of them by hand
    database = aws.client("secretsmanager").create_secret(
        Name="notify/database-url", SecretString="postgres://db.notify.internal/notify"
    )["ARN"]
    folder = aws.root / "manifests"

    converted = aws.run("convert", str(SCRIPTS / "deploy-notify.sh"), "--out-dir", str(folder))
    manifest = folder / "notify-api.yaml"
    text = manifest.read_text()
    text = text.replace("TODO-twilio-auth-token", aws.secrets["TWILIO_AUTH_TOKEN"])
    text = text.replace(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:notify/database-url-AbCdEf", database
    )  # the double's account names its secrets differently
    manifest.write_text(text)
    linted = aws.run("lint", str(manifest), "--var", "IMAGE_TAG=v2")
    planned = aws.run("plan", str(manifest), "--var", "IMAGE_TAG=v2", "--format", "json")

    assert converted.code == 0, converted.err
    assert "not converted: --health-check-configuration" in converted.err
    assert linted.code == 0, linted.out
    assert planned.code == 0, planned.err
    decisions = _decisions(planned.out)
    never_named = ["TWILIO_ACCOUNT_SID", "LOG_LEVEL", "FEATURE_SMS", "STRIPE_SECRET_KEY"]
    never_named.append("JWT_SECRET")  # a secret set in the console
    assert {name: decisions[name] for name in never_named} == dict.fromkeys(
        never_named, "kept-unmanaged"
    )
    assert decisions["TWILIO_FROM_NUMBER"] == decisions["PUBLIC_BASE_URL"] == "added"
    assert decisions["DATABASE_URL"] == "changed"  # from a plain value to a secret
    assert [c.operation for c in aws.fake.mutating_calls()] == ["CreateService"]  # the seed's


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]
