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
    InvolvedObject,
    KubeEvent,
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
#
# A pod is projected to a plain dict in exactly the shape `PodEvent` serializes to (field order,
# aliases, `None` omitted, times as pydantic writes them), built from values the helpers above
# already type-checked. The relay's hot path encodes that dict as the envelope body without
# building models; `project_pod` validates the same dict into a `PodEvent` (tests, rare paths).
# tests/unit/test_relay_pipeline.py checks that both give byte-identical envelopes.


def time_text(value: datetime) -> str:
    """A datetime as pydantic serializes it (ISO 8601, `Z` for UTC)."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


#: Times seen recently (a pod's creation and transition times repeat in every update), bounded.
_TIMES: dict[str, str | None] = {}


def _time_text(value: Any) -> str | None:
    """An RFC 3339 time from the API server as `time_text` writes it; None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    known = _TIMES.get(value, _TIMES)
    if known is not _TIMES:
        return known  # type: ignore[return-value]
    try:
        parsed: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None:
        text = None
    elif len(value) == 20 and value[19] == "Z":  # `2026-11-20T09:00:00Z`: already canonical
        text = value
    else:
        text = time_text(parsed)
    if len(_TIMES) >= 4096:
        _TIMES.clear()
    _TIMES[value] = text
    return text


def _put(out: Json, key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _container_payload(raw: Json, kind: ContainerKind) -> Json:
    # The hot loop of a forwarded pod: the `_str`/`_int`/`_dict` checks, inlined.
    get = raw.get
    name = get("name")
    out: Json = {"name": name if isinstance(name, str) else "", "kind": kind}
    image = get("image")
    if isinstance(image, str) and image:
        out["image"] = image
    out["ready"] = get("ready") is True
    started = get("started")
    if started is True or started is False:
        out["started"] = started
    restarts = get("restartCount")
    out["restart_count"] = restarts if type(restarts) is int else 0
    state: ContainerStateName = "unknown"
    detail: Any = None
    state_obj = get("state")
    if isinstance(state_obj, dict):
        for candidate in _STATES:
            if candidate in state_obj:
                state, detail = candidate, state_obj[candidate]
                break
    out["state"] = state
    if isinstance(detail, dict) and detail:
        reason, message, code = detail.get("reason"), detail.get("message"), detail.get("exitCode")
        if isinstance(reason, str) and reason:
            out["reason"] = reason
        if isinstance(message, str) and message:
            out["message"] = truncate(message)
        if type(code) is int:
            out["exit_code"] = code
    last_state = get("lastState")
    if isinstance(last_state, dict) and last_state:
        last = last_state.get("terminated")
        if isinstance(last, dict):
            reason, code = last.get("reason"), last.get("exitCode")
            if isinstance(reason, str) and reason:
                out["last_termination_reason"] = reason
            if type(code) is int:
                out["last_exit_code"] = code
            finished = _time_text(last.get("finishedAt"))
            if finished is not None:
                out["last_finished_at"] = finished
    return out


def _condition_payload(raw: Json) -> Json | None:
    get = raw.get
    kind, status = get("type"), get("status")
    if not (isinstance(kind, str) and kind and isinstance(status, str) and status):
        return None
    out: Json = {"type": kind, "status": status}
    reason, message = get("reason"), get("message")
    if isinstance(reason, str) and reason:
        out["reason"] = reason
    if isinstance(message, str) and message:
        out["message"] = truncate(message)
    changed = _time_text(get("lastTransitionTime"))
    if changed is not None:
        out["last_transition_time"] = changed
    return out


def _owner_payload(raw: Json) -> Json | None:
    kind, name = _str(raw.get("kind")), _str(raw.get("name"))
    if kind is None or name is None:
        return None
    out: Json = {"kind": kind, "name": name}
    _put(out, "uid", _str(raw.get("uid")))
    out["controller"] = raw.get("controller") is True
    return out


def _labels(raw: Any) -> dict[str, str]:
    return {k: v for k, v in _dict(raw).items() if isinstance(k, str) and isinstance(v, str)}


def pod_payload(
    meta: Any,
    node: Any,
    status: Any,
    *,
    watch_type: WatchType,
    initial_sync: bool,
    observed_at: datetime,
) -> Json:
    """The `PodEvent` of a pod as the plain dict it serializes to, from the pod's `metadata`, its
    `spec.nodeName` and its `status` (the only parts read): no models, no validation cost."""
    meta = _dict(meta)
    status = _dict(status)
    containers = [
        _container_payload(raw, kind)
        for key, kind in _CONTAINER_LISTS
        for raw in _list(status.get(key))
        if isinstance(raw, dict)
    ]
    out: Json = {
        "namespace": _required(meta, "namespace", "Pod"),
        "name": _required(meta, "name", "Pod"),
        "uid": _required(meta, "uid", "Pod"),
    }
    _put(out, "phase", _str(status.get("phase")))
    _put(out, "reason", _str(status.get("reason")))
    _put(out, "message", truncate(_str(status.get("message"))))
    out["restart_count"] = sum(c["restart_count"] for c in containers)
    out["labels"] = _labels(meta.get("labels"))
    out["owner_references"] = [
        o for raw in _list(meta.get("ownerReferences")) if isinstance(raw, dict) if (o := _owner_payload(raw))
    ]
    _put(out, "node", _str(node))
    out["containers"] = containers
    out["conditions"] = [
        c
        for raw in _list(status.get("conditions"))
        if isinstance(raw, dict)
        if (c := _condition_payload(raw))
    ]
    _put(out, "created_at", _time_text(meta.get("creationTimestamp")))
    _put(out, "deleted_at", _time_text(meta.get("deletionTimestamp")))
    out["watch_type"] = watch_type
    out["resource_version"] = _str(meta.get("resourceVersion")) or ""
    out["observed_at"] = time_text(observed_at)
    out["initial_sync"] = initial_sync
    out["transitions"] = []
    return out


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
    payload = pod_payload(
        obj.get("metadata"),
        _dict(obj.get("spec")).get("nodeName"),
        obj.get("status"),
        watch_type=watch_type,
        initial_sync=initial_sync,
        observed_at=observed_at or utcnow(),
    )
    try:
        return PodEvent.model_validate(payload)
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
