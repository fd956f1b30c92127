"""Issue 15 through the cloud side, with the default remote config: what the relay sends to SQS
(moto) for a pod stuck in ContainerCreating (looked at again by its deadlines) and for an OOMKilled
container that fails its pod, handed to the processor handler as SQS delivers it; what reaches the
deliveries queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType

from local.lambda_runtime import sqs_event
from podwatch_relay.deadlines import Deadlines
from podwatch_relay.pipeline import Relay
from podwatch_relay.sink import SqsSink
from tests.fakeapi.pods import container_status, pod
from tests.integration import test_processor_moto as processor
from tests.integration.test_processor_moto import AuditTrail, Stack, invoke

#: the processor tests' fixtures (moto stack, the handler module, the audit trail), used by name
stack, app, trail = processor.stack, processor.app, processor.trail

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def relay_for(stack: Stack, clock: Callable[[], datetime]) -> tuple[Relay, str]:
    """A relay as `watch` builds one (default deadlines), into a pod-events queue on moto."""
    url = stack.sqs.create_queue(QueueName="pod-events")["QueueUrl"]
    relay = Relay(
        sink=SqsSink(client=stack.sqs, queue_url=url),
        cluster_id="c1",
        relay_version="t",
        batch_size=1,
        clock=clock,
        deadlines=Deadlines(pending_seconds=600, not_ready_seconds=900),
    )
    return relay, url


def line(watch_type: str, obj: dict[str, object]) -> str:
    return json.dumps({"type": watch_type, "object": obj})


def test_a_pod_stuck_in_container_creating_is_notified_once(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    # Given a pod created at T0 that the relay lists 10 s later, stuck in ContainerCreating
    now = [T0 + timedelta(seconds=10)]
    relay, url = relay_for(stack, lambda: now[0])
    stuck = pod(
        phase="Pending",
        ready=False,
        containers=[container_status(waiting="ContainerCreating", running=False)],
    )
    stuck["metadata"]["creationTimestamp"] = "2026-11-20T09:00:00Z"
    relay.handle_line(line("ADDED", stuck))

    # When no watch line ever comes again, and the relay's timer runs now and then for two hours
    for minutes in range(1, 121):
        now[0] = T0 + timedelta(minutes=minutes)
        relay.look_again()
    bodies = [m["Body"] for m in stack.drain(url)]
    response = invoke(app, sqs_event(bodies))

    # Then the processor (default remote config) notifies it once, as pending-too-long
    assert response == {"batchItemFailures": []}
    assert len(bodies) == 2
    [notification] = stack.notifications()
    assert (notification.event_type.value, notification.reason) == ("pending-too-long", "ContainerCreating")
    assert notification.message == "Pending for 600s"


def test_an_oom_kill_that_fails_the_pod_is_one_notification_and_a_later_eviction_another(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    now = [T0]
    relay, url = relay_for(stack, lambda: now[0])
    running = pod(name="job-1")
    relay.handle_line(line("ADDED", running))
    # When its container is OOMKilled and the pod fails (restartPolicy Never), in two updates
    oom = pod(name="job-1", ready=False, containers=[container_status(terminated=("OOMKilled", 137))])
    oom["metadata"]["resourceVersion"] = "101"
    relay.handle_line(line("MODIFIED", oom))
    failed = json.loads(json.dumps(oom))
    failed["status"]["phase"] = "Failed"
    failed["metadata"]["resourceVersion"] = "102"
    relay.handle_line(line("MODIFIED", failed))
    invoke(app, sqs_event([m["Body"] for m in stack.drain(url)]))

    # Then one notification: the OOM kill (the failed phase is the same incident)
    assert [(n.event_type.value, n.container) for n in stack.notifications()] == [("oom-kill", "app")]

    # And a later, different trouble of the same pod is still notified
    evicted = json.loads(json.dumps(failed))
    evicted["status"]["reason"] = "Evicted"
    evicted["status"]["message"] = "The node was low on resource: memory."
    evicted["metadata"]["resourceVersion"] = "103"
    relay.handle_line(line("MODIFIED", evicted))
    invoke(app, sqs_event([m["Body"] for m in stack.drain(url)]))
    assert [(n.event_type.value, n.reason) for n in stack.notifications()] == [("evicted", "Evicted")]
