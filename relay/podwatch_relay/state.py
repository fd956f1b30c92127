"""What the relay remembers between watch events, and what it therefore forwards.

`PodTracker` keeps, per pod uid, a `Record`: the pod's compact `snapshot.Snapshot` (shared,
interned tuples: no dicts, no models, no labels) and the hashes of its raw `status` text the fast
path compares. It decides what is worth forwarding: a pod whose phase, reason,
conditions, container states, reasons, restart counts, readiness or termination changed goes out
with the `transitions` seen (`changes`); an update that only touches metadata (resourceVersion,
annotations, managedFields, labels) is suppressed.

`EventTracker` keeps the last count seen per core/v1 Event uid, bounded, so an Event re-sent
unchanged (a relist, a metadata update) is not forwarded twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from podwatch.models import KubeEvent, PodEvent, Transition, WatchType
from podwatch_relay.projection import StatusParts, container_troubled
from podwatch_relay.snapshot import (
    Conditions,
    Container,
    Snapshot,
    shared_snapshot,
    snapshot_of_event,
)

#: What the pipeline knows of a pod's raw watch line, to compare the next one without decoding it:
#: the hashes of its `status` text as the pipeline cuts it (the text without its `conditions`
#: array, that array's text), and where it cut the line (`(end - status) << 32 | (spec - head)`:
#: the status key's distance from the end of the line, the spec key's from the end of the line's
#: head), where the next line of the pod most likely has them too.
StatusHash = tuple[int, int, int]


class Record(msgspec.Struct, gc=False):
    """What the tracker holds per uid: the `Snapshot`'s fields (same names), then the
    `StatusHash` (Nones when the pod came without its raw status text: a list item, a model, a
    pod being deleted). A msgspec Struct, not a tuple: made in C (a NamedTuple's `tuple.__new__`
    costs the fast path ~3 %), 24 bytes smaller, outside the GC (it holds no cycle), and its
    hashes are updated in place."""

    namespace: str
    name: str
    phase: str | None
    reason: str | None
    terminating: bool
    conditions: Conditions
    containers: tuple[Container, ...]
    #: hash of the status text without its conditions array
    rest_hash: int | None
    #: hash of the conditions array's text
    conditions_hash: int | None
    #: where the line was cut (see `StatusHash`)
    place: int | None

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.namespace,
            self.name,
            self.phase,
            self.reason,
            self.terminating,
            self.conditions,
            self.containers,
        )

    def holds_status(self, namespace: str, name: str, parts: StatusParts) -> bool:
        """Whether the record is the pod `namespace/name`, not being deleted, with the status
        `parts`: compared field by field, without building a snapshot (the fast path's unchanged pods)."""
        return (
            self.containers == parts.containers
            and self.conditions == parts.conditions
            and self.phase == parts.phase
            and self.reason == parts.reason
            and not self.terminating
            and self.name == name
            and self.namespace == namespace
        )

    def restamp(self, status_hash: StatusHash) -> None:
        """Keep `status_hash`: the pod's new raw status changed nothing that matters."""
        self.rest_hash, self.conditions_hash, self.place = status_hash


#: A transition before it becomes a `Transition` or a JSON object: (field, container, from, to).
Change = tuple[str, str | None, str | int | bool | None, str | int | bool | None]

_EMPTY_CONTAINER: Container = ("", "", "", None, False, 0, None, None)
_NO_HASH: tuple[None, None, None] = (None, None, None)


#: The transitions of a pod seen for the first time, by its snapshot less namespace and name: the
#: replicas of a workload start alike. Bounded (small: each entry holds a few dozen changes).
_FIRST_SEEN: dict[Any, tuple[Change, ...]] = {}


def changes(old: Snapshot | Record | None, new: Snapshot) -> list[Change]:
    """The transitions from `old` to `new`; an unknown `old` compares against an empty pod."""
    if old is None:
        key = new[2:]
        first = _FIRST_SEEN.get(key)
        if first is None:
            if len(_FIRST_SEEN) >= 256:
                _FIRST_SEEN.clear()
            first = _FIRST_SEEN[key] = tuple(_changes(None, new))
        return list(first)
    return _changes(old, new)


def _changes(old: Snapshot | Record | None, new: Snapshot) -> list[Change]:
    out: list[Change] = []
    _, _, phase, reason, terminating, conditions, containers = new
    if old is None:
        old_phase = old_reason = None
        old_terminating = False
        old_conditions: Conditions = ()
        old_containers: tuple[Container, ...] = ()
    else:
        old_phase, old_reason, old_terminating = old.phase, old.reason, old.terminating
        old_conditions, old_containers = old.conditions, old.containers
    if old_phase != phase:
        out.append(("phase", None, old_phase, phase))
    if old_reason != reason:
        out.append(("reason", None, old_reason, reason))
    if old_terminating != terminating:
        out.append(("terminating", None, old_terminating, terminating))
    if old_conditions is not conditions:
        before = dict(old_conditions)
        for kind, status in conditions:
            was = before.get(kind)
            if was != status:
                out.append((f"condition.{kind}", None, was, status))
    if old_containers is not containers:
        by_key = {(c[0], c[1]): c for c in old_containers}
        for c in containers:
            o = by_key.get((c[0], c[1]), _EMPTY_CONTAINER)
            if o is c:
                continue
            name = c[1]
            if o[2] != c[2]:
                out.append(("state", name, o[2] or None, c[2]))
            o_waiting = o[3] if o[2] == "waiting" else None
            c_waiting = c[3] if c[2] == "waiting" else None
            if o_waiting != c_waiting:
                out.append(("waiting_reason", name, o_waiting, c_waiting))
            o_terminated = o[3] if o[2] == "terminated" else None
            c_terminated = c[3] if c[2] == "terminated" else None
            if o_terminated != c_terminated:
                out.append(("terminated_reason", name, o_terminated, c_terminated))
            if o[5] != c[5]:
                out.append(("restart_count", name, o[5], c[5]))
            if o[4] != c[4]:
                out.append(("ready", name, o[4], c[4]))
            if c[6] is not None and (c[6] != o[6] or c[7] != o[7]):
                # A new previous instance ended (possibly for the same reason as the one before).
                out.append(("last_termination_reason", name, o[6], c[6]))
    return out


def diff(old: Snapshot | None, new: Snapshot) -> list[Transition]:
    """`changes` as `Transition` models."""
    return [Transition(field=f, container=c, old=o, new=n) for f, c, o, n in changes(old, new)]


def change_payload(change: Change) -> dict[str, Any]:
    """A change as the JSON object `Transition` serializes to (aliases, None omitted)."""
    field, container, old, new = change
    out: dict[str, Any] = {"field": field}
    if container is not None:
        out["container"] = container
    if old is not None:
        out["from"] = old
    if new is not None:
        out["to"] = new
    return out


def payload_troubled(payload: dict[str, Any], containers_troubled: bool | None = None) -> bool:
    """A pod already in trouble (see `is_troubled`), from its `pod_payload` dict; or from the dict
    `projection.typed_pod_payload` gives (its containers are encoded already), with whether its
    containers are in trouble (`projection.parts_troubled`)."""
    if payload.get("phase") in {"Failed", "Unknown"} or payload.get("reason"):
        return True
    if any(c["type"] == "PodScheduled" and c["status"] == "False" for c in payload["conditions"]):
        return True
    if containers_troubled is not None:
        return containers_troubled
    return any(container_troubled(c) for c in payload["containers"])


def is_troubled(event: PodEvent) -> bool:
    """A pod already in trouble: worth forwarding even when initial sync is limited to trouble."""
    return payload_troubled(event.model_dump(exclude_none=True))


@dataclass(slots=True)
class TrackerStats:
    pods: int = 0
    forgotten: int = 0
    #: a new uid appeared under a namespace/name the tracker knew with another uid
    replaced: int = 0


class PodTracker:
    """The last compact projection per pod uid; decides what is worth forwarding."""

    def __init__(self) -> None:
        self._pods: dict[str, Record] = {}
        self._names: dict[str, dict[str, str]] = {}  # namespace -> name -> uid
        self.stats = TrackerStats()

    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, uid: object) -> bool:
        return uid in self._pods

    def uids(self) -> frozenset[str]:
        """The pods known now (a relist compares its result against these)."""
        return frozenset(self._pods)

    def namespaces(self) -> set[str]:
        """The namespaces of the pods known now."""
        return set(self._names)

    def uid_of(self, namespace: str, name: str) -> str | None:
        names = self._names.get(namespace)
        return names.get(name) if names is not None else None

    def uids_in(self, namespace: str | None) -> list[str]:
        """The uids known in one namespace (None: all of them)."""
        if namespace is None:
            return list(self._pods)
        return list(self._names.get(namespace, {}).values())

    def record(self, uid: str) -> Record | None:
        """What the tracker holds for `uid`: its snapshot's fields, then its `StatusHash` (Nones
        when it has none). For the pipeline, which compares a line's status with it."""
        return self._pods.get(uid)

    def vanished(self, uid: str) -> Snapshot | None:
        """The memory of a known pod that is gone (absent from a relist, or replaced by a new uid
        under its name), for its synthetic DELETED (`projection.vanished_payload`); the pod is then
        forgotten. None when the tracker does not know it."""
        pod = self._pods.get(uid)
        if pod is None:
            return None
        self.forget(uid)
        return pod.snapshot()

    def snapshots(self) -> dict[str, Snapshot]:
        """Every pod's compact memory by uid (what a checkpoint keeps; the status hashes are not)."""
        return {uid: record.snapshot() for uid, record in self._pods.items()}

    def restore(self, uid: str, snapshot: Snapshot) -> None:
        """Remember `uid` as `snapshot` (from a checkpoint) without forwarding anything: the next
        list diffs against it, and `reconcile` finds it gone if the list does not have it."""
        self.observe_snapshot(uid, shared_snapshot(snapshot), "ADDED")

    def forget_all(self, uids: Iterable[str]) -> int:
        count = 0
        for uid in list(uids):
            if uid in self._pods:
                self.forget(uid)
                count += 1
        return count

    def forget(self, uid: str) -> None:
        pod = self._pods.pop(uid, None)
        if pod is not None:
            names = self._names.get(pod.namespace)
            if names is not None and names.get(pod.name) == uid:
                del names[pod.name]
                if not names:
                    del self._names[pod.namespace]
            self.stats.forgotten += 1
        self.stats.pods = len(self._pods)

    def observe_snapshot(
        self, uid: str, snapshot: Snapshot, watch_type: WatchType, status_hash: StatusHash | None = None
    ) -> list[Change] | None:
        """The transitions of one watch event when it matters, None when nothing that matters
        changed.

        * unknown uid (ADDED, or a MODIFIED seen first): forwarded, transitions from an empty pod;
        * known uid: forwarded only if the diff is not empty (a relist of an unchanged pod is not);
        * DELETED: always forwarded, then forgotten;
        * a new uid under a known namespace/name: the old uid is a different pod that is gone, and
          is forgotten (a synthetic DELETED for it is the relist logic's job).
        """
        old = self._pods.get(uid)
        found = changes(old, snapshot)
        if watch_type == "DELETED":
            self.forget(uid)
            return found
        namespace, name, phase, reason, terminating, conditions, containers = snapshot
        names = self._names.get(namespace)
        if names is None:
            names = self._names[namespace] = {}
        previous_uid = names.get(name)
        if previous_uid is not None and previous_uid != uid:
            self.forget(previous_uid)
            self.stats.replaced += 1
            names = self._names.setdefault(namespace, {})
        rest, conditions_hash, place = status_hash or _NO_HASH
        self._pods[uid] = Record(
            namespace, name, phase, reason, terminating, conditions, containers, rest, conditions_hash, place
        )
        names[name] = uid
        self.stats.pods = len(self._pods)
        if old is not None and not found:
            return None
        return found

    def observe(self, event: PodEvent) -> PodEvent | None:
        """`event` with its transitions when it matters, None when nothing that matters changed
        (see `observe_snapshot`)."""
        found = self.observe_snapshot(event.uid, snapshot_of_event(event), event.watch_type)
        if found is None:
            return None
        transitions = [Transition(field=f, container=c, old=o, new=n) for f, c, o, n in found]
        return event.model_copy(update={"transitions": transitions})


class EventTracker:
    """Last count per core/v1 Event uid (LRU-bounded): an unchanged re-send is not forwarded."""

    def __init__(self, *, max_events: int = 20_000) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._max = max_events

    def __len__(self) -> int:
        return len(self._counts)

    def counts(self) -> dict[str, int]:
        """The last count per Event uid, oldest first (what a checkpoint keeps)."""
        return dict(self._counts)

    def restore(self, counts: Iterable[tuple[str, int]]) -> None:
        """Remember Event counts from a checkpoint: an Event listed again unchanged is not news."""
        for uid, count in counts:
            self._counts[uid] = count
            self._counts.move_to_end(uid)
        while len(self._counts) > self._max:
            self._counts.popitem(last=False)

    def observe(self, event: KubeEvent) -> KubeEvent | None:
        if event.watch_type == "DELETED":
            self._counts.pop(event.uid, None)
            return None
        if self._counts.get(event.uid) == event.count:
            self._counts.move_to_end(event.uid)
            return None
        self._counts[event.uid] = event.count
        self._counts.move_to_end(event.uid)
        while len(self._counts) > self._max:
            self._counts.popitem(last=False)
        return event
