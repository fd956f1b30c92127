"""The processor handler on moto (in-process): real SQS queues, DynamoDB table, SSM parameter.

Every sample in events/processor/ is invoked here. What happened to each record is read from the
audit trail (`podwatch.audit`) and checked against the queues.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.lambda_runtime import LambdaContext, load_event, load_function_module, sqs_event
from podwatch import audit, ids
from podwatch.models import (
    ContainerStatus,
    EventType,
    InvolvedObject,
    KubeEvent,
    KubeEventEnvelope,
    Notification,
    OwnerReference,
    PodEnvelope,
    PodEvent,
    RemoteConfig,
    Transition,
)
from podwatch.wire import encode_envelope
from tests.queues import drain_queue

STACK = "podwatch-test"
PARAMETER = f"/{STACK}/remote-config"
TABLE = f"{STACK}-dedup"
METADATA_TABLE = f"{STACK}-metadata"


@dataclass
class Stack:
    sqs: Any
    dynamodb: Any
    ssm: Any
    deliveries_url: str
    quarantine_url: str

    def drain(self, url: str) -> list[dict[str, Any]]:
        return drain_queue(self.sqs, url)

    def notifications(self) -> list[Notification]:
        return [Notification.model_validate_json(m["Body"]) for m in self.drain(self.deliveries_url)]

    def set_config(self, config: RemoteConfig | str) -> None:
        value = config if isinstance(config, str) else config.to_json()
        self.ssm.put_parameter(Name=PARAMETER, Value=value, Type="String", Overwrite=True)


class AuditTrail(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.audit)  # type: ignore[attr-defined]

    def actions(self) -> Counter[str]:
        return Counter(r["action"] for r in self.records)

    def take(self) -> list[dict[str, Any]]:
        out, self.records = self.records, []
        return out


@pytest.fixture
def trail() -> Iterator[AuditTrail]:
    handler = AuditTrail()
    logger = logging.getLogger(audit.AUDIT_LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        ssm = boto3.client("ssm", region_name="us-east-1")
        deliveries = sqs.create_queue(QueueName=f"{STACK}-deliveries")["QueueUrl"]
        quarantine = sqs.create_queue(QueueName=f"{STACK}-pod-events-dlq")["QueueUrl"]
        for table in (TABLE, METADATA_TABLE):
            dynamodb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            ttl = "purge_at" if table == TABLE else "expires_at"  # as template.yaml
            dynamodb.update_time_to_live(
                TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
            )
        ssm.put_parameter(Name=PARAMETER, Value=RemoteConfig().to_json(), Type="String")
        for name, value in {
            "CONFIG_PARAMETER_NAME": PARAMETER,
            "CONFIG_MAX_AGE_SECONDS": "0",
            "DEDUP_TABLE_NAME": TABLE,
            "METADATA_TABLE_NAME": METADATA_TABLE,
            "DELIVERIES_QUEUE_URL": deliveries,
            "QUARANTINE_QUEUE_URL": quarantine,
        }.items():
            monkeypatch.setenv(name, value)
        yield Stack(sqs, dynamodb, ssm, deliveries, quarantine)


@pytest.fixture
def app(stack: Stack) -> Iterator[ModuleType]:
    module = load_function_module("processor")
    module.reset()
    yield module
    module.reset()


def invoke(app: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = app.lambda_handler(event, LambdaContext())
    return response


# --------------------------------------------------------------------------- building events


def crash_looping_pod(suffix: str = "tq5vn", rv: str = "500", cluster: str = "prod-eu-1") -> str:
    name = f"payments-api-84c6d9f7b8-{suffix}"
    payload = PodEvent(
        namespace="payments",
        name=name,
        uid=f"uid-{suffix}",
        phase="Running",
        labels={"pod-template-hash": "84c6d9f7b8", "project-id": "proj-pay"},
        owner_references=[OwnerReference(kind="ReplicaSet", name="payments-api-84c6d9f7b8", controller=True)],
        containers=[
            ContainerStatus(
                name="api", state="waiting", reason="CrashLoopBackOff", restart_count=int(rv) % 7 + 1
            )
        ],
        transitions=[
            Transition(field="restart_count", container="api", old=int(rv) % 7, new=int(rv) % 7 + 1)
        ],
        resource_version=rv,
    )
    event_id = ids.pod_event_id(cluster, payload.uid, rv, "MODIFIED")
    return encode_envelope(PodEnvelope(event_id=event_id, cluster_id=cluster, payload=payload))


def backoff_event(pod: str, count: int) -> str:
    payload = KubeEvent(
        namespace="payments",
        name=f"{pod}.17a",
        uid=f"ev-{pod}",
        reason="BackOff",
        message="Back-off restarting failed container api in pod",
        type="Warning",
        count=count,
        involved_object=InvolvedObject(
            kind="Pod", name=pod, namespace="payments", field_path="spec.containers{api}"
        ),
    )
    event_id = ids.kube_event_id("prod-eu-1", payload.uid, count)
    return encode_envelope(KubeEventEnvelope(event_id=event_id, cluster_id="prod-eu-1", payload=payload))


# --------------------------------------------------------------------------- the samples


def test_sample_batch(app: ModuleType, stack: Stack, trail: AuditTrail) -> None:
    # Given the sample batch: five kinds of trouble, a disabled type, a healthy and a deleted pod, a heartbeat
    event = load_event("events/processor/batch.json")

    # When the processor handles it
    response = invoke(app, event)

    # Then every record is handled, and each decision is the expected one
    assert response == {"batchItemFailures": []}
    assert trail.actions() == {"forwarded": 5, "filtered": 3, "control": 1}
    assert Counter(r["reason"] for r in trail.records if r["action"] == "filtered") == {
        "healthy": 1,
        "deleted": 1,
        "disabled:pod-restart": 1,
    }
    notifications = stack.notifications()
    assert sorted((n.event_type.value, n.pod, n.container) for n in notifications) == [
        ("crash-loop", "payments-api-84c6d9f7b8-tq5vn", "api"),
        ("evicted", "batch-exporter-6d5f4c8b7a-r8t4m", None),
        ("image-pull", "checkout-web-7fb9c6d4e2-j3n6s", "web"),
        ("oom-kill", "report-worker-59f6c7d8b9-h7c2d", "worker"),
        ("probe-failed", "checkout-web-7fb9c6d4e2-b5v8n", "web"),
    ]
    # the notifications are the ones the audit trail names, enriched
    forwarded = {r["notification_id"]: r for r in trail.records if r["action"] == "forwarded"}
    assert {n.notification_id for n in notifications} == set(forwarded)
    crash = next(n for n in notifications if n.event_type is EventType.CRASH_LOOP)
    assert (crash.workload_kind, crash.workload_name, crash.project_id) == (
        "Deployment",
        "payments-api",
        "proj-payments",
    )
    assert forwarded[crash.notification_id]["dedup_key"] == crash.dedup_key
    assert stack.drain(stack.quarantine_url) == []


def test_audit_records_have_exactly_the_documented_keys(app: ModuleType, trail: AuditTrail) -> None:
    invoke(app, load_event("events/processor/batch.json"))
    invoke(app, load_event("events/processor/poison.json"))
    assert trail.records
    for record in trail.records:
        assert tuple(record) == audit.AUDIT_KEYS
        assert len(record["payload_sha256"]) == 64
        assert record["config_version"] == "default"


def test_payload_sha256_is_the_same_for_the_same_payload(app: ModuleType, trail: AuditTrail) -> None:
    body = crash_looping_pod()
    invoke(app, sqs_event([body]))
    invoke(app, sqs_event([json.dumps(json.loads(body), indent=2)]))  # same content, other formatting
    first, second = trail.take()
    assert first["payload_sha256"] == second["payload_sha256"]


def test_sample_poison_quarantines_exactly_the_bad_ones(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    # Given malformed JSON, an unknown kind, a wrong schema version and a pod without uid among good ones
    event = load_event("events/processor/poison.json")
    bad = {r["messageId"] for i, r in enumerate(event["Records"]) if i in {1, 3, 5, 6}}

    # When the processor handles the batch
    response = invoke(app, event)

    # Then the bad ones are quarantined at once, with their reason, and handled (not retried)
    assert response == {"batchItemFailures": []}
    assert trail.actions() == {"quarantined": 4, "forwarded": 2, "filtered": 1}
    quarantined = stack.drain(stack.quarantine_url)
    by_source = {m["MessageAttributes"]["source_message_id"]["StringValue"]: m for m in quarantined}
    assert set(by_source) == bad
    reasons = Counter(m["MessageAttributes"]["reason"]["StringValue"] for m in quarantined)
    assert reasons == {"malformed": 2, "unknown_kind": 1, "unsupported_schema_version": 1}
    originals = {r["messageId"]: r["body"] for r in event["Records"]}
    for message_id, message in by_source.items():
        assert message["Body"] == originals[message_id]  # the original body, untouched
        assert message["MessageAttributes"]["error"]["StringValue"]
    # and the good ones went through
    assert sorted(n.event_type.value for n in stack.notifications()) == ["crash-loop", "unschedulable"]


def test_sample_enroll_is_control(app: ModuleType, stack: Stack, trail: AuditTrail) -> None:
    response = invoke(app, load_event("events/processor/enroll.json"))
    assert response == {"batchItemFailures": []}
    assert [(r["action"], r["reason"], r["kind"]) for r in trail.records] == [
        ("control", "enroll", "enroll"),
        ("control", "heartbeat", "heartbeat"),
    ]
    assert stack.notifications() == []


# --------------------------------------------------------------------------- dedup and retries


def test_a_retry_of_the_same_message_is_forwarded_again(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    body = crash_looping_pod()
    invoke(app, sqs_event([body]))
    # When SQS delivers the same message again (the first invocation's answer was lost)
    invoke(app, sqs_event([body]))
    # Then it is recognised as itself, not as a duplicate
    assert [(r["action"], r["reason"]) for r in trail.records] == [
        ("forwarded", "opened"),
        ("forwarded", "same_event"),
    ]
    first, second = stack.notifications()
    assert first.notification_id == second.notification_id


def test_another_event_of_the_same_trouble_inside_the_cooldown_is_deduplicated(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    # Given a crash loop forwarded once
    invoke(app, sqs_event([crash_looping_pod(rv="500")]))
    # When the pod reports it again, and the kubelet's BackOff Event says the same
    pod = "payments-api-84c6d9f7b8-tq5vn"
    invoke(app, sqs_event([crash_looping_pod(rv="501"), backoff_event(pod, 2), backoff_event(pod, 3)]))
    # Then only the first one is delivered
    assert [(r["action"], r["reason"]) for r in trail.records] == [
        ("forwarded", "opened"),
        ("deduplicated", "cooldown"),
        ("deduplicated", "cooldown"),
        ("deduplicated", "cooldown"),
    ]
    assert len({r["dedup_key"] for r in trail.records}) == 1
    assert len(stack.notifications()) == 1


def test_an_expired_but_undeleted_dedup_item_does_not_suppress(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    # Given a dedup item whose window closed a minute ago, still in the table (TTL deletes late)
    key = "prod-eu-1/payments/payments-api-84c6d9f7b8-tq5vn/api/crash-loop"
    now = int(datetime.now(UTC).timestamp())
    stack.dynamodb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": key},
            "event_id": {"S": "an-older-event"},
            "expires_at": {"N": str(now - 60)},
            "opened_at": {"N": str(now - 960)},
            "count": {"N": "1"},
        },
    )
    # When the same trouble comes again
    invoke(app, sqs_event([crash_looping_pod(rv="777")]))
    # Then it opens a new window and is delivered
    assert [(r["action"], r["reason"], r["dedup_key"]) for r in trail.records] == [
        ("forwarded", "opened", key)
    ]
    assert len(stack.notifications()) == 1
    item = stack.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": key}})["Item"]
    assert int(item["expires_at"]["N"]) >= now + 900 - 5
    assert item["event_id"]["S"] != "an-older-event"


def test_no_cooldown_delivers_every_event(app: ModuleType, stack: Stack, trail: AuditTrail) -> None:
    stack.set_config(RemoteConfig(version="v0", dedup_cooldown_seconds=0))
    invoke(app, sqs_event([crash_looping_pod(rv="1"), crash_looping_pod(rv="2")]))
    assert [r["reason"] for r in trail.records] == ["no_cooldown", "no_cooldown"]
    assert len(stack.notifications()) == 2


def test_workload_scope_folds_replicas_into_one_alert(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    stack.set_config(RemoteConfig(version="wl-1", dedup_scope="workload"))
    invoke(app, sqs_event([crash_looping_pod(suffix) for suffix in ("tq5vn", "zz9xw", "b4k7m")]))
    assert trail.actions() == {"forwarded": 1, "deduplicated": 2}
    [n] = stack.notifications()
    assert n.dedup_key == "prod-eu-1/payments/workload:payments-api/crash-loop"


# --------------------------------------------------------------------------- remote config


def test_filters_by_the_remote_config(app: ModuleType, stack: Stack, trail: AuditTrail) -> None:
    stack.set_config(
        RemoteConfig(
            version="v9",
            enabled_reasons=frozenset({EventType.OOM_KILL}),
            ignored_namespaces=frozenset({"reports"}),
        )
    )
    invoke(app, load_event("events/processor/batch.json"))
    filtered = Counter(r["reason"] for r in trail.records if r["action"] == "filtered")
    assert filtered == {
        "healthy": 1,
        "deleted": 1,
        "ignored_namespace": 2,  # the OOM kill and the eviction are in "reports"
        "disabled:crash-loop": 1,
        "disabled:probe-failed": 1,
        "disabled:image-pull": 1,
        "disabled:pod-restart": 1,
    }
    assert {r["config_version"] for r in trail.records} == {"v9"}
    assert stack.notifications() == []


def test_a_bad_remote_config_keeps_the_last_good_one(
    app: ModuleType, stack: Stack, trail: AuditTrail, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a good config in force
    stack.set_config(RemoteConfig(version="good-3", enabled_reasons=frozenset({EventType.CRASH_LOOP})))
    invoke(app, sqs_event([crash_looping_pod(rv="1")]))
    # When the parameter is replaced by an invalid value
    stack.set_config('{"version": "bad-4", "batch_size": 100000}')
    capsys.readouterr()
    invoke(app, sqs_event([crash_looping_pod("zz9xw", rv="2")]))
    # Then the function still works, with the last good config, and says so in a metric
    assert [(r["action"], r["config_version"]) for r in trail.records] == [
        ("forwarded", "good-3"),
        ("forwarded", "good-3"),
    ]
    assert metric_values(capsys.readouterr().out).get("ConfigRejected") == 1


# --------------------------------------------------------------------------- transient errors


class FlakySQS:
    """The real (moto) SQS client, whose sends to one queue fail `failures` times: a whole
    SendMessageBatch call, or (`refuse_entries`) only the entries whose body contains a marker."""

    def __init__(self, real: Any, queue_url: str, failures: int, refuse_entries: str | None = None) -> None:
        self.real, self.queue_url, self.failures = real, queue_url, failures
        self.refuse_entries = refuse_entries
        self.calls: Counter[str] = Counter()

    def send_message(self, **kwargs: Any) -> Any:
        self.calls["send_message"] += 1
        return self.real.send_message(**kwargs)

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.calls["send_message_batch"] += 1
        if kwargs["QueueUrl"] != self.queue_url or self.failures <= 0:
            return self.real.send_message_batch(**kwargs)
        self.failures -= 1
        if self.refuse_entries is None:
            raise ClientError(
                {"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, "SendMessageBatch"
            )
        refused = [e for e in kwargs["Entries"] if self.refuse_entries in e["MessageBody"]]
        taken = [e for e in kwargs["Entries"] if e not in refused]
        answer = self.real.send_message_batch(QueueUrl=kwargs["QueueUrl"], Entries=taken) if taken else {}
        failed = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "x"} for e in refused
        ]
        return {"Successful": answer.get("Successful", []), "Failed": failed}


class ThrottledDynamoDB:
    def put_item(self, **_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
        )

    def update_item(self, **_: Any) -> Any:
        throttled = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
        raise ClientError(throttled, "UpdateItem")  # type: ignore[arg-type]


def test_a_failed_send_is_a_batch_item_failure_and_its_retry_is_delivered(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    # Given the deliveries queue refuses one send
    app.set_dependencies(app.build_dependencies(sqs=FlakySQS(stack.sqs, stack.deliveries_url, failures=1)))
    body, healthy = crash_looping_pod(), load_event("events/processor/batch.json")["Records"][1]["body"]
    event = sqs_event([body, healthy])
    failing_id = event["Records"][0]["messageId"]

    # When the batch is processed, then the record is returned to SQS alone
    assert invoke(app, event) == {"batchItemFailures": [{"itemIdentifier": failing_id}]}
    assert stack.notifications() == []

    # And when SQS redelivers it, the dedup window it opened lets it through as itself
    assert invoke(app, sqs_event([body])) == {"batchItemFailures": []}
    assert [n.pod for n in stack.notifications()] == ["payments-api-84c6d9f7b8-tq5vn"]
    assert [r["reason"] for r in trail.records if r["action"] == "forwarded"] == ["same_event"]


def test_dynamodb_throttling_is_a_batch_item_failure(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    app.set_dependencies(app.build_dependencies(dynamodb=ThrottledDynamoDB()))
    event = sqs_event([crash_looping_pod(), load_event("events/processor/batch.json")["Records"][1]["body"]])
    response = invoke(app, event)
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert trail.actions() == {"filtered": 1}


# --------------------------------------------------------------------------- metrics


def metric_values(stdout: str) -> dict[str, float]:
    """Sum of every EMF metric printed, by name (all dimension sets together)."""
    totals: Counter[str] = Counter()
    for line in stdout.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        dimension_sets = blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        if any("reason" in dims for dims in dimension_sets):
            continue  # the per-reason breakdown repeats the totals
        for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[metric["Name"]]
            totals[metric["Name"]] += sum(value) if isinstance(value, list) else value
    return dict(totals)


def test_metrics(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    invoke(app, load_event("events/processor/poison.json"))
    values = metric_values(capsys.readouterr().out)
    assert {k: v for k, v in values.items() if k != "ColdStart"} == {
        "Received": 7,
        "Forwarded": 2,
        "IncidentsOpened": 2,
        "Filtered": 1,
        "Quarantined": 4,
    }


def test_sample_lifecycle_default_config(app: ModuleType, stack: Stack, trail: AuditTrail) -> None:
    # Given the incident sample and the default config (container scope, recovered not enabled)
    response = invoke(app, load_event("events/processor/lifecycle.json"))
    # Then each replica's crash loop is delivered once, the repeat is folded, recoveries are filtered
    assert response == {"batchItemFailures": []}
    # (forwarded decisions are audited once SQS took them: after the others of the batch)
    assert [(r["action"], r["reason"]) for r in trail.records] == [
        ("deduplicated", "cooldown"),
        ("filtered", "disabled:recovered"),
        ("filtered", "disabled:recovered"),
        ("filtered", "disabled:recovered"),
        ("forwarded", "opened"),
        ("forwarded", "opened"),
        ("forwarded", "opened"),
    ]
    assert len(stack.notifications()) == 3


def test_sample_lifecycle_workload_scope_with_recovered(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    # Given workload scope, and recovered notifications enabled
    stack.set_config(
        RemoteConfig(
            version="lc-1",
            dedup_scope="workload",
            enabled_reasons=frozenset({EventType.CRASH_LOOP, EventType.RECOVERED}),
        )
    )
    # When the incident sample is processed
    assert invoke(app, load_event("events/processor/lifecycle.json")) == {"batchItemFailures": []}
    # Then one alert fires, and one resolution follows the last replica's recovery
    assert [(r["action"], r["reason"]) for r in trail.records if r["action"] != "deduplicated"] == [
        ("forwarded", "opened"),
        ("forwarded", "resolved"),
    ]
    assert Counter(r["reason"] for r in trail.records if r["action"] == "deduplicated") == {
        "cooldown": 3,
        "partial_recovery": 2,
    }
    firing, resolved = stack.notifications()
    assert (firing.incident_state, resolved.incident_state) == ("firing", "resolved")
    assert resolved.dedup_key == firing.dedup_key == "prod-eu-1/payments/workload:payments-api/crash-loop"
    assert (resolved.incident_count, resolved.affected_pod_count) == (4, 3)
    assert resolved.resolves is EventType.CRASH_LOOP
