"""The typed fast path (msgspec structs of a pod's `status` and `metadata`) against the full path
(orjson dicts read by the lenient helpers): the same snapshot and the same payload, byte for byte,
for everything the typed decode takes; the same outcome and envelopes, through the full path, for
what it does not take (a value of an unexpected type)."""

from __future__ import annotations

import copy
import json
import tracemalloc
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson
import pytest

from podwatch_relay._json import fragment
from podwatch_relay.fastpath import HEAD
from podwatch_relay.pipeline import Relay
from podwatch_relay.projection import (
    container_troubled,
    parts_troubled,
    pod_meta,
    pod_payload,
    pod_terminating,
    status_conditions,
    status_parts,
    typed_pod_payload,
)
from podwatch_relay.sink import SendResult
from podwatch_relay.snapshot import conditions_raw, snapshot_raw
from tests.fakeapi.pods import container_status, pod

RUNNING = {"running": {"startedAt": "2026-11-20T09:00:10Z"}}
LONG = "é" * 700 + "😀" * 400  # beyond MAX_TEXT characters: truncated, by characters

#: Status texts the typed decode takes: missing fields, nulls, empty strings, unicode, unknown
#: fields of every JSON type, every kind of container, states the lenient readers read alike.
TAKEN: dict[str, str] = {
    "empty": "{}",
    "nulls": json.dumps(
        {
            "phase": None,
            "reason": None,
            "message": None,
            "conditions": None,
            "initContainerStatuses": None,
            "containerStatuses": None,
            "ephemeralContainerStatuses": None,
        }
    ),
    "empty-strings": json.dumps(
        {
            "phase": "",
            "reason": "",
            "message": "",
            "conditions": [{"type": "", "status": "True"}, {"type": "Ready", "status": ""}, {}],
            "containerStatuses": [{"name": "", "image": "", "state": {"waiting": {"reason": ""}}}],
        }
    ),
    "null-fields": json.dumps(
        {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": None,
                    "message": None,
                    "lastTransitionTime": None,
                }
            ],
            "containerStatuses": [
                {
                    "name": None,
                    "image": None,
                    "ready": None,
                    "started": None,
                    "restartCount": None,
                    "state": None,
                    "lastState": None,
                },
                {
                    "name": "b",
                    "state": {"waiting": None},
                    "lastState": {"terminated": None},
                },
                {
                    "name": "c",
                    "state": {"terminated": {"reason": None, "exitCode": None, "message": None}},
                    "lastState": {"terminated": {"reason": None, "exitCode": None, "finishedAt": None}},
                },
            ],
        }
    ),
    "states": json.dumps(
        {
            "containerStatuses": [
                {"name": "no-state"},
                {"name": "empty-state", "state": {}},
                {"name": "empty-detail", "state": {"waiting": {}}},
                # the lenient reader takes the first of waiting, running, terminated that is present
                {
                    "name": "two-states",
                    "state": {"terminated": {"reason": "Error"}, "waiting": {"reason": "X"}},
                },
                {
                    "name": "running-reason",
                    "state": {"running": {"reason": "odd", "message": "m", "exitCode": 3}},
                },
                {"name": "terminated", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}},
                {"name": "zero-exit", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                {"name": "negative-exit", "state": {"terminated": {"exitCode": -9}}},
                {"name": "empty-last", "lastState": {}, "state": RUNNING},
                {"name": "empty-last-terminated", "lastState": {"terminated": {}}, "state": RUNNING},
                {
                    "name": "last-fraction",
                    "state": RUNNING,
                    "lastState": {
                        "terminated": {
                            "reason": "Error",
                            "exitCode": 1,
                            "finishedAt": "2026-11-20T09:05:00.5+02:00",
                        }
                    },
                },
                {
                    "name": "last-bad-time",
                    "state": RUNNING,
                    "lastState": {"terminated": {"reason": "Error", "finishedAt": "yesterday"}},
                },
                {"name": "last-other", "state": RUNNING, "lastState": {"waiting": {"reason": "not read"}}},
            ]
        }
    ),
    "every-kind": json.dumps(
        {
            "phase": "Pending",
            "reason": "Evicted",
            "message": LONG,
            "initContainerStatuses": [container_status("init", terminated=("Completed", 0))],
            "containerStatuses": [
                container_status("app", restarts=4, waiting="CrashLoopBackOff", last_terminated=("Error", 2)),
                container_status("sidecar", ready=False),
            ],
            "ephemeralContainerStatuses": [container_status("debug", running=False)],
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": LONG},
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-11-20T09:00:00.123456Z",
                },
                {"type": "Initialized", "status": "True", "lastTransitionTime": "not a time"},
            ],
        }
    ),
    "unicode": json.dumps(
        {
            "phase": "Running",
            "message": 'quote " backslash \\ tab \t nul \u0000 é 日本 😀',
            "containerStatuses": [
                {
                    "name": "ü-app",
                    "image": "registry.example.com/ü:1",
                    "state": {"waiting": {"reason": "Grund", "message": "message: 😀 \u2028"}},
                }
            ],
        },
        ensure_ascii=False,
    ),
    "unicode-escaped": json.dumps({"phase": "Running", "message": "é 😀 \u2028"}, ensure_ascii=True),
    "unknown-fields": json.dumps(
        {
            "qosClass": "Burstable",
            "hostIPs": [{"ip": "10.0.0.1"}],
            "resize": None,
            "observedGeneration": 12,
            "ratio": 1.5e300,
            "nested": {"a": [1, 2.5, True, None, {"b": "c"}], "status": {"phase": "not this one"}},
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "state": {"running": {"startedAt": "2026-11-20T09:00:10Z"}},
                    "ready": True,
                    "restartCount": 0,
                    "image": "img:1",
                    "imageID": "img@sha256:" + "0" * 64,
                    "containerID": "containerd://" + "a" * 64,
                    "started": True,
                    "allocatedResources": {"cpu": "100m"},
                    "resources": {"limits": {"memory": "1Gi"}},
                    "volumeMounts": [{"name": "v", "mountPath": "/v", "readOnly": True}],
                    "user": {"linux": {"uid": 0, "gid": 0, "supplementalGroups": [0, 1]}},
                    "allocatedResourcesStatus": [{"name": "x", "resources": []}],
                    "stopSignal": "SIGTERM",
                }
            ],
        }
    ),
    "big-ints": json.dumps(
        {
            "containerStatuses": [
                {"name": "a", "restartCount": 2**63 - 1, "state": {"terminated": {"exitCode": -(2**63)}}},
            ]
        }
    ),
}

#: Status texts the typed decode does not take (the full path decides).
REFUSED: dict[str, str] = {
    "not-an-object": "[]",
    "phase-number": '{"phase": 5}',
    "conditions-string": '{"conditions": "Ready"}',
    "condition-not-object": '{"conditions": [5]}',
    "condition-type-number": '{"conditions": [{"type": 5, "status": "True"}]}',
    "statuses-object": '{"containerStatuses": {}}',
    "container-string": '{"containerStatuses": ["app"]}',
    "name-number": '{"containerStatuses": [{"name": 5}]}',
    "ready-string": '{"containerStatuses": [{"name": "a", "ready": "yes"}]}',
    "started-number": '{"containerStatuses": [{"name": "a", "started": 1}]}',
    "restarts-string": '{"containerStatuses": [{"name": "a", "restartCount": "3"}]}',
    "restarts-bool": '{"containerStatuses": [{"name": "a", "restartCount": true}]}',
    "restarts-float": '{"containerStatuses": [{"name": "a", "restartCount": 1.0}]}',
    "restarts-64bit": '{"containerStatuses": [{"name": "a", "restartCount": 9223372036854775808}]}',
    "restarts-huge": '{"containerStatuses": [{"name": "a", "restartCount": 100000000000000000000}]}',
    "exit-bool": '{"containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": true}}}]}',
    "state-string": '{"containerStatuses": [{"name": "a", "state": "running"}]}',
    "detail-string": '{"containerStatuses": [{"name": "a", "state": {"waiting": "x"}}]}',
    "last-list": '{"containerStatuses": [{"name": "a", "lastState": []}]}',
    "message-number": '{"containerStatuses": [{"name": "a", "state": {"waiting": {"message": 5}}}]}',
}


def _meta(**changes: Any) -> dict[str, Any]:
    meta: dict[str, Any] = copy.deepcopy(pod()["metadata"])
    meta.update(changes)
    return meta


#: Metadata the typed decode takes.
META_TAKEN: dict[str, dict[str, Any]] = {
    "usual": _meta(),
    "no-labels": {k: v for k, v in _meta().items() if k != "labels"},
    "null-labels": _meta(labels=None),
    "unicode-labels": _meta(labels={"é": "日本", "app": "😀"}),
    "owners": _meta(
        ownerReferences=[
            {"kind": "ReplicaSet", "name": "rs", "uid": "u-1", "controller": True},
            {"kind": "Job", "name": "j"},
            {"kind": "Node", "name": "n", "uid": "", "controller": False},
            {"kind": "", "name": "skipped"},
            {"kind": "Skipped", "name": None},
            {},
        ]
    ),
    "null-owners": _meta(ownerReferences=None),
    "times": _meta(creationTimestamp="2026-11-20T09:00:00.5+01:00", deletionTimestamp="2026-11-20T09:05:00Z"),
    "bad-times": _meta(creationTimestamp="soon", deletionTimestamp=None),
    "no-version": _meta(resourceVersion=None),
    "unknown": _meta(
        annotations={"a": "b"}, finalizers=["f"], generation=3, managedFields=[{"fieldsV1": {"f:x": {}}}]
    ),
}

#: Metadata the typed decode does not take.
META_REFUSED: dict[str, dict[str, Any]] = {
    "label-number": _meta(labels={"a": 1}),
    "labels-list": _meta(labels=["a"]),
    "owner-number": _meta(ownerReferences=[5]),
    "controller-string": _meta(ownerReferences=[{"kind": "Job", "name": "j", "controller": "true"}]),
    "created-number": _meta(creationTimestamp=5),
}


def _full(meta_text: bytes, status_text: bytes) -> tuple[tuple[Any, ...], bytes]:
    """The full path's snapshot parts and payload for these texts (decoded as it decodes them)."""
    meta, status = orjson.loads(meta_text), orjson.loads(status_text)
    snapshot = snapshot_raw(meta["namespace"], meta["name"], pod_terminating(meta), status)
    payload = pod_payload(
        meta,
        "node-1",
        status,
        containers=snapshot[6],
        watch_type="MODIFIED",
        initial_sync=True,
        observed_at="2026-11-20T09:00:00Z",
    )
    return (snapshot[2], snapshot[3], snapshot[5], snapshot[6]), orjson.dumps(payload)


def _typed(meta_text: bytes, status_text: bytes) -> tuple[tuple[Any, ...], bytes]:
    parts = status_parts(status_text)
    payload = typed_pod_payload(
        pod_meta(meta_text),
        "node-1",
        parts,
        watch_type="MODIFIED",
        initial_sync=True,
        observed_at="2026-11-20T09:00:00Z",
    )
    return (parts.phase, parts.reason, parts.conditions, parts.containers), orjson.dumps(payload)


@pytest.mark.parametrize("status", TAKEN.values(), ids=TAKEN.keys())
@pytest.mark.parametrize("meta", META_TAKEN.values(), ids=META_TAKEN.keys())
def test_typed_parts_and_payload_are_the_full_paths(status: str, meta: dict[str, Any]) -> None:
    meta_text, status_text = json.dumps(meta).encode(), status.encode()
    # Twice: the second time from the container cache
    for _ in range(2):
        assert _typed(meta_text, status_text) == _full(meta_text, status_text)


@pytest.mark.parametrize("status", TAKEN.values(), ids=TAKEN.keys())
def test_typed_conditions_are_the_full_paths(status: str) -> None:
    conditions = json.dumps(json.loads(status).get("conditions") or []).encode()
    assert status_conditions(conditions) == conditions_raw(orjson.loads(conditions))


def test_conditions_compared_alone_read_only_type_and_status() -> None:
    # What the snapshot does not keep of a condition is not read (nor refused) when only the
    # conditions array changed; a type or status of another type is refused
    text = b'[{"type":"Ready","status":"True","reason":5,"lastProbeTime":{"x":[1]}},{"status":"False"}]'
    assert status_conditions(text) == conditions_raw(orjson.loads(text)) == (("Ready", "True"),)
    with pytest.raises(msgspec.DecodeError):
        status_conditions(b'[{"type":"Ready","status":true}]')


def test_duplicate_keys_read_the_last_as_the_full_path() -> None:
    status = (
        b'{"phase":"Pending","phase":"Running","containerStatuses":[{"name":"a","ready":false,'
        b'"ready":true,"state":{"waiting":{"reason":"A"}},"state":{"running":{}}}],'
        b'"conditions":[{"type":"Ready","status":"False","status":"True"}]}'
    )
    meta = json.dumps(_meta()).encode()[:-1] + b',"labels":{"x":"1","x":"2"}}'
    assert _typed(meta, status) == _full(meta, status)


@pytest.mark.parametrize("status", REFUSED.values(), ids=REFUSED.keys())
def test_typed_status_decode_refuses_unexpected_types(status: str) -> None:
    with pytest.raises(msgspec.DecodeError):  # a ValueError, as the fast path catches
        status_parts(status.encode())


@pytest.mark.parametrize("meta", META_REFUSED.values(), ids=META_REFUSED.keys())
def test_typed_meta_decode_refuses_unexpected_types(meta: dict[str, Any]) -> None:
    with pytest.raises(msgspec.DecodeError):
        pod_meta(json.dumps(meta).encode())


def test_typed_decode_refuses_invalid_utf8_that_it_would_skip() -> None:
    # msgspec does not check strings it skips; orjson, the full path, rejects the whole text
    with pytest.raises(UnicodeDecodeError):
        status_parts(b'{"hostIP":"\xff","phase":"Running"}')
    with pytest.raises(UnicodeDecodeError):
        pod_meta(b'{"name":"a","annotations":{"a":"\xed\xa0\x80"}}')
    with pytest.raises(UnicodeDecodeError):
        status_conditions(b'[{"type":"Ready","status":"True","note":"\xc3"}]')


def test_typed_decode_refuses_nesting_deeper_than_it_follows() -> None:
    # msgspec raises RecursionError there (not a ValueError): refused as the full path refuses
    deep = b"[" * 20_000 + b"]" * 20_000
    with pytest.raises(ValueError, match="nested too deep"):
        status_parts(b'{"x":' + deep + b',"phase":"Running"}')
    with pytest.raises(ValueError, match="nested too deep"):
        pod_meta(b'{"name":"a","x":' + deep + b"}")
    with pytest.raises(ValueError, match="nested too deep"):
        status_conditions(b'[{"type":"Ready","status":"True","x":' + deep + b"}]")


# --- through the relay: fast path (typed) and full path agree ---------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        self.bodies.extend(bodies)
        return SendResult(sent=len(bodies))


def _line(watch_type: str, obj: dict[str, Any], status: bytes | None = None) -> bytes:
    """A watch line in the API server's layout; `status` replaces the object's status text."""
    if status is None:
        return orjson.dumps({"type": watch_type, "object": obj})
    rest = {k: v for k, v in obj.items() if k != "status"}
    return orjson.dumps({"type": watch_type, "object": rest})[:-2] + b',"status":' + status + b"}}"


def _run(lines: list[bytes], *, fast: bool) -> tuple[list[str], list[dict[str, Any]], int]:
    """Outcomes, envelopes (less clock stamps) and how many lines took the full path."""
    sink = _Sink()
    relay = Relay(sink=sink, cluster_id="cluster-1", relay_version="test")
    full = 0
    handle = relay.handle

    def counting(event: Any, *, initial_sync: bool = False) -> str:
        nonlocal full
        full += 1
        return handle(event, initial_sync=initial_sync)

    relay.handle = counting  # type: ignore[method-assign,assignment]
    if not fast:
        relay._fast_pod = lambda *args: None  # type: ignore[method-assign]
    outcomes = [relay.handle_line(line) for line in lines]
    relay.flush()
    bodies = [json.loads(body) for body in sink.bodies]
    for body in bodies:
        body.pop("sent_at")
        body["payload"].pop("observed_at", None)
    return outcomes, bodies, full


def _stream(statuses: list[bytes], meta: dict[str, Any] | None = None) -> list[bytes]:
    """ADDED with the first status, MODIFIED with each next (and back), then being deleted, DELETED."""
    obj = pod(rv="1")
    if meta is not None:
        obj["metadata"] = meta
    lines = [_line("ADDED", obj, statuses[0])]
    for i, status in enumerate([*statuses[1:], statuses[0], statuses[0]], start=2):
        obj["metadata"]["resourceVersion"] = str(i)
        lines.append(_line("MODIFIED", obj, status))
    obj["metadata"]["deletionTimestamp"] = "2026-11-20T09:10:00Z"
    lines.append(_line("MODIFIED", obj, statuses[-1]))
    lines.append(_line("DELETED", obj, statuses[-1]))
    return lines


def test_tricky_statuses_take_the_typed_path_and_agree_with_the_full_path() -> None:
    lines = _stream([s.encode() for s in TAKEN.values()])
    fast_outcomes, fast_bodies, full_used = _run(lines, fast=True)
    assert (fast_outcomes, fast_bodies) == _run(lines, fast=False)[:2]
    assert full_used == 0  # every line went the fast (typed) way
    assert fast_outcomes.count("forwarded") >= len(TAKEN)


@pytest.mark.parametrize("meta", META_TAKEN.values(), ids=META_TAKEN.keys())
def test_tricky_metadata_takes_the_typed_path_and_agrees(meta: dict[str, Any]) -> None:
    meta = {**meta, "name": "api-7d9f8b6c5d-x2x7q", "resourceVersion": "1"}
    meta.pop("deletionTimestamp", None)
    lines = _stream([TAKEN["every-kind"].encode(), TAKEN["states"].encode()], meta)
    fast_outcomes, fast_bodies, full_used = _run(lines, fast=True)
    assert (fast_outcomes, fast_bodies) == _run(lines, fast=False)[:2]
    assert full_used == 0


@pytest.mark.parametrize("status", REFUSED.values(), ids=REFUSED.keys())
def test_refused_statuses_take_the_full_path_with_the_same_result(status: str) -> None:
    good = TAKEN["every-kind"].encode()
    lines = _stream([good, status.encode(), good])
    fast = _run(lines, fast=True)
    assert fast[:2] == _run(lines, fast=False)[:2]
    assert fast[2] > 0


@pytest.mark.parametrize("meta", META_REFUSED.values(), ids=META_REFUSED.keys())
def test_refused_metadata_takes_the_full_path_with_the_same_result(meta: dict[str, Any]) -> None:
    lines = _stream([TAKEN["every-kind"].encode(), TAKEN["states"].encode()], meta)
    fast = _run(lines, fast=True)
    assert fast[:2] == _run(lines, fast=False)[:2]
    assert fast[2] > 0


DEEP = b"[" * 20_000 + b"]" * 20_000


def _in_status(text: bytes) -> Any:
    """A MODIFIED line whose status has `text` (a JSON member) first, then the good status's members."""
    good = TAKEN["every-kind"].encode()
    return lambda rv: _line("MODIFIED", pod(rv=rv), b"{" + text + b"," + good[1:])


def _in_meta(text: bytes) -> Any:
    """A MODIFIED line whose metadata ends with `text` (a JSON member)."""

    def line(rv: str) -> bytes:
        raw = _line("MODIFIED", pod(rv=rv), TAKEN["every-kind"].encode())
        return raw.replace(
            b',"resourceVersion":"' + rv.encode() + b'"',
            b',"resourceVersion":"' + rv.encode() + b'",' + text,
            1,
        )

    return line


def _in_head(old: bytes, new: bytes) -> Any:
    return lambda rv: _line("MODIFIED", pod(rv=rv), TAKEN["every-kind"].encode()).replace(old, new, 1)


#: Input that is not JSON, by the reason the relay counts, where the fast path reads (the head, the
#: status's members it reads and those it skips, the metadata): (reason, line of resourceVersion).
BAD_INPUT: dict[str, tuple[str, Any]] = {
    "utf8-name": ("invalid-utf8", _in_head(b"api-7d9f8b6c5d", b"api-\xff\xfe")),
    "utf8-uid": ("invalid-utf8", _in_head(b'"uid":"', b'"uid":"\xc3')),
    "utf8-status-skipped": ("invalid-utf8", _in_status(b'"hostIP":"\xff"')),
    "utf8-status-read": ("invalid-utf8", _in_status(b'"message":"\xed\xa0\x80"')),
    "utf8-meta": ("invalid-utf8", _in_meta(b'"annotations":{"a":"\xc3"}')),
    "deep-status": ("too-deep", _in_status(b'"x":' + DEEP)),
    "deep-meta": ("too-deep", _in_meta(b'"x":' + DEEP)),
    "surrogate-status-read": ("lone-surrogate", _in_status(b'"message":"\\ud800"')),
    "surrogate-status-skipped": ("lone-surrogate", _in_status(b'"x":"a\\udc00"')),
    "surrogate-meta": ("lone-surrogate", _in_meta(b'"labels":{"a":"\\ud83d"}')),
    "huge-status-read": (
        "huge-number",
        _in_status(b'"containerStatuses":[{"name":"a","restartCount":1e999}]'),
    ),
    "huge-meta-read": (
        "huge-number",
        _in_meta(b'"ownerReferences":[{"kind":"Job","name":"j","controller":-1e400}]'),
    ),
    "nan-status-read": ("nan", _in_status(b'"containerStatuses":[{"name":"a","restartCount":NaN}]')),
    "nan-status-skipped": ("nan", _in_status(b'"x":[Infinity]')),
    "nan-meta": ("nan", _in_meta(b'"generation":-Infinity')),
}


@pytest.mark.parametrize(("reason", "make"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_input_that_is_not_json_is_malformed_with_its_reason_on_both_paths(reason: str, make: Any) -> None:
    # Between good lines of the same pod (the fast path knows it, so it compares and decodes)
    good = TAKEN["every-kind"].encode()
    bad = make("9")
    assert bad != _line("MODIFIED", pod(rv="9"), good)
    lines = [*_stream([good, TAKEN["states"].encode()]), bad, make("10")]
    fast = _run(lines, fast=True)
    assert fast[:2] == _run(lines, fast=False)[:2]
    assert fast[0][-2:] == [f"malformed:{reason}"] * 2


def test_a_metadata_key_given_twice_counts_once_as_in_the_full_path() -> None:
    # The head of the line names one pod, a later duplicate `name` another: the full path decides
    obj = pod(rv="1")
    line = _line("ADDED", obj)
    twice = line.replace(b'"resourceVersion":"1",', b'"resourceVersion":"1","name":"other",', 1)
    assert twice != line
    fast = _run([twice], fast=True)
    assert fast[:2] == _run([twice], fast=False)[:2]
    assert fast[1][0]["payload"]["name"] == "other"


@pytest.mark.parametrize("status", TAKEN.values(), ids=TAKEN.keys())
def test_parts_troubled_reads_what_the_container_payloads_say(status: str) -> None:
    # Read from the snapshot tuples and, for a terminated container, its encoded payload
    full = pod_payload(
        {"namespace": "ns", "name": "p", "uid": "u"},
        None,
        orjson.loads(status),
        containers=snapshot_raw("ns", "p", False, orjson.loads(status))[6],
        watch_type="MODIFIED",
        initial_sync=True,
        observed_at="2026-11-20T09:00:00Z",
    )
    for _ in range(2):  # the second time from the container cache
        parts = status_parts(status.encode())
        assert parts_troubled(parts) == any(container_troubled(c) for c in full["containers"])


def test_parts_troubled_of_each_kind_of_trouble() -> None:
    for containers, troubled in [
        ([container_status("a")], False),
        ([container_status("a", waiting="ContainerCreating")], False),
        ([container_status("a", waiting="CrashLoopBackOff")], True),
        ([container_status("a", terminated=("Completed", 0))], False),
        ([container_status("a", terminated=("Error", 1))], True),
        ([container_status("a", last_terminated=("Completed", 0))], False),
        ([container_status("a", last_terminated=("OOMKilled", 137))], True),
        ([container_status("a"), container_status("b", terminated=("Error", 2))], True),
    ]:
        parts = status_parts(orjson.dumps({"phase": "Running", "containerStatuses": containers}))
        assert parts_troubled(parts) is troubled, containers


def test_encoded_container_payloads_hold_no_spare_buffer() -> None:
    # orjson's bytes keep the buffer they were written into (4 KB): the cache keeps a copy
    parts = status_parts(orjson.dumps({"containerStatuses": [container_status("spare-buffer")]}))
    encoded = orjson.dumps(parts.container_payloads[0])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = fragment(orjson.loads(encoded))
        assert tracemalloc.get_traced_memory()[0] - before < 2 * len(encoded) + 200
    finally:
        tracemalloc.stop()
    assert orjson.dumps(kept) == encoded


def _moving_stream() -> list[bytes]:
    """One pod whose lines move its status and spec about: the metadata and the status grow and
    shrink, the conditions array changes alone (with and without a status key inside it), keys
    that look like the status's or the spec's appear where the last line had them."""
    obj = pod(rv="1")
    meta, status = obj["metadata"], obj["status"]
    lines = [_line("ADDED", obj)]

    def modified() -> None:
        meta["resourceVersion"] = str(len(lines) + 1)
        lines.append(_line("MODIFIED", obj))

    modified()  # the same (status and spec where they were)
    meta["labels"]["rollout-step"] = "1"  # the spec moves, the status does not
    modified()
    meta["labels"]["rollout-step"] = "12345"
    modified()
    status["conditions"][0]["lastProbeTime"] = "2026-11-20T09:01:00Z"  # conditions alone, longer
    modified()
    status["conditions"][0]["lastProbeTime"] = "2026-11-20T09:02:00Z"  # same length
    modified()
    # A status key in the conditions array, where the line before had the same text but for it
    status["conditions"][0]["x"] = {"abc": 1, "stat": {"phase": "Failed"}}
    modified()
    status["conditions"][0]["x"] = {"a": 1, "status": {"phase": "Failed"}}
    modified()
    status["conditions"][0]["x"] = {"a": 2, "status": {"phase": "Failed"}}
    modified()
    del status["conditions"][0]["x"]
    modified()
    status["containerStatuses"][0]["ready"] = False  # a change: decoded
    status["conditions"][1]["status"] = "False"
    modified()
    status["message"] = "m" * 50  # the status grows: found anew
    modified()
    del status["message"]
    # A status key after the one found where it was, in a line as long as the one before
    status["x"] = {"abc": 1, "stat": {}}
    modified()
    status["x"] = {"a": 1, "status": {}}
    modified()
    del status["x"]
    obj["extra"] = {"a": 1, "status": {"phase": "Failed"}}  # after the pod's status (not from the API server)
    modified()
    del obj["extra"]
    meta["annotations"] = {"spec": "x", "note": ',"spec":{'}  # the spec key's text in a string
    modified()
    meta["x"] = {"a": 1, "spec": {"b": 1}}  # a spec key in the metadata (not from the API server)
    modified()
    del meta["x"]
    modified()
    meta["deletionTimestamp"] = "2026-11-20T09:10:00Z"  # being deleted: no shortcut
    modified()
    lines.append(_line("DELETED", obj))
    return lines


def test_status_and_spec_found_where_they_were_agree_with_the_full_path() -> None:
    lines = _moving_stream()
    fast = _run(lines, fast=True)
    assert fast[:2] == _run(lines, fast=False)[:2]
    assert fast[0].count("forwarded") >= 4
    assert fast[0].count("suppressed") >= 6


def test_a_line_cut_where_the_last_one_was_takes_the_same_way_as_a_scan() -> None:
    # Each line alone (a new relay: nothing to go by) and after the line before (where it was):
    # the same outcomes, envelopes and full-path lines
    lines = _moving_stream()
    for i in range(1, len(lines)):
        assert _run(lines[i - 1 : i + 1], fast=True)[1:] == _run(lines[i - 1 : i + 1], fast=True)[1:]
        assert _run(lines[i - 1 : i + 1], fast=True)[:2] == _run(lines[i - 1 : i + 1], fast=False)[:2]


@pytest.mark.parametrize(("key", "value"), [("name", "api\\x"), ("generateName", "api-\\"), ("uid", "u\\1")])
def test_a_head_with_an_escape_takes_the_full_path(key: str, value: str) -> None:
    # The head's pattern takes it (`[^"]`): the escape sends the line the full way
    obj = pod(rv="1")
    meta = obj["metadata"]
    obj["metadata"] = {"name": meta["name"], "generateName": "api-", **meta, key: value}
    line = _line("ADDED", obj)
    assert HEAD.match(line) is not None
    assert b"\\" in line[: line.index(b'"resourceVersion"')]
    fast = _run([line], fast=True)
    assert fast[:2] == _run([line], fast=False)[:2]
    assert fast[2] == 1
