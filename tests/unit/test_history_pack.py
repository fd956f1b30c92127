"""History packs: the processor's records of one invocation in as few SQS messages as fit (one billed
64 KiB chunk each), and the writer reading a pack or a single message alike, without AWS (through
the moto server: tests/integration/test_history_moto.py and tests/e2e/test_history.py)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from podwatch.historyfeed import (
    PACK_BYTES,
    HistoryMessage,
    HistoryOutbox,
    messages_of,
    pack,
    pack_record,
    write_history,
)
from podwatch.wire import encode_envelope
from tests.unit.test_history import RecordingSqs, ThrottlingDynamoDB, deps, pod


class _Record(NamedTuple):
    event_type: str | None
    dedup_key: str | None


class _Decision(NamedTuple):
    action: str
    reason: str
    record: _Record


class BatchSqs:
    """SendMessageBatch that takes every entry, or refuses the ones whose Id is in `refuse`."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.refuse = refuse

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert 1 <= len(Entries) <= 10
        assert sum(len(e["MessageBody"].encode()) for e in Entries) <= 256 * 1024
        self.calls.append(Entries)
        failed = [
            {"Id": e["Id"], "Code": "Throttled", "Message": "slow down"}
            for e in Entries
            if e["Id"] in self.refuse
        ]
        return {"Successful": [], "Failed": failed}


CRASH = [_Decision("forwarded", "opened", _Record("crash-loop", "prod/shop/web-0/app/crash-loop"))]


#: the bodies as the relay sent them (made once: an envelope carries the time it was made)
BODIES = [encode_envelope(pod(f"web-{i}", rv=str(100 + i))) for i in range(100)]


def bodies(count: int) -> list[str]:
    return BODIES[:count]


def test_a_hundred_records_go_in_packs_of_one_billed_chunk_in_one_call() -> None:
    sqs = BatchSqs()
    outbox = HistoryOutbox(sqs=sqs, queue_url="history")
    for i, body in enumerate(bodies(100)):
        outbox.add(f"m{i}", body, CRASH if i == 0 else [])
    assert outbox.flush() == {}
    (entries,) = sqs.calls  # one SendMessageBatch
    sizes = [len(e["MessageBody"].encode()) for e in entries]
    assert all(size <= PACK_BYTES for size in sizes)
    assert len(entries) == -(-sum(sizes) // PACK_BYTES)  # as few packs as the bytes need
    # Then the writer reads back every record, in order, the first with its classification
    records = [m for n, e in enumerate(entries) for m in messages_of(f"sqs-{n}", e["MessageBody"], None, 1)]
    assert [m.record_id for m in records] == [f"m{i}" for i in range(100)]
    assert [m.body for m in records] == bodies(100)
    assert json.loads(records[0].classification or "")[0]["eventType"] == "crash-loop"
    assert {m.classification for m in records[1:]} == {None}


def test_a_pack_the_queue_refuses_fails_each_of_its_records() -> None:
    sqs = BatchSqs(refuse=frozenset({"0"}))
    outbox = HistoryOutbox(sqs=sqs, queue_url="history")
    for i, body in enumerate(bodies(3)):
        outbox.add(f"m{i}", body, [])
    failed = outbox.flush()
    assert set(failed) == {"m0", "m1", "m2"}
    assert {e.reason for e in failed.values()} == {"history_enqueue_failed"}


def test_a_record_too_big_for_a_pack_goes_alone_with_its_classification_attribute() -> None:
    sqs = BatchSqs()
    outbox = HistoryOutbox(sqs=sqs, queue_url="history")
    envelope = pod("web-big")
    labels = {f"label-{i}": "v" * 60 for i in range(PACK_BYTES // 60)}  # text fields are cut at 1 KiB
    big = encode_envelope(
        envelope.model_copy(update={"payload": envelope.payload.model_copy(update={"labels": labels})})
    )
    assert len(big) > PACK_BYTES
    outbox.add("big", big, CRASH)
    outbox.add("small", bodies(1)[0], [])
    assert outbox.flush() == {}
    (entries,) = sqs.calls
    single = next(e for e in entries if e["MessageBody"] == big)
    assert "crash-loop" in single["MessageAttributes"]["classification"]["StringValue"]
    assert [m.record_id for m in messages_of("s", single["MessageBody"], None, 1)] == [None]


def test_a_record_of_a_pack_failing_at_the_last_receive_is_quarantined_alone_with_its_source_id() -> None:
    client, sqs = ThrottlingDynamoDB(throttled_calls=100), RecordingSqs()
    body = pack([pack_record(f"src-{i}", b, None) for i, b in enumerate(bodies(2))])
    # Given the table refuses every write: the pack goes back to SQS once, not twice
    early = write_history(messages_of("pack-1", body, None, 1), deps(client, sqs, attempts=2))
    assert list(early.retry) == ["pack-1"]
    # When it is the last receive, each record is quarantined with the reason and its own source id
    last = write_history(messages_of("pack-1", body, None, 3), deps(client, sqs, attempts=2))
    assert (last.retry, last.quarantined) == ({}, {"write_failed": 2})
    assert [m["MessageAttributes"]["source_message_id"]["StringValue"] for m in sqs.sent] == [
        "src-0",
        "src-1",
    ]
    assert [m["MessageBody"] for m in sqs.sent] == bodies(2)


def test_bad_records_in_a_pack_and_an_unreadable_pack_are_quarantined_with_their_reasons() -> None:
    client, sqs = ThrottlingDynamoDB(throttled_calls=0), RecordingSqs()
    heartbeat = '{"schema_version":1,"kind":"heartbeat","event_id":"hb-000001","cluster_id":"c","payload":{}}'
    good = bodies(1)[0]
    not_strict = good.replace('"restart_count":0', '"restart_count":NaN', 1)  # Python's json reads NaN
    records = [("a", good), ("b", heartbeat), ("c", "[1]"), ("d", not_strict)]
    mixed = pack([pack_record(record_id, body, None) for record_id, body in records])
    broken = '{"kind":"history_pack","v":1,"records":[{"id":1}]}'
    messages: list[HistoryMessage] = messages_of("p1", mixed, None, 1) + messages_of("p2", broken, None, 1)
    outcome = write_history(messages, deps(client, sqs))
    assert (outcome.written, outcome.retry) == (1, {})
    # each bad record alone, checked as strictly as any message (NaN is not JSON: malformed)
    assert outcome.quarantined == {"not_history": 1, "malformed": 3}
    reasons = {
        m["MessageAttributes"]["source_message_id"]["StringValue"]: m["MessageAttributes"]["reason"][
            "StringValue"
        ]
        for m in sqs.sent
    }
    assert reasons == {"b": "not_history", "c": "malformed", "d": "malformed", "p2": "malformed"}
    unreadable = next(m for m in sqs.sent if m["MessageBody"] == broken)
    assert unreadable["MessageAttributes"]["source_message_id"]["StringValue"] == "p2"
    assert "unreadable history pack" in unreadable["MessageAttributes"]["error"]["StringValue"]
