"""Dedup keys: what counts as the same trouble, per scope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from podwatch.classify import Finding, classify
from podwatch.dedup import dedup_key
from podwatch.models import (
    ContainerStatus,
    EventType,
    InvolvedObject,
    KubeEvent,
    KubeEventEnvelope,
    OwnerReference,
    PodEnvelope,
    PodEvent,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def replica(suffix: str, rv: str = "1") -> PodEnvelope:
    name = f"payments-api-84c6d9f7b8-{suffix}"
    payload = PodEvent(
        namespace="payments",
        name=name,
        uid=f"uid-{suffix}",
        labels={"pod-template-hash": "84c6d9f7b8"},
        owner_references=[OwnerReference(kind="ReplicaSet", name="payments-api-84c6d9f7b8", controller=True)],
        containers=[ContainerStatus(name="api", state="waiting", reason="CrashLoopBackOff")],
        resource_version=rv,
        observed_at=T0,
    )
    return PodEnvelope(event_id=f"evt-{suffix}-{rv}-0000", cluster_id="prod", payload=payload)


def backoff_event(pod: str) -> KubeEventEnvelope:
    payload = KubeEvent(
        namespace="payments",
        name=f"{pod}.17a",
        uid="ev-1",
        reason="BackOff",
        message="Back-off restarting failed container api in pod",
        involved_object=InvolvedObject(
            kind="Pod", name=pod, namespace="payments", field_path="spec.containers{api}"
        ),
        observed_at=T0,
    )
    return KubeEventEnvelope(event_id="evt-backoff-1", cluster_id="prod", payload=payload)


CRASH = Finding(EventType.CRASH_LOOP, "CrashLoopBackOff", "api", None)


@pytest.mark.parametrize(
    ("scope", "key"),
    [
        ("container", "prod/payments/payments-api-84c6d9f7b8-tq5vn/api/crash-loop"),
        ("pod", "prod/payments/payments-api-84c6d9f7b8-tq5vn/crash-loop"),
        ("workload", "prod/payments/workload:payments-api/crash-loop"),
    ],
)
def test_key_per_scope(scope: str, key: str) -> None:
    assert dedup_key(CRASH, replica("tq5vn"), scope) == key  # type: ignore[arg-type]


def test_container_scope_is_the_default_and_pod_level_findings_have_a_placeholder() -> None:
    evicted = Finding(EventType.EVICTED, "Evicted", None, None)
    assert dedup_key(evicted, replica("tq5vn")) == "prod/payments/payments-api-84c6d9f7b8-tq5vn/-/evicted"


def test_the_same_trouble_seen_again_has_the_same_key() -> None:
    assert dedup_key(CRASH, replica("tq5vn", "1")) == dedup_key(CRASH, replica("tq5vn", "2"))


def test_replicas_differ_by_container_scope_and_fold_by_workload_scope() -> None:
    a, b = replica("tq5vn"), replica("zz9xw")
    assert dedup_key(CRASH, a, "container") != dedup_key(CRASH, b, "container")
    assert dedup_key(CRASH, a, "workload") == dedup_key(CRASH, b, "workload")


@pytest.mark.parametrize("scope", ["container", "pod", "workload"])
def test_a_backoff_event_names_the_same_trouble_as_the_pod_status(scope: str) -> None:
    pod = replica("tq5vn")
    event = backoff_event(pod.payload.name)
    [from_event] = classify(event)
    assert dedup_key(from_event, event, scope) == dedup_key(CRASH, pod, scope)  # type: ignore[arg-type]


def test_types_and_containers_differ() -> None:
    pod = replica("tq5vn")
    oom = Finding(EventType.OOM_KILL, "OOMKilled", "api", None)
    sidecar = Finding(EventType.CRASH_LOOP, "CrashLoopBackOff", "envoy", None)
    assert len({dedup_key(CRASH, pod), dedup_key(oom, pod), dedup_key(sidecar, pod)}) == 3
