"""Envelopes that fit an SQS message: nothing the relay sends is over the limit, and nothing is lost.

`fit(body, limit)` returns a body within `limit` bytes as it is (the usual case: one length check).
A bigger one is trimmed, in this order, until it fits:

1. messages: every `message` of the payload (the pod's, its containers', its conditions') is cut
   to `SHORT_MESSAGE` characters, then, if that is not enough, removed;
2. containers beyond `MAX_CONTAINERS`: those in trouble are kept first, then those a transition
   names, then the others in their order, up to the cap;

and the payload says what was cut (`"trimmed": {"messages": n, "containers": m}`). An `object`
(another kind's record) has its conditions' messages cut the same way, then its snapshot's entries
removed, largest first (`"fields": k`). What still does not fit, or is neither (a `hook`: a rule cut
short would be another rule), goes out as a small stub (`kind: "oversize"`, `OversizeEnvelope`) that
names the object and the size: the processor quarantines it with reason `oversize`, so the event
reaches the pod-events DLQ instead of vanishing. The relay fits every envelope it queues; every
sink fits again with its own limit (`SqsSink`: its message limit; `FileSink`: the default), so a
smaller configured limit cannot drop anything either.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, NamedTuple

from podwatch.models import OVERSIZE_KIND, SCHEMA_VERSION
from podwatch_relay._json import dumps, loads
from podwatch_relay.projection import container_troubled
from podwatch_relay.settings import DEFAULT_MAX_BATCH_BYTES

log = logging.getLogger("podwatch_relay.fit")

#: What the relay fits envelopes to: the SQS sink's default message limit (256 KiB less the margin
#: its batches keep), within the processor's own limit (`MAX_MESSAGE_BYTES`).
ENVELOPE_MAX_BYTES = DEFAULT_MAX_BATCH_BYTES
#: A body of at most this many characters fits whatever they are (UTF-8: at most 4 bytes each)
FITS_CHARS = ENVELOPE_MAX_BYTES // 4
#: Trimming step 1 cuts messages to this many characters before it removes them.
SHORT_MESSAGE = 160
#: Trimming step 2 keeps at most this many containers.
MAX_CONTAINERS = 100
#: Stub fields are cut to this many characters (a Kubernetes name is at most 253).
_STUB_TEXT = 253


class Fitted(NamedTuple):
    """A body that fits, and what was done to it: None (nothing), `trimmed` or `stub`."""

    body: str
    change: str | None


def size_of(body: str) -> int:
    """The body's size in UTF-8 bytes (what SQS counts)."""
    return len(body) if body.isascii() else len(body.encode(errors="surrogatepass"))


def fit(body: str, limit: int = ENVELOPE_MAX_BYTES) -> Fitted:
    """`body` if it fits in `limit` bytes, else trimmed to fit, else a stub (see the module)."""
    if len(body) <= limit // 4:
        return Fitted(body, None)
    size = size_of(body)
    if size <= limit:
        return Fitted(body, None)
    try:
        envelope = loads(body)
    except ValueError:  # not JSON: only a stub can say what it was
        envelope = None
    if isinstance(envelope, dict) and envelope.get("kind") in _TRIMMERS:
        payload = envelope.get("payload")
        if isinstance(payload, dict):
            trimmed = _TRIMMERS[envelope["kind"]](envelope, payload, limit)
            if trimmed is not None:
                log.warning(
                    "envelope trimmed to fit the message limit",
                    extra={
                        "event_id": envelope.get("event_id"),
                        "bytes": size,
                        "limit": limit,
                        **_subject(payload),
                    },
                )
                return Fitted(trimmed, "trimmed")
    stub = oversize_stub(envelope, size, limit)
    log.error(
        "envelope over the message limit even trimmed: sent as an oversize stub (quarantined downstream)",
        extra={"bytes": size, "limit": limit, "stub": stub},
    )
    return Fitted(stub, "stub")


def _trim_pod(envelope: dict[str, Any], payload: dict[str, Any], limit: int) -> str | None:
    """The pod envelope trimmed step by step until it fits (its payload says what was cut), or None."""
    cut = {"messages": 0, "containers": 0}
    payload["trimmed"] = cut
    containers = [c for c in payload.get("containers") or () if isinstance(c, dict)]
    holders = [payload, *containers, *(c for c in payload.get("conditions") or () if isinstance(c, dict))]
    touched: set[int] = set()
    for shorten in (True, False):
        for holder in holders:
            message = holder.get("message")
            if not isinstance(message, str):
                continue
            if not shorten:
                del holder["message"]
            elif len(message) > SHORT_MESSAGE:
                holder["message"] = message[: SHORT_MESSAGE - 1] + "…"
            else:
                continue
            touched.add(id(holder))
        cut["messages"] = len(touched)
        text = dumps(envelope)
        if size_of(text) <= limit:
            return text
    if len(containers) > MAX_CONTAINERS:
        payload["containers"] = _ranked_containers(containers, payload.get("transitions") or ())
        cut["containers"] = len(containers) - MAX_CONTAINERS
        text = dumps(envelope)
        if size_of(text) <= limit:
            return text
    return None


def _trim_object(envelope: dict[str, Any], payload: dict[str, Any], limit: int) -> str | None:
    """An `object` envelope trimmed until it fits: its conditions' messages cut short then
    removed, then its snapshot's entries removed, largest first (`trimmed.fields`); or None."""
    cut = {"messages": 0, "containers": 0, "fields": 0}
    payload["trimmed"] = cut
    conditions = [c for c in payload.get("conditions") or () if isinstance(c, dict)]
    touched: set[int] = set()
    for shorten in (True, False):
        for condition in conditions:
            message = condition.get("message")
            if not isinstance(message, str) or (shorten and len(message) <= SHORT_MESSAGE):
                continue
            if shorten:
                condition["message"] = message[: SHORT_MESSAGE - 1] + "…"
            else:
                del condition["message"]
            touched.add(id(condition))
        cut["messages"] = len(touched)
        text = dumps(envelope)
        if size_of(text) <= limit:
            return text
    snapshot = payload.get("snapshot")
    if isinstance(snapshot, dict):
        for key in sorted(snapshot, key=lambda k: len(dumps(snapshot[k])), reverse=True):
            del snapshot[key]
            cut["fields"] += 1
            text = dumps(envelope)
            if size_of(text) <= limit:
                return text
    return None


def _ranked_containers(containers: list[dict[str, Any]], transitions: Any) -> list[dict[str, Any]]:
    """`MAX_CONTAINERS` of the containers, in their order: those in trouble first, then those a
    transition names, then the others."""
    named = {t.get("container") for t in transitions if isinstance(t, dict)}

    def rank(i: int) -> tuple[int, int]:
        container = containers[i]
        return (0 if _troubled(container) else 1 if container.get("name") in named else 2), i

    keep = sorted(sorted(range(len(containers)), key=rank)[:MAX_CONTAINERS])
    return [containers[i] for i in keep]


def _troubled(container: dict[str, Any]) -> bool:
    try:
        return container_troubled(container)
    except (KeyError, TypeError):  # not the relay's own shape: no reason to keep it first
        return False


#: What can be trimmed, by envelope kind; any other (a `hook`: its rule would be incomplete) is stubbed
_TRIMMERS = {"pod": _trim_pod, "object": _trim_object}


def _subject(payload: dict[str, Any]) -> dict[str, Any]:
    """Log fields naming the pod (`name` is a LogRecord attribute: `pod`)."""
    return {"namespace": _text(payload.get("namespace")), "pod": _text(payload.get("name"))}


def _text(value: Any) -> str | None:
    return value[:_STUB_TEXT] if isinstance(value, str) else None


def oversize_stub(envelope: Any, size: int, limit: int) -> str:
    """The `OversizeEnvelope` body standing for an envelope of `size` bytes that could not fit."""
    envelope = envelope if isinstance(envelope, dict) else {}
    payload = envelope.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    event_id = (
        _text(envelope.get("event_id"))
        or "unknown-" + hashlib.sha256(str(envelope).encode()).hexdigest()[:24]
    )
    stub_payload: dict[str, Any] = {"kind": _text(envelope.get("kind")) or "unknown"}
    for key in ("namespace", "name", "uid", "resource_version", "watch_type"):
        value = _text(payload.get(key))
        if value is not None:
            stub_payload[key] = value
    stub_payload["bytes"] = size
    stub_payload["limit"] = limit
    stub = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "cluster_id": _text(envelope.get("cluster_id")) or "unknown",
        "relay_version": _text(envelope.get("relay_version")) or "unknown",
    }
    sent_at = _text(envelope.get("sent_at"))
    if sent_at is not None:
        stub["sent_at"] = sent_at
    stub["kind"] = OVERSIZE_KIND
    stub["payload"] = stub_payload
    return dumps(stub)
