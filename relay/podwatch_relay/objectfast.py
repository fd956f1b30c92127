"""The hot path of `objects.ObjectRelay`: tell an unchanged object from its raw text, before any
projection.

Most updates of other kinds change nothing the relay forwards (a resourceVersion, a managedFields
time, an annotation, a label not forwarded). `decode` reads a watch line with msgspec into `Line`:
the identity fields, the labels, and the *raw text* of every other part a projection can read
(owner references, the two times, `spec`, `status`, `data`, `binaryData`, `immutable`); msgspec
skips the rest (managedFields, annotations) without building it. `Line.key` is a hash of those raw
parts, the forwarded labels and the number of the others: when it equals the key
of the object's last forwarded version, the projection is the same (it is a function of exactly
these parts), so the line is suppressed with no projection at all. Otherwise `Line.object` rebuilds
the object from those parts (orjson) and the plain path projects and diffs it, with the same
result as from the whole line: the projection reads nothing else (`READ`, checked against every
kind's allow-list in tests/unit/test_relay_objects.py).

Anything `decode` does not take (not an ADDED/MODIFIED of an object with metadata, a value of an
unexpected type) returns None: the plain path then handles the line and says what was wrong.
"""

from __future__ import annotations

from typing import Any

import msgspec

from podwatch_relay._json import loads
from podwatch_relay.redact import LabelAllowlist

#: The top-level parts of an object that projections read (besides metadata)
READ = frozenset({"spec", "status", "data", "binaryData", "immutable"})


#: A part the line does not have (msgspec takes no `Raw | None`)
_ABSENT = msgspec.Raw(b"")


class Meta(msgspec.Struct, gc=False):
    name: Any = None
    namespace: Any = None
    uid: Any = None
    resourceVersion: Any = None
    labels: dict[str, str] | None = None
    ownerReferences: msgspec.Raw = _ABSENT
    creationTimestamp: msgspec.Raw = _ABSENT
    deletionTimestamp: msgspec.Raw = _ABSENT


class Obj(msgspec.Struct, gc=False):
    metadata: Meta | None = None
    spec: msgspec.Raw = _ABSENT
    status: msgspec.Raw = _ABSENT
    data: msgspec.Raw = _ABSENT
    binaryData: msgspec.Raw = _ABSENT  # the API's name
    immutable: msgspec.Raw = _ABSENT


class Event(msgspec.Struct, gc=False):
    type: Any = None
    object: Obj | None = None


_DECODER = msgspec.json.Decoder(Event)
_META_PARTS = ("ownerReferences", "creationTimestamp", "deletionTimestamp")


class Line:
    """An ADDED/MODIFIED line, read for the hot path (see the module)."""

    __slots__ = ("key", "meta", "obj", "watch_type")

    def __init__(self, watch_type: str, obj: Obj, meta: Meta, allowlist: LabelAllowlist) -> None:
        self.watch_type = watch_type
        self.obj = obj
        self.meta = meta
        labels = meta.labels or {}
        keys, prefixes = allowlist.keys, allowlist.prefixes
        # the labels forwarded, and how many are not: a change of another label's value is no news
        kept = tuple((k, v) for k, v in labels.items() if k in keys or k.startswith(prefixes))
        self.key = hash(
            (
                kept,
                len(labels) - len(kept),
                bytes(meta.ownerReferences),
                bytes(meta.creationTimestamp),
                bytes(meta.deletionTimestamp),
                bytes(obj.spec),
                bytes(obj.status),
                bytes(obj.data),
                bytes(obj.binaryData),
                bytes(obj.immutable),
            )
        )

    def object(self) -> dict[str, Any]:
        """The object as far as projections read it (decoded from the raw parts)."""
        meta: dict[str, Any] = {
            "name": self.meta.name,
            "namespace": self.meta.namespace,
            "uid": self.meta.uid,
            "resourceVersion": self.meta.resourceVersion,
        }
        if self.meta.labels is not None:
            meta["labels"] = self.meta.labels
        for part in _META_PARTS:
            raw = getattr(self.meta, part)
            if raw:
                meta[part] = loads(bytes(raw))
        out: dict[str, Any] = {"metadata": meta}
        for part in READ:
            raw = getattr(self.obj, part)
            if raw:
                out[part] = loads(bytes(raw))
        return out


def decode(line: bytes, allowlist: LabelAllowlist) -> Line | None:
    """The line for the hot path, or None (the plain path takes it)."""
    try:
        event = _DECODER.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    obj = event.object
    if event.type not in {"ADDED", "MODIFIED"} or obj is None or obj.metadata is None:
        return None
    return Line(event.type, obj, obj.metadata, allowlist)
