"""Relay: outcome of every kind of watch input, batching, envelope ids, initial sync, enroll."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from podwatch import ids
from podwatch.models import EnrollEnvelope, KubeEventEnvelope, PodEnvelope
from podwatch.wire import parse_envelope
from podwatch_relay import timetext
from podwatch_relay.envelopes import pod_event_id
from podwatch_relay.errors import SinkUnavailable
from podwatch_relay.pipeline import Relay
from podwatch_relay.sink import SendResult
from tests.fakeapi.pods import container_status, core_event, pod


class RecordingSink:
    """Accepts everything and remembers each `send` call's bodies."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        self.calls.append(list(bodies))
        return SendResult(sent=len(bodies), calls=1)

    @property
    def bodies(self) -> list[str]:
        return [b for call in self.calls for b in call]


class DownSink:
    """SQS unreachable: gives up on everything it is given."""

    def send(self, bodies: Sequence[str]) -> SendResult:
        raise SinkUnavailable("down", pending=bodies)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def relay(sink: RecordingSink) -> Relay:
    return Relay(sink=sink, cluster_id="cluster-1", relay_version="test")


def _line(event: dict[str, Any]) -> str:
    return json.dumps(event)


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        ('{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"trunc', "malformed:json"),
        ("[1, 2]", "malformed:not-an-object"),
        ('{"object": {}}', "malformed:missing-type"),
        ('{"type": "WHATEVER", "object": {"kind": "Pod"}}', "malformed:unknown-type"),
        ('{"type": "ADDED"}', "malformed:missing-object"),
        (
            '{"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "x", "namespace": "a"}}}',
            "malformed:pod-without-uid",
        ),
        (
            '{"type": "ADDED", "object": {"kind": "ConfigMap", "metadata": {"name": "c"}}}',
            "skipped:kind-ConfigMap",
        ),
        (_line({"type": "ADDED", "object": core_event(involved_kind="Node")}), "skipped:not-a-pod-event"),
        (_line({"type": "DELETED", "object": core_event()}), "skipped:event-deleted"),
        ('{"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "9"}}}', "bookmark"),
        ('{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}', "relist"),
        ('{"type": "ERROR", "object": {"kind": "Status", "code": 500}}', "error:500"),
    ],
)
def test_every_kind_of_input_gets_its_outcome_and_nothing_is_sent(
    relay: Relay, sink: RecordingSink, line: str, outcome: str
) -> None:
    # When a line that carries no pod change is handled
    result = relay.handle_line(line)
    relay.flush()

    # Then it gets its outcome, is counted once, and nothing reaches the sink
    assert result == outcome
    assert relay.stats.outcomes == {outcome: 1}
    assert relay.stats.input_events == 1
    assert sink.bodies == []


def test_bad_lines_do_not_stop_the_stream(relay: Relay, sink: RecordingSink) -> None:
    # Given a stream with bad lines between good ones
    lines = [
        _line({"type": "ADDED", "object": pod(name="a", rv="1")}),
        "not json",
        "",
        _line({"type": "WHATEVER", "object": {}}),
        _line({"type": "ADDED", "object": pod(name="b", rv="2")}),
    ]

    # When all are handled
    outcomes = [relay.handle_line(line) for line in lines]
    relay.flush()

    # Then the good ones are forwarded, the bad ones counted, the blank one ignored
    assert outcomes == ["forwarded", "malformed:json", "ignored:blank", "malformed:unknown-type", "forwarded"]
    s = relay.stats
    assert (s.input_events, s.forwarded, s.malformed) == (4, 2, 2)
    assert s.input_events == s.forwarded + s.suppressed + s.bookmarks + s.skipped + s.malformed + s.errors
    assert [parse_envelope(b).payload.name for b in sink.bodies] == ["a", "b"]


def test_a_bug_while_handling_one_event_costs_that_event_only(
    relay: Relay, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an Event projection that fails (a bug) for one Event only, on the full path
    from podwatch_relay import pipeline

    real = pipeline.project_event

    def buggy(obj: Any, **kwargs: Any) -> Any:
        if obj["metadata"]["name"] == "cursed":
            raise TypeError("a bug")
        return real(obj, **kwargs)

    monkeypatch.setattr(pipeline, "project_event", buggy)
    lines = [
        _line({"type": "ADDED", "object": core_event(name="cursed")}),
        _line({"type": "ADDED", "object": core_event(name="fine")}),
    ]

    # When both lines are handled, and a parsed watch event as the list feeds it
    outcomes = [relay.handle_line(line) for line in lines]
    listed = relay.handle({"type": "ADDED", "object": core_event(name="cursed")}, initial_sync=True)
    relay.flush()

    # Then the cursed ones are `malformed:unexpected`, counted by error type; the other goes out
    assert outcomes == ["malformed:unexpected", "forwarded"]
    assert listed == "malformed:unexpected"
    assert relay.stats.unexpected_errors == {"TypeError": 2}
    assert relay.stats.malformed == 2
    assert [parse_envelope(b).payload.name for b in sink.bodies] == ["fine"]


def test_pod_envelope_carries_a_stable_event_id(relay: Relay, sink: RecordingSink) -> None:
    # Given a crash-looping pod change
    raw = pod(rv="4711", containers=[container_status(restarts=2, waiting="CrashLoopBackOff")])

    # When it is handled
    assert relay.handle({"type": "MODIFIED", "object": raw}) == "forwarded"
    relay.flush()

    # Then the envelope is a valid PodEnvelope whose id is cluster + uid + resourceVersion + type
    envelope = parse_envelope(sink.bodies[0])
    assert isinstance(envelope, PodEnvelope)
    assert envelope.event_id == ids.pod_event_id("cluster-1", raw["metadata"]["uid"], "4711", "MODIFIED")
    assert envelope.cluster_id == "cluster-1"
    assert envelope.relay_version == "test"
    assert envelope.payload.restart_count == 2


def test_event_envelope_id_follows_the_count(relay: Relay, sink: RecordingSink) -> None:
    # Given the same Event object seen at count 1, again at 1, then at 2
    for count in (1, 1, 2):
        relay.handle({"type": "MODIFIED", "object": core_event(count=count)})
    relay.flush()

    # Then two envelopes were sent, each id = cluster + uid + count
    envelopes = [parse_envelope(b) for b in sink.bodies]
    assert all(isinstance(e, KubeEventEnvelope) for e in envelopes)
    uid = core_event()["metadata"]["uid"]
    assert [e.event_id for e in envelopes] == [
        ids.kube_event_id("cluster-1", uid, 1),
        ids.kube_event_id("cluster-1", uid, 2),
    ]
    assert relay.stats.suppressed == 1


def test_unchanged_pod_is_suppressed(relay: Relay, sink: RecordingSink) -> None:
    relay.handle({"type": "ADDED", "object": pod(rv="1")})
    raw = pod(rv="2")
    raw["metadata"]["annotations"] = {"changed": "only metadata"}

    assert relay.handle({"type": "MODIFIED", "object": raw}) == "suppressed"
    relay.flush()
    assert len(sink.bodies) == 1


def test_envelopes_go_out_in_batches_of_ten(relay: Relay, sink: RecordingSink) -> None:
    # When 25 new pods are handled
    for i in range(25):
        relay.handle({"type": "ADDED", "object": pod(name=f"p{i}", rv=str(i + 1))})

    # Then two full batches left on their own, and the rest on flush
    assert [len(c) for c in sink.calls] == [10, 10]
    assert relay.pending == 5
    relay.flush()
    assert [len(c) for c in sink.calls] == [10, 10, 5]
    assert relay.stats.sent == 25


def test_initial_sync_can_be_limited_to_troubled_pods(sink: RecordingSink) -> None:
    # Given a relay that only forwards troubled pods during initial sync
    relay = Relay(sink=sink, cluster_id="c", relay_version="t", initial_sync_mode="troubled")
    healthy = pod(name="healthy", rv="1")
    crashing = pod(
        name="crashing", rv="2", containers=[container_status(restarts=5, waiting="CrashLoopBackOff")]
    )

    # When the list at start delivers both
    outcomes = [relay.handle({"type": "ADDED", "object": o}, initial_sync=True) for o in (healthy, crashing)]
    relay.flush()

    # Then only the troubled one is forwarded, marked as initial sync
    assert outcomes == ["suppressed", "forwarded"]
    sent = parse_envelope(sink.bodies[0])
    assert isinstance(sent, PodEnvelope)
    assert (sent.payload.name, sent.payload.initial_sync) == ("crashing", True)

    # And the healthy one is still tracked: its later trouble is forwarded with the transition
    later = pod(
        name="healthy", rv="3", containers=[container_status(restarts=1, last_terminated=("OOMKilled", 137))]
    )
    assert relay.handle({"type": "MODIFIED", "object": later}) == "forwarded"
    relay.flush()
    oom = parse_envelope(sink.bodies[1])
    assert isinstance(oom, PodEnvelope)
    assert ("restart_count", 0, 1) in {(t.field, t.old, t.new) for t in oom.payload.transitions}


def test_enroll_sends_an_enroll_envelope_at_once(relay: Relay, sink: RecordingSink) -> None:
    relay.enroll(kubernetes_version="v1.33.0")

    envelope = parse_envelope(sink.bodies[0])
    assert isinstance(envelope, EnrollEnvelope)
    assert envelope.payload.kubernetes_version == "v1.33.0"
    assert envelope.payload.relay_version == "test"
    assert relay.stats.by_kind == {"enroll": 1}


def test_envelopes_are_kept_when_the_sink_gives_up() -> None:
    # Given a relay whose sink is down
    relay = Relay(sink=DownSink(), cluster_id="c", relay_version="t", batch_size=3)
    for i in range(2):
        relay.handle({"type": "ADDED", "object": pod(name=f"p{i}", rv=str(i))})

    # When the batch fills and is flushed
    with pytest.raises(SinkUnavailable):
        relay.handle({"type": "ADDED", "object": pod(name="p2", rv="2")})

    # Then nothing is lost: all three are still queued, and a working sink sends them in order
    assert relay.pending == 3
    working = RecordingSink()
    relay.sink = working
    relay.flush()
    assert [parse_envelope(b).payload.name for b in working.bodies] == ["p0", "p1", "p2"]
    assert relay.pending == 0


# --- the fast path: plain-data envelopes, byte-identical to the models' ----------------------------


def _sample_lines() -> list[bytes]:
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "events" / "replay" / "sample-stream.jsonl"
    return sample.read_bytes().splitlines()


def _bench_lines() -> list[bytes]:
    from bench.relay_stream import build_stream

    return build_stream(pods=30, rounds=6)


@pytest.mark.parametrize("lines", [_sample_lines, _bench_lines], ids=["sample", "bench"])
def test_pod_bodies_are_what_the_models_encode(lines: Any) -> None:
    # Given the sample stream and a slice of the benchmark's stream (canonical API server layout:
    # the fast path cuts each line into metadata, nodeName and status)
    sink = RecordingSink()
    relay = Relay(sink=sink, cluster_id="cluster-1", relay_version="test")
    for line in lines():
        relay.handle_line(line)
    relay.flush()
    pods = [body for body in sink.bodies if '"kind":"pod"' in body]
    assert len(pods) > 20

    # Then every pod body, built from plain data without models, is a valid PodEnvelope and
    # byte-for-byte what pydantic encodes for it
    for body in pods:
        envelope = parse_envelope(body)
        assert isinstance(envelope, PodEnvelope)
        assert envelope.model_dump_json(by_alias=True, exclude_none=True) == body


def test_synthetic_deletes_are_written_by_the_same_envelope_builder_as_the_models_encode() -> None:
    # Given a relay that knows a crash-looping pod (a last termination with its time) and another
    crashing = pod(
        "shop",
        "web-1",
        uid="uid-web-1",
        containers=[
            container_status(
                name="app", restarts=4, waiting="CrashLoopBackOff", last_terminated=("OOMKilled", 137)
            ),
            container_status(name="sidecar", restarts=0),
        ],
    )
    sink = RecordingSink()
    relay = Relay(sink=sink, cluster_id="cluster-1", relay_version="test")
    for item in (crashing, pod("shop", "api-1", uid="uid-api-1")):
        relay.handle({"type": "ADDED", "object": item}, initial_sync=True)
    relay.flush()
    sent = len(sink.bodies)

    # When a relist no longer has the first, and the second is recreated under its name
    relay.handle({"type": "ADDED", "object": pod("shop", "api-1", uid="uid-api-2")})
    relay.reconcile("shop", ["uid-api-2"], "900")
    relay.flush()

    # Then each vanished pod goes out as a DELETED whose body is a valid PodEnvelope, byte for
    # byte what pydantic encodes for it, with what the tracker remembered of the pod
    deletes = [parse_envelope(body) for body in sink.bodies[sent:]]
    deleted = {
        e.payload.uid: (e, body)
        for e, body in zip(deletes, sink.bodies[sent:], strict=True)
        if isinstance(e, PodEnvelope) and e.payload.watch_type == "DELETED"
    }
    assert set(deleted) == {"uid-web-1", "uid-api-1"}
    for envelope, body in deleted.values():
        assert envelope.model_dump_json(by_alias=True, exclude_none=True) == body
        assert [(t.field, t.old, t.new) for t in envelope.payload.transitions] == [("vanished", False, True)]
        assert envelope.event_id == ids.pod_event_id(
            "cluster-1", envelope.payload.uid, envelope.payload.resource_version, "DELETED"
        )
    web = deleted["uid-web-1"][0].payload
    assert web.restart_count == 4
    assert web.resource_version == "900"
    app = web.containers[0]
    assert (app.name, app.state, app.reason, app.last_termination_reason) == (
        "app",
        "waiting",
        "CrashLoopBackOff",
        "OOMKilled",
    )
    assert app.last_finished_at is not None
    assert relay.stats.synthetic_deleted == 2


def _through(lines: list[bytes], *, fast: bool) -> tuple[list[str], list[dict[str, Any]], Relay]:
    """Outcomes and envelopes (less their clock stamps) of `lines`, with the fast path on or off."""
    recording = RecordingSink()
    relay = Relay(sink=recording, cluster_id="cluster-1", relay_version="test")
    if not fast:
        relay._fast_pod = lambda *args: None  # type: ignore[method-assign]
    outcomes = [relay.handle_line(line) for line in lines]
    relay.flush()
    bodies = [json.loads(body) for body in recording.bodies]
    for body in bodies:  # stamped by the clock
        body.pop("sent_at")
        body["payload"].pop("observed_at", None)
    return outcomes, bodies, relay


def _compact(watch_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": watch_type, "object": obj}, separators=(",", ":")).encode()


def _edge_lines() -> list[bytes]:
    """Pods in the canonical layout, and a few that bend it where the fast path cuts lines."""
    managed = [{"manager": "kubelet", "operation": "Update", "time": "2026-11-20T09:00:00Z", "fieldsV1": {}}]
    a = pod(name="a", rv="1")
    a["metadata"]["managedFields"] = managed
    lines = [_compact("ADDED", a)]
    a["status"]["conditions"][1]["lastProbeTime"] = "2026-11-20T09:01:00Z"  # only a probe time
    lines.append(_compact("MODIFIED", a))
    a["status"]["conditions"][1]["status"] = "False"  # a condition flips, nothing else
    lines.append(_compact("MODIFIED", a))
    a["status"]["conditions"][1]["message"] = "containers with unready status: [app]}]"  # `}]` in a string
    lines.append(_compact("MODIFIED", a))
    a["status"]["conditions"][1]["lastProbeTime"] = "2026-11-20T09:02:00Z"
    lines.append(_compact("MODIFIED", a))
    labels = a["metadata"].pop("labels")  # non-canonical: labels after managedFields, and changed
    a["metadata"]["labels"] = {**labels, "version": "2"}
    a["status"]["containerStatuses"] = [container_status(restarts=1, last_terminated=("OOMKilled", 137))]
    lines.append(_compact("MODIFIED", a))
    a["metadata"]["deletionTimestamp"] = "2026-11-20T09:05:00Z"  # being deleted
    lines.append(_compact("MODIFIED", a))
    lines.append(_compact("DELETED", a))
    b = pod(name="b", rv="2", message="{[ before the conditions")  # `{` and `[` in a string first
    b["status"] = {"message": b["status"].pop("message"), **b["status"]}
    lines.append(_compact("ADDED", b))
    b["status"]["conditions"][0]["lastProbeTime"] = "2026-11-20T09:03:00Z"
    lines.append(_compact("MODIFIED", b))
    b["status"]["conditions"] = []  # conditions gone
    lines.append(_compact("MODIFIED", b))
    b["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    lines.append(_compact("MODIFIED", b))
    return lines


@pytest.mark.parametrize("lines", [_sample_lines, _bench_lines, _edge_lines], ids=["sample", "bench", "edge"])
def test_fast_and_full_paths_agree(lines: Any) -> None:
    # Given a stream through the relay, and through a relay whose fast path is off
    fast_outcomes, fast_bodies, relay = _through(lines(), fast=True)
    full_outcomes, full_bodies, _ = _through(lines(), fast=False)

    # Then outcomes and envelopes are the same, and the fast path did suppress lines
    assert (fast_outcomes, fast_bodies) == (full_outcomes, full_bodies)
    assert relay.stats.fast_suppressed > 0


def test_the_fast_path_reads_what_bends_its_layout() -> None:
    # When the edge lines go through the relay
    outcomes, bodies, relay = _through(_edge_lines(), fast=True)

    # Then a probe time alone is suppressed, a condition flip is forwarded, so are the restart
    # (with the labels written after managedFields), the deletion and the DELETED
    assert outcomes[:8] == ["forwarded", "suppressed", "forwarded", "suppressed", "suppressed"] + 3 * [
        "forwarded"
    ]
    transitions = [
        {(t["field"], t.get("from"), t.get("to")) for t in b["payload"]["transitions"]} for b in bodies
    ]
    assert ("condition.Ready", "True", "False") in transitions[1]
    assert ("restart_count", 0, 1) in transitions[2]
    assert bodies[2]["payload"]["labels"]["version"] == "2"
    assert ("terminating", False, True) in transitions[3]
    assert bodies[4]["payload"]["watch_type"] == "DELETED"
    # And conditions that go away are no transition (only ones that appear or change are)
    assert outcomes[8:] == ["forwarded", "suppressed", "suppressed", "forwarded"]
    assert relay.stats.fast_suppressed == 4


def test_pod_event_id_is_the_shared_one() -> None:
    for parts in [("c", "u", "1", "ADDED"), ("clüster", "uid-ü", "", "DELETED")]:
        assert pod_event_id(*parts) == ids.pod_event_id(*parts)


def test_now_text_is_time_text_of_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    for nanos in (1_795_000_000_123_456_789, 1_795_000_000_000_000_999, 1_795_000_001_000_001_000):
        monkeypatch.setattr(timetext.time, "time_ns", lambda nanos=nanos: nanos)
        expected = datetime.fromtimestamp(nanos // 1000 / 1e6, UTC).replace(microsecond=nanos // 1000 % 10**6)
        assert timetext.now_text() == timetext.time_text(expected)


def test_pod_being_deleted_is_not_suppressed_by_the_status_hash(relay: Relay, sink: RecordingSink) -> None:
    # Given a tracked pod
    raw = pod(rv="1")
    relay.handle_line(json.dumps({"type": "ADDED", "object": raw}, separators=(",", ":")))
    # When it gets a deletionTimestamp and nothing else changes (status byte-identical)
    raw = pod(rv="2")
    raw["metadata"]["deletionTimestamp"] = "2026-11-20T09:05:00Z"
    outcome = relay.handle_line(json.dumps({"type": "MODIFIED", "object": raw}, separators=(",", ":")))
    relay.flush()
    # Then the terminating transition is forwarded, not suppressed by the status hash
    assert outcome == "forwarded"
    last = parse_envelope(sink.bodies[-1])
    assert isinstance(last, PodEnvelope)
    assert ("terminating", False, True) in {(t.field, t.old, t.new) for t in last.payload.transitions}
