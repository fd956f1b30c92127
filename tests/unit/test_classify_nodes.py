"""Node trouble (`classify.classify_node`) on real Node conditions from public issue threads
(tests/corpus/nodes.yaml): each case is found as its source labels it, a node that comes back is
`recovered` only through a transition, and nothing else (other kinds, a deleted node, Unknown
pressure conditions) is trouble."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from podwatch.classify import REASON_TABLE, classify_node
from podwatch.models import EventType, Transition
from tests.nodes import corpus, healthy, node_object

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CASES = {case["id"]: case for case in corpus()}


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_each_public_node_is_classified_as_its_source_labels_it(case_id: str) -> None:
    case = CASES[case_id]
    node = node_object(case["node"], resource_version="1", observed_at=T0)
    found = classify_node(node)
    assert [f.event_type.value for f in found] == case["expect"], case["source"]
    for finding in found:  # the reason is the condition's own
        assert finding.reason in {c.reason for c in node.conditions}


def test_the_corpus_covers_not_ready_pressure_and_healthy_nodes() -> None:
    expected = [t for case in CASES.values() for t in case["expect"]]
    assert expected.count("node-not-ready") >= 5
    assert "node-disk-pressure" in expected
    assert sum(1 for case in CASES.values() if not case["expect"]) >= 2


@pytest.mark.parametrize("case_id", [c for c in sorted(CASES) if CASES[c]["expect"]])
def test_a_node_back_to_healthy_recovers_each_trouble_it_had(case_id: str) -> None:
    sick = CASES[case_id]["node"]
    back = node_object(healthy(sick), resource_version="2", observed_at=T0, previous=sick)
    found = classify_node(back)
    assert {f.event_type for f in found} == {EventType.RECOVERED}
    assert sorted(str(f.resolves) for f in found) == sorted(CASES[case_id]["expect"])


def test_recovery_needs_a_transition_and_is_never_read_on_initial_sync() -> None:
    sick = CASES["k8s-94020-kubelet-stopped-posting"]["node"]
    ok = healthy(sick)
    assert classify_node(node_object(ok, resource_version="2", observed_at=T0)) == []
    listed = node_object(ok, resource_version="2", observed_at=T0, previous=sick, initial_sync=True)
    assert classify_node(listed) == []
    # a first-seen node in trouble is trouble: its incident opens (or is already open)
    first = node_object(sick, resource_version="1", observed_at=T0, initial_sync=True)
    assert [f.event_type for f in classify_node(first)] == [EventType.NODE_NOT_READY]


def test_unknown_pressure_is_not_pressure_and_a_deleted_node_or_other_kind_is_not_trouble() -> None:
    sick = CASES["k8s-94020-kubelet-stopped-posting"]["node"]  # Memory/Disk/PIDPressure Unknown
    node = node_object(sick, resource_version="1", observed_at=T0)
    assert [f.event_type for f in classify_node(node)] == [EventType.NODE_NOT_READY]
    assert classify_node(node.model_copy(update={"watch_type": "DELETED"})) == []
    assert classify_node(node.model_copy(update={"kind": "Deployment", "api_version": "apps/v1"})) == []
    # a transition that flaps back to the troubled status is not a recovery
    flap: Any = node.model_copy(
        update={"transitions": [Transition(field="condition.Ready", old="True", new="Unknown")]}
    )
    assert [f.event_type for f in classify_node(flap)] == [EventType.NODE_NOT_READY]


def test_every_node_condition_type_is_in_the_one_table() -> None:
    node_rows = {(r.reason, r.event_type) for r in REASON_TABLE if r.source == "node"}
    assert node_rows == {
        ("Ready", EventType.NODE_NOT_READY),
        ("MemoryPressure", EventType.NODE_MEMORY_PRESSURE),
        ("DiskPressure", EventType.NODE_DISK_PRESSURE),
        ("PIDPressure", EventType.NODE_PID_PRESSURE),
        ("NetworkUnavailable", EventType.NODE_NETWORK_UNAVAILABLE),
        ("Recovered", EventType.RECOVERED),
    }
