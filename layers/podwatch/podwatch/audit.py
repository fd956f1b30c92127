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
        "payload_sha256":  sha256 of the payload's canonical JSON (see `payload_sha256`),
        "config_version":  RemoteConfig.version that decided it,
    }})

Reasons: forwarded → `opened` (a new dedup window) | `same_event` (a retry of the event that opened
it) | `no_cooldown`; filtered → `healthy` | `deleted` | `ignored_namespace` | `disabled:<type>`;
deduplicated → `cooldown`; quarantined → the PermanentError's reason (`malformed`,
`unsupported_schema_version`, `unknown_kind`, `oversize`); control → `enroll` | `heartbeat`.

In Lambda the handler installs `AuditJsonFormatter` on this logger (`install`): each record is one
JSON line with the keys Powertools' formatter writes (level, location, message, timestamp, service,
the Lambda context keys, xray_trace_id) plus `audit`. The local stack attaches its own handler to
read the records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
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
    """sha256 of the canonical JSON of the envelope's payload; for a body that never became an
    envelope: of its canonical JSON if it is JSON, else of its raw bytes.

    The canonical JSON of a payload is the model's own compact JSON (wire names, None fields left
    out, as the relay writes them; fields in the model's order, which the shared model fixes) with
    the keys of its mappings (pod labels) sorted: the same content always has the same text, however
    the message was formatted or its labels ordered. Serialised by pydantic-core in one pass, which
    is what keeps this cheap on the per-event path (a sort-keys `json.dumps` of a dumped dict costs
    several times more).
    """
    if payload is not None:
        unsorted = {
            name: dict(sorted(value.items()))
            for name, value in payload
            if isinstance(value, dict) and len(value) > 1 and list(value) != sorted(value)
        }
        if unsorted:
            payload = payload.model_copy(update=unsorted)
        text = payload.model_dump_json(by_alias=True, exclude_none=True)
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


class AuditJsonFormatter(logging.Formatter):
    """Powertools' JSON line for an audit record, at a fraction of its cost.

    Powertools' formatter is general (any extra, exceptions, stack traces, JSON-decoding messages)
    and costs several times what a decision costs to make; an audit record is always the same
    shape. This one reads the live keys of the Powertools formatter it is given (service, cold
    start, function name and request id, appended keys) and renders the same top-level keys.
    """

    def __init__(self, source: Any) -> None:
        super().__init__()
        self._source = source  # a LambdaPowertoolsFormatter

    def format(self, record: logging.LogRecord) -> str:
        values = record.__dict__
        line: dict[str, Any] = {}
        for key, value in self._source.get_current_keys().items():
            if key == "message":
                line[key] = record.getMessage()
            elif key == "timestamp":
                line[key] = self._source.formatTime(record)
            elif isinstance(value, str) and "%(" in value:
                line[key] = value % values
            elif value is not None:
                line[key] = value
        line["audit"] = getattr(record, "audit", None)
        trace_id = os.environ.get("_X_AMZN_TRACE_ID")
        if trace_id:
            line["xray_trace_id"] = trace_id.split(";")[0].replace("Root=", "")
        return json.dumps(line, default=str, separators=(",", ":"), ensure_ascii=False)


_installed: list[logging.Handler] = []


def install(source_formatter: Any, stream: Any) -> None:
    """Write audit records to `stream` (the function's log stream) with `AuditJsonFormatter`,
    replacing a handler installed before (a reloaded handler module); they no longer propagate to
    the `podwatch` logger's Powertools handler, so each is written once. Other handlers on this
    logger (the local stack's) are left alone."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(AuditJsonFormatter(source_formatter))
    for old in _installed:
        audit_log.removeHandler(old)
    _installed[:] = [handler]
    audit_log.addHandler(handler)
    audit_log.propagate = False


def emit(record: AuditRecord) -> None:
    # "%s" + args renders the same message, but tells Powertools' formatter the message is plain
    # text: it would otherwise try (and fail) to JSON-decode every audit line's message.
    audit_log.info("%s", record.action, extra={"audit": record.as_dict()})
