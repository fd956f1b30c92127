"""The real Restate server (npm `@restatedev/restate-server`) and the reference manager served by
hypercorn, both as child processes on free loopback ports, plus the admin-API registration.

    with RestateServer(log_dir) as restate, ManagerServer(log_dir) as manager:
        restate.register(manager.uri)
        httpx.post(f"{restate.ingress_url}/PodwatchManager/c1/GetDelivered")
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from local.processes import ROOT, ManagedProcess, ProcessError, ServerProcess, free_port, http_ok, port_open

#: Where `npm install` (package.json) puts the server.
NODE_MODULES = ROOT / "node_modules"
#: PYTHONPATH of the manager process (the same as the Makefile's and pytest's).
PYTHONPATH = os.pathsep.join(str(ROOT / p) for p in ("layers/podwatch", "relay", "cli", "."))


def restate_server_binary(node_modules: Path = NODE_MODULES) -> list[str]:
    """argv[0:] of the Restate server: the native binary of the platform package when present (one
    process, so signals and parent-death reach it directly), else the npm launcher script."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    native = node_modules / "@restatedev" / f"restate-server-{sys.platform}-{arch}" / "bin" / "restate-server"
    if native.is_file() and os.access(native, os.X_OK):
        return [str(native)]
    launcher = node_modules / ".bin" / "restate-server"
    if launcher.exists():
        return [str(launcher)]
    found = shutil.which("restate-server")
    if found:
        return [found]
    raise ProcessError(
        f"the Restate server is not installed: run `npm install --no-audit --no-fund` in {ROOT} "
        "(package.json pins @restatedev/restate-server)"
    )


class RestateServer(ServerProcess):
    """The Restate server with its data in a fresh dir under `log_dir` (removed on stop) and three
    loopback ports."""

    name = "restate"

    def __init__(
        self, log_dir: Path, *, start_timeout: float = 30.0, ports: tuple[int, int, int] | None = None
    ) -> None:
        """`ports`: fixed (ingress, admin, node) ports (`make up`); None: free ones."""
        super().__init__(log_dir, start_timeout=start_timeout)
        self.fixed_ports = ports
        self.ingress_port = 0
        self.admin_port = 0
        self.node_port = 0
        self._data_dir: Path | None = None
        self._keep_data = False

    @property
    def ingress_url(self) -> str:
        self._require_started()
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        self._require_started()
        return f"http://127.0.0.1:{self.admin_port}"

    def _require_started(self) -> None:
        if not self.ingress_port:
            raise ProcessError("the Restate server is not started")

    def _env(self, data_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
        env.update(
            {
                "RESTATE_BASE_DIR": str(data_dir),
                "RESTATE_NODE_NAME": "podwatch-local",
                "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{self.ingress_port}",
                "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{self.admin_port}",
                "RESTATE_BIND_ADDRESS": f"127.0.0.1:{self.node_port}",
                "RESTATE_ADVERTISED_ADDRESS": f"http://127.0.0.1:{self.node_port}/",
                "RESTATE_LISTEN_MODE": "tcp",
                "RESTATE_DISABLE_TELEMETRY": "true",
                "RESTATE_DEFAULT_NUM_PARTITIONS": "4",
                "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "256MiB",
                "RESTATE_LOG_FORMAT": "compact",
                "RESTATE_LOG_FILTER": "warn,restate=info",
            }
        )
        return env

    def _spawn(self) -> ManagedProcess:
        if not (self.ingress_port and self._data_dir is not None):  # else: a restart, same ports and data
            self.ingress_port, self.admin_port, self.node_port = self.fixed_ports or (
                free_port(),
                free_port(),
                free_port(),
            )
            # Under the run's log dir: if this process is killed outright, the leftover is in the
            # gitignored .local-run/ (`make clean`), not in /tmp.
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._data_dir = Path(tempfile.mkdtemp(prefix="restate-data-", dir=self.log_dir))
        return ManagedProcess(
            "restate",
            [*restate_server_binary(), "--no-logo"],
            log_path=self.log_dir / "restate.log",
            env=self._env(self._data_dir),
        ).start()

    def _ready(self, proc: ManagedProcess) -> None:
        proc.wait_healthy(
            http_ok(f"{self.admin_url}/health"), timeout=self.start_timeout, what="GET admin /health"
        )
        proc.wait_healthy(port_open(self.ingress_port), timeout=self.start_timeout, what="ingress listening")

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the server. `keep_data=True`: keep its ports and data dir, so a later `start()` is a
        restart of the same node (registered deployments, object state and idempotency records
        survive, and clients keep their ingress URL), as a restarted Restate in production is."""
        self._keep_data = keep_data
        try:
            super().stop()
        finally:
            self._keep_data = False

    def _discard(self) -> None:
        if self._keep_data:
            return
        self.ingress_port = self.admin_port = self.node_port = 0
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def register(self, uri: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Register a deployment (POST admin/deployments; `force`: re-registering the same uri with
        changed handlers is allowed locally). Returns the admin API's answer."""
        response = httpx.post(
            f"{self.admin_url}/deployments", json={"uri": uri, "force": True}, timeout=timeout
        )
        if not response.is_success:
            raise ProcessError(f"registering {uri} failed: HTTP {response.status_code} {response.text}")
        answer: dict[str, Any] = response.json()
        return answer

    def wait_ingress_ready(self, service: str, *, timeout: float = 10.0) -> None:
        """Wait until the admin API lists `service` (registration propagates asynchronously)."""
        proc = self._proc
        if proc is None:
            raise ProcessError("the Restate server is not started")

        def check() -> bool:
            try:
                return httpx.get(f"{self.admin_url}/services/{service}", timeout=2).is_success
            except httpx.HTTPError:
                return False

        proc.wait_healthy(check, timeout=timeout, what=f"service {service} registered")


class ManagerServer(ServerProcess):
    """The reference manager (`local.manager:app`) served by hypercorn (HTTP/2 cleartext) in one
    process (`--workers 0`), cwd = the repository, PYTHONPATH = layers/podwatch:relay:."""

    name = "manager"

    def __init__(
        self, log_dir: Path, *, app: str = "local.manager:app", start_timeout: float = 30.0, port: int = 0
    ) -> None:
        """`port`: a fixed one (`make up`); 0: a free one."""
        super().__init__(log_dir, start_timeout=start_timeout)
        self.app = app
        self.fixed_port = port
        self.port = 0

    @property
    def uri(self) -> str:
        if not self.port:
            raise ProcessError("the manager is not started")
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> ManagedProcess:
        self.port = self.fixed_port or free_port()
        env = {**os.environ, "PYTHONPATH": PYTHONPATH, "PYTHONUNBUFFERED": "1"}
        return ManagedProcess(
            "manager",
            [
                sys.executable, "-m", "hypercorn",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", "0",
                "--graceful-timeout", "1",
                self.app,
            ],
            log_path=self.log_dir / "manager.log",
            env=env,
            cwd=ROOT,
            stop_signal=signal.SIGINT,  # hypercorn's single-process mode stops promptly on SIGINT
        ).start()  # fmt: skip

    def _ready(self, proc: ManagedProcess) -> None:
        proc.wait_healthy(port_open(self.port), timeout=self.start_timeout, what="listening")

    def _discard(self) -> None:
        self.port = 0
