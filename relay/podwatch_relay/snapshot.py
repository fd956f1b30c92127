"""The compact, interned memory of a pod: what the relay diffs, keeps per uid and checkpoints.

A `Snapshot` holds a few short strings and ints per pod; containers and condition sets are plain
tuples shared between pods (`share`: the replicas of a healthy Deployment are all alike) and
strings are interned, so a pod's name is the only string of its own. Built from a raw `status`
dict (`snapshot_raw`, the full path), from a `PodEvent` (`snapshot_of_event`, the model path) or
from a checkpoint (`shared_snapshot`); the typed fast path (`projection.status_parts`) builds the
same containers and conditions with `share_container` and `share`. Both `projection` (payloads)
and `state` (the tracker) read it; it imports neither.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

from podwatch.models import PodEvent
from podwatch_relay.redact import redact
from podwatch_relay.timetext import canonical_time, time_text

#: One container: (kind, name, state, reason of that state, ready, restart count,
#: lastState.terminated reason, lastState.terminated finishedAt as `time_text` writes it). A plain
#: tuple (not a NamedTuple): it is encoded as it is into checkpoints, and orjson takes only tuples.
Container = tuple[str, str, str, str | None, bool, int, str | None, str | None]
#: Conditions: (type, status) pairs sorted by type.
Conditions = tuple[tuple[str, str], ...]

#: Where each kind of container status lives in `status`.
CONTAINER_LISTS: tuple[tuple[str, str], ...] = (
    ("initContainerStatuses", "init"),
    ("containerStatuses", "app"),
    ("ephemeralContainerStatuses", "ephemeral"),
)
_STATES = ("waiting", "running", "terminated")
_REASON_STATES = frozenset({"waiting", "terminated"})

intern = sys.intern


class Snapshot(NamedTuple):
    """One pod, as the tracker remembers it (field order is the checkpoint's)."""

    namespace: str
    name: str
    phase: str | None
    reason: str | None
    #: being deleted (`metadata.deletionTimestamp`) or deleted
    terminating: bool
    conditions: Conditions
    containers: tuple[Container, ...]


#: `Snapshot(*fields)` without the NamedTuple's Python-level `__new__` (for hot paths).
new_snapshot = tuple.__new__

#: Values shared between pods: container tuples, container sets, condition sets. Bounded: when it
#: is full it starts over (values already shared stay shared; new ones are shared again). Hot
#: loops may look a value up inline (`SHARED.get(value) or share(value)`); only `share` adds.
SHARED: dict[Any, Any] = {}
_SHARED_MAX = 1 << 16


def share[T](value: T) -> T:
    """The one shared copy of `value` (a tuple of shareable values)."""
    got = SHARED.get(value)
    if got is None:
        if len(SHARED) >= _SHARED_MAX:
            SHARED.clear()
        SHARED[value] = got = value
    return got


def share_container(c: Container) -> Container:
    """The one shared copy of a container, its strings interned."""
    got = SHARED.get(c)
    if got is None:
        kind, name, state, reason, ready, restarts, last_reason, last_finished = c
        c = (
            kind,
            intern(name),
            state,
            intern(reason) if reason else None,
            ready,
            restarts,
            intern(last_reason) if last_reason else None,
            last_finished,
        )
        got = share(c)
    return got


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _container_raw(kind: str, raw: dict[str, Any]) -> Container:
    """One raw container status, compact (the projection's type checks, inlined)."""
    get = raw.get
    state, reason = "unknown", None
    state_obj = get("state")
    if isinstance(state_obj, dict):
        for candidate in _STATES:
            if candidate in state_obj:
                state = candidate
                if candidate != "running":
                    detail = state_obj[candidate]
                    if isinstance(detail, dict):
                        reason = detail.get("reason")
                        reason = redact(reason) if isinstance(reason, str) and reason else None
                break
    last_reason = last_finished = None
    last_state = get("lastState")
    if isinstance(last_state, dict) and last_state:
        last = last_state.get("terminated")
        if isinstance(last, dict):
            text = last.get("reason")
            last_reason = redact(text) if isinstance(text, str) and text else None
            last_finished = canonical_time(last.get("finishedAt"))
    cname, restarts = get("name"), get("restartCount")
    container: Container = (
        kind,
        cname if isinstance(cname, str) else "",
        state,
        reason,
        get("ready") is True,
        restarts if type(restarts) is int else 0,
        last_reason,
        last_finished,
    )
    return SHARED.get(container) or share_container(container)


def snapshot_raw(namespace: str, name: str, terminating: bool, status: Any) -> Snapshot:
    """The compact memory of a pod from its raw `status` dict (what `projection.pod_payload` reads
    for these fields, so the tracker and the forwarded payload agree)."""
    if not isinstance(status, dict):
        status = {}
    containers = [
        _container_raw(kind, raw)
        for key, kind in CONTAINER_LISTS
        if isinstance(raw_list := status.get(key), list)
        for raw in raw_list
        if isinstance(raw, dict)
    ]
    phase, reason = _text(status.get("phase")), _text(status.get("reason"))
    reason = redact(reason) if reason else None
    return new_snapshot(
        Snapshot,
        (
            intern(namespace),
            name,
            intern(phase) if phase else None,
            intern(reason) if reason else None,
            terminating,
            conditions_raw(status.get("conditions")),
            share(tuple(containers)),
        ),
    )


def conditions_raw(raw_conditions: Any) -> Conditions:
    """The snapshot's conditions from the raw `status.conditions` value: (type, status) pairs,
    sorted by type, shared between pods."""
    conditions = []
    if isinstance(raw_conditions, list):
        for raw in raw_conditions:
            if isinstance(raw, dict):
                ctype, value = raw.get("type"), raw.get("status")
                if isinstance(ctype, str) and ctype and isinstance(value, str) and value:
                    conditions.append((ctype, value))
    conditions.sort()
    return share(tuple(conditions))


def snapshot_of_event(event: PodEvent) -> Snapshot:
    """The compact memory of a `PodEvent` (the model path; the pipeline uses `snapshot_raw`)."""
    containers = tuple(
        share_container(
            (
                c.kind,
                c.name,
                c.state,
                c.reason if c.state in _REASON_STATES else None,
                c.ready,
                c.restart_count,
                c.last_termination_reason,
                time_text(c.last_finished_at) if c.last_finished_at else None,
            )
        )
        for c in event.containers
    )
    return Snapshot(
        intern(event.namespace),
        event.name,
        event.phase,
        event.reason,
        event.deleted_at is not None,
        share(tuple(sorted((c.type, c.status) for c in event.conditions))),
        share(containers),
    )


def shared_snapshot(snapshot: tuple[Any, ...]) -> Snapshot:
    """A snapshot read back from a checkpoint, its values shared and interned as the tracker's."""
    namespace, name, phase, reason, terminating, conditions, containers = snapshot
    return Snapshot(
        intern(namespace),
        name,
        intern(phase) if phase else None,
        intern(reason) if reason else None,
        terminating,
        share(tuple(sorted(conditions))),
        share(tuple(share_container(c) for c in containers)),
    )
