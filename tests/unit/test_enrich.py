"""Enrichment: ids from labels, workload from owner references, the Notification."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from podwatch import ids
from podwatch.classify import Finding
from podwatch.enrich import Workload, build_notification, guess_workload_name, workload_of
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


@pytest.mark.parametrize(
    ("owner", "labels", "expected"),
    [
        (
            OwnerReference(kind="ReplicaSet", name="payments-api-84c6d9f7b8", controller=True),
            {"pod-template-hash": "84c6d9f7b8"},
            Workload("Deployment", "payments-api"),
        ),
        # no pod-template-hash label: the name pattern decides
        (
            OwnerReference(kind="ReplicaSet", name="payments-api-84c6d9f7b8", controller=True),
            {},
            Workload("Deployment", "payments-api"),
        ),
        # a ReplicaSet that does not look generated stays a ReplicaSet
        (
            OwnerReference(kind="ReplicaSet", name="legacy", controller=True),
            {},
            Workload("ReplicaSet", "legacy"),
        ),
        (
            OwnerReference(kind="Job", name="nightly-report-29345760", controller=True),
            {},
            Workload("CronJob", "nightly-report"),
        ),
        (OwnerReference(kind="Job", name="db-migrate", controller=True), {}, Workload("Job", "db-migrate")),
        (
            OwnerReference(kind="StatefulSet", name="postgres", controller=True),
            {},
            Workload("StatefulSet", "postgres"),
        ),
        (
            OwnerReference(kind="DaemonSet", name="node-exporter", controller=True),
            {},
            Workload("DaemonSet", "node-exporter"),
        ),
    ],
)
def test_workload_of(owner: OwnerReference, labels: dict[str, str], expected: Workload) -> None:
    assert workload_of(pod_event([owner], labels)) == expected


def test_controller_owner_wins_over_other_owners() -> None:
    owners = [
        OwnerReference(kind="ConfigMap", name="not-a-controller"),
        OwnerReference(kind="StatefulSet", name="kafka", controller=True),
    ]
    assert workload_of(pod_event(owners)) == Workload("StatefulSet", "kafka")


def test_bare_pod_has_no_workload() -> None:
    assert workload_of(pod_event()) is None


@pytest.mark.parametrize(
    ("pod_name", "workload"),
    [
        ("payments-api-84c6d9f7b8-tq5vn", "payments-api"),
        ("node-exporter-x7k2p", "node-exporter"),
        ("postgres-0", "postgres"),
        ("standalone", "standalone"),
    ],
)
def test_guess_workload_name_from_pod_name(pod_name: str, workload: str) -> None:
    assert guess_workload_name(pod_name) == workload


@pytest.mark.parametrize("job", ["nightly-backup-29402040", "nightly-backup-28000000", "etl-12345678"])
def test_an_event_about_a_cronjob_pod_names_the_workload_its_pod_status_names(job: str) -> None:
    # workload scope: the Event (pod name only) and the pod status (Job owner) must give one key
    pod_name = f"{job}-x7k2p"
    owned = pod_event([OwnerReference(kind="Job", name=job, controller=True)])
    from_status = workload_of(owned)
    assert from_status is not None
    assert from_status.kind == "CronJob"
    assert guess_workload_name(pod_name) == from_status.name


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
