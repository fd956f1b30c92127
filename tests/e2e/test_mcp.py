"""`podwatch mcp` end to end: the MCP SDK's own client, over stdio and over streamable HTTP, against
the command run as a process, answering from the local stack's history API after a replay of the
sample cluster (the relay's code → processor → history writer → history table → the history
function on loopback). It lists the tools, calls each, gets the crash-looping pod's history and its
incident (as a tool answer and as a resource), and gets the API's refusals back as tool errors.

Every `podwatch mcp` command the docs show is run here as written (test_documented_commands runs
the others): against the replayed cluster (PODWATCH_HISTORY_URL and PODWATCH_CLUSTER exported, as
an operator's shell would), an HTTP one on a free port instead of the written one (a shared host).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from local.processes import ROOT, ManagedProcess, free_port
from local.stack import LocalStack
from local.up import describe
from tests.aio import run_async
from tests.e2e.test_history import CRASHING, RECORDING_NOW, SAMPLE
from tests.integration.test_documented_commands import DOCS, commands_in_markdown, is_mcp

pytestmark = pytest.mark.e2e

TOOLS = {"query_events", "object_history", "open_incidents"}


class Replayed:
    def __init__(self, api_url: str, cluster: str, opened: set[str]) -> None:
        self.api_url = api_url
        self.cluster = cluster
        #: the incidents the real processor opened during the replay (its audit records)
        self.opened = opened


@pytest.fixture(scope="module")
def replayed(local_stack: LocalStack) -> Replayed:
    cluster = f"e2e-mcp-{uuid.uuid4().hex[:6]}"
    result = local_stack.replay(SAMPLE, cluster_id=cluster, recorded_time=True)
    local_stack.pump_until_idle(timeout=90)
    api = local_stack.serve_history_api(clock=lambda: RECORDING_NOW)
    opened = {
        a["dedup_key"]
        for a in local_stack.audit_records()
        if a.get("event_id") in result.event_ids and a["action"] == "forwarded" and a["reason"] == "opened"
    }
    assert opened  # the sample opens incidents (a crash loop among them)
    return Replayed(api.url, cluster, opened)


def env(**extra: str) -> dict[str, str]:
    """An operator's shell: the repository's code on the path, no AWS or podwatch settings but these."""
    path = os.pathsep.join(str(ROOT / p) for p in ("layers/podwatch", "relay", "cli", "."))
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PODWATCH_"))}
    return {**keep, "PYTHONPATH": path, "AWS_REGION": "us-east-1", **extra}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "podwatch_cli", *args]


def run(check: Callable[[Client], Awaitable[None]], server: StdioServerParameters | str) -> None:
    async def session() -> None:
        async with Client(server, read_timeout_seconds=60) as client:
            await check(client)

    run_async(session)


def payload(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data: dict[str, Any] = json.loads(result.content[0].text)
    assert result.structured_content == data
    return data


async def crash_loop_history(client: Client) -> str:
    """The crash-looping pod: its history, its Events and its open incident; returns the incident id."""
    namespace, pod = CRASHING
    view = payload(await client.call_tool("object_history", {"namespace": namespace, "name": pod}))
    assert view["object"]["name"] == pod
    assert view["object"]["deleted"] is False
    assert [r["count"] for r in view["relatedEvents"]] == [5, 4, 3, 2, 1]
    assert {r["reason"] for r in view["relatedEvents"]} == {"BackOff"}
    assert "CrashLoopBackOff" in {r["reason"] for r in view["watchEvents"]}
    newest = view["watchEvents"][0]
    assert {c["name"]: c.get("reason") for c in newest["containers"]}["api"] == "CrashLoopBackOff"
    assert "object" not in newest  # summaries unless `full`
    owner = view["owners"][0]  # the relations of the object view come along: its controller first
    assert (owner["kind"], owner["name"]) == ("ReplicaSet", "payments-api-84c6d9f7b8")
    assert view["node"]["name"] == newest["node"]
    (incident,) = view["incidents"]
    assert incident["eventType"] == "crash-loop"
    assert incident["state"] == "firing"
    assert incident["container"] == "api"
    assert incident["workload"] == "payments-api"
    assert set(incident["reasons"]) == {"CrashLoopBackOff", "BackOff"}
    found: str = incident["id"]
    return found


async def everything(client: Client, replayed: Replayed) -> None:
    # Given the server's tools, described for a model
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) == TOOLS
    for tool in listed.values():
        assert "14" in (tool.description or ""), tool.name  # the retention is stated
    assert "1000" in (listed["query_events"].description or "")
    assert "cursor" in listed["query_events"].input_schema["properties"]

    # When asked what is wrong: the incidents the processor opened, none resolved in the sample
    incidents = payload(await client.call_tool("open_incidents", {}))
    assert {i["id"] for i in incidents["incidents"]} == replayed.opened
    assert incidents["complete"] is True
    assert incidents["recordsRead"] > 0
    namespace, pod = CRASHING
    (crash,) = payload(await client.call_tool("open_incidents", {"namespace": namespace}))["incidents"]
    assert crash["pod"] == pod
    by_workload = payload(await client.call_tool("open_incidents", {"workload": "payments-api"}))
    assert [i["id"] for i in by_workload["incidents"]] == [crash["id"]]

    # Then the crash-looping pod's history, and its incident as a resource
    assert await crash_loop_history(client) == crash["id"]
    resources = {str(r.uri) for r in (await client.list_resources()).resources}
    assert crash["uri"] in resources
    read = await client.read_resource(crash["uri"])
    body = json.loads(read.contents[0].text)
    assert body["incident"]["id"] == crash["id"]
    assert body["incident"]["occurrences"] >= 5
    times = [r["timestamp"] for r in body["records"]]
    assert times == sorted(times, reverse=True)
    assert all(pod in (r["name"], r.get("involvedObject", {}).get("name")) for r in body["records"])

    # And a search by time and reason, paged with the API's cursor
    search = {"namespace": namespace, "kind": "event", "reason": "BackOff", "start": "2026-11-20T08:00:00Z"}
    first = payload(await client.call_tool("query_events", {**search, "limit": 3}))
    assert (first["count"], first["total"], first["hasMore"]) == (3, 5, True)
    rest = payload(
        await client.call_tool("query_events", {**search, "limit": 3, "cursor": first["nextCursor"]})
    )
    assert rest["count"] == 2
    assert rest["nextCursor"] is None
    assert {e["id"] for e in first["events"]}.isdisjoint(e["id"] for e in rest["events"])
    full = payload(await client.call_tool("query_events", {**search, "limit": 1, "full": True}))
    assert full["events"][0]["object"]["involved_object"]["name"] == pod

    # The API's refusals come back as tool errors with its message; the server stays up
    bad_time = await client.call_tool("query_events", {"start": "yesterday"})
    assert bad_time.is_error
    assert "400" in bad_time.content[0].text
    assert "RFC 3339" in bad_time.content[0].text
    foreign = await client.call_tool("query_events", {"cursor": first["nextCursor"]})
    assert foreign.is_error
    assert "cursor" in foreign.content[0].text
    unknown = payload(
        await client.call_tool("object_history", {"namespace": namespace, "name": "no-such-pod"})
    )
    assert unknown["object"] is None
    assert unknown["watchEvents"] == []
    with pytest.raises(MCPError, match="no records of incident"):
        await client.read_resource(
            f"podwatch://incidents/{replayed.cluster}/{namespace}/no-such-pod/api/oom-kill"
        )
    assert payload(await client.call_tool("open_incidents", {"namespace": namespace}))["incidents"] == [crash]


def test_over_stdio_every_tool_answers_from_the_history(replayed: Replayed, tmp_path: Path) -> None:
    server = StdioServerParameters(
        command=sys.executable,
        args=command("mcp", "--api-url", replayed.api_url, "--cluster", replayed.cluster)[1:],
        env=env(),
        cwd=str(tmp_path),
    )
    run(lambda client: everything(client, replayed), server)


def test_in_a_folder_with_the_local_stacks_file_it_needs_no_url(
    local_stack: LocalStack, replayed: Replayed, tmp_path: Path
) -> None:
    # Given the stack file `make up` writes (`local.up.describe`), its history API the replay's
    stack_file = tmp_path / ".local-run" / "current" / "stack.json"
    stack_file.parent.mkdir(parents=True)
    stack_file.write_text(json.dumps(describe(local_stack, replayed.api_url)))
    # When `podwatch mcp` is run there as the README says, Then it answers from that API
    server = StdioServerParameters(
        command=sys.executable,
        args=command("mcp")[1:],
        env=env(PODWATCH_CLUSTER=replayed.cluster),
        cwd=str(tmp_path),
    )
    run(crash_loop_history, server)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def serving_http(replayed: Replayed, tmp_path: Path, **extra_env: str) -> Iterator[str]:
    """`podwatch mcp --transport http` as a process on a free port; yields its URL."""
    port = free_port()
    argv = command(
        "mcp",
        "--transport",
        "http",
        "--port",
        str(port),
        "--api-url",
        replayed.api_url,
        "--cluster",
        replayed.cluster,
    )
    process = ManagedProcess(
        "podwatch-mcp", argv, log_path=tmp_path / "mcp.log", env=env(**extra_env), cwd=tmp_path
    )
    process.start()
    try:
        process.wait_healthy(lambda: listening(port), timeout=60, what=f"listening on {port}")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.stop()


@pytest.fixture
def http_server(replayed: Replayed, tmp_path: Path) -> Iterator[str]:
    with serving_http(replayed, tmp_path) as url:
        yield url


def test_over_http_with_a_token_only_requests_that_carry_it_get_in(
    replayed: Replayed, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex
    with serving_http(replayed, tmp_path, PODWATCH_MCP_TOKEN=token) as url:
        hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": token}):
            refused = httpx.post(url, json=hello, headers=wrong, timeout=30)
            assert refused.status_code == 401, wrong
            assert refused.headers["WWW-Authenticate"] == "Bearer"

        async def session() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
                Client(streamable_http_client(url, http_client=http)) as client,
            ):
                await crash_loop_history(client)

        run_async(session)


def test_over_streamable_http_every_tool_answers_from_the_history(
    replayed: Replayed, http_server: str
) -> None:
    run(lambda client: everything(client, replayed), http_server)


# --------------------------------------------------------------------------- the documented commands


def documented_mcp() -> list[str]:
    found: set[str] = set()
    for doc in DOCS:
        found |= {c for c in commands_in_markdown(doc.read_text(encoding="utf-8")) if is_mcp(c)}
    return sorted(found)


def test_the_docs_show_both_transports() -> None:
    shown = documented_mcp()
    assert any("--transport http" in c for c in shown)
    assert any("--transport" not in c for c in shown)


def with_free_port(words: list[str]) -> tuple[list[str], int | None]:
    if "--transport" not in words or words[words.index("--transport") + 1] != "http":
        return words, None
    port = free_port()
    if "--port" in words:
        words[words.index("--port") + 1] = str(port)
    else:
        words += ["--port", str(port)]
    return words, port


@pytest.mark.parametrize("documented", documented_mcp())
def test_a_documented_mcp_command_works_as_written(
    documented: str, replayed: Replayed, tmp_path: Path
) -> None:
    # Given an operator's shell with the history API and the cluster exported
    shell = env(
        PODWATCH_HISTORY_URL=replayed.api_url,
        PODWATCH_CLUSTER=replayed.cluster,
        PODWATCH_STACK="podwatch-prod",
    )
    words, port = with_free_port(shlex.split(documented.replace("<stack>", "podwatch-prod")))
    assert words[0] == "podwatch"

    async def check(client: Client) -> None:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        await crash_loop_history(client)

    # When it is run as written, Then an MCP client gets the crash loop's history from it
    if port is None:
        run(
            check,
            StdioServerParameters(
                command=sys.executable, args=command(*words[1:])[1:], env=shell, cwd=str(tmp_path)
            ),
        )
        return
    process = ManagedProcess(
        "podwatch-mcp", command(*words[1:]), log_path=tmp_path / "mcp.log", env=shell, cwd=tmp_path
    )
    process.start()
    try:
        process.wait_healthy(lambda: listening(port), timeout=60, what=f"listening on {port}")
        run(check, f"http://127.0.0.1:{port}/mcp")
    finally:
        process.stop()
