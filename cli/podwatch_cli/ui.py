"""`podwatch ui`: the timeline page of a deployed stack in a local browser. The history API is
IAM-authed (SigV4) by default and a browser cannot sign, so this serves the API on loopback and
signs each request (page, scripts and data alike) with the operator's credentials, or sends their
JWT (`--token`); credentials never reach the browser.

    podwatch --stack podwatch-prod ui                       # http://127.0.0.1:8765/
    podwatch --stack podwatch-prod ui '<a notification's history_url>'   # that view, here

GET only, as the API; loopback only.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import urlsplit

from podwatch_cli.events import EventsError, HistoryClient

#: answer headers passed back to the browser (httpx has already undone any Content-Encoding)
PASSED_HEADERS = (
    "Content-Type",
    "ETag",
    "Cache-Control",
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Total-Count",
    "X-Has-More",
    "Retry-After",
)


class SigningProxy:
    """A ThreadingHTTPServer on 127.0.0.1 that forwards each GET to the history API through `client`."""

    def __init__(self, client: HistoryClient, *, port: int = 0) -> None:
        self._client = client
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        client = self._client

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                conditional = {k: v for k, v in self.headers.items() if k.lower() == "if-none-match"}
                try:
                    answer = client.forward(self.path, conditional)
                except EventsError as exc:
                    self._send(502, {"Content-Type": "text/plain; charset=utf-8"}, str(exc).encode())
                    return
                headers = {k: answer.headers[k] for k in PASSED_HEADERS if k in answer.headers}
                self._send(answer.status_code, headers, answer.content)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, name="ui-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def local_view(proxy_url: str, view: str | None) -> str:
    """The page on the proxy; with a `history_url` (or any URL of the page), the same view."""
    fragment = urlsplit(view).fragment if view else ""
    return f"{proxy_url}/" + (f"#{fragment}" if fragment else "")


def cmd_ui(client: HistoryClient, *, port: int, view: str | None, out: IO[str], stop: threading.Event) -> int:
    """Serve until `stop` is set (Ctrl-C in the CLI)."""
    with SigningProxy(client, port=port) as proxy:
        out.write(
            f"the timeline page of {client.base_url}, signed for you: {local_view(proxy.url, view)}\n"
            "Ctrl-C stops it.\n"
        )
        out.flush()
        stop.wait()
    return 0
