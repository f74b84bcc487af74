"""What ECS recorded about a deploy that failed: the service deployment's status and reason, its
circuit breaker, rollback and alarms, and the lines of the container's `awsLogsConfiguration`
log group in the deploy's window.

Cost: the read the provider makes anyway (DescribeExpressGatewayService and the current
deployment), then one FilterLogEvents (`AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` reaches a double).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from safedeploy.aws import Clients, error_code
from safedeploy.cancel import CancelToken
from safedeploy.facts import Condition, Diagnosis, LogLine, Unread
from safedeploy.providers.ecs_express.client import EcsExpressApi

MARGIN = timedelta(minutes=2)
LIMIT = 500  # events read; the core keeps the few that matter
_SOURCE = "ECS Express + CloudWatch Logs"
_NEEDS = "logs:FilterLogEvents on the container's log group"

Json = dict[str, Any]


def diagnose(
    api: EcsExpressApi, clients: Clients, revision: str, since: datetime, cancel: CancelToken
) -> Diagnosis:
    live = api.describe()
    if live is None:
        unread = Unread(f"service {api.service}", "ecs:DescribeExpressGatewayService", "not found")
        return Diagnosis(_SOURCE, revision, unread=(unread,))
    deployment = live.deployment or {}
    status = " ".join(str(deployment[k]) for k in ("status", "statusReason") if deployment.get(k))
    cancel.check()
    logs = (live.config.get("primaryContainer") or {}).get("awsLogsConfiguration") or {}
    lines, missing = _lines(clients, api.region, logs, since)
    return Diagnosis(_SOURCE, revision, status or None, _conditions(deployment), lines, missing)


def _conditions(deployment: Json) -> tuple[Condition, ...]:
    found = []
    breaker = deployment.get("deploymentCircuitBreaker") or {}
    if breaker.get("status") == "TRIGGERED":
        failures = f"{breaker.get('failureCount')} task failures of {breaker.get('threshold')}"
        found.append(Condition("CircuitBreaker", "TRIGGERED", None, failures))
    alarms = deployment.get("alarms") or {}
    if alarms.get("status") == "TRIGGERED":
        names = ", ".join(alarms.get("triggeredAlarmNames") or ()) or "an alarm"
        found.append(Condition("Alarms", "TRIGGERED", None, f"triggered: {names}"))
    rollback = deployment.get("rollback") or {}
    if rollback.get("reason"):
        found.append(Condition("Rollback", deployment.get("status"), None, rollback["reason"]))
    return tuple(found)


def _lines(
    clients: Clients, region: str, logs: Json, since: datetime
) -> tuple[tuple[LogLine, ...], tuple[Unread, ...]]:
    group = logs.get("logGroup")
    if not group:
        detail = "the container has no awsLogsConfiguration"
        return (), (Unread("the container's log lines", "a log group to read", detail),)
    params: Json = {
        "logGroupName": group,
        "startTime": int((since - MARGIN).timestamp() * 1000),
        "limit": LIMIT,
    }
    if logs.get("logStreamPrefix"):
        params["logStreamNamePrefix"] = logs["logStreamPrefix"]
    try:
        events = clients.get("logs", region).filter_log_events(**params).get("events", [])
    except ClientError as exc:
        said = f"{error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}"
        return (), (Unread(f"log group {group}", _NEEDS, said),)
    except BotoCoreError as exc:
        return (), (Unread(f"log group {group}", _NEEDS, str(exc)),)
    events.sort(key=lambda e: e["timestamp"])
    return tuple(_line(e) for e in events), ()


def _line(event: Json) -> LogLine:
    moment = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
    return LogLine(moment.isoformat(timespec="seconds"), None, str(event.get("message", "")))
