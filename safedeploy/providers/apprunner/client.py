"""The App Runner API as the provider uses it: finding the service, reading it with its latest
operation, starting operations and waiting for them to end.

botocore has no paginators and no waiters for App Runner: NextToken is followed and operations
are polled here, with backoff and a bounded total time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from safedeploy.aws import Clients, aws_errors, error_code, when
from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import Busy, SafedeployError, Unrecoverable
from safedeploy.model import ServiceSpec
from safedeploy.providers.apprunner import mapping

Json = dict[str, Any]

POLL_INTERVAL = 5.0  # seconds before the first re-poll of an operation; SAFEDEPLOY_POLL_INTERVAL
MAX_POLL_INTERVAL = 30.0
OPERATION_TIMEOUT = 20 * 60.0  # seconds; SAFEDEPLOY_OPERATION_TIMEOUT
_RUNNING = ("PENDING", "IN_PROGRESS", "ROLLBACK_IN_PROGRESS")


@dataclass(frozen=True)
class Live:
    """One read of the service: DescribeService's Service and its latest operation."""

    service: Json
    operation: Json | None

    @property
    def arn(self) -> str:
        return str(self.service["ServiceArn"])

    @property
    def running(self) -> Json | None:
        """The operation in progress on the service, if any."""
        if self.operation is not None and self.operation["Status"] in _RUNNING:
            return self.operation
        return None

    @property
    def spec(self) -> ServiceSpec:
        return mapping.spec(self.service)

    @property
    def fingerprint(self) -> str:
        return mapping.fingerprint(self.service, self.operation)

    @property
    def url(self) -> str:
        return mapping.service_url(self.service["ServiceUrl"])


@dataclass(frozen=True)
class Operation:
    """An operation this run started: what `wait_ready` waits for, on which service."""

    arn: str
    id: str


class AppRunnerApi:
    """One service's calls. The only memo is the service's ARN: a name's ARN never changes."""

    def __init__(
        self,
        service: str,
        region: str,
        clients: Clients,
        *,
        poll_interval: float = POLL_INTERVAL,
        timeout: float = OPERATION_TIMEOUT,
        progress: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.service = service
        self.region = region
        self.clients = clients
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.progress = progress
        self._arn: str | None = None

    @property
    def _api(self) -> Any:
        return self.clients.get("apprunner", self.region)

    @property
    def where(self) -> str:
        return self._arn or f"App Runner service {self.service} in {self.region}"

    def arn(self) -> str | None:
        """The service's ARN, or None while there is no such service."""
        if self._arn is None:
            self._arn = find_service(self._api, self.service, self.where)
        return self._arn

    def describe(self) -> Live | None:
        """The service and its latest operation, or None when there is no such service."""
        arn = self.arn()
        if arn is None:
            return None
        with aws_errors("describe the service", self.where):
            service = self._api.describe_service(ServiceArn=arn)["Service"]
            listed = self._api.list_operations(ServiceArn=arn, MaxResults=1)
        operations = listed.get("OperationSummaryList", [])
        return Live(service, operations[0] if operations else None)

    def settled(self) -> Live | None:
        """The service once no operation runs on it: waits for one that does, up to the timeout."""
        live = self.describe()
        running = live.running if live else None
        if live is not None and running is not None:
            if self._wait(Operation(live.arn, running["Id"])) is None:
                raise self._busy(live)
            live = self.describe()
        return live

    def create(self, request: Json) -> Operation:
        with aws_errors("create the service", self.where):
            created = self._api.create_service(ServiceName=self.service, **request)
        self._arn = str(created["Service"]["ServiceArn"])
        return Operation(self._arn, str(created["OperationId"]))

    def update(self, arn: str, changes: Json) -> Operation:
        with aws_errors("update the service", self.where):
            try:
                done = self._api.update_service(ServiceArn=arn, **changes)
            except ClientError as exc:
                if error_code(exc) == "InvalidStateException":
                    raise self._busy(self.describe()) from None
                raise
        return Operation(arn, str(done["OperationId"]))

    def finish(self, operation: Operation, cancel: CancelToken = NEVER) -> None:
        """Wait for our operation; raise with what App Runner said unless it succeeded."""
        summary = self._wait(operation, cancel)
        if summary is None:
            raise Unrecoverable(
                f"App Runner operation {operation.id} did not end within {self.timeout:.0f}s",
                where=operation.arn,
                hint="watch it with `aws apprunner list-operations`; it may still end either way",
            )
        status = summary["Status"]
        if status == "SUCCEEDED":
            return
        if status == "ROLLBACK_SUCCEEDED":
            raise SafedeployError(
                f"App Runner rolled operation {operation.id} back (ROLLBACK_SUCCEEDED): the new "
                "configuration failed App Runner's health check, and the previous one serves",
                where=operation.arn,
                hint="read the deployment logs in CloudWatch: "
                f"/aws/apprunner/{self.service}/{operation.arn.rsplit('/', 1)[-1]}/service",
            )
        live = self.describe()
        state = live.service["Status"] if live else "gone"
        raise Unrecoverable(
            f"App Runner operation {operation.id} ended {status}; the service is {state}",
            where=operation.arn,
            hint="look at the service in the App Runner console before deploying again",
        )

    def _busy(self, live: Live | None) -> Busy:
        """The lease's message, naming App Runner's running operation as the holder."""
        return Busy(
            self.service,
            holder(live.operation if live else None),
            when((live.operation or {}).get("StartedAt") if live else None),
            where=self.where,
            hint="wait for it to end (aws apprunner list-operations --service-arn ARN), "
            "then deploy again",
        )

    def _wait(self, operation: Operation, cancel: CancelToken = NEVER) -> Json | None:
        """Poll until the operation ends, with backoff; None when it outlasts the timeout.
        Cancelled ends the wait (not the operation) between polls."""
        start = time.monotonic()
        interval = self.poll_interval
        while True:
            summary = self._operation(operation)
            elapsed = time.monotonic() - start
            if summary["Status"] not in _RUNNING:
                return summary
            if elapsed >= self.timeout:
                return None
            self.progress(f"{self.service}: {summary['Type']} {summary['Status']} ({elapsed:.0f}s)")
            cancel.sleep(min(interval, self.timeout - elapsed))
            interval = min(interval * 1.5, MAX_POLL_INTERVAL)

    def _operation(self, operation: Operation) -> Json:
        listing = self._api.list_operations
        for summary in pages(
            listing, "OperationSummaryList", operation.arn, ServiceArn=operation.arn
        ):
            if summary["Id"] == operation.id:
                return summary
        raise SafedeployError(f"App Runner lists no operation {operation.id}", where=operation.arn)


def find_service(api: Any, name: str, where: str) -> str | None:
    """The ARN of the service called `name` in the client's region, following NextToken."""
    for summary in pages(api.list_services, "ServiceSummaryList", where):
        if summary["ServiceName"] == name:
            return str(summary["ServiceArn"])
    return None


def pages(method: Callable[..., Json], key: str, where: str, **params: Any) -> Iterator[Json]:
    """Every item of a listing, page after page (botocore has no App Runner paginators)."""
    while True:
        with aws_errors(f"call {method.__name__}", where):
            page = method(**params)
        yield from page.get(key, [])
        if not page.get("NextToken"):
            return
        params["NextToken"] = page["NextToken"]


def holder(operation: Json | None) -> str:
    """An operation as messages name it: its id and type."""
    operation = operation or {}
    return f"App Runner operation {operation.get('Id', '?')} ({operation.get('Type', '?')})"
