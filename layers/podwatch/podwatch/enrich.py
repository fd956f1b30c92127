"""Enrichment: who a piece of trouble belongs to, and the `Notification` that tells the manager.

* project id / workload id: pod labels named by `RemoteConfig.project_label_key` / `workload_label_key`;
* workload kind / name: the controller owner reference, walked up one level by name
  (ReplicaSet `x-<pod-template-hash>` → Deployment `x`; Job `x-<scheduled minutes>` → CronJob `x`;
  StatefulSet, DaemonSet and anything else as they are);
* Kubernetes Events carry no labels or owners: the workload is guessed from the pod name (the
  generated suffixes Kubernetes appends), and the ids stay empty until the metadata lookup exists.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import NamedTuple

from podwatch import ids
from podwatch.classify import Finding
from podwatch.models import KubeEventEnvelope, Notification, PodEnvelope, PodEvent, RemoteConfig

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
    """Best effort from a pod name alone (Kubernetes Events): strips the generated suffixes."""
    for pattern in (_DEPLOYMENT_POD, _GENERATED_POD, _STATEFUL_POD):
        match = pattern.match(pod_name)
        if match:
            return match.group("name")
    return pod_name


def workload_name_for(envelope: PodEnvelope | KubeEventEnvelope) -> str:
    """The workload name used by workload-scoped dedup keys (the pod name for a bare pod)."""
    if isinstance(envelope, PodEnvelope):
        workload = workload_of(envelope.payload)
        return workload.name if workload else envelope.payload.name
    return guess_workload_name(envelope.payload.involved_object.name)


def subject_of(envelope: PodEnvelope | KubeEventEnvelope) -> tuple[str, str]:
    """(namespace, pod name) the envelope is about."""
    if isinstance(envelope, PodEnvelope):
        return envelope.payload.namespace, envelope.payload.name
    obj = envelope.payload.involved_object
    return obj.namespace or envelope.payload.namespace, obj.name


def build_notification(
    finding: Finding,
    envelope: PodEnvelope | KubeEventEnvelope,
    *,
    config: RemoteConfig,
    dedup_key: str,
    now: datetime,
) -> Notification:
    """The Notification for one finding; `notification_id` is stable across retries and replays."""
    namespace, pod_name = subject_of(envelope)
    notification_id = ids.notification_id(envelope.event_id, finding.event_type, finding.container)
    if isinstance(envelope, PodEnvelope):
        pod = envelope.payload
        workload = workload_of(pod)
        container = next((c for c in pod.containers if c.name == finding.container), None)
        return Notification(
            notification_id=notification_id,
            event_id=envelope.event_id,
            cluster_id=envelope.cluster_id,
            event_type=finding.event_type,
            reason=finding.reason,
            message=finding.message,
            source="pod",
            dedup_key=dedup_key,
            namespace=namespace,
            pod=pod_name,
            pod_uid=pod.uid,
            container=finding.container,
            node=pod.node,
            restart_count=container.restart_count if container else pod.restart_count,
            project_id=pod.labels.get(config.project_label_key),
            workload_id=pod.labels.get(config.workload_label_key),
            workload_kind=workload.kind if workload else None,
            workload_name=workload.name if workload else None,
            transitions=[t for t in pod.transitions if t.container in (None, finding.container)],
            observed_at=pod.observed_at,
            processed_at=now,
            config_version=config.version,
        )
    event = envelope.payload
    return Notification(
        notification_id=notification_id,
        event_id=envelope.event_id,
        cluster_id=envelope.cluster_id,
        event_type=finding.event_type,
        reason=finding.reason,
        message=finding.message,
        source="k8s_event",
        dedup_key=dedup_key,
        namespace=namespace,
        pod=pod_name,
        pod_uid=event.involved_object.uid,
        container=finding.container,
        observed_at=event.observed_at,
        processed_at=now,
        config_version=config.version,
    )
