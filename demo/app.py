"""The demo service: a tiny HTTP app that reports its revision and breaks on request.

`/health` answers 500 when BREAK_HEALTH=1, which is how a deploy fails its probe. With
FEATURES=payments it needs PAYMENTS_API_KEY and stops at start without it, as an app does when
a deploy forgot a secret: the demo's broken deploy, and its "why". It prints which variables
it sees, never their values.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            broken = os.environ.get("BREAK_HEALTH") == "1"
            self.reply(500 if broken else 200, {"ok": not broken})
        elif self.path == "/":
            self.reply(
                200,
                {
                    "revision": os.environ.get("K_REVISION"),
                    "greeting": os.environ.get("GREETING", "hello"),
                    "env": sorted(k for k in os.environ if k.isupper()),
                },
            )
        else:
            self.reply(404, {"error": "not found"})

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


if __name__ == "__main__":
    if "payments" in os.environ.get("FEATURES", "").split(","):
        payments = os.environ["PAYMENTS_API_KEY"]  # a KeyError when the deploy did not set it
    port = int(os.environ["PORT"])
    print(f"demo app {os.environ.get('K_REVISION')} listening on 127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
