"""Issue 14 (relay): watchers that never die. Bad bytes on a live watch, a bug while handling one
line and a bug in the watch loop, each through the real `kubernetes` client over HTTP against the
fake API server (tests/fakeapi), into SQS (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from podwatch_relay import pipeline
from podwatch_relay.ops import RESTARTS_UNHEALTHY, Health, RelayCollector
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.pods import pod
from tests.integration.relay_harness import Harness, crash, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _invalid_utf8_pod(rv: str = "5000") -> bytes:
    """A MODIFIED line of a pod whose name holds bytes that are not UTF-8, in the API server's layout."""
    line = orjson.dumps({"type": "MODIFIED", "object": pod("shop", "bad-NAME", rv=rv)})
    return line.replace(b"bad-NAME", b"bad-\xff\xfe")


def test_invalid_utf8_in_a_pod_name_is_counted_and_later_changes_still_go_out(
    fake: FakeKubeApi, harness: Harness
) -> None:
    # Given a watched pod, forwarded at start
    fake.put(pod("shop", "api-1"))
    harness.start()
    wait_for(lambda: harness.pods("api-1"), what="initial list")
    wait_for(lambda: fake.open_watches == 2, what="both watches open")

    # When a pod line whose name is not UTF-8 arrives on the live pods stream, then a real change
    fake.inject_raw("Pod", _invalid_utf8_pod())
    fake.update("Pod", "shop", "api-1", lambda o: crash(o, 1))

    # Then the change still arrives on the same stream, and the bad line is counted with its reason
    wait_for(lambda: [e for e in harness.pods("api-1") if e.payload.restart_count == 1], what="change")
    assert "malformed:invalid-utf8" in harness.outcomes["pods"]
    assert harness.relay.stats.outcomes["malformed:invalid-utf8"] == 1
    assert harness.watchers["pods"].stats.streams == 1  # the same stream: no reconnect, no restart
    assert harness.watchers["pods"].stats.restarts == 0
    assert all(t.is_alive() for t in harness.threads)


def test_a_bug_while_handling_one_line_costs_that_line_only(
    fake: FakeKubeApi, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a watched pod, and a projection that fails (a bug) for one pod only
    fake.put(pod("shop", "api-1"))
    real = pipeline.typed_pod_payload

    def buggy(meta: Any, *args: Any, **kwargs: Any) -> Any:
        if meta.name == "cursed-1":
            raise KeyError("a bug")
        return real(meta, *args, **kwargs)

    monkeypatch.setattr(pipeline, "typed_pod_payload", buggy)
    harness.start()
    wait_for(lambda: harness.pods("api-1"), what="initial list")

    # When the cursed pod appears, then the first pod changes
    fake.put(pod("shop", "cursed-1"))
    fake.update("Pod", "shop", "api-1", lambda o: crash(o, 1))

    # Then the change is forwarded; the cursed line is `malformed:unexpected`, by error type
    wait_for(lambda: [e for e in harness.pods("api-1") if e.payload.restart_count == 1], what="change")
    assert "malformed:unexpected" in harness.outcomes["pods"]
    assert harness.relay.stats.unexpected_errors == {"KeyError": 1}
    assert harness.watchers["pods"].stats.restarts == 0


def test_a_bug_in_the_watch_loop_restarts_that_watch_visibly(
    fake: FakeKubeApi, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a watched pod, and a pods watcher whose stream handling fails (a bug) a few times
    fake.put(pod("shop", "api-1"))
    watcher = harness.watchers["pods"]
    real = watcher._feed_line
    failures = {"left": RESTARTS_UNHEALTHY}

    def buggy(line: bytes) -> Any:
        if failures["left"] and watcher.stats.lists:
            failures["left"] -= 1
            raise RuntimeError("a bug in the loop")
        return real(line)

    monkeypatch.setattr(watcher, "_feed_line", buggy)
    registry = CollectorRegistry()
    registry.register(RelayCollector(relay=harness.relay, watchers=lambda: list(harness.watchers.values())))
    health = Health(watchers=lambda: list(harness.watchers.values()), stall_seconds=60)
    harness.start()
    wait_for(lambda: harness.pods("api-1"), what="initial list")

    # When the pod changes while the loop fails on every line (bookmarks included)
    fake.update("Pod", "shop", "api-1", lambda o: crash(o, 1))

    # Then the watch restarts with a relist each time, /healthz says so, and is 503 once it
    # failed RESTARTS_UNHEALTHY times in a row
    unhealthy = wait_for(lambda: not health.healthz()[0] and health.healthz()[1], what="failing")
    assert unhealthy["failing"] == ["pods@*"]
    assert unhealthy["restarted"]["pods@*"]["last_error"] == "RuntimeError: a bug in the loop"
    assert unhealthy["stalled"] == {}

    # And once the bug stops, the relist found the change and forwarded it; the thread never died
    wait_for(lambda: [e for e in harness.pods("api-1") if e.payload.restart_count == 1], what="change")
    wait_for(lambda: health.healthz()[0], what="healthy again after a line handled well")
    assert watcher.stats.restarts == RESTARTS_UNHEALTHY
    assert len(fake.list_requests("pods")) == 1 + RESTARTS_UNHEALTHY
    assert all(t.is_alive() for t in harness.threads)
    metrics = generate_latest(registry).decode()
    assert f'podwatch_relay_watch_restarts_total{{scope="pods@*"}} {float(RESTARTS_UNHEALTHY)}' in metrics


def test_replay_counts_bad_bytes_and_does_not_exit_1(tmp_path: Path) -> None:
    # Given a recording with a pod line whose name is not UTF-8 between two good lines
    good = pod("shop", "api-1", rv="1")
    changed = pod("shop", "api-1", rv="3")
    crash(changed, 1)
    recording = tmp_path / "recording.jsonl"
    recording.write_bytes(
        orjson.dumps({"type": "ADDED", "object": good})
        + b"\n"
        + _invalid_utf8_pod("2")
        + b"\n"
        + orjson.dumps({"type": "MODIFIED", "object": changed})
        + b"\n"
    )

    # When it is replayed as the README says
    out = tmp_path / "envelopes.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "podwatch_relay", "replay", str(recording), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": "layers/podwatch:relay:."},
    )

    # Then it exits 0, with the bad line counted and both good lines forwarded
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["outcomes"]["malformed:invalid-utf8"] == 1
    names = [json.loads(line)["payload"].get("name") for line in out.read_text().splitlines()]
    assert names.count("api-1") == 2
