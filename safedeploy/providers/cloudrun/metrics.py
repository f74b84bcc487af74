"""What a Cloud Run revision answered in a window, from Cloud Monitoring v3 `timeSeries.list`
over REST (the Python library has only gRPC transports), with the Run client's credentials.

`run.googleapis.com/request_count` per `response_code_class` gives requests and 5xx; with
`latency`, `run.googleapis.com/request_latencies` aligned to its 95th percentile over the window
gives the p95. One GET each (a page of up to 1,000 series is plenty for one revision).
Facts only: how many points the window held is reported, never judged here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from safedeploy.errors import SafedeployError
from safedeploy.facts import TrafficFigures
from safedeploy.providers.cloudrun.client import Google

MONITORING_ENDPOINT = "CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING"
PAGE_SIZE = 1000
_TIMEOUT = 30.0


def traffic(
    google: Google, resource: str, revision: str, start: datetime, end: datetime, latency: bool
) -> TrafficFigures:
    """`resource`: projects/P/locations/R/services/S."""
    project, region, service = resource.split("/")[1::2]
    where = (
        'resource.type="cloud_run_revision"'
        f' AND resource.labels.location="{region}"'
        f' AND resource.labels.service_name="{service}"'
        f' AND resource.labels.revision_name="{revision}"'
    )
    window = {"interval.startTime": _time(start), "interval.endTime": _time(end)}
    counts = _series(
        google,
        project,
        {"filter": f'metric.type="run.googleapis.com/request_count" AND {where}', **window},
    )
    requests = errors = points = 0
    for series in counts:
        total = sum(int(p["value"].get("int64Value", 0)) for p in series.get("points", []))
        points += len(series.get("points", []))
        requests += total
        if series.get("metric", {}).get("labels", {}).get("response_code_class") == "5xx":
            errors += total
    p95 = None
    if latency:
        seconds = max(1, int((end - start).total_seconds()))
        aligned = _series(
            google,
            project,
            {
                "filter": f'metric.type="run.googleapis.com/request_latencies" AND {where}',
                **window,
                "aggregation.alignmentPeriod": f"{seconds}s",
                "aggregation.perSeriesAligner": "ALIGN_PERCENTILE_95",
                "aggregation.crossSeriesReducer": "REDUCE_MAX",
            },
        )
        values = [p["value"].get("doubleValue") for s in aligned for p in s.get("points", [])]
        p95 = max((float(v) for v in values if v is not None), default=None)
    return TrafficFigures(requests, errors, p95, points)


def _series(google: Google, project: str, params: dict[str, str]) -> list[dict[str, Any]]:
    from google.auth.transport.requests import AuthorizedSession

    endpoint = google.environ.get(MONITORING_ENDPOINT, "").rstrip("/")
    url = f"{endpoint or 'https://monitoring.googleapis.com'}/v3/projects/{project}/timeSeries"
    query = {**params, "view": "FULL", "pageSize": str(PAGE_SIZE)}
    with AuthorizedSession(google.credentials) as session:  # type: ignore[no-untyped-call]
        answer = session.get(url, params=query, timeout=_TIMEOUT)
    if answer.status_code != 200:
        try:
            said = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            said = f"HTTP {answer.status_code}"
        raise SafedeployError(
            f"Cloud Monitoring answered {answer.status_code}: {said}",
            where=f"projects/{project}/timeSeries",
            hint="the deploying identity needs monitoring.timeSeries.list "
            "(roles/monitoring.viewer), and the Cloud Monitoring API enabled",
        )
    series: list[dict[str, Any]] = answer.json().get("timeSeries", [])
    return series


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
