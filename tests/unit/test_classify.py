"""The classification table, rule by rule, on realistic compact pods and Events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from podwatch import classify as classify_module
from podwatch.classify import Finding, classify, container_from_field_path
from podwatch.models import (
    ContainerStatus,
    EnrollEnvelope,
    EnrollPayload,
    EventType,
    HeartbeatEnvelope,
    HeartbeatPayload,
    InvolvedObject,
    KubeEvent,
    KubeEventEnvelope,
    OwnerReference,
    PodCondition,
    PodEnvelope,
    PodEvent,
    Transition,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def pod(**kw: Any) -> PodEnvelope:
    payload: dict[str, Any] = {
        "namespace": "shop",
        "name": "api-7d9f8b6c5d-x2x7q",
        "uid": "0b5c2f4e-1111-2222-3333-444455556666",
        "phase": "Running",
        "owner_references": [OwnerReference(kind="ReplicaSet", name="api-7d9f8b6c5d", controller=True)],
        "node": "node-a",
        "resource_version": "100",
        "observed_at": T0,
        "conditions": [
            PodCondition(type="PodScheduled", status="True"),
            PodCondition(type="Ready", status="True"),
        ],
    }
    payload.update(kw)
    return PodEnvelope(event_id="evt-00000001", cluster_id="c1", payload=PodEvent(**payload))


def running(name: str = "api", **kw: Any) -> ContainerStatus:
    return ContainerStatus(name=name, state="running", ready=True, started=True, **kw)


def kube_event(
    reason: str, message: str = "", *, kind: str = "Pod", field_path: str | None = None, **kw: Any
) -> KubeEventEnvelope:
    payload = KubeEvent(
        namespace="shop",
        name="api-7d9f8b6c5d-x2x7q.17a",
        uid="ev-uid-1",
        reason=reason,
        message=message,
        type="Warning",
        involved_object=InvolvedObject(
            kind=kind, name="api-7d9f8b6c5d-x2x7q", namespace="shop", field_path=field_path
        ),
        observed_at=T0,
        **kw,
    )
    return KubeEventEnvelope(event_id="evt-00000002", cluster_id="c1", payload=payload)


def types(findings: list[Finding]) -> list[tuple[str, str, str | None]]:
    return [(f.event_type.value, f.reason, f.container) for f in findings]


# --------------------------------------------------------------------------- healthy and never-trouble


def test_healthy_pod_with_completed_init_container_has_no_finding() -> None:
    # Given a running pod whose init container completed and that just became ready
    envelope = pod(
        containers=[
            ContainerStatus(name="migrate", kind="init", state="terminated", reason="Completed", exit_code=0),
            running("api"),
            running("envoy"),
        ],
        transitions=[Transition(field="ready", container="api", old=False, new=True)],
    )
    # Then it is not trouble
    assert classify(envelope) == []


def test_deleted_pod_is_not_new_trouble() -> None:
    envelope = pod(
        watch_type="DELETED",
        phase="Failed",
        reason="Evicted",
        containers=[ContainerStatus(name="api", state="waiting", reason="CrashLoopBackOff")],
    )
    assert classify(envelope) == []


def test_control_envelopes_are_not_trouble() -> None:
    enroll = EnrollEnvelope(
        event_id="evt-enroll-1", cluster_id="c1", payload=EnrollPayload(relay_version="0.1.0")
    )
    heartbeat = HeartbeatEnvelope(
        event_id="evt-heartbeat-1", cluster_id="c1", payload=HeartbeatPayload(sequence=3)
    )
    assert classify(enroll) == []
    assert classify(heartbeat) == []


def test_starting_container_is_not_trouble() -> None:
    envelope = pod(
        phase="Pending", containers=[ContainerStatus(name="api", state="waiting", reason="ContainerCreating")]
    )
    assert classify(envelope) == []


# --------------------------------------------------------------------------- container waiting reasons


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("CrashLoopBackOff", EventType.CRASH_LOOP),
        ("ImagePullBackOff", EventType.IMAGE_PULL),
        ("ErrImagePull", EventType.IMAGE_PULL),
        ("InvalidImageName", EventType.IMAGE_PULL),
        ("CreateContainerConfigError", EventType.CONFIG_ERROR),
        ("CreateContainerError", EventType.CONFIG_ERROR),
    ],
)
def test_container_waiting_reasons(reason: str, expected: EventType) -> None:
    envelope = pod(
        containers=[
            ContainerStatus(name="api", state="waiting", reason=reason, message="something is wrong"),
            running("envoy"),
        ]
    )
    assert classify(envelope) == [Finding(expected, reason, "api", "something is wrong")]


@pytest.mark.parametrize("kind", ["init", "ephemeral"])
def test_init_and_ephemeral_containers_are_classified_like_app_containers(kind: str) -> None:
    envelope = pod(
        phase="Pending",
        containers=[
            ContainerStatus(name="helper", kind=kind, state="waiting", reason="ImagePullBackOff"),
            ContainerStatus(name="api", state="waiting", reason="PodInitializing"),
        ],
    )
    assert types(classify(envelope)) == [("image-pull", "ImagePullBackOff", "helper")]


def test_init_container_crash_loop() -> None:
    envelope = pod(
        phase="Pending",
        containers=[
            ContainerStatus(
                name="migrate",
                kind="init",
                state="waiting",
                reason="CrashLoopBackOff",
                restart_count=4,
                last_termination_reason="Error",
            ),
            ContainerStatus(name="api", state="waiting", reason="PodInitializing"),
        ],
        transitions=[Transition(field="restart_count", container="migrate", old=3, new=4)],
    )
    assert types(classify(envelope)) == [("crash-loop", "CrashLoopBackOff", "migrate")]


def test_one_finding_per_container_plus_sidecar() -> None:
    # Given the app crash-loops and the sidecar cannot pull its image
    envelope = pod(
        containers=[
            ContainerStatus(name="api", state="waiting", reason="CrashLoopBackOff", restart_count=5),
            ContainerStatus(name="envoy", state="waiting", reason="ErrImagePull"),
        ],
        transitions=[Transition(field="restart_count", container="api", old=4, new=5)],
    )
    # Then each container yields its own, most specific finding (the restart is not a second one)
    assert types(classify(envelope)) == [
        ("crash-loop", "CrashLoopBackOff", "api"),
        ("image-pull", "ErrImagePull", "envoy"),
    ]


# --------------------------------------------------------------------------- OOM


def test_oom_killed_current_state_and_the_failed_pod_are_one_incident() -> None:
    # Given an OOMKilled container whose pod therefore failed
    envelope = pod(
        phase="Failed",
        containers=[ContainerStatus(name="job", state="terminated", reason="OOMKilled", exit_code=137)],
    )
    # Then the more specific type names the one incident (no second `failed`)
    assert types(classify(envelope)) == [("oom-kill", "OOMKilled", "job")]


@pytest.mark.parametrize(
    "news",
    [
        {"transitions": [Transition(field="restart_count", container="worker", old=0, new=1)]},
        {
            "transitions": [
                Transition(field="last_termination_reason", container="worker", old="Error", new="OOMKilled")
            ]
        },
        {"initial_sync": True},
    ],
    ids=["restart-count-went-up", "new-last-termination", "initial-sync"],
)
def test_oom_killed_last_state_when_it_is_news(news: dict[str, Any]) -> None:
    envelope = pod(
        containers=[running("worker", restart_count=1, last_termination_reason="OOMKilled")], **news
    )
    assert types(classify(envelope)) == [("oom-kill", "OOMKilled", "worker")]


def test_old_oom_in_last_state_is_not_news() -> None:
    # Given a container that was OOM-killed long ago and only its readiness changed now
    envelope = pod(
        containers=[running("worker", restart_count=1, last_termination_reason="OOMKilled")],
        transitions=[Transition(field="ready", container="worker", old=False, new=True)],
    )
    # no new trouble: only the end of the old one (it resolves an oom-kill incident, if one is open)
    assert types(classify(envelope)) == [("recovered", "OOMKilled", "worker")]


def test_oom_takes_precedence_over_crash_loop() -> None:
    envelope = pod(
        containers=[
            ContainerStatus(
                name="worker",
                state="waiting",
                reason="CrashLoopBackOff",
                restart_count=3,
                last_termination_reason="OOMKilled",
            )
        ],
        transitions=[Transition(field="restart_count", container="worker", old=2, new=3)],
    )
    assert types(classify(envelope)) == [("oom-kill", "OOMKilled", "worker")]


def test_crash_loop_with_old_oom_and_no_news_is_crash_loop() -> None:
    envelope = pod(
        containers=[
            ContainerStatus(
                name="worker", state="waiting", reason="CrashLoopBackOff", last_termination_reason="OOMKilled"
            )
        ],
    )
    assert types(classify(envelope)) == [("crash-loop", "CrashLoopBackOff", "worker")]


# --------------------------------------------------------------------------- restarts


def test_restart_with_nothing_more_specific_is_pod_restart() -> None:
    # a clean exit (0, Completed) that restarts is not a crash (see test_classify_reasons for those)
    envelope = pod(
        containers=[running("cart", restart_count=3, last_termination_reason="Completed", last_exit_code=0)],
        transitions=[Transition(field="restart_count", container="cart", old=2, new=3)],
    )
    assert types(classify(envelope)) == [("pod-restart", "Completed", "cart")]


def test_pod_total_restart_count_without_container_is_pod_restart() -> None:
    envelope = pod(restart_count=3, transitions=[Transition(field="restart_count", old=2, new=3)])
    assert types(classify(envelope)) == [("pod-restart", "Restarted", None)]


def test_restart_count_going_down_is_not_a_restart() -> None:
    envelope = pod(
        containers=[running("cart")],
        transitions=[Transition(field="restart_count", container="cart", old=3, new=0)],
    )
    assert classify(envelope) == []


# --------------------------------------------------------------------------- pod-level


def test_evicted_takes_precedence_over_failed() -> None:
    envelope = pod(
        phase="Failed",
        reason="Evicted",
        message="The node was low on resource: memory.",
        containers=[ContainerStatus(name="api", state="terminated", reason="Error", exit_code=137)],
    )
    assert classify(envelope) == [
        Finding(EventType.EVICTED, "Evicted", None, "The node was low on resource: memory.")
    ]


def test_failed_phase() -> None:
    envelope = pod(
        phase="Failed",
        reason="DeadlineExceeded",
        containers=[ContainerStatus(name="job", state="terminated", reason="Error", exit_code=1)],
    )
    assert types(classify(envelope)) == [("failed", "DeadlineExceeded", None)]


def test_unschedulable() -> None:
    envelope = pod(
        phase="Pending",
        node=None,
        conditions=[
            PodCondition(
                type="PodScheduled", status="False", reason="Unschedulable", message="0/3 nodes are available"
            )
        ],
    )
    assert classify(envelope) == [
        Finding(EventType.UNSCHEDULABLE, "Unschedulable", None, "0/3 nodes are available")
    ]


def test_scheduling_gated_is_not_unschedulable() -> None:
    envelope = pod(
        phase="Pending",
        conditions=[PodCondition(type="PodScheduled", status="False", reason="SchedulingGated")],
    )
    assert classify(envelope) == []


# --------------------------------------------------------------------------- Kubernetes Events


@pytest.mark.parametrize(
    ("reason", "message", "expected"),
    [
        (
            "Unhealthy",
            "Liveness probe failed: HTTP probe failed with statuscode: 500",
            EventType.PROBE_FAILED,
        ),
        ("FailedScheduling", "0/6 nodes are available: 6 Insufficient cpu.", EventType.UNSCHEDULABLE),
        ("OOMKilling", "Memory cgroup out of memory: Killed process 4242 (java)", EventType.OOM_KILL),
        ("BackOff", "Back-off restarting failed container api in pod api-x_shop(uid)", EventType.CRASH_LOOP),
        ("BackOff", 'Back-off pulling image "nginx:nope"', EventType.IMAGE_PULL),
        ("Evicted", "The node was low on resource: ephemeral-storage.", EventType.EVICTED),
        ("ErrImagePull", "rpc error: manifest unknown", EventType.IMAGE_PULL),
        ("ImagePullBackOff", 'Back-off pulling image "nginx:nope"', EventType.IMAGE_PULL),
        (
            "InvalidImageName",
            'Failed to apply default image tag "Nginx": invalid reference format',
            EventType.IMAGE_PULL,
        ),
        ("Failed", 'Failed to pull image "nginx:nope": not found', EventType.IMAGE_PULL),
        ("Failed", "Error: ErrImagePull", EventType.IMAGE_PULL),
        ("Failed", "Error: ImagePullBackOff", EventType.IMAGE_PULL),
        ("Failed", 'Error: configmap "app-config" not found', EventType.CONFIG_ERROR),
        ("Failed", "Error: CreateContainerConfigError", EventType.CONFIG_ERROR),
    ],
)
def test_kube_event_reasons(reason: str, message: str, expected: EventType | None) -> None:
    findings = classify(kube_event(reason, message, field_path="spec.containers{api}"))
    if expected is None:
        assert findings == []
    else:
        assert findings == [Finding(expected, reason, "api", message)]


@pytest.mark.parametrize("reason", ["Pulled", "Started", "Scheduled", "Killing", "Created"])
def test_normal_kube_events_are_not_trouble(reason: str) -> None:
    assert classify(kube_event(reason, "fine")) == []


def test_unrelated_backoff_is_not_trouble() -> None:
    assert classify(kube_event("BackOff", "something else backed off")) == []


def test_kube_event_about_a_node_is_ignored() -> None:
    assert classify(kube_event("OOMKilling", "Killed process 1", kind="Node")) == []


def test_deleted_kube_event_is_ignored() -> None:
    assert classify(kube_event("Unhealthy", "Readiness probe failed", watch_type="DELETED")) == []


@pytest.mark.parametrize(
    ("field_path", "container"),
    [
        ("spec.containers{api}", "api"),
        ("spec.initContainers{migrate}", "migrate"),
        ("spec.ephemeralContainers{debugger-x7}", "debugger-x7"),
        ("", None),
        (None, None),
        ("metadata.name", None),
    ],
)
def test_container_from_field_path(field_path: str | None, container: str | None) -> None:
    assert container_from_field_path(field_path) == container


# --------------------------------------------------------------------------- the table is documented


def test_every_table_row_is_in_the_module_docstring() -> None:
    doc = classify_module.__doc__ or ""
    lines = [" ".join(line.split()) for line in doc.splitlines()]
    for rule in classify_module.REASON_TABLE:
        row = f"{rule.source} {rule.reason} {rule.event_type.value}"
        assert any(line.startswith(row) for line in lines), f"docstring table lacks: {row}"


def test_every_event_type_but_later_ones_is_reachable_from_the_table() -> None:
    in_table = {rule.event_type for rule in classify_module.REASON_TABLE} | {EventType.POD_RESTART}
    assert set(EventType) == in_table
