"""Real Kubernetes objects from public sources (tests/corpus/kubernetes.yaml), with the label each
source gives, replayed through the relay's projection and tracker and podwatch's classification.

Each case's label stands next to podwatch's answer in `corpus_table()` (printed by
`test_recall_and_false_alarms` when it fails, and in its figures); the figures recorded in
docs/internals.md ("Classification corpus") must be the ones measured here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from podwatch.classify import classify
from podwatch.models import KubeEventEnvelope, PodEnvelope
from podwatch_relay.projection import project_event, project_pod
from podwatch_relay.state import PodTracker

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "kubernetes.yaml"
INTERNALS = ROOT / "docs" / "internals.md"
#: when the relay sees every object of the corpus
SEEN_AT = datetime(2026, 1, 1, tzinfo=UTC)
#: kubectl STATUS values of the normal lifecycle (the corpus header's rule)
HEALTHY_STATUS = frozenset(
    {
        "Running",
        "Completed",
        "Succeeded",
        "Terminating",
        "Pending",
        "ContainerCreating",
        "PodInitializing",
        "SchedulingGated",
    }
)
_INIT = re.compile(r"Init:\d+/\d+")


@cache
def corpus() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CORPUS.read_text())
    return data


@dataclass(frozen=True)
class Answer:
    id: str
    kind: str
    label: str
    trouble: bool
    expect: str
    found: tuple[str, ...]

    @property
    def alarmed(self) -> bool:
        return bool(self.found)

    @property
    def named_right(self) -> bool:
        return (self.expect == "none" and not self.found) or self.expect in self.found


def _pod_object(case: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    created = SEEN_AT - timedelta(seconds=case.get("age_s", 30))
    meta: dict[str, Any] = {
        "name": case["id"],
        "namespace": "corpus",
        "uid": f"uid-{case['id']}",
        "resourceVersion": "2",
        "creationTimestamp": created.isoformat().replace("+00:00", "Z"),
    }
    if case.get("deleting"):
        meta["deletionTimestamp"] = SEEN_AT.isoformat().replace("+00:00", "Z")
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": meta,
        "spec": {"nodeName": "node-1"},
        "status": status,
    }


def replay_pod(case: dict[str, Any]) -> tuple[str, ...]:
    """The relay's view of the pod (first seen, or the change from `before`), then classify."""
    tracker = PodTracker()
    if case.get("seen") == "change":
        before = project_pod(_pod_object(case, case["before"]), watch_type="ADDED", observed_at=SEEN_AT)
        tracker.observe(before)
        watch_type = "MODIFIED"
    else:
        watch_type = "ADDED"
    event = project_pod(_pod_object(case, case["status"]), watch_type=watch_type, observed_at=SEEN_AT)
    forwarded = tracker.observe(event)
    assert forwarded is not None, f"{case['id']}: the relay would not forward it"
    envelope = PodEnvelope(event_id=f"corpus-{case['id']}", cluster_id="corpus", payload=forwarded)
    return tuple(f.event_type.value for f in classify(envelope))


def _event_object(id_: str, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Event",
        "metadata": {"name": f"{id_}.1", "namespace": "corpus", "uid": f"uid-{id_}", "resourceVersion": "1"},
        "involvedObject": {"kind": "Pod", "name": id_, "namespace": "corpus"},
        "reason": event["reason"],
        "message": event.get("message", ""),
        "type": event.get("type", "Warning"),
        "count": event.get("count", 1),
        "source": {"component": event.get("source", "kubelet")},
    }


def replay_event(id_: str, event: dict[str, Any]) -> tuple[str, ...]:
    projected = project_event(_event_object(id_, event), watch_type="ADDED", observed_at=SEEN_AT)
    assert projected is not None
    envelope = KubeEventEnvelope(event_id=f"corpus-{id_}", cluster_id="corpus", payload=projected)
    return tuple(f.event_type.value for f in classify(envelope))


@cache
def answers() -> tuple[Answer, ...]:
    out = [
        Answer(c["id"], "pod", c["label"], c["trouble"], c["expect"], replay_pod(c)) for c in corpus()["pods"]
    ]
    out += [
        Answer(c["id"], "event", c["label"], c["trouble"], c["expect"], replay_event(c["id"], c["event"]))
        for c in corpus()["events"]
    ]
    return tuple(out)


def corpus_table() -> str:
    rows = [f"{'case':44} {'source label':40} {'podwatch':30}"]
    for a in answers():
        mark = "" if a.named_right else "   <-- expected " + a.expect
        rows.append(f"{a.id:44} {a.label:40} {', '.join(a.found) or 'none':30}{mark}")
    return "\n".join(rows)


def figures() -> dict[str, int]:
    troubled = [a for a in answers() if a.trouble]
    healthy = [a for a in answers() if not a.trouble]
    return {
        "cases": len(answers()),
        "troubled": len(troubled),
        "found": sum(a.alarmed for a in troubled),
        "named_right": sum(a.expect in a.found for a in troubled),
        "healthy": len(healthy),
        "false_alarms": sum(a.alarmed for a in healthy),
    }


# --------------------------------------------------------------------------- the corpus itself


def test_every_case_names_its_source_and_a_known_expectation() -> None:
    from podwatch.models import EventType

    types = {t.value for t in EventType} | {"none"}
    ids = [c["id"] for c in corpus()["pods"] + corpus()["events"]]
    assert len(ids) == len(set(ids))
    for case in corpus()["pods"] + corpus()["events"]:
        assert case["source"].startswith(("https://github.com/", "kubernetes/kubernetes ")), case["id"]
        assert case["expect"] in types, case["id"]


def test_labels_mean_trouble_by_the_one_rule() -> None:
    for case in corpus()["pods"]:
        label = case["label"]
        stuck = "(stuck" in label
        normal = label in HEALTHY_STATUS or bool(_INIT.fullmatch(label))
        assert case["trouble"] == (stuck or not normal), case["id"]
    for case in corpus()["events"]:
        assert case["label"] == f"{case['event']['type']} {case['event']['reason']}", case["id"]
        assert case["trouble"] == (case["event"]["type"] == "Warning"), case["id"]


# --------------------------------------------------------------------------- podwatch's answers


@pytest.mark.parametrize("case", [a.id for a in answers()])
def test_each_case_is_named_as_expected(case: str) -> None:
    [answer] = [a for a in answers() if a.id == case]
    assert answer.named_right, (
        f"{answer.label}: podwatch says {answer.found or 'none'}, expected {answer.expect}"
    )


def test_recall_and_false_alarms() -> None:
    got = figures()
    recall = got["found"] / got["troubled"]
    table = corpus_table()
    print(table)  # the label next to podwatch's answer, for `pytest -s`
    assert recall >= 0.9, table
    # the two labelled-healthy cases podwatch alarms on are deliberate (see their `note`)
    assert got["false_alarms"] == 2, table


def test_the_recorded_figures_are_the_measured_ones() -> None:
    got = figures()
    line = (
        f"{got['cases']} cases: {got['found']} of {got['troubled']} troubled found "
        f"({got['named_right']} named as expected), {got['false_alarms']} of {got['healthy']} healthy alarmed"
    )
    assert line in INTERNALS.read_text(), f"docs/internals.md should say: {line}"


# --------------------------------------------------------------------------- the kubelet's reasons


@pytest.mark.parametrize("entry", corpus()["kubelet_reasons"], ids=lambda e: e["constant"])
def test_every_kubelet_event_reason_has_a_decision(entry: dict[str, Any]) -> None:
    found = replay_event(entry["constant"], {"type": "Warning", **entry})
    assert found == (() if entry["expect"] == "none" else (entry["expect"],))
    if entry["expect"] == "none":
        assert entry.get("why"), f"{entry['constant']}: say why it is not trouble"


# --------------------------------------------------------------------------- kube-state-metrics' reasons


def _ksm_status(entry: dict[str, Any]) -> dict[str, Any]:
    where, reason = entry["where"], entry["reason"]
    status: dict[str, Any] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    if where == "status":
        status["reason"] = reason
        return status
    detail = {"reason": reason} | (
        {"exitCode": 0 if reason == "Completed" else 137} if where == "terminated" else {}
    )
    status["containerStatuses"] = [
        {"name": "app", "ready": False, "restartCount": 0, "state": {where: detail}}
    ]
    return status


@pytest.mark.parametrize("entry", corpus()["ksm_reasons"], ids=lambda e: f"{e['where']}-{e['reason']}")
def test_every_kube_state_metrics_reason_has_a_decision(entry: dict[str, Any]) -> None:
    found = replay_pod({"id": f"ksm-{entry['where']}-{entry['reason']}", "status": _ksm_status(entry)})
    assert found == (() if entry["expect"] == "none" else (entry["expect"],))
    if entry["expect"] == "none":
        assert entry.get("why"), f"{entry['reason']}: say why it is not trouble"
