"""What the relay remembers between watch events, and what it therefore forwards.

`PodTracker` keeps, per pod uid, only what diffing needs (a few short strings and ints per
container, as tuples: no dicts, no models, no labels). A pod is forwarded when something that
matters changed (phase, reason, conditions, container states, reasons, restart counts, readiness,
termination) with the `transitions` seen; an update that only touches metadata (resourceVersion,
annotations, managedFields, labels) is suppressed.

`EventTracker` keeps the last count seen per core/v1 Event uid, bounded, so an Event re-sent
unchanged (a relist, a metadata update) is not forwarded twice.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from podwatch.models import KubeEvent, PodEvent, Transition

#: Waiting reasons that are a normal part of starting a container, not trouble.
STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})


class _Container(NamedTuple):
    kind: str
    name: str
    state: str | None
    reason: str | None
    ready: bool
    restart_count: int
    last_termination_reason: str | None
    last_finished_at: str | None


class _Pod(NamedTuple):
    """The compact memory of one pod: what `diff` compares, nothing more."""

    namespace: str
    name: str
    phase: str | None
    reason: str | None
    terminating: bool
    conditions: tuple[tuple[str, str], ...]
    containers: tuple[_Container, ...]


_EMPTY_CONTAINER = _Container("", "", None, None, False, 0, None, None)


def _snapshot(event: PodEvent) -> _Pod:
    return _Pod(
        namespace=event.namespace,
        name=event.name,
        phase=event.phase,
        reason=event.reason,
        terminating=event.deleted_at is not None,
        conditions=tuple(sorted((c.type, c.status) for c in event.conditions)),
        containers=tuple(
            _Container(
                c.kind,
                c.name,
                c.state,
                c.reason,
                c.ready,
                c.restart_count,
                c.last_termination_reason,
                c.last_finished_at.isoformat() if c.last_finished_at else None,
            )
            for c in event.containers
        ),
    )


def _reason_in(container: _Container, state: str) -> str | None:
    return container.reason if container.state == state else None


def diff(old: _Pod | None, new: _Pod) -> list[Transition]:
    """The transitions from `old` to `new`; an unknown `old` compares against an empty pod."""
    out: list[Transition] = []
    if old is None:
        old = _Pod(new.namespace, new.name, None, None, False, (), ())

    def note(
        field: str, before: str | int | bool | None, after: str | int | bool | None, c: str | None
    ) -> None:
        if before != after:
            out.append(Transition(field=field, container=c, old=before, new=after))

    note("phase", old.phase, new.phase, None)
    note("reason", old.reason, new.reason, None)
    note("terminating", old.terminating, new.terminating, None)
    old_conditions = dict(old.conditions)
    for kind, status in new.conditions:
        note(f"condition.{kind}", old_conditions.get(kind), status, None)
    old_containers = {(c.kind, c.name): c for c in old.containers}
    for c in new.containers:
        o = old_containers.get((c.kind, c.name), _EMPTY_CONTAINER)
        note("state", o.state, c.state, c.name)
        note("waiting_reason", _reason_in(o, "waiting"), _reason_in(c, "waiting"), c.name)
        note("terminated_reason", _reason_in(o, "terminated"), _reason_in(c, "terminated"), c.name)
        note("restart_count", o.restart_count, c.restart_count, c.name)
        note("ready", o.ready, c.ready, c.name)
        if c.last_termination_reason is not None and (
            c.last_termination_reason != o.last_termination_reason or c.last_finished_at != o.last_finished_at
        ):
            # A new previous instance ended (possibly for the same reason as the one before).
            out.append(
                Transition(
                    field="last_termination_reason",
                    container=c.name,
                    old=o.last_termination_reason,
                    new=c.last_termination_reason,
                )
            )
    return out


def is_troubled(event: PodEvent) -> bool:
    """A pod already in trouble: worth forwarding even when initial sync is limited to trouble."""
    if event.phase in {"Failed", "Unknown"} or event.reason:
        return True
    if any(c.type == "PodScheduled" and c.status == "False" for c in event.conditions):
        return True
    for c in event.containers:
        if c.state == "waiting" and c.reason and c.reason not in STARTING_REASONS:
            return True
        if c.state == "terminated" and (c.exit_code or 0) != 0:
            return True
        if c.last_termination_reason is not None and c.last_termination_reason != "Completed":
            return True
    return False


@dataclass(slots=True)
class TrackerStats:
    pods: int = 0
    forgotten: int = 0
    #: a new uid appeared under a namespace/name the tracker knew with another uid
    replaced: int = 0


class PodTracker:
    """The last compact projection per pod uid; decides what is worth forwarding."""

    def __init__(self) -> None:
        self._pods: dict[str, _Pod] = {}
        self._by_name: dict[tuple[str, str], str] = {}
        self.stats = TrackerStats()

    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, uid: object) -> bool:
        return uid in self._pods

    def uids(self) -> frozenset[str]:
        """The pods known now (a relist compares its result against these)."""
        return frozenset(self._pods)

    def uid_of(self, namespace: str, name: str) -> str | None:
        return self._by_name.get((namespace, name))

    def forget(self, uid: str) -> None:
        pod = self._pods.pop(uid, None)
        if pod is not None:
            key = (pod.namespace, pod.name)
            if self._by_name.get(key) == uid:
                del self._by_name[key]
            self.stats.forgotten += 1
        self.stats.pods = len(self._pods)

    def observe(self, event: PodEvent) -> PodEvent | None:
        """`event` with its transitions when it matters, None when nothing that matters changed.

        * unknown uid (ADDED, or a MODIFIED seen first): forwarded, transitions from an empty pod;
        * known uid: forwarded only if the diff is not empty (a relist of an unchanged pod is not);
        * DELETED: always forwarded, then forgotten;
        * a new uid under a known namespace/name: the old uid is a different pod that is gone, and
          is forgotten (a synthetic DELETED for it is the relist logic's job).
        """
        new = _snapshot(event)
        old = self._pods.get(event.uid)
        transitions = diff(old, new)
        if event.watch_type == "DELETED":
            self.forget(event.uid)
            return event.model_copy(update={"transitions": transitions})
        key = (event.namespace, event.name)
        previous_uid = self._by_name.get(key)
        if previous_uid is not None and previous_uid != event.uid:
            self.forget(previous_uid)
            self.stats.replaced += 1
        self._pods[event.uid] = new
        self._by_name[key] = event.uid
        self.stats.pods = len(self._pods)
        if old is not None and not transitions:
            return None
        return event.model_copy(update={"transitions": transitions})


class EventTracker:
    """Last count per core/v1 Event uid (LRU-bounded): an unchanged re-send is not forwarded."""

    def __init__(self, *, max_events: int = 20_000) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._max = max_events

    def __len__(self) -> int:
        return len(self._counts)

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
