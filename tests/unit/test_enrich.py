"""Enrichment: ids from labels, the workload (podwatch.workload) and the Notification."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from podwatch import ids
from podwatch.classify import Finding
from podwatch.enrich import build_notification
from podwatch.models import (
    ContainerStatus,
    EventType,
    InvolvedObject,
    KubeEvent,
    KubeEventEnvelope,
    OwnerReference,
    PodEnvelope,
    PodEvent,
    RemoteConfig,
    Transition,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)


def pod_event(
    owners: list[OwnerReference] | None = None, labels: dict[str, str] | None = None, **kw: Any
) -> PodEvent:
    return PodEvent(
        namespace="payments",
        name=kw.pop("name", "payments-api-84c6d9f7b8-tq5vn"),
        uid="uid-1",
        labels=labels or {},
        owner_references=owners or [],
        observed_at=T0,
        **kw,
    )


def test_notification_for_a_pod_finding() -> None:
    # Given a crash-looping container of a Deployment's pod with project/workload labels
    payload = pod_event(
        [OwnerReference(kind="ReplicaSet", name="payments-api-84c6d9f7b8", controller=True)],
        {
            "pod-template-hash": "84c6d9f7b8",
            "team/project": "proj-7",
            "team/workload": "wl-9",
            "project-id": "x",
        },
        node="node-a",
        restart_count=5,
        containers=[
            ContainerStatus(name="api", state="waiting", reason="CrashLoopBackOff", restart_count=5),
            ContainerStatus(name="envoy", state="running", restart_count=1),
        ],
        transitions=[
            Transition(field="restart_count", container="api", old=4, new=5),
            Transition(field="restart_count", container="envoy", old=0, new=1),
            Transition(field="phase", old="Pending", new="Running"),
        ],
    )
    envelope = PodEnvelope(event_id="evt-12345678", cluster_id="prod", payload=payload)
    config = RemoteConfig(version="v7", project_label_key="team/project", workload_label_key="team/workload")
    finding = Finding(EventType.CRASH_LOOP, "CrashLoopBackOff", "api", "back-off")

    # When it is enriched
    n = build_notification(finding, envelope, config=config, dedup_key="k", now=NOW)

    # Then it carries the ids from the configured label keys, the workload, the container's count
    assert n.notification_id == ids.notification_id("evt-12345678", EventType.CRASH_LOOP, "api")
    assert (n.project_id, n.workload_id) == ("proj-7", "wl-9")
    assert (n.workload_kind, n.workload_name) == ("Deployment", "payments-api")
    assert (n.cluster_id, n.namespace, n.pod, n.container, n.node) == (
        "prod",
        "payments",
        payload.name,
        "api",
        "node-a",
    )
    assert n.restart_count == 5
    assert [t.field for t in n.transitions] == ["restart_count", "phase"]  # not the other container's
    assert (n.source, n.reason, n.message, n.dedup_key) == ("pod", "CrashLoopBackOff", "back-off", "k")
    assert (n.observed_at, n.processed_at, n.config_version) == (T0, NOW, "v7")


def test_notification_for_a_kube_event_finding() -> None:
    event = KubeEvent(
        namespace="shop",
        name="web-1.17a",
        uid="ev-1",
        reason="Unhealthy",
        message="Readiness probe failed",
        involved_object=InvolvedObject(kind="Pod", name="web-1", namespace="shop", uid="pod-uid"),
        observed_at=T0,
    )
    envelope = KubeEventEnvelope(event_id="evt-87654321", cluster_id="prod", payload=event)
    finding = Finding(EventType.PROBE_FAILED, "Unhealthy", "web", "Readiness probe failed")

    n = build_notification(finding, envelope, config=RemoteConfig(), dedup_key="k", now=NOW)

    assert (n.source, n.pod, n.pod_uid, n.container, n.event_type) == (
        "k8s_event",
        "web-1",
        "pod-uid",
        "web",
        EventType.PROBE_FAILED,
    )
    assert n.project_id is None
    assert n.workload_kind is None
