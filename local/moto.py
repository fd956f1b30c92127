"""moto in server mode (`moto_server`) on a free loopback port: SQS, DynamoDB, SSM, CloudWatch for
the local stack, reached by boto3 through `AWS_ENDPOINT_URL`, exactly as deployed code reaches AWS.
Started as `python -m local.moto_server`: moto's server with its SQS cost per call made independent
of the queue's length (see that module), so a big replay does not crawl.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import httpx

from local.processes import ROOT, ManagedProcess, ProcessError, ServerProcess, free_port, http_ok

#: Credentials and region moto accepts; never real ones.
DUMMY_AWS_ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class MotoServer(ServerProcess):
    """`python -m local.moto_server -H 127.0.0.1 -p <port>` (moto's server, SQS patched); `endpoint_url`
    once started."""

    name = "moto"

    def __init__(
        self, log_dir: Path, *, region: str = "us-east-1", start_timeout: float = 30.0, port: int = 0
    ) -> None:
        """`port`: a fixed one (`make up`); 0: a free one."""
        super().__init__(log_dir, start_timeout=start_timeout)
        self.region = region
        self.fixed_port = port
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        if not self.port:
            raise ProcessError("moto server is not started")
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> ManagedProcess:
        self.port = self.fixed_port or free_port()
        return ManagedProcess(
            "moto",
            [sys.executable, "-m", "local.moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
            log_path=self.log_dir / "moto.log",
            env={**os.environ, "PYTHONPATH": str(ROOT)},  # for local.moto_server
            cwd=ROOT,
        ).start()

    def _ready(self, proc: ManagedProcess) -> None:
        proc.wait_healthy(
            http_ok(f"{self.endpoint_url}/moto-api/"), timeout=self.start_timeout, what="GET /moto-api/"
        )

    def _discard(self) -> None:
        self.port = 0

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=5).raise_for_status()

    def client(self, service: str) -> Any:
        """A boto3 client for `service` pointed at this server, with dummy credentials."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_AWS_ENV["AWS_SESSION_TOKEN"],
        )

    def env(self) -> dict[str, str]:
        """Environment that points boto3 (in a function or a child process) at this server."""
        return {
            **DUMMY_AWS_ENV,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }
