"""What an App Runner service answered in a window, from CloudWatch `AWS/AppRunner`: `Requests`
and `5xxStatusResponses` summed, and with `latency` the `RequestLatency` p95, by the dimensions
ServiceName and ServiceID. One GetMetricData (`AWS_ENDPOINT_URL_CLOUDWATCH` reaches a double).

App Runner serves one configuration, so the figures are the service's: the bake after a deploy.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from safedeploy.aws import Clients, aws_errors
from safedeploy.errors import SafedeployError
from safedeploy.facts import TrafficFigures
from safedeploy.providers.apprunner.client import AppRunnerApi

PERIOD = 60  # seconds: App Runner publishes a point a minute


def traffic(
    api: AppRunnerApi, clients: Clients, start: datetime, end: datetime, latency: bool
) -> TrafficFigures:
    live = api.describe()
    if live is None:
        raise SafedeployError(f"{api.where} does not exist", hint="see `safedeploy status`")
    dimensions = [
        {"Name": "ServiceName", "Value": live.service["ServiceName"]},
        {"Name": "ServiceID", "Value": live.service["ServiceId"]},
    ]

    def query(key: str, metric: str, stat: str) -> dict[str, object]:
        stat_of = {"Namespace": "AWS/AppRunner", "MetricName": metric, "Dimensions": dimensions}
        return {"Id": key, "MetricStat": {"Metric": stat_of, "Period": PERIOD, "Stat": stat}}

    queries = [query("requests", "Requests", "Sum"), query("errors", "5xxStatusResponses", "Sum")]
    if latency:
        queries.append(query("latency", "RequestLatency", "p95"))
    # CloudWatch takes whole seconds and refuses an empty window.
    start = start.replace(microsecond=0)
    end = max(end, start + timedelta(seconds=1))
    with aws_errors("read the service's metrics (cloudwatch:GetMetricData)", api.where):
        found = clients.get("cloudwatch", api.region).get_metric_data(
            MetricDataQueries=queries, StartTime=start, EndTime=end
        )
    values = {r["Id"]: r.get("Values", []) for r in found.get("MetricDataResults", [])}
    p95 = max(values.get("latency", []), default=None)
    return TrafficFigures(
        int(sum(values.get("requests", []))),
        int(sum(values.get("errors", []))),
        None if p95 is None else float(p95),
        len(values.get("requests", [])),
    )
