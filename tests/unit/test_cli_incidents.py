"""Incidents derived from history records (podwatch_cli.incidents, what `podwatch mcp` answers with):
the classification's incident ids, read oldest first, open, repeat, resolve and reopen an incident;
a deleted pod ends its own; and a record's summary keeps what an agent reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from podwatch_cli.events import EventsError
from podwatch_cli.incidents import (
    FIRING,
    NODE_DELETED,
    POD_DELETED,
    RESOLVED,
    IncidentId,
    incidents_of,
    matches,
    summary,
)
from podwatch_cli.mcp_server import window

KEY = "prod/shop/web-5c8d7f9b44-m4k8z/app/crash-loop"


def pod(
    at: str,
    *verdicts: dict[str, Any],
    verb: str = "update",
    name: str = "web-5c8d7f9b44-m4k8z",
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": f"e-{at}-{verb}",
        "verb": verb,
        "objectRef": {"cluster": "prod", "namespace": "shop", "kind": "Pod", "name": name, "uid": "u1"},
        "timestamp": f"2026-11-20T09:{at}.000Z",
        "reason": reason,
        "object": {
            "name": name,
            "phase": "Running",
            "node": "n1",
            "restart_count": 3,
            "labels": {"app": "web"},
            "containers": [
                {
                    "name": "app",
                    "state": "waiting",
                    "reason": reason,
                    "message": "back-off 40s",
                    "ready": False,
                }
            ],
        },
        "classification": list(verdicts),
    }


def event(at: str, *verdicts: dict[str, Any], count: int = 1) -> dict[str, Any]:
    return {
        "id": f"k-{at}",
        "verb": "update",
        "objectRef": {
            "cluster": "prod",
            "namespace": "shop",
            "kind": "Event",
            "name": "web.17a",
            "uid": "u2",
        },
        "involvedObject": {
            "kind": "Pod",
            "namespace": "shop",
            "name": "web-5c8d7f9b44-m4k8z",
            "fieldPath": "x",
        },
        "timestamp": f"2026-11-20T09:{at}.000Z",
        "reason": "BackOff",
        "type": "Warning",
        "count": count,
        "message": "Back-off restarting failed container app",
        "object": {"message": "Back-off restarting failed container app"},
        "classification": list(verdicts),
    }


def verdict(
    decision: str, reason: str, event_type: str = "crash-loop", key: str | None = KEY
) -> dict[str, Any]:
    out = {"eventType": event_type, "decision": decision, "reason": reason}
    if key:
        out["incidentId"] = key
    return out


OPENED = verdict("forwarded", "opened")
REPEAT = verdict("deduplicated", "cooldown")
RECOVERY = verdict("forwarded", "resolved", event_type="recovered")


def test_trouble_opens_an_incident_and_repeats_count_in_it() -> None:
    # Given an opening, then a repeat by an Event and one by the pod (records in any order)
    records = [
        event("02:00", REPEAT, count=2),
        pod("01:00", OPENED, reason="CrashLoopBackOff"),
        pod("03:00", REPEAT),
    ]
    # When the incidents are derived
    (incident,) = incidents_of(records)
    # Then one firing incident with every occurrence, its reasons and its newest message
    assert incident.state == FIRING
    assert (incident.opened_at, incident.last_seen) == (
        "2026-11-20T09:01:00.000Z",
        "2026-11-20T09:03:00.000Z",
    )
    assert incident.occurrences == 3
    assert incident.reasons == ["CrashLoopBackOff", "BackOff"]
    assert incident.last_message == "back-off 40s"
    shown = incident.as_dict()
    assert shown["uri"] == f"podwatch://incidents/{KEY}"
    assert (shown["pod"], shown["container"], shown["workload"]) == ("web-5c8d7f9b44-m4k8z", "app", "web")


def test_a_recovery_resolves_it_and_new_trouble_opens_it_again() -> None:
    resolved = incidents_of([pod("01:00", OPENED), pod("02:00", REPEAT), pod("04:00", RECOVERY)])
    assert [(i.state, i.resolved_at, i.occurrences) for i in resolved] == [
        (RESOLVED, "2026-11-20T09:04:00.000Z", 2)
    ]
    again = incidents_of([pod("01:00", OPENED), pod("04:00", RECOVERY), pod("06:00", OPENED)])
    assert [(i.state, i.opened_at, i.resolved_at, i.occurrences) for i in again] == [
        (FIRING, "2026-11-20T09:06:00.000Z", None, 1)
    ]


def test_a_recovery_that_resolved_nothing_or_part_leaves_it_firing() -> None:
    no_incident = verdict("filtered", "no_incident", event_type="recovered")
    partial = verdict("deduplicated", "partial_recovery", event_type="recovered")
    (incident,) = incidents_of([pod("01:00", OPENED), pod("02:00", no_incident), pod("03:00", partial)])
    assert (incident.state, incident.occurrences) == (FIRING, 1)


def test_an_incident_opened_before_the_window_has_no_opening_time() -> None:
    (incident,) = incidents_of([pod("01:00", REPEAT)])
    assert (incident.state, incident.opened_at, incident.occurrences) == (FIRING, None, 1)


def test_a_pod_deleted_after_its_trouble_ends_its_incident_but_not_one_seen_after() -> None:
    deleted = incidents_of([pod("01:00", OPENED), pod("05:00", verb="delete")])
    assert [i.state for i in deleted] == [POD_DELETED]
    # a pod of the same name, created again, in trouble after the deletion
    recreated = incidents_of([pod("01:00", OPENED), pod("05:00", verb="delete"), pod("07:00", OPENED)])
    assert [i.state for i in recreated] == [FIRING]
    other = incidents_of([pod("01:00", OPENED), pod("05:00", verb="delete", name="web-other")])
    assert [i.state for i in other] == [FIRING]


def test_filtered_records_make_no_incident() -> None:
    ignored = verdict("filtered", "ignored_namespace", key=None)
    disabled = verdict("filtered", "disabled:crash-loop")
    assert incidents_of([pod("01:00", ignored), pod("02:00", disabled), pod("03:00")]) == []


def test_incidents_come_newest_first_and_filter_by_namespace_and_workload() -> None:
    oom = "prod/reports/worker-59f6c7d8b9-h7c2d/worker/oom-kill"
    found = incidents_of(
        [pod("01:00", OPENED), pod("02:00", verdict("forwarded", "opened", "oom-kill", oom))]
    )
    assert [i.id for i in found] == [oom, KEY]
    assert [i.id for i in found if matches(i, namespace="shop", workload=None)] == [KEY]
    assert [i.id for i in found if matches(i, namespace=None, workload="worker")] == [oom]
    assert [i.id for i in found if matches(i, namespace=None, workload="worker-59f6c7d8b9-h7c2d")] == [oom]
    assert [i.id for i in found if matches(i, namespace="shop", workload="worker")] == []


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (KEY, ("prod", "shop", "web-5c8d7f9b44-m4k8z", "web", None, "app", "crash-loop")),
        (
            "prod/shop/web-5c8d7f9b44-m4k8z/evicted",
            ("prod", "shop", "web-5c8d7f9b44-m4k8z", "web", None, None, "evicted"),
        ),
        ("prod/shop/workload:web/crash-loop", ("prod", "shop", None, "web", None, None, "crash-loop")),
        (
            "prod/node:ip-10-0-1-2/node-not-ready",
            ("prod", None, None, None, "ip-10-0-1-2", None, "node-not-ready"),
        ),
    ],
)
def test_an_incident_id_names_its_scope(text: str, parts: tuple[Any, ...]) -> None:
    key = IncidentId.parse(text)
    assert (
        key.cluster,
        key.namespace,
        key.pod,
        key.workload,
        key.node,
        key.container,
        key.event_type,
    ) == parts


def node(at: str, *verdicts: dict[str, Any], verb: str = "update") -> dict[str, Any]:
    return {
        "id": f"n-{at}-{verb}",
        "verb": verb,
        "objectRef": {"cluster": "prod", "namespace": "", "kind": "Node", "name": "ip-10-0-1-2", "uid": "u3"},
        "timestamp": f"2026-11-20T09:{at}.000Z",
        "reason": "NodeNotReady",
        "object": {"name": "ip-10-0-1-2"},
        "classification": list(verdicts),
    }


def test_a_node_incident_fires_resolves_and_ends_with_its_node() -> None:
    key = "prod/node:ip-10-0-1-2/node-not-ready"
    opened = verdict("forwarded", "opened", "node-not-ready", key)
    (incident,) = incidents_of([node("01:00", opened)])
    shown = incident.as_dict()
    assert (shown["state"], shown["node"], shown["namespace"], shown["pod"]) == (
        FIRING,
        "ip-10-0-1-2",
        None,
        None,
    )
    recovered = verdict("forwarded", "resolved", "recovered", key)
    assert [i.state for i in incidents_of([node("01:00", opened), node("02:00", recovered)])] == [RESOLVED]
    assert [i.state for i in incidents_of([node("01:00", opened), node("03:00", verb="delete")])] == [
        NODE_DELETED
    ]
    assert not matches(incident, namespace="shop", workload=None)
    assert matches(incident, namespace=None, workload=None)


def test_an_id_of_a_shape_this_cli_does_not_know_is_still_listed() -> None:
    future = "prod/shop/deployment:web/rollout-stuck/x/y"
    (incident,) = incidents_of([pod("01:00", verdict("forwarded", "opened", "rollout-stuck", future))])
    shown = incident.as_dict()
    assert (shown["id"], shown["cluster"], shown["eventType"], shown["state"]) == (
        future,
        "prod",
        "y",
        FIRING,
    )
    assert matches(incident, namespace=None, workload=None)


@pytest.mark.parametrize("text", ["", "prod/shop", "prod//pod/c/t", "a/b/c/d/e/f"])
def test_anything_else_is_not_an_incident_id(text: str) -> None:
    with pytest.raises(ValueError, match="not an incident id"):
        IncidentId.parse(text)


def test_a_summary_keeps_what_an_agent_reads_and_drops_the_snapshot() -> None:
    shown = summary(pod("01:00", OPENED, reason="CrashLoopBackOff"))
    assert "object" not in shown
    assert shown["containers"] == [
        {
            "name": "app",
            "state": "waiting",
            "reason": "CrashLoopBackOff",
            "message": "back-off 40s",
            "ready": False,
        }
    ]
    assert (shown["phase"], shown["node"], shown["restartCount"]) == ("Running", "n1", 3)
    about = summary(event("02:00", REPEAT, count=4))
    assert (about["count"], about["type"], about["involvedObject"]["name"]) == (
        4,
        "Warning",
        "web-5c8d7f9b44-m4k8z",
    )
    assert about["classification"] == [REPEAT]


def test_a_window_is_start_or_since_back_from_now() -> None:
    assert window(None, None, None) == {}
    assert window("2026-11-20T09:00:00Z", "2026-11-20T10:00:00Z", None) == {
        "start": "2026-11-20T09:00:00Z",
        "end": "2026-11-20T10:00:00Z",
    }
    start = datetime.fromisoformat(window(None, None, "2h")["start"])
    assert abs((datetime.now(UTC) - start).total_seconds() - 7200) < 60
    with pytest.raises(EventsError, match="not both"):
        window("2026-11-20T09:00:00Z", None, "1h")
    with pytest.raises(EventsError, match="number and a unit"):
        window(None, None, "yesterday")


def test_a_kind_without_a_summary_keeps_its_snapshot() -> None:
    node = {
        "id": "n-1",
        "verb": "update",
        "objectRef": {"cluster": "prod", "namespace": "", "kind": "Node", "name": "n1", "uid": "u3"},
        "timestamp": "2026-11-20T09:00:00.000Z",
        "reason": "NodeNotReady",
        "object": {"name": "n1", "ready": False},
        "classification": [],
    }
    assert summary(node)["object"] == {"name": "n1", "ready": False}
    assert incidents_of([node]) == []
