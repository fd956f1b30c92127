"""The bodies of the messages the relay sends. The envelope of a payload dict is written once, here
(`envelope_body`), for pods whichever way the payload was built (the fast path, the full path, a
synthetic DELETED from the tracker's memory, an overdue look; its id: `pod_event_id`) and for the
other kinds' objects and hook rules, without building models: a pod's body is what
`podwatch.wire.encode_envelope` writes of its `PodEnvelope` (tests/unit/test_relay_pipeline.py
checks that it re-encodes to itself); an object's parses as its model (test_relay_objects.py).
The rarer kinds (Events, enroll, heartbeat) are encoded from their models."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from podwatch import ids
from podwatch.models import (
    SCHEMA_VERSION,
    EnrollEnvelope,
    EnrollPayload,
    HeartbeatEnvelope,
    HeartbeatPayload,
    KubeEvent,
    KubeEventEnvelope,
)
from podwatch.wire import encode_envelope
from podwatch_relay._json import dumps

_EVENT_ID_SEP = "\x1f"  # as `ids.pod_event_id` joins the parts
_SHA256 = hashlib.sha256()


def pod_event_id(cluster_id: str, uid: str, resource_version: str, watch_type: str) -> str:
    """`ids.pod_event_id` for str parts, without its generic join (the tests compare both)."""
    sep = _EVENT_ID_SEP
    text = f"pod{sep}{cluster_id}{sep}{uid}{sep}{resource_version}{sep}{watch_type}"
    digest = _SHA256.copy()  # cheaper than looking the algorithm up for a new object
    digest.update(text.encode())
    return digest.hexdigest()[:32]


def envelope_body(
    kind: str, event_id: str, payload: dict[str, Any], cluster_id: str, relay_version: str, sent_at: str
) -> str:
    """The envelope of a payload dict of `kind` (`pod`: `projection.pod_payload` and its kin, with
    `pod_event_id`; `object`, `hook`: `objects.ObjectRelay`), encoded: the envelope's fields in
    the order `podwatch.wire.encode_envelope` writes them."""
    return dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "event_id": event_id,
            "cluster_id": cluster_id,
            "relay_version": relay_version,
            "sent_at": sent_at,
            "kind": kind,
            "payload": payload,
        }
    )


def event_body(event: KubeEvent, *, cluster_id: str, relay_version: str, sent_at: datetime) -> str:
    """The envelope of a core/v1 Event about a pod, encoded."""
    envelope = KubeEventEnvelope(
        event_id=ids.kube_event_id(cluster_id, event.uid, event.count),
        cluster_id=cluster_id,
        relay_version=relay_version,
        sent_at=sent_at,
        payload=event,
    )
    return encode_envelope(envelope)


def enroll_body(
    *,
    cluster_id: str,
    relay_version: str,
    namespaces: str,
    started_at: datetime,
    kubernetes_version: str | None,
    sent_at: datetime,
) -> str:
    """The enroll envelope (once per relay start or leadership), encoded."""
    envelope = EnrollEnvelope(
        event_id=ids.control_event_id("enroll", cluster_id, relay_version, started_at.isoformat()),
        cluster_id=cluster_id,
        relay_version=relay_version,
        sent_at=sent_at,
        payload=EnrollPayload(
            relay_version=relay_version,
            namespaces=namespaces,
            started_at=started_at,
            kubernetes_version=kubernetes_version,
        ),
    )
    return encode_envelope(envelope)


def heartbeat_body(
    *, cluster_id: str, relay_version: str, sequence: int, started_at: datetime, pods: int, sent_at: datetime
) -> str:
    """A heartbeat envelope (liveness of this relay), encoded."""
    envelope = HeartbeatEnvelope(
        event_id=ids.control_event_id("heartbeat", cluster_id, started_at.isoformat(), sequence),
        cluster_id=cluster_id,
        relay_version=relay_version,
        sent_at=sent_at,
        payload=HeartbeatPayload(sequence=sequence, started_at=started_at, pods_tracked=pods),
    )
    return encode_envelope(envelope)
