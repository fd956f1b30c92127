"""The relay's list/watch loop, through the real `kubernetes` client over HTTP, against the fake
API server (tests/fakeapi), into SQS (moto, in process)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes.client import CoreV1Api

from podwatch.models import KubeEventEnvelope
from podwatch_relay.watch import (
    kube_system_uid,
    server_version,
)
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.pods import container_status, core_event, pod
from tests.integration.relay_harness import Harness, crash, wait_for

pytestmark = pytest.mark.integration


def test_list_then_watch_forwards_changes(fake: FakeKubeApi, harness: Harness) -> None:
    # Given a cluster with one healthy pod, and the relay started
    fake.put(pod("shop", "api-1"))
    harness.start()

    # Then the listed pod is forwarded, marked as initial sync
    listed = wait_for(lambda: harness.pods("api-1"), what="the listed pod")
    assert listed[0].payload.initial_sync is True
    assert listed[0].payload.watch_type == "ADDED"

    # When the pod starts crash-looping, the kubelet reports BackOff, and a Node has an event
    fake.update("Pod", "shop", "api-1", lambda o: crash(o, 1))
    fake.put(core_event(namespace="shop", involved_name="api-1"))
    fake.put(core_event(namespace="default", name="node-1.1", involved_kind="Node", involved_name="node-1"))

    # Then the change is forwarded with its transition, and the pod's Event too
    changed = wait_for(
        lambda: [e for e in harness.pods("api-1") if not e.payload.initial_sync], what="change"
    )
    assert changed[0].payload.watch_type == "MODIFIED"
    assert ("restart_count", 0, 1) in {(t.field, t.old, t.new) for t in changed[0].payload.transitions}
    events = wait_for(lambda: [e for e in harness.poll() if isinstance(e, KubeEventEnvelope)], what="event")
    assert [(e.payload.reason, e.payload.involved_object.name) for e in events] == [("BackOff", "api-1")]

    # And the Node event was filtered by the API server (field selector), never reaching the relay
    assert all(
        r.query.get("fieldSelector") == "involvedObject.kind=Pod" for r in fake.watch_requests("events")
    )
    assert harness.relay.stats.skipped == 0


def test_410_causes_a_relist_and_the_missed_change_is_still_forwarded(
    fake: FakeKubeApi, harness: Harness
) -> None:
    # Given two watched pods, both forwarded once at start
    fake.put(pod("shop", "api-1"))
    fake.put(pod("shop", "quiet-1"))
    harness.start()
    wait_for(lambda: harness.pods("api-1") and harness.pods("quiet-1"), what="initial list")

    # When one pod is OOMKilled and the history is compacted before any watcher saw the change
    with fake.atomically():
        fake.update(
            "Pod",
            "shop",
            "api-1",
            lambda o: o["status"].update(
                containerStatuses=[container_status(restarts=1, last_terminated=("OOMKilled", 137))]
            ),
        )
        fake.compact()

    # Then the watch gets 410 Gone, the relay relists, and the change is forwarded from the relist
    oom = wait_for(
        lambda: [e for e in harness.pods("api-1") if e.payload.restart_count == 1], what="OOM change"
    )
    assert len(oom) == 1
    # found by a list, but a change of a pod the relay knew: its transitions are real (issue 20)
    assert oom[0].payload.initial_sync is False
    assert ("last_termination_reason", None, "OOMKilled") in {
        (t.field, t.old, t.new) for t in oom[0].payload.transitions
    }
    pods_watcher = harness.watchers["pods"]
    assert pods_watcher.stats.relists == 1
    assert len(fake.list_requests("pods")) == 2
    assert "relist" in harness.outcomes["pods"]

    # And the pod that did not change is not sent again by the relist
    time.sleep(0.3)
    assert len(harness.pods("quiet-1")) == 1


def test_bookmarks_advance_the_version_and_are_never_forwarded(fake: FakeKubeApi, harness: Harness) -> None:
    # Given a watched pod, forwarded once
    fake.put(pod("shop", "api-1"))
    harness.start()
    wait_for(lambda: harness.pods("api-1"), what="initial list")

    # When other kinds of objects change (the global resourceVersion moves, no pod changes)
    for i in range(3):
        fake.put(
            {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": f"cm{i}", "namespace": "shop"}}
        )
    target = str(fake.resource_version)

    # Then bookmarks carry the watchers to the new version
    wait_for(lambda: harness.watchers["pods"].resource_version == target, what="bookmark to the new version")
    wait_for(lambda: harness.watchers["events"].resource_version == target, what="events bookmark")
    assert harness.outcomes["pods"].count("bookmark") >= 1

    # And nothing more reached the queue
    time.sleep(0.2)
    assert len(harness.poll()) == 1
    assert harness.relay.stats.bookmarks >= 2
    assert harness.relay.stats.forwarded == 1


def test_dropped_connection_resumes_from_the_last_version_without_relist(
    fake: FakeKubeApi, harness: Harness
) -> None:
    # Given a watched pod
    fake.put(pod("shop", "api-1"))
    harness.start()
    wait_for(lambda: harness.pods("api-1"), what="initial list")
    wait_for(lambda: fake.open_watches == 2, what="both watches open")

    # When the server drops every stream and the pod changes while the relay reconnects
    assert fake.drop_connections() == 2
    changed_rv = int(
        fake.update("Pod", "shop", "api-1", lambda o: crash(o, 2))["metadata"]["resourceVersion"]
    )

    # Then the change is forwarded exactly once, from a watch resumed at the last version (no relist)
    changed = wait_for(
        lambda: [e for e in harness.pods("api-1") if e.payload.restart_count == 2], what="change"
    )
    time.sleep(0.3)
    assert len([e for e in harness.pods("api-1") if e.payload.restart_count == 2]) == len(changed) == 1
    assert len(fake.list_requests("pods")) == 1
    assert harness.watchers["pods"].stats.reconnects >= 1
    resumed = fake.watch_requests("pods")[1]
    assert 0 < int(resumed.query["resourceVersion"]) < changed_rv


def test_stalled_stream_is_noticed_and_resumed(
    fake: FakeKubeApi, api: CoreV1Api, queue: tuple[Any, str]
) -> None:
    # Given a relay whose inactivity timeout is short, watching one pod
    harness = Harness(api=api, sqs=queue[0], queue_url=queue[1], inactivity_timeout=0.5)
    fake.put(pod("shop", "api-1"))
    try:
        harness.start()
        wait_for(lambda: harness.pods("api-1"), what="initial list")

        # When the server keeps the connections open but sends nothing (not even bookmarks)
        fake.faults.stalled = True
        wait_for(lambda: harness.watchers["pods"].stats.streams >= 2, what="a reconnect after inactivity")

        # Then, once the server talks again, a change is forwarded, without any relist
        fake.faults.stalled = False
        fake.update("Pod", "shop", "api-1", lambda o: crash(o, 1))
        wait_for(lambda: [e for e in harness.pods("api-1") if e.payload.restart_count == 1], what="change")
        assert len(fake.list_requests("pods")) == 1
        assert harness.watchers["pods"].stats.reconnects >= 1
    finally:
        harness.close()


def test_cluster_facts_come_from_the_api_server(fake: FakeKubeApi, api: CoreV1Api) -> None:
    assert kube_system_uid(api, request_timeout=5) == fake.kube_system_uid
    assert server_version(api.api_client, request_timeout=5) == "v1.33.0-fakeapi"
