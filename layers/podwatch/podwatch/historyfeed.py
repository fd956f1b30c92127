"""The side path into the history table, kept out of the notifications' way.

    processor ── HistoryOutbox (packs, SendMessageBatch, after the notifications went) ──▶ SQS history
    history queue ──▶ history-writer: unpack → item (podwatch.history) → BatchWriteItem (retries)
                                       └ bad input, or the last receive failing ──▶ history DLQ + reason

The processor sends every pod, Kubernetes Event and `object` message it read (healthy ones too:
history is what happened) as it arrived, with its classification, packed: the records of one
invocation go in as few messages of at most one SQS billing chunk (64 KiB) as they fit. The writer
reads a pack or a single message (a redriven record, a record too big for a pack) alike. The table
is never in the processor's path. docs/internals.md ("History") says why this shape and gives the
pack's format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from podwatch.errors import MalformedMessage, PermanentError, TransientError
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
#: a pack's `kind`; a pack fills at most one 64 KiB chunk, what SQS bills as one request
PACK_KIND = "history_pack"
PACK_BYTES = 64 * 1024 - 1024
_PACK_HEAD = '{"kind":"' + PACK_KIND + '","v":1,"records":['
_PACK_TAIL = "]}"


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


def pack_record(record_id: str, body: str, classification: str | None) -> str:
    """One record of a pack, as JSON text: its source message id, classification and body. The body
    goes in as it is, a JSON value (the processor parsed it): escaping it as a string cost ~6 us
    a record, a tenth of the processor's whole budget."""
    head = '{"id":' + encode_basestring(record_id)
    if classification:
        head += ',"c":' + encode_basestring(classification)
    return head + ',"b":' + body + "}"


def pack(records: Sequence[str]) -> str:
    """A pack's body from records made by `pack_record`."""
    return _PACK_HEAD + ",".join(records) + _PACK_TAIL


@dataclass
class HistoryOutbox:
    """The history records of one processor invocation, packed and sent by `flush` after the
    notifications."""

    sqs: Any
    queue_url: str
    #: (record id, its JSON text in a pack) of what is queued; a record too big for a pack: single
    _records: list[tuple[str, str]] = field(default_factory=list)
    _singles: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: messages sent without their classification (the body alone filled the message)
    unclassified: int = 0
    #: messages sent by the last `flush` (packs and single records)
    messages_sent: int = 0

    def add(self, record_id: str, body: str, decisions: Sequence[_DecisionLike]) -> None:
        """Queue one pod or Kubernetes Event message, as it arrived, with its classification."""
        classes = classification_of(decisions)
        value = encode_classification(classes) if classes else None
        text = pack_record(record_id, body, value)
        if len(text.encode()) + len(_PACK_HEAD) + len(_PACK_TAIL) <= PACK_BYTES:
            self._records.append((record_id, text))
            return
        entry: dict[str, Any] = {"MessageBody": body}  # too big for a pack: sent on its own
        if value is not None:
            if len(body.encode()) + _ATTRIBUTE_ROOM <= MAX_MESSAGE_BYTES:
                entry["MessageAttributes"] = {
                    CLASSIFICATION_ATTRIBUTE: {"DataType": "String", "StringValue": value}
                }
            else:
                self.unclassified += 1
        self._singles.append((record_id, entry))

    def __len__(self) -> int:
        return len(self._records) + len(self._singles)

    def flush(self) -> dict[str, TransientError]:
        """Send what is queued; the records SQS did not take, with their errors (batch item failures)."""
        messages = self._packs() + [([record_id], entry) for record_id, entry in self._singles]
        self._records, self._singles = [], []
        self.messages_sent = len(messages)
        failed: dict[str, TransientError] = {}
        chunk: list[tuple[list[str], dict[str, Any]]] = []
        size = 0
        for record_ids, entry in messages:
            entry_size = len(entry["MessageBody"].encode()) + _ATTRIBUTE_ROOM
            if chunk and (len(chunk) == MAX_BATCH_ENTRIES or size + entry_size > MAX_BATCH_BYTES):
                self._send(chunk, failed)
                chunk, size = [], 0
            chunk.append((record_ids, entry))
            size += entry_size
        if chunk:
            self._send(chunk, failed)
        return failed

    def _packs(self) -> list[tuple[list[str], dict[str, Any]]]:
        packs: list[tuple[list[str], dict[str, Any]]] = []
        ids: list[str] = []
        texts: list[str] = []
        size = len(_PACK_HEAD) + len(_PACK_TAIL)
        for record_id, text in self._records:
            text_size = len(text.encode()) + 1
            if texts and size + text_size > PACK_BYTES:
                packs.append((ids, {"MessageBody": pack(texts)}))
                ids, texts, size = [], [], len(_PACK_HEAD) + len(_PACK_TAIL)
            ids.append(record_id)
            texts.append(text)
            size += text_size
        if texts:
            packs.append((ids, {"MessageBody": pack(texts)}))
        return packs

    def _send(self, chunk: list[tuple[list[str], dict[str, Any]]], failed: dict[str, TransientError]) -> None:
        entries = [{**entry, "Id": str(i)} for i, (_, entry) in enumerate(chunk)]
        try:
            answer = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            for record_ids, _ in chunk:
                for record_id in record_ids:
                    failed.setdefault(record_id, _enqueue_failed(str(exc)))
            return
        for problem in answer.get("Failed") or []:
            for record_id in chunk[int(problem["Id"])][0]:
                failed.setdefault(
                    record_id, _enqueue_failed(f"{problem.get('Code')}: {problem.get('Message')}")
                )


def _enqueue_failed(detail: str) -> TransientError:
    return TransientError(f"cannot queue the history record: {detail}", reason="history_enqueue_failed")


# --------------------------------------------------------------------------- the writer


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """One history record as the writer needs it: `message_id` is the SQS message that carried it
    (a pack carries several), `record_id` the pod-events message it came from (quarantine names it)."""

    message_id: str
    body: str
    classification: str | None
    receive_count: int
    record_id: str | None = None
    #: why a pack could not be read (its record is then the whole pack, quarantined as malformed)
    problem: str | None = None


def messages_of(
    message_id: str, body: str, classification: str | None, receive_count: int
) -> list[HistoryMessage]:
    """The records of one history-queue message: a pack's, or the message itself (a single record)."""
    if not body.startswith(_PACK_HEAD):
        return [HistoryMessage(message_id, body, classification, receive_count)]
    try:
        records = _pack_records(body)
    except MalformedMessage as exc:
        return [HistoryMessage(message_id, body, None, receive_count, problem=str(exc))]
    return [
        HistoryMessage(message_id, entry["body"], entry.get("c"), receive_count, record_id=entry["id"])
        for entry in records
    ]


def _pack_records(body: str) -> list[dict[str, str]]:
    """The records of a pack, each body back as JSON text (what `parse_envelope` then checks as
    strictly as any message: a NaN or a lone surrogate fails that record alone)."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from exc
    records = raw.get("records") if isinstance(raw, dict) else None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("id"), str) and "b" in r and isinstance(r.get("c", ""), str)
        for r in records
    ):
        raise MalformedMessage("a history pack needs records of {id, b, c?}")
    return [
        {
            "id": r["id"],
            "body": json.dumps(r["b"], separators=(",", ":"), ensure_ascii=False),
            "c": r.get("c"),
        }
        for r in records
    ]


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
    #: message id -> error, for the messages to retry (batch item failures; a pack whole)
    retry: dict[str, TransientError] = field(default_factory=dict)


def write_history(messages: Sequence[HistoryMessage], deps: WriterDeps) -> WriteOutcome:
    """Write one batch of history records; raises only TransientError (of the DLQ itself). A record
    that failed sends its SQS message back (a pack's other records are put again: idempotent)."""
    outcome = WriteOutcome()
    items: list[tuple[str, Item]] = []
    for n, message in enumerate(messages):
        try:
            items.append((str(n), _item(message, deps.retention_days)))
        except PermanentError as exc:
            _quarantine(message, exc.reason, str(exc), deps, outcome)
    result = deps.writer.write(items)
    outcome.written, outcome.throttled = result.written, result.throttled
    for position, error in result.failed.items():
        message = messages[int(position)]
        if message.receive_count >= deps.max_receives:
            _quarantine(message, error.reason, str(error), deps, outcome)
        else:
            outcome.retry.setdefault(message.message_id, error)
    return outcome


def _item(message: HistoryMessage, retention_days: int) -> Item:
    if message.problem is not None:
        raise MalformedMessage(f"unreadable history pack: {message.problem}")
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
        source_message_id=message.record_id or message.message_id,
    )
    outcome.quarantined[reason] = outcome.quarantined.get(reason, 0) + 1
