"""Pod and workload identity (podwatch.workload): the workload from owner references, guessed from a
pod name for an Event, and the same workload either way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from podwatch.models import OwnerReference, PodEvent
from podwatch.workload import Workload, guess_workload_name, workload_of

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


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
