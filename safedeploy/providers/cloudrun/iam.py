"""Whether the service's runtime account may do what the new revision needs, asked of IAM itself.

Policy Troubleshooter v3 evaluates every level (project, folder, organisation, groups, deny
policies, conditions) for one access tuple: principal, full resource name, permission. One call
per distinct tuple: `cloudsql.instances.connect` on the project of each attached Cloud SQL
instance, `secretmanager.versions.access` on each referenced secret. A tuple proven not granted
is NOT_GRANTED; one IAM cannot decide, or a call the caller may not make, is NOT_CHECKED.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from safedeploy.errors import SafedeployError
from safedeploy.facts import Fact, Problem
from safedeploy.model import ServiceSpec
from safedeploy.providers.cloudrun.client import Google, errors

_PROJECTS = "//cloudresourcemanager.googleapis.com/projects/"
_UNDECIDED = {
    "UNKNOWN_CONDITIONAL": "a condition on a grant decides it only at request time",
    "UNKNOWN_INFO": "the deployer may not read every policy involved",
}
_CALLER = "the deployer needs roles/iam.securityReviewer (or the same reads) to have it checked"
_NO_ACCOUNT = (
    "declare settings.service_account, or let the deployer read the project "
    "(resourcemanager.projects.get) to find its default compute account"
)


@dataclass(frozen=True)
class _Need:
    """One access tuple less its principal, with what the manifest says needs it."""

    resource: str  # the full resource name
    permission: str
    role: str  # the predefined role that grants it
    what: str  # "secret db-url", "Cloud SQL instance p:r:i"
    keys: tuple[str, ...]  # the manifest keys that need it: secrets.NAME, settings.cloudsql_...
    grant: str  # the gcloud command that grants the role, less --member and --role


def facts(
    google: Google, project: str, target: ServiceSpec, secrets: Mapping[str, str]
) -> list[Fact]:
    """The runtime account's access to each secret and Cloud SQL project the target uses.

    `secrets`: env name -> the secret's resource name (projects/P/secrets/S) for the references
    worth checking (a secret that does not exist is reported already).
    """
    needs = list(_needs(target, secrets))
    if not needs:
        return []
    try:
        account = str(target.settings.get("service_account") or default_account(google, project))
    except SafedeployError as exc:
        why = f"the runtime service account is not known: {exc.what}"
        return [fact for need in needs for fact in _not_checked(need, why, _NO_ACCOUNT)]
    found: list[Fact] = []
    for index, need in enumerate(needs):
        try:
            state = _troubleshoot(google, account, need)
        except SafedeployError as exc:
            why = f"Policy Troubleshooter could not answer: {exc.what}"
            return found + [f for n in needs[index:] for f in _not_checked(n, why, _CALLER)]
        if state == "CANNOT_ACCESS":
            found += _not_granted(need, account)
        elif state != "CAN_ACCESS":
            why = f"IAM could not decide for {account}: {_UNDECIDED.get(state, state)}"
            found += _not_checked(need, why, f"check it by hand: {_command(need, account)}")
    return found


def default_account(google: Google, project: str) -> str:
    """What a revision with no service account runs as: the project's default compute account."""
    name = f"projects/{project}"
    with errors(name):
        found = google.call(google.projects.get_project, name=name)
    return f"{str(found.name).rsplit('/', 1)[-1]}-compute@developer.gserviceaccount.com"


def _needs(target: ServiceSpec, secrets: Mapping[str, str]) -> Iterator[_Need]:
    """One need per distinct (resource, permission), in a stable order."""
    by_secret: dict[str, list[str]] = {}
    for name, secret in sorted(secrets.items()):
        by_secret.setdefault(secret, []).append(f"secrets.{name}")
    for secret, keys in by_secret.items():
        project, _, short = secret.removeprefix("projects/").partition("/secrets/")
        yield _Need(
            f"//secretmanager.googleapis.com/{secret}",
            "secretmanager.versions.access",
            "roles/secretmanager.secretAccessor",
            f"secret {short}",
            tuple(keys),
            f"gcloud secrets add-iam-policy-binding {short} --project {project}",
        )
    by_project: dict[str, list[str]] = {}
    for instance in target.settings.get("cloudsql_instances") or ():
        by_project.setdefault(str(instance).split(":", 1)[0], []).append(str(instance))
    for project, instances in sorted(by_project.items()):
        yield _Need(
            f"{_PROJECTS}{project}",
            "cloudsql.instances.connect",
            "roles/cloudsql.client",
            f"Cloud SQL instance{'s' * (len(instances) > 1)} {', '.join(instances)}",
            ("settings.cloudsql_instances",),
            f"gcloud projects add-iam-policy-binding {project}",
        )


def _troubleshoot(google: Google, account: str, need: _Need) -> str:
    """The overall access state IAM finds for the tuple: CAN_ACCESS, CANNOT_ACCESS, UNKNOWN_..."""
    request = {
        "access_tuple": {
            "principal": account,  # the bare email, as the API documents it
            "full_resource_name": need.resource,
            "permission": need.permission,
        }
    }
    with errors(need.resource):
        found = google.call(google.troubleshooter.troubleshoot_iam_policy, request=request)
    return str(found.overall_access_state.name)


def _command(need: _Need, account: str) -> str:
    return f"{need.grant} --member serviceAccount:{account} --role {need.role}"


def _not_granted(need: _Need, account: str) -> list[Fact]:
    detail = (
        f"{account} may not use {need.what}: IAM grants it no {need.permission} "
        f"(the role {need.role} does); the new revision would fail"
    )
    return [Fact(Problem.NOT_GRANTED, key, detail, _command(need, account)) for key in need.keys]


def _not_checked(need: _Need, why: str, remedy: str | None) -> list[Fact]:
    detail = f"access to {need.what} ({need.permission}) was not checked: {why}"
    return [Fact(Problem.NOT_CHECKED, key, detail, remedy) for key in need.keys]
