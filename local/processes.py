"""Child processes of the local stack: free loopback ports, a log file per process, health waits
with deadlines, and a shutdown that always happens (context manager, atexit, and the kernel's
parent-death signal if this Python process is killed outright).

Every child runs in its own session (process group): Ctrl-C in a terminal reaches only this
Python process, which then stops the children in order; stopping a child signals its whole group.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Self

import httpx

from podwatch_cli.lifecycle import StartStop

ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = ROOT / ".local-run"

_PR_SET_PDEATHSIG = 1


class ProcessError(RuntimeError):
    """A child process could not be started or did not become healthy in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def new_run_dir(base: Path = RUNS_DIR) -> Path:
    """`.local-run/<UTC timestamp>/` (gitignored): logs of one run of the stack."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = base / stamp
    path.mkdir(parents=True, exist_ok=False)
    return path


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


# Resolved in the parent: between fork and exec the child only makes this one call.
_PRCTL = _load_prctl()


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A preexec_fn (Linux): send `sig` to the child when the thread that started it dies, even by
    SIGKILL."""

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, sig)

    return preexec


_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def stop_all() -> None:
    """Stop every child still running (atexit; also safe to call by hand)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        proc.stop()


class ManagedProcess(StartStop):
    """One child process: started in its own process group, output to `log_path`, stopped with
    `stop_signal` (SIGTERM) to the group, then SIGKILL after `stop_timeout` seconds."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_timeout: float = 5.0,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.stop_signal = stop_signal
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> Self:
        if self._popen is not None:
            raise ProcessError(f"{self.name} is already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"$ {' '.join(self.argv)}\n".encode())
        self._log.flush()
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent(int(self.stop_signal)),  # one prctl call, resolved beforehand
            )
        except OSError as exc:
            self._log.close()
            raise ProcessError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from exc
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    def poll(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self._popen.poll() if self._popen is not None else None

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, check: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Call `check` until it returns True; fail early if the process exits, or at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None:
                raise ProcessError(
                    f"{self.name} exited with code {code} before {what}; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            if check():
                return
            if time.monotonic() >= deadline:
                raise ProcessError(
                    f"{self.name} did not become ready ({what}) within {timeout:.0f}s; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is None:
            self._signal_group(self.stop_signal)
            try:
                popen.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                popen.wait(timeout=self.stop_timeout)
        # Leftovers of the group (workers a child forked) go too.
        self._signal_group(signal.SIGKILL)
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._popen is None:
            return
        # The child leads its own session, so its pgid is its pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid})"


def http_ok(url: str, *, timeout: float = 1.0) -> Callable[[], bool]:
    """A health check: GET `url` answers 2xx."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=timeout).is_success
        except httpx.HTTPError:
            return False

    return check


def port_open(port: int, host: str = "127.0.0.1") -> Callable[[], bool]:
    """A health check: something accepts TCP connections on host:port."""

    def check() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((host, port)) == 0

    return check


def install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit in the main thread, so `with` blocks and atexit run (make run)."""

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)


class ServerProcess(StartStop):
    """A server child process with a readiness check. `start()` = `spawn()` + `wait_ready()`;
    several servers can be spawned first and waited for afterwards, so they boot side by side
    (spawning stays in the caller's thread: the parent-death signal follows the spawning thread).
    A server that fails to get ready (say, its free port was taken meanwhile) is retried with new
    ports, up to `attempts` times in all."""

    name = "server"

    def __init__(self, log_dir: Path, *, start_timeout: float = 30.0) -> None:
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self._proc: ManagedProcess | None = None

    # subclasses ---------------------------------------------------------------
    def _spawn(self) -> ManagedProcess:
        """Pick ports, start the process (ManagedProcess.start) and return it."""
        raise NotImplementedError

    def _ready(self, proc: ManagedProcess) -> None:
        """Return once the process serves; raise ProcessError (via wait_healthy) otherwise."""
        raise NotImplementedError

    def _discard(self) -> None:
        """Forget per-attempt state (ports, data dirs) after a stop."""

    # ---------------------------------------------------------------------------
    @property
    def process(self) -> ManagedProcess | None:
        return self._proc

    def spawn(self) -> Self:
        if self._proc is not None:
            raise ProcessError(f"{self.name} is already started")
        self._proc = self._spawn()
        return self

    def wait_ready(self, *, attempts: int = 3) -> Self:
        last: ProcessError | None = None
        for attempt in range(attempts):
            if self._proc is None:
                self._proc = self._spawn()
            try:
                self._ready(self._proc)
            except ProcessError as exc:
                last = exc
                self.stop()
                if attempt + 1 < attempts:
                    continue
                break
            return self
        raise ProcessError(f"{self.name} did not start after {attempts} attempts: {last}") from last

    def start(self, *, attempts: int = 3) -> Self:
        if self._proc is None:
            self.spawn()
        return self.wait_ready(attempts=attempts)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
        self._discard()
