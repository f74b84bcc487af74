"""The `apprunner` platform: AWS App Runner through boto3.

App Runner has no revisions and no traffic split. Here a revision is the configuration a
release applied, named SERVICE-RELEASEID and recorded in the history store (a sensitive plain
value only as the fact that it was there: no value, no digest), so a rollback can send a recorded
configuration again, taking each sensitive plain value from the live service and saying so.
Every UpdateService starts from the live configuration and changes only safedeploy's members
(image, variables, secrets, port, start command, cpu, memory, instance role, egress); every
block that would not change is left out, so authentication, auto-deployments, health check,
observability, auto scaling and encryption are never re-sent with defaults.

botocore has no paginators and no waiters for App Runner: NextToken is followed and
operations are polled here, with backoff and a bounded total time.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from safedeploy.aws import Clients, aws_errors, error_code
from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import Busy, ExitCode, SafedeployError
from safedeploy.importer import manifest_text
from safedeploy.lint import Finding, Severity
from safedeploy.manifest import Manifest
from safedeploy.model import EnvValue, LiveService, Revision, SecretRef, ServiceSpec
from safedeploy.providers.base import Capabilities
from safedeploy.redact import MASK, is_sensitive, reveal

Json = dict[str, Any]

POLL_INTERVAL = 5.0  # seconds before the first re-poll of an operation; SAFEDEPLOY_POLL_INTERVAL
MAX_POLL_INTERVAL = 30.0
OPERATION_TIMEOUT = 20 * 60.0  # seconds; SAFEDEPLOY_OPERATION_TIMEOUT
MATCH_DEPTH = 20  # recorded revisions compared with the live configuration, newest first
ABSENT = "absent"  # the fingerprint of a service that does not exist

_RUNNING = ("PENDING", "IN_PROGRESS", "ROLLBACK_IN_PROGRESS")
_SETTINGS = ("cpu", "memory", "port", "instance_role", "egress", "vpc_connector")
_CPU = {"256": "0.25 vCPU", "512": "0.5 vCPU", "1024": "1 vCPU", "2048": "2 vCPU", "4096": "4 vCPU"}
_MEMORY = {str(int(gb * 1024)): f"{gb:g} GB" for gb in (0.5, 1, 2, 3, 4, 6, 8, 10, 12)}
_UNITS = {words: units for forms in (_CPU, _MEMORY) for units, words in forms.items()}
_PRIVATE_ECR = re.compile(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")
_PUBLIC_ECR = "public.ecr.aws/"
_HTTPS_HOST = re.compile(r"https://(?:[^/@\s]*@)?([^/:?#\s]+)", re.IGNORECASE)
_PRIVATE_SUFFIXES = (".internal", ".local", ".localhost", ".lan")


class Revisions(Protocol):
    """Where recorded configurations live: the history store (FolderHistory, S3History)."""

    def config_names(self) -> list[str]: ...

    def config(self, revision: str) -> dict[str, Any] | None: ...

    def save_config(self, revision: str, config: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class _Live:
    """One read of the service: DescribeService's Service and its latest operation."""

    service: Json
    operation: Json | None

    @property
    def running(self) -> Json | None:
        """The operation in progress on the service, if any."""
        if self.operation is not None and self.operation["Status"] in _RUNNING:
            return self.operation
        return None

    @property
    def spec(self) -> ServiceSpec:
        return _spec(self.service)

    @property
    def fingerprint(self) -> str:
        """Every block with no variable value and no start command, and the latest operation's id.

        Every change to a service is an operation, so the id moves whenever anything does; the
        blocks tell an operation that App Runner rolled back from one that finished. No value
        goes in, sensitive or not: a digest of a low-entropy value is the value. UpdatedAt and
        Status are left out: an operation that merely finishes leaves the plan valid.
        """
        blocks = copy.deepcopy(
            {k: v for k, v in self.service.items() if k not in ("Status", "UpdatedAt")}
        )
        config = blocks["SourceConfiguration"]["ImageRepository"].get("ImageConfiguration", {})
        config["RuntimeEnvironmentVariables"] = sorted(
            config.get("RuntimeEnvironmentVariables", {})
        )
        config["StartCommand"] = MASK if config.get("StartCommand") else None
        operation = (self.operation or {}).get("Id")
        canonical = json.dumps([blocks, operation], sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def url(self) -> str:
        return service_url(self.service["ServiceUrl"])


class AppRunnerProvider:
    capabilities = Capabilities(traffic_split=False, candidate_url=False, owned_on_service=False)

    def __init__(
        self,
        manifest: Manifest,
        revisions: Revisions,
        owned: frozenset[str],
        clients: Clients,
        *,
        poll_interval: float = POLL_INTERVAL,
        timeout: float = OPERATION_TIMEOUT,
        progress: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.manifest = manifest
        self.service = manifest.service
        self.region = manifest.region
        self.revisions = revisions
        self.owned = owned
        self.clients = clients
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.progress = progress
        self._arn: str | None = None
        self._last: _Live | None = None  # the last read, for preflight's warning
        self._known: dict[str, ServiceSpec] = {}  # raw configurations seen by this run
        self._operations: dict[str, str] = {}  # revision -> the operation that deploys it

    @property
    def _api(self) -> Any:
        return self.clients.get("apprunner", self.region)

    @property
    def _where(self) -> str:
        return self._arn or f"App Runner service {self.service} in {self.region}"

    # -- reading -----------------------------------------------------------------------------

    def read(self) -> LiveService:
        live = self._describe()
        if live is None:
            return LiveService(self.service, None, ABSENT, owned=self.owned)
        names = self.revisions.config_names()
        serving = self._serving(live, names)
        return LiveService(
            name=self.service,
            spec=live.spec,
            fingerprint=live.fingerprint,
            owned=self.owned,
            revisions=tuple(
                Revision(name, 100 if name == serving else 0) for name in sorted({*names, serving})
            ),
            url=live.url,
        )

    def _describe(self) -> _Live | None:
        """The service and its latest operation, or None when there is no such service."""
        self._arn = self._arn or find_service(self._api, self.service, self._where)
        if self._arn is None:
            return None
        with aws_errors("describe the service", self._where):
            service = self._api.describe_service(ServiceArn=self._arn)["Service"]
            listed = self._api.list_operations(ServiceArn=self._arn, MaxResults=1)
        operations = listed.get("OperationSummaryList", [])
        self._last = _Live(service, operations[0] if operations else None)
        return self._last

    def _serving(self, live: _Live, names: list[str]) -> str:
        """The recorded revision the live configuration is, or a name for an unrecorded one.

        An unrecorded configuration (created or edited outside safedeploy) is named after the
        operation that made it, so the plan and the apply that follows agree on its name.
        """
        spec = live.spec
        for name in reversed(names[-MATCH_DEPTH:]):
            record = self.revisions.config(name)
            if record is not None and _record(spec, _sensitive_in(record)) == record:
                self._known.setdefault(name, spec)
                return name
        made = (live.operation or {}).get("StartedAt") or live.service["CreatedAt"]
        name = f"{self.service}-{_stamp(made)}-unrecorded"
        self._known.setdefault(name, spec)
        return name

    # -- the provider surface ----------------------------------------------------------------

    def preflight(self, target: ServiceSpec) -> list[Finding]:
        return [
            *self._operation_finding(),
            *self._setting_findings(target),
            *self._secret_findings(target),
            *_egress_findings(self.manifest, target),
        ]

    def apply(
        self, fingerprint: str, target: ServiceSpec, owned: frozenset[str], release_id: str
    ) -> Revision:
        live = self._settled()
        if (live.fingerprint if live else ABSENT) != fingerprint:
            raise SafedeployError(
                f"service {self.service} changed since the plan; nothing was changed",
                where=self._where,
                hint="run `safedeploy plan` again",
            )
        name = f"{self.service}-{release_id}"
        self.revisions.save_config(name, _record(target, self._sensitive(target)))
        self._known[name] = target
        if live is None:
            self._operations[name] = self._create(target)
        else:
            names = self.revisions.config_names()
            replaced = self._serving(live, names)
            if replaced not in names:  # record what this release replaces, for its rollback
                self.revisions.save_config(replaced, _record(live.spec, self._sensitive(live.spec)))
            self._operations[name] = self._update(_changes(live.service, target))
        return Revision(name, 0, ready=False, image=target.image)

    def wait_ready(self, revision: Revision, cancel: CancelToken) -> Revision:
        self._finish(self._operations[revision.name], cancel)
        live = self._describe()
        if live is None:
            raise SafedeployError(f"service {self.service} vanished", where=self._where)
        # What App Runner describes now (its defaults filled in) is what this revision is.
        sensitive = self._sensitive(live.spec) | self._sensitive(self._known[revision.name])
        self.revisions.save_config(revision.name, _record(live.spec, sensitive))
        self._known[revision.name] = live.spec
        return replace(revision, percent=100, ready=True, url=live.url)

    def route(self, split: Mapping[str, int]) -> None:
        """Send the named revision's configuration again, unless it is what already runs."""
        serving = [name for name, percent in split.items() if percent]
        if len(serving) != 1 or split[serving[0]] != 100:
            raise SafedeployError(f"App Runner serves one configuration at a time, not {split}")
        live = self._settled()
        if live is None:
            raise SafedeployError(f"there is no App Runner service {self.service} to route")
        changes = _changes(live.service, self._config_of(serving[0], live.spec))
        if changes:  # nothing to send when App Runner itself already restored it
            self._finish(self._update(changes))

    def retire(self, keep: Revision) -> None:
        """Nothing to stop: App Runner runs only the configuration that serves."""

    def discard(self, candidate: Revision) -> None:
        """Nothing to remove: the candidate's recorded configuration stays as evidence."""

    # -- operations --------------------------------------------------------------------------

    def _create(self, target: ServiceSpec) -> str:
        request = _changes({}, target)
        with aws_errors("create the service", self._where):
            created = self._api.create_service(ServiceName=self.service, **request)
        self._arn = created["Service"]["ServiceArn"]
        return str(created["OperationId"])

    def _update(self, changes: Json) -> str:
        with aws_errors("update the service", self._where):
            try:
                done = self._api.update_service(ServiceArn=self._arn, **changes)
            except ClientError as exc:
                if error_code(exc) == "InvalidStateException":
                    raise self._busy(self._describe()) from None
                raise
        return str(done["OperationId"])

    def _settled(self) -> _Live | None:
        """The service once no operation runs on it: waits for one that does, up to the timeout."""
        live = self._describe()
        running = live.running if live else None
        if running is not None:
            if self._wait(running["Id"]) is None:
                raise self._busy(live)
            live = self._describe()
        return live

    def _busy(self, live: _Live | None) -> SafedeployError:
        """The lease's message, naming App Runner's running operation as the holder."""
        operation = (live.operation if live else None) or {}
        return Busy(
            self.service,
            f"App Runner operation {operation.get('Id', '?')} ({operation.get('Type', '?')})",
            _when(operation.get("StartedAt")),
            where=self._where,
            hint="wait for it to end (aws apprunner list-operations --service-arn ARN), "
            "then deploy again",
        )

    def _finish(self, operation_id: str, cancel: CancelToken = NEVER) -> None:
        """Wait for our operation; raise with what App Runner said unless it succeeded."""
        summary = self._wait(operation_id, cancel)
        if summary is None:
            raise SafedeployError(
                f"App Runner operation {operation_id} did not end within {self.timeout:.0f}s",
                where=self._where,
                hint="watch it with `aws apprunner list-operations`; it may still end either way",
                exit_code=ExitCode.NEEDS_HUMAN,
            )
        status = summary["Status"]
        if status == "SUCCEEDED":
            return
        if status == "ROLLBACK_SUCCEEDED":
            raise SafedeployError(
                f"App Runner rolled operation {operation_id} back (ROLLBACK_SUCCEEDED): the new "
                "configuration failed App Runner's health check, and the previous one serves",
                where=self._where,
                hint="read the deployment logs in CloudWatch: "
                f"/aws/apprunner/{self.service}/{str(self._arn).rsplit('/', 1)[-1]}/service",
            )
        live = self._describe()
        state = live.service["Status"] if live else "gone"
        raise SafedeployError(
            f"App Runner operation {operation_id} ended {status}; the service is {state}",
            where=self._where,
            hint="look at the service in the App Runner console before deploying again",
            exit_code=ExitCode.NEEDS_HUMAN,
        )

    def _wait(self, operation_id: str, cancel: CancelToken = NEVER) -> Json | None:
        """Poll until the operation ends, with backoff; None when it outlasts the timeout.
        Cancelled ends the wait (not the operation) between polls."""
        start = time.monotonic()
        interval = self.poll_interval
        while True:
            summary = self._operation(operation_id)
            elapsed = time.monotonic() - start
            if summary["Status"] not in _RUNNING:
                return summary
            if elapsed >= self.timeout:
                return None
            self.progress(f"{self.service}: {summary['Type']} {summary['Status']} ({elapsed:.0f}s)")
            cancel.sleep(min(interval, self.timeout - elapsed))
            interval = min(interval * 1.5, MAX_POLL_INTERVAL)

    def _operation(self, operation_id: str) -> Json:
        for summary in _pages(
            self._api.list_operations, "OperationSummaryList", self._where, ServiceArn=self._arn
        ):
            if summary["Id"] == operation_id:
                return summary
        raise SafedeployError(f"App Runner lists no operation {operation_id}", where=self._where)

    def _config_of(self, revision: str, live: ServiceSpec) -> ServiceSpec:
        """A revision's configuration: as seen by this run, else as recorded."""
        if revision in self._known:
            return self._known[revision]
        record = self.revisions.config(revision)
        if record is None:
            raise SafedeployError(
                f"no recorded configuration for revision {revision}",
                where=self._where,
                hint="see `safedeploy status` for the revisions safedeploy recorded",
            )
        spec, taken = _restore(record, live, revision)
        if taken:
            self.progress(
                f"{self.service}: took {', '.join(taken)} from the live service: sensitive plain "
                "values are never recorded (move them to secrets: to restore them exactly)"
            )
        return spec

    def _sensitive(self, spec: ServiceSpec) -> frozenset[str]:
        """Names whose plain value is never recorded: sensitive by where it came from (a ${VAR}
        fill, a live value the manifest does not declare) or by name or look; the start command
        is `command` here."""
        names = {
            n
            for n, v in spec.env.items()
            if isinstance(v, str) and (n not in self.manifest.declared or is_sensitive(n, v))
        }
        command = shlex.join(spec.command)
        if (
            "command" in self.manifest.templates
            or any(k.startswith("command.") for k in self.manifest.templates)
            or is_sensitive("command", command)
        ):
            names.add(_COMMAND)
        return frozenset(names)

    # -- preflight ---------------------------------------------------------------------------

    def _operation_finding(self) -> Iterator[Finding]:
        """SD304: a deploy now would first wait for someone else's operation."""
        operation = self._last.running if self._last else None
        if operation is not None:
            yield _finding(
                self.manifest,
                "SD304",
                None,
                f"App Runner operation {operation['Id']} ({operation['Type']}) is in progress "
                f"since {_when(operation['StartedAt'])}",
                f"deploy waits up to {self.timeout:.0f}s for it to end, then exits 1",
            )

    def _setting_findings(self, target: ServiceSpec) -> Iterator[Finding]:
        """SD303: what App Runner cannot take as written, caught before any call."""
        manifest, settings, image = self.manifest, target.settings, target.image or ""
        for key in sorted(set(settings) - set(_SETTINGS)):
            message = f"settings.{key} has no App Runner counterpart that safedeploy manages"
            yield _finding(manifest, "SD303", f"settings.{key}", message)
        for key, forms, unit in (("cpu", _CPU, "vCPU"), ("memory", _MEMORY, "GB")):
            value = settings.get(key)
            if value is not None and value not in forms.values():
                written = forms.get(str(value), f"{value} {unit}")
                if written not in forms.values():
                    written = f"one of {', '.join(forms.values())}"
                message = f"settings.{key} {value!r} is not how App Runner describes it"
                hint = f"write {written!r}, so that plans compare like with like"
                yield _finding(manifest, "SD303", f"settings.{key}", message, hint)
        egress, connector = settings.get("egress"), manifest.settings.vpc_connector
        if (
            egress not in (None, "DEFAULT", "VPC")
            or (egress == "VPC" and not settings.get("vpc_connector"))
            or (egress != "VPC" and connector)
        ):
            message = f"egress {egress!r} with{'' if connector else 'out'} a VPC connector"
            hint = "write egress: VPC with settings.vpc_connector, or egress: DEFAULT without"
            yield _finding(manifest, "SD303", "settings.egress", message, hint)
        if not (image.startswith(_PUBLIC_ECR) or _PRIVATE_ECR.match(image)):
            message = "App Runner runs images from Amazon ECR or ECR Public only"
            yield _finding(manifest, "SD303", "image", message)
        elif self._last is None and _PRIVATE_ECR.match(image):
            message = "a new service from private ECR needs an access role safedeploy leaves alone"
            hint = "create the service once (console or CLI), then `safedeploy import` it"
            yield _finding(manifest, "SD303", "image", message, hint)

    def _secret_findings(self, target: ServiceSpec) -> Iterator[Finding]:
        """SD201 (declared; SD109 when kept live): each secret exists. SD302: a role reads them."""
        refs = {k: v for k, v in sorted(target.env.items()) if isinstance(v, SecretRef)}
        for name, ref in refs.items():
            if ref.version != "latest":
                message = f"App Runner takes no secret version ({ref.version!r})"
                hint = "put the version in the ARN (…:secret:NAME:JSON_KEY:STAGE:VERSION_ID)"
                yield _finding(self.manifest, "SD303", f"secrets.{name}", message, hint)
            elif not self._secret_exists(ref.secret):
                message = f"secret {ref.secret} for {name} does not exist"
                if name in self.manifest.declared:
                    yield _finding(self.manifest, "SD201", f"secrets.{name}", message)
                else:
                    yield _finding(self.manifest, "SD109", "unmanaged", f"kept live {message}")
        if refs and not target.settings.get("instance_role"):
            message = f"{', '.join(refs)} reference secrets, but no instance role can read them"
            yield _finding(self.manifest, "SD302", "settings.instance_role", message)

    def _secret_exists(self, reference: str) -> bool:
        """DescribeSecret, or GetParameter without decryption: never a secret's value."""
        parts = reference.split(":")
        region = parts[3] if reference.startswith("arn:") else self.region
        with aws_errors("look the secret up", f"secret {reference}"):
            try:
                if reference.startswith("arn:") and parts[2] == "secretsmanager":
                    self.clients.get("secretsmanager", region).describe_secret(SecretId=reference)
                else:  # an SSM parameter, by ARN or (in the same region) by name
                    ssm = self.clients.get("ssm", region)
                    ssm.get_parameter(Name=reference, WithDecryption=False)
            except ClientError as exc:
                if error_code(exc) in ("ResourceNotFoundException", "ParameterNotFound"):
                    return False
                raise
        return True


# code -> severity and the usual fix (README's lint table); SD201 and SD109 as everywhere.
_RULES: dict[str, tuple[Severity, str]] = {
    "SD109": (Severity.WARNING, "create it or fix the reference; kept live, it never blocks"),
    "SD201": (
        Severity.ERROR,
        "create it, or fix the ARN (a Secrets Manager secret or SSM parameter)",
    ),
    "SD301": (
        Severity.WARNING,
        "VPC egress reaches the internet only through a NAT gateway: give the VPC one, "
        "or use egress: DEFAULT",
    ),
    "SD302": (Severity.ERROR, "set settings.instance_role to a role that may read those secrets"),
    "SD303": (Severity.ERROR, "App Runner takes: " + ", ".join(_SETTINGS)),
    "SD304": (Severity.WARNING, "deploy waits for it to end, then exits 1"),
}


def _finding(
    manifest: Manifest, code: str, key: str | None, message: str, hint: str | None = None
) -> Finding:
    severity, usual = _RULES[code]
    line = manifest.line_of(key) if key else None
    return Finding(code, severity, key, message, hint or usual, str(manifest.path), line)


# -- the service's configuration <-> ServiceSpec ------------------------------------------------


def service_url(url: str) -> str:
    """Where probes go: App Runner's ServiceUrl has no scheme, and is served over HTTPS."""
    return url if "://" in url else f"https://{url}"


def find_service(api: Any, name: str, where: str) -> str | None:
    """The ARN of the service called `name` in the client's region, following NextToken."""
    for summary in _pages(api.list_services, "ServiceSummaryList", where):
        if summary["ServiceName"] == name:
            return str(summary["ServiceArn"])
    return None


def _pages(method: Callable[..., Json], key: str, where: str, **params: Any) -> Iterator[Json]:
    """Every item of a listing, page after page (botocore has no App Runner paginators)."""
    while True:
        with aws_errors(f"call {method.__name__}", where):
            page = method(**params)
        yield from page.get(key, [])
        if not page.get("NextToken"):
            return
        params["NextToken"] = page["NextToken"]


def _spec(service: Json) -> ServiceSpec:
    """The part of a described service safedeploy manages, in the manifest's words."""
    repository = service["SourceConfiguration"]["ImageRepository"]
    config = repository.get("ImageConfiguration", {})
    env: dict[str, EnvValue] = dict(config.get("RuntimeEnvironmentVariables", {}))
    env.update({k: SecretRef(v) for k, v in config.get("RuntimeEnvironmentSecrets", {}).items()})
    instance = service.get("InstanceConfiguration", {})
    egress = service.get("NetworkConfiguration", {}).get("EgressConfiguration", {})
    settings: dict[str, Any] = {
        "cpu": _CPU.get(instance.get("Cpu", ""), instance.get("Cpu")),
        "memory": _MEMORY.get(instance.get("Memory", ""), instance.get("Memory")),
        "instance_role": instance.get("InstanceRoleArn"),
        "port": int(config["Port"]) if str(config.get("Port", "")).isdigit() else None,
        "egress": egress.get("EgressType"),
        "vpc_connector": egress.get("VpcConnectorArn"),
    }
    return ServiceSpec(
        image=repository["ImageIdentifier"],
        command=tuple(shlex.split(config.get("StartCommand", ""))),
        env=env,
        settings={k: v for k, v in settings.items() if v is not None},
    )


def _changes(live: Json, target: ServiceSpec) -> Json:
    """The blocks of an UpdateService (or CreateService, from {}) that make `live` `target`.

    Each block is the live one with only safedeploy's members changed, and a block that would
    not change is left out: what the manifest does not declare is never sent.
    """
    settings = target.settings
    source = copy.deepcopy(live.get("SourceConfiguration", {}))
    repository = source.setdefault("ImageRepository", {})
    if repository.get("ImageIdentifier") != target.image:
        repository["ImageIdentifier"] = target.image
        repository["ImageRepositoryType"] = (
            "ECR_PUBLIC" if (target.image or "").startswith(_PUBLIC_ECR) else "ECR"
        )
    had_config = "ImageConfiguration" in repository
    config = repository.pop("ImageConfiguration", {})
    for member, values in (
        (
            "RuntimeEnvironmentVariables",
            {k: reveal(v) for k, v in target.env.items() if isinstance(v, str)},  # apply path
        ),
        (
            "RuntimeEnvironmentSecrets",
            {k: v.secret for k, v in target.env.items() if isinstance(v, SecretRef)},
        ),
    ):
        config.pop(member, None)
        if values:
            config[member] = values
    if "port" in settings:
        config["Port"] = str(settings["port"])
    if target.command and tuple(shlex.split(config.get("StartCommand", ""))) != target.command:
        config["StartCommand"] = shlex.join(target.command)
    if config or had_config:
        repository["ImageConfiguration"] = config

    instance = dict(live.get("InstanceConfiguration", {}))
    for key, member in (("cpu", "Cpu"), ("memory", "Memory"), ("instance_role", "InstanceRoleArn")):
        if key in settings and _units(instance.get(member)) != _units(settings[key]):
            instance[member] = _units(settings[key])

    network = copy.deepcopy(live.get("NetworkConfiguration", {}))
    if "egress" in settings:
        egress = {"EgressType": settings["egress"]}
        if settings["egress"] == "VPC" and settings.get("vpc_connector"):
            egress["VpcConnectorArn"] = settings["vpc_connector"]
        network["EgressConfiguration"] = egress

    blocks = {
        "SourceConfiguration": source,
        "InstanceConfiguration": instance,
        "NetworkConfiguration": network,
    }
    return {k: v for k, v in blocks.items() if v and v != live.get(k, {})}


def _units(value: Any) -> Any:
    """Cpu and memory as the units App Runner describes ("1 vCPU" is "1024"); others as given."""
    return _UNITS.get(value, value) if isinstance(value, str) else value


# -- recorded configurations ---------------------------------------------------------------------


_COMMAND = "the start command"  # its place among sensitive names
_SENSITIVE = {"sensitive": True}  # a plain value that was there and is not stored


def _record(spec: ServiceSpec, sensitive: frozenset[str]) -> Json:
    """A revision's configuration as stored: of a sensitive plain value, only that it was there.

    Equal to a stored record, given the names that record holds as sensitive, exactly when
    `spec` is its revision in every value that was stored.
    """
    command = shlex.join(spec.command)
    return {
        "image": spec.image,
        "command": _SENSITIVE if _COMMAND in sensitive and command else command,
        "settings": dict(spec.settings),
        "env": {
            name: _stored(value, name in sensitive) for name, value in sorted(spec.env.items())
        },
    }


def _stored(value: EnvValue, sensitive: bool) -> Any:
    if isinstance(value, SecretRef):
        return {"secret": value.secret}
    return _SENSITIVE if sensitive else value


def _withheld(stored: Any) -> bool:
    """A sensitive plain value not stored; records from before 0.x kept `{"hmac": ...}`."""
    return stored == _SENSITIVE or (isinstance(stored, dict) and "hmac" in stored)


def _sensitive_in(record: Json) -> frozenset[str]:
    names = {name for name, stored in record["env"].items() if _withheld(stored)}
    return frozenset(names | ({_COMMAND} if _withheld(record["command"]) else set()))


def _restore(record: Json, live: ServiceSpec, revision: str) -> tuple[ServiceSpec, list[str]]:
    """The recorded configuration, and the names whose value was taken from the live service.

    A sensitive plain value is never stored, so it comes from the live service; where the live
    service no longer has it, refuse and say which.
    """
    taken: list[str] = []
    missing: list[str] = []

    def value(name: str, stored: Any, current: str | None) -> Any:
        if not _withheld(stored):
            return SecretRef(stored["secret"]) if isinstance(stored, dict) else stored
        if current:
            taken.append(name)
            return current
        missing.append(name)
        return None

    env = {
        name: value(name, stored, _plain(live.env.get(name)))
        for name, stored in record["env"].items()
    }
    command = value(_COMMAND, record["command"], shlex.join(live.command))
    if missing:
        raise SafedeployError(
            f"cannot restore revision {revision}: the live service no longer has "
            f"{', '.join(missing)}, and sensitive plain values are never stored",
            hint="set them by hand, or move them to secrets: so that any release can restore them",
        )
    spec = ServiceSpec(
        image=record["image"],
        command=tuple(shlex.split(command)),
        env=env,
        settings=record["settings"],
    )
    return spec, taken


def _plain(value: EnvValue | None) -> str | None:
    return value if isinstance(value, str) else None


def _when(moment: Any) -> str:
    """A timestamp as people read it in messages, to the second."""
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat(timespec="seconds")
    return str(moment)


def _stamp(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y%m%d-%H%M%S}"


# -- egress ---------------------------------------------------------------------------------------


def _egress_findings(manifest: Manifest, target: ServiceSpec) -> Iterator[Finding]:
    """SD301: with VPC egress, public hosts are out of reach unless the VPC has a NAT gateway.

    The Twilio incident: SMS calls timed out after egress moved to a VPC without one.
    """
    if target.settings.get("egress") != "VPC":
        return
    for name, value in sorted(target.env.items()):
        hosts = (
            [h for h in _HTTPS_HOST.findall(value) if _public(h)] if isinstance(value, str) else []
        )
        if hosts:
            shown_hosts = "" if is_sensitive(name, value) else f" ({', '.join(hosts)})"
            message = f"{name} points at a public https host{shown_hosts}, but egress is VPC"
            yield _finding(manifest, "SD301", f"env.{name}", message)


def _public(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return "." in host and not host.lower().endswith(_PRIVATE_SUFFIXES)


# -- import ---------------------------------------------------------------------------------------


def import_manifest(service: str, region: str, clients: Clients) -> str:
    """The manifest of a live service: `import` then `plan` shows no changes."""
    api = clients.get("apprunner", region)
    where = f"App Runner service {service} in {region}"
    arn = find_service(api, service, where)
    if arn is None:
        raise SafedeployError(f"there is no {where}", hint="check --service and --region")
    with aws_errors("describe the service", arn):
        spec = _spec(api.describe_service(ServiceArn=arn)["Service"])
    address = {"service": service, "platform": "apprunner", "region": region}
    return manifest_text(arn, address, spec)
