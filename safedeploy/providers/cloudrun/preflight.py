"""What `apply` would need, looked at read-only: values Cloud Run takes, secrets and their grants.

Reported as facts in Cloud Run's and Secret Manager's terms; the core judges them.
"""

from __future__ import annotations

from typing import Any

from safedeploy.errors import SafedeployError
from safedeploy.model import Fact, Problem, SecretRef, ServiceSpec
from safedeploy.providers.cloudrun.client import Google, errors, gx
from safedeploy.providers.cloudrun.mapping import EGRESS, INGRESS

_ACCESS_ROLES = ("roles/secretmanager.secretAccessor", "roles/secretmanager.admin")
_CANNOT_READ = "grant the deployer roles/secretmanager.viewer on the secret to have it checked"


def facts(google: Google, project: str, target: ServiceSpec) -> list[Fact]:
    """Settings Cloud Run cannot take, then every secret reference, each secret's grant once."""
    found = _setting_facts(target)
    refs = {n: v for n, v in sorted(target.env.items()) if isinstance(v, SecretRef)}
    account = target.settings.get("service_account")
    checked: set[str] = set()
    for name, ref in refs.items():
        secret = _secret_path(project, ref.secret)
        problems = _version_facts(google, name, ref, secret)
        found += problems
        if not problems and secret not in checked:
            checked.add(secret)
            found += _access_facts(google, name, ref, secret, account)
    return found


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


def _access_facts(
    google: Google, name: str, ref: SecretRef, secret: str, account: str | None
) -> list[Fact]:
    key = f"secrets.{name}"
    if not account:
        return [
            Fact(
                Problem.NOT_CHECKED,
                key,
                f"{name}: no service_account is set, so access to {ref.secret} was not checked",
                "declare settings.service_account to have its access checked",
            )
        ]
    try:
        with errors(secret):
            policy: Any = google.call(google.secrets.get_iam_policy, request={"resource": secret})
    except SafedeployError as exc:
        if isinstance(exc.__cause__, gx().Forbidden):
            return [
                Fact(
                    Problem.NOT_CHECKED,
                    key,
                    f"{name}: cannot read the IAM policy of secret {ref.secret}, "
                    f"so access by {account} was not checked",
                    _CANNOT_READ,
                )
            ]
        raise
    members = {m for b in policy.bindings if b.role in _ACCESS_ROLES for m in b.members}
    if f"serviceAccount:{account}" in members:
        return []
    return [
        Fact(
            Problem.NOT_GRANTED,
            key,
            f"{name}: {account} has no secretAccessor grant on secret {ref.secret} itself; "
            "unless the project grants it, the new revision will not start",
            f"gcloud secrets add-iam-policy-binding {secret.rsplit('/', 1)[-1]} "
            f"--member serviceAccount:{account} --role roles/secretmanager.secretAccessor",
        )
    ]
