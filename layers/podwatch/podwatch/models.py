"""The contracts, as pydantic v2 models. The relay and every function import these; nothing else
defines what crosses a boundary.

Wire shapes:

* pod-events queue: one `Envelope` per SQS message (JSON). `kind` selects the payload model:
  `pod`, `k8s_event`, `object` (any other watched kind, history only), `hook` (a khook Hook in the
  cluster), `enroll`, `heartbeat` (docs/internals.md, "Pod-events envelopes").
* deliveries queue: one `Notification` per SQS message (JSON).
* SSM parameter: one `RemoteConfig` (JSON).
* Restate ingress: `NotifyPodEventsRequest` (a list of `Notification`), `EnrollRequest`,
  `RemoteConfig` as the answer of GetRemoteConfig.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    field_serializer,
    field_validator,
)

#: Envelope schema versions this code reads. The relay writes the first.
SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

#: SQS's hard limit is 256 KiB per message; we refuse anything larger than this ourselves.
MAX_MESSAGE_BYTES = 256 * 1024
#: Free-text fields (messages from the kubelet, scheduler, ...) are cut to this many characters.
MAX_TEXT = 1024
#: `kind` of the stub the relay sends for an envelope it could not trim to fit (`OversizeEnvelope`):
#: not an `Envelope`, so the processor quarantines it (reason `oversize`), never processes it
OVERSIZE_KIND = "oversize"


def utcnow() -> datetime:
    return datetime.now(UTC)


def truncate(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


class _Model(BaseModel):
    """Closed, immutable wire model: unknown fields are an error, not silently dropped.

    `defer_build`: a model's validator and serializer are built when it is first used, not when this
    module is imported (most of its import time otherwise; a function's cold start, and a process
    that uses a few of these models pays for those only).

    Times are `AwareDatetime`: on the wire they carry their offset (the relay writes UTC, `Z`), and
    a time without one is refused, so such a message is quarantined as malformed instead of failing
    a comparison with an aware time later (pending-too-long, a heartbeat's last-seen), which would
    retry it for nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)


class EventType(StrEnum):
    """What kind of trouble a pod is in. The mapping from Kubernetes reasons lives in `classify`."""

    CRASH_LOOP = "crash-loop"
    OOM_KILL = "oom-kill"
    EVICTED = "evicted"
    IMAGE_PULL = "image-pull"
    CONFIG_ERROR = "config-error"
    POD_RESTART = "pod-restart"
    PROBE_FAILED = "probe-failed"
    UNSCHEDULABLE = "unschedulable"
    PENDING_TOO_LONG = "pending-too-long"
    FAILED = "failed"
    RECOVERED = "recovered"
    VOLUME_MOUNT = "volume-mount"
    CONTAINER_START = "container-start"
    NODE_LOST = "node-lost"
    ADMISSION_REJECTED = "admission-rejected"
    NOT_READY_TOO_LONG = "not-ready-too-long"
    # Node trouble: a node's condition (`object` envelopes of kind Node; `classify.NODE_CONDITIONS`)
    NODE_NOT_READY = "node-not-ready"
    NODE_MEMORY_PRESSURE = "node-memory-pressure"
    NODE_DISK_PRESSURE = "node-disk-pressure"
    NODE_PID_PRESSURE = "node-pid-pressure"
    NODE_NETWORK_UNAVAILABLE = "node-network-unavailable"


WatchType = Literal["ADDED", "MODIFIED", "DELETED"]
ContainerKind = Literal["init", "app", "ephemeral"]
ContainerStateName = Literal["waiting", "running", "terminated", "unknown"]


# --------------------------------------------------------------------------- pod payload


class ContainerStatus(_Model):
    """One container's state, projected from `status.(init|ephemeral)ContainerStatuses[]`."""

    name: str
    kind: ContainerKind = "app"
    image: str | None = None
    ready: bool = False
    started: bool | None = None
    restart_count: int = 0
    state: ContainerStateName = "unknown"
    #: waiting or terminated reason of the current state (CrashLoopBackOff, OOMKilled, ...)
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    #: `lastState.terminated`: why the previous instance of this container ended
    last_termination_reason: str | None = None
    last_exit_code: int | None = None
    last_finished_at: AwareDatetime | None = None

    _trim_message = field_validator("message")(classmethod(lambda cls, v: truncate(v)))


class PodCondition(_Model):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_time: AwareDatetime | None = None

    _trim_message = field_validator("message")(classmethod(lambda cls, v: truncate(v)))


class OwnerReference(_Model):
    kind: str
    name: str
    uid: str | None = None
    controller: bool = False


class Transition(_Model):
    """One change the relay saw between two projections of the same pod (restart count 3→4, ...)."""

    field: str
    container: str | None = None
    old: str | int | bool | None = Field(default=None, alias="from")
    new: str | int | bool | None = Field(default=None, alias="to")

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True, defer_build=True
    )


class Trimmed(_Model):
    """What the relay cut from a pod's (or object's) payload to fit the SQS message limit (`fit.py`)."""

    #: messages cut short (to 160 characters) or, if that was not enough, removed
    messages: int = 0
    #: containers left out beyond the cap (those in trouble are kept first)
    containers: int = 0
    #: `object` envelopes: top-level `snapshot` entries removed (largest first)
    fields: int = 0


class PodEvent(_Model):
    """The compact pod, by allowlist: never env, volumes, secrets, annotations or managedFields;
    only allowlisted labels, and free text with secret-looking values redacted by the relay."""

    namespace: str
    name: str
    uid: str
    phase: str | None = None
    reason: str | None = None
    message: str | None = None
    restart_count: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    #: how many labels the relay did not forward (not on its allowlist)
    labels_omitted: int | None = None
    owner_references: list[OwnerReference] = Field(default_factory=list)
    node: str | None = None
    containers: list[ContainerStatus] = Field(default_factory=list)
    conditions: list[PodCondition] = Field(default_factory=list)
    created_at: AwareDatetime | None = None
    deleted_at: AwareDatetime | None = None
    watch_type: WatchType = "MODIFIED"
    resource_version: str = ""
    observed_at: AwareDatetime = Field(default_factory=utcnow)
    initial_sync: bool = False
    transitions: list[Transition] = Field(default_factory=list)
    #: set when the relay trimmed the payload to fit the message limit
    trimmed: Trimmed | None = None

    _trim_message = field_validator("message")(classmethod(lambda cls, v: truncate(v)))


# --------------------------------------------------------------------------- core/v1 Event payload


class InvolvedObject(_Model):
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None
    field_path: str | None = None


class KubeEvent(_Model):
    """A core/v1 Event about a Pod (probe failures, BackOff, FailedScheduling, OOMKilling, ...)."""

    namespace: str
    name: str
    uid: str
    reason: str | None = None
    message: str | None = None
    type: str | None = None  # Normal | Warning
    count: int = 1
    involved_object: InvolvedObject
    first_timestamp: AwareDatetime | None = None
    last_timestamp: AwareDatetime | None = None
    source_component: str | None = None
    watch_type: WatchType = "ADDED"
    resource_version: str = ""
    observed_at: AwareDatetime = Field(default_factory=utcnow)
    initial_sync: bool = False

    _trim_message = field_validator("message")(classmethod(lambda cls, v: truncate(v)))


# --------------------------------------------------------------------------- other kinds (history only)


class KubeObject(_Model):
    """Any watched object other than a Pod or an Event (Deployment, ReplicaSet, Node, a custom
    resource, ...), as the relay's projection for its kind has it. History only: it never becomes a
    notification, except a Node's condition trouble (`classify`, "Node trouble").

    `snapshot` holds the spec/status fields that matter for the kind, as JSON (never resourceVersion,
    managedFields, the last-applied annotation, Secret objects, ConfigMap values — key names and a
    hash of each — or env values); `conditions` holds `status.conditions` typed (a Node's Ready,
    MemoryPressure, ...; never lastHeartbeatTime/lastProbeTime, which change without news)."""

    #: `apps/v1`, `v1`, `example.com/v1beta1`
    api_version: str = Field(min_length=1, max_length=317)
    #: the Kubernetes Kind, as the API spells it (`Deployment`, `Node`)
    kind: str = Field(min_length=1, max_length=63)
    #: None for a cluster-scoped object (Node, Namespace, PersistentVolume, ...)
    namespace: str | None = None
    name: str = Field(min_length=1, max_length=253)
    uid: str = Field(min_length=1, max_length=128)
    labels: dict[str, str] = Field(default_factory=dict)
    labels_omitted: int | None = None
    owner_references: list[OwnerReference] = Field(default_factory=list)
    conditions: list[PodCondition] = Field(default_factory=list)
    snapshot: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: AwareDatetime | None = None
    deleted_at: AwareDatetime | None = None
    watch_type: WatchType = "MODIFIED"
    resource_version: str = ""
    observed_at: AwareDatetime = Field(default_factory=utcnow)
    initial_sync: bool = False
    #: what changed since the relay's previous projection (`condition.Ready` False → True, ...)
    transitions: list[Transition] = Field(default_factory=list)
    trimmed: Trimmed | None = None


class HookObject(_Model):
    """A khook `Hook` (kagent.dev/v1alpha2) watched in the cluster: ADDED/MODIFIED apply it to the
    hooks rule store, DELETED removes it, as `podwatch hooks apply|delete` do. `hook` is the object
    as the cluster has it (apiVersion, kind, metadata, spec; status and managedFields dropped); the
    processor validates it (`hooks.rules.parse_hook`) and quarantines it with the problems if bad."""

    namespace: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)
    uid: str = Field(min_length=1, max_length=128)
    hook: dict[str, JsonValue] | None = None
    watch_type: WatchType = "MODIFIED"
    resource_version: str = ""
    observed_at: AwareDatetime = Field(default_factory=utcnow)
    initial_sync: bool = False


# --------------------------------------------------------------------------- control payloads


class EnrollPayload(_Model):
    """Sent once when a relay starts: tells the manager this cluster exists."""

    relay_version: str
    namespaces: str = "*"
    started_at: AwareDatetime = Field(default_factory=utcnow)
    kubernetes_version: str | None = None


class HeartbeatPayload(_Model):
    """Sent periodically by a running relay: liveness of the cluster's relay."""

    sequence: int = 0
    started_at: AwareDatetime | None = None
    pods_tracked: int = 0


# --------------------------------------------------------------------------- the envelope


class _EnvelopeBase(_Model):
    schema_version: int = SCHEMA_VERSION
    #: Stable id of what is carried: the same however often it is re-sent (see `ids`).
    event_id: str = Field(min_length=8, max_length=128)
    cluster_id: str = Field(min_length=1, max_length=128)
    relay_version: str = "unknown"
    sent_at: AwareDatetime = Field(default_factory=utcnow)


class PodEnvelope(_EnvelopeBase):
    kind: Literal["pod"] = "pod"
    payload: PodEvent


class KubeEventEnvelope(_EnvelopeBase):
    kind: Literal["k8s_event"] = "k8s_event"
    payload: KubeEvent


class ObjectEnvelope(_EnvelopeBase):
    kind: Literal["object"] = "object"
    payload: KubeObject


class HookEnvelope(_EnvelopeBase):
    kind: Literal["hook"] = "hook"
    payload: HookObject


class EnrollEnvelope(_EnvelopeBase):
    kind: Literal["enroll"] = "enroll"
    payload: EnrollPayload


class HeartbeatEnvelope(_EnvelopeBase):
    kind: Literal["heartbeat"] = "heartbeat"
    payload: HeartbeatPayload


class OversizePayload(_Model):
    """What the relay says of an envelope it could not trim to fit the message limit."""

    #: the kind of the envelope it stands for (`pod`, `k8s_event`)
    kind: str
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    watch_type: str | None = None
    #: the envelope's size and the limit, in bytes
    bytes: int
    limit: int


class OversizeEnvelope(_EnvelopeBase):
    """The relay's stand-in for an envelope over the limit, so it reaches the DLQ instead of
    vanishing. Not an `Envelope`: `parse_envelope` refuses it with `OversizeMessage`."""

    kind: Literal["oversize"] = "oversize"
    payload: OversizePayload


AnyEnvelope = (
    PodEnvelope | KubeEventEnvelope | ObjectEnvelope | HookEnvelope | EnrollEnvelope | HeartbeatEnvelope
)
Envelope = Annotated[AnyEnvelope, Field(discriminator="kind")]
#: the `kind` tags of `Envelope`, as its classes spell them
ENVELOPE_KINDS: frozenset[str] = frozenset(cls.model_fields["kind"].default for cls in get_args(AnyEnvelope))
#: built on first use, as the models are (`_Model`)
EnvelopeAdapter: TypeAdapter[AnyEnvelope] = TypeAdapter(Envelope, config=ConfigDict(defer_build=True))


# --------------------------------------------------------------------------- deliveries


class Notification(_Model):
    """One piece of trouble worth the manager's attention: what the deliveries queue carries and
    what NotifyPodEvents receives. `notification_id` is stable across retries and replays."""

    schema_version: int = SCHEMA_VERSION
    notification_id: str
    event_id: str
    cluster_id: str
    event_type: EventType
    #: the Kubernetes reason behind the type (CrashLoopBackOff, OOMKilled, Unhealthy, ...)
    reason: str
    message: str | None = None
    #: `node`: a Node's condition trouble; `namespace` and `pod` are then "" and `node` names it
    source: Literal["pod", "k8s_event", "node"]
    dedup_key: str
    namespace: str
    pod: str
    pod_uid: str | None = None
    container: str | None = None
    node: str | None = None
    restart_count: int = 0
    project_id: str | None = None
    workload_id: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    transitions: list[Transition] = Field(default_factory=list)
    observed_at: AwareDatetime
    processed_at: AwareDatetime = Field(default_factory=utcnow)
    config_version: str = "default"
    # Incident lifecycle (the dedup item of `dedup_key`); additive, None/empty when not known.
    #: "firing" for trouble that opened an incident, "resolved" for a `recovered` that closed one
    incident_state: Literal["firing", "resolved"] | None = None
    #: occurrences folded into the incident so far (1 when it opens; the total when it resolves)
    incident_count: int | None = None
    #: names of the affected pods (at most `MAX_AFFECTED_PODS`; workload scope names every replica)
    affected_pods: list[str] = Field(default_factory=list)
    #: how many pods are affected (an upper bound once `affected_pods` is full)
    affected_pod_count: int | None = None
    #: for `recovered`: the type of trouble that ended
    resolves: EventType | None = None
    incident_opened_at: AwareDatetime | None = None
    #: the timeline page's view of this pod around the event, when the stack knows the page's URL;
    #: left out of the JSON when unknown, so a stack without a page sends what it sent before
    history_url: str | None = Field(default=None, exclude_if=lambda url: url is None)


#: Bound on `Notification.affected_pods` and on the pod names a dedup item lists.
MAX_AFFECTED_PODS = 50


def parse_notification(body: str) -> Notification:
    """A deliveries (or fan-out) queue body as a Notification; ValidationError / ValueError if it is none."""
    notification = Notification.model_validate_json(body)
    if notification.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ValueError(f"schema_version {notification.schema_version} is not supported")
    return notification


class NotifyPodEventsRequest(_Model):
    events: list[Notification]


class EnrollRequest(_Model):
    cluster_id: str
    relay_version: str
    namespaces: str = "*"
    started_at: AwareDatetime | None = None
    kubernetes_version: str | None = None


# --------------------------------------------------------------------------- remote config

DEFAULT_ENABLED_REASONS: frozenset[EventType] = frozenset(
    {
        EventType.CRASH_LOOP,
        EventType.OOM_KILL,
        EventType.EVICTED,
        EventType.IMAGE_PULL,
        EventType.CONFIG_ERROR,
        EventType.PROBE_FAILED,
        EventType.UNSCHEDULABLE,
        EventType.FAILED,
        EventType.VOLUME_MOUNT,
        EventType.CONTAINER_START,
        EventType.NODE_LOST,
        EventType.ADMISSION_REJECTED,
        EventType.NOT_READY_TOO_LONG,
        EventType.PENDING_TOO_LONG,
        EventType.NODE_NOT_READY,
        EventType.NODE_MEMORY_PRESSURE,
        EventType.NODE_DISK_PRESSURE,
        EventType.NODE_PID_PRESSURE,
        EventType.NODE_NETWORK_UNAVAILABLE,
    }
)


class RemoteConfig(_Model):
    """The knobs the manager tunes, stored as JSON in SSM. Defaults are safe on their own: a stack
    with no manager configured still filters, dedups and delivers sensibly."""

    #: Opaque version chosen by the manager; written into every audit line and notification.
    version: str = Field(default="default", min_length=1, max_length=64)
    #: A repeat of the same trouble (same dedup key) inside this window is not delivered again.
    dedup_cooldown_seconds: int = Field(default=900, ge=0, le=7 * 24 * 3600)
    #: Notifications per NotifyPodEvents call (and the deliveries event source batch size).
    batch_size: int = Field(default=25, ge=1, le=100)
    #: How long the deliveries event source waits to fill a batch (MaximumBatchingWindowInSeconds).
    batch_flush_seconds: int = Field(default=5, ge=0, le=300)
    #: Event types delivered; every other type is filtered (logged and counted).
    enabled_reasons: frozenset[EventType] = DEFAULT_ENABLED_REASONS
    #: Namespaces whose events are always filtered.
    ignored_namespaces: frozenset[str] = frozenset()
    #: Pod label keys that carry the project and workload ids.
    project_label_key: str = Field(default="project-id", min_length=1, max_length=317)
    workload_label_key: str = Field(default="workload-id", min_length=1, max_length=317)
    #: What a dedup key names: one container, one pod, or one workload (all its replicas).
    dedup_scope: Literal["container", "pod", "workload"] = "container"
    #: A pod still Pending this long after its creation is `pending-too-long` (0: never).
    pending_too_long_seconds: int = Field(default=600, ge=0, le=7 * 24 * 3600)
    #: A Running pod whose Ready condition has been False this long is `not-ready-too-long` (0: never).
    not_ready_too_long_seconds: int = Field(default=900, ge=0, le=7 * 24 * 3600)
    #: A container that restarted after a non-zero exit this many times is a `crash-loop` before
    #: any CrashLoopBackOff (0: only CrashLoopBackOff is).
    crash_loop_restarts: int = Field(default=1, ge=0, le=1000)

    @field_serializer("enabled_reasons", "ignored_namespaces")
    def _sorted(self, value: frozenset[str]) -> list[str]:
        # Sets serialise sorted, so the same config always has the same JSON (SSM change detection).
        return sorted(value)

    def to_json(self) -> str:
        return self.model_dump_json(indent=None)

    @classmethod
    def from_json(cls, raw: str | bytes | dict[str, Any]) -> RemoteConfig:
        if isinstance(raw, dict):
            return cls.model_validate(raw)
        return cls.model_validate_json(raw)
