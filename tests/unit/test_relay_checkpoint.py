"""The relay's checkpoint (`podwatch_relay.checkpoint`): written only when covered, read back into
a new relay whose first list then reports what changed and what vanished (and nothing else), and
the outbox's and the standby gate's `Progress` marks it relies on."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from podwatch.models import PodEnvelope
from podwatch.wire import parse_envelope
from podwatch_relay.checkpoint import Checkpointer, decode, encode
from podwatch_relay.errors import SinkUnavailable
from podwatch_relay.kinds import BUILTIN
from podwatch_relay.leader import StandbyGate
from podwatch_relay.objects import ObjectRelay
from podwatch_relay.outbox import Outbox
from podwatch_relay.pipeline import Relay
from podwatch_relay.sink import SendResult
from tests.fakeapi import objects as fx
from tests.fakeapi.pods import container_status, core_event, pod
from tests.unit import test_relay_leader as leader_tests

CLUSTER = "cluster-1"


class Collecting(leader_tests.Collecting):
    def pods(self) -> list[PodEnvelope]:
        return [e for e in map(parse_envelope, self.bodies) if isinstance(e, PodEnvelope)]


class Marks:
    """A `Progress` whose coverage the test decides."""

    def __init__(self) -> None:
        self.covered_now: bool | None = True
        self.marks = 0

    def mark(self) -> int:
        self.marks += 1
        return self.marks

    def covered(self, mark: Any) -> bool | None:
        return self.covered_now


def relay_with(sink: Collecting) -> Relay:
    return Relay(sink=sink, cluster_id=CLUSTER, relay_version="t", batch_size=1)


def listed(relay: Relay, pods: list[dict[str, Any]]) -> None:
    """What a list does: every item as an initial-sync ADDED, then the reconciliation."""
    for item in pods:
        relay.handle({"type": "ADDED", "object": item}, initial_sync=True)
    relay.reconcile(None, [p["metadata"]["uid"] for p in pods], "900")
    relay.flush()


def crashing(name: str, restarts: int = 1) -> dict[str, Any]:
    return pod(
        "shop",
        name,
        containers=[
            container_status(restarts=restarts, waiting="CrashLoopBackOff", last_terminated=("Error", 1))
        ],
    )


def test_a_restarted_relay_reports_what_changed_and_vanished_since_its_checkpoint_and_nothing_else(
    tmp_path: Path,
) -> None:
    # Given a relay that forwarded four pods and a crash loop, and checkpointed them
    before = [pod("shop", "keep"), pod("shop", "gone"), crashing("recovers"), pod("shop", "crashes")]
    first = relay_with(Collecting())
    listed(first, before)
    first.handle({"type": "ADDED", "object": core_event(count=3)})
    writer = Checkpointer(relay=first, progress=Marks(), directory=tmp_path, owner="relay-0")
    assert writer.tick()

    # When a new process restores it and lists a cluster where one pod was deleted, a crash loop
    # recovered and another pod started crash-looping meanwhile
    sink = Collecting()
    second = relay_with(sink)
    restored = Checkpointer(relay=second, progress=Marks(), directory=tmp_path, owner="relay-0")
    assert restored.restore(namespaces=None) is not None
    listed(
        second,
        [
            pod("shop", "keep"),
            pod("shop", "recovers", containers=[container_status(restarts=1)]),
            crashing("crashes", restarts=2),
        ],
    )
    second.handle({"type": "ADDED", "object": core_event(count=3)}, initial_sync=True)

    # Then it forwards exactly the three changes: the recovery and the new crash loop as changes of
    # known pods (not initial sync), the deleted pod as DELETED; the unchanged pod and Event not at all
    got = {e.payload.name: e.payload for e in sink.pods()}
    assert set(got) == {"gone", "recovers", "crashes"}
    assert got["gone"].watch_type == "DELETED"
    assert not got["recovers"].initial_sync
    assert {(t.field, t.old, t.new) for t in got["recovers"].transitions} >= {
        ("waiting_reason", "CrashLoopBackOff", None)
    }
    assert ("restart_count", 0, 2) in {(t.field, t.old, t.new) for t in got["crashes"].transitions}
    assert len(sink.bodies) == 3
    assert restored.stats.restored_pods == 4
    assert restored.stats.restored_events == 1


def objects_relay(sink: Collecting, kind: str = "ConfigMap") -> ObjectRelay:
    return ObjectRelay(spec=BUILTIN[kind], sink=sink, cluster_id=CLUSTER, relay_version="t")


def objects_listed(relay: ObjectRelay, items: list[dict[str, Any]]) -> None:
    """What a list of another kind does: each item as an initial-sync ADDED, then the reconciliation."""
    for item in items:
        relay.handle({"type": "ADDED", "object": copy.deepcopy(item)}, initial_sync=True)
    relay.reconcile(None, [o["metadata"]["uid"] for o in items], "900")
    relay.flush()


def test_a_restarted_relay_forwards_only_the_objects_changed_or_gone_since_its_checkpoint(
    tmp_path: Path,
) -> None:
    # Given a relay that forwarded three ConfigMaps and a node, and checkpointed them
    configmaps = [fx.configmap("shop", n, {"k": "v"}) for n in ("same", "changed", "gone")]
    node = fx.node("n1")
    first_maps, first_nodes = objects_relay(Collecting()), objects_relay(Collecting(), "Node")
    objects_listed(first_maps, configmaps)
    objects_listed(first_nodes, [node])
    writer = Checkpointer(relay=relay_with(Collecting()), progress=Marks(), directory=tmp_path, owner="r-0")
    writer.objects = lambda: {"configmaps": first_maps, "nodes": first_nodes}
    assert writer.tick()
    assert writer.stats.objects == 4

    # When a new process restores it, its kinds take their objects as they start, and the lists
    # find one ConfigMap changed, one gone, and the node NotReady
    sink = Collecting()
    restored = Checkpointer(relay=relay_with(sink), progress=Marks(), directory=tmp_path, owner="r-0")
    assert restored.restore(namespaces=None) is not None
    maps, nodes = objects_relay(sink), objects_relay(sink, "Node")
    assert restored.restore_objects("configmaps", maps) == 3
    assert restored.restore_objects("nodes", nodes) == 1
    assert restored.restore_objects("configmaps", objects_relay(Collecting())) == 0  # given once
    configmaps[1]["data"]["k"] = "w"
    objects_listed(maps, configmaps[:2])
    objects_listed(nodes, [fx.node("n1", ready=False)])

    # Then it forwards exactly those three: the change and the node's as changes of known objects
    # (not initial sync, with its condition transition), the deleted one as DELETED
    got = {b["payload"]["name"]: b["payload"] for b in map(json.loads, sink.bodies)}
    assert set(got) == {"changed", "gone", "n1"}
    assert (got["changed"]["watch_type"], got["changed"]["initial_sync"]) == ("ADDED", False)
    assert got["gone"]["watch_type"] == "DELETED"
    assert got["n1"]["transitions"] == [{"field": "condition.Ready", "from": "True", "to": "Unknown"}]
    assert restored.stats.restored_objects == 4


def test_a_checkpoint_without_objects_still_loads_and_its_objects_are_listed_as_new(tmp_path: Path) -> None:
    # Given a checkpoint as relays wrote it before they kept objects (no "objects" key)
    relay = relay_with(Collecting())
    listed(relay, [pod("shop", "a")])
    body = json.loads(encode(CLUSTER, relay.tracker.snapshots(), {"e1": 2}))
    del body["objects"]
    (tmp_path / "r-0.json").write_text(json.dumps(body))

    # When a new relay restores it
    sink = Collecting()
    restored = Checkpointer(relay=relay_with(sink), progress=Marks(), directory=tmp_path, owner="r-0")
    loaded = restored.restore(namespaces=None)

    # Then its pods and Events are known, and a kind's first list forwards every object as before
    assert loaded is not None
    assert (len(loaded.pods), loaded.events, loaded.objects) == (1, [("e1", 2)], {})
    maps = objects_relay(sink)
    assert restored.restore_objects("configmaps", maps) == 0
    objects_listed(maps, [fx.configmap("shop", "c", {"k": "v"})])
    assert [json.loads(b)["payload"]["initial_sync"] for b in sink.bodies] == [True]


def test_objects_of_other_namespaces_and_entries_that_do_not_parse_are_skipped() -> None:
    maps, nodes = objects_relay(Collecting()), objects_relay(Collecting(), "Node")
    objects_listed(maps, [fx.configmap("shop", "a", {}), fx.configmap("blog", "b", {})])
    objects_listed(nodes, [fx.node("n1")])
    states = {"configmaps": maps.memory() or [], "nodes": nodes.memory() or []}
    body = json.loads(encode(CLUSTER, {}, {}, states))
    body["objects"]["configmaps"] += [["u", "shop", "x", "not-hex", []], ["u"], 5]
    loaded = decode(json.dumps(body), cluster_id=CLUSTER, namespaces={"shop"})
    assert loaded is not None
    # a cluster-scoped object (namespace "") belongs to every selection
    assert {k: [s[2] for s in v] for k, v in loaded.objects.items()} == {"configmaps": ["a"], "nodes": ["n1"]}
    assert loaded.skipped == 4


def test_no_checkpoint_is_taken_while_a_kind_holds_envelopes_the_sink_did_not_take(tmp_path: Path) -> None:
    # Given a kind whose record the sink refused: it is known, but not handed over
    failing = Gated(fail=True)
    failing.release.set()
    maps = ObjectRelay(spec=BUILTIN["ConfigMap"], sink=failing, cluster_id=CLUSTER, relay_version="t")
    with pytest.raises(SinkUnavailable):
        maps.handle({"type": "ADDED", "object": fx.configmap("shop", "a", {})})
    writer = Checkpointer(relay=relay_with(Collecting()), progress=Marks(), directory=tmp_path, owner="r-0")
    writer.objects = lambda: {"configmaps": maps}

    # Then no checkpoint claims it until the sink took it
    assert not writer.tick()
    failing.fail = False
    maps.flush()
    assert writer.tick()
    assert writer.stats.objects == 1


def test_nothing_is_written_before_it_is_covered_and_a_void_mark_is_taken_again(tmp_path: Path) -> None:
    relay = relay_with(Collecting())
    listed(relay, [pod("shop", "a")])
    progress = Marks()
    writer = Checkpointer(relay=relay, progress=progress, directory=tmp_path, owner="relay-0")

    progress.covered_now = False  # the outbox still has it in memory
    assert not writer.tick()
    assert not writer.path.exists()
    progress.covered_now = None  # leadership changed: that mark means nothing
    assert not writer.tick()
    progress.covered_now = True
    assert writer.tick()
    assert progress.marks == 2  # a new mark after the void one
    assert not writer.tick()  # nothing changed since: not rewritten
    assert writer.stats.written == 1


def test_a_checkpoint_of_another_cluster_or_other_namespaces_is_not_restored() -> None:
    text = encode(CLUSTER, {}, {})
    assert decode(text, cluster_id="other", namespaces=None) is None
    relay = relay_with(Collecting())
    listed(relay, [pod("shop", "a"), pod("blog", "b")])
    text = encode(CLUSTER, relay.tracker.snapshots(), {})
    loaded = decode(text, cluster_id=CLUSTER, namespaces={"shop"})
    assert loaded is not None
    assert [snapshot[1] for _, snapshot in loaded.pods] == ["a"]
    assert loaded.skipped == 1


def test_entries_that_do_not_parse_are_skipped_and_counted() -> None:
    relay = relay_with(Collecting())
    listed(relay, [pod("shop", "a")])
    body = json.loads(encode(CLUSTER, relay.tracker.snapshots(), {"e1": 2}))
    body["pods"] += [["uid-x", "shop"], [1, 2, 3, 4, 5, 6, [], []], "nonsense"]
    body["events"] += [["e2", "two"]]
    loaded = decode(json.dumps(body), cluster_id=CLUSTER, namespaces=None)
    assert loaded is not None
    assert len(loaded.pods) == 1
    assert loaded.events == [("e1", 2)]
    assert loaded.skipped == 4


def test_the_write_is_atomic_a_torn_file_is_skipped_for_the_next_newest(tmp_path: Path) -> None:
    relay = relay_with(Collecting())
    listed(relay, [pod("shop", "a")])
    assert Checkpointer(relay=relay, progress=Marks(), directory=tmp_path, owner="relay-0").tick()
    (tmp_path / "relay-1.json").write_text('{"format": 1, "cluster_id": "clu')  # torn by hand
    fresh = relay_with(Collecting())
    loaded = Checkpointer(relay=fresh, progress=Marks(), directory=tmp_path, owner="relay-1").restore(None)
    assert loaded is not None
    assert loaded.path.name == "relay-0.json"
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"pods": 5}',
        '"checkpoint"',
        '{"format": "1", "cluster_id": "cluster-1"}',
        '{"format": 1, "cluster_id": 7, "pods": []}',
        '{"format": 1, "cluster_id": "cluster-1", "pods": 5}',
        '{"format": 1, "cluster_id": "cluster-1", "pods": [], "events": {"e1": 2}}',
        '{"format": 1, "cluster_id": "cluster-1", "pods": [], "objects": [["u", "", "n", "00", []]]}',
    ],
)
def test_a_corrupt_checkpoint_is_moved_aside_with_a_clear_error_and_the_relay_starts_from_a_list(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a checkpoint directory whose only file is valid JSON but no checkpoint
    (tmp_path / "relay-0.json").write_text(text)

    # When a new relay restores from it
    relay = relay_with(Collecting())
    with caplog.at_level("ERROR", logger="podwatch_relay.checkpoint"):
        loaded = Checkpointer(relay=relay, progress=Marks(), directory=tmp_path, owner="relay-0").restore(
            None
        )

    # Then nothing is restored (the first list forwards every pod), the error says what happened
    # and where the file went, and the file is out of the way of the next start, kept for a look
    assert loaded is None
    assert len(relay.tracker) == 0
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage() == "checkpoint corrupt: moved aside, starting from a full list"
    assert record.moved_to == str(tmp_path / "relay-0.json.corrupt")  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relay-0.json.corrupt"]
    assert (tmp_path / "relay-0.json.corrupt").read_text() == text
    listed(relay, [pod("shop", "a")])
    assert relay.stats.forwarded == 1


def test_a_corrupt_newest_checkpoint_gives_way_to_the_next_newest(tmp_path: Path) -> None:
    relay = relay_with(Collecting())
    listed(relay, [pod("shop", "a")])
    assert Checkpointer(relay=relay, progress=Marks(), directory=tmp_path, owner="relay-0").tick()
    (tmp_path / "relay-1.json").write_text('{"format": 1, "cluster_id": "cluster-1", "pods": 5}')
    fresh = relay_with(Collecting())
    loaded = Checkpointer(relay=fresh, progress=Marks(), directory=tmp_path, owner="relay-1").restore(None)
    assert loaded is not None
    assert loaded.path.name == "relay-0.json"
    assert len(fresh.tracker) == 1
    assert (tmp_path / "relay-1.json.corrupt").exists()


def test_a_checkpoint_of_another_format_is_left_for_the_relay_that_wrote_it(tmp_path: Path) -> None:
    (tmp_path / "relay-0.json").write_text('{"format": 2, "cluster_id": "cluster-1", "pods": {}}')
    relay = relay_with(Collecting())
    assert (
        Checkpointer(relay=relay, progress=Marks(), directory=tmp_path, owner="relay-0").restore(None) is None
    )
    assert (tmp_path / "relay-0.json").exists()


# --------------------------------------------------------------------------- Progress marks


class Gated:
    """A sink that holds each send until released (a batch in flight)."""

    def __init__(self, fail: bool = False) -> None:
        self.release = threading.Event()
        self.fail = fail
        self.sent: list[str] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        self.release.wait(5)
        if self.fail:
            raise SinkUnavailable("down", pending=bodies)
        self.sent += bodies
        return SendResult(sent=len(bodies))


def test_the_outbox_covers_a_mark_once_everything_before_it_left_memory() -> None:
    sink = Gated()
    outbox = Outbox(sink=sink, batch_size=1, flush_interval=0.01).start()
    assert outbox.covered(outbox.mark())  # empty: covered at once
    outbox.send(["b1"])
    mark = outbox.mark()
    assert not outbox.covered(mark)  # b1 in flight
    sink.release.set()
    assert outbox.flush(timeout=5)
    assert outbox.covered(mark)
    outbox.close(timeout=1)


def test_the_outbox_never_covers_what_it_drops_at_shutdown_without_a_spool() -> None:
    sink = Gated(fail=True)
    outbox = Outbox(sink=sink, batch_size=1, flush_interval=0.01, retry_seconds=5).start()
    outbox.send(["b1"])
    mark = outbox.mark()
    sink.release.set()
    outbox.close(timeout=0.2)
    assert outbox.stats.dropped_reasons == {"shutdown": 1}
    assert not outbox.covered(mark)


def test_the_gate_covers_a_standbys_mark_once_the_leader_renewed_past_the_margin() -> None:
    now = [100.0]
    state: dict[str, Any] = {"leading": False, "seen": 100.0}
    outbox = Marks()
    gate = StandbyGate(
        sink=Collecting(),
        leading=lambda: state["leading"],
        renewal_seen=lambda: state["seen"],
        margin=5,
        progress=outbox,
        clock=lambda: now[0],
    )
    mark = gate.mark()
    state["seen"] = 104.0
    assert gate.covered(mark) is False  # within the margin: the leader may not have sent it
    state["seen"] = 106.0
    assert gate.covered(mark) is True
    state["leading"] = True
    gate.take_over()
    assert gate.covered(mark) is None  # leadership changed: void
    leader_mark = gate.mark()
    outbox.covered_now = False
    assert gate.covered(leader_mark) is False  # a leader's: when the outbox has it out of memory
    outbox.covered_now = True
    assert gate.covered(leader_mark) is True


@pytest.mark.parametrize("owner", ["relay-7d9c-x2x4z", "weird/name"])
def test_each_pod_writes_its_own_file(tmp_path: Path, owner: str) -> None:
    relay = relay_with(Collecting())
    writer = Checkpointer(relay=relay, progress=Marks(), directory=tmp_path, owner=owner)
    listed(relay, [pod("shop", "a")])
    assert writer.tick()
    assert writer.path.parent == tmp_path
    assert writer.path.exists()
