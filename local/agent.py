"""The reference agent: a real A2A server (a2a-sdk, JSON-RPC, wire 1.0 and 0.3 on one endpoint)
at kagent's paths `/api/a2a/{namespace}/{agent}/`, recording every message it accepts.

    hypercorn local.agent:app        (AgentServer below starts it for `make run` and the tests)

Control endpoints for tests and the local report (not part of A2A):
    GET  /_control/received   {"messages": [{path, namespace, agent, message_id, text, a2a_version,
                                             authorization}, ...]} in arrival order
    POST /_control/fault      {"status": 503, "times": 2}: the next `times` A2A posts answer `status`
    POST /_control/reset      forget messages and faults
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
from a2a.helpers.proto_helpers import get_message_text, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandlerV2
from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import a2a_pb2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.processes import ROOT, ManagedProcess, ProcessError, ServerProcess, free_port, port_open
from local.restate import PYTHONPATH

A2A_PATH = "/api/a2a/{namespace}/{agent}/"


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.fault_status = 0
        self.fault_times = 0

    def take_fault(self) -> int:
        with self.lock:
            if self.fault_times <= 0:
                return 0
            self.fault_times -= 1
            return self.fault_status


RECORDER = _Recorder()


class _PathContextBuilder(DefaultServerCallContextBuilder):
    """The default context, plus the agent the path names (kagent serves many agents on one port)."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["path_params"] = dict(request.path_params)
        context.state["path"] = request.url.path
        return context


class RecordingExecutor(AgentExecutor):
    """Records the message and answers with one text message (an agent that acknowledges)."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        state = context.call_context.state
        headers = state.get("headers", {})
        params = state.get("path_params", {})
        with RECORDER.lock:
            RECORDER.messages.append(
                {
                    "path": state.get("path"),
                    "namespace": params.get("namespace"),
                    "agent": params.get("agent"),
                    "message_id": message.message_id if message else None,
                    "text": get_message_text(message) if message else "",
                    "a2a_version": headers.get("a2a-version"),
                    "authorization": headers.get("authorization"),
                }
            )
        await event_queue.enqueue_event(new_text_message("acknowledged", context_id=context.context_id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


def _card() -> a2a_pb2.AgentCard:
    return a2a_pb2.AgentCard(
        name="podwatch-reference-agent",
        description="Records the hook messages it receives (podwatch's local stack and tests).",
        version="1.0.0",
        supported_interfaces=[
            a2a_pb2.AgentInterface(url="/api/a2a/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=a2a_pb2.AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            a2a_pb2.AgentSkill(
                id="record", name="record", description="records a hook's prompt", tags=["podwatch"]
            )
        ],
    )


async def _received(request: Request) -> Response:
    with RECORDER.lock:
        return JSONResponse({"messages": list(RECORDER.messages)})


async def _fault(request: Request) -> Response:
    body = await request.json()
    with RECORDER.lock:
        RECORDER.fault_status = int(body.get("status", 503))
        RECORDER.fault_times = int(body.get("times", 1))
    return JSONResponse({"ok": True})


async def _reset(request: Request) -> Response:
    with RECORDER.lock:
        RECORDER.messages.clear()
        RECORDER.fault_times = 0
    return JSONResponse({"ok": True})


def build_app() -> Starlette:
    handler = DefaultRequestHandlerV2(
        agent_executor=RecordingExecutor(), task_store=InMemoryTaskStore(), agent_card=_card()
    )
    routes = create_jsonrpc_routes(
        handler, A2A_PATH, context_builder=_PathContextBuilder(), enable_v0_3_compat=True
    )
    return Starlette(
        routes=[
            Route("/_control/received", _received, methods=["GET"]),
            Route("/_control/fault", _fault, methods=["POST"]),
            Route("/_control/reset", _reset, methods=["POST"]),
            *routes,
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=_faults)],
    )


async def _faults(request: Request, call_next: Any) -> Response:
    """An injected fault answers an A2A post before the SDK sees it (agent down, agent refusing)."""
    if request.url.path.startswith("/api/a2a/"):
        status = RECORDER.take_fault()
        if status:
            return JSONResponse({"error": f"injected fault {status}"}, status_code=status)
    response: Response = await call_next(request)
    return response


app = build_app()


class AgentServer(ServerProcess):
    """The reference agent served by hypercorn in one process, on a free loopback port."""

    name = "agent"

    def __init__(self, log_dir: Path, *, start_timeout: float = 30.0) -> None:
        super().__init__(log_dir, start_timeout=start_timeout)
        self.port = 0

    @property
    def base_url(self) -> str:
        if not self.port:
            raise ProcessError("the agent is not started")
        return f"http://127.0.0.1:{self.port}"

    def received(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = httpx.get(f"{self.base_url}/_control/received", timeout=5).json()[
            "messages"
        ]
        return messages

    def fault(self, status: int, times: int) -> None:
        httpx.post(f"{self.base_url}/_control/fault", json={"status": status, "times": times}, timeout=5)

    def reset(self) -> None:
        httpx.post(f"{self.base_url}/_control/reset", timeout=5)

    def _spawn(self) -> ManagedProcess:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": PYTHONPATH, "PYTHONUNBUFFERED": "1"}
        return ManagedProcess(
            "agent",
            [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{self.port}", "--workers", "0",
             "--graceful-timeout", "1", "local.agent:app"],
            log_path=self.log_dir / "agent.log",
            env=env,
            cwd=ROOT,
            stop_signal=signal.SIGINT,
        ).start()  # fmt: skip

    def _ready(self, proc: ManagedProcess) -> None:
        proc.wait_healthy(port_open(self.port), timeout=self.start_timeout, what="listening")
