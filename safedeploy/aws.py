"""boto3 clients with one retry policy, and AWS errors turned into errors a user can act on.

Credentials, region and endpoints come from botocore's own chain, so CI, a laptop and the
loopback test doubles (AWS_ENDPOINT_URL_APPRUNNER, AWS_ENDPOINT_URL_S3, ...) need no code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from safedeploy.errors import SafedeployError
from safedeploy.facts import Fact, Problem
from safedeploy.model import SecretRef, ServiceSpec

# Throttling and 5xx are retried with botocore's backoff; 5 attempts in all bound the wait.
RETRIES = Config(
    retries={"mode": "standard", "total_max_attempts": 5},
    connect_timeout=10,
    read_timeout=60,
    user_agent_extra="safedeploy",
)

CREDENTIALS_HINT = (
    "configure AWS credentials the usual way: AWS_PROFILE (after `aws configure` or "
    "`aws sso login`), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a role in CI"
)
_HINTS = {
    "AccessDenied": "grant the deploying identity this permission",
    "AccessDeniedException": "grant the deploying identity this permission",
    "ResourceNotFoundException": "check the name and the region",
    "InvalidRequestException": "the request was refused as it is; nothing was changed by it",
    "ExpiredTokenException": CREDENTIALS_HINT,
    "UnrecognizedClientException": CREDENTIALS_HINT,
}


class Clients:
    """boto3 clients from one session (credentials resolved once), made when first needed.

    Services deployed together call `get` from several threads: a boto3 client is thread-safe,
    a session is not, so clients are made one at a time under a lock.
    """

    def __init__(self) -> None:
        self._session: Any = None
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()

    def get(self, service: str, region: str | None) -> Any:
        key = (service, region)
        with self._lock:
            if self._session is None:
                self._session = boto3.session.Session()
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    service, region_name=region, config=RETRIES
                )
            return self._clients[key]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def aws_errors(action: str, where: str) -> Iterator[None]:
    """Turn what botocore raises during `action` on `where` into a SafedeployError (exit 1)."""
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise as_error(exc, action, where) from None


def as_error(exc: BotoCoreError | ClientError, action: str, where: str) -> SafedeployError:
    """What failed, with the API's own code and message, and what to do about it."""
    if isinstance(exc, NoCredentialsError):
        return SafedeployError(
            f"cannot {action}: no AWS credentials found", where=where, hint=CREDENTIALS_HINT
        )
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or "no message"
        return SafedeployError(
            f"cannot {action}: {code}: {message}", where=where, hint=_HINTS.get(code)
        )
    return SafedeployError(f"cannot {action}: {exc}", where=where)


def secret_exists(clients: Clients, reference: str, region: str) -> bool:
    """DescribeSecret, or GetParameter without decryption: never a secret's value.

    `reference` is a Secrets Manager ARN, an SSM parameter ARN, or (in `region`) a parameter name.
    """
    parts = reference.split(":")
    if reference.startswith("arn:"):
        region = parts[3]
    with aws_errors("look the secret up", f"secret {reference}"):
        try:
            if reference.startswith("arn:") and parts[2] == "secretsmanager":
                secret = ":".join(parts[:7])  # without a JSON key, stage or version after it
                clients.get("secretsmanager", region).describe_secret(SecretId=secret)
            else:
                ssm = clients.get("ssm", region)
                ssm.get_parameter(Name=reference, WithDecryption=False)
        except ClientError as exc:
            if error_code(exc) in ("ResourceNotFoundException", "ParameterNotFound"):
                return False
            raise
    return True


def secret_facts(
    target: ServiceSpec, exists: Callable[[str], bool], platform: str
) -> Iterator[Fact]:
    """Each secret reference exists (looked up, never read) and names no separate version, which
    `platform` (App Runner, ECS Express) cannot take: the version goes in the ARN."""
    for name, ref in sorted(target.env.items()):
        if not isinstance(ref, SecretRef):
            continue
        if ref.version != "latest":
            message = f"{platform} takes no separate secret version ({ref.version!r})"
            remedy = "put the version in the ARN (…:secret:NAME:JSON_KEY:STAGE:VERSION_ID)"
            yield Fact(Problem.UNSUPPORTED, f"secrets.{name}", message, remedy)
        elif not exists(ref.secret):
            message = f"secret {ref.secret} for {name} does not exist"
            remedy = "create it, or fix the ARN (a Secrets Manager secret or SSM parameter)"
            yield Fact(Problem.SECRET_MISSING, f"secrets.{name}", message, remedy)


def when(moment: Any) -> str:
    """A timestamp as people read it in messages, to the second."""
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat(timespec="seconds")
    return str(moment)
