"""PodTracker / EventTracker: forward what matters, with the transitions seen."""

from __future__ import annotations

from typing import Any

import pytest

from podwatch.models import PodEvent, WatchType
from podwatch_relay.projection import project_event, project_pod
from podwatch_relay.state import EventTracker, PodTracker, is_troubled
from tests.fakeapi.pods import container_status, core_event, pod


def _event(
    raw: dict[str, Any], watch_type: WatchType = "MODIFIED", *, initial_sync: bool = False
) -> PodEvent:
    return project_pod(raw, watch_type=watch_type, initial_sync=initial_sync)


def _transitions(event: PodEvent) -> set[tuple[str, str | None, object, object]]:
    return {(t.field, t.container, t.old, t.new) for t in event.transitions}


def test_restart_count_going_up_is_forwarded_with_its_transitions() -> None:
    # Given a tracked crash-looping pod at restart 3
    tracker = PodTracker()
    tracker.observe(
        _event(
            pod(
                rv="10",
                containers=[
                    container_status(restarts=3, waiting="CrashLoopBackOff", last_terminated=("Error", 1))
                ],
            ),
            "ADDED",
        )
    )

    # When it restarts a fourth time
    later = container_status(
        restarts=4,
        waiting="CrashLoopBackOff",
        last_terminated=("Error", 1),
        last_finished_at="2026-11-20T09:09:00Z",
    )
    out = tracker.observe(_event(pod(rv="11", containers=[later])))

    # Then it is forwarded with restart 3→4 and a new previous termination
    assert out is not None
    assert _transitions(out) == {
        ("restart_count", "app", 3, 4),
        ("last_termination_reason", "app", "Error", "Error"),
    }


def test_new_oomkilled_termination_is_forwarded() -> None:
    # Given a healthy tracked pod
    tracker = PodTracker()
    tracker.observe(_event(pod(rv="10"), "ADDED"))

    # When its container was OOMKilled and is running again
    oom = container_status(restarts=1, last_terminated=("OOMKilled", 137))
    out = tracker.observe(_event(pod(rv="11", containers=[oom])))

    # Then the OOMKilled termination and the restart are the transitions
    assert out is not None
    assert _transitions(out) == {
        ("restart_count", "app", 0, 1),
        ("last_termination_reason", "app", None, "OOMKilled"),
    }
    assert out.containers[0].last_exit_code == 137


def test_metadata_only_update_is_suppressed() -> None:
    # Given a tracked pod
    tracker = PodTracker()
    tracker.observe(_event(pod(rv="10"), "ADDED"))

    # When only its resourceVersion, annotations, labels and managedFields change
    raw = pod(rv="11", labels={"app": "api", "new": "label"})
    raw["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "now"}
    raw["metadata"]["managedFields"] = [{"manager": "kubectl"}]

    # Then nothing is forwarded
    assert tracker.observe(_event(raw)) is None


def test_waiting_reason_change_and_readiness_are_transitions() -> None:
    # Given a pod whose image cannot be pulled
    tracker = PodTracker()
    tracker.observe(
        _event(pod(rv="1", phase="Pending", containers=[container_status(waiting="ErrImagePull")]), "ADDED")
    )

    # When the kubelet backs off
    out = tracker.observe(
        _event(pod(rv="2", phase="Pending", containers=[container_status(waiting="ImagePullBackOff")]))
    )

    # Then the waiting reason change is the transition
    assert out is not None
    assert _transitions(out) == {("waiting_reason", "app", "ErrImagePull", "ImagePullBackOff")}

    # And when it finally runs and becomes ready, phase, state and readiness are recorded
    out = tracker.observe(_event(pod(rv="3", containers=[container_status()])))
    assert out is not None
    assert {"phase", "state", "waiting_reason", "ready"} <= {t.field for t in out.transitions}


def test_eviction_records_pod_reason_and_phase() -> None:
    tracker = PodTracker()
    tracker.observe(_event(pod(rv="1"), "ADDED"))

    out = tracker.observe(
        _event(
            pod(
                rv="2",
                phase="Failed",
                reason="Evicted",
                message="The node was low on resource: ephemeral-storage.",
                containers=[container_status(terminated=("Error", 137))],
                ready=False,
            )
        )
    )

    assert out is not None
    transitions = _transitions(out)
    assert ("phase", None, "Running", "Failed") in transitions
    assert ("reason", None, None, "Evicted") in transitions
    assert ("condition.Ready", None, "True", "False") in transitions
    assert ("terminated_reason", "app", None, "Error") in transitions


def test_unknown_pod_is_forwarded_and_keeps_its_initial_sync_mark() -> None:
    # Given an empty tracker, when a listed pod arrives
    tracker = PodTracker()
    out = tracker.observe(_event(pod(rv="5"), "ADDED", initial_sync=True))

    # Then it is forwarded as initial sync, and tracked
    assert out is not None
    assert out.initial_sync is True
    assert len(tracker) == 1

    # And a relist of the same, unchanged pod forwards nothing
    assert tracker.observe(_event(pod(rv="5"), "ADDED", initial_sync=True)) is None


def test_deleted_pod_is_forwarded_and_forgotten() -> None:
    tracker = PodTracker()
    first = _event(pod(rv="1"), "ADDED")
    tracker.observe(first)

    out = tracker.observe(_event(pod(rv="2"), "DELETED"))

    assert out is not None
    assert out.watch_type == "DELETED"
    assert first.uid not in tracker
    assert len(tracker) == 0
    assert tracker.uid_of("shop", "api-7d9f8b6c5d-x2x7q") is None


def test_pod_recreated_under_the_same_name_is_not_confused_with_the_old_one() -> None:
    # Given a tracked pod
    tracker = PodTracker()
    tracker.observe(_event(pod(uid="old-uid", rv="1"), "ADDED"))

    # When a pod with the same namespace/name but another uid arrives (its DELETED was missed)
    out = tracker.observe(_event(pod(uid="new-uid", rv="9"), "ADDED"))

    # Then the new one is forwarded as a new pod and the old uid is forgotten
    assert out is not None
    assert out.uid == "new-uid"
    assert tracker.uids() == {"new-uid"}
    assert tracker.uid_of("shop", "api-7d9f8b6c5d-x2x7q") == "new-uid"
    assert tracker.stats.replaced == 1


@pytest.mark.parametrize(
    ("raw", "troubled"),
    [
        (pod(), False),
        (pod(phase="Pending", containers=[container_status(waiting="ContainerCreating")]), False),
        (pod(init_containers=[container_status("init", terminated=("Completed", 0))]), False),
        (pod(containers=[container_status(waiting="CrashLoopBackOff")]), True),
        (pod(containers=[container_status(restarts=1, last_terminated=("OOMKilled", 137))]), True),
        (pod(phase="Failed", reason="Evicted"), True),
        (pod(phase="Pending", scheduled=False, containers=[]), True),
        (pod(containers=[container_status(terminated=("Error", 2))]), True),
    ],
)
def test_is_troubled(raw: dict[str, Any], troubled: bool) -> None:
    assert is_troubled(_event(raw)) is troubled


def test_event_tracker_forwards_each_count_once() -> None:
    # Given a BackOff event seen at count 1
    tracker = EventTracker()
    assert tracker.observe(_kube(core_event(count=1))) is not None

    # When the same occurrence is seen again (relist, metadata update), then it is suppressed
    assert tracker.observe(_kube(core_event(count=1))) is None

    # And when it recurs (count 2), it is forwarded
    assert tracker.observe(_kube(core_event(count=2))) is not None


def test_event_tracker_is_bounded_and_forgets_deleted_events() -> None:
    tracker = EventTracker(max_events=3)
    for i in range(5):
        tracker.observe(_kube(core_event(name=f"e{i}")))
    assert len(tracker) == 3

    tracker.observe(_kube(core_event(name="e4"), "DELETED"))
    assert len(tracker) == 2


def _kube(raw: dict[str, Any], watch_type: WatchType = "ADDED") -> Any:
    event = project_event(raw, watch_type=watch_type)
    assert event is not None
    return event
