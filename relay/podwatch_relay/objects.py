"""History records of kinds other than pods: one `ObjectRelay` per watched kind and scope.

An `ObjectRelay` is what a `watch.ListWatcher` feeds (a `watch.Consumer`), like the pod path's
`Relay`: a watch event in, an outcome label out (`forwarded`, `suppressed`, `bookmark`, `relist`,
`error:<code>`, `skipped:<why>`, `malformed:<why>`). Each object is projected by its kind's
allow-list (`kinds.project_object`) and compared with what was forwarded last, by a digest of the
projection: an update that changes nothing projected (a heartbeat, a resourceVersion, a
managedFields timestamp) is suppressed. The relay keeps only (namespace, name, digest) per object,
never the object.

Records leave in the `object` envelope (`hook` for khook `Hook` objects), through the same sink as
the pod path (the outbox, behind the standby gate), fitted to the message limit like every
envelope (`fit`). A list reconciles: objects known here and absent from the list are forwarded
as DELETED (they went while the relay was not watching).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podwatch import ids
from podwatch.models import WatchType, utcnow
from podwatch_relay import envelopes, objectfast
from podwatch_relay._json import dumps
from podwatch_relay.batch import Batch
from podwatch_relay.errors import BadWatchEvent
from podwatch_relay.kinds import KindSpec, object_troubled, project_hook, project_object
from podwatch_relay.pipeline import InitialSyncMode
from podwatch_relay.redact import DEFAULT_ALLOWLIST, LabelAllowlist
from podwatch_relay.sink import SendResult, Sink
from podwatch_relay.timetext import now_text, time_text
from podwatch_relay.watchline import (
    LineResult,
    OutcomeCounts,
    consume_line,
    count_malformed,
    count_unexpected,
    stream_outcome,
)

_WATCH_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED"})


@dataclass(slots=True)
class ObjectStats(OutcomeCounts):
    """Counters of one kind's records: by outcome (`OutcomeCounts`, as `pipeline.RelayStats`), and these."""

    #: DELETED forwarded for objects a list no longer returned
    synthetic_deleted: int = 0
    #: lines suppressed from their raw parts, never projected (`objectfast`), a subset of `suppressed`
    fast_suppressed: int = 0
    #: what the sink did with the forwarded envelopes
    sent: int = 0
    queued: int = 0
    dropped: int = 0
    dropped_reasons: dict[str, int] = field(default_factory=dict)
    trimmed: int = 0
    oversize: int = 0


def digest_of(projection: dict[str, Any]) -> bytes:
    """What identifies a projection: 8 bytes of BLAKE2b of its JSON (keys in their order, which
    the projection fixes)."""
    return hashlib.blake2b(dumps(projection).encode(), digest_size=8).digest()


#: (type, status) of an object's conditions: what its transitions are told from
Conditions = tuple[tuple[str, str], ...]
#: What a checkpoint keeps of one object: uid, namespace ("" when cluster-scoped), name, the
#: digest of its last forwarded projection and its conditions
ObjectState = tuple[str, str, str, bytes, Conditions]


def condition_key(projection: dict[str, Any]) -> Conditions:
    return tuple((c["type"], c["status"]) for c in projection.get("conditions", ()))


def condition_transitions(old: Conditions, new: Conditions) -> list[dict[str, Any]]:
    """`{"field": "condition.<type>", "from": <old status>, "to": <new status>}` for each condition
    whose status changed, appeared (`from` absent) or went (`to` absent)."""
    before, after = dict(old), dict(new)
    out: list[dict[str, Any]] = []
    for kind in dict.fromkeys([*after, *before]):
        if before.get(kind) != after.get(kind):
            change: dict[str, Any] = {"field": f"condition.{kind}"}
            if kind in before:
                change["from"] = before[kind]
            if kind in after:
                change["to"] = after[kind]
            out.append(change)
    return out


class ObjectRelay:
    """Projects, diffs and forwards the objects of one kind. Thread-safe."""

    def __init__(
        self,
        *,
        spec: KindSpec,
        sink: Sink,
        cluster_id: str,
        relay_version: str,
        clock: Callable[[], datetime] = utcnow,
        allowlist: LabelAllowlist = DEFAULT_ALLOWLIST,
        namespace_filter: Callable[[str], bool] | None = None,
        batch_size: int = 1,
        initial_sync_mode: InitialSyncMode = "all",
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.cluster_id = cluster_id
        self.relay_version = relay_version
        self.allowlist = allowlist
        #: namespaced objects outside the selection are skipped (label-selected namespaces)
        self.namespace_filter = namespace_filter
        self.stats = ObjectStats()
        #: `troubled`: a list forwards only the objects in trouble among those never seen (records
        #: only; hook rules always go out)
        self.initial_sync_mode: InitialSyncMode = initial_sync_mode
        self._clock = clock
        self._now_text: Callable[[], str] = now_text if clock is utcnow else lambda: time_text(clock())
        self._batch_size = batch_size
        #: uid -> (namespace, name, digest of what was forwarded last, its conditions, the raw key of
        #: the last line seen with that projection: `objectfast`, None when it came another way)
        self._known: dict[str, tuple[str, str, bytes, Conditions, int | None]] = {}
        #: envelope bodies not yet handed to the sink, in order (`batch.Batch`)
        self._pending = Batch(self.stats)
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._known)

    # ------------------------------------------------------------------ input

    def process_line(self, line: str | bytes, *, initial_sync: bool = False) -> LineResult:
        """One watch line (`watchline.consume_line`): its outcome and the resourceVersion it carried.
        An ADDED/MODIFIED whose raw parts are those of the last forwarded version is suppressed
        without projecting it (`objectfast`); anything else takes the plain path (`handle`)."""
        return consume_line(self, line, initial_sync=initial_sync, fast=self._fast_line)

    def _fast_line(self, raw: bytes, initial_sync: bool) -> LineResult | None:
        fast = objectfast.decode(raw, self.allowlist)
        if fast is None:
            return None
        version = fast.meta.resourceVersion
        version = version if isinstance(version, str) and version else None
        with self._lock:
            known = self._known.get(fast.meta.uid) if isinstance(fast.meta.uid, str) else None
            if known is not None and known[4] == fast.key:
                self.stats.input_events += 1
                self.stats.fast_suppressed += 1
                return LineResult(self.stats.count("suppressed"), version)
        event = {"type": fast.watch_type, "object": fast.object()}
        return LineResult(self.handle(event, initial_sync=initial_sync, raw_key=fast.key), version)

    def note_malformed(self, exc: BadWatchEvent, raw: object) -> str:
        """Count and log one line that is not a watch event (`watchline.LineConsumer`)."""
        with self._lock:
            self.stats.input_events += 1
            return count_malformed(self.stats, exc, raw)

    def note_unexpected(self, exc: Exception, raw: object) -> str:
        """Count and log one line whose reading failed unexpectedly (`watchline.LineConsumer`)."""
        with self._lock:
            self.stats.input_events += 1
            return count_unexpected(self.stats, exc, raw)

    def handle(self, watch_event: Any, *, initial_sync: bool = False, raw_key: int | None = None) -> str:
        """One parsed watch event; its outcome label. Never raises for bad input; raises only if
        the sink fails flushing a full batch (the envelopes stay queued). `raw_key`: the
        `objectfast` key of the line it came from."""
        with self._lock:
            try:
                outcome = self._handle(watch_event, initial_sync, raw_key)
            except Exception as exc:  # noqa: BLE001  # a bug must cost one event, never the watch
                return count_unexpected(self.stats, exc, watch_event)
            self.stats.count(outcome)
            if outcome == "forwarded" and len(self._pending) >= self._batch_size:
                self.flush()
            return outcome

    def _handle(self, event: Any, initial_sync: bool, raw_key: int | None = None) -> str:
        self.stats.input_events += 1
        if not isinstance(event, dict):
            return "malformed:not-an-object"
        watch_type, obj = event.get("type"), event.get("object")
        if (outcome := stream_outcome(watch_type, obj)) is not None:
            return outcome
        if watch_type not in _WATCH_TYPES:
            return "malformed:unknown-type"
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict):
            return "malformed:missing-object"
        uid, name, namespace = meta.get("uid"), meta.get("name"), meta.get("namespace") or ""
        if not (
            isinstance(uid, str) and uid and isinstance(name, str) and name and isinstance(namespace, str)
        ):
            return "malformed:object-without-uid"
        if namespace and self.namespace_filter is not None and not self.namespace_filter(namespace):
            return "skipped:namespace"
        assert isinstance(obj, dict)
        version = meta.get("resourceVersion")
        version = version if isinstance(version, str) else ""
        projection: dict[str, Any]
        if self.spec.envelope == "hook":
            projection = (
                {}
                if watch_type == "DELETED"
                else {"hook": project_hook(obj, namespace, name, self.spec.api_version)}
            )
        else:
            projection = project_object(obj, self.spec, self.allowlist)
        known = self._known.get(uid)
        if watch_type == "DELETED":
            self._known.pop(uid, None)
            self._queue(watch_type, uid, namespace, name, version, projection, initial_sync=False)
            return "forwarded"
        digest = digest_of(projection)
        if known is not None and known[2] == digest:
            if known[4] != raw_key:  # other raw parts, the same projection: the next such is fast
                self._known[uid] = (*known[:4], raw_key)
            return "suppressed"
        conditions = condition_key(projection)
        self._known[uid] = (namespace, name, digest, conditions, raw_key)
        if known is None and initial_sync and self._held_back(projection):
            return "suppressed"  # known now: its next change goes out, as a held-back pod's
        if known is not None and self.spec.envelope == "object":
            changes = condition_transitions(known[3], conditions)
            if changes:
                projection["transitions"] = changes
        # A known object found changed by a relist: a missed change, not the initial state.
        self._queue(
            watch_type, uid, namespace, name, version, projection, initial_sync=initial_sync and known is None
        )
        return "forwarded"

    def _held_back(self, projection: dict[str, Any]) -> bool:
        """Whether a list keeps a never-seen object to itself (`initial_sync_mode` troubled, and
        it is not in trouble: `kinds.object_troubled`)."""
        return (
            self.initial_sync_mode == "troubled"
            and self.spec.envelope == "object"
            and not object_troubled(self.spec.kind, projection)
        )

    def reconcile(self, namespace: str | None, seen: Iterable[str], resource_version: str) -> int:
        """After a (re)list in `namespace` (None: all): every object known there that the list did
        not return went meanwhile; forward a DELETED for each (no projection: it is gone)."""
        with self._lock:
            present = set(seen)
            gone = [
                (uid, ns, name)
                for uid, (ns, name, *_) in self._known.items()
                if uid not in present and (namespace is None or ns == namespace)
            ]
            for uid, ns, name in gone:
                del self._known[uid]
                self._queue("DELETED", uid, ns, name, resource_version, {}, initial_sync=True)
                self.stats.count("forwarded")
            self.stats.synthetic_deleted += len(gone)
            return len(gone)

    def memory(self) -> list[ObjectState] | None:
        """What is known of each object, for the checkpoint; None while envelopes wait here (a
        sink failed): what they tell is not handed over yet."""
        with self._lock:
            if self._pending:
                return None
            return [
                (uid, ns, name, digest, conds) for uid, (ns, name, digest, conds, _) in self._known.items()
            ]

    def restore(self, states: Iterable[ObjectState]) -> int:
        """Remember objects from a checkpoint (nothing is sent): the first list then forwards only
        what changed since, and `reconcile` the objects gone meanwhile. Returns how many."""
        with self._lock:
            count = 0
            for uid, namespace, name, digest, conditions in states:
                self._known[uid] = (namespace, name, digest, conditions, None)
                count += 1
            return count

    def forget_namespaces_except(self, namespaces: set[str]) -> int:
        """Drop the objects of every namespace not in `namespaces` (no longer selected; nothing is
        sent). Cluster-scoped objects stay."""
        with self._lock:
            gone = [uid for uid, (ns, *_) in self._known.items() if ns and ns not in namespaces]
            for uid in gone:
                del self._known[uid]
            return len(gone)

    def forget(self) -> int:
        """Drop what is known (the kind is no longer watched: its CRD went). Nothing is sent."""
        with self._lock:
            count = len(self._known)
            self._known.clear()
            return count

    # ------------------------------------------------------------------ output

    def _queue(
        self,
        watch_type: WatchType,
        uid: str,
        namespace: str,
        name: str,
        version: str,
        projection: dict[str, Any],
        *,
        initial_sync: bool,
    ) -> None:
        spec = self.spec
        payload: dict[str, Any] = {}
        if spec.envelope == "object":
            payload["api_version"] = spec.api_version
            payload["kind"] = spec.kind
        if namespace:
            payload["namespace"] = namespace
        payload |= {"name": name, "uid": uid, **projection}
        payload |= {
            "watch_type": watch_type,
            "resource_version": version,
            "observed_at": self._now_text(),
            "initial_sync": initial_sync,
        }
        event_id = ids.object_event_id(self.cluster_id, spec.kind, uid, version, watch_type)
        body = envelopes.envelope_body(
            spec.envelope, event_id, payload, self.cluster_id, self.relay_version, self._now_text()
        )
        self._pending.add(body)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> SendResult:
        """Send what is queued; on a sink failure what was not accepted stays queued, in order."""
        with self._lock:
            return self._pending.flush(self.sink)
