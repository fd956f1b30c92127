"""The history API's logic, without HTTP: query parameters in, records out (the `history` function
wraps it in Powertools' event handler; the local stack serves the same handler on loopback).

    list_events(reader, params, cluster=..., now=...)   GET /api/v1/events
    object_view(reader, namespace, kind, name, params, cluster=..., now=...)
                                                         GET /api/v1/events/{namespace}/{kind}/{name}
        (with the owner chain and, for a pod, its node's condition changes: `Span`)

A bad parameter raises `BadRequest` naming it (the handler answers 400). Paging: newest first; the
cursor is opaque (base64 of JSON) and carries a fingerprint of the query's filters and time range,
its position (the last record's sort key) and the total counted for the first page, so a cursor
replayed with other parameters is refused and `X-Total-Count` stays the same on every page. The
time index is read day by day (newest first), its shards merged lazily (`heapq.merge`), so a page
reads about `limit` items whatever the range. docs/internals.md ("History API") has the details.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import itertools
import json
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from podwatch.history import (
    DEFAULT_RETENTION_DAYS,
    SHARDS,
    VERBS,
    canonical_kind,
    days_between,
    iso,
    namespace_shards,
    object_key,
    record_of,
    time_key,
)
from podwatch.historystore import Filter, HistoryReader, Item

DEFAULT_LIMIT = 100
#: COUNT queries in flight at once (first page of a list: one per day and shard)
COUNT_WORKERS = 16
MAX_LIMIT = 1000
#: without `start`, a list covers this much before `end`
DEFAULT_WINDOW = timedelta(hours=24)
LIST_PARAMETERS = frozenset(
    {"start", "end", "namespace", "kind", "name", "reason", "eventType", "limit", "cursor"}
)
OBJECT_PARAMETERS = frozenset({"start", "end", "limit", "uid"})
#: how an item spells a kind (`k`): the Kubernetes Kind, for the kinds the relay watches by default;
#: any other kind is matched as given when it has capitals (`CronTab`), else capitalised
_KIND_NAMES = {
    k.lower(): k
    for k in (
        "Pod",
        "Event",
        "Node",
        "Namespace",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Service",
        "Ingress",
        "ConfigMap",
        "PersistentVolumeClaim",
        "PersistentVolume",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "CustomResourceDefinition",
        "Hook",
    )
}
#: sorts after every event id: `end` includes all records of its millisecond
_AFTER = "#~"


class BadRequest(ValueError):
    """A parameter the API refuses (400); `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def kind_name(kind: str) -> str:
    canonical = canonical_kind(kind)
    if canonical in _KIND_NAMES:
        return _KIND_NAMES[canonical]
    given = kind.strip()
    return given if given != given.lower() else canonical[:1].upper() + canonical[1:]


def parse_time(parameter: str, value: str) -> datetime:
    """An RFC 3339 time with its offset (`Z` or `+hh:mm`)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(parameter, f"not an RFC 3339 time: {value!r}") from None
    if moment.tzinfo is None:
        raise BadRequest(parameter, f"an RFC 3339 time needs its offset (Z or +hh:mm): {value!r}")
    return moment.astimezone(UTC)


def parse_limit(params: Mapping[str, str]) -> int:
    """`limit`: default 100; above 1000 it is 1000 (documented); below 1 or not a number → 400."""
    raw = params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit", f"not a whole number: {raw!r}") from None
    if limit < 1:
        raise BadRequest("limit", f"must be at least 1, got {limit}")
    return min(limit, MAX_LIMIT)


def _check_known(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequest(unknown[0], f"unknown parameter (known: {', '.join(sorted(allowed))})")


def _range(params: Mapping[str, str], now: datetime, default_window: timedelta) -> tuple[datetime, datetime]:
    end = parse_time("end", params["end"]) if params.get("end") else now
    start = parse_time("start", params["start"]) if params.get("start") else end - default_window
    if start > end:
        raise BadRequest("start", f"start ({iso(start)}) is after end ({iso(end)})")
    return start, end


@dataclass(frozen=True, slots=True)
class Cursor:
    fingerprint: str
    position: str
    start: str
    end: str
    total: int

    def encode(self) -> str:
        raw = json.dumps(
            {
                "v": 1,
                "f": self.fingerprint,
                "p": self.position,
                "s": self.start,
                "e": self.end,
                "t": self.total,
            },
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(
                fingerprint=str(data["f"]),
                position=str(data["p"]),
                start=str(data["s"]),
                end=str(data["e"]),
                total=int(data["t"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise BadRequest("cursor", "not a cursor this API issued") from None
        if data.get("v") != 1:
            raise BadRequest("cursor", "not a cursor this API issued")
        return cursor


def fingerprint(cluster: str, params: Mapping[str, str]) -> str:
    """What a cursor is bound to: the cluster and every parameter but `cursor` and `limit`."""
    bound = sorted((k, v) for k, v in params.items() if k not in {"cursor", "limit"})
    return hashlib.sha256(json.dumps([cluster, bound]).encode()).hexdigest()[:24]


def list_filter(params: Mapping[str, str], now: datetime, cluster: str) -> Filter:
    """The FilterExpression of a list query: never an expired item, plus the given filters."""
    parts = ["#x > :now"]
    names = {"#x": "x"}
    values: dict[str, Any] = {":now": int(now.timestamp())}
    if params.get("namespace"):  # the object key starts with cluster#namespace#
        parts.append("begins_with(#obj, :ns)")
        names["#obj"] = "pk"
        values[":ns"] = f"{cluster}#{params['namespace']}#"
    if params.get("kind"):
        parts.append("#k = :k")
        names["#k"] = "k"
        values[":k"] = kind_name(params["kind"])
    if params.get("name"):
        parts.append("#n = :n")
        names["#n"] = "n"
        values[":n"] = params["name"]
    if params.get("reason"):
        parts.append("#r = :r")
        names["#r"] = "r"
        values[":r"] = params["reason"]
    if params.get("eventType"):
        event_type = params["eventType"]
        if event_type in VERBS:  # a watch event type, else podwatch's classification
            parts.append("#wt = :et")
            names["#wt"] = "wt"
        else:
            parts.append("contains(#et, :et)")
            names["#et"] = "et"
        values[":et"] = event_type
    return Filter(" AND ".join(parts), names, values)


@dataclass(frozen=True, slots=True)
class Page:
    records: list[dict[str, Any]]
    total: int
    has_more: bool
    next_cursor: str | None

    def headers(self) -> dict[str, str]:
        return {"X-Total-Count": str(self.total), "X-Has-More": "true" if self.has_more else "false"}

    def body(self) -> dict[str, Any]:
        return {
            "events": self.records,
            "count": len(self.records),
            "total": self.total,
            "hasMore": self.has_more,
            "nextCursor": self.next_cursor,
        }


def list_events(
    reader: HistoryReader,
    params: Mapping[str, str],
    *,
    cluster: str,
    now: datetime,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> Page:
    """One page of records matching `params`, newest first."""
    _check_known(params, LIST_PARAMETERS)
    limit = parse_limit(params)
    bound = fingerprint(cluster, params)
    cursor = Cursor.decode(params["cursor"]) if params.get("cursor") else None
    if cursor is not None:
        if cursor.fingerprint != bound:
            raise BadRequest("cursor", "issued for other parameters: repeat the first query's parameters")
        start, end = parse_time("cursor", cursor.start), parse_time("cursor", cursor.end)
    else:
        start, end = _range(params, now, DEFAULT_WINDOW)
    start = max(start, now - timedelta(days=retention_days + 2))  # nothing older is kept
    where = list_filter(params, now, cluster)
    shards = namespace_shards(cluster, params["namespace"]) if params.get("namespace") else range(SHARDS)
    low, high = iso(start), (cursor.position if cursor else iso(end) + _AFTER)
    days = days_between(start, end) if start <= end else []
    total = cursor.total if cursor else _count(reader, cluster, days, shards, low, high, where)
    found = _newest_first(reader, cluster, days, shards, low, high, where, limit)
    if cursor is not None:  # the cursor's position is the last record already returned
        found = (item for item in found if item["sk"] < cursor.position)
    items = list(itertools.islice(found, limit + 1))
    has_more = len(items) > limit
    page = items[:limit]
    next_cursor = (
        Cursor(bound, str(page[-1]["sk"]), iso(start), iso(end), total).encode()
        if has_more and page
        else None
    )
    return Page(_records(reader, page), total, has_more, next_cursor)


def _records(reader: HistoryReader, entries: list[Item]) -> list[dict[str, Any]]:
    """The records of a page's time-index entries, read from the table by key (the index holds only
    the keys and the filter attributes). An entry whose item is gone (TTL deleted it between the two
    reads) is left out: it had expired."""
    keys = [(str(e["pk"]), str(e["sk"])) for e in entries]
    items = reader.items(keys)
    return [record_of(items[key]) for key in keys if key in items]


def _newest_first(
    reader: HistoryReader,
    cluster: str,
    days: list[str],
    shards: Any,
    low: str,
    high: str,
    where: Filter,
    limit: int,
) -> Iterator[Item]:
    shard_list = list(shards)
    page_size = min(MAX_LIMIT + 1, max(10, 2 * (limit + 1) // len(shard_list) + 1))
    for day in days:  # a newer day's records are all newer than an older day's
        partitions = [
            reader.time_partition(time_key(cluster, day, shard), low, high, where, page_size)
            for shard in shard_list
        ]
        yield from heapq.merge(*partitions, key=lambda item: str(item["sk"]), reverse=True)


def _count(
    reader: HistoryReader, cluster: str, days: list[str], shards: Any, low: str, high: str, where: Filter
) -> int:
    keys = [time_key(cluster, day, shard) for day in days for shard in shards]
    # one COUNT query per partition: side by side, as they wait on the network (boto3 clients are
    # thread-safe), so a 14-day total costs a few round trips, not 224
    with ThreadPoolExecutor(max_workers=COUNT_WORKERS) as pool:
        return sum(pool.map(lambda key: reader.count(key, low, high, where), keys))


def object_view(
    reader: HistoryReader,
    namespace: str,
    kind: str,
    name: str,
    params: Mapping[str, str],
    *,
    cluster: str,
    now: datetime,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> dict[str, Any]:
    """One object's history (`watchEvents`) and the Kubernetes Events about it (`relatedEvents`),
    newest first, at most `limit` of each; an unknown object has empty lists and `object` null.
    Relations: `owners`, its owner chain (Pod → ReplicaSet → Deployment, Job → CronJob) with each
    owner's recent changes, and for a pod `node`, its node's condition changes. `namespace` `_`
    names a cluster-scoped object (a Node)."""
    _check_known(params, OBJECT_PARAMETERS)
    limit = parse_limit(params)
    start, end = _range(params, now, timedelta(days=retention_days))
    span = Span(reader, cluster, start, end, now)
    namespace = "" if namespace == CLUSTER_SCOPE else namespace
    watch, related = span.records(namespace, kind, name, limit, uid=params.get("uid"))
    latest = _latest_object(watch)
    view: dict[str, Any] = {"object": latest, "watchEvents": watch, "relatedEvents": related}
    snapshot = latest["snapshot"] if latest else {}
    view["owners"] = span.owners(namespace, snapshot)
    node = snapshot.get("node") if canonical_kind(kind) == "pod" else None
    if isinstance(node, str) and node:
        view["node"] = span.node(node)
    return view


#: the object view's namespace for a cluster-scoped object (`/api/v1/events/_/node/<name>`)
CLUSTER_SCOPE = "_"
#: recent changes listed per owner and for a pod's node; owners followed at most this deep
RELATED_LIMIT = 10
MAX_OWNER_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Span:
    """The object view's reads: one object partition each, within one time range."""

    reader: HistoryReader
    cluster: str
    start: datetime
    end: datetime
    now: datetime

    def records(
        self, namespace: str, kind: str, name: str, limit: int, uid: str | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(watch events, related Events) of one object, newest first, at most `limit` of each."""
        parts, names = ["#x > :now"], {"#x": "x"}
        values: dict[str, Any] = {":now": int(self.now.timestamp())}
        if uid:
            parts.append("#uid = :uid")
            names["#uid"] = "uid"
            values[":uid"] = uid
        items = self.reader.partition(
            index=None,
            key_name="pk",
            key=object_key(self.cluster, namespace, kind, name),
            low=iso(self.start),
            high=iso(self.end) + _AFTER,
            where=Filter(" AND ".join(parts), names, values),
            page_size=min(MAX_LIMIT, 2 * limit),
        )
        watch: list[dict[str, Any]] = []
        related: list[dict[str, Any]] = []
        for item in items:
            target = related if item["k"] == "Event" else watch
            if len(target) < limit:
                target.append(record_of(item))
            if len(watch) >= limit and len(related) >= limit:
                break
        return watch, related

    def owners(self, namespace: str, snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The controller owner, its controller owner, ...: each with its recent changes (an owner
        the history has no record of is listed with empty lists: it is not watched, or older)."""
        chain: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        ref = controller_of(snapshot)
        while ref is not None and len(chain) < MAX_OWNER_DEPTH and (ref["kind"], ref["name"]) not in seen:
            seen.add((ref["kind"], ref["name"]))
            watch, related = self.records(
                namespace, ref["kind"], ref["name"], RELATED_LIMIT, uid=ref.get("uid")
            )
            latest = _latest_object(watch)
            chain.append({**ref, "object": latest, "watchEvents": watch, "relatedEvents": related})
            ref = controller_of(latest["snapshot"]) if latest else None
        return chain

    def node(self, name: str) -> dict[str, Any]:
        """A pod's node: its newest state, its condition changes, its records and the Events about it."""
        watch, related = self.records("", "node", name, RELATED_LIMIT)
        return {
            "name": name,
            "object": _latest_object(watch),
            "conditionChanges": condition_changes(watch),
            "watchEvents": watch,
            "relatedEvents": related,
        }


def controller_of(snapshot: Mapping[str, Any]) -> dict[str, Any] | None:
    """The controller owner reference of a snapshot (else its first), as `{kind, name, uid}`."""
    refs = [r for r in snapshot.get("owner_references") or [] if isinstance(r, dict) and r.get("name")]
    if not refs:
        return None
    ref = next((r for r in refs if r.get("controller")), refs[0])
    return {"kind": str(ref.get("kind", "")), "name": str(ref["name"]), "uid": ref.get("uid")}


def condition_changes(watch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `condition.<type>` transitions of an object's records, newest first, with the reason
    and message the condition had then."""
    changes: list[dict[str, Any]] = []
    for record in watch:
        snapshot = record.get("object") or {}
        conditions = {c.get("type"): c for c in snapshot.get("conditions") or [] if isinstance(c, dict)}
        for t in snapshot.get("transitions") or []:
            field = str(t.get("field", ""))
            if not field.startswith("condition."):
                continue
            kind = field.removeprefix("condition.")
            now = conditions.get(kind, {})
            changes.append(
                {
                    "timestamp": record["timestamp"],
                    "type": kind,
                    "from": t.get("from"),
                    "to": t.get("to"),
                    "reason": now.get("reason"),
                    "message": now.get("message"),
                }
            )
    return changes


def _latest_object(watch: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not watch:
        return None
    newest = watch[0]
    return {
        **newest["objectRef"],
        "deleted": newest["verb"] == "delete",
        "lastSeen": newest["timestamp"],
        "snapshot": newest["object"],
    }
