"""The history API on loopback: a loopback server (podwatch_cli.loopback) that turns each GET into
the API Gateway HTTP API (payload 2.0) event the deployed `history` function receives, invokes the
same handler, and writes its answer back. Used by `make run`, the tests and `podwatch events`
against the local stack.

    with HistoryApiServer(lambda event: stack.invoke("HistoryFunction", event)) as api:
        httpx.get(f"{api.url}/api/v1/events?namespace=shop")

Only GET, as the deployed route (`GET /{proxy+}`); no auth (loopback only).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from podwatch.errors import PodwatchError
from podwatch_cli.loopback import LoopbackHandler, LoopbackServer

Invoke = Callable[[dict[str, Any]], Any]


def http_api_event(method: str, target: str, headers: dict[str, str]) -> dict[str, Any]:
    """The HTTP API (payload format 2.0) event for one request; repeated query parameters are
    joined by commas, as API Gateway does."""
    parts = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": f"{method} /{{proxy+}}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": query or None,
        "pathParameters": {"proxy": parts.path.lstrip("/")},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": f"{method} /{{proxy+}}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


class HistoryApiServer(LoopbackServer):
    """The loopback server that answers each GET with `invoke` (the history function's handler)."""

    def __init__(self, invoke: Invoke, *, port: int = 0) -> None:
        super().__init__(_invoking_handler(invoke), port=port, name="history-api")


def _invoking_handler(invoke: Invoke) -> type[LoopbackHandler]:
    class Handler(LoopbackHandler):
        def do_GET(self) -> None:
            answer = invoke(http_api_event("GET", self.path, dict(self.headers.items())))
            body = answer.get("body") or ""
            raw = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
            headers = {name: str(value) for name, value in (answer.get("headers") or {}).items()}
            for name, values in (answer.get("multiValueHeaders") or {}).items():
                headers[name] = ",".join(values)
            self.send(int(answer.get("statusCode", 200)), headers, raw)

        def do_POST(self) -> None:
            self.send(405, {"Content-Type": "application/json"}, json.dumps({"error": "only GET"}).encode())

    return Handler


def recording_clock(bodies: Iterable[str]) -> Callable[[], datetime]:
    """The history API's "now" for a replay on the recording's clock: a minute after the newest
    event of the replayed messages (so the API's default window, the last 24 h, covers them)."""
    from podwatch.history import event_time
    from podwatch.models import KubeEventEnvelope, PodEnvelope
    from podwatch.wire import parse_envelope

    times = []
    for body in bodies:
        try:
            envelope = parse_envelope(body)
        except PodwatchError:
            continue
        if isinstance(envelope, PodEnvelope | KubeEventEnvelope):
            times.append(event_time(envelope))
    latest = max(times, default=datetime.now(UTC)) + timedelta(minutes=1)
    return lambda: latest


@dataclass
class Example:
    """One query `make run` shows: the command, and what the API answered."""

    command: str
    status: int
    total: int | None
    lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def examples(url: str, namespace: str, pod: str, *, rows: int = 6) -> list[Example]:
    """A list query (the namespace's newest records) and an object query (the pod with its Events)."""
    from podwatch.history import table

    listed = httpx.get(f"{url}/api/v1/events", params={"namespace": namespace, "limit": rows}, timeout=10)
    shown = [
        Example(
            f"curl -s '{url}/api/v1/events?namespace={namespace}&limit={rows}'",
            listed.status_code,
            int(listed.headers.get("X-Total-Count", "0")),
            table(listed.json().get("events", [])) if listed.status_code == 200 else [listed.text],
        )
    ]
    one = httpx.get(f"{url}/api/v1/events/{namespace}/pod/{pod}", timeout=10)
    view = one.json() if one.status_code == 200 else {}
    records = view.get("watchEvents", [])[:rows] + view.get("relatedEvents", [])[:rows]
    shown.append(
        Example(
            f"curl -s '{url}/api/v1/events/{namespace}/pod/{pod}'",
            one.status_code,
            len(view.get("watchEvents", [])) + len(view.get("relatedEvents", [])),
            table(sorted(records, key=lambda r: str(r["timestamp"]), reverse=True))
            if records
            else [one.text],
        )
    )
    return shown
