"""A Cloud Monitoring v3 double on 127.0.0.1: `GET /v3/projects/P/timeSeries`, fed by
FakeCloudRun's revisions.

Field names are the API's JSON (google/monitoring/v3/metric_service.proto ListTimeSeriesRequest:
filter, interval.startTime/endTime, aggregation.alignmentPeriod/perSeriesAligner/
crossSeriesReducer, view, pageSize; ListTimeSeriesResponse: timeSeries, nextPageToken;
TimeSeries: metric {type, labels}, resource {type, labels}, metricKind, valueType, points
[{interval, value {int64Value | doubleValue}}]).

`answer(image_contains, requests, errors, p95_ms)`: every revision whose image contains the
text answered that many requests, that many with a 5xx, in any window asked about (split into
one point a minute, as Cloud Run samples); `late()` makes windows hold no points yet.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.cloudrun import FakeCloudRun

_TERM = re.compile(r'(?P<key>[\w.]+)\s*=\s*"(?P<value>[^"]*)"')
_PATH = re.compile(r"/v3/projects/(?P<project>[^/]+)/timeSeries")


@dataclass(frozen=True)
class Answered:
    requests: int
    errors: int
    p95_ms: float


class FakeCloudMonitoring:
    def __init__(self, run: FakeCloudRun, token: str | None = None) -> None:
        self.run = run
        self.token = token
        self.requests: list[dict[str, str]] = []
        self._answers: list[tuple[str, Answered]] = []
        self._late = False
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, answer = fake.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeCloudMonitoring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answer_with(
        self, image_contains: str, requests: int, errors: int = 0, p95_ms: float = 120.0
    ) -> None:
        """Revisions whose image contains the text answered these figures in every window."""
        with self._lock:
            self._answers.insert(0, (image_contains, Answered(requests, errors, p95_ms)))

    def late(self) -> None:
        """Every window holds no points yet, as right after a step when samples lag."""
        self._late = True

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        url = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self._lock:
            self.requests.append(query)
        if self.token is not None and authorization != f"Bearer {self.token}":
            return 401, _error(401, "UNAUTHENTICATED", "Request had invalid credentials.")
        match = _PATH.fullmatch(url.path)
        if match is None:
            return 404, _error(404, "NOT_FOUND", f"no {url.path}")
        if not {"filter", "interval.endTime"} <= query.keys():
            return 400, _error(400, "INVALID_ARGUMENT", "filter and interval.endTime are required")
        terms = {m["key"]: m["value"] for m in _TERM.finditer(query["filter"])}
        if self._late or terms.get("resource.type") != "cloud_run_revision":
            return 200, {}
        name = (
            f"projects/{match['project']}/locations/{terms.get('resource.labels.location')}"
            f"/services/{terms.get('resource.labels.service_name')}"
        )
        wanted = terms.get("resource.labels.revision_name")
        revisions = [r for r in self.run.revisions(name) if r["name"].rsplit("/", 1)[-1] == wanted]
        if not revisions:
            return 200, {}
        answered = self._answered(revisions[0]["containers"][0]["image"])
        if answered is None:
            return 200, {}
        window = {
            "startTime": query.get("interval.startTime"),
            "endTime": query["interval.endTime"],
        }
        resource = {
            "type": "cloud_run_revision",
            "labels": {
                k.split(".")[-1]: v for k, v in terms.items() if k.startswith("resource.labels.")
            },
        }
        metric = terms.get("metric.type")
        if metric == "run.googleapis.com/request_count":
            return 200, {
                "timeSeries": [
                    _count(resource, "2xx", answered.requests - answered.errors, window),
                    _count(resource, "5xx", answered.errors, window),
                ]
            }
        if metric == "run.googleapis.com/request_latencies":
            if query.get("aggregation.perSeriesAligner") != "ALIGN_PERCENTILE_95":
                return 400, _error(400, "INVALID_ARGUMENT", "the double answers p95 only")
            return 200, {
                "timeSeries": [
                    {
                        "metric": {"type": metric, "labels": {}},
                        "resource": resource,
                        "metricKind": "GAUGE",
                        "valueType": "DOUBLE",
                        "points": [{"interval": window, "value": {"doubleValue": answered.p95_ms}}],
                    }
                ]
            }
        return 200, {}

    def _answered(self, image: str) -> Answered | None:
        with self._lock:
            return next((a for needle, a in self._answers if needle in image), None)


def _count(
    resource: dict[str, Any], code_class: str, total: int, window: dict[str, Any]
) -> dict[str, Any]:
    """A DELTA INT64 series, the total spread over two points as samples a minute apart."""
    first = total // 2
    return {
        "metric": {
            "type": "run.googleapis.com/request_count",
            "labels": {"response_code_class": code_class, "response_code": code_class[0] + "00"},
        },
        "resource": resource,
        "metricKind": "DELTA",
        "valueType": "INT64",
        "points": [
            {"interval": window, "value": {"int64Value": str(total - first)}},
            {"interval": window, "value": {"int64Value": str(first)}},
        ],
    }


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message": message}}
