"""Batched forwarding without AWS: the Outbox's SendMessageBatch chunks, the mapping of refused
entries back to their records, and kit.item_failures on a real Powertools BatchProcessor."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from botocore.exceptions import ClientError

from local.lambda_runtime import sqs_event
from podwatch import audit
from podwatch.errors import TransientError
from podwatch.kit import item_failures
from podwatch.models import Notification, RemoteConfig
from podwatch.processing import MAX_BATCH_ENTRIES, NotificationOutbox, process_record
from tests.unit.test_processor_decisions import NOW, FakeSQS, deps, two_troubled_containers


class Trail(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.actions: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.actions.append(record.audit["action"])  # type: ignore[attr-defined]


@pytest.fixture
def trail() -> Iterator[Trail]:
    handler = Trail()
    logging.getLogger(audit.AUDIT_LOGGER).addHandler(handler)
    yield handler
    logging.getLogger(audit.AUDIT_LOGGER).removeHandler(handler)


def queue_records(outbox: NotificationOutbox, sqs: FakeSQS, n: int) -> None:
    d = deps(sqs=sqs)
    for i in range(n):
        process_record(
            two_troubled_containers(),
            deps=d,
            config=RemoteConfig(),
            now=NOW,
            message_id=f"m{i}",
            outbox=outbox,
        )


def test_notifications_wait_for_the_flush_and_go_in_batches_of_ten(trail: Trail) -> None:
    sqs = FakeSQS()
    outbox = NotificationOutbox(sqs=sqs, queue_url="https://sqs/deliveries")
    queue_records(outbox, sqs, 11)  # two notifications each
    assert (sqs.sent, len(outbox), trail.actions) == ([], 22, [])  # nothing sent or audited yet

    assert outbox.flush() == {}
    assert sqs.batches == 3  # 10 + 10 + 2
    assert len(sqs.sent) == 22
    assert {m["QueueUrl"] for m in sqs.sent} == {"https://sqs/deliveries"}
    Notification.model_validate_json(sqs.sent[0]["MessageBody"])
    assert trail.actions == ["forwarded"] * 22
    assert len(outbox) == 0


def test_large_notifications_split_a_batch_by_size() -> None:
    sqs = FakeSQS()
    outbox = NotificationOutbox(sqs=sqs, queue_url="q")
    queue_records(outbox, sqs, 5)
    big = "x" * 60_000  # four of these fill a 240 KiB batch
    outbox._pending = [
        (rid, type(d)(d.record, d.notification.model_copy(update={"message": big})))  # type: ignore[union-attr]
        for rid, d in outbox._pending
    ]
    assert outbox.flush() == {}
    assert len(sqs.sent) == 10
    assert sqs.batches == 3
    assert MAX_BATCH_ENTRIES == 10


def test_a_refused_entry_fails_its_record_only(trail: Trail) -> None:
    sqs = FakeSQS(refuse={3})  # the 4th entry: the second notification of record m1
    outbox = NotificationOutbox(sqs=sqs, queue_url="q")
    queue_records(outbox, sqs, 3)
    failed = outbox.flush()
    assert set(failed) == {"m1"}
    assert failed["m1"].reason == "forward_failed"
    assert len(sqs.sent) == 5
    assert trail.actions == ["forwarded"] * 5  # the refused one is not audited as forwarded


def test_a_failed_call_fails_every_record_of_its_chunk_with_the_cause() -> None:
    sqs = FakeSQS(fail=True)
    outbox = NotificationOutbox(sqs=sqs, queue_url="q")
    queue_records(outbox, FakeSQS(), 2)
    failed = outbox.flush()
    assert set(failed) == {"m0", "m1"}
    assert all(
        isinstance(e, TransientError) and isinstance(e.__cause__, ClientError) for e in failed.values()
    )


def test_item_failures_adds_finished_records_to_the_processors_response() -> None:
    processor = BatchProcessor(event_type=EventType.SQS)
    event = sqs_event(["a", "b", "c"])
    ids = [r["messageId"] for r in event["Records"]]

    def handler(record: Any) -> None:
        if record.body == "c":
            raise TransientError("throttled")

    with processor(event["Records"], handler):
        processor.process()
    response = item_failures(processor, {ids[0]: TransientError("refused"), ids[2]: TransientError("x")})
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in (ids[2], ids[0])]}
    # the processor's own lists are left as its record handler made them
    assert len(processor.success_messages) == 2
    assert len(processor.fail_messages) == 1


def test_item_failures_of_every_record_fails_the_whole_batch() -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    processor = BatchProcessor(event_type=EventType.SQS)
    event = sqs_event(["a"])

    def run() -> None:
        with processor(event["Records"], lambda record: None):
            processor.process()
        item_failures(processor, {event["Records"][0]["messageId"]: TransientError("refused")})

    # like a batch whose every record raised: Lambda retries the whole batch
    with pytest.raises(BatchProcessingError):
        run()
