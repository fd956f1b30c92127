"""What the Lambda runtime does for our handlers, for the local stack and the tests: load a
function's `app.py` by path (every function's module is called `app`, so they must not share
`sys.modules["app"]`), a LambdaContext, and SQS event source events shaped as Lambda sends them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"

Handler = Callable[[dict[str, Any], Any], Any]


def load_function_module(name: str, *, fresh: bool = False) -> ModuleType:
    """Import functions/<name>/app.py as module `podwatch_fn_<name>` (cached unless `fresh`)."""
    module_name = f"podwatch_fn_{name.replace('-', '_')}"
    if not fresh and module_name in sys.modules:
        return sys.modules[module_name]
    path = FUNCTIONS_DIR / name / "app.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_handler(name: str, handler: str = "lambda_handler") -> Handler:
    fn: Handler = getattr(load_function_module(name), handler)
    return fn


@dataclass
class LambdaContext:
    """The attributes Powertools reads from the real context."""

    function_name: str = "podwatch-local"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:podwatch-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/podwatch-local"
    log_stream_name: str = "local"
    timeout_ms: int = 30_000
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.timeout_ms - int((time.monotonic() - self._started) * 1000))


def sqs_record(
    body: str,
    *,
    queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:podwatch-local-pod-events",
    message_id: str | None = None,
    receipt_handle: str | None = None,
    receive_count: int = 1,
    attributes: Mapping[str, str] | None = None,
    message_attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One record of an SQS event source event, as Lambda delivers it."""
    now_ms = str(int(time.time() * 1000))
    region = queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "us-east-1"
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": receipt_handle or uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": now_ms,
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": now_ms,
            **(attributes or {}),
        },
        "messageAttributes": dict(message_attributes or {}),
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sqs_event(bodies: Sequence[str], **kwargs: Any) -> dict[str, Any]:
    return {"Records": [sqs_record(b, **kwargs) for b in bodies]}


def load_event(path: str | Path) -> dict[str, Any]:
    """A sample event from events/ (relative to the repo root or absolute)."""
    p = Path(path)
    if not p.is_absolute():
        p = ROOT / p
    data: dict[str, Any] = json.loads(p.read_text())
    return data
