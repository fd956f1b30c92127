"""`Outbox`: a bounded in-memory buffer, a disk spool and one sender thread in front of a sink.

The watch threads hand envelopes to `Outbox.send` and go back to the stream; the sender thread
sends them to SQS in batches. What happens when SQS is slow or gone:

1. the buffer fills up to `capacity` envelopes;
2. then producers block (**backpressure**: the watch stops reading, TCP holds the API server's
   stream) for at most `backpressure_timeout` seconds per envelope;
3. still full → the envelope goes to the **spool** (JSON lines in segment files under `spool_dir`),
   and so does every later one as long as the spool is not empty: order is kept, because the
   sender empties the buffer before it reads the spool, oldest segment first;
4. when SQS answers again the buffer drains, then the spool is replayed in order, then envelopes
   go through memory again. A spool left by a previous process is replayed at start.

Several processes may share one spool volume (replicas on a ReadWriteMany PVC): each writes only
its own subdirectory (`spool_owner`, the pod name), held with an exclusive `flock` for the life of
the process. A process adopts what gone processes left — subdirectories whose lock is free, and
segments at the top level (a spool without owner) — at start and every `adopt_interval` seconds
while it has nothing to send: their segments are renamed into its own directory, after its own,
and replayed from there. So a replica's spool is never read while it writes it, and nothing a
replica spooled before it died waits for that same pod to come back.

Without a spool directory step 3 does not exist: producers wait as long as it takes.
`close(timeout)` (SIGTERM) stops intake, sends what is buffered within the grace period, and
spools what is left (or counts it as dropped, reason `shutdown`, when there is no spool).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from podwatch_relay.errors import SinkRejected, SinkUnavailable
from podwatch_relay.sink import SendResult, Sink

log = logging.getLogger("podwatch_relay.outbox")

_SEGMENT_BYTES = 8 * 1024 * 1024
#: in each owner's spool directory: the file its process holds an exclusive flock on
_LOCK_NAME = ".owner.lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _try_lock(directory: Path) -> int | None:
    """An fd holding an exclusive flock on `directory`'s lock file (created), or None when another
    open file holds it (its process is alive)."""
    fd = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def safe_name(owner: str) -> str:
    """`owner` (a pod name) as a file name: unusual characters replaced, at most 200."""
    return _UNSAFE.sub("_", owner)[:200] or "relay"


def _own_directory(base: Path, owner: str) -> tuple[Path, int]:
    """`base/<owner>`, locked; `base/<owner>.<pid>` when another live process holds that one."""
    name = safe_name(owner)
    for candidate in (name, f"{name}.{os.getpid()}"):
        directory = base / candidate
        directory.mkdir(parents=True, exist_ok=True)
        fd = _try_lock(directory)
        if fd is not None:
            return directory, fd
    raise RuntimeError(f"spool directory {base / name} and its fallback are both held")


@dataclass(slots=True)
class OutboxStats:
    accepted: int = 0
    sent: int = 0
    spooled: int = 0
    replayed_from_spool: int = 0
    dropped: int = 0
    dropped_reasons: dict[str, int] = field(default_factory=dict)
    #: sink calls that did not get everything accepted (SinkUnavailable / SinkRejected)
    send_failures: int = 0
    #: producers that had to wait for room in the buffer
    backpressure_waits: int = 0

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped += count
        self.dropped_reasons[reason] = self.dropped_reasons.get(reason, 0) + count


class Spool:
    """Envelope bodies on disk, in order: append-only segment files, read oldest first.

    A body is one line (envelopes are compact JSON, without newlines). What was read is only
    deleted once the sink accepted it (`commit`); a crash in between re-sends a few envelopes,
    which the cloud side deduplicates by event_id.

    With an `owner` the segments live in `directory/<owner>` (locked, see the module docstring)
    and `adopt_orphans` takes over what gone owners left; without one, in `directory` itself (a
    spool no other process shares)."""

    def __init__(self, directory: str | Path, *, max_bytes: int, owner: str | None = None) -> None:
        self.base = Path(directory)
        self._lock_fd: int | None = None
        if owner is None:
            self.dir = self.base
            self.dir.mkdir(parents=True, exist_ok=True)
        else:
            self.base.mkdir(parents=True, exist_ok=True)
            self.dir, self._lock_fd = _own_directory(self.base, owner)
        self.max_bytes = max_bytes
        self._segments: deque[Path] = deque(sorted(self.dir.glob("*.jsonl")))
        self._offset = 0  # bytes of the oldest segment already sent
        self.count = 0
        self.bytes = 0
        for segment in self._segments:
            data = segment.read_bytes()
            self.count += data.count(b"\n")
            self.bytes += len(data)
        self._next = int(self._segments[-1].stem) + 1 if self._segments else 0
        self._writer: int | None = None  # fd of the newest segment, when open for appending
        self._writer_bytes = 0
        self.adopted = 0  # bodies taken over from gone owners
        if owner is not None:
            self.adopt_orphans()

    def adopt_orphans(self) -> int:
        """Take over the segments of spools whose process is gone (the top-level segments of an
        ownerless spool, the directories of other owners whose lock is free), after this spool's
        own; returns how many bodies. A no-op for a spool without owner."""
        if self._lock_fd is None:
            return 0
        adopted = 0
        for path in sorted(self.base.glob("*.jsonl")):
            adopted += self._adopt(path)
        with contextlib.suppress(OSError):
            siblings = sorted(p for p in self.base.iterdir() if p.is_dir() and p != self.dir)
            for sibling in siblings:
                if not (sibling / _LOCK_NAME).exists():
                    continue  # not a spool (lost+found on a volume's root, ...)
                fd = _try_lock(sibling)
                if fd is None:
                    continue  # its process is alive: its spool is its own
                try:
                    for path in sorted(sibling.glob("*.jsonl")):
                        adopted += self._adopt(path)
                    (sibling / _LOCK_NAME).unlink(missing_ok=True)
                finally:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    sibling.rmdir()
        if adopted:
            self.adopted += adopted
            log.warning("spool of a gone process adopted", extra={"bodies": adopted, "spool": str(self.dir)})
        return adopted

    def _adopt(self, path: Path) -> int:
        """Rename the segment `path` into this spool, after its newest (another adopter may have
        renamed it first: then 0)."""
        target = self.dir / f"{self._next:012d}.jsonl"
        try:
            data = path.read_bytes()
            os.rename(path, target)
        except FileNotFoundError:
            return 0
        self._next += 1
        if self._writer is not None:  # later bodies go to a segment after the adopted one
            os.close(self._writer)
            self._writer = None
        self._segments.append(target)
        lines = data.count(b"\n")
        self.count += lines
        self.bytes += len(data)
        return lines

    def __len__(self) -> int:
        return self.count

    def append(self, body: str) -> bool:
        """Write one body; False (nothing written) when the spool is full."""
        data = body.encode() + b"\n"
        if self.bytes + len(data) > self.max_bytes:
            return False
        if self._writer is None or self._writer_bytes >= _SEGMENT_BYTES:
            self._roll()
        assert self._writer is not None
        os.write(self._writer, data)
        self._writer_bytes += len(data)
        self.count += 1
        self.bytes += len(data)
        return True

    def _roll(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
        path = self.dir / f"{self._next:012d}.jsonl"
        self._next += 1
        self._writer = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._writer_bytes = 0
        self._segments.append(path)

    def peek(self, limit: int) -> tuple[list[str], int]:
        """Up to `limit` oldest bodies and how many bytes they take (for `commit`)."""
        if not self._segments:
            return [], 0
        with self._segments[0].open("rb") as stream:
            stream.seek(self._offset)
            bodies: list[str] = []
            size = 0
            for raw in stream:
                if not raw.endswith(b"\n"):
                    break  # torn last line of a crashed writer; skipped by commit below
                size += len(raw)
                if raw.strip():
                    bodies.append(raw.decode().rstrip("\n"))
                if len(bodies) >= limit:
                    break
        if not bodies and size == 0:
            self._finish_segment()
            return self.peek(limit) if self._segments else ([], 0)
        return bodies, size

    def commit(self, count: int, size: int) -> None:
        self._offset += size
        self.count -= count
        self.bytes -= size
        if self._offset >= self._segments[0].stat().st_size:
            self._finish_segment()  # read to its end (the writer's own: closed, the next rolls)
        elif self.count == 0 and self._writer is None:
            while self._segments:  # all sent; what is left is the torn last line of a crashed writer
                self._finish_segment()

    def _finish_segment(self) -> None:
        oldest = self._segments.popleft()
        if not self._segments and self._writer is not None:
            os.close(self._writer)
            self._writer = None
        oldest.unlink(missing_ok=True)
        self._offset = 0
        if not self._segments:
            self.count = self.bytes = 0

    def close(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None
        if self._lock_fd is not None:  # what is left is the next owner's to adopt
            os.close(self._lock_fd)
            self._lock_fd = None


class Outbox:
    """Buffers, spools and sends envelope bodies; `send` is what the `Relay` calls."""

    def __init__(
        self,
        *,
        sink: Sink,
        capacity: int = 10_000,
        batch_size: int = 10,
        flush_interval: float = 1.0,
        backpressure_timeout: float = 5.0,
        spool_dir: str | Path | None = None,
        spool_max_bytes: int = 512 * 1024 * 1024,
        spool_owner: str | None = None,
        adopt_interval: float = 30.0,
        retry_seconds: float = 1.0,
        retry_max_seconds: float = 30.0,
    ) -> None:
        if capacity < 1 or batch_size < 1:
            raise ValueError("capacity and batch_size must be >= 1")
        self.sink = sink
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.backpressure_timeout = backpressure_timeout
        self.retry_seconds = retry_seconds
        self.retry_max_seconds = retry_max_seconds
        self.spool = (
            Spool(spool_dir, max_bytes=spool_max_bytes, owner=spool_owner) if spool_dir is not None else None
        )
        self.adopt_interval = adopt_interval
        self._adopted_at = time.monotonic()
        self.stats = OutboxStats()
        self._buffer: deque[str] = deque()
        self._oldest_at = 0.0  # time.monotonic() when the buffer last went from empty to not empty
        self._cond = threading.Condition()
        self._closing = False
        self._closed = threading.Event()
        self._failures = 0
        #: times the buffer became empty (nothing in memory, nothing in flight): see `mark`
        self._emptied = 0
        #: time.monotonic() since which the sink fails, None while it works
        self.failing_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    # ------------------------------------------------------------------ intake (watch threads)

    @property
    def depth(self) -> int:
        return len(self._buffer)

    @property
    def spool_depth(self) -> int:
        return len(self.spool) if self.spool is not None else 0

    def mark(self) -> int:
        """A token for `covered`, taken when some bodies were handed over."""
        with self._cond:
            return self._emptied - (0 if self._buffer else 1)

    def covered(self, mark: int) -> bool:
        """Whether every body handed over before `mark` was taken has left memory since: sent,
        spooled or dropped for its own fault (the buffer was empty at some moment after)."""
        with self._cond:
            return self._emptied > mark

    def send(self, bodies: Sequence[str]) -> SendResult:
        """Accept bodies for sending (blocks while the buffer is full, see the module docstring)."""
        result = SendResult()
        for body in bodies:
            reason = self._put(body)
            if reason is None:
                result.queued += 1
            else:
                result.drop(reason)
        return result

    def _put(self, body: str) -> str | None:
        with self._cond:
            self.stats.accepted += 1
            if self._closing:
                return self._spool_or_drop(body, "shutdown")
            if self.spool is not None and len(self.spool):
                return self._spool_or_drop(body, "spool_full")
            if len(self._buffer) >= self.capacity:
                self.stats.backpressure_waits += 1
                deadline = time.monotonic() + self.backpressure_timeout
                while len(self._buffer) >= self.capacity and not self._closing:
                    remaining = deadline - time.monotonic()
                    if self.spool is not None and remaining <= 0:
                        log.warning("buffer full: spooling to disk", extra={"buffered": len(self._buffer)})
                        return self._spool_or_drop(body, "spool_full")
                    self._cond.wait(timeout=remaining if self.spool is not None else 1.0)
                if self._closing:
                    return self._spool_or_drop(body, "shutdown")
            if not self._buffer:
                self._oldest_at = time.monotonic()
            self._buffer.append(body)
            self._cond.notify_all()
            return None

    def _spool_or_drop(self, body: str, reason: str) -> str | None:
        if self.spool is not None and self.spool.append(body):
            self.stats.spooled += 1
            self._cond.notify_all()
            return None
        self.stats.drop(reason)
        log.error("envelope dropped", extra={"reason": reason, "body_prefix": body[:200]})
        return reason

    # ------------------------------------------------------------------ sender thread

    def start(self) -> Outbox:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            with self._cond:
                batch, from_spool, size = self._next_batch()
                if batch is None:
                    return
            if batch and not self._deliver(batch, from_spool=from_spool, size=size):
                self._closed.wait(self._retry_delay())

    def _next_batch(self) -> tuple[list[str] | None, bool, int]:
        """Under the lock: what to send next (waiting for it), or None when closed and empty."""
        while True:
            if self._buffer:
                ready = (
                    len(self._buffer) >= self.batch_size
                    or self._closing
                    or time.monotonic() - self._oldest_at >= self.flush_interval
                )
                if ready:
                    return [self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))], False, 0
                self._cond.wait(timeout=max(0.0, self._oldest_at + self.flush_interval - time.monotonic()))
                continue
            if self._closing:
                return None, False, 0
            if self.spool is not None and len(self.spool):
                bodies, size = self.spool.peek(self.batch_size)
                if bodies:
                    return bodies, True, size
            if self.spool is not None and time.monotonic() - self._adopted_at >= self.adopt_interval:
                self._adopted_at = time.monotonic()
                if self.spool.adopt_orphans():
                    continue
            self._cond.wait(timeout=min(1.0, self.adopt_interval))

    def _deliver(self, batch: list[str], *, from_spool: bool, size: int) -> bool:
        """Send one batch; True when every body is settled (sent or dropped for its own fault)."""
        try:
            result = self.sink.send(batch)
            unsent: list[str] = []
        except (SinkUnavailable, SinkRejected) as exc:
            result = exc.result if isinstance(exc.result, SendResult) else SendResult()
            unsent = list(exc.pending)
            self.stats.send_failures += 1
            self._failures += 1
            if self.failing_since is None:
                self.failing_since = time.monotonic()
            log.warning(
                "sink failed; envelopes kept",
                extra={"error": str(exc), "reason": exc.reason, "unsent": len(unsent), "spool": from_spool},
            )
        with self._cond:
            self.stats.sent += result.sent
            for reason, count in result.dropped_reasons.items():
                self.stats.drop(reason, count)
            if self._closed.is_set() and not from_spool:
                pass  # close() gave up waiting and already spooled the buffer: nothing to undo
            elif from_spool:
                assert self.spool is not None
                if not unsent:
                    self.spool.commit(len(batch), size)
                    self.stats.replayed_from_spool += len(batch)
                # else: nothing committed; the whole batch is read again (accepted ones re-sent:
                # duplicates the cloud side drops by event_id, never a loss)
            else:
                for _ in batch:
                    self._buffer.popleft()
                self._buffer.extendleft(reversed(unsent))
                if not self._buffer:
                    self._emptied += 1
                if self._buffer:
                    self._oldest_at = min(self._oldest_at, time.monotonic()) if unsent else time.monotonic()
            self._cond.notify_all()
        if not unsent:
            self._failures = 0
            self.failing_since = None
            return True
        return False

    def _retry_delay(self) -> float:
        base = min(self.retry_max_seconds, self.retry_seconds * 2.0 ** max(0, self._failures - 1))
        return base * (0.5 + random.random() / 2)

    # ------------------------------------------------------------------ shutdown

    def flush(self, timeout: float) -> bool:
        """Wait until the buffer is empty (not the spool); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._oldest_at = 0.0  # whatever is buffered is due now
            self._cond.notify_all()
            while self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(timeout=min(remaining, 0.1))
        return True

    def close(self, timeout: float) -> bool:
        """Stop intake, send what is buffered within `timeout`, spool (or drop) the rest.
        True when the buffer was fully sent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=max(0.0, timeout)) if self._thread.is_alive() else None
        self._closed.set()  # cut a retry wait short
        with self._cond:
            drained = not self._buffer
            leftover = list(self._buffer)
            self._buffer.clear()
            lost = sum(self._spool_or_drop(body, "shutdown") is not None for body in leftover)
            if not lost:  # all on disk: covered (see `covered`)
                self._emptied += 1
            if leftover:
                log.warning(
                    "shutdown before the buffer was sent",
                    extra={"left": len(leftover), "spooled": self.spool is not None},
                )
            if self.spool is not None:
                self.spool.close()
        return drained
