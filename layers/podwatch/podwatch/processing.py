"""The processor's decisions for one SQS record, with its AWS side effects behind `ProcessorDeps`.

    parse_envelope ──PermanentError──▶ quarantined (original body → quarantine queue, handled)
        │
        ├─ enroll / heartbeat ──▶ control (logged and counted; Restate calls come with enrollment)
        ├─ hook ──▶ control hook_applied | hook_deleted | hook_absent (hooks table, `hooks.cluster`)
        ▼
    pod metadata row (when it is news: `metadata`)
        ▼
    classify ──no finding──▶ filtered (healthy | deleted; an `object`: history_only)
        │ per finding
        ├─ namespace ignored ──▶ filtered ignored_namespace
        ├─ type not enabled ───▶ filtered disabled:<type>
        ├─ trouble: dedup claim ── repeat inside the cooldown ──▶ deduplicated cooldown (count bumped)
        ├─ recovered: resolve ─── no open incident ──▶ filtered no_incident
        │                    └── other replicas still affected ──▶ deduplicated partial_recovery
        ▼
    enrich → Notification → outbox ──(SendMessageBatch)──▶ forwarded (opened | same_event |
                                                           no_cooldown | resolved)

Forwarding is batched per invocation: `process_record` puts a record's notifications in the
`NotificationOutbox`, and the handler flushes it once every record is decided, in SendMessageBatch
calls of up to 10. A record with a notification SQS did not take becomes a batch item failure
(`podwatch.kit.item_failures`); SQS retries it, and the retry passes dedup as `same_event`, because
its event_id opened the window (or resolved the incident). A forwarded decision is audited once SQS
took its notification.

Errors: a PermanentError of the input is quarantined here and never raised; a TransientError
(DynamoDB throttling, SQS send failure) is raised, so the record becomes a batch item failure and
SQS retries it. Every other decision is written to the audit log (`podwatch.audit`) as it is made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from podwatch import audit, ids, wire
from podwatch.audit import Action, AuditRecord
from podwatch.classify import Finding, Thresholds, classify
from podwatch.control import ControlHandler
from podwatch.dedup import Claim, DedupStore, Outcome, dedup_key, window_time
from podwatch.enrich import Incident, build_notification
from podwatch.errors import MalformedMessage, PermanentError, TransientError
from podwatch.fanout import Forwarder
from podwatch.metadata import MetadataStore, PodMetadata
from podwatch.models import (
    MAX_MESSAGE_BYTES,
    SUPPORTED_SCHEMA_VERSIONS,
    EnvelopeAdapter,
    EventType,
    HookEnvelope,
    KubeEventEnvelope,
    Notification,
    ObjectEnvelope,
    PodEnvelope,
    RemoteConfig,
)
from podwatch.quarantine import send_to_quarantine
from podwatch.webui import view_url
from podwatch.wire import AnyEnvelope, may_hold_surrogates, parse_envelope
from podwatch.workload import subject_of

if TYPE_CHECKING:
    from podwatch.hooks.state import HookStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessorDeps:
    """What the processor talks to. `sqs` is a boto3 SQS client."""

    dedup: DedupStore
    sqs: Any
    deliveries_queue_url: str
    quarantine_queue_url: str
    #: the pod metadata table; None: no rows written, Kubernetes Events stay without owner ids
    metadata: MetadataStore | None = None
    #: enroll/heartbeat handling (`podwatch.control`); None: control messages are only audited
    control: ControlHandler | None = None
    #: the hooks table, for `hook` envelopes; None: they are quarantined (`hooks_not_configured`)
    hooks: HookStore | None = None
    #: the timeline page's URL: each notification links to its pod's view (`history_url`); None: no link
    history_page_url: str | None = None


class Decision(NamedTuple):
    """What happened to one finding of one record (or to the whole record, if it had none).

    A NamedTuple: one or more are made per event, and a frozen dataclass costs more to make."""

    record: AuditRecord
    notification: Notification | None = None
    #: the error message of a quarantined record
    detail: str | None = None
    #: on a record's first decision: why its observed time was not believed ("future" | "past")
    untrusted_time: str | None = None

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
    outbox: NotificationOutbox | None = None,
) -> list[Decision]:
    """Decide what happens to one pod-events message; raises only TransientError.

    Notifications go to `outbox` (flushed by the caller for the whole batch); without one they are
    sent before this returns.
    """
    try:
        envelope = _parse(body)
    except PermanentError as exc:
        return [_quarantine(body, exc, deps=deps, config=config, message_id=message_id)]
    try:
        payload_hash = audit.payload_sha256(envelope.payload)
    except ValueError as exc:  # PydanticSerializationError: what was read cannot be written again
        unwritable = MalformedMessage(f"payload cannot be serialised: {exc}")
        return [_quarantine(body, unwritable, deps=deps, config=config, message_id=message_id)]
    if isinstance(envelope, HookEnvelope):
        try:
            return [_hook(envelope, payload_hash, deps=deps, config=config, now=now)]
        except PermanentError as exc:
            return [_quarantine(body, exc, deps=deps, config=config, message_id=message_id)]
    if not isinstance(envelope, (PodEnvelope, KubeEventEnvelope, ObjectEnvelope)):
        if deps.control is not None:
            deps.control.handle(envelope, now)
        return [_control(envelope, envelope.kind, payload_hash, config)]
    _remember_pod(envelope, deps=deps, config=config, now=now)
    findings = classify(
        envelope,
        thresholds=Thresholds(
            config.pending_too_long_seconds, config.not_ready_too_long_seconds, config.crash_loop_restarts
        ),
    )
    facts = _Facts(envelope, payload_hash, config.version)
    if not findings:
        deleted = envelope.payload.watch_type == "DELETED"
        why = "history_only" if isinstance(envelope, ObjectEnvelope) else "deleted" if deleted else "healthy"
        record = facts.record("filtered", why)
        audit.emit(record)
        return [Decision(record)]
    decisions: list[Decision] = []
    keys_seen: set[str] = set()
    # windows run on when the trouble was observed, so a backlog does not reopen an incident
    window_at, untrusted = window_time(envelope.payload.observed_at, now)
    for finding in findings:
        decision = _decide(
            finding,
            envelope,
            facts=facts,
            deps=deps,
            config=config,
            now=now,
            window_at=window_at,
            keys_seen=keys_seen,
        )
        if decision.notification is None:
            audit.emit(decision.record)
        decisions.append(decision)
    if untrusted is not None:
        decisions[0] = decisions[0]._replace(untrusted_time=untrusted)
        log.warning(
            "observed time not believed; the processor's clock is used",
            extra={
                "event_id": envelope.event_id,
                "observed_at": str(envelope.payload.observed_at),
                "why": untrusted,
            },
        )
    _forward(decisions, message_id or "", deps=deps, outbox=outbox)
    return decisions


def _remember_pod(envelope: AnyEnvelope, *, deps: ProcessorDeps, config: RemoteConfig, now: datetime) -> None:
    """The pod's metadata row, when it is news (`metadata`); only a live pod's own event tells it."""
    if (
        deps.metadata is not None
        and isinstance(envelope, PodEnvelope)
        and envelope.payload.watch_type != "DELETED"
        and envelope.payload.namespace not in config.ignored_namespaces
    ):
        deps.metadata.remember(
            PodMetadata.of_pod(envelope.cluster_id, envelope.payload, config),
            now,
            refresh_s=config.dedup_cooldown_seconds,
        )


def _forward(
    decisions: list[Decision], message_id: str, *, deps: ProcessorDeps, outbox: NotificationOutbox | None
) -> None:
    """Notifications into the batch's outbox; without one (a single record), sent before returning."""
    if not any(d.notification is not None for d in decisions):
        return
    if outbox is not None:
        outbox.add(message_id, decisions)
        return
    single = NotificationOutbox(sqs=deps.sqs, queue_url=deps.deliveries_queue_url)
    single.add(message_id, decisions)
    for error in single.flush().values():
        raise error


def _parse(body: str) -> AnyEnvelope:
    """`parse_envelope`, with a fast path for the common case of a well-formed body: one strict
    validation straight from the JSON text (no intermediate dict). Anything the fast path does not
    accept — oversize-capable, a `\\uD...` escape (a lone surrogate is refused there), not strictly
    valid, an unsupported version — goes through
    `parse_envelope`, which gives the precise, typed error (or, for a merely lax body, the envelope).
    Strict validation accepts a subset of what the lax path accepts, with the same result."""
    if len(body) <= _FAST_PATH_MAX_CHARS and not may_hold_surrogates(body):
        try:
            envelope = EnvelopeAdapter.validate_json(body, strict=True)
        except ValidationError:
            return parse_envelope(body)
        if envelope.schema_version in SUPPORTED_SCHEMA_VERSIONS:
            return envelope
    return parse_envelope(body)


#: a body of at most this many characters cannot exceed MAX_MESSAGE_BYTES (≤ 4 UTF-8 bytes each)
_FAST_PATH_MAX_CHARS = MAX_MESSAGE_BYTES // 4


class _Facts:
    """What every audit record of one envelope shares (worked out once per envelope)."""

    __slots__ = ("config_version", "event_id", "kind", "namespace", "payload_hash", "pod")

    def __init__(
        self,
        envelope: PodEnvelope | KubeEventEnvelope | ObjectEnvelope,
        payload_hash: str,
        config_version: str,
    ) -> None:
        self.event_id = envelope.event_id
        self.kind = envelope.kind
        self.namespace, self.pod = subject_of(envelope)
        self.payload_hash = payload_hash
        self.config_version = config_version

    def record(
        self,
        action: Action,
        reason: str,
        finding: Finding | None = None,
        key: str | None = None,
        notification_id: str | None = None,
    ) -> AuditRecord:
        # positional, in AuditRecord's field order (keywords cost a third more, once per event)
        return AuditRecord(
            action,
            reason,
            self.event_id,
            self.kind,
            self.namespace,
            self.pod,
            finding.event_type.value if finding else None,
            notification_id,
            key,
            self.payload_hash,
            self.config_version,
        )


def _decide(
    finding: Finding,
    envelope: PodEnvelope | KubeEventEnvelope | ObjectEnvelope,
    *,
    facts: _Facts,
    deps: ProcessorDeps,
    config: RemoteConfig,
    now: datetime,
    window_at: datetime,
    keys_seen: set[str],
) -> Decision:
    """`now`: the processor's clock (processed_at); `window_at`: the event's time, for the windows."""
    pod = facts.pod
    nid = ids.notification_id(facts.event_id, finding.event_type, finding.container)
    if facts.namespace in config.ignored_namespaces:
        return Decision(facts.record("filtered", "ignored_namespace", finding, None, nid))
    if finding.event_type not in config.enabled_reasons:
        return Decision(facts.record("filtered", f"disabled:{finding.event_type}", finding, None, nid))
    key = dedup_key(finding, envelope, config.dedup_scope)
    if key in keys_seen:
        # Pod or workload scope: two containers of one event name the same trouble; one alert.
        return Decision(facts.record("deduplicated", "same_event_key", finding, key, nid))
    keys_seen.add(key)
    incident: Incident | None = None
    if finding.event_type is EventType.RECOVERED:
        if config.dedup_cooldown_seconds <= 0:  # no windows, so no incidents to resolve
            return Decision(facts.record("filtered", "no_incident", finding, key, nid))
        outcome = deps.dedup.resolve(
            key, envelope.event_id, window_at, pod=pod, workload=config.dedup_scope == "workload"
        )
        if outcome.claim is Claim.NO_INCIDENT:
            return Decision(facts.record("filtered", "no_incident", finding, key, nid))
        if outcome.claim is Claim.PARTIAL_RECOVERY:
            return Decision(facts.record("deduplicated", "partial_recovery", finding, key, nid))
        reason = outcome.claim.value  # resolved | same_event
        incident = _incident("resolved", outcome)
    elif config.dedup_cooldown_seconds > 0:
        outcome = deps.dedup.claim(
            key, envelope.event_id, config.dedup_cooldown_seconds, window_at, pod=pod, received_at=now
        )
        if outcome.claim is Claim.DUPLICATE:
            return Decision(facts.record("deduplicated", "cooldown", finding, key, nid))
        reason = outcome.claim.value  # opened | same_event
        incident = _incident("firing", outcome)
    else:
        reason = "no_cooldown"
    owner = None
    if isinstance(envelope, KubeEventEnvelope) and deps.metadata is not None:
        owner = deps.metadata.get_metadata(envelope.cluster_id, facts.namespace, pod)
    notification = build_notification(
        finding,
        envelope,
        config=config,
        dedup_key=key,
        now=now,
        incident=incident,
        owner=owner,
        notification_id=nid,
    )
    if deps.history_page_url:
        notification = notification.model_copy(update={"history_url": _history_url(deps, notification)})
    return Decision(facts.record("forwarded", reason, finding, key, nid), notification)


def _hook(
    envelope: HookEnvelope, payload_hash: str, *, deps: ProcessorDeps, config: RemoteConfig, now: datetime
) -> Decision:
    """Apply or delete a Hook watched in the cluster (`hooks.cluster`); PermanentError if it is bad."""
    from podwatch.hooks.cluster import apply_hook_object  # only hook envelopes need the rules' models

    if deps.hooks is None:
        raise PermanentError(
            "a hook envelope arrived but the processor has no hooks table (HOOKS_TABLE_NAME)",
            reason="hooks_not_configured",
        )
    hook = envelope.payload
    outcome = apply_hook_object(deps.hooks, hook, cluster=envelope.cluster_id, now_s=int(now.timestamp()))
    return _control(envelope, outcome, payload_hash, config, subject=(hook.namespace, hook.name))


def _control(
    envelope: AnyEnvelope,
    reason: str,
    payload_hash: str,
    config: RemoteConfig,
    subject: tuple[str | None, str | None] = (None, None),
) -> Decision:
    """The audited decision of a message that is no event (enroll, heartbeat, a Hook's change)."""
    record = AuditRecord(
        action="control",
        reason=reason,
        event_id=envelope.event_id,
        kind=envelope.kind,
        namespace=subject[0],
        pod=subject[1],
        event_type=None,
        notification_id=None,
        dedup_key=None,
        payload_sha256=payload_hash,
        config_version=config.version,
    )
    audit.emit(record)
    return Decision(record)


def _history_url(deps: ProcessorDeps, notification: Notification) -> str:
    return view_url(
        str(deps.history_page_url),
        cluster=notification.cluster_id,
        namespace=notification.namespace,
        pod=notification.pod,
        around=notification.observed_at,
    )


def _incident(state: str, outcome: Outcome) -> Incident:
    return Incident(
        state="resolved" if state == "resolved" else "firing",
        count=outcome.count,
        pods=outcome.pods,
        pod_count=outcome.pod_count or None,
        opened_at=outcome.opened_at,
    )


# --------------------------------------------------------------------------- batched forwarding

#: SendMessageBatch takes at most 10 entries and 256 KiB in all; leave room for attributes.
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 240 * 1024


def _entry(entry_id: str, notification: Notification) -> dict[str, Any]:
    return {
        "Id": entry_id,
        "MessageBody": notification.model_dump_json(),
        "MessageAttributes": {
            "event_type": {"DataType": "String", "StringValue": notification.event_type.value},
            "cluster_id": {"DataType": "String", "StringValue": notification.cluster_id},
        },
    }


@dataclass
class NotificationOutbox:
    """The notifications of one invocation, sent together by `flush` (SendMessageBatch)."""

    sqs: Any
    queue_url: str
    #: the fan-out queue's forwarder (podwatch.fanout): gets what the deliveries queue took
    fanout: Forwarder | None = None
    _pending: list[tuple[str, Decision]] = field(default_factory=list)

    def add(self, record_id: str, decisions: Iterable[Decision]) -> None:
        """Queue the forwarded decisions of one record (a record that raised adds nothing)."""
        self._pending.extend((record_id, d) for d in decisions if d.notification is not None)

    def __len__(self) -> int:
        return len(self._pending)

    def flush(self) -> dict[str, TransientError]:
        """Send everything queued; audit each forwarded decision SQS took. Returns the records with
        a notification SQS did not take, each with its error (so they become batch item failures)."""
        pending, self._pending = self._pending, []
        failed: dict[str, TransientError] = {}
        chunk: list[tuple[str, Decision, dict[str, Any]]] = []
        size = 0
        for record_id, decision in pending:
            assert decision.notification is not None
            entry = _entry(str(len(chunk)), decision.notification)
            entry_size = len(entry["MessageBody"].encode()) + 256
            if chunk and (len(chunk) == MAX_BATCH_ENTRIES or size + entry_size > MAX_BATCH_BYTES):
                self._send(chunk, failed)
                chunk, size = [], 0
                entry["Id"] = "0"
            chunk.append((record_id, decision, entry))
            size += entry_size
        if chunk:
            self._send(chunk, failed)
        if self.fanout is not None:
            self.fanout.flush()  # after the Restate path's send, never failing a record
        return failed

    def _send(
        self, chunk: list[tuple[str, Decision, dict[str, Any]]], failed: dict[str, TransientError]
    ) -> None:
        try:
            answer = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[e for _, _, e in chunk])
        except (ClientError, BotoCoreError) as exc:
            for record_id, decision, _ in chunk:
                error = TransientError(
                    f"cannot forward notification {decision.record.notification_id}: {exc}",
                    reason="forward_failed",
                )
                error.__cause__ = exc
                failed.setdefault(record_id, error)
            return
        refused = {f["Id"]: f for f in answer.get("Failed") or []}
        for record_id, decision, entry in chunk:
            problem = refused.get(entry["Id"])
            if problem is None:
                audit.emit(decision.record)
                if self.fanout is not None:
                    self.fanout.add(entry)
                continue
            failed.setdefault(
                record_id,
                TransientError(
                    f"cannot forward notification {decision.record.notification_id}: "
                    f"{problem.get('Code')}: {problem.get('Message')}",
                    reason="forward_failed",
                ),
            )


def _peek(body: str) -> dict[str, Any]:
    """Best-effort look into a body that failed to parse, for the audit record only."""
    try:
        raw = wire.loads(body)
    except MalformedMessage:
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
