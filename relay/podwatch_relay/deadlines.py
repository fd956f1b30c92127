"""Pods that stop changing: when to look at a waiting pod again.

A pod stuck in Pending (ContainerCreating, an image that never comes, ...) or Running but not Ready
sends no more watch lines, and the processor judges time-based trouble (`pending-too-long`,
`not-ready-too-long`) from a forwarded pod's `observed_at`: without a new line, it never sees the
pod again. `Deadlines` remembers, for each waiting pod, when its threshold passes and the last
payload the relay forwarded of it; `due(now)` hands back each pod whose time came, once, stamped with
`now`, for the relay to forward again (`Relay.look_again`) with no watch line. A pod that changes is
forwarded by the watch as usual, and its deadline follows the change (cancelled when it stops
waiting, or when the forwarded change already shows the threshold passed).

Cost, for 50k pods: a dict of the waiting pods only (each entry holds the payload dict the relay
built anyway) and a heap of their deadlines; a pod that is not waiting costs one dict lookup per
forwarded change; `due` pops only what is due, never scans. Cancelled entries stay in the heap until
their time and are skipped then (`_Entry.seq` tells the current entry from old ones).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

#: `overdue` transition values: what the pod waited for too long
PENDING = "Pending"
NOT_READY = "NotReady"
_READY_FALSE = ("Ready", "False")


class _Entry(NamedTuple):
    deadline: float
    seq: int
    kind: str
    payload: dict[str, Any]


def _epoch(text: Any) -> float | None:
    """Epoch seconds of a payload time (`time_text`: ISO 8601 with `Z`), None if absent or bad."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _ready_since(payload: dict[str, Any]) -> Any:
    for condition in payload.get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition.get("last_transition_time")
    return None


class Deadlines:
    """Waiting pods by uid, with when to look at each again (seconds; 0 turns a kind off)."""

    def __init__(self, *, pending_seconds: float, not_ready_seconds: float) -> None:
        self.pending_seconds = pending_seconds
        self.not_ready_seconds = not_ready_seconds
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self._lock = threading.Lock()
        #: pods handed back by `due` so far
        self.fired = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, uid: object) -> bool:
        return uid in self._entries

    def _waiting(self, phase: Any, terminating: bool, conditions: Any) -> str | None:
        if terminating:
            return None
        if phase == "Pending" and self.pending_seconds > 0:
            return PENDING
        if phase == "Running" and self.not_ready_seconds > 0 and _READY_FALSE in conditions:
            return NOT_READY
        return None

    def observe(
        self, uid: str, snapshot: tuple[Any, ...], payload: dict[str, Any], *, forwarded: bool = True
    ) -> None:
        """A change of `uid` was forwarded with `payload` (the relay's `Snapshot` of it given too):
        follow it. Not waiting (the common case): forget the pod if it was. `forwarded=False`: the
        relay held `payload` back (an initial list), so a threshold already passed is due at once."""
        kind = self._waiting(snapshot[2], snapshot[4], snapshot[5])
        if kind is None:
            if uid in self._entries:
                self.cancel(uid)
            return
        if kind == PENDING:
            since, threshold = _epoch(payload.get("created_at")), self.pending_seconds
        else:
            since = _epoch(_ready_since(payload)) or _epoch(payload.get("created_at"))
            threshold = self.not_ready_seconds
        seen = _epoch(payload.get("observed_at"))
        if since is None or seen is None or (forwarded and since + threshold <= seen):
            # no time to go by, or the forwarded change itself shows the threshold passed
            self.cancel(uid)
            return
        self._schedule(uid, since + threshold, kind, payload)

    def _schedule(self, uid: str, deadline: float, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            old = self._entries.get(uid)
            if old is not None and old.deadline == deadline and old.kind == kind:
                self._entries[uid] = old._replace(payload=payload)  # same wait, newer payload
                return
            self._seq += 1
            self._entries[uid] = _Entry(deadline, self._seq, kind, payload)
            heapq.heappush(self._heap, (deadline, self._seq, uid))

    def cancel(self, uid: str) -> None:
        """Forget `uid` (deleted, stopped waiting); its heap item is skipped when its time comes."""
        with self._lock:
            self._entries.pop(uid, None)

    def next_deadline(self) -> float | None:
        """Epoch seconds of the earliest item in the heap (possibly a cancelled one), None if none."""
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def due(self, now: datetime, *, known: Callable[[str], bool]) -> list[tuple[str, dict[str, Any]]]:
        """The waiting pods whose deadline passed by `now`, each once: (`overdue` value, the last
        payload forwarded of it — the caller re-stamps a copy). `known(uid)`: the pod is still
        tracked (a pod forgotten without `cancel` is skipped)."""
        limit = now.timestamp()
        out: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            heap = self._heap
            while heap and heap[0][0] <= limit:
                _, seq, uid = heapq.heappop(heap)
                entry = self._entries.get(uid)
                if entry is None or entry.seq != seq:
                    continue  # cancelled, or rescheduled (a newer item is in the heap)
                del self._entries[uid]
                if known(uid):
                    out.append((entry.kind, entry.payload))
        self.fired += len(out)
        return out


def look_again_periodically(look_again: Callable[[], object], stop: threading.Event, interval: float) -> None:
    """Call `look_again` (`Relay.look_again`) every `interval` seconds until `stop`."""
    while not stop.wait(interval):
        look_again()
