"""`Deadlines` and `Relay.look_again`: which waiting pods are looked at again, when, and only once;
and that it costs next to nothing for pods that are not waiting (50k of them)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from podwatch.classify import Thresholds, classify
from podwatch.models import EventType, PodEnvelope
from podwatch.wire import parse_envelope
from podwatch_relay.checkpoint import Checkpointer
from podwatch_relay.deadlines import NOT_READY, PENDING, Deadlines
from podwatch_relay.pipeline import Relay
from tests.fakeapi.pods import container_status, pod
from tests.unit.test_relay_pipeline import RecordingSink

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def text(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def snapshot(phase: str, *, ready: str = "True", terminating: bool = False) -> tuple[Any, ...]:
    return ("ns", "p", phase, None, terminating, (("PodScheduled", "True"), ("Ready", ready)), ())


def payload(seen: datetime, *, created: datetime = T0, ready_since: datetime | None = None) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [{"type": "Ready", "status": "False"}]
    if ready_since is not None:
        conditions[0]["last_transition_time"] = text(ready_since)
    return {"created_at": text(created), "observed_at": text(seen), "conditions": conditions}


def always(_uid: str) -> bool:
    return True


# --------------------------------------------------------------------------- Deadlines


def test_a_pending_pod_is_due_once_at_its_threshold() -> None:
    d = Deadlines(pending_seconds=600, not_ready_seconds=900)
    d.observe("u1", snapshot("Pending", ready="False"), payload(T0 + timedelta(seconds=5)))
    assert d.due(T0 + timedelta(seconds=599), known=always) == []
    [(kind, last)] = d.due(T0 + timedelta(seconds=600), known=always)
    assert kind == PENDING
    assert last["created_at"] == text(T0)
    assert d.due(T0 + timedelta(days=1), known=always) == []  # once
    assert len(d) == 0
    assert d.fired == 1


def test_not_ready_counts_from_the_ready_condition() -> None:
    d = Deadlines(pending_seconds=600, not_ready_seconds=900)
    since = T0 + timedelta(hours=1)
    d.observe("u1", snapshot("Running", ready="False"), payload(since, ready_since=since))
    assert d.due(since + timedelta(seconds=899), known=always) == []
    assert [k for k, _ in d.due(since + timedelta(seconds=900), known=always)] == [NOT_READY]


def test_a_pod_that_stops_waiting_or_terminates_is_forgotten() -> None:
    d = Deadlines(pending_seconds=600, not_ready_seconds=900)
    d.observe("u1", snapshot("Pending", ready="False"), payload(T0))
    d.observe("u2", snapshot("Pending", ready="False"), payload(T0))
    d.observe("u1", snapshot("Running"), payload(T0 + timedelta(seconds=30)))
    d.observe("u2", snapshot("Pending", ready="False", terminating=True), payload(T0 + timedelta(seconds=30)))
    assert len(d) == 0
    assert d.due(T0 + timedelta(hours=1), known=always) == []


def test_a_change_already_past_its_threshold_needs_no_timer() -> None:
    # the forwarded change itself shows the pod Pending for too long: the processor sees it there
    d = Deadlines(pending_seconds=600, not_ready_seconds=900)
    d.observe("u1", snapshot("Pending", ready="False"), payload(T0 + timedelta(seconds=700)))
    assert len(d) == 0


def test_a_rescheduled_pod_fires_at_its_new_deadline_only() -> None:
    d = Deadlines(pending_seconds=600, not_ready_seconds=900)
    d.observe("u1", snapshot("Running", ready="False"), payload(T0, ready_since=T0))
    later = T0 + timedelta(seconds=300)  # ready, then not ready again
    d.observe("u1", snapshot("Running", ready="False"), payload(later, ready_since=later))
    assert d.due(T0 + timedelta(seconds=900), known=always) == []  # the old deadline is stale
    assert len(d.due(later + timedelta(seconds=900), known=always)) == 1


def test_a_kind_with_threshold_zero_is_off_and_a_forgotten_pod_is_skipped() -> None:
    d = Deadlines(pending_seconds=0, not_ready_seconds=900)
    d.observe("u1", snapshot("Pending", ready="False"), payload(T0))
    assert len(d) == 0
    d.observe("u2", snapshot("Running", ready="False"), payload(T0, ready_since=T0))
    assert d.due(T0 + timedelta(hours=1), known=lambda uid: False) == []


def test_fifty_thousand_pods_that_are_not_waiting_cost_a_lookup_each() -> None:
    d = Deadlines(pending_seconds=600, not_ready_seconds=900)
    running, seen = snapshot("Running"), payload(T0)
    started = time.perf_counter()
    for i in range(50_000):
        d.observe(f"uid-{i}", running, seen)
    elapsed = time.perf_counter() - started
    assert len(d) == 0
    assert d.next_deadline() is None
    assert elapsed < 0.5, f"{elapsed:.3f}s for 50k observes"  # ~0.02 s here; generous for a loaded host


def test_due_pops_only_what_is_due() -> None:
    d = Deadlines(pending_seconds=600, not_ready_seconds=900)
    for i in range(50_000):
        d.observe(
            f"uid-{i}", snapshot("Pending", ready="False"), payload(T0, created=T0 + timedelta(seconds=i))
        )
    assert len(d.due(T0 + timedelta(seconds=609), known=always)) == 10
    assert len(d) == 49_990


# --------------------------------------------------------------------------- Relay.look_again


def stuck_line(created: datetime) -> str:
    obj = pod(
        "shop",
        "stuck-1",
        phase="Pending",
        ready=False,
        containers=[container_status(waiting="ContainerCreating", running=False)],
    )
    obj["metadata"]["creationTimestamp"] = text(created)
    return json.dumps({"type": "ADDED", "object": obj})


def test_relay_forwards_an_overdue_pod_once_with_its_own_event_id() -> None:
    sink = RecordingSink()
    clock = [T0 + timedelta(seconds=10)]
    relay = Relay(
        sink=sink,
        cluster_id="c1",
        relay_version="t",
        batch_size=1,
        clock=lambda: clock[0],
        deadlines=Deadlines(pending_seconds=600, not_ready_seconds=900),
    )
    assert relay.handle_line(stuck_line(T0)) == "forwarded"
    assert relay.look_again(T0 + timedelta(seconds=599)) == 0
    assert relay.look_again(T0 + timedelta(seconds=605)) == 1
    assert relay.look_again(T0 + timedelta(hours=2)) == 0
    first, again = (parse_envelope(b) for b in sink.bodies)
    assert isinstance(first, PodEnvelope)
    assert isinstance(again, PodEnvelope)
    assert again.event_id != first.event_id
    assert again.payload.observed_at == T0 + timedelta(seconds=605)
    assert [(t.field, t.new) for t in again.payload.transitions] == [("overdue", "Pending")]
    assert classify(first) == []
    assert [f.event_type for f in classify(again, thresholds=Thresholds())] == [EventType.PENDING_TOO_LONG]
    assert relay.stats.overdue == 1


def test_relay_without_deadlines_never_looks_again() -> None:
    relay = Relay(sink=RecordingSink(), cluster_id="c1", relay_version="t")
    relay.handle_line(stuck_line(T0))
    assert relay.look_again(T0 + timedelta(days=1)) == 0


def test_a_pod_still_waiting_after_a_restart_from_a_checkpoint_is_looked_at_again(tmp_path: Path) -> None:
    # Given a relay that forwarded a stuck pod and checkpointed it, then restarted before its threshold
    from tests.unit.test_relay_checkpoint import Marks

    first = Relay(sink=RecordingSink(), cluster_id="c1", relay_version="t", batch_size=1)
    first.handle_line(stuck_line(T0))
    assert Checkpointer(relay=first, progress=Marks(), directory=tmp_path, owner="relay-0").tick()
    sink = RecordingSink()
    second = Relay(
        sink=sink,
        cluster_id="c1",
        relay_version="t",
        batch_size=1,
        clock=lambda: T0 + timedelta(seconds=60),
        deadlines=Deadlines(pending_seconds=600, not_ready_seconds=900),
    )
    assert Checkpointer(relay=second, progress=Marks(), directory=tmp_path, owner="relay-0").restore(None)

    # When its first list finds the pod unchanged (nothing to forward) and the threshold passes
    listed = json.loads(stuck_line(T0))["object"]
    assert second.handle({"type": "ADDED", "object": listed}, initial_sync=True) == "suppressed"
    assert sink.bodies == []

    # Then the pod is forwarded once as overdue, as a relay that never restarted would
    assert second.look_again(T0 + timedelta(seconds=605)) == 1
    [again] = (parse_envelope(b) for b in sink.bodies)
    assert isinstance(again, PodEnvelope)
    assert [f.event_type for f in classify(again, thresholds=Thresholds())] == [EventType.PENDING_TOO_LONG]


def test_a_pod_already_overdue_when_first_listed_is_looked_at_once_at_once() -> None:
    # Given a relay that forwards only troubled pods from its first list, started 20 minutes after a
    # pod got stuck Pending (which that list holds back)
    sink = RecordingSink()
    now = T0 + timedelta(minutes=20)
    relay = Relay(
        sink=sink,
        cluster_id="c1",
        relay_version="t",
        batch_size=1,
        initial_sync_mode="troubled",
        clock=lambda: now,
        deadlines=Deadlines(pending_seconds=600, not_ready_seconds=900),
    )
    listed = json.loads(stuck_line(T0))["object"]
    assert relay.handle({"type": "ADDED", "object": listed}, initial_sync=True) == "suppressed"

    # When the relay looks again, Then the pod goes out once, as pending-too-long
    assert relay.look_again(now + timedelta(seconds=5)) == 1
    assert relay.look_again(now + timedelta(hours=1)) == 0
    [again] = (parse_envelope(b) for b in sink.bodies)
    assert isinstance(again, PodEnvelope)
    assert [f.event_type for f in classify(again, thresholds=Thresholds())] == [EventType.PENDING_TOO_LONG]
