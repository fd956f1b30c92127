"""Enrollment through the local stack, against the REAL Restate server and reference manager: the
relay's enroll → processor (clusters table) → deliveries queue → deliver → `Enroll`, once per
cluster and relay version however often the relay restarts; heartbeats → last-seen per cluster."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack
from podwatch import ids
from podwatch.models import HeartbeatEnvelope, HeartbeatPayload
from podwatch.wire import encode_envelope

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        run_dir=tmp_path_factory.mktemp("enroll"),
        max_batching_window_seconds=0.5,
        function_output=io.StringIO(),
    ) as local:
        yield local


@pytest.fixture
def cluster() -> str:
    return f"enr-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def nothing(tmp_path: Path) -> Path:
    """A watch stream with no events: a relay that starts (and enrolls) and sees nothing yet."""
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    return path


def enrollments(stack: LocalStack, cluster: str) -> list[tuple[str, int]]:
    response = stack.manager_call(cluster, "GetEnrollments")
    assert response.status_code == 200, response.text
    return [(e["relay_version"], e["count"]) for e in response.json()["enrollments"]]


def cluster_item(stack: LocalStack, cluster: str) -> dict[str, Any]:
    assert stack.moto is not None
    item: dict[str, Any] = stack.moto.client("dynamodb").get_item(
        TableName=stack.provisioned.physical("ClustersTable"), Key={"pk": {"S": cluster}}, ConsistentRead=True
    )["Item"]
    return item


def enrolled_metric(stack: LocalStack) -> int:
    output = stack.function_output
    assert isinstance(output, io.StringIO)
    total = 0
    for line in output.getvalue().splitlines():
        if line.startswith("{") and '"Enrolled"' in line:
            value = json.loads(line)["Enrolled"]
            total += int(sum(value) if isinstance(value, list) else value)
    return total


def test_enroll_is_called_once_per_cluster_and_relay_version_however_often_the_relay_restarts(
    stack: LocalStack, cluster: str, nothing: Path
) -> None:
    enrolled_before = enrolled_metric(stack)
    # When the relay starts five times (crash loop, rollout restarts), each start enrolling
    starts = [stack.replay(nothing, cluster_id=cluster, relay_version="0.1.0") for _ in range(5)]
    stack.pump_until_idle(timeout=60)

    # Then the five enroll messages are five distinct events ...
    assert len({e["event_id"] for s in starts for e in s.envelopes}) == 5
    # ... and the manager was called once: one Enroll handler run, one Enroll request made
    assert enrollments(stack, cluster) == [("0.1.0", 1)]
    assert enrolled_metric(stack) == enrolled_before + 1
    control = [a for a in stack.audit_records() if a["action"] == "control" and a["reason"] == "enroll"]
    assert {e["event_id"] for s in starts for e in s.envelopes} <= {a["event_id"] for a in control}

    # A new relay version enrolls once more, however often it starts too
    for _ in range(3):
        stack.replay(nothing, cluster_id=cluster, relay_version="0.2.0")
    stack.pump_until_idle(timeout=60)
    assert enrollments(stack, cluster) == [("0.1.0", 1), ("0.2.0", 1)]
    assert enrolled_metric(stack) == enrolled_before + 2

    item = cluster_item(stack, cluster)
    assert set(item["enrolled_versions"]["SS"]) == {"0.1.0", "0.2.0"}
    assert item["relay_version"]["S"] == "0.2.0"
    assert int(item["expires_at"]["N"]) > int(item["last_seen_at"]["N"])
    assert not [m for m in stack.dlq_messages() if cluster in m.body]


def test_heartbeats_keep_the_last_seen_record(stack: LocalStack, cluster: str, nothing: Path) -> None:
    stack.replay(nothing, cluster_id=cluster, relay_version="0.1.0")
    started = datetime.now(UTC)

    def heartbeat(sequence: int, sent_at: datetime) -> str:
        envelope = HeartbeatEnvelope(
            event_id=ids.control_event_id("heartbeat", cluster, started.isoformat(), sequence),
            cluster_id=cluster,
            relay_version="0.1.0",
            sent_at=sent_at,
            payload=HeartbeatPayload(sequence=sequence, started_at=started, pods_tracked=40 + sequence),
        )
        return stack.send_raw(encode_envelope(envelope))

    newest = datetime.now(UTC).replace(microsecond=0)
    heartbeat(2, newest)
    stack.pump_until_idle(timeout=60)
    heartbeat(1, newest.replace(year=newest.year - 1))  # late, out of order: changes nothing
    stack.pump_until_idle(timeout=60)

    item = cluster_item(stack, cluster)
    assert int(item["last_seen_at"]["N"]) == int(newest.timestamp())
    assert (item["heartbeat_sequence"]["N"], item["pods_tracked"]["N"]) == ("2", "42")
    assert item["last_kind"]["S"] == "heartbeat"
    assert enrollments(stack, cluster) == [("0.1.0", 1)]  # heartbeats never enroll

    # config-sync tells how long ago the cluster was heard of
    result = stack.invoke("ConfigSyncFunction", {"cluster_ids": [cluster]})
    assert result["silent"] == []
    assert 0 <= result["heartbeat_age"][cluster] < 120
