"""Projection of raw Pod / Event JSON into the compact wire models, by allowlist."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from podwatch.models import MAX_TEXT, PodEnvelope
from podwatch.wire import encode_envelope, parse_envelope
from podwatch_relay.errors import BadWatchEvent
from podwatch_relay.projection import project_event, project_pod
from tests.fakeapi.pods import CANARY, container_status, core_event, pod, with_secrets


def test_pod_projection_keeps_what_the_contract_names() -> None:
    # Given a crash-looping pod with an init container, an ephemeral debug container and an owner
    raw = pod(
        containers=[
            container_status(
                "app",
                restarts=3,
                waiting="CrashLoopBackOff",
                waiting_message="back-off 40s restarting failed container",
                last_terminated=("Error", 1),
            ),
            container_status("envoy", restarts=1),
        ],
        init_containers=[container_status("migrate", terminated=("Completed", 0))],
        ephemeral_containers=[container_status("debug", running=False)],
        ready=False,
    )
    raw["metadata"]["deletionTimestamp"] = "2026-11-20T09:10:00Z"

    # When it is projected
    event = project_pod(raw, watch_type="MODIFIED", initial_sync=True)

    # Then every allowlisted field is there, from the right place
    assert (event.namespace, event.name, event.uid) == (
        "shop",
        "api-7d9f8b6c5d-x2x7q",
        raw["metadata"]["uid"],
    )
    assert event.phase == "Running"
    assert event.node == "node-1"
    assert event.restart_count == 4  # sum over every container
    assert event.resource_version == "100"
    assert event.watch_type == "MODIFIED"
    assert event.initial_sync is True
    assert event.created_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert event.deleted_at == datetime(2026, 11, 20, 9, 10, tzinfo=UTC)
    assert event.labels["project-id"] == "proj-shop"
    assert [(o.kind, o.name, o.controller) for o in event.owner_references] == [
        ("ReplicaSet", "api-7d9f8b6c5d", True)
    ]
    assert {c.type: c.status for c in event.conditions} == {"PodScheduled": "True", "Ready": "False"}
    by_name = {c.name: c for c in event.containers}
    assert [(c.name, c.kind) for c in event.containers] == [
        ("migrate", "init"),
        ("app", "app"),
        ("envoy", "app"),
        ("debug", "ephemeral"),
    ]
    app = by_name["app"]
    assert (app.state, app.reason, app.restart_count, app.ready) == ("waiting", "CrashLoopBackOff", 3, False)
    assert app.message == "back-off 40s restarting failed container"
    assert (app.last_termination_reason, app.last_exit_code) == ("Error", 1)
    assert app.last_finished_at == datetime(2026, 11, 20, 9, 5, tzinfo=UTC)
    assert (by_name["migrate"].state, by_name["migrate"].reason, by_name["migrate"].exit_code) == (
        "terminated",
        "Completed",
        0,
    )
    assert by_name["debug"].state == "unknown"


def test_nothing_outside_the_allowlist_reaches_the_envelope() -> None:
    # Given a pod carrying secret-looking env values, volumes, huge annotations and managedFields
    raw = with_secrets(pod())
    assert len(json.dumps(raw)) > 200_000

    # When it is projected and encoded as the SQS body
    event = project_pod(raw, watch_type="ADDED")
    body = encode_envelope(PodEnvelope(event_id="e" * 32, cluster_id="c1", payload=event))

    # Then none of it is in the body, which stays small and valid
    assert CANARY not in body
    for word in ("managedFields", "annotations", "env", "volumes", "last-applied", "secretKeyRef", "f:spec"):
        assert word not in body
    assert len(body) < 4_000
    assert isinstance(parse_envelope(body), PodEnvelope)


def test_free_text_is_truncated() -> None:
    # Given kubelet messages far longer than the contract's limit
    raw = pod(
        containers=[container_status(waiting="CrashLoopBackOff", waiting_message="m" * 10_000)],
        message="p" * 10_000,
    )

    # When projected
    event = project_pod(raw, watch_type="MODIFIED")

    # Then both are cut to MAX_TEXT
    assert event.message is not None
    assert len(event.message) == MAX_TEXT
    assert event.containers[0].message is not None
    assert len(event.containers[0].message) == MAX_TEXT


@pytest.mark.parametrize(
    ("missing", "reason"),
    [("uid", "pod-without-uid"), ("name", "pod-without-name"), ("namespace", "pod-without-namespace")],
)
def test_pod_without_identity_is_a_bad_watch_event(missing: str, reason: str) -> None:
    # Given a pod missing part of its identity
    raw = pod()
    del raw["metadata"][missing]

    # When / Then the projection refuses it with a precise reason
    with pytest.raises(BadWatchEvent) as info:
        project_pod(raw, watch_type="ADDED")
    assert info.value.reason == reason


def test_wrongly_typed_values_are_ignored_not_trusted() -> None:
    # Given a pod whose fields have unexpected types (a buggy or hostile object)
    raw = pod(containers=[container_status() | {"restartCount": "7", "ready": "yes"}])
    raw["metadata"]["labels"] = {"app": "yes", "tier": {"nested": True}}

    # When projected
    event = project_pod(raw, watch_type="MODIFIED")

    # Then the bad values fall back to their defaults instead of leaking through
    assert event.containers[0].restart_count == 0
    assert event.containers[0].ready is False
    assert event.labels == {"app": "yes"}


def test_event_about_a_pod_is_projected() -> None:
    # Given a core/v1 BackOff event about a pod, seen for the third time
    raw = core_event(count=3)

    # When projected
    event = project_event(raw, watch_type="MODIFIED")

    # Then it carries the reason, count, subject and timestamps
    assert event is not None
    assert (event.reason, event.type, event.count) == ("BackOff", "Warning", 3)
    assert event.involved_object.name == "api-7d9f8b6c5d-x2x7q"
    assert event.involved_object.field_path == "spec.containers{app}"
    assert event.last_timestamp == datetime(2026, 11, 20, 9, 2, tzinfo=UTC)
    assert event.source_component == "kubelet"


def test_series_event_uses_series_count_and_event_time() -> None:
    # Given an event written through events.k8s.io/v1 (series, eventTime, no count/lastTimestamp)
    raw = core_event(series_count=4)

    # When projected
    event = project_event(raw, watch_type="ADDED")

    # Then the count and times come from the series
    assert event is not None
    assert event.count == 4
    assert event.first_timestamp == datetime(2026, 11, 20, 9, 1, 0, 123456, tzinfo=UTC)
    assert event.last_timestamp == datetime(2026, 11, 20, 9, 3, 0, 654321, tzinfo=UTC)


def test_event_about_a_node_is_not_projected() -> None:
    # Given an event whose subject is a Node
    raw = core_event(involved_kind="Node", involved_name="node-1", reason="NodeHasDiskPressure")

    # When / Then it is not ours
    assert project_event(raw, watch_type="ADDED") is None
