"""The relay's checkpoint: what it last forwarded (each pod's compact state, each Event's count),
kept on the spool volume so that a process restarted there still reports what happened while it
was down: the first list diffs against it (changes go out with their transitions, `reconcile`
sends a DELETED for every pod gone meanwhile) instead of re-forwarding every pod as initial sync.

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
See docs/internals.md ("Relay failover") for how it and the standby's hold window share the work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from podwatch_relay._json import dumps, loads
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
    #: pods and bytes of the last checkpoint written
    pods: int = 0
    bytes: int = 0
    #: time.monotonic() of the last write (None: none yet)
    written_at: float | None = None
    #: from the checkpoint loaded at start
    restored_pods: int = 0
    restored_events: int = 0
    #: entries of it skipped (not parsable, or a namespace not watched)
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class Loaded:
    """A checkpoint read back: its file, when it was written, its pods and Event counts."""

    path: Path
    written_at: str
    pods: list[tuple[str, Snapshot]]
    events: list[tuple[str, int]]
    skipped: int


def encode(cluster_id: str, pods: dict[str, Snapshot], events: dict[str, int]) -> str:
    """The checkpoint's text: pods as `[uid, namespace, name, phase, reason, terminating,
    [[type, status], ...], [container, ...]]`, Events as `[uid, count]`."""
    return dumps(
        {
            "format": FORMAT,
            "cluster_id": cluster_id,
            "written_at": datetime.now(UTC).isoformat(),
            "pods": [[uid, *snapshot] for uid, snapshot in pods.items()],
            "events": list(events.items()),
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
    return body


def decode(
    text: str | bytes, *, cluster_id: str, namespaces: Collection[str] | None, path: Path | None = None
) -> Loaded | None:
    """Parse a checkpoint; None if it is not one of this cluster (or of this format), and
    `CorruptCheckpoint` if it is not a checkpoint at all. Pods outside `namespaces` (None: all)
    and entries that do not parse are skipped and counted."""
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
    return Loaded(path or Path(), str(body.get("written_at")), pods, events, skipped)


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
        self._pending: tuple[Any, dict[str, Snapshot], dict[str, int], tuple[int, ...]] | None = None
        self._written_version: tuple[int, ...] | None = None
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
        log.info(
            "checkpoint restored: the first list reports what changed and vanished since",
            extra={
                "path": str(loaded.path),
                "written_at": loaded.written_at,
                "pods": self.stats.restored_pods,
                "events": self.stats.restored_events,
                "skipped": loaded.skipped,
            },
        )
        return loaded

    def run(self, stop: threading.Event) -> None:
        """Tick every `interval` until `stop`."""
        while not stop.wait(self.interval):
            self.tick()

    def _version(self) -> tuple[int, ...]:
        """Changes whenever what the trackers hold may have changed."""
        s = self.relay.stats
        tracker, events = self.relay.tracker, self.relay.event_tracker
        return (s.forwarded, s.synthetic_deleted, tracker.stats.forgotten, len(tracker), len(events))

    def tick(self) -> bool:
        """Write the pending checkpoint if it is covered now, else take a new one if anything
        changed since the last write. True when a checkpoint was written."""
        with self._lock:
            if self._pending is None:
                version = self._version()
                if version == self._written_version:
                    return False
                got = self.relay.memory(self.progress.mark)
                if got is None:
                    return False
                self._pending = (*got, version)
            mark, pods, events, version = self._pending
            covered = self.progress.covered(mark)
            if covered is None:
                self._pending = None  # leadership changed: the mark means nothing now
                return False
            if not covered:
                return False
            self._pending = None
            return self._write(pods, events, version)

    def _write(self, pods: dict[str, Snapshot], events: dict[str, int], version: tuple[int, ...]) -> bool:
        text = encode(self.relay.cluster_id, pods, events).encode()
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
