"""What Cloud Run recorded about a revision that failed: its conditions from the Run API and
its own log lines from Cloud Logging (`entries:list` over REST, the Run client's credentials).

At most two calls: one GetRevision, one entries:list with a filter on the revision, a window
from the deploy's start (less a small margin for clock skew) and a page size. What cannot be
read is reported with the permission or API it needs; nothing is raised past a cancel.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from safedeploy.cancel import CancelToken
from safedeploy.facts import Condition, Diagnosis, LogLine, Unread
from safedeploy.providers.cloudrun.client import Google

LOGGING_ENDPOINT = "CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING"
MARGIN = timedelta(minutes=2)
PAGE_SIZE = 200  # newest first: the last lines before the failure
_TIMEOUT = 30.0
_NEEDS_LOGS = "logging.logEntries.list (roles/logging.viewer)"
_NEEDS_REVISION = "run.revisions.get (roles/run.viewer)"


def diagnose(
    google: Google, resource: str, revision: str, since: datetime, cancel: CancelToken
) -> Diagnosis:
    """`resource`: projects/P/locations/R/services/S."""
    cancel.check()
    conditions, unread = _conditions(google, f"{resource}/revisions/{revision}")
    cancel.check()
    lines, more = _lines(google, resource, revision, since)
    missing = tuple(u for u in (unread, more) if u is not None)
    return Diagnosis("Cloud Run + Cloud Logging", revision, None, conditions, lines, missing)


def _conditions(google: Google, name: str) -> tuple[tuple[Condition, ...], Unread | None]:
    """Every condition that did not succeed, Ready first."""
    try:
        found = google.call(google.revisions.get_revision, name=name)
    except Exception as exc:  # reported, not raised: the deploy's outcome stands
        return (), Unread(f"revision {name.rsplit('/', 1)[-1]}", _NEEDS_REVISION, _said(exc))
    conditions = [
        Condition(
            str(c.type_),
            c.state.name,
            _reason(c),
            str(c.message) or None,
        )
        for c in found.conditions
        if c.state.name != "CONDITION_SUCCEEDED"
    ]
    conditions.sort(key=lambda c: c.type != "Ready")
    return tuple(conditions), None


def _reason(condition: Any) -> str | None:
    for field in ("revision_reason", "reason", "execution_reason"):
        value = getattr(condition, field, None)
        if value:
            return str(value.name)
    return None


def log_filter(resource: str, revision: str, since: datetime) -> str:
    """The Logging query language filter for one revision's lines since `since` less MARGIN."""
    _, region, service = resource.split("/")[1::2]
    start = (since - MARGIN).isoformat().replace("+00:00", "Z")
    return " AND ".join(
        [
            'resource.type="cloud_run_revision"',
            f'resource.labels.location="{region}"',
            f'resource.labels.service_name="{service}"',
            f'resource.labels.revision_name="{revision}"',
            f'timestamp>="{start}"',
        ]
    )


def _lines(
    google: Google, resource: str, revision: str, since: datetime
) -> tuple[tuple[LogLine, ...], Unread | None]:
    from google.auth.transport.requests import AuthorizedSession

    project = resource.split("/")[1]
    endpoint = (
        google.environ.get(LOGGING_ENDPOINT, "").rstrip("/") or "https://logging.googleapis.com"
    )
    body = {
        "resourceNames": [f"projects/{project}"],
        "filter": log_filter(resource, revision, since),
        "orderBy": "timestamp desc",
        "pageSize": PAGE_SIZE,
    }
    what = f"Cloud Logging entries of revision {revision}"
    try:
        with AuthorizedSession(google.credentials) as session:  # type: ignore[no-untyped-call]
            answer = session.post(f"{endpoint}/v2/entries:list", json=body, timeout=_TIMEOUT)
    except Exception as exc:
        return (), Unread(what, _NEEDS_LOGS, _said(exc))
    if answer.status_code != 200:
        return (), Unread(what, _needs(answer), _error(answer))
    entries = answer.json().get("entries", [])
    if not entries:
        detail = "none found yet: Cloud Logging may take a minute to ingest them"
        return (), Unread(what, "time: run `safedeploy why` again shortly", detail)
    return tuple(_line(entry) for entry in reversed(entries)), None


def _line(entry: dict[str, Any]) -> LogLine:
    """textPayload as it is; a jsonPayload's `message` (or the whole payload); else its kind."""
    text = entry.get("textPayload")
    if text is None and isinstance(entry.get("jsonPayload"), dict):
        payload = entry["jsonPayload"]
        text = str(payload.get("message") or payload)
    if text is None and "protoPayload" in entry:
        text = str(entry["protoPayload"].get("status", {}).get("message") or "(audit entry)")
    return LogLine(entry.get("timestamp"), entry.get("severity"), str(text or ""))


def _needs(answer: Any) -> str:
    """403 SERVICE_DISABLED wants the API enabled; any other 403 wants the permission."""
    if answer.status_code == 403 and "SERVICE_DISABLED" in answer.text:
        return "the Cloud Logging API enabled (gcloud services enable logging.googleapis.com)"
    return _NEEDS_LOGS


def _error(answer: Any) -> str:
    try:
        return f"{answer.status_code} {answer.json()['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {answer.status_code}"


def _said(exc: Exception) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
