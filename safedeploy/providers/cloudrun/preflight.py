"""What `apply` would need, looked at read-only: values Cloud Run takes, secrets, IAM grants.

Reported as facts in Cloud Run's and Secret Manager's terms; the core judges them.
"""

from __future__ import annotations

from safedeploy.errors import SafedeployError
from safedeploy.facts import Fact, Problem
from safedeploy.model import SecretRef, ServiceSpec
from safedeploy.providers.cloudrun import iam
from safedeploy.providers.cloudrun.client import Google, errors, gx
from safedeploy.providers.cloudrun.mapping import EGRESS, INGRESS

_CANNOT_READ = "grant the deployer roles/secretmanager.viewer on the secret to have it checked"


def facts(google: Google, project: str, target: ServiceSpec) -> list[Fact]:
    """Settings Cloud Run cannot take, every secret reference, then the runtime account's access
    to each secret that exists and each attached Cloud SQL instance."""
    found = _setting_facts(target)
    refs = {n: v for n, v in sorted(target.env.items()) if isinstance(v, SecretRef)}
    existing: dict[str, str] = {}
    for name, ref in refs.items():
        secret = _secret_path(project, ref.secret)
        problems = _version_facts(google, name, ref, secret)
        found += problems
        if not any(p.problem is Problem.SECRET_MISSING for p in problems):
            existing[name] = secret
    return found + iam.facts(google, project, target, existing)


def _setting_facts(target: ServiceSpec) -> list[Fact]:
    return [
        Fact(
            Problem.UNSUPPORTED,
            f"settings.{key}",
            f"settings.{key} {target.settings[key]!r} is not a Cloud Run value",
            f"use one of: {', '.join(names)}",
        )
        for key, names in (("egress", EGRESS), ("ingress", INGRESS))
        if key in target.settings and target.settings[key] not in names
    ]


def _secret_path(project: str, secret: str) -> str:
    return secret if secret.startswith("projects/") else f"projects/{project}/secrets/{secret}"


def _version_facts(google: Google, name: str, ref: SecretRef, secret: str) -> list[Fact]:
    key = f"secrets.{name}"
    try:
        with errors(secret):
            version = google.call(
                google.secrets.get_secret_version, name=f"{secret}/versions/{ref.version}"
            )
    except SafedeployError as exc:
        if isinstance(exc.__cause__, gx().NotFound):
            return [
                Fact(
                    Problem.SECRET_MISSING,
                    key,
                    f"{name}: secret {ref.secret} (version {ref.version}) does not exist",
                    "create it in Secret Manager, or fix the reference",
                )
            ]
        if isinstance(exc.__cause__, gx().Forbidden):
            message = f"{name}: cannot read secret {ref.secret}: {exc.what}"
            return [Fact(Problem.NOT_CHECKED, key, message, _CANNOT_READ)]
        raise
    state = version.state.name
    if state == "ENABLED":
        return []
    number = version.name.rsplit("/", 1)[-1]
    return [
        Fact(
            Problem.SECRET_DISABLED,
            key,
            f"{name}: version {number} of secret {ref.secret} ({ref.version}) is {state}",
            f"enable it (`gcloud secrets versions enable {number} --secret "
            f"{secret.rsplit('/', 1)[-1]}`) or reference an enabled version",
        )
    ]
