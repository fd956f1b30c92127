"""Event history: what one forwarded transition becomes in the history table, and back.

A history record has the shape of the watch event service's audit event (verb, user, objectRef,
timestamp, the projected snapshot, plus the involvedObject, reason, message, count and first/last
seen of a Kubernetes Event, and podwatch's classification). `item_of` turns an envelope into one
DynamoDB item (the keys of docs/internals.md, "History item"); `record_of` turns an item back into
the API's record. Pure functions: the table calls are in `podwatch.historystore`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import from_json, to_json

from podwatch.classify import NODE_TROUBLED_STATUS
from podwatch.models import KubeEventEnvelope, ObjectEnvelope, PodEnvelope

#: what the history stores: pods, Kubernetes Events, and every other watched kind (`object`)
HistoryEnvelope = PodEnvelope | KubeEventEnvelope | ObjectEnvelope

#: who the watch event service names as the author of every record
USER = "system:k8s-watcher"
VERBS = {"ADDED": "create", "MODIFIED": "update", "DELETED": "delete"}
#: GSI `by-time`: the time index, partitioned by cluster, day and shard
TIME_INDEX = "by-time"
#: what the time index holds besides the keys (template: Projection INCLUDE): the attributes the
#: list's filters read, so the index stays small; a page's items are then read by key
TIME_INDEX_ATTRIBUTES = ("k", "n", "r", "et", "wt", "x")
#: shards of one cluster's day in the time index; a namespace spreads over NAMESPACE_SPREAD of them
SHARDS = 16
NAMESPACE_SPREAD = 4
#: an item above this is trimmed (free text first) so that it costs one write unit
ITEM_BUDGET_BYTES = 1000
#: an `object`'s item may take up to 4 write units before its snapshot loses entries (largest first):
#: a Deployment's spec is what changed, so it is worth more than one unit
OBJECT_ITEM_BUDGET_BYTES = 4000
TRIMMED_TEXT = 160
DEFAULT_RETENTION_DAYS = 14
#: known plural and singular spellings of kinds, as an object key spells them (lower-case singular)
_KIND_SPELLINGS = {
    "pods": "pod",
    "configmaps": "configmap",
    "persistentvolumeclaims": "persistentvolumeclaim",
    "persistentvolumes": "persistentvolume",
    "horizontalpodautoscalers": "horizontalpodautoscaler",
    "poddisruptionbudgets": "poddisruptionbudget",
    "customresourcedefinitions": "customresourcedefinition",
    "events": "event",
    "deployments": "deployment",
    "replicasets": "replicaset",
    "statefulsets": "statefulset",
    "daemonsets": "daemonset",
    "jobs": "job",
    "cronjobs": "cronjob",
    "nodes": "node",
    "services": "service",
    "namespaces": "namespace",
    "ingresses": "ingress",
}


def canonical_kind(kind: str) -> str:
    """`pod`, `pods`, `Pod` → `pod`: how a kind is spelled in an object key."""
    lowered = kind.strip().lower()
    return _KIND_SPELLINGS.get(lowered, lowered)


def object_key(cluster: str, namespace: str, kind: str, name: str) -> str:
    """Partition key of one object's history (its watch events and the Events about it)."""
    return f"{cluster}#{namespace}#{canonical_kind(kind)}#{name}"


def namespace_shards(cluster: str, namespace: str) -> list[int]:
    """The time-index shards that hold one namespace's records."""
    first = zlib.crc32(f"{cluster}#{namespace}".encode()) % SHARDS
    return [(first + i) % SHARDS for i in range(NAMESPACE_SPREAD)]


def shard_of(cluster: str, namespace: str, name: str) -> int:
    """An object's shard: one of its namespace's, picked by its name (one object stays in one)."""
    return namespace_shards(cluster, namespace)[zlib.crc32(name.encode()) % NAMESPACE_SPREAD]


def time_key(cluster: str, day: str, shard: int) -> str:
    """Partition key in the time index: one cluster, one UTC day (YYYY-MM-DD), one shard."""
    return f"{cluster}#{day}#{shard:02d}"


def iso(moment: datetime) -> str:
    """Fixed-width UTC time with milliseconds: sorts as text in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def days_between(start: datetime, end: datetime) -> list[str]:
    """UTC days from `end`'s back to `start`'s (newest first)."""
    day = end.astimezone(UTC).date()
    first = start.astimezone(UTC).date()
    out: list[str] = []
    while day >= first:
        out.append(day.isoformat())
        day -= timedelta(days=1)
    return out


@dataclass(frozen=True, slots=True)
class Classification:
    """What the processor decided about one finding of the event (an incident id is its dedup key)."""

    event_type: str
    action: str
    reason: str
    incident_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {"eventType": self.event_type, "decision": self.action, "reason": self.reason}
        if self.incident_id:
            out["incidentId"] = self.incident_id
        return out


def encode_classification(classes: Iterable[Classification]) -> str:
    """The classification the processor puts on a history record (compact JSON; pydantic's Rust
    serializer: the stdlib's took ~10 us a record, in the processor's path)."""
    return to_json([c.as_json() for c in classes]).decode()


def decode_classification(raw: str | None) -> list[Classification]:
    """The attribute back; anything unreadable counts as no classification (it is advisory)."""
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    return [
        Classification(
            event_type=str(c.get("eventType")),
            action=str(c.get("decision", "")),
            reason=str(c.get("reason", "")),
            incident_id=c.get("incidentId") if isinstance(c.get("incidentId"), str) else None,
        )
        for c in data
        if isinstance(c, dict) and c.get("eventType")
    ]


def event_time(envelope: HistoryEnvelope) -> datetime:
    """When it happened: a pod's (an object's) observation; an Event's last (series/eventTime fold
    into it at the relay), else first timestamp, else its observation."""
    if isinstance(envelope, PodEnvelope | ObjectEnvelope):
        return envelope.payload.observed_at
    event = envelope.payload
    return event.last_timestamp or event.first_timestamp or event.observed_at


def _snapshot(envelope: HistoryEnvelope) -> dict[str, Any]:
    # resourceVersion and the watch bookkeeping are not part of what the object was
    return envelope.payload.model_dump(
        mode="json",
        by_alias=True,
        exclude_none=True,
        exclude={"resource_version", "watch_type", "initial_sync", "observed_at"},
    )


def _trim(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Free text cut to TRIMMED_TEXT characters (messages of the pod, its containers, conditions)."""

    def cut(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _cut_text(v) if k == "message" else cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value]
        return value

    trimmed: dict[str, Any] = cut(snapshot)
    return trimmed


def _cut_text(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TRIMMED_TEXT:
        return value[: TRIMMED_TEXT - 1] + "…"
    return value


#: zlib preset dictionary of what snapshots are made of (keys and common values, in their order):
#: a ~1 KB pod compresses to about half of what plain zlib gives. Items name it (`s1`); a new
#: dictionary gets a new attribute name, so old items stay readable.
SNAPSHOT_DICTIONARY_V1 = (
    b'{"o":{"namespace":"","name":"","uid":"","reason":"","message":"","type":"Warning","count":1,'
    b'"involved_object":{"kind":"Pod","name":"","namespace":"","uid":"","field_path":"spec.containers{'
    b'"first_timestamp":"","last_timestamp":"","source_component":"kubelet"},'
    b'"c":[{"eventType":"crash-loop","decision":"forwarded","reason":"opened","incidentId":""}]}'
    b'{"o":{"namespace":"","name":"","uid":"","phase":"Running","phase":"Pending","restart_count":0,'
    b'"labels":{"app":"","app.kubernetes.io/name":"","app.kubernetes.io/instance":"",'
    b'"app.kubernetes.io/part-of":"","pod-template-hash":"","controller-revision-hash":"",'
    b'"project-id":"","workload-id":""},"owner_references":[{"kind":"ReplicaSet","name":"","uid":"",'
    b'"controller":true}],"node":"ip-10-0-","compute.internal","containers":[{"name":"","kind":"init",'
    b'"kind":"app","image":"registry","ready":false,"started":false,"restart_count":0,"state":"waiting",'
    b'"reason":"CrashLoopBackOff","message":"back-off restarting failed container","state":"terminated",'
    b'"reason":"Completed","exit_code":0,"last_termination_reason":"Error","last_exit_code":1,'
    b'"last_finished_at":"","state":"running","ready":true,"started":true}],'
    b'"conditions":[{"type":"PodReadyToStartContainers","status":"True","last_transition_time":""},'
    b'{"type":"Initialized","status":"True","last_transition_time":""},'
    b'{"type":"Ready","status":"False","reason":"ContainersNotReady",'
    b'"message":"containers with unready status: [",'
    b'"last_transition_time":""},{"type":"ContainersReady","status":"True","last_transition_time":""},'
    b'{"type":"PodScheduled","status":"True","last_transition_time":""}],"created_at":"20",'
    b'"deleted_at":"","transitions":[{"field":"restart_count","container":"","from":0,"to":1},'
    b'{"field":"waiting_reason","container":"","to":"CrashLoopBackOff"},{"field":"ready","from":true,"to":false},'
    b'{"field":"phase","from":"Pending","to":"Running"},{"field":"condition.Ready","from":"False","to":"True"}]},'
    b'"c":[{"eventType":"","decision":"filtered","reason":"healthy"}]}'
)


def pack(snapshot: Mapping[str, Any], classification: Sequence[Mapping[str, Any]]) -> bytes:
    """The snapshot and the classification, as compact JSON, compressed with the dictionary."""
    text = json.dumps({"o": snapshot, "c": list(classification)}, separators=(",", ":")).encode()
    compressor = zlib.compressobj(9, zdict=SNAPSHOT_DICTIONARY_V1)
    return compressor.compress(text) + compressor.flush()


def unpack(blob: bytes) -> dict[str, Any]:
    decompressor = zlib.decompressobj(zdict=SNAPSHOT_DICTIONARY_V1)
    # pydantic's JSON parser (Rust, in the layer already): a 100-record page reads 100 of these
    data: dict[str, Any] = from_json(decompressor.decompress(blob) + decompressor.flush())
    return data


def _drop_condition_messages(snapshot: dict[str, Any]) -> dict[str, Any]:
    conditions = [{k: v for k, v in c.items() if k != "message"} for c in snapshot.get("conditions", [])]
    return {**snapshot, "conditions": conditions} if conditions else snapshot


def _drop_largest_field(snapshot: dict[str, Any]) -> dict[str, Any]:
    """An object's projected fields (`snapshot.snapshot`) less its largest entry, named in `dropped`."""
    fields: dict[str, Any] = dict(snapshot.get("snapshot") or {})
    if not fields:
        return snapshot
    largest = max(fields, key=lambda name: len(json.dumps(fields[name], separators=(",", ":"))))
    del fields[largest]
    return {**snapshot, "snapshot": fields, "dropped": [*snapshot.get("dropped", []), largest]}


def item_size(item: Mapping[str, Any]) -> int:
    """DynamoDB's size of an item: attribute names plus values (numbers counted as text)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, bytes):
            size += len(value)
        elif isinstance(value, (set, frozenset, list)):
            size += sum(len(str(v).encode()) for v in value) + 3
        else:
            size += len(str(value).encode())
    return size


def item_of(
    envelope: HistoryEnvelope,
    classes: Sequence[Classification] = (),
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> dict[str, Any]:
    """The history item of one envelope, as a plain dict (str, int, bytes, set values)."""
    payload = envelope.payload
    when = event_time(envelope)
    cluster = envelope.cluster_id
    namespace = payload.namespace or ""  # "" for a cluster-scoped object (a Node)
    if isinstance(envelope, PodEnvelope):
        own_kind, subject_kind, subject_name = "Pod", "pod", envelope.payload.name
        uid = envelope.payload.uid
        reason = _pod_reason(envelope)
    elif isinstance(envelope, ObjectEnvelope):
        obj = envelope.payload
        own_kind, subject_kind, subject_name, uid = obj.kind, obj.kind, obj.name, obj.uid
        reason = _node_reason(envelope)
    else:
        involved = envelope.payload.involved_object
        own_kind, subject_kind, subject_name = "Event", involved.kind, involved.name
        uid = envelope.payload.uid
        reason = envelope.payload.reason
        # stored with what it is about: a cluster-scoped object's (a Node's) Event names no namespace
        namespace = involved.namespace or (namespace if involved.kind == "Pod" else "")
    item: dict[str, Any] = {
        "pk": object_key(cluster, namespace, subject_kind, subject_name),
        "sk": f"{iso(when)}#{_sequence(payload.resource_version)}#{envelope.event_id}",
        "tk": time_key(
            cluster, when.astimezone(UTC).date().isoformat(), shard_of(cluster, namespace, subject_name)
        ),
        "k": own_kind,
        "n": subject_name,
        "uid": uid,
        "wt": payload.watch_type,
        "x": int((when + timedelta(days=retention_days)).timestamp()),
    }
    if reason:
        item["r"] = reason
    if classes:
        item["et"] = {c.event_type for c in classes}
    classification = [c.as_json() for c in classes]
    snapshot = _snapshot(envelope)
    item["s1"] = pack(snapshot, classification)
    # over budget: free text cut first, then the conditions' messages (they repeat the pod's)
    for trim in (_trim, _drop_condition_messages):
        if item_size(item) <= ITEM_BUDGET_BYTES:
            break
        snapshot = trim(snapshot)
        item["s1"] = pack(snapshot, classification)
        item["tr"] = 1
    # an object still over its budget loses its projected fields, largest first
    while isinstance(envelope, ObjectEnvelope) and item_size(item) > OBJECT_ITEM_BUDGET_BYTES:
        smaller = _drop_largest_field(snapshot)
        if smaller is snapshot:
            break
        snapshot = smaller
        item["s1"] = pack(snapshot, classification)
    return item


def _sequence(resource_version: str) -> str:
    """Orders two changes of one object within a millisecond (the recorded clock ticks in seconds):
    resourceVersions are etcd revisions in practice, compared as numbers; opaque ones sort first."""
    return resource_version.zfill(20) if resource_version.isdigit() and len(resource_version) <= 20 else ""


def _pod_reason(envelope: PodEnvelope) -> str | None:
    """A pod's reason: its own (Evicted, ...) or its first container's waiting/terminated reason."""
    pod = envelope.payload
    if pod.reason:
        return pod.reason
    return next((c.reason for c in pod.containers if c.reason), None)


def _node_reason(envelope: ObjectEnvelope) -> str | None:
    """A Node's reason: its first troubled condition's (KubeletNotReady, ...); other kinds have none."""
    obj = envelope.payload
    if obj.kind != "Node":
        return None
    troubled = (c for c in obj.conditions if c.status in NODE_TROUBLED_STATUS.get(c.type, ()))
    return next((c.reason or c.type for c in troubled), None)


def record_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """The API's record (the watch event service's audit event) of a history item."""
    timestamp, _, rest = str(item["sk"]).partition("#")
    event_id = rest.rpartition("#")[2]
    cluster, namespace, _subject_kind, subject_name = str(item["pk"]).split("#", 3)
    packed = unpack(bytes(item["s1"]))
    snapshot: dict[str, Any] = packed["o"]
    kind = str(item["k"])
    record: dict[str, Any] = {
        "id": event_id,
        "verb": VERBS.get(str(item["wt"]), "update"),
        "user": {"username": USER},
        "objectRef": {
            "cluster": cluster,
            "namespace": namespace,
            "kind": kind,
            "name": snapshot.get("name", subject_name),
            "uid": snapshot.get("uid", item.get("uid")),
        },
        "timestamp": timestamp,
        "watchType": item["wt"],
        "reason": item.get("r"),
        "object": snapshot,
        "classification": packed["c"],
    }
    if kind == "Event":
        involved = snapshot.get("involved_object") or {}
        record.update(
            involvedObject={
                "kind": involved.get("kind"),
                "namespace": involved.get("namespace") or namespace,
                "name": involved.get("name"),
                "uid": involved.get("uid"),
                "fieldPath": involved.get("field_path"),
            },
            message=snapshot.get("message"),
            type=snapshot.get("type"),
            count=snapshot.get("count", 1),
            firstSeen=snapshot.get("first_timestamp"),
            lastSeen=snapshot.get("last_timestamp"),
        )
    if item.get("tr"):
        record["trimmed"] = True
    return record


def _detail(record: Mapping[str, Any]) -> str:
    if record["objectRef"]["kind"] == "Event":
        return f"{record.get('type') or ''} x{record.get('count', 1)}: {record.get('message') or ''}".strip()
    classes = record.get("classification") or []
    return ", ".join(f"{c['eventType']} ({c['decision']} {c['reason']})" for c in classes)


def table(records: Iterable[Mapping[str, Any]], *, width: int = 160) -> list[str]:
    """Records as text for a terminal (`podwatch events`, `make run`), one line each: time, verb,
    kind, namespace/name, reason, and what podwatch made of it (an Event: its type, count, message)."""
    rows = [("TIME", "VERB", "KIND", "OBJECT", "REASON", "DETAIL")]
    for r in records:
        ref = r["objectRef"]
        rows.append(
            (
                r["timestamp"].replace("T", " ")[:23],
                r["verb"],
                ref["kind"],
                f"{ref['namespace']}/{ref['name']}",
                r.get("reason") or "-",
                _detail(r),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5]))[:width] + "  " + row[5]
        for row in rows
    ]
