"""Enrichment: who a piece of trouble belongs to, and the `Notification` that tells the manager.

* project id / workload id: pod labels named by `RemoteConfig.project_label_key` / `workload_label_key`;
* workload kind / name: the controller owner reference, walked up one level by name
  (ReplicaSet `x-<pod-template-hash>` → Deployment `x`; Job `x-<scheduled minutes>` → CronJob `x`;
  StatefulSet, DaemonSet and anything else as they are);
* Kubernetes Events carry no labels or owners: the pod's row in the metadata table (`metadata`,
  written from the pod's own events) supplies ids and workload when it exists; otherwise the
  workload is guessed from the pod name (the generated suffixes Kubernetes appends) for dedup keys.
* incident fields (state, count, affected pods) come from the dedup item (`dedup.Outcome`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from podwatch import ids
from podwatch.classify import Finding
from podwatch.models import (
    MAX_AFFECTED_PODS,
    KubeEventEnvelope,
    Notification,
    ObjectEnvelope,
    PodEnvelope,
    PodEvent,
    RemoteConfig,
)

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


#: Kubernetes' rand.SafeEncodeString alphabet: pod-template-hash and generateName suffixes use it.
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_RS_NAME = re.compile(rf"^(?P<name>.+)-(?:{_SAFE}{{6,10}}|\d{{6,10}})$")
_CRONJOB_JOB = re.compile(r"^(?P<name>.+)-\d{8,}$")
_DEPLOYMENT_POD = re.compile(rf"^(?P<name>.+)-{_SAFE}{{6,10}}-{_SAFE}{{5}}$")
_GENERATED_POD = re.compile(rf"^(?P<name>.+)-{_SAFE}{{5}}$")
_STATEFUL_POD = re.compile(r"^(?P<name>.+)-\d+$")

POD_TEMPLATE_HASH = "pod-template-hash"


class Workload(NamedTuple):
    kind: str
    name: str


def workload_of(pod: PodEvent) -> Workload | None:
    """The workload that owns the pod, from its controller owner reference; None for a bare pod."""
    if not pod.owner_references:
        return None
    owner = next((o for o in pod.owner_references if o.controller), pod.owner_references[0])
    if owner.kind == "ReplicaSet":
        template_hash = pod.labels.get(POD_TEMPLATE_HASH)
        if template_hash and owner.name.endswith(f"-{template_hash}"):
            return Workload("Deployment", owner.name[: -len(template_hash) - 1])
        match = _RS_NAME.match(owner.name)
        return Workload("Deployment", match.group("name")) if match else Workload("ReplicaSet", owner.name)
    if owner.kind == "Job":
        match = _CRONJOB_JOB.match(owner.name)
        return Workload("CronJob", match.group("name")) if match else Workload("Job", owner.name)
    return Workload(owner.kind, owner.name)


def guess_workload_name(pod_name: str) -> str:
    """Best effort from a pod name alone (Kubernetes Events): strips the generated suffixes, and
    names a CronJob's pod (`<cronjob>-<scheduled minutes>-<suffix>`) by its CronJob, as
    `workload_of` names it from the pod's Job owner, so both give one workload-scope dedup key."""
    match = _DEPLOYMENT_POD.match(pod_name)
    if match:
        return match.group("name")
    match = _GENERATED_POD.match(pod_name)
    if match:
        owner = match.group("name")  # a DaemonSet, or a Job (which a CronJob may own)
        cronjob = _CRONJOB_JOB.match(owner)
        return cronjob.group("name") if cronjob else owner
    match = _STATEFUL_POD.match(pod_name)
    return match.group("name") if match else pod_name


def workload_name_for(envelope: PodEnvelope | KubeEventEnvelope) -> str:
    """The workload name used by workload-scoped dedup keys (the pod name for a bare pod)."""
    if isinstance(envelope, PodEnvelope):
        workload = workload_of(envelope.payload)
        return workload.name if workload else envelope.payload.name
    return guess_workload_name(envelope.payload.involved_object.name)


def subject_of(envelope: PodEnvelope | KubeEventEnvelope | ObjectEnvelope) -> tuple[str, str]:
    """(namespace, pod name) the envelope is about; an object's: ("" if cluster-scoped, its name)."""
    if isinstance(envelope, PodEnvelope):
        return envelope.payload.namespace, envelope.payload.name
    if isinstance(envelope, ObjectEnvelope):
        return envelope.payload.namespace or "", envelope.payload.name
    obj = envelope.payload.involved_object
    return obj.namespace or envelope.payload.namespace, obj.name


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
