"""`podwatch ui`'s signing proxy (cli/podwatch_cli/ui.py) between a browser and the history API: the
real history function behind real HTTP on loopback (a moto-provisioned table), the proxy in front.
Every request it forwards is SigV4-signed (or carries the bearer token); the page, the data, the
API's refusals and 304s come back as the API gave them."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials

from local.cfn import AwsClients, load_template, provision
from local.historyapi import HistoryApiServer
from local.lambda_runtime import LambdaContext, load_function_module
from podwatch.settings import HistoryApiSettings
from podwatch_cli.events import HistoryClient
from podwatch_cli.ui import SigningProxy, cmd_ui, local_view

pytestmark = pytest.mark.integration


@pytest.fixture
def upstream(clients: AwsClients) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """The history API on loopback, recording the headers of each request it gets."""
    stack = provision(load_template(), clients=clients, stack_name=f"ui-{uuid.uuid4().hex[:8]}")
    module = load_function_module("history", fresh=True)
    settings = HistoryApiSettings(
        history_table_name=stack.physical("HistoryTable"), history_default_cluster="c1"
    )
    module.set_dependencies(
        module.build_dependencies(
            settings, dynamodb=clients.dynamodb, clock=lambda: datetime(2026, 11, 20, 12, tzinfo=UTC)
        )
    )
    seen: list[dict[str, str]] = []

    def invoke(event: dict[str, Any]) -> Any:
        seen.append(event["headers"])
        return module.lambda_handler(event, LambdaContext())

    with HistoryApiServer(invoke) as server:
        yield server.url, seen
    module.reset()


def test_page_data_refusals_and_304s_pass_through_signed(upstream: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = upstream
    client = HistoryClient(url, credentials=Credentials("AKIDEXAMPLE", "secret"), region="eu-west-1")
    with SigningProxy(client) as proxy:
        page = httpx.get(f"{proxy.url}/", headers={"Accept-Encoding": "gzip"}, timeout=30)
        assert page.status_code == 200
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert '<script src="ui/app.js" defer>' in page.text
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        again = httpx.get(
            f"{proxy.url}/ui/app.js", headers={"If-None-Match": page.headers["ETag"]}, timeout=30
        )
        assert again.status_code == 200  # another file's ETag: the file itself
        script = httpx.get(f"{proxy.url}/ui/app.js", timeout=30)
        cached = httpx.get(
            f"{proxy.url}/ui/app.js", headers={"If-None-Match": script.headers["ETag"]}, timeout=30
        )
        assert cached.status_code == 304
        listed = httpx.get(f"{proxy.url}/api/v1/events", params={"namespace": "shop", "limit": 5}, timeout=30)
        assert listed.status_code == 200
        assert listed.json()["events"] == []
        assert listed.headers["X-Total-Count"] == "0"
        refused = httpx.get(f"{proxy.url}/api/v1/events", params={"limit": "0"}, timeout=30)
        assert refused.status_code == 400
        assert refused.json()["parameter"] == "limit"
        assert httpx.get(f"{proxy.url}/api/v1/health", timeout=30).json()["now"] == "2026-11-20T12:00:00.000Z"
    client.close()
    assert len(seen) == 7
    for headers in seen:  # every request the API got was signed, with the query in the signature
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/execute-api/aws4_request" in headers["authorization"]


def test_a_bearer_token_instead_and_an_unreachable_api_is_a_502() -> None:
    seen: list[dict[str, str]] = []

    def invoke(event: dict[str, Any]) -> Any:
        seen.append(event["headers"])
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

    with HistoryApiServer(invoke) as server:
        client = HistoryClient(server.url, token="eyJ.jwt")
        with SigningProxy(client) as proxy:
            assert httpx.get(f"{proxy.url}/api/v1/health", timeout=30).status_code == 200
        client.close()
    assert seen[0]["authorization"] == "Bearer eyJ.jwt"
    gone = HistoryClient("http://127.0.0.1:9")  # nothing listens on the discard port
    with SigningProxy(gone) as proxy:
        answer = httpx.get(f"{proxy.url}/", timeout=30)
    assert answer.status_code == 502
    assert "cannot reach the history API" in answer.text


def test_a_notifications_history_url_opens_the_same_view_on_the_proxy() -> None:
    view = "https://abc.execute-api.eu-west-1.amazonaws.com/#c=prod&ns=payments&pod=api-1"
    assert local_view("http://127.0.0.1:8765", view) == "http://127.0.0.1:8765/#c=prod&ns=payments&pod=api-1"
    assert local_view("http://127.0.0.1:8765", None) == "http://127.0.0.1:8765/"
    out, stop = io.StringIO(), threading.Event()
    runner = threading.Thread(
        target=cmd_ui,
        args=(HistoryClient("http://127.0.0.1:9"),),
        kwargs={"port": 0, "view": view, "out": out, "stop": stop},
    )
    runner.start()
    deadline = time.monotonic() + 10
    while "Ctrl-C" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    runner.join(timeout=10)
    assert "#c=prod&ns=payments&pod=api-1" in out.getvalue()
    assert not runner.is_alive()
