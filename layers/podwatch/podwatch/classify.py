"""What trouble an event shows: Kubernetes reasons → `EventType`, in one table.

`REASON_TABLE` below is the only place that maps a Kubernetes reason to an event type; the lookups
the code uses are derived from it, and a unit test checks that this docstring lists every row.

Pod events (the relay's projection of a Pod; one finding per container at most, plus pod-level ones):

    ================  ===========================  ================  =====================================
    source            Kubernetes reason            event type        when
    ================  ===========================  ================  =====================================
    container         OOMKilled                    oom-kill          current state terminated OOMKilled, or
                                                                     lastState OOMKilled that is new here
                                                                     (transition, restart count went up,
                                                                     initial sync); beats crash-loop
    container         CrashLoopBackOff             crash-loop        state waiting
    container         ImagePullBackOff             image-pull        state waiting
    container         ErrImagePull                 image-pull        state waiting
    container         InvalidImageName             image-pull        state waiting
    container         CreateContainerConfigError   config-error      state waiting
    container         CreateContainerError         config-error      state waiting
    container         (restart count went up)      pod-restart       nothing more specific for it
    pod               Evicted                      evicted           status.reason; beats failed
    pod               Unschedulable                unschedulable     condition PodScheduled=False
    pod               Failed                       failed            status.phase
    pod               Pending                      pending-too-long  phase Pending longer than
                                                                     RemoteConfig.pending_too_long_seconds
                                                                     after creation; nothing more specific
    container         Recovered                    recovered         running and ready again after trouble
                                                                     (see "Recovered" below)
    ================  ===========================  ================  =====================================

Kubernetes Events (core/v1 Event whose involvedObject is a Pod; the container comes from fieldPath):

    ================  ===========================  ================  =====================================
    source            Kubernetes reason            event type        when
    ================  ===========================  ================  =====================================
    k8s_event         Unhealthy                    probe-failed      liveness/readiness/startup probe
    k8s_event         FailedScheduling             unschedulable
    k8s_event         OOMKilling                   oom-kill
    k8s_event         BackOff                      crash-loop        "Back-off restarting failed container"
    k8s_event         BackOff                      image-pull        "Back-off pulling image"
    k8s_event         Evicted                      evicted
    k8s_event         ErrImagePull                 image-pull
    k8s_event         ImagePullBackOff             image-pull
    k8s_event         InvalidImageName             image-pull
    k8s_event         Failed                       image-pull        message is about pulling an image
    k8s_event         Failed                       config-error      "Error: CreateContainer(Config)Error"
    ================  ===========================  ================  =====================================

Never trouble: a DELETED pod or Event (its end is not new trouble), control envelopes
(enroll, heartbeat), Events about other objects than Pods, and anything not in the table.

Recovered: a container (app or sidecar/init, never ephemeral) with no trouble of its own in this
event that is running and ready, and whose transitions show it was in trouble — a `waiting_reason`
from a troubled waiting reason (CrashLoopBackOff, ImagePullBackOff, ...; resolves that reason's
type), or `ready` false → true after restarts (resolves oom-kill when the last termination was
OOMKilled, else crash-loop). The finding names the type it resolves (`Finding.resolves`); it only
becomes a notification when an incident of that type is open (`dedup`).

Transitions the relay reports (`PodEvent.transitions`) that this module reads:

* `restart_count` (with `container`, or without it for the pod's total): from → to, ints;
* `last_termination_reason` (with `container`): the new `lastState.terminated.reason`;
* `waiting_reason` and `ready` (with `container`): for recovered.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from podwatch.models import (
    ContainerStatus,
    EnrollEnvelope,
    EventType,
    HeartbeatEnvelope,
    KubeEvent,
    KubeEventEnvelope,
    PodEnvelope,
    PodEvent,
)


class Finding(NamedTuple):
    """One piece of trouble found in one event (or, for `recovered`, the end of one)."""

    event_type: EventType
    #: the Kubernetes reason behind the type (CrashLoopBackOff, OOMKilled, Unhealthy, ...)
    reason: str
    #: the container it is about, or None for pod-level trouble
    container: str | None
    message: str | None
    #: for `recovered`: the type of trouble that ended (its incident is the one to resolve)
    resolves: EventType | None = None


class Rule(NamedTuple):
    source: str  # container | pod | k8s_event
    reason: str
    event_type: EventType
    when: str = ""


#: The one table. Order matters only for documentation; precedence is written out in the code below.
REASON_TABLE: tuple[Rule, ...] = (
    Rule("container", "OOMKilled", EventType.OOM_KILL, "terminated now, or new lastState"),
    Rule("container", "CrashLoopBackOff", EventType.CRASH_LOOP, "waiting"),
    Rule("container", "ImagePullBackOff", EventType.IMAGE_PULL, "waiting"),
    Rule("container", "ErrImagePull", EventType.IMAGE_PULL, "waiting"),
    Rule("container", "InvalidImageName", EventType.IMAGE_PULL, "waiting"),
    Rule("container", "CreateContainerConfigError", EventType.CONFIG_ERROR, "waiting"),
    Rule("container", "CreateContainerError", EventType.CONFIG_ERROR, "waiting"),
    Rule("pod", "Evicted", EventType.EVICTED, "status.reason"),
    Rule("pod", "Unschedulable", EventType.UNSCHEDULABLE, "PodScheduled=False"),
    Rule("pod", "Failed", EventType.FAILED, "status.phase"),
    Rule("pod", "Pending", EventType.PENDING_TOO_LONG, "phase Pending longer than the threshold"),
    Rule("container", "Recovered", EventType.RECOVERED, "running and ready again after trouble"),
    Rule("k8s_event", "Unhealthy", EventType.PROBE_FAILED),
    Rule("k8s_event", "FailedScheduling", EventType.UNSCHEDULABLE),
    Rule("k8s_event", "OOMKilling", EventType.OOM_KILL),
    Rule("k8s_event", "BackOff", EventType.CRASH_LOOP, "Back-off restarting failed container"),
    Rule("k8s_event", "BackOff", EventType.IMAGE_PULL, "Back-off pulling image"),
    Rule("k8s_event", "Evicted", EventType.EVICTED),
    Rule("k8s_event", "ErrImagePull", EventType.IMAGE_PULL),
    Rule("k8s_event", "ImagePullBackOff", EventType.IMAGE_PULL),
    Rule("k8s_event", "InvalidImageName", EventType.IMAGE_PULL),
    Rule("k8s_event", "Failed", EventType.IMAGE_PULL, "about pulling an image"),
    Rule("k8s_event", "Failed", EventType.CONFIG_ERROR, "Error: CreateContainer(Config)Error"),
)

#: container waiting reasons → type (derived from the table)
CONTAINER_WAITING: dict[str, EventType] = {
    r.reason: r.event_type for r in REASON_TABLE if r.source == "container" and r.when == "waiting"
}
#: Kubernetes Event reasons with one meaning (BackOff and Failed are told apart by their message)
KUBE_EVENT_SIMPLE: dict[str, EventType] = {
    r.reason: r.event_type
    for r in REASON_TABLE
    if r.source == "k8s_event" and r.reason not in {"BackOff", "Failed"}
}

OOM_KILLED = "OOMKilled"
EVICTED = "Evicted"
UNSCHEDULABLE = "Unschedulable"
RESTARTED = "Restarted"
T_RESTART_COUNT = "restart_count"
T_LAST_TERMINATION = "last_termination_reason"
T_WAITING_REASON = "waiting_reason"
T_READY = "ready"
RECOVERED = "Recovered"
PENDING = "Pending"
#: RemoteConfig.pending_too_long_seconds' default, for callers without a config
DEFAULT_PENDING_TOO_LONG_S = 600

_FIELD_PATH = re.compile(r"spec\.(?:initContainers|containers|ephemeralContainers)\{(?P<name>[^}]+)\}")


def classify(
    envelope: PodEnvelope | KubeEventEnvelope | EnrollEnvelope | HeartbeatEnvelope,
    *,
    pending_too_long_s: int = DEFAULT_PENDING_TOO_LONG_S,
) -> list[Finding]:
    """Every piece of trouble the envelope shows; [] for healthy pods and control messages."""
    if isinstance(envelope, PodEnvelope):
        return classify_pod(envelope.payload, pending_too_long_s=pending_too_long_s)
    if isinstance(envelope, KubeEventEnvelope):
        return classify_kube_event(envelope.payload)
    return []


# --------------------------------------------------------------------------- pods


def _restart_went_up(pod: PodEvent, container: str | None) -> bool:
    for t in pod.transitions:
        if t.field == T_RESTART_COUNT and t.container == container:
            old, new = t.old, t.new
            if isinstance(new, int) and (not isinstance(old, int) or new > old):
                return True
    return False


def _new_last_termination(pod: PodEvent, container: str) -> str | None:
    for t in pod.transitions:
        if t.field == T_LAST_TERMINATION and t.container == container and isinstance(t.new, str):
            return t.new
    return None


def _container_finding(pod: PodEvent, c: ContainerStatus) -> Finding | None:
    restarted = _restart_went_up(pod, c.name)
    # 1. OOM: the current state, or a last termination that is news in this event.
    if c.state == "terminated" and c.reason == OOM_KILLED:
        return Finding(EventType.OOM_KILL, OOM_KILLED, c.name, c.message)
    if c.last_termination_reason == OOM_KILLED and (
        restarted or pod.initial_sync or _new_last_termination(pod, c.name) == OOM_KILLED
    ):
        return Finding(EventType.OOM_KILL, OOM_KILLED, c.name, c.message)
    # 2. Waiting reasons: crash loop, image pull, config error.
    if c.state == "waiting" and c.reason is not None:
        event_type = CONTAINER_WAITING.get(c.reason)
        if event_type is not None:
            return Finding(event_type, c.reason, c.name, c.message)
    # 3. Nothing more specific, but it restarted.
    if restarted:
        return Finding(EventType.POD_RESTART, c.last_termination_reason or RESTARTED, c.name, c.message)
    return None


def _recovered(pod: PodEvent, c: ContainerStatus) -> Finding | None:
    """The end of a container's trouble, if its transitions show one (see "Recovered" above)."""
    if c.kind == "ephemeral" or c.state != "running" or not c.ready:
        return None
    became_ready = False
    for t in pod.transitions:
        if t.container != c.name:
            continue
        if t.field == T_WAITING_REASON and isinstance(t.old, str):
            ended = CONTAINER_WAITING.get(t.old)
            if ended is not None:
                return Finding(EventType.RECOVERED, t.old, c.name, None, ended)
        elif t.field == T_READY and t.new is True and t.old is False:
            became_ready = True
    if became_ready and c.restart_count > 0:
        if c.last_termination_reason == OOM_KILLED:
            return Finding(EventType.RECOVERED, OOM_KILLED, c.name, None, EventType.OOM_KILL)
        return Finding(EventType.RECOVERED, "CrashLoopBackOff", c.name, None, EventType.CRASH_LOOP)
    return None


def _pending_too_long(pod: PodEvent, threshold_s: int) -> Finding | None:
    if pod.phase != PENDING or threshold_s <= 0 or pod.created_at is None:
        return None
    pending_s = (pod.observed_at - pod.created_at).total_seconds()
    if pending_s < threshold_s:
        return None
    waiting = next((c.reason for c in pod.containers if c.state == "waiting" and c.reason), None)
    return Finding(EventType.PENDING_TOO_LONG, waiting or PENDING, None, f"Pending for {int(pending_s)}s")


def classify_pod(pod: PodEvent, *, pending_too_long_s: int = DEFAULT_PENDING_TOO_LONG_S) -> list[Finding]:
    if pod.watch_type == "DELETED":
        return []
    findings: list[Finding] = []
    recovered: list[Finding] = []
    for c in pod.containers:
        finding = _container_finding(pod, c)
        if finding is not None:
            findings.append(finding)
        elif pod.transitions and not pod.initial_sync:
            ended = _recovered(pod, c)
            if ended is not None:
                recovered.append(ended)
    if pod.reason == EVICTED:
        findings.append(Finding(EventType.EVICTED, EVICTED, None, pod.message))
    elif pod.phase == "Failed":
        findings.append(Finding(EventType.FAILED, pod.reason or "Failed", None, pod.message))
    for cond in pod.conditions:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == UNSCHEDULABLE:
            findings.append(Finding(EventType.UNSCHEDULABLE, UNSCHEDULABLE, None, cond.message))
            break
    # The pod's total restart count went up but no container said so (older relay, unknown container).
    if not findings and _restart_went_up(pod, None):
        findings.append(Finding(EventType.POD_RESTART, RESTARTED, None, pod.message))
    if not findings:
        pending = _pending_too_long(pod, pending_too_long_s)
        if pending is not None:
            findings.append(pending)
    return findings + recovered


# --------------------------------------------------------------------------- Kubernetes Events


def container_from_field_path(field_path: str | None) -> str | None:
    """`spec.containers{app}` → `app` (also initContainers and ephemeralContainers)."""
    if not field_path:
        return None
    match = _FIELD_PATH.search(field_path)
    return match.group("name") if match else None


def _kube_event_type(reason: str, message: str) -> EventType | None:
    simple = KUBE_EVENT_SIMPLE.get(reason)
    if simple is not None:
        return simple
    lowered = message.lower()
    if reason == "BackOff":
        if "restarting failed container" in lowered:
            return EventType.CRASH_LOOP
        if "pulling image" in lowered:
            return EventType.IMAGE_PULL
        return None
    if reason == "Failed":
        if "createcontainerconfigerror" in lowered or "createcontainererror" in lowered:
            return EventType.CONFIG_ERROR
        if "image" in lowered or "pull" in lowered:
            return EventType.IMAGE_PULL
    return None


def classify_kube_event(event: KubeEvent) -> list[Finding]:
    if event.watch_type == "DELETED" or event.involved_object.kind != "Pod" or not event.reason:
        return []
    event_type = _kube_event_type(event.reason, event.message or "")
    if event_type is None:
        return []
    container = container_from_field_path(event.involved_object.field_path)
    return [Finding(event_type, event.reason, container, event.message)]
