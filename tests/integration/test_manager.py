"""The reference manager (local/manager.py) behind the real Restate server: the contract a real
manager implements (docs/internals.md, "Restate")."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from local.restate import ManagerServer, RestateServer
from podwatch import ids
from podwatch.models import EnrollRequest, EventType, Notification, RemoteConfig
from podwatch.restate import RestateClient
from tests.factories import pod_notification

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("restate-logs")
    with RestateServer(logs) as restate, ManagerServer(logs) as manager:
        restate.register(manager.uri)
        restate.wait_ingress_ready("PodwatchManager")
        yield restate.ingress_url


@pytest.fixture
def http(ingress: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ingress, timeout=15) as client:
        yield client


@pytest.fixture
def cluster() -> str:
    """A fresh object key per test: tests share the server, never state."""
    return f"cluster-{uuid.uuid4().hex[:10]}"


def body_of(*notes: Notification) -> str:
    return json.dumps({"events": [json.loads(n.model_dump_json()) for n in notes]})


def post(
    http: httpx.Client, cluster: str, handler: str, body: str | None = None, key: str | None = None
) -> httpx.Response:
    headers = {"content-type": "application/json"} if body is not None else {}
    if key:
        headers["idempotency-key"] = key
    return http.post(f"/PodwatchManager/{cluster}/{handler}", content=body, headers=headers)


def delivered(http: httpx.Client, cluster: str) -> list[dict[str, Any]]:
    response = post(http, cluster, "GetDelivered")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def stats(http: httpx.Client, cluster: str) -> dict[str, Any]:
    response = post(http, cluster, "GetStats")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_repeated_idempotency_key_is_recorded_once(http: httpx.Client, cluster: str) -> None:
    notes = [pod_notification(cluster, "a"), pod_notification(cluster, "b")]
    key = ids.idempotency_key(n.notification_id for n in notes)
    first = post(http, cluster, "NotifyPodEvents", body_of(*notes), key)
    again = post(http, cluster, "NotifyPodEvents", body_of(*notes), key)

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"received": 2, "new": 2}
    assert [e["notification_id"] for e in delivered(http, cluster)] == [n.notification_id for n in notes]
    assert stats(http, cluster)["notify_calls"] == 1  # Restate answered the repeat without running it


def test_same_notifications_in_another_batch_are_recorded_once(http: httpx.Client, cluster: str) -> None:
    a, b, c = (pod_notification(cluster, p) for p in ("a", "b", "c"))
    post(
        http,
        cluster,
        "NotifyPodEvents",
        body_of(a, b),
        ids.idempotency_key([a.notification_id, b.notification_id]),
    )
    # A Lambda retry that re-chunked: overlapping batch, different content, different key.
    answer = post(
        http,
        cluster,
        "NotifyPodEvents",
        body_of(b, c, a),
        ids.idempotency_key([a.notification_id, b.notification_id, c.notification_id]),
    )
    assert answer.json() == {"received": 3, "new": 1}
    # Without any idempotency key at all, the manager still records by notification_id.
    assert post(http, cluster, "NotifyPodEvents", body_of(a)).json() == {"received": 1, "new": 0}
    assert post(http, cluster, "NotifyPodEvent", a.model_dump_json()).json() == {"received": 1, "new": 0}

    events = delivered(http, cluster)
    assert [e["notification_id"] for e in events] == [a.notification_id, b.notification_id, c.notification_id]
    assert events[0] == json.loads(a.model_dump_json())  # exactly as received
    s = stats(http, cluster)
    assert (s["notify_calls"], s["events_received"], s["events_new"]) == (4, 7, 3)
    assert set(s["received_at"]) == {a.notification_id, b.notification_id, c.notification_id}


def test_notify_pod_event_single(http: httpx.Client, cluster: str) -> None:
    n = pod_notification(cluster, "single", EventType.OOM_KILL)
    answer = post(
        http, cluster, "NotifyPodEvent", n.model_dump_json(), ids.idempotency_key([n.notification_id])
    )
    assert answer.json() == {"received": 1, "new": 1}
    assert [e["event_type"] for e in delivered(http, cluster)] == ["oom-kill"]


def test_clusters_are_separate_objects(http: httpx.Client, cluster: str) -> None:
    other = f"{cluster}-other"
    post(http, cluster, "NotifyPodEvents", body_of(pod_notification(cluster, "x")))
    assert len(delivered(http, cluster)) == 1
    assert delivered(http, other) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("this is not json", "body is not JSON"),
        ('{"events": [{"notification_id": "x"}]}', "not a valid NotifyPodEventsRequest"),
        ('{"events": [], "extra": 1}', "not a valid NotifyPodEventsRequest"),
    ],
)
def test_bad_body_is_a_terminal_400(http: httpx.Client, cluster: str, body: str, message: str) -> None:
    started = time.monotonic()
    answer = post(http, cluster, "NotifyPodEvents", body, key=f"bad-{uuid.uuid4().hex}")
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["message"]
    assert time.monotonic() - started < 5  # terminal: no retry loop inside Restate
    assert delivered(http, cluster) == []


def test_notification_for_another_cluster_is_rejected(http: httpx.Client, cluster: str) -> None:
    stray = pod_notification("some-other-cluster", "p")
    answer = post(http, cluster, "NotifyPodEvents", body_of(stray))
    assert answer.status_code == 400
    assert "some-other-cluster" in answer.json()["message"]
    assert delivered(http, cluster) == []


def test_remote_config_default_then_set(http: httpx.Client, cluster: str) -> None:
    default = post(http, cluster, "GetRemoteConfig")
    assert default.status_code == 200
    assert RemoteConfig.model_validate(default.json()) == RemoteConfig()
    assert default.json() == json.loads(RemoteConfig().to_json())

    wanted = RemoteConfig(
        version="v2", batch_size=7, dedup_cooldown_seconds=60, enabled_reasons=frozenset({EventType.OOM_KILL})
    )
    stored = post(http, cluster, "SetRemoteConfig", wanted.to_json())
    assert stored.status_code == 200
    assert RemoteConfig.model_validate(stored.json()) == wanted
    assert RemoteConfig.model_validate(post(http, cluster, "GetRemoteConfig").json()) == wanted
    # per cluster: another cluster still has the defaults
    assert RemoteConfig.model_validate(post(http, f"{cluster}-x", "GetRemoteConfig").json()) == RemoteConfig()


def test_invalid_remote_config_is_refused_and_the_old_one_stays(http: httpx.Client, cluster: str) -> None:
    post(http, cluster, "SetRemoteConfig", RemoteConfig(version="good", batch_size=5).to_json())
    bad = post(http, cluster, "SetRemoteConfig", json.dumps({"version": "bad", "batch_size": 0}))
    assert bad.status_code == 400
    assert "batch_size" in bad.json()["message"]
    unknown = post(http, cluster, "SetRemoteConfig", json.dumps({"version": "bad", "no_such_knob": 1}))
    assert unknown.status_code == 400
    assert RemoteConfig.model_validate(post(http, cluster, "GetRemoteConfig").json()).version == "good"


def test_enroll_once_per_cluster_and_relay_version(http: httpx.Client, cluster: str) -> None:
    def enroll(version: str, started: str) -> dict[str, Any]:
        request = EnrollRequest(
            cluster_id=cluster, relay_version=version, started_at=datetime.fromisoformat(started)
        )
        answer = post(http, cluster, "Enroll", request.model_dump_json())
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    assert enroll("0.1.0", "2026-11-20T09:00:00+00:00") == {"enrolled": True, "new": True}
    assert enroll("0.1.0", "2026-11-20T10:00:00+00:00") == {"enrolled": True, "new": False}  # relay restart
    assert enroll("0.2.0", "2026-11-21T09:00:00+00:00") == {"enrolled": True, "new": True}

    answer = post(http, cluster, "GetEnrollments")
    enrollments = answer.json()["enrollments"]
    assert [(e["relay_version"], e["count"]) for e in enrollments] == [("0.1.0", 2), ("0.2.0", 1)]
    assert enrollments[0]["request"]["started_at"].startswith("2026-11-20T10:00:00")  # the latest start

    mismatch = post(
        http, cluster, "Enroll", EnrollRequest(cluster_id="elsewhere", relay_version="1").model_dump_json()
    )
    assert mismatch.status_code == 400


def test_the_layer_restate_client_speaks_the_contract(ingress: str, cluster: str) -> None:
    """podwatch.restate.RestateClient with its default paths against the reference manager."""
    client = RestateClient(base_url=ingress)
    try:
        notes = [pod_notification(cluster, "p1"), pod_notification(cluster, "p2")]
        assert client.notify_pod_events(cluster, notes) == {"received": 2, "new": 2}
        assert client.notify_pod_events(cluster, notes) == {
            "received": 2,
            "new": 2,
        }  # same key: cached answer
        assert client.notify_pod_event(notes[0]) == {"received": 1, "new": 0}
        assert client.get_remote_config(cluster) == RemoteConfig()
        assert client.enroll(EnrollRequest(cluster_id=cluster, relay_version="0.1.0"))["enrolled"] is True
        assert client.stats.by_status == {"200": 5}
    finally:
        client.close()
    with httpx.Client(base_url=ingress, timeout=15) as http:
        assert len(delivered(http, cluster)) == 2
