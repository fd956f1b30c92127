"""The side path into the history table, kept out of the notifications' way.

    processor ── HistoryOutbox (SendMessageBatch, after the notifications went) ──▶ SQS history
    history queue ──▶ history-writer: parse → item (podwatch.history) → BatchWriteItem (retries)
                                       └ bad input, or the last receive failing ──▶ history DLQ + reason

The processor sends every pod, Kubernetes Event and `object` message it read (healthy ones too: history is
what happened) as it arrived, with its classification in a message attribute; the table is never
in the processor's path. docs/internals.md ("History") says why this shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from podwatch.errors import PermanentError, TransientError
from podwatch.history import Classification, decode_classification, encode_classification, item_of
from podwatch.historystore import HistoryWriter, Item
from podwatch.models import KubeEventEnvelope, ObjectEnvelope, PodEnvelope
from podwatch.quarantine import send_to_quarantine
from podwatch.wire import parse_envelope

#: message attribute holding the processor's classification (JSON, `history.encode_classification`)
CLASSIFICATION_ATTRIBUTE = "classification"
MAX_BATCH_ENTRIES = 10
#: SQS's limit for one message and for one SendMessageBatch, with room for the attribute
MAX_MESSAGE_BYTES = 256 * 1024
MAX_BATCH_BYTES = 250 * 1024
_ATTRIBUTE_ROOM = 2048


class _DecisionLike(Protocol):
    """What the outbox reads of a processor decision (`podwatch.processing.Decision`)."""

    @property
    def action(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def record(self) -> Any: ...


def classification_of(decisions: Iterable[_DecisionLike]) -> list[Classification]:
    return [
        Classification(d.record.event_type, d.action, d.reason, d.record.dedup_key)
        for d in decisions
        if d.record.event_type
    ]


@dataclass
class HistoryOutbox:
    """The history messages of one processor invocation, sent by `flush` after the notifications."""

    sqs: Any
    queue_url: str
    _pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: messages sent without their classification (the body alone filled the message)
    unclassified: int = 0

    def add(self, record_id: str, body: str, decisions: Sequence[_DecisionLike]) -> None:
        """Queue one pod or Kubernetes Event message, as it arrived, with its classification."""
        entry: dict[str, Any] = {"MessageBody": body}
        classes = classification_of(decisions)
        if classes:
            if len(body.encode()) + _ATTRIBUTE_ROOM <= MAX_MESSAGE_BYTES:
                value = encode_classification(classes)
                entry["MessageAttributes"] = {
                    CLASSIFICATION_ATTRIBUTE: {"DataType": "String", "StringValue": value}
                }
            else:
                self.unclassified += 1
        self._pending.append((record_id, entry))

    def __len__(self) -> int:
        return len(self._pending)

    def flush(self) -> dict[str, TransientError]:
        """Send what is queued; the records SQS did not take, with their errors (batch item failures)."""
        pending, self._pending = self._pending, []
        failed: dict[str, TransientError] = {}
        chunk: list[tuple[str, dict[str, Any]]] = []
        size = 0
        for record_id, entry in pending:
            entry_size = len(entry["MessageBody"].encode()) + _ATTRIBUTE_ROOM
            if chunk and (len(chunk) == MAX_BATCH_ENTRIES or size + entry_size > MAX_BATCH_BYTES):
                self._send(chunk, failed)
                chunk, size = [], 0
            chunk.append((record_id, entry))
            size += entry_size
        if chunk:
            self._send(chunk, failed)
        return failed

    def _send(self, chunk: list[tuple[str, dict[str, Any]]], failed: dict[str, TransientError]) -> None:
        entries = [{**entry, "Id": str(i)} for i, (_, entry) in enumerate(chunk)]
        try:
            answer = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            for record_id, _ in chunk:
                failed.setdefault(record_id, _enqueue_failed(str(exc)))
            return
        for problem in answer.get("Failed") or []:
            record_id = chunk[int(problem["Id"])][0]
            failed.setdefault(record_id, _enqueue_failed(f"{problem.get('Code')}: {problem.get('Message')}"))


def _enqueue_failed(detail: str) -> TransientError:
    return TransientError(f"cannot queue the history record: {detail}", reason="history_enqueue_failed")


# --------------------------------------------------------------------------- the writer


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """One history-queue message as the writer needs it."""

    message_id: str
    body: str
    classification: str | None
    receive_count: int


@dataclass(frozen=True, slots=True)
class WriterDeps:
    writer: HistoryWriter
    sqs: Any
    quarantine_queue_url: str
    retention_days: int
    #: the history queue's maxReceiveCount: a record still failing on this receive goes to the DLQ
    #: now, with its reason, instead of being moved there by SQS without one
    max_receives: int


@dataclass
class WriteOutcome:
    written: int = 0
    throttled: int = 0
    #: reason -> records quarantined
    quarantined: dict[str, int] = field(default_factory=dict)
    #: message id -> error, for the records to retry (batch item failures)
    retry: dict[str, TransientError] = field(default_factory=dict)


def write_history(messages: Sequence[HistoryMessage], deps: WriterDeps) -> WriteOutcome:
    """Write one batch of history messages; raises only TransientError (of the DLQ itself)."""
    outcome = WriteOutcome()
    items: list[tuple[str, Item]] = []
    for message in messages:
        try:
            items.append((message.message_id, _item(message, deps.retention_days)))
        except PermanentError as exc:
            _quarantine(message, exc.reason, str(exc), deps, outcome)
    result = deps.writer.write(items)
    outcome.written, outcome.throttled = result.written, result.throttled
    by_id = {m.message_id: m for m in messages}
    for message_id, error in result.failed.items():
        message = by_id[message_id]
        if message.receive_count >= deps.max_receives:
            _quarantine(message, error.reason, str(error), deps, outcome)
        else:
            outcome.retry[message_id] = error
    return outcome


def _item(message: HistoryMessage, retention_days: int) -> Item:
    envelope = parse_envelope(message.body)
    if not isinstance(envelope, PodEnvelope | KubeEventEnvelope | ObjectEnvelope):
        raise PermanentError(f"{envelope.kind} messages have no history", reason="not_history")
    return item_of(envelope, decode_classification(message.classification), retention_days=retention_days)


def _quarantine(
    message: HistoryMessage, reason: str, error: str, deps: WriterDeps, outcome: WriteOutcome
) -> None:
    send_to_quarantine(
        deps.sqs,
        deps.quarantine_queue_url,
        message.body,
        reason=reason,
        error=error,
        source_message_id=message.message_id,
    )
    outcome.quarantined[reason] = outcome.quarantined.get(reason, 0) + 1
