"""Raw Pod / core/v1 Event JSON → the compact wire models, by ALLOWLIST.

Only the fields named here are read; everything else in the object (env, volumes, annotations,
managedFields, the spec as a whole) is never touched, so it cannot leak by accident. The input is
the plain dict of a watch event's `object` (json.loads of the stream), never a kubernetes model
object: deserializing into models costs most of a watcher's CPU and is not needed.

Malformed input raises `BadWatchEvent` with a short reason; a missing optional field is simply absent.

The relay's fast path reads a pod's `status` and `metadata` typed instead (msgspec structs that
name only the fields read, see "typed pods" below), with the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, NamedTuple

import msgspec
from msgspec import UNSET, UnsetType
from pydantic import ValidationError

from podwatch.models import (
    InvolvedObject,
    KubeEvent,
    PodEvent,
    WatchType,
    truncate,
    utcnow,
)
from podwatch_relay._json import fragment, unfragment
from podwatch_relay.errors import BadWatchEvent
from podwatch_relay.redact import DEFAULT_ALLOWLIST, LabelAllowlist, redact
from podwatch_relay.snapshot import (
    CONTAINER_LISTS,
    SHARED,
    Conditions,
    Container,
    Snapshot,
    intern,
    share,
    share_container,
    snapshot_raw,
)
from podwatch_relay.timetext import KNOWN_TIMES, canonical_time, time_text

Json = dict[str, Any]


def _dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _redacted(value: Any) -> str | None:
    return redact(value) if isinstance(value, str) and value else None


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


def _put(out: Json, key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


#: Waiting reasons that are a normal part of starting a container, not trouble.
STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})


def container_troubled(payload: Json) -> bool:
    """A container in trouble (see `state.is_troubled`), from its payload (`_container_payload`)."""
    state, reason = payload["state"], payload.get("reason")
    if state == "waiting" and reason and reason not in STARTING_REASONS:
        return True
    if state == "terminated" and (payload.get("exit_code") or 0) != 0:
        return True
    last = payload.get("last_termination_reason")
    return last is not None and last != "Completed"


def _container_payload(raw: Json, known: Container) -> Json:
    """A container status as `ContainerStatus` serializes it. `known` is its compact form (see
    `snapshot.snapshot_raw`), which holds the values read the same way here: name, kind, state, ready,
    restart count, last termination reason and end. The `_str`/`_int`/`_dict` checks are inlined:
    this is the hot loop of a forwarded pod."""
    kind, name, state, _, ready, restarts, last_reason, last_finished = known
    get = raw.get
    out: Json = {"name": name, "kind": kind}
    image = get("image")
    if isinstance(image, str) and image:
        out["image"] = redact(image)
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
                out["reason"] = redact(reason)
            if isinstance(message, str) and message:
                out["message"] = truncate(redact(message))
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
        out["reason"] = redact(reason)
    if isinstance(message, str) and message:
        out["message"] = truncate(redact(message))
    changed = canonical_time(get("lastTransitionTime"))
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
        return raw  # the usual case, checked without a loop in Python
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def _put_labels(out: Json, labels: dict[str, str] | None, allowlist: LabelAllowlist) -> None:
    """`labels` (the allowed ones, values redacted) and `labels_omitted` (how many were not)."""
    if not labels:
        out["labels"] = {}
        return
    kept, omitted = allowlist.apply(labels)
    out["labels"] = kept
    if omitted:
        out["labels_omitted"] = omitted


def pod_identity(meta: Any) -> tuple[str, str, str]:
    """A pod's (namespace, name, uid) from its raw `metadata`; `BadWatchEvent` when one is missing."""
    meta = _dict(meta)
    return _required(meta, "namespace", "Pod"), _required(meta, "name", "Pod"), _required(meta, "uid", "Pod")


def pod_terminating(meta: Any) -> bool:
    """Whether a pod is being deleted (its payload has `deleted_at`), from its raw `metadata`."""
    return canonical_time(_dict(meta).get("deletionTimestamp")) is not None


def pod_payload(
    meta: Any,
    node: Any,
    status: Any,
    *,
    containers: Sequence[Container],
    watch_type: WatchType,
    initial_sync: bool,
    observed_at: datetime | str,
    allowlist: LabelAllowlist = DEFAULT_ALLOWLIST,
) -> Json:
    """The `PodEvent` of a pod as the plain dict it serializes to, from the pod's `metadata`, its
    `spec.nodeName` and its `status` (the only parts read): no models, no validation cost.
    `containers` are the compact containers of the same `status` (`snapshot.snapshot_raw`), which
    hold part of what is read of them; `observed_at` may be given as `time_text` writes it.
    Free text is redacted, labels kept by `allowlist` (`redact`)."""
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
        out["reason"] = redact(reason)
    if isinstance(message, str) and message:
        out["message"] = truncate(redact(message))
    out["restart_count"] = sum(c[5] for c in containers)
    _put_labels(out, _labels(meta.get("labels")), allowlist)
    out["owner_references"] = [
        o for raw in _list(meta.get("ownerReferences")) if isinstance(raw, dict) if (o := _owner_payload(raw))
    ]
    if isinstance(node, str) and node:
        out["node"] = node
    raw_containers = [raw for key, _ in CONTAINER_LISTS for raw in _list(get(key)) if isinstance(raw, dict)]
    out["containers"] = [
        _container_payload(raw, known) for raw, known in zip(raw_containers, containers, strict=True)
    ]
    out["conditions"] = [
        c for raw in _list(get("conditions")) if isinstance(raw, dict) if (c := _condition_payload(raw))
    ]
    created = canonical_time(meta.get("creationTimestamp"))
    deleted = canonical_time(meta.get("deletionTimestamp"))
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


def vanished_payload(
    uid: str, snapshot: Snapshot, *, resource_version: str, observed_at: str, initial_sync: bool
) -> Json:
    """The payload of a synthetic DELETED for a pod the relay knew and that is gone (absent from a
    relist, or replaced by a new uid under its name), from its compact memory alone: what
    `PodEvent` of those fields serializes to, with a `vanished` transition."""
    out: Json = {"namespace": snapshot.namespace, "name": snapshot.name, "uid": uid}
    if snapshot.phase is not None:
        out["phase"] = snapshot.phase
    if snapshot.reason is not None:
        out["reason"] = snapshot.reason
    out["restart_count"] = sum(c[5] for c in snapshot.containers)
    out["labels"] = {}
    out["owner_references"] = []
    out["containers"] = [_snapshot_container_payload(c) for c in snapshot.containers]
    out["conditions"] = [{"type": kind, "status": status} for kind, status in snapshot.conditions]
    out["watch_type"] = "DELETED"
    out["resource_version"] = resource_version
    out["observed_at"] = observed_at
    out["initial_sync"] = initial_sync
    out["transitions"] = [{"field": "vanished", "from": False, "to": True}]
    return out


def _snapshot_container_payload(container: Container) -> Json:
    kind, name, state, reason, ready, restarts, last_reason, last_finished = container
    out: Json = {"name": name, "kind": kind, "ready": ready, "restart_count": restarts, "state": state}
    _put(out, "reason", reason)
    _put(out, "last_termination_reason", last_reason)
    _put(out, "last_finished_at", last_finished)
    return out


# --------------------------------------------------------------------------- typed pods (fast path)
#
# The pipeline's fast path decodes a pod's `status` and `metadata` (cut from the watch line) straight
# into the structs below, which name only what `snapshot_raw` and `pod_payload` read: msgspec skips
# everything else (imageID, containerID, startedAt, annotations, ...) without building it. Each
# field's type admits exactly the values the lenient readers above take as they are (`null` reads
# as absent there too); any other value (a number where a string belongs, a string where an object
# belongs, an integer orjson would decode as a float) fails the decode, and the line takes the full
# path, which decides. So `status_parts` + `typed_pod_payload` give what `snapshot_raw` +
# `pod_payload` give for the same text (tests/unit/test_relay_typed.py compares them).

#: An integer orjson surely decodes as an int (beyond 64 bits it gives a float, which the readers
#: ignore; msgspec bounds only go to 2**63 - 1, and from there up to 2**64 - 1 the full path decides).
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _Detail(msgspec.Struct, frozen=True, gc=False):
    """A container's `state.waiting|running|terminated` or `lastState.terminated` object."""

    reason: str | None = None
    message: str | None = None
    exitCode: _Int | None = None
    finishedAt: str | None = None


class _State(msgspec.Struct, frozen=True, gc=False):
    """A container's `state`: the first key present is the state, even when its value is null."""

    waiting: _Detail | UnsetType | None = UNSET
    running: _Detail | UnsetType | None = UNSET
    terminated: _Detail | UnsetType | None = UNSET


class _LastState(msgspec.Struct, frozen=True, gc=False):
    terminated: _Detail | None = None


class _ContainerStatus(msgspec.Struct, frozen=True, gc=False):
    name: str | None = None
    image: str | None = None
    ready: bool | None = None
    started: bool | None = None
    restartCount: _Int | None = None
    state: _State | None = None
    lastState: _LastState | None = None


class _Condition(msgspec.Struct, frozen=True, gc=False):
    type: str | None = None
    status: str | None = None
    reason: str | None = None
    message: str | None = None
    lastTransitionTime: str | None = None


class _Status(msgspec.Struct, frozen=True, gc=False):
    phase: str | None = None
    reason: str | None = None
    message: str | None = None
    conditions: tuple[_Condition, ...] | None = None
    initContainerStatuses: tuple[_ContainerStatus, ...] | None = None
    containerStatuses: tuple[_ContainerStatus, ...] | None = None
    ephemeralContainerStatuses: tuple[_ContainerStatus, ...] | None = None


class _Owner(msgspec.Struct, frozen=True, gc=False):
    kind: str | None = None
    name: str | None = None
    uid: str | None = None
    controller: bool | None = None


class PodMeta(msgspec.Struct, gc=False):
    """What the relay reads of a pod's `metadata`."""

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    labels: dict[str, str] | None = None
    ownerReferences: tuple[_Owner, ...] | None = None


class _ConditionKey(msgspec.Struct, frozen=True, gc=False):
    """What the snapshot keeps of a condition (`status_conditions`)."""

    type: str | None = None
    status: str | None = None


_STATUS = msgspec.json.Decoder(_Status)
_META = msgspec.json.Decoder(PodMeta)
_CONDITIONS = msgspec.json.Decoder(tuple[_ConditionKey, ...])


class StatusParts(NamedTuple):
    """What the relay reads of a pod's `status`, for its snapshot and for its payload. The payload
    parts are shared (`_CONTAINER_PARTS`): read them, never change them."""

    phase: str | None
    reason: str | None
    #: the status message, truncated as the payload holds it
    message: str | None
    conditions: Conditions
    condition_payloads: list[Json]
    containers: tuple[Container, ...]
    #: the containers' payloads, each already encoded (`_json.fragment`: what encoding the
    #: payload dict gives, spliced into the envelope as it is)
    container_payloads: list[Any]


_new_parts = tuple.__new__


def _decode[T](decoder: msgspec.json.Decoder[T], text: bytes) -> T:
    """`decoder.decode(text)`, refusing with a `ValueError` (so the line takes the full path) what
    orjson, the full path's decoder, refuses and msgspec would not:

    * invalid UTF-8 in a string msgspec skips (it checks the strings it reads): checked when the
      text is not ASCII (rare);
    * nesting deeper than msgspec follows (~10,000 levels), where it raises RecursionError.

    Still taken: numbers beyond a float's range and nesting between orjson's limit (1,024 levels)
    and msgspec's, in fields the relay does not read. The API server writes neither; checking
    for them would cost a pass over the text."""
    if not text.isascii():
        text.decode()  # UnicodeDecodeError, a ValueError, as the decoders raise
    try:
        return decoder.decode(text)
    except RecursionError as exc:
        raise ValueError("JSON nested too deep") from exc


def status_parts(text: bytes) -> StatusParts:
    """The parts of a pod's raw `status` JSON object text; `ValueError` (msgspec's errors are
    ValueErrors) when it is not one or holds a value the typed decode does not take."""
    status = _decode(_STATUS, text)
    conditions, condition_payloads = _conditions_parts(status.conditions)
    containers: list[Container] = []
    payloads: list[Any] = []
    for kind, statuses in (
        ("init", status.initContainerStatuses),
        ("app", status.containerStatuses),
        ("ephemeral", status.ephemeralContainerStatuses),
    ):
        if statuses:
            cache = _CONTAINER_PARTS[kind]
            for raw in statuses:
                got = cache.get(raw)
                if got is None:
                    got = _container_entry(kind, raw, cache)
                containers.append(got[0])
                payloads.append(got[1])
    phase, reason, message = status.phase, status.reason, status.message
    shared = tuple(containers)
    return _new_parts(  # StatusParts(...) without its Python-level __new__
        StatusParts,
        (
            intern(phase) if phase else None,
            intern(redact(reason)) if reason else None,
            truncate(redact(message)) if message else None,
            conditions,
            condition_payloads,
            SHARED.get(shared) or share(shared),
            payloads,
        ),
    )


def parts_troubled(parts: StatusParts) -> bool:
    """Whether a container of `parts` is in trouble (`container_troubled` of its payload), read
    from its snapshot tuple, but for a terminated one's exit code (from its payload)."""
    for container, payload in zip(parts.containers, parts.container_payloads, strict=True):
        state, reason, last_reason = container[2], container[3], container[6]
        if state == "waiting" and reason and reason not in STARTING_REASONS:
            return True
        if state == "terminated" and (unfragment(payload).get("exit_code") or 0) != 0:
            return True
        if last_reason is not None and last_reason != "Completed":
            return True
    return False


def status_conditions(text: bytes) -> Conditions:
    """The snapshot's conditions from the text of a raw `status.conditions` array (`ValueError`
    when it is not one, see `status_parts`), to compare with the tracker's (not shared)."""
    raw = _decode(_CONDITIONS, text)
    pairs = [(c.type, c.status) for c in raw if c.type and c.status]
    pairs.sort()
    return tuple(pairs)


#: Container parts by kind, then typed container status: a container's parts depend on nothing
#: else, and replicas and successive updates of a pod repeat them. Bounded: full, one starts over.
_CONTAINER_PARTS: dict[str, dict[_ContainerStatus, tuple[Container, Any]]] = {
    "init": {},
    "app": {},
    "ephemeral": {},
}
_CONTAINER_PARTS_MAX = 4096


def _container_entry(
    kind: str, raw: _ContainerStatus, cache: dict[_ContainerStatus, tuple[Container, Any]]
) -> tuple[Container, Any]:
    """A container's snapshot tuple and its payload encoded (`_json.fragment`: in less memory
    than the dict, and spliced into the envelope as it is), put in the `cache` of its kind."""
    container, payload = _container_parts(kind, raw)
    entry = (container, fragment(payload))
    if len(cache) >= _CONTAINER_PARTS_MAX:
        cache.clear()
    cache[raw] = entry
    return entry


def _container_parts(kind: str, raw: _ContainerStatus) -> tuple[Container, Json]:
    """A container's snapshot tuple (as `snapshot.snapshot_raw` reads it) and payload (as
    `_container_payload` writes it)."""
    state, reason, detail = "unknown", None, None
    raw_state = raw.state
    if raw_state is not None:
        for candidate, value in (
            ("waiting", raw_state.waiting),
            ("running", raw_state.running),
            ("terminated", raw_state.terminated),
        ):
            if value is not UNSET:
                state = candidate
                if isinstance(value, _Detail):
                    detail = value
                    if candidate != "running" and value.reason:
                        reason = redact(value.reason)
                break
    last = raw.lastState.terminated if raw.lastState is not None else None
    last_reason = last_finished = None
    if last is not None:
        last_reason = redact(last.reason) if last.reason else None
        last_finished = canonical_time(last.finishedAt)
    restarts = raw.restartCount if raw.restartCount is not None else 0
    container = share_container(
        (kind, raw.name or "", state, reason, raw.ready is True, restarts, last_reason, last_finished)
    )
    out: Json = {"name": container[1], "kind": kind}
    if raw.image:
        out["image"] = redact(raw.image)
    out["ready"] = container[4]
    if raw.started is not None:
        out["started"] = raw.started
    out["restart_count"] = restarts
    out["state"] = state
    if detail is not None:
        if detail.reason:
            out["reason"] = redact(detail.reason)
        if detail.message:
            out["message"] = truncate(redact(detail.message))
        if detail.exitCode is not None:
            out["exit_code"] = detail.exitCode
    if last is not None:
        if last_reason is not None:
            out["last_termination_reason"] = last_reason
        if last.exitCode is not None:
            out["last_exit_code"] = last.exitCode
        if last_finished is not None:
            out["last_finished_at"] = last_finished
    return container, out


def _conditions_parts(raw: tuple[_Condition, ...] | None) -> tuple[Conditions, list[Json]]:
    """The snapshot's conditions (as `snapshot.conditions_raw` reads them) and their payloads (as
    `_condition_payload` writes them). The cache of `canonical_time` is read inline, and a payload
    with neither reason nor message (most) is built at once."""
    pairs: list[tuple[str, str]] = []
    payloads: list[Json] = []
    times = KNOWN_TIMES
    for c in raw or ():
        kind, status = c.type, c.status
        if kind and status:
            pairs.append((kind, status))
            when = c.lastTransitionTime
            changed: Any = times.get(when, times) if when else None
            if changed is times:
                changed = canonical_time(when)
            reason, message = c.reason, c.message
            if reason or message:
                out: Json = {"type": kind, "status": status}
                if reason:
                    out["reason"] = redact(reason)
                if message:
                    out["message"] = truncate(redact(message))
                if changed is not None:
                    out["last_transition_time"] = changed
            elif changed is not None:
                out = {"type": kind, "status": status, "last_transition_time": changed}
            else:
                out = {"type": kind, "status": status}
            payloads.append(out)
    pairs.sort()
    shared = tuple(pairs)
    return SHARED.get(shared) or share(shared), payloads


def pod_meta(text: bytes) -> PodMeta:
    """A pod's raw `metadata` JSON object text, typed (`ValueError` as `status_parts`)."""
    return _decode(_META, text)


def typed_pod_payload(
    meta: PodMeta,
    node: str | None,
    parts: StatusParts,
    *,
    watch_type: WatchType,
    initial_sync: bool,
    observed_at: str,
    allowlist: LabelAllowlist = DEFAULT_ALLOWLIST,
) -> Json:
    """`pod_payload` of the typed metadata and status parts (`meta.namespace`, `.name` and `.uid`
    are non-empty: the caller checked)."""
    out: Json = {"namespace": meta.namespace, "name": meta.name, "uid": meta.uid}
    phase, reason, message, _, condition_payloads, containers, container_payloads = parts
    if phase:
        out["phase"] = phase
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    out["restart_count"] = sum([c[5] for c in containers])
    _put_labels(out, meta.labels, allowlist)
    owners = meta.ownerReferences
    out["owner_references"] = (
        [
            {"kind": o.kind, "name": o.name, "uid": o.uid, "controller": o.controller is True}
            if o.uid
            else {"kind": o.kind, "name": o.name, "controller": o.controller is True}
            for o in owners
            if o.kind and o.name
        ]
        if owners
        else []
    )
    if node:
        out["node"] = node
    out["containers"] = container_payloads  # lists of its own (of shared items)
    out["conditions"] = condition_payloads
    created, deleted = canonical_time(meta.creationTimestamp), canonical_time(meta.deletionTimestamp)
    if created is not None:
        out["created_at"] = created
    if deleted is not None:
        out["deleted_at"] = deleted
    out["watch_type"] = watch_type
    out["resource_version"] = meta.resourceVersion or ""
    out["observed_at"] = observed_at
    out["initial_sync"] = initial_sync
    out["transitions"] = []
    return out


def project_pod(
    obj: Json,
    *,
    watch_type: WatchType,
    initial_sync: bool = False,
    observed_at: datetime | None = None,
    allowlist: LabelAllowlist = DEFAULT_ALLOWLIST,
) -> PodEvent:
    """The compact `PodEvent` of a raw Pod object (transitions are the tracker's business)."""
    if not isinstance(obj, dict):
        raise BadWatchEvent("pod object is not a JSON object", reason="pod-not-an-object")
    meta, status = obj.get("metadata"), obj.get("status")
    namespace, name, _ = pod_identity(meta)
    payload = pod_payload(
        meta,
        _dict(obj.get("spec")).get("nodeName"),
        status,
        containers=snapshot_raw(namespace, name, pod_terminating(meta), status).containers,
        watch_type=watch_type,
        initial_sync=initial_sync,
        observed_at=observed_at or utcnow(),
        allowlist=allowlist,
    )
    try:
        return PodEvent.model_validate(payload)
    except ValidationError as exc:  # a value of the wrong shape that the allowlist let through
        raise BadWatchEvent(f"pod does not fit the PodEvent contract: {exc}", reason="pod-invalid") from exc


# --------------------------------------------------------------------------- core/v1 Events


#: Events about these are the pod path's; `Relay.event_kinds` adds the other watched kinds
POD_ONLY = frozenset({"Pod"})


def project_event(
    obj: Json,
    *,
    watch_type: WatchType,
    initial_sync: bool = False,
    observed_at: datetime | None = None,
    kinds: frozenset[str] = POD_ONLY,
) -> KubeEvent | None:
    """The compact `KubeEvent` of a raw core/v1 Event about a Pod (or another of `kinds`, for the
    history); None for any other subject. A cluster-scoped subject (a Node) keeps no namespace.

    Events written through events.k8s.io/v1 show on core/v1 with `series.count` and `eventTime`
    instead of `count` and `lastTimestamp`; both shapes give the same fields here.
    """
    if not isinstance(obj, dict):
        raise BadWatchEvent("event object is not a JSON object", reason="event-not-an-object")
    involved = _dict(obj.get("involvedObject"))
    kind = involved.get("kind")
    if kind not in kinds:
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
            reason=_redacted(obj.get("reason")),
            message=_redacted(obj.get("message")),
            type=_str(obj.get("type")),
            count=count,
            involved_object=InvolvedObject(
                kind=kind,
                name=pod_name,
                namespace=_str(involved.get("namespace")) or (namespace if kind == "Pod" else None),
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
            source_component=_redacted(source.get("component")) or _redacted(obj.get("reportingComponent")),
            watch_type=watch_type,
            resource_version=_str(meta.get("resourceVersion")) or "",
            observed_at=observed_at or utcnow(),
            initial_sync=initial_sync,
        )
    except ValidationError as exc:
        raise BadWatchEvent(
            f"event does not fit the KubeEvent contract: {exc}", reason="event-invalid"
        ) from exc
