"""The audit trail: one record per processor decision on the stdlib logger `podwatch.audit`.

    logger.info(action, extra={"audit": {
        "action":          forwarded | filtered | deduplicated | quarantined | control,
        "reason":          why (see below),
        "event_id":        the envelope's event_id (None when the body could not be read),
        "kind":            pod | k8s_event | enroll | heartbeat (None when unreadable),
        "namespace", "pod": what it is about (None for control messages),
        "event_type":      crash-loop, oom-kill, ... (None when no trouble was found),
        "notification_id": ids.notification_id(event_id, event_type, container), for findings,
        "dedup_key":       the dedup key, when dedup was consulted,
        "payload_sha256":  sha256 of the canonical payload JSON (see `payload_sha256`),
        "config_version":  RemoteConfig.version that decided it,
    }})

Reasons: forwarded → `opened` (a new dedup window) | `same_event` (a retry of the event that opened
it) | `no_cooldown`; filtered → `healthy` | `deleted` | `ignored_namespace` | `disabled:<type>`;
deduplicated → `cooldown`; quarantined → the PermanentError's reason (`malformed`,
`unsupported_schema_version`, `unknown_kind`, `oversize`); control → `enroll` | `heartbeat`.

In Lambda the handler gives the `podwatch` logger Powertools' JSON formatter, so each record is one
JSON line with an `audit` key; the local stack attaches its own handler to read them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

AUDIT_LOGGER = "podwatch.audit"
audit_log = logging.getLogger(AUDIT_LOGGER)
# Decisions are the point of this logger: they must not depend on the root logger's level.
audit_log.setLevel(logging.INFO)

Action = Literal["forwarded", "filtered", "deduplicated", "quarantined", "control"]
AUDIT_KEYS = (
    "action",
    "reason",
    "event_id",
    "kind",
    "namespace",
    "pod",
    "event_type",
    "notification_id",
    "dedup_key",
    "payload_sha256",
    "config_version",
)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: the same content always has the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_sha256(payload: BaseModel | None, raw_body: str | bytes | None = None) -> str:
    """sha256 of the canonical JSON of the envelope's payload (wire names, None fields left out, as
    the relay writes them); for a body that never became an envelope: of its canonical JSON if it is
    JSON, else of its raw bytes."""
    if payload is not None:
        text = canonical_json(payload.model_dump(mode="json", by_alias=True, exclude_none=True))
        return hashlib.sha256(text.encode()).hexdigest()
    data = raw_body.encode() if isinstance(raw_body, str) else (raw_body or b"")
    with contextlib.suppress(ValueError, UnicodeDecodeError):  # not JSON: the raw bytes are canonical
        data = canonical_json(json.loads(data)).encode()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    action: Action
    reason: str
    event_id: str | None
    kind: str | None
    namespace: str | None
    pod: str | None
    event_type: str | None
    notification_id: str | None
    dedup_key: str | None
    payload_sha256: str
    config_version: str

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in AUDIT_KEYS}


def emit(record: AuditRecord) -> None:
    audit_log.info(record.action, extra={"audit": record.as_dict()})
