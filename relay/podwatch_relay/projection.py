"""Raw Pod / core/v1 Event JSON → the compact wire models, by ALLOWLIST.

Only the fields named here are read; everything else in the object (env, volumes, annotations,
managedFields, the spec as a whole) is never touched, so it cannot leak by accident. The input is
the plain dict of a watch event's `object` (json.loads of the stream), never a kubernetes model
object: deserializing into models costs most of a watcher's CPU and is not needed.

Malformed input raises `BadWatchEvent` with a short reason; a missing optional field is simply absent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from podwatch.models import (
    ContainerKind,
    InvolvedObject,
    KubeEvent,
    PodEvent,
    WatchType,
    truncate,
    utcnow,
)
from podwatch_relay.errors import BadWatchEvent

if TYPE_CHECKING:
    from podwatch_relay.state import Container

Json = dict[str, Any]

#: Where each kind of container status lives in `status`.
_CONTAINER_LISTS: tuple[tuple[str, ContainerKind], ...] = (
    ("initContainerStatuses", "init"),
    ("containerStatuses", "app"),
    ("ephemeralContainerStatuses", "ephemeral"),
)


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
    if value.tzinfo is UTC:  # the clock's: formatting it naive is cheaper than trimming `+00:00`
        return value.replace(tzinfo=None).isoformat() + "Z"
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


#: The last second `now_text` formatted: (seconds since the epoch, `YYYY-MM-DDTHH:MM:SS`).
_SECOND: tuple[int, str] = (0, "1970-01-01T00:00:00")


def now_text() -> str:
    """`time_text(utcnow())`, formatting the date and time of day once per second (the same
    clock and the same microseconds: `datetime.now` truncates the clock's nanoseconds)."""
    global _SECOND
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    known, text = _SECOND
    if second != known:
        text = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()
        _SECOND = (second, text)
    micros = nanos // 1000
    return f"{text}.{micros:06d}Z" if micros else text + "Z"


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


def _container_payload(raw: Json, known: Container) -> Json:
    """A container status as `ContainerStatus` serializes it. `known` is its compact form (see
    `state.snapshot_raw`), which holds the values read the same way here: name, kind, state, ready,
    restart count, last termination reason and end. The `_str`/`_int`/`_dict` checks are inlined:
    this is the hot loop of a forwarded pod."""
    kind, name, state, _, ready, restarts, last_reason, last_finished = known
    get = raw.get
    out: Json = {"name": name, "kind": kind}
    image = get("image")
    if isinstance(image, str) and image:
        out["image"] = image
    out["ready"] = ready
    started = get("started")
    if started is True or started is False:
        out["started"] = started
    out["restart_count"] = restarts
    out["state"] = state
    if state != "unknown":  # `state` is a key of the raw `state` object
        detail = raw["state"][state]
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
            if last_reason is not None:
                out["last_termination_reason"] = last_reason
            code = last.get("exitCode")
            if type(code) is int:
                out["last_exit_code"] = code
            if last_finished is not None:
                out["last_finished_at"] = last_finished
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


_STR_ONLY = frozenset({str})


def _labels(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    if _STR_ONLY.issuperset(map(type, raw.values())) and _STR_ONLY.issuperset(map(type, raw)):
        return dict(raw)  # the usual case, checked without a loop in Python
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def pod_identity(meta: Any) -> tuple[str, str, str]:
    """A pod's (namespace, name, uid) from its raw `metadata`; `BadWatchEvent` when one is missing."""
    meta = _dict(meta)
    return _required(meta, "namespace", "Pod"), _required(meta, "name", "Pod"), _required(meta, "uid", "Pod")


def pod_terminating(meta: Any) -> bool:
    """Whether a pod is being deleted (its payload has `deleted_at`), from its raw `metadata`."""
    return _time_text(_dict(meta).get("deletionTimestamp")) is not None


def pod_payload(
    meta: Any,
    node: Any,
    status: Any,
    *,
    containers: Sequence[Container],
    watch_type: WatchType,
    initial_sync: bool,
    observed_at: datetime | str,
) -> Json:
    """The `PodEvent` of a pod as the plain dict it serializes to, from the pod's `metadata`, its
    `spec.nodeName` and its `status` (the only parts read): no models, no validation cost.
    `containers` are the compact containers of the same `status` (`state.snapshot_raw`), which
    hold part of what is read of them; `observed_at` may be given as `time_text` writes it."""
    namespace, name, uid = pod_identity(meta)  # so `meta` is a dict
    if not isinstance(status, dict):
        status = {}
    get = status.get
    out: Json = {"namespace": namespace, "name": name, "uid": uid}
    # `_put(out, key, _str(...))` and the like, inlined: this runs for every forwarded pod
    phase, reason, message = get("phase"), get("reason"), get("message")
    if isinstance(phase, str) and phase:
        out["phase"] = phase
    if isinstance(reason, str) and reason:
        out["reason"] = reason
    if isinstance(message, str) and message:
        out["message"] = truncate(message)
    out["restart_count"] = sum(c[5] for c in containers)
    out["labels"] = _labels(meta.get("labels"))
    out["owner_references"] = [
        o for raw in _list(meta.get("ownerReferences")) if isinstance(raw, dict) if (o := _owner_payload(raw))
    ]
    if isinstance(node, str) and node:
        out["node"] = node
    raw_containers = [raw for key, _ in _CONTAINER_LISTS for raw in _list(get(key)) if isinstance(raw, dict)]
    out["containers"] = [
        _container_payload(raw, known) for raw, known in zip(raw_containers, containers, strict=True)
    ]
    out["conditions"] = [
        c for raw in _list(get("conditions")) if isinstance(raw, dict) if (c := _condition_payload(raw))
    ]
    created, deleted = _time_text(meta.get("creationTimestamp")), _time_text(meta.get("deletionTimestamp"))
    if created is not None:
        out["created_at"] = created
    if deleted is not None:
        out["deleted_at"] = deleted
    out["watch_type"] = watch_type
    version = meta.get("resourceVersion")
    out["resource_version"] = version if isinstance(version, str) and version else ""
    out["observed_at"] = observed_at if isinstance(observed_at, str) else time_text(observed_at)
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
    from podwatch_relay.state import snapshot_raw  # state imports this module

    if not isinstance(obj, dict):
        raise BadWatchEvent("pod object is not a JSON object", reason="pod-not-an-object")
    meta, status = obj.get("metadata"), obj.get("status")
    namespace, name, _ = pod_identity(meta)
    payload = pod_payload(
        meta,
        _dict(obj.get("spec")).get("nodeName"),
        status,
        containers=snapshot_raw(namespace, name, pod_terminating(meta), status)[6],
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
