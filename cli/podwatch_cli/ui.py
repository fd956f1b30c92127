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
from typing import IO
from urllib.parse import urlsplit

from podwatch_cli.events import EventsError, HistoryClient
from podwatch_cli.loopback import LoopbackHandler, LoopbackServer

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


class SigningProxy(LoopbackServer):
    """The loopback server that forwards each GET to the history API through `client`."""

    def __init__(self, client: HistoryClient, *, port: int = 0) -> None:
        super().__init__(_forwarding_handler(client), port=port, name="ui-proxy")


def _forwarding_handler(client: HistoryClient) -> type[LoopbackHandler]:
    class Handler(LoopbackHandler):
        def do_GET(self) -> None:
            conditional = {k: v for k, v in self.headers.items() if k.lower() == "if-none-match"}
            try:
                answer = client.forward(self.path, conditional)
            except EventsError as exc:
                self.send(502, {"Content-Type": "text/plain; charset=utf-8"}, str(exc).encode())
                return
            headers = {k: answer.headers[k] for k in PASSED_HEADERS if k in answer.headers}
            self.send(answer.status_code, headers, answer.content)

    return Handler


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
