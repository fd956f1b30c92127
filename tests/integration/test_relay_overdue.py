"""Pods that stop changing (relay `deadlines`): the relay forwards a waiting pod again when its
threshold passes, with no watch line, through the real `kubernetes` client against the fake API
server; the processor's classification then names the trouble. Short thresholds (1 s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client import CoreV1Api

from podwatch.classify import Thresholds, classify
from podwatch.models import EventType, PodEnvelope
from podwatch_relay.deadlines import Deadlines
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.pods import container_status, pod
from tests.integration.relay_harness import Harness, wait_for

#: what the remote config and the relay settings agree on in these tests
THRESHOLDS = Thresholds(pending_too_long_seconds=1, not_ready_too_long_seconds=1)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.fixture
def overdue_harness(api: CoreV1Api, queue: tuple[Any, str]) -> Iterator[Harness]:
    deadlines = Deadlines(pending_seconds=1, not_ready_seconds=1)
    h = Harness(api=api, sqs=queue[0], queue_url=queue[1], deadlines=deadlines)
    yield h
    h.close()


def overdue(envelopes: list[PodEnvelope]) -> list[PodEnvelope]:
    return [e for e in envelopes if any(t.field == "overdue" for t in e.payload.transitions)]


def test_a_pod_stuck_in_container_creating_is_notified_once_without_a_watch_line(
    fake: FakeKubeApi, overdue_harness: Harness
) -> None:
    # Given a pod created just now, stuck in ContainerCreating (it will never change again)
    stuck = pod(
        "shop",
        "stuck-1",
        phase="Pending",
        ready=False,
        containers=[container_status(waiting="ContainerCreating", running=False)],
    )
    stuck["metadata"]["creationTimestamp"] = now_text()
    fake.put(stuck)
    overdue_harness.start()
    [listed] = wait_for(lambda: overdue_harness.pods("stuck-1"), what="the listed pod")
    assert classify(listed, thresholds=THRESHOLDS) == []  # not Pending for long yet

    # When its threshold passes, with no further watch line about it
    [again] = wait_for(lambda: overdue(overdue_harness.pods("stuck-1")), timeout=6, what="the overdue pod")
    time.sleep(1.5)  # more than the threshold again: it is not forwarded a second time

    # Then the relay forwarded it once more, under an event id of its own, and it is trouble now
    assert overdue(overdue_harness.pods("stuck-1")) == [again]
    assert len(overdue_harness.pods("stuck-1")) == 2
    assert again.event_id != listed.event_id
    assert again.payload.resource_version == listed.payload.resource_version
    [finding] = classify(again, thresholds=THRESHOLDS)
    assert (finding.event_type, finding.reason) == (EventType.PENDING_TOO_LONG, "ContainerCreating")
    # and the watch brought nothing but the list and bookmarks
    assert [o for o in overdue_harness.outcomes["pods"] if o != "bookmark"] == ["forwarded"]
    assert overdue_harness.relay.stats.overdue == 1


def test_a_pod_that_starts_in_time_is_not_looked_at_again(
    fake: FakeKubeApi, overdue_harness: Harness
) -> None:
    starting = pod(
        "shop",
        "quick-1",
        phase="Pending",
        ready=False,
        containers=[container_status(waiting="ContainerCreating", running=False)],
    )
    starting["metadata"]["creationTimestamp"] = now_text()
    fake.put(starting)
    overdue_harness.start()
    wait_for(lambda: overdue_harness.pods("quick-1"), what="the listed pod")
    # When it starts and becomes ready before its threshold
    fake.update("Pod", "shop", "quick-1", lambda o: o["status"].update(pod("shop", "quick-1")["status"]))
    wait_for(lambda: len(overdue_harness.pods("quick-1")) == 2, what="the change")
    time.sleep(1.5)
    # Then nothing more is forwarded
    assert overdue(overdue_harness.pods("quick-1")) == []
    assert len(overdue_harness.relay.deadlines or ()) == 0


def test_a_running_pod_not_ready_too_long_is_notified(fake: FakeKubeApi, overdue_harness: Harness) -> None:
    unready = pod("shop", "unready-1", ready=False, containers=[container_status(ready=False)])
    unready["status"]["conditions"][1]["lastTransitionTime"] = now_text()
    unready["status"]["conditions"][1]["reason"] = "ContainersNotReady"
    fake.put(unready)
    overdue_harness.start()
    [again] = wait_for(lambda: overdue(overdue_harness.pods("unready-1")), timeout=6, what="the overdue pod")
    [finding] = classify(again, thresholds=THRESHOLDS)
    assert (finding.event_type, finding.reason) == (EventType.NOT_READY_TOO_LONG, "ContainersNotReady")
