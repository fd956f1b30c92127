"""Builders of contract objects the tests share."""

from __future__ import annotations

from datetime import UTC, datetime

from podwatch import ids
from podwatch.models import EventType, Notification

OBSERVED_AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def pod_notification(
    cluster_id: str,
    pod: str,
    event_type: EventType = EventType.CRASH_LOOP,
    *,
    resource_version: str = "100",
) -> Notification:
    """What the processor forwards for trouble in container `app` of pod `default/<pod>`."""
    event_id = ids.pod_event_id(cluster_id, f"uid-{pod}", resource_version, "MODIFIED")
    return Notification(
        notification_id=ids.notification_id(event_id, event_type, "app"),
        event_id=event_id,
        cluster_id=cluster_id,
        event_type=event_type,
        reason="CrashLoopBackOff",
        source="pod",
        dedup_key=f"{cluster_id}/default/{pod}/app/{event_type}",
        namespace="default",
        pod=pod,
        container="app",
        observed_at=OBSERVED_AT,
    )
