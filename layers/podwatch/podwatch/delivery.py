"""Deliver: a batch of deliveries-queue records → NotifyPodEvents calls, one per chunk.

    an EnrollCommand (podwatch.control) ──▶ RestateClient.enroll, first, one call per record
        (idempotency key = cluster + relay version); outcomes as for a chunk below
    parse each record as a Notification ──invalid──▶ quarantined (malformed), handled
    group by cluster_id (a notification repeated in the batch is sent once)
    chunk by RemoteConfig.batch_size ──▶ RestateClient.notify_pod_events(cluster_id, chunk)
        ok                           → delivered; one latency per notification, `observed_at` (the
                                       relay saw it) → the manager's 2xx answer (`latencies_ms`)
        DeliveryFailed / CircuitOpen → every record of the chunk is a batch item failure (SQS retries)
        DeliveryRejected (4xx)       → every record of the chunk is quarantined with the status and
                                       the response body attached, and handled (a 4xx never heals)
    a failure at a record's last receive (`max_receive_count`, the queue's redrive policy) →
        quarantined by us with the reason, the last status and body, instead of left for SQS to
        move to the DLQ bare

The result is per record (message id), because delivery succeeds or fails per chunk, not per record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from podwatch import telemetry
from podwatch.control import EnrollCommand, parse_command
from podwatch.errors import CircuitOpen, DeliveryRejected, MalformedMessage, TransientError
from podwatch.models import Notification, RemoteConfig, parse_notification, utcnow
from podwatch.quarantine import (
    REDRIVE_ATTRIBUTE,
    Failure,
    quarantine_last_receives,
    receive_count,
    send_to_quarantine,
)
from podwatch.restate import RestateClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliverDeps:
    restate: RestateClient
    #: boto3 SQS client, for the quarantine queue
    sqs: Any
    quarantine_queue_url: str
    #: when the manager's answer arrived (delivery latency); a fixed clock in tests
    clock: Callable[[], datetime] = utcnow
    #: the deliveries queue's maxReceiveCount: a record failing at this receive is quarantined with
    #: its reason (None: left to SQS's redrive, which keeps no reason)
    max_receive_count: int | None = None


@dataclass
class DeliveryResult:
    """What became of each record of one batch, by SQS message id."""

    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: message id → reason
    quarantined: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    tally: telemetry.Tally = field(default_factory=telemetry.Tally)
    #: per delivered notification (a repeat within the batch once): ms from `observed_at` to the
    #: manager's 2xx answer, never negative (the relay's clock may run ahead of this one)
    latencies_ms: list[float] = field(default_factory=list)


@dataclass(slots=True)
class _PendingNotification:
    """One notification to deliver, with every record of this batch that carries it."""

    notification: Notification
    #: every record carrying this notification (a processor retry may have sent it twice)
    records: list[tuple[str, str]]  # (message id, body)
    #: highest `redrive_count` among those records (set by `podwatch dlq redrive`), 0 if never redriven
    redrive: int = 0
    #: highest SQS receive count among those records
    receive: int = 1


#: (message id, body, command, redrive count, receive count)
_Command = tuple[str, str, EnrollCommand, int, int]


def redrive_count(record: Mapping[str, Any]) -> int:
    """The `redrive_count` message attribute of an SQS record as Lambda delivers it (0 if absent)."""
    attribute = (record.get("messageAttributes") or {}).get(REDRIVE_ATTRIBUTE) or {}
    value = attribute.get("stringValue")
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def latency_ms(notification: Notification, answered: datetime) -> float:
    """Milliseconds from the notification's `observed_at` to `answered` (0 if the relay's clock is
    ahead); a naive `observed_at` is taken as UTC, as the relay writes UTC."""
    observed = notification.observed_at
    if observed.tzinfo is None:
        observed = observed.replace(tzinfo=UTC)
    return max(0.0, round((answered - observed).total_seconds() * 1000, 1))


def deliver_records(
    records: Sequence[Mapping[str, Any]],
    *,
    deps: DeliverDeps,
    config: RemoteConfig,
    time_left: Callable[[], bool] | None = None,
) -> DeliveryResult:
    """Deliver SQS records (as Lambda sends them: `messageId`, `body`, ...). Never raises for a record:
    every one ends delivered, failed (retried by SQS) or quarantined.

    `time_left()` is asked before each call; once it says False, the rest become failures unsent.
    """
    batch = _Batch(deps=deps, result=DeliveryResult(), records=records)
    batch.result.tally.add(telemetry.RECEIVED, value=len(records))
    commands, by_cluster = _sort(batch, records)
    out_of_time = Failure("no_time_left", "not sent: the invocation was nearly over")
    for message_id, body, command, redrive, receive in commands:  # the manager learns of a cluster first
        if time_left is not None and not time_left():
            batch.fail([message_id], out_of_time)
            continue
        _enroll(batch, message_id, body, command, redrive=redrive, receive=receive)

    for cluster_id, items in by_cluster.items():
        pending = list(items.values())
        for start in range(0, len(pending), config.batch_size):
            chunk = pending[start : start + config.batch_size]
            chunk_records = [r for item in chunk for r in item.records]
            if time_left is not None and not time_left():
                batch.fail([message_id for message_id, _ in chunk_records], out_of_time)
                continue
            _deliver_chunk(batch, cluster_id, chunk, chunk_records)
    batch.quarantine_last_receives()
    batch.result.tally.add(telemetry.RETRIED, value=len(batch.result.failed))
    return batch.result


@dataclass
class _Batch:
    """One invocation's records under way: the result, and why each failed record failed (what its
    quarantine says if this was its last receive)."""

    deps: DeliverDeps
    result: DeliveryResult
    records: Sequence[Mapping[str, Any]] = ()
    failures: dict[str, Failure] = field(default_factory=dict)

    def fail(self, message_ids: Sequence[str], failure: Failure) -> None:
        self.result.failed.extend(message_ids)
        for message_id in message_ids:
            self.failures[message_id] = failure

    def quarantine_last_receives(self) -> None:
        """A failed record at the queue's maxReceiveCount goes to the DLQ now, with the reason, the
        last status and the manager's answer (`podwatch.quarantine.quarantine_last_receives`)."""
        deps, result = self.deps, self.result
        done = quarantine_last_receives(
            deps.sqs,
            deps.quarantine_queue_url,
            deps.max_receive_count,
            self.records,
            result.failed,
            self.failures,
        )
        result.failed = [m for m in result.failed if m not in done]
        for message_id, reason in done.items():
            result.quarantined[message_id] = reason
            result.tally.add(telemetry.QUARANTINED, reason=reason)


def _sort(
    batch: _Batch, records: Sequence[Mapping[str, Any]]
) -> tuple[list[_Command], dict[str, dict[str, _PendingNotification]]]:
    """Parse the records: enroll commands, and notifications by cluster (a repeat once); a record
    that is neither is quarantined."""
    by_cluster: dict[str, dict[str, _PendingNotification]] = {}
    commands: list[_Command] = []
    for record in records:
        message_id, body = str(record["messageId"]), str(record["body"])
        try:
            command = parse_command(body)
        except MalformedMessage as exc:
            _quarantine(batch.result, batch.deps, [(message_id, body)], reason=exc.reason, error=str(exc))
            continue
        if command is not None:
            commands.append((message_id, body, command, redrive_count(record), receive_count(record)))
            continue
        try:
            notification = parse_notification(body)
        except (ValidationError, ValueError, RecursionError) as exc:
            _quarantine(
                batch.result,
                batch.deps,
                [(message_id, body)],
                reason="malformed",
                error=f"not a Notification: {exc}",
            )
            continue
        items = by_cluster.setdefault(notification.cluster_id, {})
        item = items.get(notification.notification_id)
        if item is None:
            item = items[notification.notification_id] = _PendingNotification(notification, [])
        item.records.append((message_id, body))
        item.redrive = max(item.redrive, redrive_count(record))
        item.receive = max(item.receive, receive_count(record))
    return commands, by_cluster


def _deliver_chunk(
    batch: _Batch, cluster_id: str, chunk: list[_PendingNotification], chunk_records: list[tuple[str, str]]
) -> None:
    result, deps = batch.result, batch.deps
    try:
        answer = deps.restate.notify_pod_events(
            cluster_id,
            [item.notification for item in chunk],
            redrive=max(item.redrive for item in chunk),
            receive=max(item.receive for item in chunk),
        )
    except DeliveryRejected as exc:
        _rejected(result, deps, cluster_id, chunk_records, exc)
        return
    except TransientError as exc:
        _not_delivered(batch, [message_id for message_id, _ in chunk_records], exc)
        log.warning(
            "chunk not delivered; its records go back to the queue",
            extra={
                "cluster_id": cluster_id,
                "reason": exc.reason,
                "error": str(exc),
                "records": len(chunk_records),
            },
        )
        return
    answered = deps.clock()
    result.calls += 1
    result.delivered.extend(message_id for message_id, _ in chunk_records)
    result.tally.add(telemetry.DELIVERED, value=len(chunk))
    result.latencies_ms.extend(latency_ms(item.notification, answered) for item in chunk)
    log.info(
        "chunk delivered",
        extra={"cluster_id": cluster_id, "notifications": len(chunk), "answer": answer},
    )


def _not_delivered(batch: _Batch, message_ids: list[str], exc: TransientError) -> None:
    """Records a transient failure sends back to the queue (counted as a call unless none was made)."""
    if isinstance(exc, CircuitOpen):
        batch.result.tally.add(telemetry.CIRCUIT_OPEN, value=len(message_ids))
    else:
        batch.result.calls += 1
    batch.fail(message_ids, Failure.of(exc))


def _enroll(
    batch: _Batch, message_id: str, body: str, command: EnrollCommand, *, redrive: int, receive: int
) -> None:
    result, deps = batch.result, batch.deps
    request = command.request
    try:
        answer = deps.restate.enroll(request, redrive=redrive, receive=receive)
    except DeliveryRejected as exc:
        _rejected(result, deps, request.cluster_id, [(message_id, body)], exc)
        return
    except TransientError as exc:
        _not_delivered(batch, [message_id], exc)
        log.warning(
            "enrollment not delivered; back to the queue",
            extra={"cluster_id": request.cluster_id, "reason": exc.reason, "error": str(exc)},
        )
        return
    result.calls += 1
    result.delivered.append(message_id)
    result.tally.add(telemetry.ENROLLED)
    log.info(
        "cluster enrolled",
        extra={"cluster_id": request.cluster_id, "relay_version": request.relay_version, "answer": answer},
    )


def _rejected(
    result: DeliveryResult,
    deps: DeliverDeps,
    cluster_id: str,
    chunk_records: list[tuple[str, str]],
    exc: DeliveryRejected,
) -> None:
    result.calls += 1
    result.tally.add(telemetry.DELIVERY_REJECTED, value=len(chunk_records))
    if exc.status_code in (401, 403):
        result.tally.add(telemetry.DELIVERY_UNAUTHORIZED)
    log.error(
        "manager rejected a chunk; quarantining its records",
        extra={"cluster_id": cluster_id, "status_code": exc.status_code, "records": len(chunk_records)},
    )
    _quarantine(
        result,
        deps,
        chunk_records,
        reason=exc.reason,
        error=str(exc),
        extra={"status_code": str(exc.status_code), "response_body": exc.body},
    )


def _quarantine(
    result: DeliveryResult,
    deps: DeliverDeps,
    records: list[tuple[str, str]],
    *,
    reason: str,
    error: str,
    extra: Mapping[str, str] | None = None,
) -> None:
    for message_id, body in records:
        try:
            send_to_quarantine(
                deps.sqs,
                deps.quarantine_queue_url,
                body,
                reason=reason,
                error=error,
                source_message_id=message_id,
                extra_attributes=extra,
            )
        except TransientError as exc:
            log.warning("quarantine failed; record goes back to the queue", extra={"error": str(exc)})
            result.failed.append(message_id)
            continue
        result.quarantined[message_id] = reason
        result.tally.add(telemetry.QUARANTINED, reason=reason)
