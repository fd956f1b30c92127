"""Issue 14 items 4 and 5 end to end through the cloud side: what the relay sends to SQS (moto), read
back and handed to the processor handler as SQS delivers it (real queues, table and parameter on
moto); what reaches the deliveries queue and the DLQ."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import orjson

from local.lambda_runtime import sqs_event
from podwatch_relay.pipeline import Relay
from podwatch_relay.redact import MARKER
from podwatch_relay.sink import SqsSink
from tests.integration import test_processor_moto as processor
from tests.integration.test_processor_moto import AuditTrail, Stack, invoke
from tests.unit.test_relay_fit import big_pod
from tests.unit.test_relay_redact import FIELDS, _event_with, _pod_with

#: the processor tests' fixtures (moto stack, the handler module, the audit trail), used by name
stack, app, trail = processor.stack, processor.app, processor.trail


def relay_to_sqs(stack: Stack, lines: Sequence[bytes]) -> list[dict[str, Any]]:
    """The lines through a relay into a pod-events queue; the SQS messages it holds after."""
    url = stack.sqs.create_queue(QueueName="pod-events")["QueueUrl"]
    relay = Relay(sink=SqsSink(client=stack.sqs, queue_url=url), cluster_id="c1", relay_version="t")
    for line in lines:
        relay.handle_line(line)
    relay.flush()
    return stack.drain(url)


def test_a_250_container_pod_is_delivered_trimmed(app: ModuleType, stack: Stack, trail: AuditTrail) -> None:
    # Given a pod with 250 containers with long messages, two crash-looping (~300 KB projected)
    messages = relay_to_sqs(stack, [orjson.dumps({"type": "ADDED", "object": big_pod()})])

    # When the processor gets what the relay sent
    response = invoke(app, sqs_event([m["Body"] for m in messages]))

    # Then both crash loops are notified, nothing quarantined
    assert response == {"batchItemFailures": []}
    notified = stack.notifications()
    assert sorted((n.event_type.value, n.container) for n in notified) == [
        ("crash-loop", "c200"),
        ("crash-loop", "c240"),
    ]
    assert stack.drain(stack.quarantine_url) == []
    assert json.loads(messages[0]["Body"])["payload"]["trimmed"] == {"messages": 250, "containers": 0}


def test_what_cannot_fit_reaches_the_dlq_as_oversize(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    # Given a pod that cannot be trimmed to fit (ten thousand owner references)
    obj = big_pod(containers=10)
    owner = obj["metadata"]["ownerReferences"][0]
    obj["metadata"]["ownerReferences"] = [{**owner, "name": f"owner-{i:05d}"} for i in range(10_000)]
    messages = relay_to_sqs(stack, [orjson.dumps({"type": "ADDED", "object": obj})])

    # When the processor gets the relay's stub
    response = invoke(app, sqs_event([m["Body"] for m in messages]))

    # Then it is quarantined at first receive with reason `oversize`, naming the pod
    assert response == {"batchItemFailures": []}
    [dead] = stack.drain(stack.quarantine_url)
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["reason"] == "oversize"
    assert "shop/huge-1" in attributes["error"]
    assert [r["reason"] for r in trail.take()] == ["oversize"]


#: one secret of each kind, by field (the needle: what must not be seen downstream)
SECRETS = [
    ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("DB_PASSWORD=hunter2-Zx81q", "hunter2-Zx81q"),
    ('{"client_secret": "cs-99x7Qq1w"}', "cs-99x7Qq1w"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0t",
        "MIIEowIBAAKCAQEAu1SU1L",
    ),
    ("postgres://app:pg-pass-5510@db:5432/app", "pg-pass-5510"),
    ("deploy:reg-pass-7781@registry.example.com/app:1", "reg-pass-7781"),
    ("api_key: ak-4471-zzq", "ak-4471-zzq"),
]


def test_secrets_in_every_free_text_field_never_get_past_the_relay(
    app: ModuleType, stack: Stack, trail: AuditTrail
) -> None:
    # Given a crash-looping pod and its BackOff Event with a secret in every free-text field
    texts = {name: f"at {name}: {SECRETS[i % len(SECRETS)][0]} ..." for i, name in enumerate(FIELDS)}
    # (but for the reasons the processor classifies by: the unit property test covers those too)
    texts |= {"waiting.reason": "CrashLoopBackOff", "event.reason": "BackOff"}
    lines = [
        orjson.dumps({"type": "ADDED", "object": _pod_with(texts, "1")}),
        orjson.dumps({"type": "ADDED", "object": _event_with(texts)}),
    ]
    messages = relay_to_sqs(stack, lines)

    # When the processor handles what the relay sent
    response = invoke(app, sqs_event([m["Body"] for m in messages]))

    # Then notifications went out, and no secret is in what was sent, notified, quarantined or audited
    assert response == {"batchItemFailures": []}
    notified = stack.drain(stack.deliveries_url)
    assert notified
    downstream = [m["Body"] for m in messages + notified + stack.drain(stack.quarantine_url)]
    downstream.append(json.dumps(trail.take()))
    for _, needle in SECRETS:
        assert all(needle not in text for text in downstream), needle
    assert MARKER in messages[0]["Body"]
