"""`Relay`: one parsed watch event in, an outcome label out; envelopes go to the sink in batches.

Both the live watch (`watch`) and the replay (`replay`) feed `Relay.handle` (or `handle_line`),
so everything from the parsed watch event on is the same code. Outcome labels:

* `forwarded`                 an envelope was queued for the sink
* `suppressed`                a pod/event that did not change in a way that matters (or a healthy pod
                              during initial sync when `initial_sync_mode="troubled"`)
* `bookmark`                  a BOOKMARK (it only advances the watch's resourceVersion)
* `relist`                    an ERROR event with 410 Gone: the watch loop must relist
* `error:<code>`              any other ERROR event (counted)
* `skipped:<why>`             valid input that is not ours (`kind-ConfigMap`, `not-a-pod-event`, ...)
* `malformed:<why>`           input that is broken (`json`, `unknown-type`, `pod-without-uid`, ...)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from podwatch import ids
from podwatch.models import (
    EnrollEnvelope,
    EnrollPayload,
    KubeEvent,
    KubeEventEnvelope,
    PodEnvelope,
    PodEvent,
    WatchType,
    utcnow,
)
from podwatch.wire import encode_envelope
from podwatch_relay.errors import BadWatchEvent, SinkRejected, SinkUnavailable
from podwatch_relay.projection import project_event, project_pod
from podwatch_relay.sink import SendResult, Sink
from podwatch_relay.state import EventTracker, PodTracker, is_troubled

log = logging.getLogger("podwatch_relay.pipeline")

WATCH_TYPES: frozenset[str] = frozenset({"ADDED", "MODIFIED", "DELETED"})
InitialSyncMode = Literal["all", "troubled"]


@dataclass(slots=True)
class RelayStats:
    """Counters of everything the relay saw. Every input event lands in exactly one of
    forwarded / suppressed / bookmarks / skipped / malformed / errors."""

    input_events: int = 0
    forwarded: int = 0
    suppressed: int = 0
    bookmarks: int = 0
    skipped: int = 0
    malformed: int = 0
    errors: int = 0
    relists_requested: int = 0
    #: what the sink did with the forwarded envelopes
    sent: int = 0
    dropped: int = 0
    dropped_reasons: dict[str, int] = field(default_factory=dict)
    #: envelopes handed to the sink, by kind (pod, k8s_event, enroll)
    by_kind: dict[str, int] = field(default_factory=dict)
    #: every outcome label with its count (`skipped:kind-ConfigMap`, `malformed:json`, ...)
    outcomes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_watch_line(line: str | bytes) -> dict[str, Any]:
    """One line of a watch stream → the watch event dict, or `BadWatchEvent`."""
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadWatchEvent(f"line is not JSON: {exc}", reason="json") from exc
    if not isinstance(event, dict):
        raise BadWatchEvent(f"line is a JSON {type(event).__name__}, not an object", reason="not-an-object")
    return event


def resource_version_of(watch_event: dict[str, Any]) -> str | None:
    """The resourceVersion a watch event carries (ADDED/MODIFIED/DELETED/BOOKMARK), if any."""
    obj = watch_event.get("object")
    if not isinstance(obj, dict):
        return None
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return rv if isinstance(rv, str) and rv else None


class Relay:
    """Projects, diffs and forwards watch events. Thread-safe: watch threads share one relay."""

    def __init__(
        self,
        *,
        sink: Sink,
        cluster_id: str,
        relay_version: str,
        tracker: PodTracker | None = None,
        event_tracker: EventTracker | None = None,
        initial_sync_mode: InitialSyncMode = "all",
        batch_size: int = 10,
        namespaces: str = "*",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.sink = sink
        self.cluster_id = cluster_id
        self.relay_version = relay_version
        self.tracker = tracker if tracker is not None else PodTracker()
        self.event_tracker = event_tracker if event_tracker is not None else EventTracker()
        self.initial_sync_mode: InitialSyncMode = initial_sync_mode
        self.namespaces = namespaces
        self.stats = RelayStats()
        self._batch_size = batch_size
        self._clock = clock
        self._pending: list[str] = []  # envelope bodies, in order
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ input

    def handle_line(self, line: str | bytes, *, initial_sync: bool = False) -> str:
        """Parse one stream line and handle it. Malformed lines are logged, counted and skipped;
        blank lines are ignored (not counted). Never raises for bad input."""
        if not line.strip():
            return "ignored:blank"
        try:
            event = parse_watch_line(line)
        except BadWatchEvent as exc:
            return self.note_malformed(exc, line)
        return self.handle(event, initial_sync=initial_sync)

    def handle(self, watch_event: Any, *, initial_sync: bool = False) -> str:
        """Handle one parsed watch event; returns its outcome label (see the module docstring).

        Raises only if the sink fails while flushing a full batch (`SinkUnavailable`,
        `SinkRejected`); the unsent envelopes stay queued for the next flush."""
        with self._lock:
            self.stats.input_events += 1
            try:
                outcome = self._handle(watch_event, initial_sync=initial_sync)
            except BadWatchEvent as exc:
                return self._malformed(exc, watch_event)
            self._count(outcome)
            if outcome == "forwarded" and len(self._pending) >= self._batch_size:
                self.flush()
            return outcome

    def note_malformed(self, exc: BadWatchEvent, raw: object) -> str:
        """Count and log one bad input line (the watch loop parses lines itself, then calls this)."""
        with self._lock:
            self.stats.input_events += 1
            return self._malformed(exc, raw)

    def _malformed(self, exc: BadWatchEvent, raw: object) -> str:
        with self._lock:
            outcome = f"malformed:{exc.reason}"
            self._count(outcome)
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            log.warning(
                "skipped malformed watch input: %s",
                exc,
                extra={"outcome": outcome, "input_prefix": text[:200]},
            )
            return outcome

    def _count(self, outcome: str) -> None:
        s = self.stats
        s.outcomes[outcome] = s.outcomes.get(outcome, 0) + 1
        group = outcome.split(":", 1)[0]
        if group == "forwarded":
            s.forwarded += 1
        elif group == "suppressed":
            s.suppressed += 1
        elif group == "bookmark":
            s.bookmarks += 1
        elif group == "skipped":
            s.skipped += 1
        elif group == "malformed":
            s.malformed += 1
        elif group in {"error", "relist"}:
            s.errors += 1
            if group == "relist":
                s.relists_requested += 1

    def _handle(self, watch_event: Any, *, initial_sync: bool) -> str:
        if not isinstance(watch_event, dict):
            raise BadWatchEvent("watch event is not a JSON object", reason="not-an-object")
        watch_type = watch_event.get("type")
        if not isinstance(watch_type, str):
            raise BadWatchEvent("watch event without a type", reason="missing-type")
        obj = watch_event.get("object")
        if watch_type == "BOOKMARK":
            return "bookmark"
        if watch_type == "ERROR":
            return self._error(obj)
        if watch_type not in WATCH_TYPES:
            raise BadWatchEvent(f"unknown watch event type {watch_type!r}", reason="unknown-type")
        if not isinstance(obj, dict):
            raise BadWatchEvent(f"{watch_type} event without an object", reason="missing-object")
        kind = obj.get("kind")
        wtype: WatchType = watch_type  # type: ignore[assignment]  # checked against WATCH_TYPES above
        if kind == "Pod":
            return self._pod(obj, wtype, initial_sync)
        if kind == "Event":
            return self._event(obj, wtype, initial_sync)
        return f"skipped:kind-{kind}" if isinstance(kind, str) and kind else "skipped:kind-missing"

    def _error(self, obj: Any) -> str:
        status = obj if isinstance(obj, dict) else {}
        code = status.get("code")
        log.warning(
            "watch stream reported an error",
            extra={"code": code, "reason": status.get("reason"), "detail": status.get("message")},
        )
        return "relist" if code == 410 else f"error:{code if isinstance(code, int) else 'unknown'}"

    def _pod(self, obj: dict[str, Any], watch_type: WatchType, initial_sync: bool) -> str:
        projected = project_pod(
            obj, watch_type=watch_type, initial_sync=initial_sync, observed_at=self._clock()
        )
        event = self.tracker.observe(projected)
        if event is None:
            return "suppressed"
        if initial_sync and self.initial_sync_mode == "troubled" and not is_troubled(event):
            return "suppressed"
        self._queue_pod(event)
        return "forwarded"

    def _event(self, obj: dict[str, Any], watch_type: WatchType, initial_sync: bool) -> str:
        if watch_type == "DELETED":
            # Events are deleted when their TTL (1 h) expires: housekeeping, not news. Forwarding it
            # would repeat the event_id of the occurrence already sent.
            projected = project_event(obj, watch_type=watch_type)
            if projected is not None:
                self.event_tracker.observe(projected)
            return "skipped:event-deleted"
        kube_event = project_event(
            obj, watch_type=watch_type, initial_sync=initial_sync, observed_at=self._clock()
        )
        if kube_event is None:
            return "skipped:not-a-pod-event"
        if initial_sync and self.initial_sync_mode == "troubled" and kube_event.type != "Warning":
            self.event_tracker.observe(kube_event)
            return "suppressed"
        if self.event_tracker.observe(kube_event) is None:
            return "suppressed"
        self._queue_event(kube_event)
        return "forwarded"

    # ------------------------------------------------------------------ output

    def _queue_pod(self, event: PodEvent) -> None:
        envelope = PodEnvelope(
            event_id=ids.pod_event_id(self.cluster_id, event.uid, event.resource_version, event.watch_type),
            cluster_id=self.cluster_id,
            relay_version=self.relay_version,
            sent_at=self._clock(),
            payload=event,
        )
        self._enqueue("pod", encode_envelope(envelope))

    def _queue_event(self, event: KubeEvent) -> None:
        envelope = KubeEventEnvelope(
            event_id=ids.kube_event_id(self.cluster_id, event.uid, event.count),
            cluster_id=self.cluster_id,
            relay_version=self.relay_version,
            sent_at=self._clock(),
            payload=event,
        )
        self._enqueue("k8s_event", encode_envelope(envelope))

    def _enqueue(self, kind: str, body: str) -> None:
        self._pending.append(body)
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1

    def enroll(self, *, kubernetes_version: str | None = None, started_at: datetime | None = None) -> None:
        """Send the EnrollEnvelope (once per relay start) and flush it right away."""
        started = started_at or self._clock()
        envelope = EnrollEnvelope(
            event_id=ids.control_event_id("enroll", self.cluster_id, self.relay_version, started.isoformat()),
            cluster_id=self.cluster_id,
            relay_version=self.relay_version,
            sent_at=self._clock(),
            payload=EnrollPayload(
                relay_version=self.relay_version,
                namespaces=self.namespaces,
                started_at=started,
                kubernetes_version=kubernetes_version,
            ),
        )
        with self._lock:
            self._enqueue("enroll", encode_envelope(envelope))
            self.flush()

    @property
    def pending(self) -> int:
        """Envelopes queued and not yet accepted by the sink."""
        return len(self._pending)

    def flush(self) -> SendResult:
        """Send everything queued. On `SinkUnavailable`/`SinkRejected` the bodies not accepted stay
        queued (in order) for the next flush, and the error propagates to the caller."""
        with self._lock:
            if not self._pending:
                return SendResult()
            batch, self._pending = self._pending, []
            try:
                result = self.sink.send(batch)
            except (SinkUnavailable, SinkRejected) as exc:
                if exc.result is not None:
                    self._account(exc.result)
                self._pending = list(exc.pending) + self._pending
                raise
            self._account(result)
            return result

    def _account(self, result: SendResult) -> None:
        s = self.stats
        s.sent += result.sent
        s.dropped += result.dropped
        for reason, count in result.dropped_reasons.items():
            s.dropped_reasons[reason] = s.dropped_reasons.get(reason, 0) + count
