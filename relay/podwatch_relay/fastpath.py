"""The relay's byte-level fast path: a Pod watch line in the API server's canonical layout, cut
into its parts instead of decoded whole.

`read_line` finds the line's `metadata`, `spec` and `status` in the bytes, compares the status
text with the tracker's `Record` (hashes, then the conditions array alone) and decodes the status
typed only when it changed. Nothing that matters changed: `Unchanged`. Otherwise it reads what
the pod's payload needs besides (the typed metadata and `spec.nodeName`): one `PodLine`. None
when anything is in doubt; the caller then takes the full path, which gives the same result
(the reference: tests/unit/test_relay_typed.py and test_relay_pipeline.py compare them).
The invariants it relies on are in docs/internals.md ("The relay's fast path").
"""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec

from podwatch.models import WatchType
from podwatch_relay.projection import PodMeta, StatusParts, pod_meta, status_conditions, status_parts
from podwatch_relay.snapshot import Snapshot, intern, new_snapshot
from podwatch_relay.state import Record, StatusHash
from podwatch_relay.timetext import canonical_time

#: The head of a Pod watch line exactly as the Go API server serializes it (struct field order):
#: type, kind, apiVersion, then metadata's name, generateName, namespace, selfLink, uid,
#: resourceVersion. `[^"]` is exact once `read_line` checked that the head holds no backslash.
#: Groups: 1 type, 2 name, 3 namespace, 4 uid, 5 resourceVersion. Possessive and atomic: nothing
#: to backtrack into.
HEAD = re.compile(
    rb'\{"type":"(ADDED|MODIFIED|DELETED)","object":\{"kind":"Pod","apiVersion":"v1","metadata":\{'
    rb'"name":"([^"]++)",(?>"generateName":"[^"]*+",)?"namespace":"([^"]++)",'
    rb'(?>"selfLink":"[^"]*+",)?"uid":"([^"]++)","resourceVersion":"([^"]++)"'
)
_STATUS_KEY = b',"status":{'
_SPEC_KEY = b',"spec":{'
_DELETION_KEY = b'"deletionTimestamp"'
_NODE_KEY = b'"nodeName":'
_NODE_VALUE = re.compile(rb'"nodeName":"([^"\\]*)"')
_BLANKS = b" \t\r\n"
_CONDITIONS_KEY = b'"conditions":['
_KEY_START = b"{,"
_MANAGED_KEY = b',"managedFields":['
_META_AT = len(b'{"type":"","object":{"kind":"Pod","apiVersion":"v1","metadata":')
#: By the head's type: the watch type, its `seen` key, where the metadata object starts.
_TYPES: dict[bytes, tuple[WatchType, str, int]] = {
    b"ADDED": ("ADDED", "Pod/ADDED", _META_AT + len("ADDED")),
    b"MODIFIED": ("MODIFIED", "Pod/MODIFIED", _META_AT + len("MODIFIED")),
    b"DELETED": ("DELETED", "Pod/DELETED", _META_AT + len("DELETED")),
}


class Unchanged(msgspec.Struct, gc=False):
    """A Pod line that changes nothing that matters: suppressed (the record's status hash is
    kept current). Small, as most lines are these."""

    #: the `RelayStats.seen` key (`Pod/MODIFIED`, ...)
    seen_key: str
    resource_version: str


class PodLine(msgspec.Struct, gc=False):
    """A Pod line that matters (new, changed, being deleted or deleted): what its payload is
    built from. A msgspec Struct: made in C, outside the GC (short-lived, no cycle)."""

    watch_type: WatchType
    seen_key: str
    resource_version: str
    #: of this line's status text (None: a pod deleted or being deleted, never compared)
    status_hash: StatusHash | None
    parts: StatusParts
    meta: PodMeta
    node: str | None
    snapshot: Snapshot


def read_line(
    line: bytes, head: re.Match[bytes], record_of: Callable[[str], Record | None], hints: bool = True
) -> PodLine | Unchanged | None:
    """Cut a Pod line that matched `HEAD` and compare its status with `record_of(uid)` (the
    tracker's, under the caller's lock: an `Unchanged` line restamps it); None: take the full
    path. `UnicodeDecodeError` when the head is not UTF-8 (decoded before anything is looked up).
    One function, not five: this runs for every Pod line, and each call costs more than most of
    its steps."""
    type_text, name_text, namespace_text, uid_text, version_text = head.groups()
    version = version_text.decode()
    watch_type, seen_key, meta_at = _TYPES[type_text]
    meta_end = head.end()
    if line.find(b"\\", meta_at, meta_end) != -1:
        return None  # an escape in the head (the API server writes none there)
    end = len(line)
    while end and line[end - 1] in _BLANKS:
        end -= 1
    if not line.endswith(b"}}}", 0, end):  # status, object, watch event
        return None
    uid = uid_text.decode()
    record = record_of(uid)
    # Where the status and the spec keys were in the pod's last line (`StatusHash`): most updates
    # leave both in place, so two comparisons replace two scans. The status's place counts only
    # if its text proves it (below).
    hint = record.place if record is not None and hints else None
    at = spec_at = -1
    if hint is not None:
        at = end - (hint >> 32)
        if at <= meta_end or not line.startswith(_STATUS_KEY, at):
            at = -1
    hinted = at != -1
    if not hinted:
        at = line.rfind(_STATUS_KEY)
        if at == -1:
            return None
    if hint is not None:
        spec_at = meta_end + (hint & 0xFFFFFFFF)
        if spec_at >= at or not line.startswith(_SPEC_KEY, spec_at):
            spec_at = -1
    if spec_at == -1:
        spec_at = line.find(_SPEC_KEY, meta_end, at)
        if spec_at == -1:
            return None
    start, stop = at + len(_STATUS_KEY) - 1, end - 2  # the status object: line[start:stop]
    if watch_type == "DELETED" or line.find(_DELETION_KEY, meta_end, spec_at) != -1:
        if hint is not None:  # as found by scanning, where nothing is compared
            return read_line(line, head, record_of, False)
        try:
            parts = status_parts(line[start:stop])
        except ValueError:
            return None
        return _changed(line, watch_type, seen_key, uid, version, meta_at, spec_at, start, None, parts, None)
    # The status's top-level conditions array, line[cond_at:cond_end] (empty when there is none
    # to cut): the rest of the status text and the array are hashed apart.
    cond_at = cond_end = stop
    key_at = line.find(_CONDITIONS_KEY, start, stop)
    if (
        key_at != -1
        and line[key_at - 1] in _KEY_START
        and line.find(b"{", start + 1, key_at) == -1
        and line.find(b"[", start + 1, key_at) == -1
    ):
        array_at = key_at + len(_CONDITIONS_KEY) - 1
        empty = line.startswith(b"[]", array_at)
        array_end = array_at + 2 if empty else line.find(b"}]", array_at, stop) + 2  # 1: not found
        if array_end > array_at:
            cond_at, cond_end = array_at, array_end
    conditions_text = line[cond_at:cond_end]
    rest_hash = hash((line[start:cond_at], line[cond_end:stop]))
    conditions_hash = hash(conditions_text)
    match = 0  # 2: the same status text, 1: the same but for its conditions array
    if record is not None and record.rest_hash == rest_hash:
        match = 2 if record.conditions_hash == conditions_hash else 1
    if (
        hinted
        and match != 2
        and (match == 0 or line.find(_STATUS_KEY, cond_at, cond_end) != -1)
        and line.rfind(_STATUS_KEY) != at
    ):
        # The status key found where it was is the last one (the one a scan finds) when the text
        # from it on is the same as last time; with a new conditions array, when that array holds
        # none; otherwise when the scan says so.
        return read_line(line, head, record_of, False)
    status_hash: StatusHash = (rest_hash, conditions_hash, (end - at) << 32 | (spec_at - meta_end))
    if match == 1:  # only the conditions array changed: decode it alone
        try:
            conditions = status_conditions(conditions_text)
        except ValueError:
            match = 0  # not the whole array after all (or untyped): decode the status
        else:
            if record is not None and conditions == record.conditions:
                match = 2
    if match == 2 and record is not None:  # (there is one when match is not 0)
        if record.conditions_hash != conditions_hash or record.place != status_hash[2]:
            record.restamp(status_hash)
        return Unchanged(seen_key, version)
    try:
        parts = status_parts(line[start:stop])
    except ValueError:
        return None  # not the top-level status after all: the full path decides
    namespace, name = intern(namespace_text.decode()), name_text.decode()
    if record is not None and record.holds_status(namespace, name, parts):
        record.restamp(status_hash)  # a new status text that changes nothing that matters
        return Unchanged(seen_key, version)
    snapshot = new_snapshot(
        Snapshot, (namespace, name, parts.phase, parts.reason, False, parts.conditions, parts.containers)
    )
    return _changed(
        line, watch_type, seen_key, uid, version, meta_at, spec_at, start, status_hash, parts, snapshot
    )


def _changed(
    line: bytes,
    watch_type: WatchType,
    seen_key: str,
    uid: str,
    version: str,
    meta_at: int,
    spec_at: int,
    status_at: int,
    status_hash: StatusHash | None,
    parts: StatusParts,
    snapshot: Snapshot | None,
) -> PodLine | None:
    """The `PodLine` of a pod that matters: its typed metadata and `spec.nodeName` read besides
    its status (the snapshot built here for a pod being deleted, from its metadata); None when
    they cannot be read here (the full path decides)."""
    try:
        meta = pod_meta(meta_text(line, meta_at, spec_at))
    except ValueError:
        return None
    namespace, name = meta.namespace, meta.name
    if not (namespace and name and meta.uid):
        return None  # the full path says which is missing
    if snapshot is None:
        terminating = canonical_time(meta.deletionTimestamp) is not None
        fields = (intern(namespace), name, parts.phase, parts.reason, terminating)
        snapshot = new_snapshot(Snapshot, (*fields, parts.conditions, parts.containers))
    elif namespace != snapshot.namespace or name != snapshot.name or meta.uid != uid:
        return None  # a key given twice in the metadata: the last one counts, as in the full path
    node = None
    node_at = line.rfind(_NODE_KEY, spec_at, status_at)
    if node_at != -1:
        value = _NODE_VALUE.match(line, node_at)
        if value is None:
            return None
        node = value.group(1).decode()
    return PodLine(watch_type, seen_key, version, status_hash, parts, meta, node, snapshot)


def meta_text(line: bytes, meta_at: int, spec_at: int) -> bytes:
    """The pod's `metadata` object, line[meta_at:spec_at], without its `managedFields` (often
    most of it, and never read) when they are its last member, as the API server writes them;
    otherwise the whole object."""
    managed_at = line.find(_MANAGED_KEY, meta_at, spec_at)
    last = managed_at != -1 and line[spec_at - 2 : spec_at] == b"]}"
    # No other `]` from their key on: their array closes the metadata (a find stops at the first
    # one and runs as memchr; a count walked the whole of them byte by byte)
    if last and line.find(b"]", managed_at, spec_at - 2) == -1:
        return line[meta_at:managed_at] + b"}"
    return line[meta_at:spec_at]
