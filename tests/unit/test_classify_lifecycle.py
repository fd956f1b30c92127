"""Classification of the lifecycle types: recovered (the end of trouble) and pending-too-long, on
realistic compact pods with init containers, native sidecars and ephemeral containers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from podwatch.classify import classify
from podwatch.dedup import dedup_key
from podwatch.models import ContainerStatus, EventType, PodCondition, Transition
from tests.unit.test_classify import T0, pod, running, types


def ready_again(name: str = "api", **kw: Any) -> Transition:
    return Transition(field="ready", container=name, old=False, new=True, **kw)


# --------------------------------------------------------------------------- recovered


def test_ready_again_after_restarts_resolves_a_crash_loop() -> None:
    envelope = pod(
        containers=[running("api", restart_count=6, last_termination_reason="Error")],
        transitions=[ready_again()],
    )
    [finding] = classify(envelope)
    assert (finding.event_type, finding.reason, finding.container, finding.resolves) == (
        EventType.RECOVERED,
        "CrashLoopBackOff",
        "api",
        EventType.CRASH_LOOP,
    )
    # its dedup key is the key of the trouble it ends
    assert dedup_key(finding, envelope) == "c1/shop/api-7d9f8b6c5d-x2x7q/api/crash-loop"


def test_ready_again_after_an_oom_kill_resolves_the_oom_kill() -> None:
    envelope = pod(
        containers=[running("worker", restart_count=1, last_termination_reason="OOMKilled")],
        transitions=[ready_again("worker")],
    )
    [finding] = classify(envelope)
    assert (finding.event_type, finding.resolves) == (EventType.RECOVERED, EventType.OOM_KILL)


@pytest.mark.parametrize(
    ("waiting", "resolves"),
    [
        ("CrashLoopBackOff", EventType.CRASH_LOOP),
        ("ImagePullBackOff", EventType.IMAGE_PULL),
        ("ErrImagePull", EventType.IMAGE_PULL),
        ("CreateContainerConfigError", EventType.CONFIG_ERROR),
    ],
)
def test_out_of_a_troubled_waiting_reason_and_ready(waiting: str, resolves: EventType) -> None:
    envelope = pod(
        containers=[running("api")],
        transitions=[
            Transition(field="waiting_reason", container="api", old=waiting, new=None),
            Transition(field="state", container="api", old="waiting", new="running"),
            ready_again(),
        ],
    )
    assert [(f.event_type, f.reason, f.resolves) for f in classify(envelope)] == [
        (EventType.RECOVERED, waiting, resolves)
    ]


def test_a_new_pod_becoming_ready_is_not_a_recovery() -> None:
    # ContainerCreating is not trouble, and no restarts: a normal start
    envelope = pod(
        containers=[running("api")],
        transitions=[
            Transition(field="waiting_reason", container="api", old="ContainerCreating", new=None),
            ready_again(),
        ],
    )
    assert classify(envelope) == []


def test_running_but_not_ready_is_not_recovered_yet() -> None:
    envelope = pod(
        containers=[ContainerStatus(name="api", state="running", ready=False, restart_count=6)],
        transitions=[Transition(field="waiting_reason", container="api", old="CrashLoopBackOff", new=None)],
    )
    assert classify(envelope) == []


def test_first_sight_of_a_pod_is_not_a_recovery() -> None:
    # initial sync (relay start): ready None → True, restarts from long ago
    envelope = pod(
        initial_sync=True,
        containers=[running("api", restart_count=3)],
        transitions=[Transition(field="ready", container="api", old=None, new=True)],
    )
    assert classify(envelope) == []


def test_a_sidecar_recovers_while_the_app_crash_loops() -> None:
    # native sidecar (an init container that keeps running) ready again; the app crash-loops
    envelope = pod(
        containers=[
            ContainerStatus(name="istio-proxy", kind="init", state="running", ready=True, restart_count=2),
            ContainerStatus(name="api", state="waiting", reason="CrashLoopBackOff", restart_count=4),
        ],
        transitions=[ready_again("istio-proxy")],
    )
    assert types(classify(envelope)) == [
        ("crash-loop", "CrashLoopBackOff", "api"),
        ("recovered", "CrashLoopBackOff", "istio-proxy"),
    ]


def test_ephemeral_containers_never_recover() -> None:
    envelope = pod(
        containers=[
            running("api"),
            ContainerStatus(
                name="debugger-x7", kind="ephemeral", state="running", ready=True, restart_count=1
            ),
        ],
        transitions=[ready_again("debugger-x7")],
    )
    assert classify(envelope) == []


def test_a_container_in_trouble_is_not_also_recovered() -> None:
    # OOM-killed and restarted at once, ready again: the OOM is the news
    envelope = pod(
        containers=[running("worker", restart_count=1, last_termination_reason="OOMKilled")],
        transitions=[
            Transition(field="restart_count", container="worker", old=0, new=1),
            ready_again("worker"),
        ],
    )
    assert types(classify(envelope)) == [("oom-kill", "OOMKilled", "worker")]


# --------------------------------------------------------------------------- pending too long


def pending(age_s: int, **kw: Any) -> Any:
    defaults: dict[str, Any] = {
        "phase": "Pending",
        "created_at": T0 - timedelta(seconds=age_s),
        "containers": [
            ContainerStatus(name="migrate", kind="init", state="waiting", reason="PodInitializing"),
            ContainerStatus(name="api", state="waiting", reason="PodInitializing"),
        ],
        "conditions": [PodCondition(type="PodScheduled", status="True")],
    }
    defaults.update(kw)
    return pod(**defaults)


def test_pending_longer_than_the_threshold() -> None:
    [finding] = classify(pending(601), pending_too_long_s=600)
    assert (finding.event_type, finding.reason, finding.container) == (
        EventType.PENDING_TOO_LONG,
        "PodInitializing",
        None,
    )
    assert finding.message == "Pending for 601s"


def test_pending_within_the_threshold_or_threshold_off() -> None:
    assert classify(pending(599), pending_too_long_s=600) == []
    assert classify(pending(10_000), pending_too_long_s=0) == []
    assert classify(pending(10_000, created_at=None), pending_too_long_s=600) == []


def test_pending_too_long_gives_way_to_something_more_specific() -> None:
    envelope = pending(
        3600,
        containers=[ContainerStatus(name="api", state="waiting", reason="ImagePullBackOff")],
    )
    assert types(classify(envelope, pending_too_long_s=600)) == [("image-pull", "ImagePullBackOff", "api")]
    unschedulable = pending(
        3600,
        containers=[],
        conditions=[PodCondition(type="PodScheduled", status="False", reason="Unschedulable")],
    )
    assert types(classify(unschedulable, pending_too_long_s=600)) == [
        ("unschedulable", "Unschedulable", None)
    ]


def test_pending_without_container_statuses_says_pending() -> None:
    [finding] = classify(pending(900, containers=[]), pending_too_long_s=600)
    assert (finding.event_type, finding.reason) == (EventType.PENDING_TOO_LONG, "Pending")


def test_default_threshold_is_the_remote_config_default() -> None:
    from podwatch.classify import DEFAULT_PENDING_TOO_LONG_S
    from podwatch.models import RemoteConfig

    assert RemoteConfig().pending_too_long_seconds == DEFAULT_PENDING_TOO_LONG_S
    assert types(classify(pending(DEFAULT_PENDING_TOO_LONG_S))) == [
        ("pending-too-long", "PodInitializing", None)
    ]
