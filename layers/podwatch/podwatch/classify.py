"""What trouble an event shows: Kubernetes reasons → `EventType`, in one table.

`REASON_TABLE` below is the only place that maps a Kubernetes reason to an event type; the lookups
the code uses are derived from it, and a unit test checks that this docstring lists every row. The
reasons are Kubernetes' own vocabulary: the kubelet's event reasons (pkg/kubelet/events), container
waiting/terminated reasons, pod `status.reason` values and `DisruptionTarget` condition reasons.

Pod events (the relay's projection of a Pod; one finding per container at most, plus pod-level ones):

    ================  ===========================  ==================  ===================================
    source            Kubernetes reason            event type          when
    ================  ===========================  ==================  ===================================
    container         OOMKilled                    oom-kill            current state terminated OOMKilled,
                                                                       or lastState OOMKilled that is new
                                                                       here; beats crash-loop
    container         CrashLoopBackOff             crash-loop          state waiting
    container         ImagePullBackOff             image-pull          state waiting
    container         ErrImagePull                 image-pull          state waiting
    container         InvalidImageName             image-pull          state waiting
    container         ErrImageNeverPull            image-pull          state waiting
    container         ImageInspectError            image-pull          state waiting
    container         CreateContainerConfigError   config-error        state waiting
    container         CreateContainerError         config-error        state waiting
    container         RunContainerError            container-start     state waiting
    container         PreStartHookError            container-start     state waiting
    container         PostStartHookError           container-start     state waiting
    container         StartError                   container-start     terminated now, or new lastState
    container         ContainerCannotRun           container-start     terminated now, or new lastState
    container         Error                        crash-loop          restart count went up after a
                                                                       non-zero exit, at least
                                                                       RemoteConfig.crash_loop_restarts
    container         (restart count went up)      pod-restart         nothing more specific for it
    pod               Evicted                      evicted             status.reason
    pod               NodeLost                     node-lost           status.reason
    pod               Shutdown                     node-lost           status.reason (graceful node
                                                                       shutdown, before 1.22)
    pod               Terminated                   node-lost           status.reason (graceful node
                                                                       shutdown)
    pod               NodeShutdown                 node-lost           status.reason (rejected: shutting
                                                                       down)
    pod               Unknown                      node-lost           status.phase
    pod               UnexpectedAdmissionError     admission-rejected  status.reason
    pod               NodeAffinity                 admission-rejected  status.reason
    pod               OutOf<resource>              admission-rejected  status.reason (OutOfcpu,
                                                                       OutOfmemory, OutOfpods, ...)
    condition         TerminationByKubelet         evicted             DisruptionTarget=True
    condition         PreemptionByScheduler        evicted             DisruptionTarget=True
    condition         PreemptionByKubeScheduler    evicted             DisruptionTarget=True (< 1.26)
    condition         DeletionByTaintManager       node-lost           DisruptionTarget=True
    condition         DeletionByPodGC              node-lost           DisruptionTarget=True
    pod               Unschedulable                unschedulable       condition PodScheduled=False
    pod               Failed                       failed              status.phase; only when nothing
                                                                       above names the trouble
    pod               Pending                      pending-too-long    phase Pending longer than
                                                                       RemoteConfig.pending_too_long_seconds
                                                                       after creation; nothing more specific
    pod               NotReady                     not-ready-too-long  phase Running, Ready=False for
                                                                       longer than RemoteConfig.
                                                                       not_ready_too_long_seconds
    container         Recovered                    recovered           running and ready again after
                                                                       trouble (see "Recovered" below)
    ================  ===========================  ==================  ===================================

`DisruptionTarget` with reason `EvictionByEvictionAPI` (a drain, a voluntary disruption that honours
PodDisruptionBudgets) is not trouble. `status.reason` wins over the condition, the condition over the
phase.

Kubernetes Events (core/v1 Event whose involvedObject is a Pod; the container comes from fieldPath):

    ================  ===========================  ==================  ===================================
    source            Kubernetes reason            event type          when
    ================  ===========================  ==================  ===================================
    k8s_event         Unhealthy                    probe-failed        liveness/readiness/startup probe
    k8s_event         FailedScheduling             unschedulable
    k8s_event         OOMKilling                   oom-kill
    k8s_event         Evicted                      evicted
    k8s_event         ErrImagePull                 image-pull
    k8s_event         ImagePullBackOff             image-pull
    k8s_event         InvalidImageName             image-pull
    k8s_event         ErrImageNeverPull            image-pull
    k8s_event         InspectFailed                image-pull
    k8s_event         FailedMount                  volume-mount
    k8s_event         FailedAttachVolume           volume-mount
    k8s_event         FailedMapVolume              volume-mount
    k8s_event         FailedMountOnFilesystemMismatch  volume-mount
    k8s_event         FailedCreatePodSandBox       container-start
    k8s_event         FailedCreatePodContainer     container-start
    k8s_event         NetworkNotReady              container-start
    k8s_event         FailedPostStartHook          container-start
    k8s_event         UnexpectedAdmissionError     admission-rejected
    k8s_event         NodeAffinity                 admission-rejected
    k8s_event         OutOf<resource>              admission-rejected
    k8s_event         FailedValidation             admission-rejected
    k8s_event         NodeShutdown                 node-lost
    k8s_event         BackOff                      crash-loop          "Back-off restarting failed container"
    k8s_event         BackOff                      image-pull          "Back-off pulling image"
    k8s_event         Failed                       image-pull          "Failed to pull image ..."
    k8s_event         Failed                       (the token's type)  "Error: <waiting reason>" (rule 2)
    k8s_event         Failed                       container-start     "Error: <the runtime could not
                                                                       start it>" (rule 3)
    k8s_event         Failed                       config-error        "Error: <anything else>" (rule 4)
    ================  ===========================  ==================  ===================================

`Failed` Events are read by their structure, in this order (`FAILED_MESSAGE_RULES`): the kubelet
writes `Failed to pull image "<image>": <error>` when a pull fails (1), and `Error: <err>` when a
container cannot be created or started: `<err>` is a reason token when the image step failed
(`Error: ErrImagePull`, `Error: ImagePullBackOff`, ...: 2), the container runtime's message when
it could not start the process (`Error: failed to create containerd task: ... OCI runtime create
failed ...`, `Error: failed to start container ...`: 3), and otherwise what the kubelet found wrong
with the container's configuration (`Error: container has runAsNonRoot and image will run as
root`, `Error: couldn't find key K in Secret ns/s`, `Error: configmap "c" not found`: 4). Words
such as "image" inside a message never decide the type.

Node trouble (`object` envelopes of kind Node; one finding per troubled condition, `NODE_CONDITIONS`):

    ================  ===========================  ==========================  ===========================
    source            Kubernetes condition         event type                  when
    ================  ===========================  ==========================  ===========================
    node              Ready                        node-not-ready              status False or Unknown
    node              MemoryPressure               node-memory-pressure        status True (Unknown is
                                                                               not pressure: Ready says
                                                                               the kubelet is silent)
    node              DiskPressure                 node-disk-pressure          status True
    node              PIDPressure                  node-pid-pressure           status True
    node              NetworkUnavailable           node-network-unavailable    status True
    node              Recovered                    recovered                   a `condition.<type>`
                                                                               transition back to the
                                                                               healthy status
    ================  ===========================  ==========================  ===========================

The reason is the condition's own (`KubeletNotReady`, `NodeStatusUnknown`, `KubeletHasDiskPressure`,
...), else the condition type. A node first seen (initial sync) in trouble is trouble (its incident
is open or opens); it recovers only through a transition the relay saw. Every other kind of object
is history only, never trouble.

Never trouble: a DELETED pod or Event (its end is not new trouble), control envelopes
(enroll, heartbeat), Events about other objects than Pods, a Succeeded pod, and anything not in the
table. A pod being deleted (`deleted_at`) is never `pending-too-long` nor `not-ready-too-long`.

Restarts: a restart count "went up" only for a container the relay knew before this event; a
container seen for the first time (a new pod, or every pod after the relay restarts) comes with a
`state` transition from nothing, and its existing restart count is history, not news.

One incident per trouble: `failed` is only reported when no container finding and no pod reason
explains it (an OOMKilled container that fails its pod is one `oom-kill`), so the more specific type
wins; a later, different trouble of the same pod still has its own type and dedup key.

Recovered: a container (app or sidecar/init, never ephemeral, not seen for the first time) with no
trouble of its own in this event that is running and ready, and whose transitions show it was in
trouble — a `waiting_reason` from a troubled waiting reason (CrashLoopBackOff, ImagePullBackOff,
...; resolves that reason's type), or `ready` false → true after restarts (resolves oom-kill when the
last termination was OOMKilled, else crash-loop). The finding names the type it resolves
(`Finding.resolves`); it only becomes a notification when an incident of that type is open
(`dedup`).

Transitions the relay reports (`PodEvent.transitions`) that this module reads:

* `restart_count` (with `container`, or without it for the pod's total): from → to, ints;
* `state` (with `container`): from nothing, for a container seen for the first time;
* `last_termination_reason` (with `container`): the new `lastState.terminated.reason`;
* `waiting_reason` and `ready` (with `container`): for recovered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from podwatch.models import (
    ContainerStatus,
    EnrollEnvelope,
    EventType,
    HeartbeatEnvelope,
    KubeEvent,
    KubeEventEnvelope,
    KubeObject,
    ObjectEnvelope,
    PodCondition,
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
    source: str  # container | pod | condition | k8s_event
    reason: str
    event_type: EventType
    when: str = ""


class Thresholds(NamedTuple):
    """The remote config's knobs that classification reads (`RemoteConfig` has the same names)."""

    #: a pod still Pending this long after its creation is `pending-too-long` (0: never)
    pending_too_long_seconds: int = 600
    #: a Running pod whose Ready condition is False this long is `not-ready-too-long` (0: never)
    not_ready_too_long_seconds: int = 900
    #: restarts after a non-zero exit that make a crash loop before any CrashLoopBackOff (0: only
    #: CrashLoopBackOff does)
    crash_loop_restarts: int = 1


WAITING = "waiting"
TERMINATED = "terminated now, or new lastState"
POD_REASON = "status.reason"
DISRUPTION = "DisruptionTarget=True"
T = EventType

#: The one table. Order matters only for documentation; precedence is written out in the code below.
REASON_TABLE: tuple[Rule, ...] = (
    Rule("container", "OOMKilled", T.OOM_KILL, TERMINATED),
    Rule("container", "CrashLoopBackOff", T.CRASH_LOOP, WAITING),
    *(
        Rule("container", r, T.IMAGE_PULL, WAITING)
        for r in (
            "ImagePullBackOff",
            "ErrImagePull",
            "InvalidImageName",
            "ErrImageNeverPull",
            "ImageInspectError",
        )
    ),
    Rule("container", "CreateContainerConfigError", T.CONFIG_ERROR, WAITING),
    Rule("container", "CreateContainerError", T.CONFIG_ERROR, WAITING),
    Rule("container", "RunContainerError", T.CONTAINER_START, WAITING),
    Rule("container", "PreStartHookError", T.CONTAINER_START, WAITING),
    Rule("container", "PostStartHookError", T.CONTAINER_START, WAITING),
    Rule("container", "StartError", T.CONTAINER_START, TERMINATED),
    Rule("container", "ContainerCannotRun", T.CONTAINER_START, TERMINATED),
    Rule("container", "Error", T.CRASH_LOOP, "restarted after a non-zero exit"),
    Rule("pod", "Evicted", T.EVICTED, POD_REASON),
    *(
        Rule("pod", r, T.NODE_LOST, POD_REASON)
        for r in ("NodeLost", "Shutdown", "Terminated", "NodeShutdown")
    ),
    Rule("pod", "Unknown", T.NODE_LOST, "status.phase"),
    *(
        Rule("pod", r, T.ADMISSION_REJECTED, POD_REASON)
        for r in ("UnexpectedAdmissionError", "NodeAffinity", "OutOf<resource>")
    ),
    Rule("condition", "TerminationByKubelet", T.EVICTED, DISRUPTION),
    Rule("condition", "PreemptionByScheduler", T.EVICTED, DISRUPTION),
    Rule("condition", "PreemptionByKubeScheduler", T.EVICTED, DISRUPTION),
    Rule("condition", "DeletionByTaintManager", T.NODE_LOST, DISRUPTION),
    Rule("condition", "DeletionByPodGC", T.NODE_LOST, DISRUPTION),
    Rule("pod", "Unschedulable", T.UNSCHEDULABLE, "PodScheduled=False"),
    Rule("pod", "Failed", T.FAILED, "status.phase, nothing more specific"),
    Rule("pod", "Pending", T.PENDING_TOO_LONG, "phase Pending longer than the threshold"),
    Rule("pod", "NotReady", T.NOT_READY_TOO_LONG, "Running, Ready=False longer than the threshold"),
    Rule("container", "Recovered", T.RECOVERED, "running and ready again after trouble"),
    Rule("node", "Ready", T.NODE_NOT_READY, "status False or Unknown"),
    Rule("node", "MemoryPressure", T.NODE_MEMORY_PRESSURE, "status True"),
    Rule("node", "DiskPressure", T.NODE_DISK_PRESSURE, "status True"),
    Rule("node", "PIDPressure", T.NODE_PID_PRESSURE, "status True"),
    Rule("node", "NetworkUnavailable", T.NODE_NETWORK_UNAVAILABLE, "status True"),
    Rule("node", "Recovered", T.RECOVERED, "a condition transition back to the healthy status"),
    Rule("k8s_event", "Unhealthy", T.PROBE_FAILED),
    Rule("k8s_event", "FailedScheduling", T.UNSCHEDULABLE),
    Rule("k8s_event", "OOMKilling", T.OOM_KILL),
    Rule("k8s_event", "Evicted", T.EVICTED),
    *(
        Rule("k8s_event", r, T.IMAGE_PULL)
        for r in (
            "ErrImagePull",
            "ImagePullBackOff",
            "InvalidImageName",
            "ErrImageNeverPull",
            "InspectFailed",
        )
    ),
    *(
        Rule("k8s_event", r, T.VOLUME_MOUNT)
        for r in ("FailedMount", "FailedAttachVolume", "FailedMapVolume", "FailedMountOnFilesystemMismatch")
    ),
    Rule("k8s_event", "FailedCreatePodSandBox", T.CONTAINER_START),
    Rule("k8s_event", "FailedCreatePodContainer", T.CONTAINER_START),
    Rule("k8s_event", "NetworkNotReady", T.CONTAINER_START),
    Rule("k8s_event", "FailedPostStartHook", T.CONTAINER_START),
    *(
        Rule("k8s_event", r, T.ADMISSION_REJECTED)
        for r in ("UnexpectedAdmissionError", "NodeAffinity", "OutOf<resource>", "FailedValidation")
    ),
    Rule("k8s_event", "NodeShutdown", T.NODE_LOST),
    Rule("k8s_event", "BackOff", T.CRASH_LOOP, "Back-off restarting failed container"),
    Rule("k8s_event", "BackOff", T.IMAGE_PULL, "Back-off pulling image"),
    Rule("k8s_event", "Failed", T.IMAGE_PULL, "Failed to pull image ..."),
    Rule("k8s_event", "Failed", T.CONTAINER_START, "Error: <the runtime could not start it>"),
    Rule("k8s_event", "Failed", T.CONFIG_ERROR, "Error: <anything else>"),
)

_OUT_OF = "OutOf<resource>"


def _lookup(source: str, when: str | None = None) -> dict[str, EventType]:
    return {
        r.reason: r.event_type
        for r in REASON_TABLE
        if r.source == source and (when is None or r.when == when)
    }


#: container waiting reasons → type (derived from the table, as every lookup below)
CONTAINER_WAITING = _lookup("container", WAITING)
#: container terminated reasons (current state, or a new lastState) → type
CONTAINER_TERMINATED = _lookup("container", TERMINATED)
#: pod `status.reason` → type (`OutOf<resource>` stands for every `OutOf` prefix)
POD_REASONS = _lookup("pod", POD_REASON)
#: `DisruptionTarget` condition reasons → type
DISRUPTION_REASONS = _lookup("condition", DISRUPTION)
#: Node condition type → type (`Recovered` is the end of one, not a condition)
NODE_CONDITIONS = {k: v for k, v in _lookup("node").items() if v is not EventType.RECOVERED}
#: the healthy status of each node condition (Ready is the one that is good when True)
NODE_HEALTHY_STATUS = {kind: "True" if kind == "Ready" else "False" for kind in NODE_CONDITIONS}
#: the statuses that are trouble: Ready False or Unknown (the node controller's "stopped posting");
#: a pressure only when True (Unknown pressure says nothing: the kubelet is silent, Ready tells it)
NODE_TROUBLED_STATUS = {
    kind: frozenset({"False", "Unknown"}) if kind == "Ready" else frozenset({"True"})
    for kind in NODE_CONDITIONS
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
T_STATE = "state"
RECOVERED = "Recovered"
PENDING = "Pending"
NOT_READY = "NotReady"
DISRUPTION_TARGET = "DisruptionTarget"
#: RemoteConfig.pending_too_long_seconds' default, for callers without a config
DEFAULT_PENDING_TOO_LONG_S = Thresholds().pending_too_long_seconds

_FIELD_PATH = re.compile(r"spec\.(?:initContainers|containers|ephemeralContainers)\{(?P<name>[^}]+)\}")


def table_type(table: dict[str, EventType], reason: str | None) -> EventType | None:
    """`reason`'s type in one of the lookups above; `OutOf<resource>` matches every `OutOf...`."""
    if not reason:
        return None
    found = table.get(reason)
    if found is None and reason.startswith("OutOf") and len(reason) > 5:
        return table.get(_OUT_OF)
    return found


def classify(
    envelope: PodEnvelope | KubeEventEnvelope | ObjectEnvelope | EnrollEnvelope | HeartbeatEnvelope,
    *,
    pending_too_long_s: int | None = None,
    thresholds: Thresholds | None = None,
) -> list[Finding]:
    """Every piece of trouble the envelope shows; [] for healthy pods and control messages.
    `pending_too_long_s` overrides `thresholds.pending_too_long_seconds` (older callers)."""
    if isinstance(envelope, PodEnvelope):
        limits = thresholds or Thresholds()
        if pending_too_long_s is not None:
            limits = limits._replace(pending_too_long_seconds=pending_too_long_s)
        return classify_pod(envelope.payload, thresholds=limits)
    if isinstance(envelope, KubeEventEnvelope):
        return classify_kube_event(envelope.payload)
    if isinstance(envelope, ObjectEnvelope):
        return classify_node(envelope.payload)
    return []


# --------------------------------------------------------------------------- pods


def _first_seen(pod: PodEvent, container: str) -> bool:
    """The relay did not know this container before this event (see "Restarts" above)."""
    return any(t.field == T_STATE and t.container == container and t.old is None for t in pod.transitions)


def _restart_went_up(pod: PodEvent, container: str | None) -> bool:
    if pod.initial_sync or (container is not None and _first_seen(pod, container)):
        return False
    for t in pod.transitions:
        if t.field == T_RESTART_COUNT and t.container == container:
            old, new = t.old, t.new
            if isinstance(new, int) and isinstance(old, int) and new > old:
                return True
    return False


def _new_last_termination(pod: PodEvent, container: str) -> str | None:
    for t in pod.transitions:
        if t.field == T_LAST_TERMINATION and t.container == container and isinstance(t.new, str):
            return t.new
    return None


def _terminated_finding(pod: PodEvent, c: ContainerStatus, restarted: bool) -> Finding | None:
    """OOMKilled / StartError / ContainerCannotRun: the current state, or a last state that is news."""
    if c.state == "terminated":
        event_type = CONTAINER_TERMINATED.get(c.reason or "")
        if event_type is not None:
            return Finding(event_type, c.reason or "", c.name, c.message)
    last = c.last_termination_reason
    event_type = CONTAINER_TERMINATED.get(last or "")
    if event_type is None or last is None:
        return None
    news = restarted or _new_last_termination(pod, c.name) == last
    if news or (pod.initial_sync and last == OOM_KILLED):
        return Finding(event_type, last, c.name, c.message)
    return None


def _container_finding(pod: PodEvent, c: ContainerStatus, limits: Thresholds) -> Finding | None:
    restarted = _restart_went_up(pod, c.name)
    # 1. Terminated for a reason of its own: OOM (beats crash-loop), a start failure.
    finding = _terminated_finding(pod, c, restarted)
    if finding is not None:
        return finding
    # 2. Waiting reasons: crash loop, image pull, config error, start failure.
    if c.state == "waiting" and c.reason is not None:
        event_type = CONTAINER_WAITING.get(c.reason)
        if event_type is not None:
            return Finding(event_type, c.reason, c.name, c.message)
    if not restarted:
        return None
    # 3. It restarted after a non-zero exit: a crash loop from its first restarts on.
    failed_exit = (c.last_exit_code or 0) != 0 or c.last_termination_reason == "Error"
    if failed_exit and 0 < limits.crash_loop_restarts <= c.restart_count:
        return Finding(EventType.CRASH_LOOP, c.last_termination_reason or "Error", c.name, c.message)
    # 4. Nothing more specific, but it restarted.
    return Finding(EventType.POD_RESTART, c.last_termination_reason or RESTARTED, c.name, c.message)


def _recovered(pod: PodEvent, c: ContainerStatus) -> Finding | None:
    """The end of a container's trouble, if its transitions show one (see "Recovered" above)."""
    if c.kind == "ephemeral" or c.state != "running" or not c.ready or _first_seen(pod, c.name):
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


def _pod_reason_finding(pod: PodEvent) -> Finding | None:
    """The pod's own verdict: `status.reason`, else a `DisruptionTarget` condition, else the phase."""
    event_type = table_type(POD_REASONS, pod.reason)
    if event_type is not None and pod.reason is not None:
        return Finding(event_type, pod.reason, None, pod.message)
    for cond in pod.conditions:
        if cond.type == DISRUPTION_TARGET and cond.status == "True" and cond.reason:
            event_type = DISRUPTION_REASONS.get(cond.reason)
            if event_type is not None:
                return Finding(event_type, cond.reason, None, cond.message or pod.message)
    if pod.phase == "Unknown":
        return Finding(EventType.NODE_LOST, pod.reason or "Unknown", None, pod.message)
    return None


def _waited_too_long(pod: PodEvent, since: datetime | None, threshold_s: int) -> int | None:
    """Seconds waited since `since` when that is at least `threshold_s` (0: never), else None."""
    if threshold_s <= 0 or since is None or pod.deleted_at is not None:
        return None
    waited = int((pod.observed_at - since).total_seconds())
    return waited if waited >= threshold_s else None


def _pending_too_long(pod: PodEvent, threshold_s: int) -> Finding | None:
    if pod.phase != PENDING:
        return None
    waited = _waited_too_long(pod, pod.created_at, threshold_s)
    if waited is None:
        return None
    waiting = next((c.reason for c in pod.containers if c.state == "waiting" and c.reason), None)
    return Finding(EventType.PENDING_TOO_LONG, waiting or PENDING, None, f"Pending for {waited}s")


def ready_condition(pod: PodEvent) -> PodCondition | None:
    return next((c for c in pod.conditions if c.type == "Ready"), None)


def _not_ready_too_long(pod: PodEvent, threshold_s: int) -> Finding | None:
    ready = ready_condition(pod)
    if pod.phase != "Running" or ready is None or ready.status != "False":
        return None
    waited = _waited_too_long(pod, ready.last_transition_time or pod.created_at, threshold_s)
    if waited is None:
        return None
    detail = f"not Ready for {waited}s" + (f": {ready.message}" if ready.message else "")
    return Finding(EventType.NOT_READY_TOO_LONG, ready.reason or NOT_READY, None, detail)


def classify_pod(pod: PodEvent, *, thresholds: Thresholds | None = None) -> list[Finding]:
    if pod.watch_type == "DELETED":
        return []
    limits = thresholds or Thresholds()
    findings: list[Finding] = []
    recovered: list[Finding] = []
    for c in pod.containers:
        finding = _container_finding(pod, c, limits)
        if finding is not None:
            findings.append(finding)
        elif pod.transitions and not pod.initial_sync:
            ended = _recovered(pod, c)
            if ended is not None:
                recovered.append(ended)
    verdict = _pod_reason_finding(pod)
    if verdict is not None:
        findings.append(verdict)
    elif pod.phase == "Failed" and not any(f.event_type is not EventType.POD_RESTART for f in findings):
        # One incident: a container's own trouble already names why the pod failed.
        findings.append(Finding(EventType.FAILED, pod.reason or "Failed", None, pod.message))
    for cond in pod.conditions:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == UNSCHEDULABLE:
            findings.append(Finding(EventType.UNSCHEDULABLE, UNSCHEDULABLE, None, cond.message))
            break
    # The pod's total restart count went up but no container said so (older relay, unknown container).
    if not findings and _restart_went_up(pod, None):
        findings.append(Finding(EventType.POD_RESTART, RESTARTED, None, pod.message))
    if not findings:
        waited = _pending_too_long(pod, limits.pending_too_long_seconds) or _not_ready_too_long(
            pod, limits.not_ready_too_long_seconds
        )
        if waited is not None:
            findings.append(waited)
    return findings + recovered


# --------------------------------------------------------------------------- Kubernetes Events


def container_from_field_path(field_path: str | None) -> str | None:
    """`spec.containers{app}` → `app` (also initContainers and ephemeralContainers)."""
    if not field_path:
        return None
    match = _FIELD_PATH.search(field_path)
    return match.group("name") if match else None


_PULL_FAILED = re.compile(r"Failed to pull image ")
_ERROR_TOKEN = re.compile(r"Error: (?P<token>[A-Z][A-Za-z]+)\s*$")
#: what the container runtime says when it could not start the container's process
_RUNTIME_START = re.compile(
    r"Error: (?:failed to (?:create|start) (?:containerd task|shim task|container)|"
    r".*OCI runtime (?:create|start|exec) failed|.*starting container process caused|"
    r".*unable to start container process)"
)
_ERROR = re.compile(r"Error: \S")


def _failed_token(message: str) -> EventType | None:
    match = _ERROR_TOKEN.match(message)
    return CONTAINER_WAITING.get(match.group("token")) if match else None


#: `Failed` Event messages, in the order they are tried (see the module docstring): the first whose
#: pattern matches the start of the message decides. (name, test, type or None for "the token's").
FAILED_MESSAGE_RULES: tuple[tuple[str, Callable[[str], EventType | None]], ...] = (
    ("pull", lambda m: EventType.IMAGE_PULL if _PULL_FAILED.match(m) else None),
    ("reason-token", _failed_token),
    ("runtime-start", lambda m: EventType.CONTAINER_START if _RUNTIME_START.match(m) else None),
    ("config", lambda m: EventType.CONFIG_ERROR if _ERROR.match(m) else None),
)


def failed_message_type(message: str) -> EventType | None:
    """The type of a kubelet `Failed` Event, from its message's structure; None if it has none."""
    text = message.strip()
    for _, rule in FAILED_MESSAGE_RULES:
        found = rule(text)
        if found is not None:
            return found
    return None


def _kube_event_type(reason: str, message: str) -> EventType | None:
    simple = table_type(KUBE_EVENT_SIMPLE, reason)
    if simple is not None:
        return simple
    if reason == "BackOff":
        lowered = message.lower()
        if lowered.startswith("back-off restarting failed container"):
            return EventType.CRASH_LOOP
        if lowered.startswith("back-off pulling image"):
            return EventType.IMAGE_PULL
        return None
    if reason == "Failed":
        return failed_message_type(message)
    return None


def classify_kube_event(event: KubeEvent) -> list[Finding]:
    if event.watch_type == "DELETED" or event.involved_object.kind != "Pod" or not event.reason:
        return []
    event_type = _kube_event_type(event.reason, event.message or "")
    if event_type is None:
        return []
    container = container_from_field_path(event.involved_object.field_path)
    return [Finding(event_type, event.reason, container, event.message)]


# --------------------------------------------------------------------------- nodes


def classify_node(node: KubeObject) -> list[Finding]:
    """A Node's troubled conditions, then the ends of troubles its transitions show; [] for any
    other kind and for a deleted node (see "Node trouble" above)."""
    if node.kind != "Node" or node.api_version != "v1" or node.watch_type == "DELETED":
        return []
    findings: list[Finding] = []
    recovered: list[Finding] = []
    for cond in node.conditions:
        event_type = NODE_CONDITIONS.get(cond.type)
        if event_type is None:
            continue
        if cond.status in NODE_TROUBLED_STATUS[cond.type]:
            findings.append(Finding(event_type, cond.reason or cond.type, None, cond.message))
        elif not node.initial_sync and _condition_cleared(node, cond.type):
            recovered.append(
                Finding(EventType.RECOVERED, cond.reason or cond.type, None, cond.message, event_type)
            )
    return findings + recovered


def _condition_cleared(node: KubeObject, condition: str) -> bool:
    """A transition from a troubled status to the healthy one (Unknown → False is no recovery)."""
    field = f"condition.{condition}"
    healthy, troubled = NODE_HEALTHY_STATUS[condition], NODE_TROUBLED_STATUS[condition]
    return any(t.field == field and t.new == healthy and t.old in troubled for t in node.transitions)
