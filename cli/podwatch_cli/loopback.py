"""A small HTTP server on 127.0.0.1 in a daemon thread: the one base of the loopback servers,
`podwatch ui`'s signing proxy (ui.py) and the local stack's history API (local/historyapi.py).

    class Hello(LoopbackHandler):
        def do_GET(self) -> None:
            self.send(200, {"Content-Type": "text/plain"}, b"hello")

    with LoopbackServer(Hello, name="hello") as server:   # a free port unless `port` is given
        httpx.get(server.url)

The standard library's ThreadingHTTPServer (one thread a request) is enough for one person's
browser or a test; nothing here listens beyond loopback.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from podwatch_cli.lifecycle import StartStop


class LoopbackHandler(BaseHTTPRequestHandler):
    """A request handler that writes whole answers and logs nothing (its server's user logs what matters)."""

    def send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """One complete answer: status, headers, Content-Length, body."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class LoopbackServer(StartStop):
    """ThreadingHTTPServer on 127.0.0.1 serving `handler` in a daemon thread named `name`;
    `start`/`stop` or a `with` block."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        port: int = 0,
        name: str = "loopback",
        poll_interval: float = 0.5,
    ) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._name = name
        self._poll_interval = poll_interval
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self._poll_interval},
            name=self._name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for a serve_forever that never started
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
