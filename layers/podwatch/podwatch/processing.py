"""The processor's decisions for one SQS record, with its AWS side effects behind `ProcessorDeps`.

    parse_envelope ──PermanentError──▶ quarantined (original body → quarantine queue, handled)
        │
        ├─ enroll / heartbeat ──▶ control (logged and counted; Restate calls come with enrollment)
        ▼
    classify ──no finding──▶ filtered (healthy | deleted)
        │ per finding
        ├─ namespace ignored ──▶ filtered ignored_namespace
        ├─ type not enabled ───▶ filtered disabled:<type>
        ├─ dedup claim duplicate ──▶ deduplicated cooldown
        ▼
    enrich → Notification → deliveries queue ──▶ forwarded (opened | same_event | no_cooldown)

Errors: a PermanentError of the input is quarantined here and never raised; a TransientError
(DynamoDB throttling, SQS send failure) is raised, so the record becomes a batch item failure and
SQS retries it; the retry passes dedup as `same_event` because its event_id opened the window.
Every decision is written to the audit log (`podwatch.audit`) as it is made.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from podwatch import audit, ids
from podwatch.audit import Action, AuditRecord
from podwatch.classify import Finding, classify
from podwatch.dedup import Claim, DedupStore, dedup_key
from podwatch.enrich import build_notification, subject_of
from podwatch.errors import PermanentError, TransientError
from podwatch.models import KubeEventEnvelope, Notification, PodEnvelope, RemoteConfig
from podwatch.quarantine import send_to_quarantine
from podwatch.wire import parse_envelope

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessorDeps:
    """What the processor talks to. `sqs` is a boto3 SQS client."""

    dedup: DedupStore
    sqs: Any
    deliveries_queue_url: str
    quarantine_queue_url: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What happened to one finding of one record (or to the whole record, if it had none)."""

    record: AuditRecord
    notification: Notification | None = None
    #: the error message of a quarantined record
    detail: str | None = None

    @property
    def action(self) -> Action:
        return self.record.action

    @property
    def reason(self) -> str:
        return self.record.reason


def process_record(
    body: str,
    *,
    deps: ProcessorDeps,
    config: RemoteConfig,
    now: datetime,
    message_id: str | None = None,
) -> list[Decision]:
    """Decide what happens to one pod-events message; raises only TransientError."""
    try:
        envelope = parse_envelope(body)
    except PermanentError as exc:
        return [_quarantine(body, exc, deps=deps, config=config, message_id=message_id)]
    payload_hash = audit.payload_sha256(envelope.payload)
    if not isinstance(envelope, (PodEnvelope, KubeEventEnvelope)):
        record = AuditRecord(
            action="control",
            reason=envelope.kind,
            event_id=envelope.event_id,
            kind=envelope.kind,
            namespace=None,
            pod=None,
            event_type=None,
            notification_id=None,
            dedup_key=None,
            payload_sha256=payload_hash,
            config_version=config.version,
        )
        audit.emit(record)
        return [Decision(record)]
    findings = classify(envelope)
    if not findings:
        deleted = envelope.payload.watch_type == "DELETED"
        record = _record(envelope, payload_hash, config, "filtered", "deleted" if deleted else "healthy")
        audit.emit(record)
        return [Decision(record)]
    decisions: list[Decision] = []
    keys_seen: set[str] = set()
    for finding in findings:
        decision = _decide(
            finding,
            envelope,
            payload_hash=payload_hash,
            deps=deps,
            config=config,
            now=now,
            keys_seen=keys_seen,
        )
        audit.emit(decision.record)
        decisions.append(decision)
    return decisions


def _record(
    envelope: PodEnvelope | KubeEventEnvelope,
    payload_hash: str,
    config: RemoteConfig,
    action: Action,
    reason: str,
    finding: Finding | None = None,
    key: str | None = None,
) -> AuditRecord:
    namespace, pod = subject_of(envelope)
    return AuditRecord(
        action=action,
        reason=reason,
        event_id=envelope.event_id,
        kind=envelope.kind,
        namespace=namespace,
        pod=pod,
        event_type=finding.event_type.value if finding else None,
        notification_id=ids.notification_id(envelope.event_id, finding.event_type, finding.container)
        if finding
        else None,
        dedup_key=key,
        payload_sha256=payload_hash,
        config_version=config.version,
    )


def _decide(
    finding: Finding,
    envelope: PodEnvelope | KubeEventEnvelope,
    *,
    payload_hash: str,
    deps: ProcessorDeps,
    config: RemoteConfig,
    now: datetime,
    keys_seen: set[str],
) -> Decision:
    namespace, _ = subject_of(envelope)
    if namespace in config.ignored_namespaces:
        return Decision(_record(envelope, payload_hash, config, "filtered", "ignored_namespace", finding))
    if finding.event_type not in config.enabled_reasons:
        return Decision(
            _record(envelope, payload_hash, config, "filtered", f"disabled:{finding.event_type}", finding)
        )
    key = dedup_key(finding, envelope, config.dedup_scope)
    if key in keys_seen:
        # Pod or workload scope: two containers of one event name the same trouble; one alert.
        return Decision(
            _record(envelope, payload_hash, config, "deduplicated", "same_event_key", finding, key)
        )
    keys_seen.add(key)
    if config.dedup_cooldown_seconds > 0:
        claim = deps.dedup.claim(key, envelope.event_id, config.dedup_cooldown_seconds, now)
        if claim is Claim.DUPLICATE:
            return Decision(_record(envelope, payload_hash, config, "deduplicated", "cooldown", finding, key))
        reason = claim.value
    else:
        reason = "no_cooldown"
    notification = build_notification(finding, envelope, config=config, dedup_key=key, now=now)
    forward(notification, sqs=deps.sqs, queue_url=deps.deliveries_queue_url)
    return Decision(_record(envelope, payload_hash, config, "forwarded", reason, finding, key), notification)


def forward(notification: Notification, *, sqs: Any, queue_url: str) -> None:
    """One Notification → the deliveries queue; TransientError if SQS does not take it."""
    try:
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=notification.model_dump_json(),
            MessageAttributes={
                "event_type": {"DataType": "String", "StringValue": notification.event_type.value},
                "cluster_id": {"DataType": "String", "StringValue": notification.cluster_id},
            },
        )
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(
            f"cannot forward notification {notification.notification_id}: {exc}", reason="forward_failed"
        ) from exc


def _peek(body: str) -> dict[str, Any]:
    """Best-effort look into a body that failed to parse, for the audit record only."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _quarantine(
    body: str, exc: PermanentError, *, deps: ProcessorDeps, config: RemoteConfig, message_id: str | None
) -> Decision:
    send_to_quarantine(
        deps.sqs,
        deps.quarantine_queue_url,
        body,
        reason=exc.reason,
        error=str(exc),
        source_message_id=message_id,
    )
    raw = _peek(body) if len(body) <= 64 * 1024 else {}
    event_id, kind = raw.get("event_id"), raw.get("kind")
    record = AuditRecord(
        action="quarantined",
        reason=exc.reason,
        event_id=event_id if isinstance(event_id, str) else None,
        kind=kind if isinstance(kind, str) else None,
        namespace=None,
        pod=None,
        event_type=None,
        notification_id=None,
        dedup_key=None,
        payload_sha256=audit.payload_sha256(None, body),
        config_version=config.version,
    )
    log.warning(
        "message quarantined",
        extra={
            "reason": exc.reason,
            "error": str(exc),
            "message_id": message_id,
            "event_id": record.event_id,
        },
    )
    audit.emit(record)
    return Decision(record, detail=str(exc))
