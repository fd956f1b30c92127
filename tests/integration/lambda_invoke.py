"""Invoke one handler the way the Lambda python runtime does, inside a clean environment (test_deployed):
`python -P lambda_invoke.py FUNCTION_DIR EVENT_JSON RESPONSE_JSON`. The layer comes from PYTHONPATH
(as /opt/python), the function's folder is first on sys.path (as /var/task); nothing else from the
repository. Standard library only: this file must not import what the clean environment lacks."""

from __future__ import annotations

import importlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any


class Context:
    """The attributes Powertools reads from the runtime's context object."""

    function_name = "podwatch-deployed"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:podwatch-deployed"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/podwatch-deployed"
    log_stream_name = "deployed"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + 30

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv: list[str]) -> int:
    function_dir, event_path, response_path = argv[1:4]
    sys.path.insert(0, function_dir)
    app: Any = importlib.import_module("app")
    event = json.loads(Path(event_path).read_text())
    response = app.lambda_handler(event, Context())
    Path(response_path).write_text(json.dumps(response))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
