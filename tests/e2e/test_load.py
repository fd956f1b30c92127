"""A load scenario through `make run` (CI size: 2,000 lines, 200 pods, a 20-replica crash loop, OOMKilled,
image-pull, evicted, healthy churn; the 20,000-line run is `python -m bench e2e`): every troubled
pod reaches the manager once, no healthy pod does, nothing twice, nothing in a DLQ; the run shows
its progress while it replays and drains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.e2e import account, make_load
from local.processes import ROOT

pytestmark = pytest.mark.e2e


def test_a_2000_line_load_through_make_run_accounts_for_every_troubled_pod_once(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/podwatch", "relay", "cli", ".")),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    replay, summary_path = tmp_path / "load.jsonl", tmp_path / "summary.json"
    # the generator as events/replay/README.md says to run it
    generate = [
        sys.executable, "events/replay/make_load.py", str(replay),
        "--pods", "200", "--lines", "2000", "--crash-replicas", "20",
    ]  # fmt: skip
    subprocess.run(generate, cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    load = make_load()
    trouble = load.expected(load.Scenario(pods=200, lines=2000, crash_replicas=20))
    assert len(trouble) == 50

    proc = subprocess.run(
        [
            sys.executable, "-m", "local.run",
            "--replay", str(replay),
            "--summary", str(summary_path),
            "--max-batching-window", "0.5",
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    summary = json.loads(summary_path.read_text())
    assert summary["input_events"] == 2000
    outcome = account(summary["delivered"], trouble, len(summary["dlq"]))
    assert outcome == {
        "troubled_pods": 50,
        "troubled_pods_notified": 50,
        "healthy_pods_notified": 0,
        "duplicate_notification_ids": 0,
        "repeated_pod_and_type": 0,
        "notifications": 50,
        "dlq_messages": 0,
    }
    assert "2,000 lines in" in proc.stdout  # progress while replaying
    assert "replayed in" in proc.stdout
