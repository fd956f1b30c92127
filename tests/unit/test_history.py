"""The history record, its keys and the writer's retries, without AWS (the table's behaviour is
tested through a moto server in tests/integration/test_history_moto.py and tests/e2e/test_history.py)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podwatch import history, historyapi
from podwatch.historyfeed import HistoryMessage, WriterDeps, write_history
from podwatch.historystore import HistoryWriter, from_attributes, to_attributes
from podwatch.models import ContainerStatus, PodEnvelope, PodEvent
from podwatch.wire import encode_envelope

AT = datetime(2026, 11, 20, 9, 0, 1, 250_000, tzinfo=UTC)


def pod(name: str = "web-0", *, rv: str = "42", message: str | None = None) -> PodEnvelope:
    containers = [ContainerStatus(name="app", state="waiting", reason="CrashLoopBackOff", message=message)]
    payload = PodEvent(
        namespace="shop", name=name, uid="u-1", containers=containers, resource_version=rv, observed_at=AT
    )
    return PodEnvelope(event_id=f"ev-{name}-{rv}", cluster_id="prod", payload=payload)


def test_an_item_round_trips_to_the_audit_record_shape() -> None:
    classes = [history.Classification("crash-loop", "forwarded", "opened", "prod/shop/web-0/app/crash-loop")]
    item = history.item_of(pod(), classes, retention_days=14)
    assert item["pk"] == "prod#shop#pod#web-0"
    assert item["sk"] == "2026-11-20T09:00:01.250Z#00000000000000000042#ev-web-0-42"
    assert item["tk"] == f"prod#2026-11-20#{history.shard_of('prod', 'shop', 'web-0'):02d}"
    assert item["x"] == int((AT + timedelta(days=14)).timestamp())
    record = history.record_of(from_attributes(to_attributes(item)))
    assert record["verb"] == "update"
    assert record["user"] == {"username": "system:k8s-watcher"}
    assert record["objectRef"] == {
        "cluster": "prod",
        "namespace": "shop",
        "kind": "Pod",
        "name": "web-0",
        "uid": "u-1",
    }
    assert record["reason"] == "CrashLoopBackOff"
    assert record["classification"][0]["incidentId"] == "prod/shop/web-0/app/crash-loop"
    assert "resource_version" not in record["object"]
    assert record["object"]["name"] == "web-0"


def test_a_long_message_is_trimmed_to_stay_one_write_unit() -> None:
    digests = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(40))
    noise = base64.b64encode(digests).decode()  # does not compress
    item = history.item_of(pod(message=noise))
    assert history.item_size(item) <= history.ITEM_BUDGET_BYTES
    assert item["tr"] == 1
    assert history.record_of(item)["trimmed"] is True


def test_a_namespace_spreads_over_its_shards_and_an_object_stays_in_one() -> None:
    shards = history.namespace_shards("prod", "shop")
    assert len(set(shards)) == history.NAMESPACE_SPREAD
    assert {history.shard_of("prod", "shop", f"web-{i}") for i in range(200)} == set(shards)
    assert history.shard_of("prod", "shop", "web-1") == history.shard_of("prod", "shop", "web-1")


@pytest.mark.parametrize("kind", ["pod", "pods", "Pod", "PODS"])
def test_every_spelling_of_a_kind_names_the_same_object(kind: str) -> None:
    assert history.object_key("c", "ns", kind, "x") == "c#ns#pod#x"
    assert historyapi.kind_name(kind) == "Pod"


def test_a_cursor_is_bound_to_its_parameters_and_refuses_garbage() -> None:
    bound = historyapi.fingerprint("c", {"namespace": "shop", "limit": "5"})
    assert bound == historyapi.fingerprint("c", {"namespace": "shop", "limit": "9", "cursor": "x"})
    assert bound != historyapi.fingerprint("c", {"namespace": "web"})
    cursor = historyapi.Cursor(bound, "2026-11-20T09:00:00.000Z##e", "a", "b", 7)
    assert historyapi.Cursor.decode(cursor.encode()) == cursor
    for bad in ("", "e30", "%%%", "eyJ2IjoyfQ"):
        with pytest.raises(historyapi.BadRequest) as caught:
            historyapi.Cursor.decode(bad)
        assert caught.value.parameter == "cursor"


class ThrottlingDynamoDB:
    """BatchWriteItem that leaves every item unprocessed `throttled_calls` times (as DynamoDB does
    when a partition is over its capacity), then takes them."""

    def __init__(self, throttled_calls: int) -> None:
        self.throttled_calls = throttled_calls
        self.calls: list[int] = []
        self.stored: dict[tuple[str, str], Any] = {}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        self.calls.append(len(requests))
        if len(self.calls) <= self.throttled_calls:
            return {"UnprocessedItems": {table: requests}}
        for r in requests:
            item = r["PutRequest"]["Item"]
            self.stored[(item["pk"]["S"], item["sk"]["S"])] = item
        return {"UnprocessedItems": {}}


class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {"MessageId": "m"}


def deps(client: ThrottlingDynamoDB, sqs: RecordingSqs, *, attempts: int = 4) -> WriterDeps:
    writer = HistoryWriter(table_name="t", client=client, attempts=attempts, sleep=lambda _: None)
    return WriterDeps(writer=writer, sqs=sqs, quarantine_queue_url="dlq", retention_days=14, max_receives=3)


def messages(count: int, receive_count: int = 1) -> list[HistoryMessage]:
    return [
        HistoryMessage(f"m{i}", encode_envelope(pod(f"web-{i}")), None, receive_count) for i in range(count)
    ]


def test_throttled_writes_are_retried_inside_the_invocation() -> None:
    client, sqs = ThrottlingDynamoDB(throttled_calls=2), RecordingSqs()
    outcome = write_history(messages(30), deps(client, sqs))
    assert (outcome.written, outcome.retry, sqs.sent) == (30, {}, [])
    assert outcome.throttled == 2 * 25  # the first chunk of 25 refused twice; the second taken at once
    assert len(client.stored) == 30


def test_writes_still_throttled_go_back_to_sqs_and_on_the_last_receive_to_the_dlq_with_the_reason() -> None:
    client, sqs = ThrottlingDynamoDB(throttled_calls=100), RecordingSqs()
    outcome = write_history(messages(2), deps(client, sqs, attempts=2))
    assert set(outcome.retry) == {"m0", "m1"}
    assert sqs.sent == []
    last = write_history(messages(2, receive_count=3), deps(client, sqs, attempts=2))
    assert last.retry == {}
    assert last.quarantined == {"write_failed": 2}
    assert {m["MessageAttributes"]["reason"]["StringValue"] for m in sqs.sent} == {"write_failed"}


def test_control_messages_and_bad_bodies_are_quarantined_not_retried() -> None:
    client, sqs = ThrottlingDynamoDB(throttled_calls=0), RecordingSqs()
    heartbeat = '{"schema_version":1,"kind":"heartbeat","event_id":"hb-000001","cluster_id":"c","payload":{}}'
    outcome = write_history(
        [HistoryMessage("a", heartbeat, None, 1), HistoryMessage("b", "[", None, 1)], deps(client, sqs)
    )
    assert outcome.quarantined == {"not_history": 1, "malformed": 1}
    assert outcome.retry == {}


@pytest.mark.parametrize(
    ("value", "ok"),
    [("2026-11-20T09:00:00Z", True), ("2026-11-20T09:00:00+02:00", True), ("2026-11-20", False)],
)
def test_times_are_rfc3339_with_an_offset(value: str, ok: bool) -> None:
    if ok:
        assert historyapi.parse_time("start", value).tzinfo is UTC
    else:
        with pytest.raises(historyapi.BadRequest):
            historyapi.parse_time("start", value)
