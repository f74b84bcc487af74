"""A Cloud Logging v2 double on 127.0.0.1: `POST /v2/entries:list`, fed by FakeCloudRun.

Field names are the API's JSON (google/logging/v2/logging.proto ListLogEntriesRequest:
resourceNames, filter, orderBy, pageSize, pageToken; ListLogEntriesResponse: entries,
nextPageToken; google/logging/v2/log_entry.proto LogEntry: logName, resource {type, labels},
timestamp, receiveTimestamp, severity, insertId, textPayload | jsonPayload).

What a revision wrote comes from the Cloud Run double: `write(image_contains, lines)` makes every
revision whose image contains the text write those lines (a broken app's own words) from its
createTime on; a revision that failed to start also gets Cloud Run's own system line. The
filter is read for the revision, service and timestamp terms safedeploy sends; `deny` answers
the next calls with an error, as a missing permission or a disabled API does.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fakes.cloudrun import FakeCloudRun

_TERM = re.compile(r'(?P<key>[\w.]+)\s*(?P<op>>=|=)\s*"(?P<value>[^"]*)"')
_STARTUP_FAILED = (
    'Default STARTUP TCP probe failed 1 time consecutively for container "app-1" on port 8080. '
    "The instance was not started."
)
_STATUS = {"PERMISSION_DENIED": 403, "INVALID_ARGUMENT": 400, "UNAVAILABLE": 503}


class FakeCloudLogging:
    def __init__(self, run: FakeCloudRun, token: str | None = None) -> None:
        self.run = run
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self._lines: list[tuple[str, list[tuple[str, str]]]] = []
        self._denials: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status, answer = fake.answer(self.path, self.headers.get("Authorization"), body)
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

    def __enter__(self) -> FakeCloudLogging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, image_contains: str, lines: list[str], severity: str = "DEFAULT") -> None:
        """Revisions whose image contains `image_contains` write these lines, in order."""
        with self._lock:
            self._lines.append((image_contains, [(severity, line) for line in lines]))

    def deny(self, status: str, message: str, reason: str | None = None) -> None:
        """The next call fails with `status` (PERMISSION_DENIED, ...), as the API words it."""
        with self._lock:
            self._denials.append((status, json.dumps({"message": message, "reason": reason})))

    def answer(
        self, path: str, authorization: str | None, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            if self.token is not None and authorization != f"Bearer {self.token}":
                return 401, _error(401, "UNAUTHENTICATED", "Request had invalid credentials.")
            if self._denials:
                status, detail = self._denials.pop(0)
                said = json.loads(detail)
                error = _error(_STATUS[status], status, said["message"])
                if said["reason"]:
                    error["error"]["details"] = [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": said["reason"],
                        }
                    ]
                return _STATUS[status], error
        if path != "/v2/entries:list":
            return 404, _error(404, "NOT_FOUND", f"no {path}")
        if not body.get("resourceNames") or body.get("orderBy") not in (
            None,
            "timestamp asc",
            "timestamp desc",
        ):
            return 400, _error(
                400, "INVALID_ARGUMENT", "resourceNames and a valid orderBy are required"
            )
        size = int(body.get("pageSize", 50))
        if not 0 < size <= 1000:
            return 400, _error(400, "INVALID_ARGUMENT", "pageSize must be in 1..1000")
        terms = {(m["key"], m["op"]): m["value"] for m in _TERM.finditer(body.get("filter", ""))}
        entries = self._entries(body["resourceNames"][0].split("/")[-1], terms)
        if body.get("orderBy") == "timestamp desc":
            entries.reverse()
        page = entries[:size]
        return 200, {"entries": page, **({"nextPageToken": "more"} if len(entries) > size else {})}

    def _entries(self, project: str, terms: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
        if terms.get(("resource.type", "=")) != "cloud_run_revision":
            return []
        service = terms.get(("resource.labels.service_name", "="))
        wanted = terms.get(("resource.labels.revision_name", "="))
        since = terms.get(("timestamp", ">="))
        location = terms.get(("resource.labels.location", "="), "us-central1")
        name = f"projects/{project}/locations/{location}/services/{service}"
        entries = []
        for revision in reversed(self.run.revisions(name)):
            short = revision["name"].rsplit("/", 1)[-1]
            if wanted is not None and short != wanted:
                continue
            start = datetime.fromisoformat(revision["createTime"].replace("Z", "+00:00"))
            written = self._written(revision)
            for i, (severity, text) in enumerate(written):
                time = (start + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z")
                if since is not None and time < since:
                    continue
                entries.append(
                    {
                        "logName": f"projects/{project}/logs/run.googleapis.com%2Fstdout",
                        "resource": {
                            "type": "cloud_run_revision",
                            "labels": {
                                "project_id": project,
                                "location": location,
                                "service_name": service,
                                "revision_name": short,
                                "configuration_name": service,
                            },
                        },
                        "timestamp": time,
                        "receiveTimestamp": time,
                        "severity": severity,
                        "insertId": f"{short}-{i}",
                        "textPayload": text,
                    }
                )
        return entries

    def _written(self, revision: dict[str, Any]) -> list[tuple[str, str]]:
        image = revision["containers"][0]["image"]
        with self._lock:
            written = [line for needle, lines in self._lines if needle in image for line in lines]
        failed = [c for c in revision.get("conditions", []) if c.get("state") == "CONDITION_FAILED"]
        if failed:
            written.append(("ERROR", _STARTUP_FAILED))
        return written


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message": message}}
