"""The relay's checkpoint: what it last forwarded (each pod's compact state, each Event's count,
each object of the other kinds' digest and conditions), kept on the spool volume so that a process
restarted there still reports what happened while it was down: the first list diffs against it
(changes go out with their transitions, `reconcile` sends a DELETED for every pod or object gone
meanwhile) instead of re-forwarding everything as initial sync.

* One JSON file per process's pod (`<dir>/<pod>.json`), replaced atomically (temporary file, then
  rename): a crash leaves the previous checkpoint, never half of one.
* Written only when it is **covered** (`sink.Progress`): a leader's state once the outbox has
  everything forwarded until then out of memory (sent or spooled), a standby's once the leader
  renewed its lease well after it (the leader sent it). So a checkpoint never claims what a crash
  could still lose; an older one only costs duplicates, which the cloud side drops.
* Loaded at start (`restore`), before any watch: the newest file of the directory (replicas sharing
  a volume read each other's), if it is of this cluster; pods outside the watched namespaces and
  entries that do not parse are skipped (counted). A file that is no checkpoint at all (not JSON,
  or JSON of another shape) is logged as an error and moved aside (`<name>.json.corrupt`): the
  relay starts from the next newest, or from a full list, never fails for it.
* Objects of the other kinds (`objects`, by `KindSpec.resource`) came later in the same format 1:
  optional, so a checkpoint without them loads (its objects are unknown: listed as new), and a
  relay that predates them reads a newer file and ignores them. They are given to each kind's
  `ObjectRelay` when its watcher starts (`restore_objects`), a custom resource's when its CRD does.
See docs/internals.md ("Relay failover") for how it and the standby's hold window share the work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from podwatch_relay._json import dumps, loads
from podwatch_relay.objects import ObjectRelay, ObjectState
from podwatch_relay.outbox import safe_name
from podwatch_relay.pipeline import Relay
from podwatch_relay.sink import Progress
from podwatch_relay.snapshot import Container, Snapshot

log = logging.getLogger("podwatch_relay.checkpoint")

FORMAT = 1


@dataclass(slots=True)
class CheckpointStats:
    written: int = 0
    failed: int = 0
    #: pods, objects (other kinds) and bytes of the last checkpoint written
    pods: int = 0
    objects: int = 0
    bytes: int = 0
    #: time.monotonic() of the last write (None: none yet)
    written_at: float | None = None
    #: from the checkpoint loaded at start
    restored_pods: int = 0
    restored_events: int = 0
    #: objects of the other kinds in it, and how many of those were given to a started kind
    restored_objects: int = 0
    #: entries of it skipped (not parsable, or a namespace not watched)
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class Loaded:
    """A checkpoint read back: its file, when it was written, its pods, Event counts and objects."""

    path: Path
    written_at: str
    pods: list[tuple[str, Snapshot]]
    events: list[tuple[str, int]]
    skipped: int
    #: the other kinds' objects by `KindSpec.resource` (empty in a checkpoint written without them)
    objects: dict[str, list[ObjectState]] = field(default_factory=dict)


def encode(
    cluster_id: str,
    pods: dict[str, Snapshot],
    events: dict[str, int],
    objects: dict[str, list[ObjectState]] | None = None,
) -> str:
    """The checkpoint's text: pods as `[uid, namespace, name, phase, reason, terminating,
    [[type, status], ...], [container, ...]]`, Events as `[uid, count]`, objects by kind as
    `[uid, namespace, name, digest (hex), [[type, status], ...]]`."""
    return dumps(
        {
            "format": FORMAT,
            "cluster_id": cluster_id,
            "written_at": datetime.now(UTC).isoformat(),
            "pods": [[uid, *snapshot] for uid, snapshot in pods.items()],
            "events": list(events.items()),
            "objects": {
                kind: [[uid, ns, name, digest.hex(), conds] for uid, ns, name, digest, conds in states]
                for kind, states in (objects or {}).items()
            },
        }
    )


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"not a string: {value!r}")


def _container(raw: Any) -> Container:
    kind, name, state, reason, ready, restarts, last_reason, last_finished = raw
    if not (isinstance(kind, str) and isinstance(name, str) and isinstance(state, str)):
        raise TypeError("container kind, name and state must be strings")
    if not isinstance(ready, bool) or type(restarts) is not int:
        raise TypeError("container ready must be a bool and restarts an int")
    return (kind, name, state, _str(reason), ready, restarts, _str(last_reason), _str(last_finished))


def _pod(raw: Any) -> tuple[str, Snapshot]:
    uid, namespace, name, phase, reason, terminating, conditions, containers = raw
    if not (isinstance(uid, str) and isinstance(namespace, str) and isinstance(name, str)):
        raise TypeError("uid, namespace and name must be strings")
    if not isinstance(terminating, bool):
        raise TypeError("terminating must be a bool")
    pairs = tuple((str(t), str(s)) for t, s in conditions)
    parts = tuple(map(_container, containers))
    return uid, Snapshot(namespace, name, _str(phase), _str(reason), terminating, pairs, parts)


def _object(raw: Any) -> ObjectState:
    uid, namespace, name, digest, conditions = raw
    if not (isinstance(uid, str) and isinstance(namespace, str) and isinstance(name, str)):
        raise TypeError("uid, namespace and name must be strings")
    if not isinstance(digest, str):
        raise TypeError("digest must be a hex string")
    pairs = tuple((str(t), str(s)) for t, s in conditions)
    return uid, namespace, name, bytes.fromhex(digest), pairs


def _objects(
    raw: dict[str, Any], namespaces: Collection[str] | None
) -> tuple[dict[str, list[ObjectState]], int]:
    """The objects by kind, and how many entries were skipped (not parsable, or of a namespace not
    watched; a cluster-scoped object, namespace "", is always kept)."""
    out: dict[str, list[ObjectState]] = {}
    skipped = 0
    for kind, entries in raw.items():
        states = out.setdefault(kind, [])
        for entry in entries if isinstance(entries, list) else ():
            try:
                state = _object(entry)
            except (TypeError, ValueError):
                skipped += 1
                continue
            if state[1] and namespaces is not None and state[1] not in namespaces:
                skipped += 1
                continue
            states.append(state)
    return out, skipped


class CorruptCheckpoint(ValueError):
    """A file of the checkpoint directory that is JSON but not a checkpoint of any format."""


def _body(text: str | bytes) -> dict[str, Any] | None:
    """The checkpoint's top-level object; None when it is a checkpoint of another format (a newer
    relay's: left for it); `CorruptCheckpoint` (or the decoder's `ValueError`) when it is none."""
    body = loads(text)
    if not isinstance(body, dict):
        raise CorruptCheckpoint(f"a JSON {type(body).__name__}, not an object")
    version = body.get("format")
    if type(version) is not int:
        raise CorruptCheckpoint("no format number")
    if version != FORMAT:
        return None
    if not isinstance(body.get("cluster_id"), str):
        raise CorruptCheckpoint("no cluster_id")
    for key in ("pods", "events"):
        if not isinstance(body.get(key, []), list):
            raise CorruptCheckpoint(f"{key} is not a list")
    if not isinstance(body.get("objects", {}), dict):
        raise CorruptCheckpoint("objects is not an object")
    return body


def decode(
    text: str | bytes, *, cluster_id: str, namespaces: Collection[str] | None, path: Path | None = None
) -> Loaded | None:
    """Parse a checkpoint; None if it is not one of this cluster (or of this format), and
    `CorruptCheckpoint` if it is not a checkpoint at all. Pods and objects outside `namespaces`
    (None: all) and entries that do not parse are skipped and counted."""
    body = _body(text)
    if body is None or body["cluster_id"] != cluster_id:
        return None
    pods: list[tuple[str, Snapshot]] = []
    events: list[tuple[str, int]] = []
    skipped = 0
    for raw in body.get("pods") or []:
        try:
            uid, snapshot = _pod(raw)
        except (TypeError, ValueError):
            skipped += 1
            continue
        if namespaces is not None and snapshot.namespace not in namespaces:
            skipped += 1
            continue
        pods.append((uid, snapshot))
    for raw in body.get("events") or []:
        if isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], str) and type(raw[1]) is int:
            events.append((raw[0], raw[1]))
        else:
            skipped += 1
    objects, skipped_objects = _objects(body.get("objects") or {}, namespaces)
    written_at = str(body.get("written_at"))
    return Loaded(path or Path(), written_at, pods, events, skipped + skipped_objects, objects)


def _set_aside(path: Path, exc: ValueError) -> None:
    """Move a corrupt checkpoint out of the way (`<name>.corrupt`: no longer a `*.json`), so the
    relay starts from a full list now and the file is kept for a look."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except OSError as move_error:
        aside = path
        log.warning("corrupt checkpoint not moved", extra={"path": str(path), "error": str(move_error)[:200]})
    log.error(
        "checkpoint corrupt: moved aside, starting from a full list",
        extra={"path": str(path), "moved_to": str(aside), "error": str(exc)[:200]},
    )


def newest(directory: Path, *, cluster_id: str, namespaces: Collection[str] | None) -> Loaded | None:
    """The most recently written checkpoint of `directory` that belongs to this cluster."""
    try:
        files = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    for path in files:
        try:
            loaded = decode(path.read_bytes(), cluster_id=cluster_id, namespaces=namespaces, path=path)
        except OSError as exc:
            log.warning("checkpoint unreadable: skipped", extra={"path": str(path), "error": str(exc)[:200]})
            continue
        except ValueError as exc:  # not JSON, or JSON that is no checkpoint (CorruptCheckpoint)
            _set_aside(path, exc)
            continue
        if loaded is not None:
            return loaded
    return None


#: What changes whenever the trackers may have: the pods' counters, then per kind its own
Version = tuple[tuple[object, ...], ...]
#: A checkpoint taken, until it is covered: (mark, pods, Event counts, objects by kind, version)
_Taken = tuple[Any, dict[str, Snapshot], dict[str, int], dict[str, list[ObjectState]], Version]


class Checkpointer:
    """Writes the relay's checkpoint every `interval` when something changed and it is covered
    (see the module docstring); `restore` loads the newest one into the relay."""

    def __init__(
        self,
        *,
        relay: Relay,
        progress: Progress,
        directory: str | Path,
        owner: str,
        interval: float = 5.0,
    ) -> None:
        self.relay = relay
        self.progress = progress
        self.directory = Path(directory)
        self.path = self.directory / f"{safe_name(owner)}.json"
        self.interval = interval
        self.stats = CheckpointStats()
        #: the running kinds' relays by `KindSpec.resource` (`objectwatch.ObjectGroup.by_resource`)
        self.objects: Callable[[], dict[str, ObjectRelay]] = dict
        #: objects loaded at start, by kind, until that kind's relay takes them (`restore_objects`)
        self._restored: dict[str, list[ObjectState]] = {}
        self._pending: _Taken | None = None
        self._written_version: Version | None = None
        self._lock = threading.Lock()

    def restore(self, namespaces: Collection[str] | None) -> Loaded | None:
        """Load the newest checkpoint of the directory into the relay (call before any watch)."""
        loaded = newest(self.directory, cluster_id=self.relay.cluster_id, namespaces=namespaces)
        if loaded is None:
            log.info("no checkpoint to restore", extra={"directory": str(self.directory)})
            return None
        self.stats.restored_pods = self.relay.restore(loaded.pods, loaded.events)
        self.stats.restored_events = len(loaded.events)
        self.stats.skipped = loaded.skipped
        self._restored = dict(loaded.objects)
        log.info(
            "checkpoint restored: the first list reports what changed and vanished since",
            extra={
                "path": str(loaded.path),
                "written_at": loaded.written_at,
                "pods": self.stats.restored_pods,
                "events": self.stats.restored_events,
                "objects": sum(map(len, loaded.objects.values())),
                "skipped": loaded.skipped,
            },
        )
        return loaded

    def restore_objects(self, resource: str, relay: ObjectRelay) -> int:
        """Give a kind's relay, before its watcher starts, what the checkpoint loaded at start
        knew of its objects (once: a kind started again later lists from nothing)."""
        with self._lock:
            states = self._restored.pop(resource, [])
        count = relay.restore(states)
        self.stats.restored_objects += count
        return count

    def run(self, stop: threading.Event) -> None:
        """Tick every `interval` until `stop`."""
        while not stop.wait(self.interval):
            self.tick()

    def _version(self) -> Version:
        """Changes whenever what the trackers hold may have changed."""
        s = self.relay.stats
        tracker, events = self.relay.tracker, self.relay.event_tracker
        pods = (s.forwarded, s.synthetic_deleted, tracker.stats.forgotten, len(tracker), len(events))
        kinds = sorted((kind, r.stats.forwarded, len(r)) for kind, r in self.objects().items())
        return (pods, *kinds)

    def _take(self) -> _Taken | None:
        """The trackers' state and a mark. The objects are read first: what they claim was handed
        to the sink before the mark, so the mark's coverage covers them too."""
        version = self._version()
        objects: dict[str, list[ObjectState]] = {}
        for kind, relay in self.objects().items():
            states = relay.memory()
            if states is None:
                return None
            objects[kind] = states
        got = self.relay.memory(self.progress.mark)
        if got is None:
            return None
        mark, pods, events = got
        return mark, pods, events, objects, version

    def tick(self) -> bool:
        """Write the pending checkpoint if it is covered now, else take a new one if anything
        changed since the last write. True when a checkpoint was written."""
        with self._lock:
            if self._pending is None:
                if self._version() == self._written_version:
                    return False
                self._pending = self._take()
                if self._pending is None:
                    return False
            taken, self._pending = self._pending, None
            covered = self.progress.covered(taken[0])
            if not covered:
                # not yet (kept), or leadership changed: the mark means nothing now (dropped)
                self._pending = taken if covered is False else None
                return False
            return self._write(taken)

    def _write(self, taken: _Taken) -> bool:
        _, pods, events, objects, version = taken
        text = encode(self.relay.cluster_id, pods, events, objects).encode()
        temporary = self.path.with_suffix(".tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(text)
            os.replace(temporary, self.path)
        except OSError as exc:
            self.stats.failed += 1
            log.warning("checkpoint not written", extra={"path": str(self.path), "error": str(exc)[:200]})
            with contextlib.suppress(OSError):
                temporary.unlink()
            return False
        self._written_version = version
        self.stats.written += 1
        self.stats.pods = len(pods)
        self.stats.objects = sum(map(len, objects.values()))
        self.stats.bytes = len(text)
        self.stats.written_at = time.monotonic()
        return True

    def final(self, timeout: float = 2.0) -> bool:
        """At a clean stop (the watch stopped, the outbox closed): write what was forwarded last,
        if it is covered within `timeout`. True when written (or nothing changed)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._pending = None
        while True:
            if self.tick() or (self._pending is None and self._version() == self._written_version):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def written_age(stats: CheckpointStats, clock: Callable[[], float] = time.monotonic) -> float | None:
    """Seconds since the last checkpoint was written (None: never)."""
    return None if stats.written_at is None else clock() - stats.written_at
