"""Policy Troubleshooter v3 and Resource Manager v3 `projects.get`, as FakeCloudRun serves them.

Faithful to the real API (google/cloud/policytroubleshooter/iam/v3/troubleshooter.proto, and the
installed clients' REST transports):

- ``POST /v3/iam:troubleshoot`` with ``{"accessTuple": {"principal", "fullResourceName",
  "permission"}}``, parsed with the real request type (an unknown field is a 400); it answers a
  ``TroubleshootIamPolicyResponse``: ``overallAccessState`` (CAN_ACCESS, CANNOT_ACCESS,
  UNKNOWN_CONDITIONAL), the ``accessTuple`` echoed with ``permissionFqdn``, and the allow and deny
  explanations' states. The principal is a bare email: ``serviceAccount:...`` is a 400.
- ``GET /v3/projects/P`` answers a Project whose ``name`` carries the project number.

Simplified:

- The policy is a table the test sets (``grant``): resource -> member -> roles, each grant
  conditional or not; a secret inherits its project's grants. Only the few roles the preflight
  asks about are known (``ROLES``). Deny policies are not modelled.
- A project nobody set a grant on, whose secret has no bindings either, lets everyone in (as
  FakeCloudRun's secrets without bindings do), so tests that do not care about IAM pass.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.cloud import policytroubleshooter_iam_v3, resourcemanager_v3
from google.protobuf import json_format

Json = dict[str, Any]
PROJECTS = "//cloudresourcemanager.googleapis.com/projects/"
SECRETS = "//secretmanager.googleapis.com/projects/"
ROLES = {
    "roles/cloudsql.client": {"cloudsql.instances.connect", "cloudsql.instances.get"},
    "roles/secretmanager.secretAccessor": {"secretmanager.versions.access"},
    "roles/owner": {"cloudsql.instances.connect", "secretmanager.versions.access"},
}


class IamError(Exception):
    """An error the API answers: its canonical status and message (FakeCloudRun's ApiError)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class FakeIam:
    """Grants by full resource name; `secret_members(secret, role)` is FakeCloudRun's own
    secret-level bindings (None: the secret has none set)."""

    secret_members: Callable[[str, str], list[str] | None]
    grants: dict[str, dict[str, list[tuple[str, bool]]]] = field(default_factory=dict)

    def grant(self, resource: str, member: str, role: str, *, conditional: bool = False) -> None:
        """Grants `role` to `member` ("serviceAccount:EMAIL") on `resource` (a full resource
        name, such as ``//cloudresourcemanager.googleapis.com/projects/demo``)."""
        self.grants.setdefault(resource, {}).setdefault(member, []).append((role, conditional))

    def access(self, principal: str, resource: str, permission: str) -> str:
        """The overall access state IAM would find for the tuple."""
        member = f"serviceAccount:{principal}"
        levels = [resource]
        if resource.startswith(SECRETS):
            project = resource.removeprefix(SECRETS).split("/", 1)[0]
            levels.append(f"{PROJECTS}{project}")
        anything_set = False
        conditional = False
        for level in levels:
            roles = self.grants.get(level)
            anything_set = anything_set or roles is not None
            for role, when in (roles or {}).get(member, []):
                if permission in ROLES.get(role, ()):
                    if not when:
                        return "CAN_ACCESS"
                    conditional = True
            if level.startswith(SECRETS):
                secret = level.removeprefix("//secretmanager.googleapis.com/")
                for role, perms in ROLES.items():
                    members = self.secret_members(secret, role)
                    anything_set = anything_set or members is not None
                    if permission in perms and member in (members or []):
                        return "CAN_ACCESS"
        if conditional:
            return "UNKNOWN_CONDITIONAL"
        return "CANNOT_ACCESS" if anything_set else "CAN_ACCESS"

    # -- the API -----------------------------------------------------------------------------

    def troubleshoot(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        request = _parse(policytroubleshooter_iam_v3.TroubleshootIamPolicyRequest, body)
        tuple_ = request.get("accessTuple", {})
        principal = tuple_.get("principal", "")
        resource = tuple_.get("fullResourceName", "")
        permission = tuple_.get("permission", "")
        if not (principal and resource and permission):
            raise IamError(
                "INVALID_ARGUMENT",
                "accessTuple needs principal, fullResourceName and permission.",
            )
        if ":" in principal:
            raise IamError(
                "INVALID_ARGUMENT", f"Invalid principal {principal!r}: give an email address."
            )
        state = self.access(principal, resource, permission)
        allow = {
            "CAN_ACCESS": "ALLOW_ACCESS_STATE_GRANTED",
            "CANNOT_ACCESS": "ALLOW_ACCESS_STATE_NOT_GRANTED",
            "UNKNOWN_CONDITIONAL": "ALLOW_ACCESS_STATE_UNKNOWN_CONDITIONAL",
        }[state]
        service = permission.split(".", 1)[0]
        response = {
            "overallAccessState": state,
            "accessTuple": {**tuple_, "permissionFqdn": f"{service}.googleapis.com/{permission}"},
            "allowPolicyExplanation": {"allowAccessState": allow},
            "denyPolicyExplanation": {"denyAccessState": "DENY_ACCESS_STATE_NOT_DENIED"},
        }
        return _canonical(policytroubleshooter_iam_v3.TroubleshootIamPolicyResponse, response)

    def get_project(self, p: dict[str, str], query: dict[str, str], body: Json | None) -> Json:
        project = p["project"]
        number = project if project.isdigit() else project_number(project)
        return _canonical(
            resourcemanager_v3.Project,
            {
                "name": f"projects/{number}",
                "projectId": project,
                "state": "ACTIVE",
                "displayName": project,
            },
        )


def project_number(project: str) -> str:
    """The number get_project gives `project` (so tests can name the default compute account)."""
    return str(100000000000 + zlib.crc32(project.encode()))


def _parse(message_type: Any, body: Json | None) -> Json:
    try:
        return _canonical(message_type, body or {})
    except json_format.ParseError as err:
        raise IamError("INVALID_ARGUMENT", f"Invalid JSON payload received. {err}") from err


def _canonical(message_type: Any, resource: Json) -> Json:
    message = message_type.pb()()
    json_format.ParseDict(resource, message)
    canonical: Json = json_format.MessageToDict(message)
    return canonical
