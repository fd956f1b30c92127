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

Without a spool directory step 3 does not exist: producers wait as long as it takes.
`close(timeout)` (SIGTERM) stops intake, sends what is buffered within the grace period, and
spools what is left (or counts it as dropped, reason `shutdown`, when there is no spool).
"""

from __future__ import annotations

import logging
import os
import random
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
    which the cloud side deduplicates by event_id."""

    def __init__(self, directory: str | Path, *, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
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
        oldest = self._segments[0]
        if self._offset >= oldest.stat().st_size and (len(self._segments) > 1 or self._writer is not None):
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
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes) if spool_dir is not None else None
        self.stats = OutboxStats()
        self._buffer: deque[str] = deque()
        self._oldest_at = 0.0  # time.monotonic() when the buffer last went from empty to not empty
        self._cond = threading.Condition()
        self._closing = False
        self._closed = threading.Event()
        self._failures = 0
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
            self._cond.wait(timeout=1.0)

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
            for body in leftover:
                self._spool_or_drop(body, "shutdown")
            if leftover:
                log.warning(
                    "shutdown before the buffer was sent",
                    extra={"left": len(leftover), "spooled": self.spool is not None},
                )
            if self.spool is not None:
                self.spool.close()
        return drained
