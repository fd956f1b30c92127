"""Event history end to end: the relay's code → pod-events → processor → history queue →
history-writer → history table (moto server) → the history API on loopback; and the fault test:
with the history table failing, notifications still go out on time, history writes are retried
and, once the table is back, every record is stored (none lost, none in the DLQ)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.esm import drain
from local.stack import LocalStack, ReplayResult
from podwatch.history import item_size
from podwatch.historystore import from_attributes

pytestmark = pytest.mark.e2e

SAMPLE = "events/replay/sample-stream.jsonl"
CRASHING = ("payments", "payments-api-84c6d9f7b8-tq5vn")
#: the sample is recorded on 2026-11-20 from 09:00: the API's clock is the recording's, as in `make run`
RECORDING_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def history_envelopes(result: ReplayResult) -> set[str]:
    return {e["event_id"] for e in result.envelopes if e.get("kind") in {"pod", "k8s_event"}}


def stored_event_ids(stack: LocalStack, cluster: str) -> list[str]:
    return [
        item["sk"]["S"].rpartition("#")[2]
        for item in stack.history_items()
        if item["pk"]["S"].startswith(f"{cluster}#")
    ]


def test_the_replay_is_queryable_by_object_and_time_with_classification(local_stack: LocalStack) -> None:
    cluster = f"e2e-history-{uuid.uuid4().hex[:6]}"
    result = local_stack.replay(SAMPLE, cluster_id=cluster, recorded_time=True)
    local_stack.pump_until_idle(timeout=90)

    stored = stored_event_ids(local_stack, cluster)
    assert sorted(stored) == sorted(history_envelopes(result))  # healthy pods too, each once

    api = local_stack.serve_history_api(clock=lambda: RECORDING_NOW)
    namespace, pod = CRASHING
    view = httpx.get(f"{api.url}/clusters/{cluster}/api/v1/events/{namespace}/pods/{pod}", timeout=10).json()
    assert [r["count"] for r in view["relatedEvents"]] == [5, 4, 3, 2, 1]
    classified = [c for r in view["watchEvents"] for c in r["classification"]]
    assert any(c["eventType"] == "crash-loop" and c["decision"] == "forwarded" for c in classified)
    assert all(c.get("incidentId", "").startswith(cluster) for c in classified if c["decision"] != "filtered")
    listed = httpx.get(
        f"{api.url}/clusters/{cluster}/api/v1/events", params={"namespace": "shop", "limit": 3}, timeout=10
    )
    assert listed.status_code == 200
    assert int(listed.headers["X-Total-Count"]) == sum(
        1 for e in result.envelopes if e.get("namespace") == "shop" and e.get("kind") in {"pod", "k8s_event"}
    )
    assert listed.headers["X-Has-More"] == "true"


def test_a_failing_history_table_never_delays_notifications_and_nothing_is_lost(
    local_stack: LocalStack,
) -> None:
    cluster = f"e2e-history-fault-{uuid.uuid4().hex[:6]}"
    writer_id = "HistoryWriterFunction"
    (writer,) = local_stack.pollers[writer_id]
    notification_path = [p for lid, ps in local_stack.pollers.items() if lid != writer_id for p in ps]
    table = local_stack.function_env[writer_id]["HISTORY_TABLE_NAME"]

    def point_writer_at(name: str) -> None:
        def rebuild(module: Any) -> None:
            from podwatch.settings import HistoryWriterSettings

            settings = HistoryWriterSettings.from_env().model_copy(update={"history_table_name": name})
            module.set_dependencies(module.build_dependencies(settings))

        local_stack.in_function(writer_id, rebuild)

    # Given a history table that fails every write (the writer's table does not exist: moto answers
    # ResourceNotFoundException, as DynamoDB does to a table that is gone or not reachable)
    point_writer_at(f"{table}-unreachable")
    failed_before = writer.stats.failed
    try:
        # When a stream is replayed while the writer keeps failing alongside the notification path
        stop = threading.Event()

        def failing_writer() -> None:
            while not stop.is_set():
                if writer.poll_once(stop) is None:
                    stop.wait(0.05)

        thread = threading.Thread(target=failing_writer, daemon=True)
        thread.start()
        started = time.monotonic()
        result = local_stack.replay(SAMPLE, cluster_id=cluster, recorded_time=True)
        drain(notification_path, timeout=120)
        took = time.monotonic() - started
        deadline = time.monotonic() + 60
        while writer.stats.failed == failed_before and time.monotonic() < deadline:
            time.sleep(0.1)  # (a loaded host) until the writer has met the failing table
        stop.set()
        thread.join(timeout=30)

        # Then every notification went out while no history could be stored: the history path
        # failing did not hold them up (the notification path drained on its own)
        delivered = {n["notification_id"] for n in local_stack.delivered(cluster)}
        forwarded = {
            a["notification_id"]
            for a in local_stack.audit_records()
            if a.get("event_id") in result.event_ids and a["action"] == "forwarded"
        }
        assert delivered
        assert delivered == forwarded  # every notification the processor forwarded reached the manager
        assert writer.stats.failed > failed_before  # history writes failed and were returned to SQS
        assert stored_event_ids(local_stack, cluster) == []
        assert took < 90, took  # a generous bound for a loaded host; about 10 s on an idle one
    finally:
        point_writer_at(table)

    # And once the table answers again, the retries store every record exactly once, DLQ empty
    local_stack.pump_until_idle(timeout=90)
    assert sorted(stored_event_ids(local_stack, cluster)) == sorted(history_envelopes(result))
    history_dlq = [m for m in local_stack.dlq_messages() if m.queue == "HistoryDLQ"]
    assert not [m for m in history_dlq if cluster in m.body], [json.loads(m.body) for m in history_dlq]


def test_history_records_expire_from_the_events_own_time(local_stack: LocalStack) -> None:
    cluster = f"e2e-history-ttl-{uuid.uuid4().hex[:6]}"
    local_stack.replay(SAMPLE, cluster_id=cluster, recorded_time=True)
    local_stack.pump_until_idle(timeout=90)
    items = [i for i in local_stack.history_items() if i["pk"]["S"].startswith(f"{cluster}#")]
    for item in items:
        when = datetime.fromisoformat(item["sk"]["S"].split("#")[0])
        assert int(item["x"]["N"]) == int((when + timedelta(days=14)).timestamp())
    # every item costs one write unit (≤ 1 KB), in the table and in the time index
    sizes = [item_size(from_attributes(i)) for i in items]
    assert max(sizes) <= 1024, sorted(sizes)[-3:]
