"""boto3 clients with explicit timeouts. Created by handlers on their first invocation (never at
import: moto's `mock_aws` must start first); `AWS_ENDPOINT_URL` (local stack) is honoured by boto3."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

#: connect / read timeouts (seconds) and standard-mode retries (throttling, 5xx) for every AWS call.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
MAX_ATTEMPTS = 3


def client(
    service: str, *, connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT
) -> Any:
    return boto3.client(
        service,
        config=Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        ),
    )
