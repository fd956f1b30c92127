"""Fan-out: every notification the processor forwards also goes to the stack's EventBridge bus, for
anyone else (hooks, a user's Slack, a webhook), independent of the Restate path in both directions.

    processor: deliveries queue took the notification ──▶ `Forwarder` ──▶ fan-out queue (SQS)
        a send the fan-out queue refuses is counted (FanoutFailed) and logged with the ids; the
        record is NOT failed, so a fan-out problem never re-sends anything to the Restate path
    fanout function: fan-out queue ──▶ `publish_records` ──▶ PutEvents (≤ 10 entries a call)
        source `podwatch`, detail-type = the event type (`crash-loop`, ...), detail = the Notification
        an entry EventBridge refuses (or a failed call) → its record is a batch item failure (SQS
        retries it); at its last receive (`max_receive_count`) it goes to the fan-out DLQ with the
        reason `publish_failed` and EventBridge's error instead of bare; a body that is no
        Notification → quarantined (malformed)

Why a queue and a function of its own, not PutEvents in the processor: docs/internals.md, "Fan-out".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from podwatch import telemetry
from podwatch.models import Notification, parse_notification
from podwatch.quarantine import Failure, quarantine_last_receives, send_to_quarantine

log = logging.getLogger(__name__)

#: `source` of every event podwatch puts on the bus
SOURCE = "podwatch"
#: PutEvents takes at most 10 entries and 256 KiB a call (with room for the envelope of each entry)
MAX_ENTRIES = 10
MAX_CALL_BYTES = 256 * 1024 - 8 * 1024
#: SendMessageBatch takes at most 10 entries
MAX_SQS_ENTRIES = 10
#: the quarantine reason of a record EventBridge kept refusing until its last receive
PUBLISH_FAILED = "publish_failed"


@dataclass
class Forwarder:
    """The processor's hand-off to the fan-out queue: entries the deliveries queue took are added,
    `flush` sends them (SendMessageBatch) and counts what was not taken in `failed`."""

    sqs: Any
    queue_url: str
    failed: int = 0
    _pending: list[dict[str, Any]] = field(default_factory=list)

    def add(self, entry: Mapping[str, Any]) -> None:
        self._pending.append({k: v for k, v in entry.items() if k != "Id"})

    def flush(self) -> int:
        """Send what was added; returns (and adds to `failed`) the notifications not taken."""
        pending, self._pending = self._pending, []
        lost = 0
        for start in range(0, len(pending), MAX_SQS_ENTRIES):
            chunk = [{"Id": str(i), **e} for i, e in enumerate(pending[start : start + MAX_SQS_ENTRIES])]
            try:
                answer = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=chunk)
                refused = [chunk[int(f["Id"])] for f in answer.get("Failed") or []]
            except (ClientError, BotoCoreError) as exc:
                log.warning("fan-out queue refused a batch: %s", exc)
                refused = chunk
            if refused:
                log.error(
                    "notifications not fanned out (delivered to the manager all the same)",
                    extra={"fanout_failed": [e["MessageBody"][:200] for e in refused]},
                )
            lost += len(refused)
        self.failed += lost
        return lost


@dataclass(frozen=True, slots=True)
class PublishDeps:
    #: boto3 EventBridge client
    events: Any
    bus_name: str
    #: boto3 SQS client, for the quarantine queue (the fan-out DLQ)
    sqs: Any
    quarantine_queue_url: str
    #: the fan-out queue's maxReceiveCount: a record failing at this receive is quarantined with
    #: its reason (None: left to SQS's redrive, which keeps no reason)
    max_receive_count: int | None = None


@dataclass
class PublishResult:
    """What became of each record of one batch, by SQS message id."""

    published: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    tally: telemetry.Tally = field(default_factory=telemetry.Tally)
    #: why each failed record failed (its quarantine's reason and error at its last receive)
    failures: dict[str, Failure] = field(default_factory=dict)

    def fail(self, message_id: str, reason: str, error: str) -> None:
        self.failed.append(message_id)
        self.failures[message_id] = Failure(reason, error)


def bus_entry(notification: Notification, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry of one notification (docs/internals.md, "Fan-out": the event shape)."""
    return {
        "Source": SOURCE,
        "DetailType": notification.event_type.value,
        "Detail": notification.model_dump_json(),
        "EventBusName": bus_name,
        "Time": notification.observed_at,
    }


def publish_records(records: Sequence[Mapping[str, Any]], *, deps: PublishDeps) -> PublishResult:
    """Publish SQS records (fan-out queue, as Lambda sends them) to the bus. Never raises for a
    record: each ends published, failed (SQS retries it) or quarantined."""
    result = PublishResult()
    result.tally.add(telemetry.RECEIVED, value=len(records))
    ready: list[tuple[str, dict[str, Any]]] = []
    for record in records:
        message_id, body = str(record["messageId"]), str(record["body"])
        try:
            notification = parse_notification(body)
        except (ValidationError, ValueError) as exc:
            send_to_quarantine(
                deps.sqs,
                deps.quarantine_queue_url,
                body,
                reason="malformed",
                error=f"not a Notification: {exc}",
                source_message_id=message_id,
            )
            result.quarantined.append(message_id)
            continue
        ready.append((message_id, bus_entry(notification, deps.bus_name)))
    for chunk in _chunks(ready):
        _put(deps.events, chunk, result)
    last = quarantine_last_receives(
        deps.sqs, deps.quarantine_queue_url, deps.max_receive_count, records, result.failed, result.failures
    )
    result.failed = [m for m in result.failed if m not in last]
    result.quarantined += list(last)
    result.tally.add(telemetry.PUBLISHED, value=len(result.published))
    result.tally.add(telemetry.QUARANTINED, value=len(result.quarantined))
    result.tally.add(telemetry.RETRIED, value=len(result.failed))
    return result


def _chunks(ready: list[tuple[str, dict[str, Any]]]) -> list[list[tuple[str, dict[str, Any]]]]:
    chunks: list[list[tuple[str, dict[str, Any]]]] = []
    size = 0
    for item in ready:
        entry_size = len(item[1]["Detail"].encode()) + 512
        if not chunks or len(chunks[-1]) == MAX_ENTRIES or size + entry_size > MAX_CALL_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += entry_size
    return chunks


def _put(events: Any, chunk: list[tuple[str, dict[str, Any]]], result: PublishResult) -> None:
    try:
        answer = events.put_events(Entries=[entry for _, entry in chunk])
    except (ClientError, BotoCoreError) as exc:
        log.warning("PutEvents failed; the records go back to SQS: %s", exc)
        for message_id, _ in chunk:
            result.fail(message_id, PUBLISH_FAILED, f"PutEvents failed: {exc}")
        return
    # the answer's entries are in the order of the request's; a refused one has an ErrorCode
    for (message_id, _), outcome in zip(chunk, answer.get("Entries") or [], strict=False):
        if outcome.get("ErrorCode"):
            log.warning(
                "EventBridge refused an entry: %s %s", outcome["ErrorCode"], outcome.get("ErrorMessage")
            )
            error = (
                f"EventBridge refused the entry: {outcome['ErrorCode']} {outcome.get('ErrorMessage') or ''}"
            )
            result.fail(message_id, PUBLISH_FAILED, error.strip())
        else:
            result.published.append(message_id)
    answered = len(answer.get("Entries") or [])
    for message_id, _ in chunk[answered:]:
        result.fail(message_id, PUBLISH_FAILED, f"PutEvents answered {answered} of {len(chunk)} entries")
