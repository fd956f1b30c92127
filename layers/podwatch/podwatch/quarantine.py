"""Quarantine: a message that can never succeed goes to its queue's DLQ at once, with the reason.

The original body is kept (cut to fit SQS, with the cut recorded); the why travels as message
attributes, so an operator reading the DLQ (or a redrive tool) sees it without our logs:

    reason             the PermanentError's reason code (malformed, unknown_kind, rejected, ...)
    error              the error message (at most 1 KiB)
    source_message_id  the SQS message id the body arrived with
    body_sha256        sha256 of the original body
    body_truncated     "true" when the body had to be cut
    + caller extras    e.g. status_code and response_body for a rejected delivery

A record that keeps failing would reach its DLQ bare at the queue's maxReceiveCount (SQS moves it
and keeps no reason): `quarantine_last_receives` sends it there itself at that receive, with the
reason of its last failure (deliver, fan-out, hooks).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from podwatch.errors import TransientError

#: SQS counts attributes toward the message size; leave them this much room under 256 KiB.
MAX_BODY_BYTES = 256 * 1024 - 16 * 1024
MAX_ATTRIBUTE_CHARS = 1024
#: Message attribute `podwatch dlq redrive` sets on what it sends back (1, 2, ...): deliver makes a
#: fresh Restate idempotency key for a redriven chunk, since Restate keeps even a rejection 24 h.
REDRIVE_ATTRIBUTE = "redrive_count"
MAX_RESPONSE_BODY_CHARS = 8 * 1024

log = logging.getLogger(__name__)


@functools.cache
def _not_sqs_safe() -> re.Pattern[str]:
    """Characters SQS rejects in bodies and attribute values (outside the XML 1.0 character
    ranges). Compiled on first use: compiling this class costs a function's cold start ~10 ms."""
    return re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sqs_safe(text: str, limit: int = MAX_ATTRIBUTE_CHARS) -> str:
    """`text` with characters SQS rejects replaced, cut to `limit` characters, never empty."""
    cleaned = _not_sqs_safe().sub("\ufffd", text)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned or "-"


def send_to_quarantine(
    sqs: Any,
    queue_url: str,
    body: str,
    *,
    reason: str,
    error: str,
    source_message_id: str | None,
    extra_attributes: Mapping[str, str] | None = None,
) -> None:
    """Send `body` to the quarantine queue; TransientError if SQS cannot take it (SQS then retries
    the original message, which redrives to the same DLQ after maxReceiveCount)."""
    raw = body.encode()
    truncated = len(raw) > MAX_BODY_BYTES
    kept = raw[:MAX_BODY_BYTES].decode(errors="ignore") if truncated else body
    attributes = {
        "reason": reason,
        "error": error,
        "source_message_id": source_message_id or "unknown",
        "body_sha256": hashlib.sha256(raw).hexdigest(),
        "body_truncated": "true" if truncated else "false",
        **(extra_attributes or {}),
    }
    try:
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=sqs_safe(kept, limit=MAX_BODY_BYTES),
            MessageAttributes={
                name: {
                    "DataType": "String",
                    "StringValue": sqs_safe(
                        value, MAX_RESPONSE_BODY_CHARS if name == "response_body" else MAX_ATTRIBUTE_CHARS
                    ),
                }
                for name, value in attributes.items()
            },
        )
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(
            f"cannot quarantine message {source_message_id}: {exc}", reason="quarantine_failed"
        ) from exc


def receive_count(record: Mapping[str, Any]) -> int:
    """The SQS `ApproximateReceiveCount` of a record as Lambda delivers it (1 if absent)."""
    value = (record.get("attributes") or {}).get("ApproximateReceiveCount")
    return int(value) if isinstance(value, str) and value.isdigit() else 1


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a record goes back to its queue; what its quarantine says if that was its last receive."""

    reason: str
    error: str
    #: extra message attributes (status_code and response_body of an answer, the hook, ...)
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, exc: TransientError, **attributes: str) -> Failure:
        """The failure of a TransientError; an HTTP answer's status and body travel with it."""
        status = getattr(exc, "status_code", None)
        if status is not None:
            attributes = {
                **attributes,
                "status_code": str(status),
                "response_body": getattr(exc, "body", "") or "-",
            }
        return cls(exc.reason, str(exc), attributes)


def quarantine_last_receives(
    sqs: Any,
    queue_url: str,
    max_receive_count: int | None,
    records: Sequence[Mapping[str, Any]],
    failed: Sequence[str],
    failures: Mapping[str, Failure],
) -> dict[str, str]:
    """Of the `failed` records (message ids), quarantine those at their queue's maxReceiveCount, each
    with its last failure's reason, "gave up after N receives: <error>" and its attributes. Returns
    message id -> reason of those quarantined (the caller reports them handled, not failed); a
    record the DLQ did not take stays failed (SQS retries it, then moves it there bare)."""
    if max_receive_count is None:
        return {}
    by_id = {str(r["messageId"]): r for r in records}
    done: dict[str, str] = {}
    for message_id in dict.fromkeys(failed):
        record, failure = by_id.get(message_id), failures.get(message_id)
        if record is None or failure is None or receive_count(record) < max_receive_count:
            continue
        try:
            send_to_quarantine(
                sqs,
                queue_url,
                str(record["body"]),
                reason=failure.reason,
                error=f"gave up after {receive_count(record)} receives: {failure.error}",
                source_message_id=message_id,
                extra_attributes=failure.attributes,
            )
        except TransientError as exc:
            log.warning("quarantine failed; record goes back to the queue", extra={"error": str(exc)})
            continue
        done[message_id] = failure.reason
    return done
