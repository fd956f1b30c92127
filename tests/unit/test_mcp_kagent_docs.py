"""The kagent objects docs/operations.md tells an operator to apply for `podwatch mcp` say what
kagent and podwatch accept: the RemoteMCPServer has the fields of kagent's CRD and points at the
path and port the documented command serves, the agent's tool entry names exactly the server's
tools, and the Hook that sends an agent there is a valid podwatch Hook.

kagent's fields are those of kagent-dev/kagent `go/api/v1alpha2/remotemcpserver_types.go` and
`agent_types.go` (`McpServerTool`, `TypedReference`) at commit 5229184 (2026-08-22), where
v1alpha2 is the stored version of both CRDs.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml
from mcp import Client

from local.cfn import ROOT
from podwatch.hooks.rules import parse_hook
from podwatch_cli.events import HistoryClient
from podwatch_cli.mcp_server import History, build
from tests.aio import run_async

OPERATIONS = ROOT / "docs" / "operations.md"
REMOTE_MCP_SERVER_SPEC = {
    "description",
    "protocol",
    "url",
    "headersFrom",
    "timeout",
    "sseReadTimeout",
    "terminateOnClose",
    "allowedNamespaces",
    "tls",
}
REMOTE_MCP_SERVER_REQUIRED = {"description", "url"}
MCP_SERVER_TOOL = {"kind", "apiGroup", "name", "namespace", "toolNames", "requireApproval", "allowedHeaders"}
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def section() -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    start = text.index("## Agents: the MCP server and kagent")
    return text[start : text.index("\n## ", start + 1)]


def yaml_blocks() -> list[Any]:
    return [yaml.safe_load(body) for lang, body in _FENCE.findall(section()) if lang == "yaml"]


def served_tools() -> set[str]:
    async def names() -> set[str]:
        async with Client(build(History(HistoryClient("http://127.0.0.1:9")))) as client:
            return {t.name for t in (await client.list_tools()).tools}

    return run_async(names)


def test_the_remote_mcp_server_has_kagents_fields_and_the_served_endpoint() -> None:
    (server,) = [b for b in yaml_blocks() if isinstance(b, dict) and b.get("kind") == "RemoteMCPServer"]
    assert server["apiVersion"] == "kagent.dev/v1alpha2"
    spec = server["spec"]
    assert set(spec) <= REMOTE_MCP_SERVER_SPEC
    assert set(spec) >= REMOTE_MCP_SERVER_REQUIRED
    assert spec["protocol"] == "STREAMABLE_HTTP"
    assert re.fullmatch(r"\d+s", spec["timeout"])
    (header,) = spec["headersFrom"]  # ValueRef: name, and value or valueFrom {type, name, key}
    assert header["name"] == "Authorization"
    assert set(header["valueFrom"]) == {"type", "name", "key"}
    assert header["valueFrom"]["type"] in {"Secret", "ConfigMap"}
    (command,) = [
        line
        for lang, body in _FENCE.findall(section())
        if lang == "bash"
        for line in body.splitlines()
        if line.startswith("podwatch ")
    ]
    words = shlex.split(command)
    port = words[words.index("--port") + 1]
    assert words[words.index("--host") + 1] == "0.0.0.0"  # reachable from kagent's pods
    assert spec["url"].endswith(f":{port}/mcp")  # `--path` default


def test_the_agents_tool_entry_names_the_server_and_its_tools() -> None:
    (server,) = [b for b in yaml_blocks() if isinstance(b, dict) and b.get("kind") == "RemoteMCPServer"]
    (entry,) = [item for b in yaml_blocks() if isinstance(b, list) for item in b]
    assert entry["type"] == "McpServer"
    reference = entry["mcpServer"]
    assert set(reference) <= MCP_SERVER_TOOL
    assert (reference["apiGroup"], reference["kind"]) == ("kagent.dev", "RemoteMCPServer")
    assert reference["name"] == server["metadata"]["name"]
    assert set(reference["toolNames"]) == served_tools()


def test_the_hook_that_sends_an_agent_there_is_a_valid_hook() -> None:
    (hook,) = [b for b in yaml_blocks() if isinstance(b, dict) and b.get("kind") == "Hook"]
    parsed = parse_hook(hook)  # raises HookInvalid naming every problem
    (configuration,) = parsed.spec.eventConfigurations
    assert "podwatch://incidents/{{.IncidentId}}" in configuration.prompt
    assert "object_history" in configuration.prompt
