"""Pod and workload identity: which pod an envelope is about, and which workload owns that pod.

Shared by enrichment (the notification's workload), the metadata table (the pod's row) and dedup
(workload-scoped keys). The workload is the controller owner reference, walked up one level by name
(ReplicaSet `x-<pod-template-hash>` → Deployment `x`; Job `x-<scheduled minutes>` → CronJob `x`;
StatefulSet, DaemonSet and anything else as they are); for a Kubernetes Event, which names no owner,
it is guessed from the pod name (the generated suffixes Kubernetes appends).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from podwatch.models import KubeEventEnvelope, ObjectEnvelope, PodEnvelope, PodEvent

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
