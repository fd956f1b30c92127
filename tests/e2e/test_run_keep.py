"""`make run KEEP=1` (`python -m local.run --keep`): after the report the stack stays up with the
timeline page on loopback, at the URL it printed, the notifications link to it (`history_url`), and
SIGTERM (or Ctrl-C) stops everything it started."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from local.processes import ROOT, ManagedProcess

pytestmark = pytest.mark.e2e

NAMESPACE, POD = "payments", "payments-api-84c6d9f7b8-tq5vn"


def env() -> dict[str, str]:
    path = os.pathsep.join(str(ROOT / p) for p in ("layers/podwatch", "relay", "cli", "."))
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PODWATCH_"))}
    return {**keep, "PYTHONPATH": path}


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_keep_serves_the_page_it_prints_until_stopped(tmp_path: Path) -> None:
    log, summary = tmp_path / "run.log", tmp_path / "summary.json"
    argv = [sys.executable, "-m", "local.run", "--keep", "--quiet", "--summary", str(summary)]
    process = ManagedProcess("make-run-keep", argv, log_path=log, env=env(), cwd=ROOT, stop_timeout=60)
    process.start()
    try:
        process.wait_healthy(lambda: "Ctrl-C stops it" in log.read_text(), timeout=240, what="its report")
        printed = re.search(r"open (http://127\.0\.0\.1:\d+/\S*)", log.read_text())
        assert printed is not None
        page_url = printed.group(1)
        base = page_url.partition("#")[0].rstrip("/")
        assert f"ns={NAMESPACE}" in page_url
        assert f"pod={POD}" in page_url
        # the page, and its data, answer at the printed URL while the stack stays up
        page = httpx.get(f"{base}/", timeout=30)
        assert page.status_code == 200
        assert '<script src="ui/app.js" defer>' in page.text
        view = httpx.get(f"{base}/api/v1/events/{NAMESPACE}/pod/{POD}", timeout=30).json()
        assert len(view["relatedEvents"]) == 5
        # the notifications the manager received link to their pod's view on this page
        delivered = json.loads(summary.read_text())["delivered"]
        crash = next(n for n in delivered if n["pod"] == POD)
        assert crash["history_url"].startswith(f"{base}/#c=local&ns={NAMESPACE}&w=range&from=")
        assert crash["history_url"].endswith(f"&pod={POD}")
    finally:
        process.stop()
    # SIGTERM stopped it, and the page with it
    assert process.poll() is not None
    port = urlsplit(base).port
    assert port is not None
    assert not listening(port)
