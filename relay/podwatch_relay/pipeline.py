"""`Relay`: one parsed watch event in, an outcome label out; envelopes go to the sink in batches.

Both the live watch (`watch`) and the replay (`replay`) feed `Relay.handle` (or `handle_line`),
so everything from the parsed watch event on is the same code. Outcome labels:

* `forwarded`                 an envelope was queued for the sink
* `suppressed`                a pod/event that did not change in a way that matters (or a healthy pod
                              during initial sync when `initial_sync_mode="troubled"`)
* `bookmark`                  a BOOKMARK (it only advances the watch's resourceVersion)
* `relist`                    an ERROR event with 410 Gone: the watch loop must relist
* `error:<code>`              any other ERROR event (counted); `error:unknown` if its Status has no
                              integer code (`watchline.stream_outcome`, shared by every consumer)
* `skipped:<why>`             valid input that is not ours (`kind-ConfigMap`, `not-a-pod-event`, ...)
* `malformed:<why>`           input that is broken (`json`, `invalid-utf8`, `too-deep`,
                              `lone-surrogate`, `huge-number`, `nan`, `unknown-type`,
                              `pod-without-uid`, ...), or `unexpected`: handling it raised an error
                              nothing expected (logged with its traceback); the stream goes on
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from podwatch.models import WatchType, utcnow
from podwatch_relay import envelopes, fastpath
from podwatch_relay.batch import Batch
from podwatch_relay.deadlines import Deadlines
from podwatch_relay.errors import BadWatchEvent, SinkRejected, SinkUnavailable
from podwatch_relay.projection import (
    StatusParts,
    parts_troubled,
    pod_identity,
    pod_payload,
    pod_terminating,
    project_event,
    typed_pod_payload,
    vanished_payload,
)
from podwatch_relay.redact import DEFAULT_LABEL_KEYS, LabelAllowlist
from podwatch_relay.sink import SendResult, Sink
from podwatch_relay.snapshot import Snapshot, snapshot_raw
from podwatch_relay.state import (
    Change,
    EventTracker,
    PodTracker,
    StatusHash,
    change_payload,
    payload_troubled,
)
from podwatch_relay.timetext import now_text, time_text
from podwatch_relay.watchline import (
    LineResult,
    OutcomeCounts,
    consume_line,
    count_malformed,
    count_unexpected,
    stream_outcome,
)

log = logging.getLogger("podwatch_relay.pipeline")

WATCH_TYPES: frozenset[str] = frozenset({"ADDED", "MODIFIED", "DELETED"})
InitialSyncMode = Literal["all", "troubled"]
#: distinct (type, reason) pairs of core/v1 Events counted by name; the rest count as `other`
MAX_EVENT_REASONS = 500

#: The JSON transitions of recent diffs (the replicas of a workload change alike), bounded.
_TRANSITIONS: dict[tuple[Change, ...], list[dict[str, Any]]] = {}


#: `LineResult(*fields)` without the NamedTuple's Python-level `__new__` (the fast path's)
_line_result = tuple.__new__


@dataclass(slots=True)
class RelayStats(OutcomeCounts):
    """Counters of everything the relay saw: by outcome (`OutcomeCounts`), and these."""

    #: synthetic DELETED envelopes for pods gone while the relay was not watching (relist) or
    #: replaced by a new uid under the same name
    synthetic_deleted: int = 0
    #: waiting pods forwarded again when their threshold passed, with no watch line (`deadlines`)
    overdue: int = 0
    #: lines suppressed by the fast path (no projection needed), a subset of `suppressed`
    fast_suppressed: int = 0
    #: envelopes accepted by a buffering sink (sent later, by it)
    queued: int = 0
    heartbeats: int = 0
    #: watch events seen, by `Kind/TYPE` (`Pod/MODIFIED`, `Event/ADDED`, `Pod/BOOKMARK`, ...)
    seen: dict[str, int] = field(default_factory=dict)
    #: core/v1 Events about pods seen (not DELETED), by `type/reason` (`Warning/BackOff`, ...)
    event_reasons: dict[str, int] = field(default_factory=dict)
    #: what the sink did with the forwarded envelopes
    sent: int = 0
    dropped: int = 0
    dropped_reasons: dict[str, int] = field(default_factory=dict)
    #: envelopes handed to the sink, by kind (pod, k8s_event, enroll)
    by_kind: dict[str, int] = field(default_factory=dict)
    #: forwarded envelopes over the message limit: trimmed to fit, or sent as an `oversize` stub
    trimmed: int = 0
    oversize: int = 0


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
        deadlines: Deadlines | None = None,
        label_keys: Iterable[str] = DEFAULT_LABEL_KEYS,
        event_kinds: Iterable[str] = ("Pod",),
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 1 <= len(cluster_id) <= 128:  # the envelope's bound: bodies are built without models
            raise ValueError("cluster_id must have 1 to 128 characters")
        self.sink = sink
        self.cluster_id = cluster_id
        self.relay_version = relay_version
        self.tracker = tracker if tracker is not None else PodTracker()
        self.event_tracker = event_tracker if event_tracker is not None else EventTracker()
        self.initial_sync_mode: InitialSyncMode = initial_sync_mode
        self.namespaces = namespaces
        #: which pod labels are forwarded: `label_keys` (the project/workload id keys) and the well-known
        self.allowlist = LabelAllowlist(label_keys)
        #: Events about these kinds are forwarded (Pod; and, for the history, the other watched kinds)
        self.event_kinds = frozenset(event_kinds) | {"Pod"}
        self.stats = RelayStats()
        #: waiting pods to forward again when their threshold passes (None: never)
        self.deadlines = deadlines
        #: pods restored from a checkpoint whose wait (`deadlines`) no list has followed yet
        self._unfollowed: set[str] = set()
        self._batch_size = batch_size
        self._clock = clock
        #: `time_text(clock())`, by a cheaper way for the default clock
        self._now_text: Callable[[], str] = now_text if clock is utcnow else lambda: time_text(clock())
        #: envelope bodies not yet handed to the sink, in order (`batch.Batch`)
        self._pending = Batch(self.stats)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ input

    def handle_line(self, line: str | bytes, *, initial_sync: bool = False) -> str:
        """Parse one stream line and handle it. Malformed lines are logged, counted and skipped;
        blank lines are ignored (not counted). Never raises for bad input."""
        return self.process_line(line, initial_sync=initial_sync).outcome

    def process_line(self, line: str | bytes, *, initial_sync: bool = False) -> LineResult:
        """`handle_line`, also returning the resourceVersion the line carried (the watch loop
        advances its version with it). A Pod line in the API server's canonical layout takes the
        fast path (`fastpath`, specified in docs/internals.md "The relay's fast path"): compared
        as bytes with the tracker, decoded only in part; anything else, or any doubt, is read as
        every watch consumer reads a line (`watchline.consume_line`), which gives the same result.
        The fast path is tried here, not as consume_line's `fast`: two calls less for most of the
        relay's lines."""
        raw = line.encode(errors="surrogatepass") if isinstance(line, str) else line
        head = fastpath.HEAD.match(raw)
        if head is not None:
            try:
                fast = self._fast_pod(raw, head, initial_sync)
            except UnicodeDecodeError:
                fast = None  # invalid UTF-8 in the head (checked before any change): the full path says so
            except (SinkUnavailable, SinkRejected):
                raise
            except Exception as exc:  # noqa: BLE001  # a bug must cost one line, never the watch
                return LineResult(self.note_unexpected(exc, raw), None)
            if fast is not None:
                return fast
        return consume_line(self, raw, initial_sync=initial_sync)

    def _fast_pod(self, line: bytes, head: re.Match[bytes], initial_sync: bool) -> LineResult | None:
        """One Pod line on the fast path (`fastpath`); None: take the full path."""
        with self._lock:
            pod = fastpath.read_line(line, head, self.tracker.record)
            if pod is None:
                return None
            if isinstance(pod, fastpath.PodLine):
                return self._fast_changed(pod, initial_sync)
            stats = self.stats
            stats.input_events += 1
            stats.fast_suppressed += 1
            stats.suppressed += 1
            seen, key = stats.seen, pod.seen_key
            seen[key] = seen.get(key, 0) + 1
            outcomes = stats.outcomes
            outcomes["suppressed"] = outcomes.get("suppressed", 0) + 1
        return _line_result(LineResult, ("suppressed", pod.resource_version))

    def _fast_changed(self, pod: fastpath.PodLine, initial_sync: bool) -> LineResult:
        """A pod that matters (new, changed, being deleted or deleted) on the fast path (under the
        lock): its payload built from the parts `fastpath.read_line` read, diffed and maybe queued."""
        watch_type, seen_key, parts, snapshot = pod.watch_type, pod.seen_key, pod.parts, pod.snapshot
        payload = typed_pod_payload(
            pod.meta,
            pod.node,
            parts,
            watch_type=watch_type,
            initial_sync=initial_sync,
            observed_at=self._now_text(),
            allowlist=self.allowlist,
        )
        outcome = self._observe_pod(payload, snapshot, watch_type, initial_sync, pod.status_hash, parts)
        stats = self.stats
        stats.input_events += 1
        seen = stats.seen
        seen[seen_key] = seen.get(seen_key, 0) + 1
        outcomes = stats.outcomes  # `_count`, for the two outcomes of `_observe_pod`
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "forwarded":
            stats.forwarded += 1
            if len(self._pending) >= self._batch_size:
                self.flush()
        else:
            stats.suppressed += 1
        return _line_result(LineResult, (outcome, pod.resource_version))

    def handle(self, watch_event: Any, *, initial_sync: bool = False) -> str:
        """Handle one parsed watch event; returns its outcome label (see the module docstring).

        Raises only if the sink fails while flushing a full batch (`SinkUnavailable`,
        `SinkRejected`); the unsent envelopes stay queued for the next flush."""
        with self._lock:
            self.stats.input_events += 1
            try:
                outcome = self._handle(watch_event, initial_sync=initial_sync)
            except BadWatchEvent as exc:
                return count_malformed(self.stats, exc, watch_event)
            except Exception as exc:  # noqa: BLE001  # a bug must cost one event, never the watch
                return count_unexpected(self.stats, exc, watch_event)
            self.stats.count(outcome)
            if outcome == "forwarded" and len(self._pending) >= self._batch_size:
                self.flush()
            return outcome

    def note_malformed(self, exc: BadWatchEvent, raw: object) -> str:
        """Count and log one line that is not a watch event (`process_line` parsed it)."""
        with self._lock:
            self.stats.input_events += 1
            return count_malformed(self.stats, exc, raw)

    def note_unexpected(self, exc: Exception, raw: object) -> str:
        """Count and log one input line whose handling failed in a way nothing expected (a bug, or
        input nobody thought of): `malformed:unexpected`, with the error and its traceback logged."""
        with self._lock:
            self.stats.input_events += 1
            return count_unexpected(self.stats, exc, raw)

    def _handle(self, watch_event: Any, *, initial_sync: bool) -> str:
        if not isinstance(watch_event, dict):
            raise BadWatchEvent("watch event is not a JSON object", reason="not-an-object")
        watch_type = watch_event.get("type")
        if not isinstance(watch_type, str):
            raise BadWatchEvent("watch event without a type", reason="missing-type")
        obj = watch_event.get("object")
        kind = obj.get("kind") if isinstance(obj, dict) else None
        seen = f"{kind if isinstance(kind, str) and kind else '-'}/{watch_type}"
        self.stats.seen[seen] = self.stats.seen.get(seen, 0) + 1
        outcome = stream_outcome(watch_type, obj)
        if outcome is not None:
            if watch_type == "ERROR":
                _log_error(obj)
            return outcome
        if watch_type not in WATCH_TYPES:
            raise BadWatchEvent(f"unknown watch event type {watch_type!r}", reason="unknown-type")
        if not isinstance(obj, dict):
            raise BadWatchEvent(f"{watch_type} event without an object", reason="missing-object")
        wtype: WatchType = watch_type  # type: ignore[assignment]  # checked against WATCH_TYPES above
        if kind == "Pod":
            return self._pod(obj, wtype, initial_sync)
        if kind == "Event":
            return self._event(obj, wtype, initial_sync)
        return f"skipped:kind-{kind}" if isinstance(kind, str) and kind else "skipped:kind-missing"

    def _pod(self, obj: dict[str, Any], watch_type: WatchType, initial_sync: bool) -> str:
        spec = obj.get("spec")
        node = spec.get("nodeName") if isinstance(spec, dict) else None
        return self._pod_parts(obj.get("metadata"), node, obj.get("status"), watch_type, initial_sync)

    def _pod_parts(
        self,
        meta: Any,
        node: Any,
        status: Any,
        watch_type: WatchType,
        initial_sync: bool,
        *,
        snapshot: Snapshot | None = None,
        status_hash: StatusHash | None = None,
    ) -> str:
        """Project, diff and maybe forward one pod given by its parts (see `pod_payload`).
        `snapshot` is the pod's compact form when the caller has it (not being deleted)."""
        if snapshot is None:
            namespace, name, _ = pod_identity(meta)
            snapshot = snapshot_raw(namespace, name, pod_terminating(meta), status)
        payload = pod_payload(
            meta,
            node,
            status,
            containers=snapshot.containers,
            watch_type=watch_type,
            initial_sync=initial_sync,
            observed_at=self._now_text(),
            allowlist=self.allowlist,
        )
        return self._observe_pod(payload, snapshot, watch_type, initial_sync, status_hash)

    def _observe_pod(
        self,
        payload: dict[str, Any],
        snapshot: Snapshot,
        watch_type: WatchType,
        initial_sync: bool,
        status_hash: StatusHash | None,
        parts: StatusParts | None = None,
    ) -> Literal["forwarded", "suppressed"]:
        """Diff one projected pod (its `pod_payload` and its snapshot) and forward it if it matters.
        `parts`: those of a `typed_pod_payload` (its containers are encoded)."""
        uid, namespace, name = payload["uid"], payload["namespace"], payload["name"]
        if watch_type != "DELETED":
            previous = self.tracker.uid_of(namespace, name)
            if previous is not None and previous != uid:
                # Recreated under the same name while the relay did not see the DELETED (relist):
                # the old pod's end first, then the new pod.
                self._vanished(previous, payload["resource_version"], initial_sync=initial_sync)
        known = uid in self.tracker
        found = self.tracker.observe_snapshot(uid, snapshot, watch_type, status_hash)
        if found is None:
            if self._unfollowed and uid in self._unfollowed and self.deadlines is not None:
                self._unfollowed.discard(uid)  # unchanged since the checkpoint: its wait starts here
                self.deadlines.observe(uid, snapshot, payload, forwarded=False)
            return "suppressed"
        if (
            initial_sync
            and not known
            and self.initial_sync_mode == "troubled"
            and not payload_troubled(payload, None if parts is None else parts_troubled(parts))
        ):
            # Only pods the relay never saw are held back: a change to a known pod found by a
            # relist is a missed transition and goes out.
            if self.deadlines is not None:  # looked at again when overdue (now, if it is already)
                self.deadlines.observe(uid, snapshot, payload, forwarded=False)
            return "suppressed"
        if initial_sync and known:
            # A known pod (relist, checkpoint): its transitions are real, not from an empty pod.
            payload["initial_sync"] = False
        payload["transitions"] = _transitions_payload(found)
        self._queue_pod(payload)
        if self.deadlines is not None:
            if watch_type == "DELETED":
                self.deadlines.cancel(uid)
            else:
                self.deadlines.observe(uid, snapshot, payload)
        return "forwarded"

    def _vanished(self, uid: str, resource_version: str, *, initial_sync: bool) -> bool:
        gone = self.tracker.vanished(uid)
        if gone is None:
            return False
        self.stats.synthetic_deleted += 1
        payload = vanished_payload(
            uid,
            gone,
            resource_version=resource_version,
            observed_at=self._now_text(),
            initial_sync=initial_sync,
        )
        self._queue_pod(payload)
        return True

    def look_again(self, now: datetime | None = None) -> int:
        """Forward again every waiting pod whose threshold passed by `now` (`deadlines`), once,
        stamped with `now` and an `overdue` transition, under an event id of its own; returns how
        many. Sink failures are logged; the envelopes stay queued for the next flush."""
        if self.deadlines is None:
            return 0
        with self._lock:
            when = now or self._clock()
            due = self.deadlines.due(when, known=self.tracker.__contains__)
            for kind, last in due:
                payload = dict(last)
                payload["watch_type"] = "MODIFIED"
                payload["initial_sync"] = False
                payload["observed_at"] = time_text(when)
                payload["transitions"] = [{"field": "overdue", "to": kind}]
                self._queue_pod(payload, f"MODIFIED/overdue:{kind}")
            self.stats.overdue += len(due)
            if due:
                try:
                    self.flush()
                except (SinkUnavailable, SinkRejected):
                    log.exception("sink failed; overdue pods kept for the next flush")
            return len(due)

    def reconcile(self, namespace: str | None, seen: Iterable[str], resource_version: str) -> int:
        """After a (re)list of pods in `namespace` (None: all): every pod the tracker knows there
        that the list did not return is gone; send a synthetic DELETED for each. Returns how many."""
        with self._lock:
            present = set(seen)
            gone = [uid for uid in self.tracker.uids_in(namespace) if uid not in present]
            count = sum(self._vanished(uid, resource_version, initial_sync=True) for uid in gone)
            if count:
                log.info(
                    "pods vanished while not watched: synthetic DELETED sent",
                    extra={"namespace": namespace or "*", "count": count},
                )
            return count

    def memory[T](self, mark: Callable[[], T]) -> tuple[T, dict[str, Snapshot], dict[str, int]] | None:
        """What the trackers hold (pods by uid, Event counts) and `mark()`, taken at one instant:
        everything forwarded so far has been handed to the sink then. None while envelopes wait
        in the relay itself (a sink failed): they are not handed over yet."""
        with self._lock:
            if self._pending:
                return None
            return mark(), self.tracker.snapshots(), self.event_tracker.counts()

    def restore(self, pods: Iterable[tuple[str, Snapshot]], events: Iterable[tuple[str, int]]) -> int:
        """Remember pods and Event counts from a checkpoint (nothing is sent): the first list then
        forwards only what changed since, and `reconcile` reports the pods gone meanwhile.
        Returns how many pods."""
        with self._lock:
            count = 0
            for uid, snapshot in pods:
                self.tracker.restore(uid, snapshot)
                if self.deadlines is not None:
                    self._unfollowed.add(uid)
                count += 1
            self.event_tracker.restore(events)
            return count

    def forget_namespaces_except(self, namespaces: set[str]) -> int:
        """Forget the pods of every namespace not in `namespaces` (nothing is sent)."""
        with self._lock:
            return sum(self.forget_namespace(n) for n in self.tracker.namespaces() - namespaces)

    def forget_namespace(self, namespace: str) -> int:
        """Drop what the tracker knows about a namespace no longer watched (nothing is sent)."""
        with self._lock:
            return self.tracker.forget_all(self.tracker.uids_in(namespace))

    def _event(self, obj: dict[str, Any], watch_type: WatchType, initial_sync: bool) -> str:
        if watch_type == "DELETED":
            # Events are deleted when their TTL (1 h) expires: housekeeping, not news. Forwarding it
            # would repeat the event_id of the occurrence already sent.
            projected = project_event(obj, watch_type=watch_type, kinds=self.event_kinds)
            if projected is not None:
                self.event_tracker.observe(projected)
            return "skipped:event-deleted"
        kube_event = project_event(
            obj,
            watch_type=watch_type,
            initial_sync=initial_sync,
            observed_at=self._clock(),
            kinds=self.event_kinds,
        )
        if kube_event is None:
            return "skipped:not-a-pod-event"
        reasons = self.stats.event_reasons
        key = f"{kube_event.type or '-'}/{kube_event.reason or '-'}"
        if key not in reasons and len(reasons) >= MAX_EVENT_REASONS:
            key = "other/other"
        reasons[key] = reasons.get(key, 0) + 1
        if initial_sync and self.initial_sync_mode == "troubled" and kube_event.type != "Warning":
            self.event_tracker.observe(kube_event)
            return "suppressed"
        if self.event_tracker.observe(kube_event) is None:
            return "suppressed"
        body = envelopes.event_body(
            kube_event, cluster_id=self.cluster_id, relay_version=self.relay_version, sent_at=self._clock()
        )
        self._enqueue("k8s_event", body)
        return "forwarded"

    # ------------------------------------------------------------------ output

    def _queue_pod(self, payload: dict[str, Any], id_type: str | None = None) -> None:
        """Queue the envelope of a pod payload (`envelopes.envelope_body`). `id_type`: what the event
        id is derived from instead of the watch type (an overdue look)."""
        cluster_id = self.cluster_id
        event_id = envelopes.pod_event_id(
            cluster_id, payload["uid"], payload["resource_version"], id_type or payload["watch_type"]
        )
        body = envelopes.envelope_body(
            "pod", event_id, payload, cluster_id, self.relay_version, self._now_text()
        )
        self._enqueue("pod", body)

    def _enqueue(self, kind: str, body: str) -> None:
        self._pending.add(body)
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1

    def enroll(self, *, kubernetes_version: str | None = None, started_at: datetime | None = None) -> None:
        """Send the EnrollEnvelope (once per relay start) and flush it right away."""
        started = started_at or self._clock()
        body = envelopes.enroll_body(
            cluster_id=self.cluster_id,
            relay_version=self.relay_version,
            namespaces=self.namespaces,
            started_at=started,
            kubernetes_version=kubernetes_version,
            sent_at=self._clock(),
        )
        with self._lock:
            self._enqueue("enroll", body)
            self.flush()

    def heartbeat(self, *, sequence: int, started_at: datetime) -> None:
        """Queue a HeartbeatEnvelope (liveness of this relay) and flush it right away."""
        body = envelopes.heartbeat_body(
            cluster_id=self.cluster_id,
            relay_version=self.relay_version,
            sequence=sequence,
            started_at=started_at,
            pods=len(self.tracker),
            sent_at=self._clock(),
        )
        with self._lock:
            self.stats.heartbeats += 1
            self._enqueue("heartbeat", body)
            self.flush()

    @property
    def pending(self) -> int:
        """Envelopes queued and not yet accepted by the sink."""
        return len(self._pending)

    def flush(self) -> SendResult:
        """Send everything queued. On `SinkUnavailable`/`SinkRejected` the bodies not accepted stay
        queued (in order) for the next flush, and the error propagates to the caller."""
        with self._lock:
            return self._pending.flush(self.sink)


def _transitions_payload(found: list[Change]) -> list[dict[str, Any]]:
    """The changes as the JSON objects `Transition` serializes to (see `change_payload`)."""
    key = tuple(found)
    got = _TRANSITIONS.get(key)
    if got is None:
        if len(_TRANSITIONS) >= 1024:
            _TRANSITIONS.clear()
        got = _TRANSITIONS[key] = [change_payload(change) for change in found]
    return list(got)


def _log_error(obj: Any) -> None:
    """Log an ERROR event's Status (its outcome is `watchline.stream_outcome`'s)."""
    status = obj if isinstance(obj, dict) else {}
    log.warning(
        "watch stream reported an error",
        extra={"code": status.get("code"), "reason": status.get("reason"), "detail": status.get("message")},
    )
