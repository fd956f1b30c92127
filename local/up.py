"""`make up` / `make down`: the local stack kept running on fixed loopback ports, for the operator CLI
and for trying things by hand (`make run` stays one-shot).

    python -m local.up start   # spawns `serve` in the background, returns once the stack is up
    python -m local.up serve   # the stack in the foreground, its functions polling, until SIGTERM
    python -m local.up stop    # SIGTERM to the `serve` process `start` spawned, waits for it

`serve` writes `<runs>/current/stack.json` (`runs`: .local-run) once the stack is up: the stack name,
region, moto endpoint and the template's outputs, the file the CLI reads when no `--stack` is given
(`podwatch status` in the repository root), plus the Restate and manager URLs and its own pid. It
removes the file when it stops. Ports: `LocalPorts` (README, "The local stack"); `--ports-from-zero`
takes free ones instead (tests, or a second stack beside the first).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from local.esm import DrainTimeout
from local.processes import ROOT, RUNS_DIR, ProcessError, install_sigterm_handler, new_run_dir
from local.run import page_link
from local.stack import LocalPorts, LocalStack

#: how long `start` waits for the stack file, and `stop` for the process to end
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


def stack_file(runs: Path) -> Path:
    return runs / "current" / "stack.json"


def describe(stack: LocalStack, history_api_url: str | None = None) -> dict[str, Any]:
    """What the CLI (and a person) needs to reach the running stack; the history API served on
    loopback stands in for the template's HistoryApiUrl output (moto has no API Gateway)."""
    provisioned, moto, restate, manager = stack.provisioned, stack.moto, stack.restate, stack.manager
    if provisioned is None or moto is None or restate is None or manager is None:
        raise ProcessError("the local stack is not started")
    return {
        "stack_name": provisioned.stack_name,
        "region": provisioned.region,
        "endpoint_url": moto.endpoint_url,
        "outputs": {
            **provisioned.outputs(),
            **({"HistoryApiUrl": history_api_url} if history_api_url else {}),
        },
        "restate_ingress_url": restate.ingress_url,
        "restate_admin_url": restate.admin_url,
        "manager_url": manager.uri,
        "run_dir": str(stack.run_dir),
        "pid": os.getpid(),
    }


def serve(runs: Path, ports: LocalPorts | None) -> int:
    """Run the stack until SIGTERM: its functions poll their queues as Lambda's would."""
    install_sigterm_handler()
    path = stack_file(runs)
    if path.exists():
        print(f"error: {path} exists: a stack is up (`make down` first)", file=sys.stderr)
        return 1
    stop = threading.Event()
    overrides = page_link(ports.history_api) if ports else None  # free ports: no link (port unknown)
    with LocalStack(run_dir=new_run_dir(runs), ports=ports, environment_overrides=overrides) as stack:
        history_api = stack.serve_history_api(port=ports.history_api if ports else 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(describe(stack, history_api.url), indent=2) + "\n", encoding="utf-8")
        try:
            while not stop.is_set():
                try:
                    stack.pump_until_idle(timeout=3600, until_idle=1.0)
                except DrainTimeout:
                    continue  # busy for an hour: keep polling
                stop.wait(0.5)
        finally:
            path.unlink(missing_ok=True)
    return 0


def start(runs: Path, extra: list[str]) -> int:
    """Spawn `serve` detached (its output in <runs>/up.log) and wait until it wrote the stack file."""
    path = stack_file(runs)
    if path.exists():
        print(f"a local stack is already up ({path}); `make down` stops it")
        return 0
    runs.mkdir(parents=True, exist_ok=True)
    with (runs / "up.log").open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "local.up", "--runs", str(runs), *extra, "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,  # outlives this command (and make)
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            print(f"error: the local stack did not come up; see {runs / 'up.log'}", file=sys.stderr)
            if child.poll() is None:
                child.terminate()
            return 1
        time.sleep(0.2)
    info = json.loads(path.read_text(encoding="utf-8"))
    print(
        f"local stack {info['stack_name']} up (pid {info['pid']}); `make down` stops it\n"
        f"  AWS (moto)      {info['endpoint_url']}\n"
        f"  Restate ingress {info['restate_ingress_url']}   admin {info['restate_admin_url']}\n"
        f"  manager         {info['manager_url']}\n"
        f"  history API     {info['outputs'].get('HistoryApiUrl')}   the timeline page: its `/`\n"
        f"  stack file      {path} (the CLI reads it: `podwatch status`)"
    )
    return 0


def stop(runs: Path) -> int:
    """SIGTERM to the `serve` process named in the stack file (the one `start` spawned), and wait."""
    path = stack_file(runs)
    if not path.exists():
        print("no local stack is up")
        return 0
    pid = int(json.loads(path.read_text(encoding="utf-8"))["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        path.unlink(missing_ok=True)  # it died without cleaning up
        print(f"the local stack (pid {pid}) was gone; removed {path}")
        return 0
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        print(f"error: pid {pid} did not stop within {STOP_TIMEOUT_S:.0f}s", file=sys.stderr)
        return 1
    print(f"local stack stopped (pid {pid})")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.up", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="where runs and current/ live")
    parser.add_argument("--ports-from-zero", action="store_true", help="free ports instead of the fixed ones")
    parser.add_argument("action", choices=["start", "serve", "stop"])
    args = parser.parse_args(argv)
    runs = args.runs.resolve()
    if args.action == "start":
        return start(runs, ["--ports-from-zero"] if args.ports_from_zero else [])
    if args.action == "stop":
        return stop(runs)
    try:
        return serve(runs, None if args.ports_from_zero else LocalPorts())
    except ProcessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
