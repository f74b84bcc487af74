"""What App Runner recorded about a deploy that failed: the operation's status and the lines of
the service's CloudWatch log groups in the deploy's window.

`/aws/apprunner/NAME/SERVICE_ID/service` holds App Runner's own events (a failed health check),
`.../application` the app's lines. Cost: DescribeService and ListOperations (one read), then one
FilterLogEvents per group (`AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` reaches a double).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from safedeploy.aws import Clients, error_code
from safedeploy.cancel import CancelToken
from safedeploy.facts import Diagnosis, LogLine, Unread
from safedeploy.providers.apprunner.client import AppRunnerApi

MARGIN = timedelta(minutes=2)
LIMIT = 500  # events read per group; the core keeps the few that matter
_SOURCE = "App Runner + CloudWatch Logs"
_NEEDS = "logs:FilterLogEvents on the service's log groups"


def diagnose(
    api: AppRunnerApi, clients: Clients, revision: str, since: datetime, cancel: CancelToken
) -> Diagnosis:
    live = api.describe()
    if live is None:
        unread = Unread(f"service {api.service}", "apprunner:DescribeService", "it does not exist")
        return Diagnosis(_SOURCE, revision, unread=(unread,))
    operation = live.operation
    status = f"{operation['Type']} {operation['Status']}" if operation else None
    name, service_id = live.service["ServiceName"], live.service["ServiceId"]
    logs = clients.get("logs", api.region)
    start = int((since - MARGIN).timestamp() * 1000)
    lines: list[tuple[int, LogLine]] = []
    missing: list[Unread] = []
    for kind in ("service", "application"):
        cancel.check()
        group = f"/aws/apprunner/{name}/{service_id}/{kind}"
        try:
            events = logs.filter_log_events(logGroupName=group, startTime=start, limit=LIMIT)
        except ClientError as exc:
            missing.append(Unread(f"log group {group}", _needs(exc), _said(exc)))
            continue
        except BotoCoreError as exc:
            missing.append(Unread(f"log group {group}", _NEEDS, str(exc)))
            continue
        lines += [(e["timestamp"], _line(e, kind)) for e in events.get("events", [])]
    lines.sort(key=lambda pair: pair[0])
    return Diagnosis(
        _SOURCE, revision, status, (), tuple(line for _, line in lines), tuple(missing)
    )


def _line(event: dict[str, Any], kind: str) -> LogLine:
    moment = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
    text = str(event.get("message", "")).rstrip("\n")
    return LogLine(moment.isoformat(timespec="seconds"), None, f"[{kind}] {text}")


def _needs(exc: ClientError) -> str:
    if error_code(exc) == "ResourceNotFoundException":
        return "time: App Runner creates it with the service's first lines"
    return _NEEDS


def _said(exc: ClientError) -> str:
    return f"{error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}"
