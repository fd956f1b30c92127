"""Identity of what flows through podwatch (see DESIGN.md, "Identity of an event").

* event_id: the same however often a thing is re-sent, different for every real change.
  Pod: cluster + uid + resourceVersion of the change. Kubernetes Event: cluster + uid + count.
  Any other object (and a Hook): cluster + kind + uid + resourceVersion of the change.
* notification_id: one piece of trouble found in one event (event + type + container).
* idempotency key: derived from the content of a delivery (its notification ids), so a retried
  batch takes effect once at Restate and a different batch never reuses a key.

Dedup keys name *what* the trouble is and live in `dedup`, not here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_SEP = "\x1f"  # unit separator: cannot occur in Kubernetes names or uids


def _digest(*parts: object, length: int = 32) -> str:
    text = _SEP.join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def pod_event_id(cluster_id: str, uid: str, resource_version: str, watch_type: str = "") -> str:
    """A pod change. DELETED carries the final resourceVersion, so it is its own change."""
    return _digest("pod", cluster_id, uid, resource_version, watch_type)


def kube_event_id(cluster_id: str, uid: str, count: int | None, series_count: int | None = None) -> str:
    """A core/v1 Event occurrence: the same Event object counts up as it recurs."""
    return _digest("k8s_event", cluster_id, uid, count, series_count)


def object_event_id(cluster_id: str, kind: str, uid: str, resource_version: str, watch_type: str = "") -> str:
    """A change of any other watched object (`object` and `hook` envelopes), as a pod's."""
    return _digest("object", cluster_id, kind, uid, resource_version, watch_type)


def control_event_id(kind: str, cluster_id: str, *parts: object) -> str:
    """Enroll (cluster + relay version + start) and heartbeat (cluster + sequence) messages."""
    return _digest(kind, cluster_id, *parts)


def notification_id(event_id: str, event_type: str, container: str | None) -> str:
    # `_digest("notification", event_id, event_type, container)`, written out: once per finding
    text = f"notification{_SEP}{event_id}{_SEP}{event_type}{_SEP}{'' if container is None else container}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def idempotency_key(ids: Iterable[str], *, prefix: str = "pw") -> str:
    """Content-derived Restate idempotency key: order-insensitive, distinct for distinct sets."""
    return f"{prefix}-{_digest(*sorted(set(ids)), length=48)}"
