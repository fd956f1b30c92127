"""One batch of hooks-queue records → agent and webhook calls.

    body: a Notification, or an EventBridge event whose `detail` is one ──invalid──▶ quarantined
    `recovered` → every matching hook's event of the trouble it ends is resolved
    otherwise, for each (hook, configuration) the notification matches (`match`), on its own:
        claim (state.HookStore.claim)  duplicate / redelivery → counted, no call
        render the prompt (prompt)     → call the agent or webhook (targets)
            ok          → the window starts (succeeded)                    `fired`
            5xx/429/timeout/breaker open → claim released, the record goes back to SQS  `failed`
            other 4xx   → the notification + hook go to the DLQ with status and body   `failed`

A record is retried when any of its matches needs it; its other matches are then recognised as
done (`last_ok`, `last_rejected`), so one failing hook never calls another twice. At the record's
last receive (`max_receive_count`, the hooks queue's maxReceiveCount) a record still failing goes to
the hooks DLQ with the reason of its last failure (the hook, the target's status and answer)
instead of being moved there bare by SQS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from podwatch import telemetry, wire
from podwatch.errors import DeliveryRejected, MalformedMessage, TransientError
from podwatch.hooks.match import HookIndex, Match
from podwatch.hooks.prompt import base_values
from podwatch.hooks.state import Claim, Decision, EventKey, HookStore
from podwatch.hooks.targets import TargetClient, a2a_url
from podwatch.models import SUPPORTED_SCHEMA_VERSIONS, EventType, Notification, utcnow
from podwatch.quarantine import Failure, quarantine_last_receives, send_to_quarantine

log = logging.getLogger(__name__)


class RuleCache:
    """The applied rules, indexed, re-read from the hooks table at most every `max_age` seconds."""

    def __init__(self, store: HookStore, max_age: float) -> None:
        self.store, self.max_age = store, max_age
        self._lock = threading.Lock()
        self._index: HookIndex | None = None
        self._read_at = 0.0

    def __call__(self) -> HookIndex:
        with self._lock:
            if self._index is None or time.monotonic() - self._read_at >= self.max_age:
                self._index = HookIndex(self.store.rules())
                self._read_at = time.monotonic()
            return self._index


@dataclass(frozen=True, slots=True)
class HooksDeps:
    store: HookStore
    targets: TargetClient
    #: boto3 SQS client, for the quarantine queue
    sqs: Any
    quarantine_queue_url: str
    #: the applied rules (cached by the caller)
    rules: Callable[[], HookIndex]
    #: kagent's controller for hooks that do not name `spec.agent.baseUrl` ("" = none)
    agent_base_url: str = ""
    agent_protocol: str = "0.3"
    #: a claim outlives a call that died with its function by this much
    lease_seconds: int = 60
    clock: Callable[[], datetime] = utcnow
    #: the hooks queue's maxReceiveCount: a record failing at this receive is quarantined with its
    #: reason (None: left to SQS's redrive, which keeps no reason)
    max_receive_count: int | None = None


@dataclass
class HooksResult:
    failed: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)
    tally: telemetry.Tally = field(default_factory=telemetry.Tally)
    #: what was called: hook, event type, message id, prompt (logged; the local report shows them)
    fired: list[dict[str, str]] = field(default_factory=list)
    #: why each failed record failed (its quarantine's reason and error at its last receive)
    failures: dict[str, Failure] = field(default_factory=dict)


def parse_body(body: str) -> Notification:
    """A Notification, sent as it is or wrapped in an EventBridge event (`detail`)."""
    raw = wire.loads(body)  # MalformedMessage for anything not strict JSON (too deep, NaN, ...)
    if isinstance(raw, dict) and "detail" in raw and "detail-type" in raw:
        raw = raw["detail"]
    notification = Notification.model_validate(raw)
    if notification.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ValueError(f"schema_version {notification.schema_version} is not supported")
    return notification


def handle_records(
    records: Sequence[Mapping[str, Any]], deps: HooksDeps, *, time_left: Callable[[], bool] | None = None
) -> HooksResult:
    """Never raises for a record: each ends handled, failed (SQS retries it) or quarantined.

    `time_left()` is asked before each record; once it says False, the rest go back to SQS unstarted
    (a call under way when Lambda stops the function would fail the whole batch)."""
    result = HooksResult()
    result.tally.add(telemetry.RECEIVED, value=len(records))
    index = deps.rules()
    for record in records:
        message_id, body = str(record["messageId"]), str(record["body"])
        if time_left is not None and not time_left():
            result.failed.append(message_id)
            result.failures[message_id] = Failure(
                "no_time_left", "not started: the invocation was nearly over"
            )
            continue
        try:
            retry = _handle_record(index, deps, result, message_id, body)
        except TransientError as exc:
            log.warning("hooks table or DLQ unavailable; record back to the queue", extra={"error": str(exc)})
            result.failures[message_id] = Failure.of(exc)
            retry = True
        if retry:
            result.failed.append(message_id)
    _quarantine_last_receives(records, deps, result)
    result.tally.add(telemetry.RETRIED, value=len(result.failed))
    return result


def _quarantine_last_receives(
    records: Sequence[Mapping[str, Any]], deps: HooksDeps, result: HooksResult
) -> None:
    last = quarantine_last_receives(
        deps.sqs, deps.quarantine_queue_url, deps.max_receive_count, records, result.failed, result.failures
    )
    result.failed = [m for m in result.failed if m not in last]
    for message_id, reason in last.items():
        result.quarantined[message_id] = reason
        result.tally.add(telemetry.QUARANTINED, reason=reason)


def _handle_record(
    index: HookIndex, deps: HooksDeps, result: HooksResult, message_id: str, body: str
) -> bool:
    """Handle one record; True if it must be retried."""
    try:
        notification = parse_body(body)
    except (ValidationError, ValueError, MalformedMessage) as exc:
        _quarantine(result, deps, message_id, body, reason="malformed", error=f"not a Notification: {exc}")
        return False
    now_s = int(deps.clock().timestamp())
    if notification.event_type is EventType.RECOVERED:
        for match in index.resolvers(notification):
            if deps.store.resolve(_key(match, notification), now_s=now_s):
                result.tally.add(telemetry.HOOK_RESOLVED)
        return False
    retry = False
    values: dict[str, str] = {}  # the notification's template values, computed at its first call
    for match in index.matches(notification):
        retry |= _handle_match(match, notification, deps, result, now_s, (message_id, body), values)
    return retry


def _key(match: Match, notification: Notification) -> EventKey:
    n = notification
    return EventKey(match.hook.key, match.config.eventType, n.cluster_id, n.namespace, n.pod)


def _handle_match(
    match: Match,
    n: Notification,
    deps: HooksDeps,
    result: HooksResult,
    now_s: int,
    record: tuple[str, str],
    values: dict[str, str],
) -> bool:
    """Claim, render, call and record one match; True if its record must be retried."""
    key = _key(match, n)
    window = match.hook.spec.dedupWindowSeconds
    claim = deps.store.claim(key, n.notification_id, now_s=now_s, lease_s=deps.lease_seconds, window_s=window)
    if claim.decision is Decision.DUPLICATE:
        result.tally.add(telemetry.HOOK_DEDUPLICATED)
        return False
    if claim.decision is Decision.IN_FLIGHT:
        result.failures[record[0]] = Failure(
            "in_flight",
            f"hook {match.name}: the call of another invocation is under way",
            {"hook": match.name},
        )
        return True
    if claim.decision is not Decision.CALL:
        return False  # done before: a redelivery of a call that succeeded or was rejected
    if not values:
        values.update(base_values(n))
    values["EventType"] = match.config.eventType
    prompt = match.template.render(values)
    try:
        _call(match, n, claim, prompt, deps)
    except DeliveryRejected as exc:
        _quarantine(  # first: were the DLQ unreachable, the retry must still find this call undone
            result,
            deps,
            *record,
            reason=exc.reason,
            error=str(exc),
            extra={"hook": match.name, "status_code": str(exc.status_code), "response_body": exc.body or "-"},
        )
        deps.store.failed(key, str(exc), rejected_notification=n.notification_id)
        result.tally.add(telemetry.HOOK_FAILED, reason="rejected")
        result.tally.add(telemetry.HOOK_REJECTED)
        return False
    except TransientError as exc:
        deps.store.failed(key, str(exc))
        result.tally.add(telemetry.HOOK_FAILED, reason=exc.reason)
        result.failures[record[0]] = Failure.of(exc, hook=match.name)
        log.warning("hook call failed; retried", extra={"hook": match.name, "error": str(exc)})
        return True
    deps.store.succeeded(key, claim, n.notification_id, now_s=now_s, window_s=window)
    result.tally.add(telemetry.HOOK_FIRED)
    fired = {
        "hook": match.name,
        "event_type": match.config.eventType,
        "message_id": claim.message_id,
        "prompt": prompt,
    }
    result.fired.append(fired)
    log.info("hook fired", extra={k: v for k, v in fired.items() if k != "prompt"})
    return False


def _call(match: Match, n: Notification, claim: Claim, prompt: str, deps: HooksDeps) -> None:
    config = match.config
    if config.webhook is not None:
        payload = {
            "hook": match.hook.key,
            "eventType": config.eventType,
            "messageId": claim.message_id,
            "prompt": prompt,
            "notification": n.model_dump(mode="json"),
        }
        deps.targets.call_webhook(
            config.webhook.url,
            payload,
            message_id=claim.message_id,
            signing_secret_from=config.webhook.signingSecretFrom,
            token_from=config.webhook.tokenFrom,
        )
        return
    agent = match.hook.spec.agent
    base = (agent.baseUrl if agent else None) or deps.agent_base_url
    if not base:
        raise DeliveryRejected(
            f"hook {match.name}: no agent base URL (spec.agent.baseUrl or the stack's KagentBaseUrl)",
            status_code=0,
            reason="no_agent_url",
        )
    namespace, name = match.hook.agent_of(config)
    deps.targets.call_a2a(
        a2a_url(base, namespace, name),
        protocol=(agent.protocol if agent else None) or deps.agent_protocol,
        text=prompt,
        message_id=claim.message_id,
        blocking=agent.blocking if agent else False,
        token_from=agent.tokenFrom if agent else None,
    )


def _quarantine(
    result: HooksResult,
    deps: HooksDeps,
    message_id: str,
    body: str,
    *,
    reason: str,
    error: str,
    extra: Mapping[str, str] | None = None,
) -> None:
    send_to_quarantine(
        deps.sqs,
        deps.quarantine_queue_url,
        body,
        reason=reason,
        error=error,
        source_message_id=message_id,
        extra_attributes=extra,
    )
    result.quarantined[message_id] = reason
    result.tally.add(telemetry.QUARANTINED, reason=reason)
