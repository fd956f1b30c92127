"""The deliver function against the REAL Restate server and the reference manager, through the local
stack (moto SQS, the template's event source mapping): exactly-once effect under Lambda retries,
a Restate outage (breaker, batch item failures, nothing lost, everything delivered once after the
restart), and 4xx answers (DLQ with the reason and the answer; 401/403 counted on their own).

The restart keeps Restate's data dir and ports: the manager's state (what it recorded) and the
idempotency records live in Restate, so only a restart of the same node can show "each event once"
across the outage, and it is what a production Restate restart is (a fresh node would have lost the
registration and every object's state: that is data loss on the manager's side, not a restart).
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.stack import LocalStack
from podwatch.models import Notification
from podwatch.restate import new_breaker
from tests.factories import pod_notification

pytestmark = pytest.mark.integration

RESET_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def output() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, output: io.StringIO) -> Iterator[LocalStack]:
    with LocalStack(
        run_dir=tmp_path_factory.mktemp("deliver-restate"),
        max_batching_window_seconds=0.5,
        retry_delay_seconds=1,
        function_output=output,
    ) as local:
        yield local


@pytest.fixture(autouse=True)
def fast_breaker(stack: LocalStack) -> None:
    """A fresh breaker per test that opens after 2 failed attempts and half-opens after 2 s, and two
    tries per call: the production values (5 failures, 30 s, 4 tries) with the same behaviour."""
    stack.in_function(
        "DeliverFunction",
        lambda m: m.set_dependencies(
            m.build_dependencies(
                max_tries=2,
                backoff_base=0.01,
                breaker=new_breaker(fail_max=2, reset_timeout=RESET_TIMEOUT),
            )
        ),
    )


@pytest.fixture
def cluster() -> str:
    return f"rst-{uuid.uuid4().hex[:8]}"


def notes(cluster_id: str, n: int, tag: str = "p") -> list[Notification]:
    return [pod_notification(cluster_id, f"{tag}-{i}", resource_version=str(100 + i)) for i in range(n)]


def enqueue(stack: LocalStack, notifications: list[Notification]) -> None:
    url = stack.queue_url("DeliveriesQueue")
    for start in range(0, len(notifications), 10):
        chunk = notifications[start : start + 10]
        answer = stack.sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": n.model_dump_json()} for i, n in enumerate(chunk)],
        )
        assert not answer.get("Failed")


def deliver_deps(stack: LocalStack) -> Any:
    return stack.in_function("DeliverFunction", lambda m: m.dependencies())


def delivered_ids(stack: LocalStack, cluster: str) -> list[str]:
    return [n["notification_id"] for n in stack.delivered(cluster)]


def dlq_for(stack: LocalStack, cluster: str) -> list[Any]:
    return [m for m in stack.dlq_messages() if m.queue == "DeliveriesDLQ" and cluster in m.body]


def emf_metrics(output: io.StringIO, name: str) -> list[dict[str, Any]]:
    """EMF blobs in the functions' output that carry metric `name`."""
    found = []
    for line in output.getvalue().splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        names = {m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        if name in names:
            found.append(blob)
    return found


def sqs_event_of(stack: LocalStack, notifications: list[Notification]) -> dict[str, Any]:
    from local.lambda_runtime import sqs_event

    return sqs_event(
        [n.model_dump_json() for n in notifications], queue_arn=stack.provisioned.arn("DeliveriesQueue")
    )


# --------------------------------------------------------------------------- exactly once


def test_a_batch_delivered_twice_takes_effect_once(stack: LocalStack, cluster: str) -> None:
    batch = notes(cluster, 7)
    event = sqs_event_of(stack, batch)

    # When Lambda invokes the same batch twice (a retry after a timeout, say)
    first = stack.invoke("DeliverFunction", event)
    again = stack.invoke("DeliverFunction", event)

    # Then both succeed, and the manager ran the handler once: Restate answered the repeat itself
    assert first == again == {"batchItemFailures": []}
    assert delivered_ids(stack, cluster) == [n.notification_id for n in batch]
    stats = stack.manager_stats(cluster)
    assert (stats["notify_calls"], stats["events_new"]) == (1, 7)

    # And a retry that re-chunked the records (different key) still records nothing twice
    overlap = sqs_event_of(stack, [*batch[3:], *notes(cluster, 2, tag="q")])
    assert stack.invoke("DeliverFunction", overlap) == {"batchItemFailures": []}
    stats = stack.manager_stats(cluster)
    assert (stats["notify_calls"], stats["events_received"], stats["events_new"]) == (2, 13, 9)
    assert len(set(delivered_ids(stack, cluster))) == len(delivered_ids(stack, cluster)) == 9


# --------------------------------------------------------------------------- Restate outage


def poll_until_received(poller: Any, count: int, *, timeout: float = 20.0) -> tuple[int, int]:
    """Poll like the event source mapping until `count` records were received; (received, failed).
    One poll may take fewer than all of them (batching window, visibility timing on a loaded machine)."""
    received = failed = 0
    deadline = time.monotonic() + timeout
    while received < count and time.monotonic() < deadline:
        outcome = poller.poll_once()
        if outcome is None or outcome.received == 0:
            time.sleep(0.1)
            continue
        received += outcome.received
        failed += outcome.failed
    return received, failed


def test_restate_down_opens_the_breaker_loses_nothing_and_delivers_each_event_once_after(
    stack: LocalStack, cluster: str
) -> None:
    assert stack.restate is not None
    before = notes(cluster, 10, tag="before")
    during = notes(cluster, 20, tag="during")
    poller = stack.pollers["DeliverFunction"][0]
    enqueue(stack, before)
    stack.pump_until_idle(timeout=60)
    assert len(stack.delivered(cluster)) == 10

    # Given Restate stops while records are on their way
    stack.restate.stop(keep_data=True)
    try:
        enqueue(stack, during)

        # When the event source mapping delivers them: every record comes back as a failure
        assert poll_until_received(poller, 20) == (20, 20)
        deps = deliver_deps(stack)
        assert deps.restate.breaker.current_state == "open"
        requests = deps.restate.stats.requests

        # and while the breaker is open, again as failures, without a call to Restate
        time.sleep(1.2)  # the local retry delay
        assert poll_until_received(poller, 20) == (20, 20)
        assert deps.restate.stats.requests == requests
        assert emf_metrics_count(stack, "CircuitOpen") >= 20

        # Nothing lost: all 20 are still on the deliveries queue, none in its DLQ
        assert poller.queue_depth() == 20
        assert dlq_for(stack, cluster) == []
    finally:
        # Then Restate comes back (same node: same data dir and address)
        stack.restate.start()
    time.sleep(RESET_TIMEOUT)  # the breaker half-opens; the next call closes it
    stack.pump_until_idle(timeout=60)

    ids_ = delivered_ids(stack, cluster)
    assert sorted(ids_) == sorted(n.notification_id for n in [*before, *during])
    assert len(ids_) == len(set(ids_)) == 30  # each once
    assert stack.manager_stats(cluster)["events_new"] == 30
    assert deliver_deps(stack).restate.breaker.current_state == "closed"
    assert dlq_for(stack, cluster) == []


def emf_metrics_count(stack: LocalStack, name: str) -> int:
    output = stack.function_output
    assert isinstance(output, io.StringIO)
    total = 0
    for blob in emf_metrics(output, name):
        value = blob.get(name, 0)
        total += int(sum(value) if isinstance(value, list) else value)
    return total


# --------------------------------------------------------------------------- 4xx


def set_fault(stack: LocalStack, cluster: str, status: int | None, message: str = "") -> None:
    body = None if status is None else {"status_code": status, "message": message}
    response = stack.manager_call(cluster, "SetFault", body)  # no body: clear the fault
    assert response.status_code == 200, response.text


def test_a_400_sends_the_records_to_the_dlq_with_the_reason_and_keeps_the_breaker_closed(
    stack: LocalStack, cluster: str
) -> None:
    set_fault(stack, cluster, 400, f"cluster {cluster} is not known to this manager")
    batch = notes(cluster, 4)
    enqueue(stack, batch)

    result = stack.pump_until_idle(timeout=60)

    assert result.failed_records == 0  # permanent: not retried
    dlq = dlq_for(stack, cluster)
    assert sorted(json.loads(m.body)["notification_id"] for m in dlq) == sorted(
        n.notification_id for n in batch
    )
    for m in dlq:
        assert (m.reason, m.attributes["status_code"]) == ("rejected", "400")
        assert "is not known to this manager" in m.attributes["response_body"]
        assert "400" in (m.error or "")
    deps = deliver_deps(stack)
    assert deps.restate.breaker.current_state == "closed"
    assert deps.restate.breaker.fail_counter == 0
    assert stack.delivered(cluster) == []


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_raise_delivery_unauthorized(stack: LocalStack, cluster: str, status: int) -> None:
    set_fault(stack, cluster, status, "token refused")
    unauthorized_before = emf_metrics_count(stack, "DeliveryUnauthorized")
    batch = notes(cluster, 3)
    enqueue(stack, batch)

    stack.pump_until_idle(timeout=60)

    assert emf_metrics_count(stack, "DeliveryUnauthorized") == unauthorized_before + 1
    dlq = dlq_for(stack, cluster)
    assert len(dlq) == 3
    assert {m.attributes["status_code"] for m in dlq} == {str(status)}
    assert deliver_deps(stack).restate.breaker.current_state == "closed"

    # And once the manager accepts again, new records go through (the breaker never tripped)
    set_fault(stack, cluster, None)
    fresh = notes(cluster, 2, tag="after")
    enqueue(stack, fresh)
    stack.pump_until_idle(timeout=60)
    assert delivered_ids(stack, cluster) == [n.notification_id for n in fresh]


# --------------------------------------------------------------------------- samples


def test_the_enroll_sample_enrolls_and_delivers(stack: LocalStack) -> None:
    """`sam local invoke DeliverFunction -e events/deliver/enroll.json`: an enroll command (what
    the processor forwards for a new relay version) next to a notification."""
    from local.lambda_runtime import load_event

    event = load_event("events/deliver/enroll.json")
    assert stack.invoke("DeliverFunction", event) == {"batchItemFailures": []}
    assert stack.invoke("DeliverFunction", event) == {"batchItemFailures": []}  # a Lambda retry

    command = json.loads(event["Records"][0]["body"])
    cluster = command["request"]["cluster_id"]
    enrollments = stack.manager_call(cluster, "GetEnrollments").json()["enrollments"]
    assert [(e["relay_version"], e["count"]) for e in enrollments] == [
        (command["request"]["relay_version"], 1)
    ]
    note = json.loads(event["Records"][1]["body"])
    assert note["notification_id"] in delivered_ids(stack, cluster)


def test_a_malformed_control_command_is_quarantined(stack: LocalStack, cluster: str) -> None:
    event = sqs_event_of(stack, notes(cluster, 1))
    bad = {**event["Records"][0], "messageId": str(uuid.uuid4()), "body": '{"kind": "enroll", "request": {}}'}
    event["Records"].append(bad)
    assert stack.invoke("DeliverFunction", event) == {"batchItemFailures": []}
    dlq = [m for m in stack.dlq_messages() if m.attributes.get("source_message_id") == bad["messageId"]]
    assert [m.reason for m in dlq] == ["malformed"]
    assert len(stack.delivered(cluster)) == 1


# --------------------------------------------------------------------------- a brief manager failure


def fault_for(stack: LocalStack, cluster: str, status: int, seconds: float) -> threading.Timer:
    """The manager fails every Notify*/Enroll of `cluster` with `status` for `seconds`, then recovers."""
    set_fault(stack, cluster, status, f"manager briefly unavailable ({status})")
    timer = threading.Timer(seconds, set_fault, args=(stack, cluster, None))
    timer.start()
    return timer


@pytest.mark.parametrize("status", [503, 500, 429])
def test_a_manager_failing_for_3_seconds_then_recovering_gets_everything_once(
    stack: LocalStack, cluster: str, status: int
) -> None:
    # Given the manager answers `status` for ~3 s (Restate stores each failed answer under its key)
    batch = notes(cluster, 12)
    timer = fault_for(stack, cluster, status, 3.0)
    try:
        # When notifications arrive meanwhile and the event source mapping keeps retrying them
        enqueue(stack, batch)
        stack.pump_until_idle(timeout=90)
    finally:
        timer.join()

    # Then after the recovery every notification reached the manager, each once, none in the DLQ
    ids_ = delivered_ids(stack, cluster)
    assert sorted(ids_) == sorted(n.notification_id for n in batch)
    assert len(ids_) == len(set(ids_))
    assert stack.manager_stats(cluster)["events_new"] == 12
    assert dlq_for(stack, cluster) == []


def test_a_replayed_failed_answer_is_walked_past_and_the_breaker_does_not_count_it(
    stack: LocalStack, cluster: str
) -> None:
    # Given one chunk failed under its content key while the manager was down (Restate keeps the 503)
    batch = notes(cluster, 3)
    event = sqs_event_of(stack, batch)
    set_fault(stack, cluster, 503, "down")
    assert stack.invoke("DeliverFunction", event)["batchItemFailures"]
    set_fault(stack, cluster, None)
    deps = deliver_deps(stack)
    deps.restate.breaker.close()
    cached_before = deps.restate.stats.cached_failures

    # When Lambda invokes the same batch again (same receive: the keys it used are spent)
    assert stack.invoke("DeliverFunction", event) == {"batchItemFailures": []}

    # Then Restate's stored 503s were skipped for a fresh key that reached the recovered manager
    assert sorted(delivered_ids(stack, cluster)) == sorted(n.notification_id for n in batch)
    assert deps.restate.stats.cached_failures > cached_before
    assert deps.restate.breaker.fail_counter == 0


def test_a_chunk_failing_at_its_last_receive_goes_to_the_dlq_with_status_body_and_reason(
    stack: LocalStack, cluster: str
) -> None:
    set_fault(stack, cluster, 503, "manager down for maintenance")
    limit = int(stack.function_env["DeliverFunction"]["MAX_RECEIVE_COUNT"])
    batch = notes(cluster, 2)
    from local.lambda_runtime import sqs_event

    event = sqs_event(
        [n.model_dump_json() for n in batch],
        queue_arn=stack.provisioned.arn("DeliveriesQueue"),  # type: ignore[union-attr]
        receive_count=limit,
    )
    try:
        # When the last receive fails too: handled (not a batch item failure SQS would redrive bare)
        assert stack.invoke("DeliverFunction", event) == {"batchItemFailures": []}
    finally:
        set_fault(stack, cluster, None)

    dlq = dlq_for(stack, cluster)
    assert len(dlq) == 2
    for m in dlq:
        assert m.reason == "delivery_failed"
        assert m.attributes["status_code"] == "503"
        assert "manager down for maintenance" in m.attributes["response_body"]
        assert f"gave up after {limit} receives" in (m.error or "")


def test_an_enroll_during_a_brief_manager_failure_is_enrolled_once_after(
    stack: LocalStack, cluster: str
) -> None:
    from podwatch.control import EnrollCommand
    from podwatch.models import EnrollRequest

    command = EnrollCommand(request=EnrollRequest(cluster_id=cluster, relay_version="9.9.9"))
    timer = fault_for(stack, cluster, 503, 3.0)
    try:
        stack.send_raw(command.model_dump_json(), queue="DeliveriesQueue")
        stack.pump_until_idle(timeout=90)
    finally:
        timer.join()

    enrollments = stack.manager_call(cluster, "GetEnrollments").json()["enrollments"]
    assert [(e["relay_version"], e["count"]) for e in enrollments] == [("9.9.9", 1)]
    assert dlq_for(stack, cluster) == []
