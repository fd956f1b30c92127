"""`ObjectRelay` (relay/podwatch_relay/objects.py): one kind's watch events in, `object`/`hook`
envelopes out; unchanged updates suppressed, condition transitions told, objects gone while not
watched reported by the list, oversize records trimmed or stubbed, bad input counted."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from bench.relay_kinds import object_stream
from podwatch import ids
from podwatch.wire import parse_envelope
from podwatch_relay import objectfast
from podwatch_relay.fit import ENVELOPE_MAX_BYTES, size_of
from podwatch_relay.kinds import BUILTIN, custom_kind, object_troubled, project_object
from podwatch_relay.objects import ObjectRelay
from podwatch_relay.sink import SendResult
from tests.fakeapi import objects as fx


class ListSink:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        for body in bodies:
            parse_envelope(body)  # the wire contract (models), or it fails
        self.bodies += [json.loads(b) for b in bodies]
        return SendResult(sent=len(bodies))


def relay_of(kind: str, **kwargs: Any) -> tuple[ObjectRelay, ListSink]:
    sink = ListSink()
    spec = kwargs.pop("spec", None) or BUILTIN[kind]
    return ObjectRelay(spec=spec, sink=sink, cluster_id="c1", relay_version="t", **kwargs), sink


def event(watch_type: str, obj: dict[str, Any], rv: int) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"]["resourceVersion"] = str(rv)
    return {"type": watch_type, "object": obj}


def test_unchanged_updates_are_suppressed_and_condition_changes_told() -> None:
    relay, sink = relay_of("Node")
    node = fx.node("n1")

    # When a node is listed, then posts heartbeats, then goes NotReady and comes back
    assert relay.handle(event("ADDED", node, 1), initial_sync=True) == "forwarded"
    assert relay.handle(event("MODIFIED", fx.node("n1", heartbeat="2026-11-20T09:00:10Z"), 2)) == "suppressed"
    assert relay.handle(event("MODIFIED", fx.node("n1", ready=False), 3)) == "forwarded"
    assert relay.handle(event("MODIFIED", node, 4)) == "forwarded"

    # Then three records, each with its event id, the changes as condition transitions
    first, down, up = (b["payload"] for b in sink.bodies)
    assert first["initial_sync"] is True
    assert "transitions" not in first
    assert down["transitions"] == [{"field": "condition.Ready", "from": "True", "to": "Unknown"}]
    assert up["transitions"] == [{"field": "condition.Ready", "from": "Unknown", "to": "True"}]
    assert [b["event_id"] for b in sink.bodies] == [
        ids.object_event_id("c1", "Node", node["metadata"]["uid"], rv, t)
        for rv, t in (("1", "ADDED"), ("3", "MODIFIED"), ("4", "MODIFIED"))
    ]
    assert "namespace" not in first  # cluster-scoped
    assert relay.stats.suppressed == 1
    assert relay.stats.forwarded == 3


def test_a_relist_reports_what_went_and_only_what_changed() -> None:
    relay, sink = relay_of("Service")
    a, b = fx.service("shop", "a"), fx.service("shop", "b")
    relay.handle(event("ADDED", a, 1), initial_sync=True)
    relay.handle(event("ADDED", b, 2), initial_sync=True)

    # When a relist finds `a` unchanged and `b` gone
    assert relay.handle(event("ADDED", a, 1), initial_sync=True) == "suppressed"
    assert relay.reconcile(None, [a["metadata"]["uid"]], "9") == 1
    relay.flush()  # as the watch loop does after every list

    # Then `b` is forwarded as DELETED at the list's version, and forgotten
    gone = sink.bodies[-1]["payload"]
    assert (gone["name"], gone["watch_type"], gone["resource_version"]) == ("b", "DELETED", "9")
    assert len(relay) == 1
    assert relay.stats.synthetic_deleted == 1


def test_a_namespace_outside_the_selection_is_skipped() -> None:
    relay, sink = relay_of("ConfigMap", namespace_filter=lambda ns: ns == "shop")
    assert relay.handle(event("ADDED", fx.configmap("dev", "c", {"k": "v"}), 1)) == "skipped:namespace"
    assert relay.handle(event("ADDED", fx.configmap("shop", "c", {"k": "v"}), 2)) == "forwarded"
    assert [b["payload"]["namespace"] for b in sink.bodies] == ["shop"]


def test_bad_input_is_counted_never_raised() -> None:
    relay, sink = relay_of("Deployment")
    outcomes = [
        relay.process_line(b"{not json").outcome,
        relay.process_line(b'{"type":"ADDED","object":{"metadata":{"name":"x"}}}').outcome,
        relay.process_line(b'{"type":"WHAT","object":{}}').outcome,
        relay.process_line(b'{"type":"ERROR","object":{"code":410}}').outcome,
        relay.process_line(b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"5"}}}').outcome,
    ]
    assert outcomes == [
        "malformed:json",
        "malformed:object-without-uid",
        "malformed:unknown-type",
        "relist",
        "bookmark",
    ]
    assert relay.stats.input_events == 5
    assert sink.bodies == []


def test_a_huge_object_is_trimmed_by_its_largest_snapshot_entries() -> None:
    relay, sink = relay_of("ConfigMap")
    # a ConfigMap of 20,000 keys: its key names and hashes alone are over the message limit
    relay.handle(
        event("ADDED", fx.configmap("shop", "huge", {f"key-{i:05d}": "v" for i in range(20_000)}), 1)
    )
    [body] = sink.bodies
    assert size_of(json.dumps(body, separators=(",", ":"))) <= ENVELOPE_MAX_BYTES
    assert body["kind"] == "object"
    assert body["payload"]["trimmed"] == {"messages": 0, "containers": 0, "fields": 1}
    assert "data" not in body["payload"]["snapshot"]
    assert body["payload"]["snapshot"]["binaryData"] == {"blob": "a7651803e25395bf"}


def test_hooks_travel_in_hook_envelopes_with_the_rule() -> None:
    spec = custom_kind("kagent.dev", "v1alpha2", "hooks", "Hook", namespaced=True, hook=True)
    relay, sink = relay_of("Hook", spec=spec)
    hook = fx.hook()
    relay.handle(event("ADDED", hook, 1))
    relay.handle(event("MODIFIED", hook, 2))  # status or metadata touched: the rule is the same
    relay.handle(event("DELETED", hook, 3))
    added, deleted = sink.bodies
    assert added["kind"] == "hook"
    assert added["payload"]["hook"]["spec"] == hook["spec"]
    assert set(added["payload"]) == {
        "namespace", "name", "uid", "hook", "watch_type", "resource_version", "observed_at", "initial_sync",
    }  # fmt: skip
    assert "hook" not in deleted["payload"]
    assert added["event_id"] == ids.object_event_id("c1", "Hook", hook["metadata"]["uid"], "1", "ADDED")


def test_the_fast_path_reads_every_part_a_projection_reads() -> None:
    tops = {path[0] for spec in BUILTIN.values() for path, _ in spec.fields}
    assert tops <= objectfast.READ


def _stable(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**b, "sent_at": None, "payload": {**b["payload"], "observed_at": None}} for b in bodies]


def test_the_fast_path_gives_what_the_plain_path_gives() -> None:
    # Given the benchmark's stream of other kinds (half the updates change nothing projected, a
    # quarter touch metadata the relay does not read, a quarter are real), plus bad lines
    stream = [*object_stream(pods=200, rounds=6), ("Node", b'{"type":"MODIFIED","object":{"metadata":[]}}')]
    fast: dict[str, tuple[ObjectRelay, ListSink]] = {}
    plain: dict[str, tuple[ObjectRelay, ListSink]] = {}

    # When each line goes through `process_line` (fast) and through `handle` of the parsed line
    outcomes = []
    for kind, line in stream:
        f = fast.setdefault(kind, relay_of(kind))[0]
        p = plain.setdefault(kind, relay_of(kind))[0]
        outcomes.append((f.process_line(line).outcome, p.handle(json.loads(line))))

    # Then the outcomes and the envelopes are the same, and most unchanged lines never got projected
    assert [a for a, _ in outcomes] == [b for _, b in outcomes]
    for kind in fast:
        assert _stable(fast[kind][1].bodies) == _stable(plain[kind][1].bodies), kind
    assert sum(a == "suppressed" for a, _ in outcomes) > len(stream) / 2
    assert sum(f.stats.fast_suppressed for f, _ in fast.values()) > len(stream) / 3


def test_metrics_count_records_by_kind_and_outcome() -> None:
    from prometheus_client import generate_latest

    from podwatch_relay.ops import RelayCollector, metrics_registry
    from podwatch_relay.pipeline import Relay

    nodes, _ = relay_of("Node")
    nodes.handle(event("ADDED", fx.node("n1"), 1))
    nodes.handle(event("MODIFIED", fx.node("n1", heartbeat="2026-11-20T09:00:10Z"), 2))
    relay = Relay(sink=ListSink(), cluster_id="c1", relay_version="t")
    collector = RelayCollector(relay=relay, watchers=list, objects=lambda: [nodes])
    text = generate_latest(metrics_registry(collector)).decode()
    assert 'podwatch_relay_objects_total{kind="Node",outcome="forwarded"} 1.0' in text
    assert 'podwatch_relay_objects_total{kind="Node",outcome="suppressed"} 1.0' in text
    assert 'podwatch_relay_objects_tracked{kind="Node"} 1.0' in text


def _troubled_deployment() -> dict[str, Any]:
    deploy = fx.deployment("shop", "stuck", image="registry.example.com/api:9")
    deploy["status"]["conditions"] = [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
    ]
    return deploy


def test_a_troubled_initial_sync_forwards_only_objects_in_trouble_then_every_change() -> None:
    relay, sink = relay_of("Deployment", initial_sync_mode="troubled")
    healthy, stuck = fx.deployment("shop", "api", image="registry.example.com/api:1"), _troubled_deployment()

    # When a first list holds a healthy Deployment and one past its progress deadline
    assert relay.handle(event("ADDED", healthy, 1), initial_sync=True) == "suppressed"
    assert relay.handle(event("ADDED", stuck, 2), initial_sync=True) == "forwarded"

    # Then only the troubled one is forwarded; both are known, so a relist finding the healthy
    # one unchanged sends nothing, and its next change goes out like any other
    assert [b["payload"]["name"] for b in sink.bodies] == ["stuck"]
    assert relay.handle(event("ADDED", healthy, 1), initial_sync=True) == "suppressed"
    healthy["spec"]["replicas"] = 5
    assert relay.handle(event("MODIFIED", healthy, 3)) == "forwarded"
    assert [b["payload"]["name"] for b in sink.bodies] == ["stuck", "api"]
    assert sink.bodies[-1]["payload"]["initial_sync"] is False
    assert len(relay) == 2


def test_what_is_trouble_for_an_object() -> None:
    def projection(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return project_object(obj, BUILTIN[kind])

    claim = {"metadata": {"name": "data", "namespace": "shop", "uid": "u"}, "status": {"phase": "Pending"}}
    bound = copy.deepcopy(claim) | {"status": {"phase": "Bound"}}
    assert object_troubled("Node", projection("Node", fx.node("n1", ready=False)))
    assert not object_troubled("Node", projection("Node", fx.node("n1")))
    assert object_troubled("Deployment", projection("Deployment", _troubled_deployment()))
    assert not object_troubled("Deployment", projection("Deployment", fx.deployment("s", "a", image="i")))
    assert object_troubled("PersistentVolumeClaim", projection("PersistentVolumeClaim", claim))
    assert not object_troubled("PersistentVolumeClaim", projection("PersistentVolumeClaim", bound))
    custom = custom_kind("db.example.com", "v1", "databases", "Database", namespaced=True)
    failing = fx.custom("db.example.com/v1", "Database", "shop", "orders")
    failing["status"]["conditions"][0]["status"] = "False"
    assert object_troubled("Database", project_object(failing, custom))
    assert not object_troubled(
        "Database", project_object(fx.custom("db.example.com/v1", "Database", "s", "o"), custom)
    )


def test_hook_rules_go_out_whatever_the_initial_sync_mode() -> None:
    spec = custom_kind("kagent.dev", "v1alpha2", "hooks", "Hook", namespaced=True, hook=True)
    relay, sink = relay_of("Hook", spec=spec, initial_sync_mode="troubled")
    assert relay.handle(event("ADDED", fx.hook(), 1), initial_sync=True) == "forwarded"
    assert sink.bodies[0]["kind"] == "hook"


def test_objects_of_namespaces_no_longer_selected_are_forgotten_cluster_scoped_ones_kept() -> None:
    maps, _ = relay_of("ConfigMap")
    nodes, _ = relay_of("Node")
    for ns in ("shop", "dev"):
        maps.handle(event("ADDED", fx.configmap(ns, "c", {}), 1))
    nodes.handle(event("ADDED", fx.node("n1"), 1))
    assert maps.forget_namespaces_except({"dev"}) == 1
    assert nodes.forget_namespaces_except(set()) == 0
    assert [state[1] for state in maps.memory() or []] == ["dev"]
    assert len(nodes) == 1
