"""`make up` / `make down`: the local stack stays up, and the README's CLI examples for it work
exactly as written (the `podwatch ...` lines of the README block that starts with `make up`), run
from a folder whose `.local-run/current/stack.json` the stack wrote, as the repository root's is.

The stack is brought up with `python -m local.up start` (what `make up` runs) on free ports rather
than the documented fixed ones, so a test run never collides with a stack someone keeps up; that the
documented ports are the ones `make up` uses is checked against `LocalPorts`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.processes import ROOT
from local.stack import LocalPorts

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"


def readme_local_block() -> list[str]:
    """The lines of the README's fenced block that starts with `make up`."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)
    (block,) = [b for b in blocks if b.lstrip().startswith("make up")]
    return [line.split(" #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def env() -> dict[str, str]:
    path = os.pathsep.join(str(ROOT / p) for p in ("layers/podwatch", "relay", "cli", "."))
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PODWATCH_"))}
    return {**keep, "PYTHONPATH": path}


def up(runs: Path, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.up", "--runs", str(runs), "--ports-from-zero", action],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def local_up(tmp_path: Path) -> Iterator[Path]:
    runs = tmp_path / ".local-run"
    started = up(runs, "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield tmp_path
    finally:
        stopped = up(runs, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def test_the_documented_ports_are_the_ones_make_up_uses() -> None:
    text = README.read_text(encoding="utf-8")
    ports = LocalPorts()
    for port in (ports.moto, ports.restate_ingress, ports.restate_admin, ports.restate_node, ports.manager):
        assert f"127.0.0.1:{port}" in text, port
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(PY) -m local.up start" in makefile
    assert "$(PY) -m local.up stop" in makefile
    assert readme_local_block()[0] == "make up"
    assert readme_local_block()[-1] == "make down"


def test_the_readme_cli_examples_work_against_the_stack_make_up_keeps(local_up: Path) -> None:
    # Given the stack up, and its stack file where the CLI looks for it
    stack_file = local_up / ".local-run/current/stack.json"
    info = json.loads(stack_file.read_text())
    assert info["stack_name"] == "podwatch-local"
    commands = [c for c in readme_local_block() if c.startswith("podwatch ")]
    assert len(commands) >= 3
    for command in commands:
        # When each README example runs as written (no --stack: the stack file says where)
        done = subprocess.run(
            [sys.executable, "-m", "podwatch_cli", *shlex.split(command)[1:]],
            cwd=local_up,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        # Then it works, against the running stack
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    status = subprocess.run(
        [sys.executable, "-m", "podwatch_cli", "status", "--json"],
        cwd=local_up,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(status.stdout)
    assert (report["stack"], report["resolved_from"]) == ("podwatch-local", "stack-file")
    assert {q["queue"] for q in report["queues"]} >= {"pod-events", "deliveries", "fanout"}
