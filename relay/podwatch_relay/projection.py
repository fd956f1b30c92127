"""Raw Pod / core/v1 Event JSON → the compact wire models, by ALLOWLIST.

Only the fields named here are read; everything else in the object (env, volumes, annotations,
managedFields, the spec as a whole) is never touched, so it cannot leak by accident. The input is
the plain dict of a watch event's `object` (json.loads of the stream), never a kubernetes model
object: deserializing into models costs most of a watcher's CPU and is not needed.

Malformed input raises `BadWatchEvent` with a short reason; a missing optional field is simply absent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from podwatch.models import (
    ContainerKind,
    ContainerStateName,
    ContainerStatus,
    InvolvedObject,
    KubeEvent,
    OwnerReference,
    PodCondition,
    PodEvent,
    WatchType,
    truncate,
    utcnow,
)
from podwatch_relay.errors import BadWatchEvent

Json = dict[str, Any]

#: Where each kind of container status lives in `status`.
_CONTAINER_LISTS: tuple[tuple[str, ContainerKind], ...] = (
    ("initContainerStatuses", "init"),
    ("containerStatuses", "app"),
    ("ephemeralContainerStatuses", "ephemeral"),
)
_STATES: tuple[ContainerStateName, ...] = ("waiting", "running", "terminated")


def _dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    # bool is an int in Python, but never a count or an exit code in Kubernetes.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: Any) -> datetime | None:
    """RFC 3339 (`2026-11-20T09:00:00Z`, MicroTime with fractions) → aware datetime, else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _required(meta: Json, key: str, kind: str) -> str:
    value = _str(meta.get(key))
    if value is None:
        raise BadWatchEvent(f"{kind} without metadata.{key}", reason=f"{kind.lower()}-without-{key}")
    return value


# --------------------------------------------------------------------------- pods


def _container(raw: Json, kind: ContainerKind) -> ContainerStatus:
    state_obj = _dict(raw.get("state"))
    state: ContainerStateName = "unknown"
    detail: Json = {}
    for name in _STATES:
        if name in state_obj:
            state, detail = name, _dict(state_obj[name])
            break
    last = _dict(_dict(raw.get("lastState")).get("terminated"))
    return ContainerStatus(
        name=_str(raw.get("name")) or "",
        kind=kind,
        image=_str(raw.get("image")),
        ready=raw.get("ready") is True,
        started=raw["started"] if isinstance(raw.get("started"), bool) else None,
        restart_count=_int(raw.get("restartCount")) or 0,
        state=state,
        reason=_str(detail.get("reason")),
        message=truncate(_str(detail.get("message"))),
        exit_code=_int(detail.get("exitCode")),
        last_termination_reason=_str(last.get("reason")),
        last_exit_code=_int(last.get("exitCode")),
        last_finished_at=_time(last.get("finishedAt")),
    )


def _condition(raw: Json) -> PodCondition | None:
    kind, status = _str(raw.get("type")), _str(raw.get("status"))
    if kind is None or status is None:
        return None
    return PodCondition(
        type=kind,
        status=status,
        reason=_str(raw.get("reason")),
        message=truncate(_str(raw.get("message"))),
        last_transition_time=_time(raw.get("lastTransitionTime")),
    )


def _owner(raw: Json) -> OwnerReference | None:
    kind, name = _str(raw.get("kind")), _str(raw.get("name"))
    if kind is None or name is None:
        return None
    return OwnerReference(
        kind=kind, name=name, uid=_str(raw.get("uid")), controller=raw.get("controller") is True
    )


def _labels(raw: Any) -> dict[str, str]:
    return {k: v for k, v in _dict(raw).items() if isinstance(k, str) and isinstance(v, str)}


def project_pod(
    obj: Json,
    *,
    watch_type: WatchType,
    initial_sync: bool = False,
    observed_at: datetime | None = None,
) -> PodEvent:
    """The compact `PodEvent` of a raw Pod object (transitions are the tracker's business)."""
    if not isinstance(obj, dict):
        raise BadWatchEvent("pod object is not a JSON object", reason="pod-not-an-object")
    meta = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    containers = [
        _container(raw, kind)
        for key, kind in _CONTAINER_LISTS
        for raw in _list(status.get(key))
        if isinstance(raw, dict)
    ]
    conditions = [
        c for raw in _list(status.get("conditions")) if isinstance(raw, dict) if (c := _condition(raw))
    ]
    owners = [o for raw in _list(meta.get("ownerReferences")) if isinstance(raw, dict) if (o := _owner(raw))]
    try:
        return PodEvent(
            namespace=_required(meta, "namespace", "Pod"),
            name=_required(meta, "name", "Pod"),
            uid=_required(meta, "uid", "Pod"),
            phase=_str(status.get("phase")),
            reason=_str(status.get("reason")),
            message=_str(status.get("message")),
            restart_count=sum(c.restart_count for c in containers),
            labels=_labels(meta.get("labels")),
            owner_references=owners,
            node=_str(spec.get("nodeName")),
            containers=containers,
            conditions=conditions,
            created_at=_time(meta.get("creationTimestamp")),
            deleted_at=_time(meta.get("deletionTimestamp")),
            watch_type=watch_type,
            resource_version=_str(meta.get("resourceVersion")) or "",
            observed_at=observed_at or utcnow(),
            initial_sync=initial_sync,
        )
    except ValidationError as exc:  # a value of the wrong shape that the allowlist let through
        raise BadWatchEvent(f"pod does not fit the PodEvent contract: {exc}", reason="pod-invalid") from exc


# --------------------------------------------------------------------------- core/v1 Events


def project_event(
    obj: Json,
    *,
    watch_type: WatchType,
    initial_sync: bool = False,
    observed_at: datetime | None = None,
) -> KubeEvent | None:
    """The compact `KubeEvent` of a raw core/v1 Event about a Pod; None for any other subject.

    Events written through events.k8s.io/v1 show on core/v1 with `series.count` and `eventTime`
    instead of `count` and `lastTimestamp`; both shapes give the same fields here.
    """
    if not isinstance(obj, dict):
        raise BadWatchEvent("event object is not a JSON object", reason="event-not-an-object")
    involved = _dict(obj.get("involvedObject"))
    if involved.get("kind") != "Pod":
        return None
    meta = _dict(obj.get("metadata"))
    series = _dict(obj.get("series"))
    source = _dict(obj.get("source"))
    pod_name = _str(involved.get("name"))
    if pod_name is None:
        raise BadWatchEvent("event about a pod without involvedObject.name", reason="event-without-pod-name")
    namespace = _required(meta, "namespace", "Event")
    count = _int(obj.get("count")) or _int(series.get("count")) or 1
    event_time = _time(obj.get("eventTime"))
    try:
        return KubeEvent(
            namespace=namespace,
            name=_required(meta, "name", "Event"),
            uid=_required(meta, "uid", "Event"),
            reason=_str(obj.get("reason")),
            message=_str(obj.get("message")),
            type=_str(obj.get("type")),
            count=count,
            involved_object=InvolvedObject(
                kind="Pod",
                name=pod_name,
                namespace=_str(involved.get("namespace")) or namespace,
                uid=_str(involved.get("uid")),
                field_path=_str(involved.get("fieldPath")),
            ),
            first_timestamp=_time(obj.get("firstTimestamp")) or event_time,
            last_timestamp=(
                _time(obj.get("lastTimestamp"))
                or _time(series.get("lastObservedTime"))
                or event_time
                or _time(meta.get("creationTimestamp"))
            ),
            source_component=_str(source.get("component")) or _str(obj.get("reportingComponent")),
            watch_type=watch_type,
            resource_version=_str(meta.get("resourceVersion")) or "",
            observed_at=observed_at or utcnow(),
            initial_sync=initial_sync,
        )
    except ValidationError as exc:
        raise BadWatchEvent(
            f"event does not fit the KubeEvent contract: {exc}", reason="event-invalid"
        ) from exc
