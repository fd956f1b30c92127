"""End to end through the real local parts: the relay's code → SQS (moto server) → processor →
SQS → deliver → Restate server → reference manager; bad input quarantined; `make run`'s summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from local.lambda_runtime import load_event
from local.processes import ROOT
from local.stack import LocalStack, ReplayResult

pytestmark = pytest.mark.e2e

SAMPLE = "events/replay/sample-stream.jsonl"
BAD_INPUT = "events/replay/bad-input.jsonl"

#: events/replay/README.md: the troubled pods of the sample, each delivered once.
EXPECTED_SAMPLE = {
    ("payments", "payments-api-84c6d9f7b8-tq5vn", "crash-loop", "api"),
    ("reports", "report-worker-59f6c7d8b9-h7c2d", "oom-kill", "worker"),
    ("reports", "batch-exporter-6d5f4c8b7a-r8t4m", "evicted", None),
    ("shop", "checkout-web-7fb9c6d4e2-j3n6s", "image-pull", "web"),
}
HEALTHY_PODS = {"api-7d9f8b6c5d-x2x7q", "worker-6b7c9d8f5a-p9w2r", "web-5c8d7f9b44-m4k8z"}
CANARY = "pw-canary"


def identity(n: dict[str, Any]) -> tuple[str, str, str, str | None]:
    container = n.get("container") if n["event_type"] != "evicted" else None
    return (n["namespace"], n["pod"], n["event_type"], container)


@pytest.fixture(scope="module")
def sample_cluster() -> str:
    return f"e2e-sample-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def first_replay(local_stack: LocalStack, sample_cluster: str) -> ReplayResult:
    result = local_stack.replay(SAMPLE, cluster_id=sample_cluster, recorded_time=True)
    local_stack.pump_until_idle(timeout=60)
    return result


def test_sample_stream_delivers_exactly_the_troubled_pods_once(
    local_stack: LocalStack, sample_cluster: str, first_replay: ReplayResult
) -> None:
    delivered = local_stack.delivered(sample_cluster)

    assert {identity(n) for n in delivered} == EXPECTED_SAMPLE
    assert len(delivered) == len(EXPECTED_SAMPLE)  # once each
    assert len({n["notification_id"] for n in delivered}) == len(delivered)
    assert not {n["pod"] for n in delivered} & HEALTHY_PODS
    assert all(n["cluster_id"] == sample_cluster for n in delivered)

    # the relay's part: every line accounted for, nothing secret ever left it
    stats = first_replay.stats
    assert stats.input_events == (
        stats.forwarded + stats.suppressed + stats.bookmarks + stats.skipped + stats.malformed + stats.errors
    )
    assert stats.malformed == 2
    assert stats.skipped == 2
    assert first_replay.bodies
    assert not [b for b in first_replay.bodies if CANARY in b]

    # the processor's part: one decision per forwarded envelope at least, 4 notifications forwarded
    mine = [a for a in local_stack.audit_records() if a.get("event_id") in first_replay.event_ids]
    assert {a["event_id"] for a in mine} == first_replay.event_ids
    forwarded = [a for a in mine if a["action"] == "forwarded"]
    assert {a["notification_id"] for a in forwarded} == {n["notification_id"] for n in delivered}
    assert not [a for a in mine if a["action"] == "quarantined"]
    assert local_stack.restate_requests() >= 1


def test_replaying_the_same_stream_delivers_nothing_new(
    local_stack: LocalStack, sample_cluster: str, first_replay: ReplayResult
) -> None:
    before = local_stack.delivered(sample_cluster)
    stats_before = local_stack.manager_stats(sample_cluster)

    again = local_stack.replay(SAMPLE, cluster_id=sample_cluster, recorded_time=True)
    local_stack.pump_until_idle(timeout=60)

    assert again.event_ids - first_replay.event_ids <= {  # only the new relay start's enroll is new
        e["event_id"] for e in again.envelopes if e["kind"] == "enroll"
    }
    assert local_stack.delivered(sample_cluster) == before
    stats_after = local_stack.manager_stats(sample_cluster)
    assert stats_after["events_new"] == stats_before["events_new"] == len(EXPECTED_SAMPLE)


def test_bad_input_on_the_queue_is_quarantined_and_the_batch_goes_through(
    local_stack: LocalStack, cluster_id: str
) -> None:
    marker = f"bad-{uuid.uuid4().hex}"
    # Good messages first: the relay's replay of bad-input.jsonl (two troubled billing pods) ...
    replayed = local_stack.replay(BAD_INPUT, cluster_id=cluster_id)
    assert replayed.stats.forwarded == 2
    assert replayed.stats.malformed == 8  # bad lines never reach the queue: the relay counts them
    assert not [b for b in replayed.bodies if CANARY in b]  # the Secret's data never left the relay
    # ... then bad ones straight onto the queue, into the same processor batch.
    envelope = {
        "event_id": f"{marker}-0000",
        "cluster_id": cluster_id,
        "relay_version": "test",
        "payload": {},
    }
    bad = {
        "malformed": f'{{"schema_version": 1, "kind": "pod", "marker": "{marker}", ',
        "unknown_kind": json.dumps({**envelope, "schema_version": 1, "kind": "deployment", "marker": marker}),
        "unsupported_schema_version": json.dumps(
            {**envelope, "schema_version": 99, "kind": "pod", "marker": marker}
        ),
    }
    bad_ids = {local_stack.send_raw(body): reason for reason, body in bad.items()}

    result = local_stack.pump_until_idle(timeout=60)

    # quarantined at once (not retried), with the reason attached
    assert result.failed_records == 0
    dlq = [m for m in local_stack.dlq_messages() if marker in m.body]
    assert sorted((m.queue, m.reason) for m in dlq) == sorted(("PodEventsDLQ", r) for r in bad)
    for m in dlq:
        assert m.error, m
        assert m.attributes["source_message_id"] in bad_ids
        assert bad_ids[m.attributes["source_message_id"]] == m.reason
    quarantined = [a for a in local_stack.audit_records() if a["action"] == "quarantined"]
    assert {r for r in bad} <= {a["reason"] for a in quarantined}

    # the rest of the batch went through: the billing pods reached the manager, once each
    delivered = local_stack.delivered(cluster_id)
    assert sorted((n["pod"], n["event_type"]) for n in delivered) == [
        ("invoicer-5b6c7d8e9f-a1b2c", "crash-loop"),
        ("pdf-renderer-8c9d7e6f5a-z9y8x", "oom-kill"),
    ]
    outcomes = local_stack.pollers["ProcessorFunction"][0].outcomes
    shared = [o for o in outcomes if set(o.message_ids) & set(bad_ids)]
    assert shared
    assert all(o.failed == 0 for o in shared)
    assert any(len(o.message_ids) > len(set(o.message_ids) & set(bad_ids)) for o in shared)  # good ones too


def test_make_run_writes_the_summary(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    env = {
        **os.environ,
        # the Makefile's PYTHONPATH
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/podwatch", "relay", "cli", ".")),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.run(
        [
            sys.executable, "-m", "local.run",
            "--replay", SAMPLE,
            "--summary", str(summary_path),
            "--max-batching-window", "0.5",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr

    summary = json.loads(summary_path.read_text())
    for key in ("input_events", "relay_forwarded", "processor", "delivered", "restate_requests", "dlq"):
        assert key in summary
    assert set(summary["processor"]) >= {"filtered", "deduplicated", "forwarded", "quarantined"}
    assert summary["input_events"] == 58
    assert summary["relay_forwarded"] == 47
    assert {identity(n) for n in summary["delivered"]} == EXPECTED_SAMPLE
    assert summary["processor"]["forwarded"] == len(EXPECTED_SAMPLE)
    assert summary["processor"]["quarantined"] == 0
    assert summary["restate_requests"] >= 1
    assert summary["dlq"] == []
    # every input event is explained, and the report says so
    assert len(summary["events"]) == summary["input_events"]
    delivered_pods = {p["pod"] for p in summary["pods"] if p["delivered"]}
    assert delivered_pods == {f"{ns}/{pod}" for ns, pod, _, _ in EXPECTED_SAMPLE}
    assert "payments/payments-api-84c6d9f7b8-tq5vn" in proc.stdout
    assert "crash-loop" in proc.stdout
    assert "Logs: .local-run/" in proc.stdout
    # the replay keeps the recording's time: no pod looks Pending for the days since it was recorded
    assert "pending-too-long" not in proc.stdout
    assert Path(ROOT / summary["logs"] / "restate.log").is_file()
    # the history: every forwarded line stored, the API's URL and two queries with their answers
    history = summary["history"]
    assert history["records"] == summary["relay_forwarded"]
    assert history["api_url"].startswith("http://127.0.0.1:")
    assert history["api_url"] in proc.stdout
    listed, one = history["examples"]
    assert (listed["status"], one["status"]) == (200, 200)
    assert listed["total"] > 0
    assert one["total"] > 0
    assert listed["command"] in proc.stdout
    assert one["command"] in proc.stdout


def test_a_sample_event_invoked_directly_reaches_the_manager(local_stack: LocalStack) -> None:
    """`sam local invoke DeliverFunction -e events/deliver/batch.json`, against the local stack."""
    event = load_event("events/deliver/batch.json")
    notes = [json.loads(r["body"]) for r in event["Records"]]
    clusters = {n["cluster_id"] for n in notes}

    response = local_stack.invoke("DeliverFunction", event)

    assert response == {"batchItemFailures": []}
    recorded = {n["notification_id"] for c in clusters for n in local_stack.delivered(c)}
    assert {n["notification_id"] for n in notes} <= recorded
