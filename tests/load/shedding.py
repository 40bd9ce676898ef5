"""A stand-in HTTP server that sheds and fails on a fixed schedule, for the load tools' tests."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SheddingHandler(BaseHTTPRequestHandler):
    """Answers /predict like the service, but sheds every 4th request and fails every 10th.

    The shares of 429s (with ``Retry-After``) and 5xx are fixed, so a test can check that
    a load tool tells them apart and counts each; the service sheds only under real
    overload, which ``tests/service/test_reliability.py`` covers.
    """

    counter = itertools.count(1)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        number = next(self.counter)
        if number % 4 == 1:
            self._reply(429, {"error": "overloaded", "reason": "overloaded"}, retry_after="1")
        elif number % 10 == 7:
            self._reply(503, {"error": "unavailable", "reason": "not_ready"})
        else:
            prediction = {"label": 0, "confidence": 1.0, "probabilities": [1.0] + [0.0] * 9}
            self._reply(
                200, {"model_version": 1, "predictions": [prediction] * len(body["images"])}
            )

    def _reply(self, status: int, data: dict[str, Any], retry_after: str | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Model-Version", "1")
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:
        pass


@contextlib.contextmanager
def shedding_server() -> Iterator[str]:
    """The stand-in on a free loopback port, for the ``with`` block; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SheddingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
