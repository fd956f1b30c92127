"""Enrichment: the `Notification` that tells the manager about one finding, with who it belongs to.

* project id / workload id: pod labels named by `RemoteConfig.project_label_key` / `workload_label_key`;
* workload kind / name: `podwatch.workload` (the controller owner, walked up one level);
* Kubernetes Events carry no labels or owners: the pod's row in the metadata table (`metadata`,
  written from the pod's own events) supplies ids and workload when it exists;
* incident fields (state, count, affected pods) come from the dedup item (`dedup.Outcome`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from podwatch import ids
from podwatch.classify import Finding
from podwatch.models import (
    MAX_AFFECTED_PODS,
    KubeEventEnvelope,
    Notification,
    ObjectEnvelope,
    PodEnvelope,
    RemoteConfig,
)
from podwatch.workload import subject_of, workload_of

if TYPE_CHECKING:
    from podwatch.metadata import PodMetadata


@dataclass(frozen=True, slots=True)
class Incident:
    """What a notification says about its incident (from the dedup item, where known)."""

    state: Literal["firing", "resolved"]
    count: int
    pods: Sequence[str] = ()
    pod_count: int | None = None
    opened_at: int | None = None


def build_notification(
    finding: Finding,
    envelope: PodEnvelope | KubeEventEnvelope | ObjectEnvelope,
    *,
    config: RemoteConfig,
    dedup_key: str,
    now: datetime,
    incident: Incident | None = None,
    owner: PodMetadata | None = None,
    notification_id: str | None = None,
) -> Notification:
    """The Notification for one finding; `notification_id` is stable across retries and replays.

    `owner` is the pod's metadata row, for a Kubernetes Event (which names no labels or owners);
    `notification_id`, when the caller has worked it out already, is
    `ids.notification_id(envelope.event_id, finding.event_type, finding.container)`.
    """
    namespace, pod_name = subject_of(envelope)
    if notification_id is None:
        notification_id = ids.notification_id(envelope.event_id, finding.event_type, finding.container)
    state = count = pod_count = opened_at = None
    pods: list[str] = []
    if incident is not None:
        state, count = incident.state, incident.count
        pods = sorted(incident.pods)[:MAX_AFFECTED_PODS]
        pod_count = incident.pod_count if incident.pod_count is not None else (len(pods) or None)
        if incident.opened_at is not None:
            opened_at = datetime.fromtimestamp(incident.opened_at, UTC)
    # What every notification carries, whatever the source; the source adds the pod's own facts.
    common: dict[str, Any] = {
        "notification_id": notification_id,
        "event_id": envelope.event_id,
        "cluster_id": envelope.cluster_id,
        "event_type": finding.event_type,
        "reason": finding.reason,
        "message": finding.message,
        "dedup_key": dedup_key,
        "namespace": namespace,
        "pod": pod_name,
        "container": finding.container,
        "processed_at": now,
        "config_version": config.version,
        "incident_state": state,
        "incident_count": count,
        "affected_pods": pods,
        "affected_pod_count": pod_count,
        "resolves": finding.resolves,
        "incident_opened_at": opened_at,
    }
    if isinstance(envelope, PodEnvelope):
        pod = envelope.payload
        workload = workload_of(pod)
        container = next((c for c in pod.containers if c.name == finding.container), None)
        return Notification(
            **common,
            source="pod",
            pod_uid=pod.uid,
            node=pod.node,
            restart_count=container.restart_count if container else pod.restart_count,
            project_id=pod.labels.get(config.project_label_key),
            workload_id=pod.labels.get(config.workload_label_key),
            workload_kind=workload.kind if workload else None,
            workload_name=workload.name if workload else None,
            transitions=[t for t in pod.transitions if t.container in (None, finding.container)],
            observed_at=pod.observed_at,
        )
    if isinstance(envelope, ObjectEnvelope):  # a node's condition: `pod` names the node (the resource)
        node = envelope.payload
        transitions = [t for t in node.transitions if t.field.startswith("condition.")]
        return Notification(
            **common, source="node", node=node.name, transitions=transitions, observed_at=node.observed_at
        )
    event = envelope.payload
    return Notification(
        **common,
        source="k8s_event",
        pod_uid=event.involved_object.uid or (owner.pod_uid if owner else None),
        node=owner.node if owner else None,
        project_id=owner.project_id if owner else None,
        workload_id=owner.workload_id if owner else None,
        workload_kind=owner.workload_kind if owner else None,
        workload_name=owner.workload_name if owner else None,
        observed_at=event.observed_at,
    )
