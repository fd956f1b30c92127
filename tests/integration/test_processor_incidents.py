"""The processor's incidents on moto (in-process): cooldown over time, the firing/resolved lifecycle,
workload scope, racing invocations, batched forwarding, the pod metadata table.

Fixtures and event builders are those of test_processor_moto (the same stack, the same audit trail).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest

from local.lambda_runtime import sqs_event
from podwatch import ids
from podwatch.dedup import DedupStore
from podwatch.metadata import MetadataStore
from podwatch.models import (
    MAX_AFFECTED_PODS,
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
from podwatch.processing import NotificationOutbox, ProcessorDeps, process_record
from podwatch.wire import encode_envelope
from tests.integration.test_processor_moto import (  # noqa: F401 (fixtures)
    METADATA_TABLE,
    TABLE,
    AuditTrail,
    FlakySQS,
    Stack,
    app,
    crash_looping_pod,
    invoke,
    stack,
    trail,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CRASH_KEY = "prod-eu-1/payments/payments-api-84c6d9f7b8-tq5vn/api/crash-loop"
WORKLOAD_KEY = "prod-eu-1/payments/workload:payments-api/crash-loop"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def observed(self, event: dict[str, Any]) -> dict[str, Any]:
        """`event` with each envelope's trouble observed now (windows run on the observed time)."""
        for record in event["Records"]:
            body = json.loads(record["body"])
            body["payload"]["observed_at"] = self.now.isoformat()
            record["body"] = json.dumps(body)
        return event


@pytest.fixture
def clock(app: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Clock:  # noqa: F811
    """The handler's `datetime.now` under the test's control (dedup windows are compared to it)."""
    clock = Clock(datetime.now(UTC).replace(microsecond=0))

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return clock.now

    monkeypatch.setattr(app, "datetime", FrozenDatetime)
    return clock


def item(stack: Stack, key: str) -> dict[str, Any]:  # noqa: F811
    found: dict[str, Any] = stack.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": key}})["Item"]
    return found


def replica(suffix: str) -> str:
    """A 5-letter pod-name suffix that is unique for `suffix` (Kubernetes' safe alphabet)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(suffix)
    return "".join(alphabet[(n // len(alphabet) ** i) % len(alphabet)] for i in range(5))


def recovered_pod(suffix: str = "tq5vn", rv: str = "900", restarts: int = 6) -> str:
    """The crash-looping container is running and ready again (transitions ready false → true)."""
    payload = PodEvent(
        namespace="payments",
        name=f"payments-api-84c6d9f7b8-{suffix}",
        uid=f"uid-{suffix}",
        phase="Running",
        labels={"pod-template-hash": "84c6d9f7b8", "project-id": "proj-pay"},
        owner_references=[OwnerReference(kind="ReplicaSet", name="payments-api-84c6d9f7b8", controller=True)],
        containers=[
            ContainerStatus(
                name="api",
                state="running",
                ready=True,
                started=True,
                restart_count=restarts,
                last_termination_reason="Error",
            )
        ],
        transitions=[Transition(field="ready", container="api", old=False, new=True)],
        resource_version=rv,
    )
    event_id = ids.pod_event_id("prod-eu-1", payload.uid, rv, "MODIFIED")
    return encode_envelope(PodEnvelope(event_id=event_id, cluster_id="prod-eu-1", payload=payload))


def probe_failed_event(pod: str, count: int = 1) -> str:
    payload = KubeEvent(
        namespace="payments",
        name=f"{pod}.18b",
        uid=f"ev-probe-{pod}",
        reason="Unhealthy",
        message="Liveness probe failed: HTTP probe failed with statuscode: 500",
        type="Warning",
        count=count,
        involved_object=InvolvedObject(
            kind="Pod", name=pod, namespace="payments", field_path="spec.containers{api}"
        ),
    )
    event_id = ids.kube_event_id("prod-eu-1", payload.uid, count)
    return encode_envelope(KubeEventEnvelope(event_id=event_id, cluster_id="prod-eu-1", payload=payload))


def workload_lifecycle_config(version: str) -> RemoteConfig:
    """Workload scope, crash loops and their recoveries delivered."""
    return RemoteConfig(
        version=version,
        dedup_scope="workload",
        enabled_reasons=frozenset({EventType.CRASH_LOOP, EventType.RECOVERED}),
    )


def invoke_in_batches(app: ModuleType, bodies: list[str]) -> list[dict[str, Any]]:  # noqa: F811
    """The bodies as the event source delivers them: batches of 10, one invocation each."""
    return [invoke(app, sqs_event(bodies[start : start + 10])) for start in range(0, len(bodies), 10)]


def decisions(trail: AuditTrail) -> list[tuple[str, str]]:  # noqa: F811
    return [(r["action"], r["reason"]) for r in trail.take()]


# --------------------------------------------------------------------------- cooldown over time


def test_after_the_cooldown_the_same_trouble_is_delivered_again(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
    clock: Clock,
) -> None:
    # Given a crash loop delivered once, and the same trouble again inside the 900 s cooldown
    invoke(app, clock.observed(sqs_event([crash_looping_pod(rv="1")])))
    clock.advance(899)
    invoke(app, clock.observed(sqs_event([crash_looping_pod(rv="2")])))
    assert decisions(trail) == [("forwarded", "opened"), ("deduplicated", "cooldown")]

    # When the cooldown has passed and the pod reports the trouble again
    clock.advance(2)
    invoke(app, clock.observed(sqs_event([crash_looping_pod(rv="3")])))

    # Then it is a new incident, delivered again
    assert decisions(trail) == [("forwarded", "opened")]
    first, second = stack.notifications()
    assert (first.incident_state, first.incident_count) == ("firing", 1)
    assert second.event_id != first.event_id
    assert int(item(stack, CRASH_KEY)["count"]["N"]) == 1


def test_repeats_inside_the_cooldown_count_up_the_incident(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    invoke(app, sqs_event([crash_looping_pod(rv="1")]))
    invoke(app, sqs_event([crash_looping_pod(rv=str(rv)) for rv in range(2, 6)]))
    assert Counter(decisions(trail)) == {("forwarded", "opened"): 1, ("deduplicated", "cooldown"): 4}
    stored = item(stack, CRASH_KEY)
    assert (stored["state"]["S"], stored["count"]["N"]) == ("firing", "5")
    assert stored["pods"]["SS"] == ["payments-api-84c6d9f7b8-tq5vn"]
    [notification] = stack.notifications()
    assert notification.affected_pods == ["payments-api-84c6d9f7b8-tq5vn"]


# --------------------------------------------------------------------------- workload scope


def test_workload_scope_folds_fifty_crash_looping_replicas_into_one_alert_with_count_50(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    # Given workload scope, and a Deployment whose 50 replicas all crash-loop
    stack.set_config(RemoteConfig(version="wl-1", dedup_scope="workload"))
    bodies = [crash_looping_pod(replica(str(i)), rv=str(100 + i)) for i in range(50)]

    # When their events arrive as the event source delivers them (batches of 10)
    assert invoke_in_batches(app, bodies) == [{"batchItemFailures": []}] * 5

    # Then one alert went out, the first one, and the incident counts 50 pods by name
    assert trail.actions() == {"forwarded": 1, "deduplicated": 49}
    [alert] = stack.notifications()
    assert alert.pod == f"payments-api-84c6d9f7b8-{replica('0')}"
    assert (alert.dedup_key, alert.incident_state, alert.incident_count) == (WORKLOAD_KEY, "firing", 1)
    assert (alert.workload_kind, alert.workload_name) == ("Deployment", "payments-api")
    stored = item(stack, WORKLOAD_KEY)
    assert stored["count"]["N"] == "50"
    assert sorted(stored["pods"]["SS"]) == sorted(
        f"payments-api-84c6d9f7b8-{replica(str(i))}" for i in range(50)
    )
    assert "unlisted" not in stored


def test_workload_scope_lists_at_most_50_pods_and_counts_the_rest(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    stack.set_config(RemoteConfig(version="wl-1", dedup_scope="workload"))
    invoke_in_batches(app, [crash_looping_pod(replica(str(i)), rv=str(100 + i)) for i in range(60)])
    stored = item(stack, WORKLOAD_KEY)
    assert stored["count"]["N"] == "60"
    assert len(stored["pods"]["SS"]) == MAX_AFFECTED_PODS
    assert stored["unlisted"]["N"] == "10"
    assert trail.actions() == {"forwarded": 1, "deduplicated": 59}


def test_workload_scope_resolves_when_every_affected_replica_recovered(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    stack.set_config(workload_lifecycle_config("wl-2"))
    suffixes = [replica(str(i)) for i in range(3)]
    invoke(app, sqs_event([crash_looping_pod(s, rv=str(10 + i)) for i, s in enumerate(suffixes)]))
    trail.take()
    # two replicas recover: the others are still in trouble
    invoke(app, sqs_event([recovered_pod(s, rv=str(20 + i)) for i, s in enumerate(suffixes[:2])]))
    assert decisions(trail) == [("deduplicated", "partial_recovery")] * 2
    # the last one recovers: the incident resolves, once
    invoke(app, sqs_event([recovered_pod(suffixes[2], rv="30")]))
    assert decisions(trail) == [("forwarded", "resolved")]
    firing, resolved = stack.notifications()
    assert (resolved.event_type, resolved.incident_state, resolved.resolves) == (
        EventType.RECOVERED,
        "resolved",
        EventType.CRASH_LOOP,
    )
    assert resolved.dedup_key == firing.dedup_key == WORKLOAD_KEY
    assert (resolved.incident_count, resolved.affected_pod_count) == (3, 3)
    assert resolved.affected_pods == sorted(f"payments-api-84c6d9f7b8-{s}" for s in suffixes)


def test_workload_scope_beyond_50_pods_resolves_when_the_listed_replicas_recovered(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    # Given 60 crash-looping replicas: 50 named in the incident, 10 only counted
    stack.set_config(workload_lifecycle_config("wl-3"))
    suffixes = [replica(str(i)) for i in range(60)]
    invoke_in_batches(app, [crash_looping_pod(s, rv=str(100 + i)) for i, s in enumerate(suffixes)])
    trail.take()
    listed = set(item(stack, WORKLOAD_KEY)["pods"]["SS"])
    listed_suffixes = [s for s in suffixes if f"payments-api-84c6d9f7b8-{s}" in listed]
    unlisted_suffixes = [s for s in suffixes if s not in listed_suffixes]
    assert (len(listed_suffixes), len(unlisted_suffixes)) == (50, 10)

    # When an unlisted replica recovers, nothing is resolved (it cannot be followed)
    invoke(app, sqs_event([recovered_pod(unlisted_suffixes[0], rv="500")]))
    assert decisions(trail) == [("filtered", "no_incident")]

    # When every listed replica has recovered, the incident resolves, once, counting all 60
    invoke_in_batches(app, [recovered_pod(s, rv=str(600 + i)) for i, s in enumerate(listed_suffixes)])
    assert Counter(decisions(trail)) == {
        ("deduplicated", "partial_recovery"): 49,
        ("forwarded", "resolved"): 1,
    }
    _firing, resolved = stack.notifications()
    assert resolved.incident_state == "resolved"
    assert (resolved.incident_count, resolved.affected_pod_count) == (60, 60)
    assert len(resolved.affected_pods) == MAX_AFFECTED_PODS

    # And an unlisted replica still crash-looping opens a new incident: the manager is not left
    # believing the workload is well
    invoke(app, sqs_event([crash_looping_pod(unlisted_suffixes[1], rv="900")]))
    assert decisions(trail) == [("forwarded", "opened")]
    [reopened] = stack.notifications()
    assert (reopened.incident_state, reopened.dedup_key) == ("firing", WORKLOAD_KEY)


# --------------------------------------------------------------------------- firing / resolved


def test_recovered_resolves_the_open_incident_and_is_forwarded(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    # Given recovered notifications are wanted, and a crash loop that fired and repeated twice
    stack.set_config(
        RemoteConfig(version="r1", enabled_reasons=frozenset({EventType.CRASH_LOOP, EventType.RECOVERED}))
    )
    invoke(app, sqs_event([crash_looping_pod(rv=str(rv)) for rv in (1, 2, 3)]))
    trail.take()

    # When the container is running and ready again
    body = recovered_pod()
    invoke(app, sqs_event([body]))

    # Then the incident is resolved, and the manager is told, with the incident's count
    assert decisions(trail) == [("forwarded", "resolved")]
    firing, resolved = stack.notifications()
    assert (firing.incident_state, resolved.incident_state) == ("firing", "resolved")
    assert resolved.dedup_key == firing.dedup_key == CRASH_KEY
    assert (resolved.event_type, resolved.reason, resolved.resolves) == (
        EventType.RECOVERED,
        "CrashLoopBackOff",
        EventType.CRASH_LOOP,
    )
    assert resolved.incident_count == 3
    assert resolved.incident_opened_at == firing.incident_opened_at
    stored = item(stack, CRASH_KEY)
    assert stored["state"]["S"] == "resolved"
    assert stored["resolved_by"]["S"] == resolved.event_id

    # And a retry of the recovered message passes as itself; another recovery finds nothing open
    invoke(app, sqs_event([body, recovered_pod(rv="901")]))
    assert decisions(trail) == [("filtered", "no_incident"), ("forwarded", "same_event")]
    [again] = stack.notifications()
    assert again.notification_id == resolved.notification_id

    # And trouble after the recovery opens a new incident, though the old window has not expired
    invoke(app, sqs_event([crash_looping_pod(rv="950")]))
    assert decisions(trail) == [("forwarded", "opened")]


def test_recovered_without_an_open_incident_is_filtered(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    stack.set_config(RemoteConfig(version="r1", enabled_reasons=frozenset({EventType.RECOVERED})))
    invoke(app, sqs_event([recovered_pod()]))
    assert decisions(trail) == [("filtered", "no_incident")]
    assert stack.notifications() == []


def test_recovered_after_the_window_closed_still_resolves_the_incident(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
    clock: Clock,
) -> None:
    # Given a crash loop the manager was told is firing, and a cooldown long past
    stack.set_config(
        RemoteConfig(version="r1", enabled_reasons=frozenset({EventType.CRASH_LOOP, EventType.RECOVERED}))
    )
    invoke(app, clock.observed(sqs_event([crash_looping_pod(rv="1"), crash_looping_pod(rv="2")])))
    assert decisions(trail) == [("deduplicated", "cooldown"), ("forwarded", "opened")]
    stored = item(stack, CRASH_KEY)
    assert int(stored["purge_at"]["N"]) == int(stored["expires_at"]["N"]) + 7 * 24 * 3600
    clock.advance(RemoteConfig().dedup_cooldown_seconds + 3600)

    # When the container is running and ready again, an hour after the window closed
    invoke(app, clock.observed(sqs_event([recovered_pod()])))

    # Then the incident is resolved and the manager told so, with what it counted
    assert decisions(trail) == [("forwarded", "resolved")]
    firing, resolved = stack.notifications()
    assert (firing.incident_state, resolved.incident_state) == ("firing", "resolved")
    assert resolved.dedup_key == CRASH_KEY
    assert resolved.incident_count == 2
    assert item(stack, CRASH_KEY)["state"]["S"] == "resolved"


def test_recovered_does_not_resolve_an_incident_past_its_retention(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    # Given an incident past its retention, still in the table (TTL deletes late)
    stack.set_config(RemoteConfig(version="r1", enabled_reasons=frozenset({EventType.RECOVERED})))
    now = int(datetime.now(UTC).timestamp())
    stack.dynamodb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": CRASH_KEY},
            "event_id": {"S": "an-older-event"},
            "expires_at": {"N": str(now - 8 * 24 * 3600)},
            "purge_at": {"N": str(now - 60)},
            "opened_at": {"N": str(now - 8 * 24 * 3600 - 900)},
            "state": {"S": "firing"},
            "count": {"N": "4"},
        },
    )
    invoke(app, sqs_event([recovered_pod()]))
    assert decisions(trail) == [("filtered", "no_incident")]
    assert item(stack, CRASH_KEY)["state"]["S"] == "firing"
    assert stack.notifications() == []


def test_recovered_is_filtered_by_default(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    invoke(app, sqs_event([crash_looping_pod(rv="1")]))
    invoke(app, sqs_event([recovered_pod()]))
    assert decisions(trail) == [("forwarded", "opened"), ("filtered", "disabled:recovered")]
    assert len(stack.notifications()) == 1


# --------------------------------------------------------------------------- races


class AtomicWrites:
    """A DynamoDB client whose calls are serialised, as DynamoDB serialises writes to one item.

    In-process moto checks a condition and then writes, with no lock between: two threads can both
    pass `attribute_not_exists(pk)` (about 1 in 100 tries here), which real DynamoDB never allows.
    The processor instances still race freely; only each single request is made atomic."""

    def __init__(self, real: Any, lock: threading.Lock) -> None:
        self.real, self.lock = real, lock

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(**kwargs: Any) -> Any:
            with self.lock:
                return method(**kwargs)

        return call


def test_two_concurrent_batches_racing_on_one_key_forward_exactly_once(
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    # Given two processor instances (own clients, own dedup hints, own outboxes) on the same table
    lock = threading.Lock()

    def instance() -> ProcessorDeps:
        dynamodb = AtomicWrites(boto3.client("dynamodb", region_name="us-east-1"), lock)
        return ProcessorDeps(
            dedup=DedupStore(table_name=TABLE, client=dynamodb),
            sqs=boto3.client("sqs", region_name="us-east-1"),
            deliveries_queue_url=stack.deliveries_url,
            quarantine_queue_url=stack.quarantine_url,
        )

    rounds, config = 25, RemoteConfig()
    instances = [instance(), instance()]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        deps = instances[worker]
        try:
            for n in range(rounds):
                # each round: a batch of two different events of the same trouble of a fresh pod
                bodies = [
                    crash_looping_pod(replica(str(n)), rv=str(1000 * worker + 10 * n + i)) for i in (1, 2)
                ]
                outbox = NotificationOutbox(sqs=deps.sqs, queue_url=deps.deliveries_queue_url)
                barrier.wait(timeout=10)
                for body in bodies:
                    process_record(body, deps=deps, config=config, now=datetime.now(UTC), outbox=outbox)
                assert outbox.flush() == {}
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    # When both process their batches at the same moment, round after round
    threads = [threading.Thread(target=run, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors

    # Then every key let exactly one event through, and counted all four
    forwarded = Counter(r["dedup_key"] for r in trail.records if r["action"] == "forwarded")
    assert len(forwarded) == rounds
    assert set(forwarded.values()) == {1}
    assert trail.actions() == {"forwarded": rounds, "deduplicated": 3 * rounds}
    assert len(stack.notifications()) == rounds
    for key in forwarded:
        assert item(stack, key)["count"]["N"] == "4"


# --------------------------------------------------------------------------- poison and batching


def test_a_poison_message_among_nine_good_ones(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    # Given nine crash-looping pods and one body cut off mid-write, in one batch
    good = [crash_looping_pod(replica(str(i)), rv=str(i)) for i in range(9)]
    event = sqs_event([*good[:4], '{"schema_version": 1, "kind": "pod", "event_id": ', *good[4:]])
    sqs = FlakySQS(stack.sqs, stack.deliveries_url, failures=0)
    app.set_dependencies(app.build_dependencies(sqs=sqs))

    # When the processor handles it
    response = invoke(app, event)

    # Then exactly one message is quarantined, nine are forwarded, in one SendMessageBatch
    assert response == {"batchItemFailures": []}
    assert trail.actions() == {"forwarded": 9, "quarantined": 1}
    [quarantined] = stack.drain(stack.quarantine_url)
    assert (
        quarantined["MessageAttributes"]["source_message_id"]["StringValue"]
        == event["Records"][4]["messageId"]
    )
    assert len(stack.notifications()) == 9
    assert sqs.calls == {"send_message": 1, "send_message_batch": 1}


def test_forwarding_is_batched_and_a_refused_entry_fails_only_its_record(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    # Given twelve troubled pods, and SQS refusing one entry of the first SendMessageBatch
    bodies = [crash_looping_pod(replica(str(i)), rv=str(i)) for i in range(12)]
    refused_pod = f"payments-api-84c6d9f7b8-{replica('3')}"
    sqs = FlakySQS(stack.sqs, stack.deliveries_url, failures=1, refuse_entries=refused_pod)
    app.set_dependencies(app.build_dependencies(sqs=sqs))
    event = sqs_event(bodies)

    # When the batch is processed
    response = invoke(app, event)

    # Then two SendMessageBatch calls (10 + 2) carried the notifications, and only the record whose
    # entry was refused is returned to SQS
    assert sqs.calls == {"send_message_batch": 2}
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][3]["messageId"]}]}
    assert len(stack.notifications()) == 11
    assert trail.actions() == {"forwarded": 11}
    trail.take()

    # And its retry passes dedup as the same event and is delivered
    assert invoke(app, sqs_event([bodies[3]])) == {"batchItemFailures": []}
    assert decisions(trail) == [("forwarded", "same_event")]
    assert [n.pod for n in stack.notifications()] == [refused_pod]


# --------------------------------------------------------------------------- pending too long


def test_pending_too_long_when_enabled(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
) -> None:
    stack.set_config(
        RemoteConfig(
            version="p1",
            enabled_reasons=frozenset({EventType.PENDING_TOO_LONG}),
            pending_too_long_seconds=300,
        )
    )
    now = datetime.now(UTC)

    def pending(name: str, age_s: int) -> str:
        payload = PodEvent(
            namespace="ml",
            name=name,
            uid=f"uid-{name}",
            phase="Pending",
            containers=[ContainerStatus(name="trainer", state="waiting", reason="ContainerCreating")],
            created_at=now - timedelta(seconds=age_s),
            observed_at=now,
            resource_version="5",
        )
        event_id = ids.pod_event_id("prod-eu-1", payload.uid, "5", "MODIFIED")
        return encode_envelope(PodEnvelope(event_id=event_id, cluster_id="prod-eu-1", payload=payload))

    invoke(app, sqs_event([pending("young", 60), pending("old", 900)]))
    assert decisions(trail) == [("filtered", "healthy"), ("forwarded", "opened")]
    [n] = stack.notifications()
    assert (n.pod, n.event_type, n.reason) == ("old", EventType.PENDING_TOO_LONG, "ContainerCreating")


# --------------------------------------------------------------------------- pod metadata


class CountingDynamoDB:
    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: Counter[tuple[str, str]] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(**kwargs: Any) -> Any:
            self.calls[(name, kwargs.get("TableName", ""))] += 1
            return method(**kwargs)

        return call


@pytest.fixture
def counting(app: ModuleType, stack: Stack) -> CountingDynamoDB:  # noqa: F811
    dynamodb = CountingDynamoDB(stack.dynamodb)
    app.set_dependencies(app.build_dependencies(dynamodb=dynamodb))
    return dynamodb


def test_pod_metadata_is_written_when_news_and_enriches_kubernetes_events(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    trail: AuditTrail,  # noqa: F811
    counting: CountingDynamoDB,
) -> None:
    # Given a pod reporting its crash loop three times
    invoke(app, sqs_event([crash_looping_pod(rv=str(rv)) for rv in (1, 2, 3)]))

    # Then its metadata row was written once, not per event
    assert counting.calls[("put_item", METADATA_TABLE)] == 1
    row = stack.dynamodb.get_item(
        TableName=METADATA_TABLE, Key={"pk": {"S": "prod-eu-1/payments/payments-api-84c6d9f7b8-tq5vn"}}
    )["Item"]
    assert (row["project_id"]["S"], row["workload_kind"]["S"], row["workload_name"]["S"]) == (
        "proj-pay",
        "Deployment",
        "payments-api",
    )
    assert int(row["expires_at"]["N"]) > datetime.now(UTC).timestamp() + 86400

    # And a probe failure Event about the pod (no labels, no owners) is enriched from that row,
    # also by a fresh process that has to read it
    app.set_dependencies(app.build_dependencies(dynamodb=counting))
    invoke(app, sqs_event([probe_failed_event("payments-api-84c6d9f7b8-tq5vn")]))
    probe = next(n for n in stack.notifications() if n.event_type is EventType.PROBE_FAILED)
    assert (probe.project_id, probe.workload_kind, probe.workload_name) == (
        "proj-pay",
        "Deployment",
        "payments-api",
    )
    assert counting.calls[("get_item", METADATA_TABLE)] == 1

    # And the lookup is a function of its own
    store = MetadataStore(table_name=METADATA_TABLE, client=stack.dynamodb)
    found = store.get_metadata("prod-eu-1", "payments", "payments-api-84c6d9f7b8-tq5vn")
    assert found is not None
    assert (found.project_id, found.workload_id, found.workload_name) == ("proj-pay", None, "payments-api")
    assert store.get_metadata("prod-eu-1", "payments", "no-such-pod") is None


def test_aws_calls_per_event_stay_low_on_a_realistic_batch(
    app: ModuleType,  # noqa: F811
    stack: Stack,  # noqa: F811
    counting: CountingDynamoDB,
) -> None:
    # A crash loop that keeps reporting, Events about it, and healthy pods: 40 events, 4 batches
    bodies: list[str] = []
    for n in range(10):
        bodies.append(crash_looping_pod(rv=str(100 + n)))
        bodies.append(probe_failed_event("payments-api-84c6d9f7b8-tq5vn", count=n + 1))
        bodies.append(crash_looping_pod("zz9xw", rv=str(200 + n)))
        bodies.append(recovered_pod("b4k7m", rv=str(300 + n), restarts=0))  # healthy: restarts 0
    sqs = FlakySQS(stack.sqs, stack.deliveries_url, failures=0)
    app.set_dependencies(app.build_dependencies(dynamodb=counting, sqs=sqs))
    invoke_in_batches(app, bodies)
    calls = sum(counting.calls.values()) + sum(sqs.calls.values())
    assert calls / len(bodies) <= 1.1, (counting.calls, sqs.calls)
