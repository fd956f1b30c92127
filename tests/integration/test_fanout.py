"""The fan-out to the stack's EventBridge bus is independent of the Restate path, both ways, on a
moto server whose resources come from template.yaml (the real processor and fanout handlers):

* the fan-out queue refusing the processor's hand-off fails no record and sends nothing twice to the
  deliveries queue: the notifications go on to the manager, the loss is counted (FanoutFailed);
* EventBridge refusing entries sends the records back to SQS (retried, then the fan-out DLQ), never
  to quarantine, and never calls the manager; once the bus takes them, a rule's target receives each
  notification once, detail-type = its event type, detail = the notification.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local.cfn import ROOT, AwsClients, Provisioned, load_template, parse_template, provision
from local.lambda_runtime import LambdaContext, load_event, load_function_module
from tests.integration.samples import emf_namespaces, subscribe_queue

pytestmark = pytest.mark.integration

REGION = "us-east-1"


@pytest.fixture
def stack(clients: AwsClients) -> Provisioned:
    return provision(load_template(), clients=clients, stack_name=f"pw-{uuid.uuid4().hex[:8]}")


def handler(
    folder: str, lid: str, stack: Provisioned, endpoint: str, monkeypatch: pytest.MonkeyPatch, **env: str
) -> ModuleType:
    for name, value in {**stack.function_environment(lid), **env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONFIG_MAX_AGE_SECONDS", "0")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    module = load_function_module(folder, fresh=True)
    module.reset()
    return module


def drain(clients: AwsClients, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while batch := clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        out += batch
        for m in batch:
            clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def emf_total(out: str, name: str) -> float:
    """The sum of metric `name` over the EMF blobs in a handler's output (a value may be a list)."""
    total = 0.0
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line and name in (blob := json.loads(line)):
            value = blob[name]
            total += sum(value) if isinstance(value, list) else float(value)
    return total


def test_a_fanout_queue_that_refuses_fails_no_record_and_duplicates_nothing(
    stack: Provisioned,
    clients: AwsClients,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a processor whose fan-out queue does not exist (SQS refuses every hand-off)
    missing = stack.physical("FanoutQueue").replace("-fanout", "-gone")
    processor = handler(
        "processor", "ProcessorFunction", stack, endpoint, monkeypatch, FANOUT_QUEUE_URL=missing
    )
    capsys.readouterr()
    # When it processes a batch of trouble
    response = processor.lambda_handler(load_event("events/processor/batch.json"), LambdaContext())
    processor.reset()
    out = capsys.readouterr().out
    # Then no record failed (SQS would re-send them, and the deliveries queue would get them twice)
    assert response == {"batchItemFailures": []}
    # and every notification went on to the manager's queue, once
    delivered = drain(clients, stack.physical("DeliveriesQueue"))
    assert len(delivered) == 5
    assert len({json.loads(m["Body"])["notification_id"] for m in delivered}) == 5
    # and what missed the bus is counted (the alarm FanoutFailed), in the stack's namespace
    assert emf_total(out, "FanoutFailed") == 5
    namespace = stack.function_environment("ProcessorFunction")["POWERTOOLS_METRICS_NAMESPACE"]
    assert emf_namespaces(out) == {namespace}


def test_entries_eventbridge_refuses_go_back_to_sqs_and_are_published_once_it_takes_them(
    stack: Provisioned,
    clients: AwsClients,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert clients.events is not None
    bus = stack.physical("NotificationsBus")
    target = subscribe_queue(clients.events, clients.sqs, bus, f"{stack.stack_name}-subscriber")
    event = load_event("events/fanout/batch.json")
    ids = [r["messageId"] for r in event["Records"]]
    # Given the fan-out function pointed at a bus EventBridge does not have
    broken = handler("fanout", "FanoutFunction", stack, endpoint, monkeypatch, EVENT_BUS_NAME="no-such-bus")
    # When it handles a batch
    response = broken.lambda_handler(event, LambdaContext())
    broken.reset()
    # Then every record goes back to SQS (retried, later the fan-out DLQ), none is quarantined
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(ids)
    assert drain(clients, stack.physical("FanoutDLQ")) == []
    assert drain(clients, target) == []
    # When the retry reaches the stack's bus
    fanout = handler("fanout", "FanoutFunction", stack, endpoint, monkeypatch)
    response = fanout.lambda_handler(event, LambdaContext())
    fanout.reset()
    # Then the rule's target receives each notification once, shaped as docs/internals.md says
    assert response == {"batchItemFailures": []}
    received = [json.loads(m["Body"]) for m in drain(clients, target)]
    bodies = {json.loads(r["body"])["notification_id"]: json.loads(r["body"]) for r in event["Records"]}
    assert Counter(e["detail"]["notification_id"] for e in received) == Counter(list(bodies))
    for e in received:
        assert e["source"] == "podwatch"
        assert e["detail-type"] == e["detail"]["event_type"]
        assert e["detail"] == bodies[e["detail"]["notification_id"]]


def test_a_record_eventbridge_refuses_at_its_last_receive_goes_to_the_dlq_with_the_reason(
    stack: Provisioned,
    clients: AwsClients,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the fan-out function pointed at a bus EventBridge does not have, and records on the
    # receive the fan-out queue's redrive policy makes their last (maxReceiveCount, the template's)
    redrive = load_template()["Resources"]["FanoutQueue"]["Properties"]["RedrivePolicy"]
    last = int(redrive["maxReceiveCount"])
    event = load_event("events/fanout/batch.json")
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(last)
    broken = handler("fanout", "FanoutFunction", stack, endpoint, monkeypatch, EVENT_BUS_NAME="no-such-bus")
    # When it handles them
    response = broken.lambda_handler(event, LambdaContext())
    broken.reset()
    # Then none goes back to SQS (which would move it to the DLQ bare): each is in the fan-out DLQ
    # with the reason and EventBridge's error
    assert response == {"batchItemFailures": []}
    dead = clients.sqs.receive_message(
        QueueUrl=stack.physical("FanoutDLQ"), MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert sorted(m["Body"] for m in dead) == sorted(r["body"] for r in event["Records"])
    for message in dead:
        attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        assert attributes["reason"] == "publish_failed"
        assert attributes["error"].startswith(f"gave up after {last} receives: ")
        assert "no-such-bus" in attributes["error"] or "EventBridge refused" in attributes["error"]
    assert {m["MessageAttributes"]["source_message_id"]["StringValue"] for m in dead} == {
        r["messageId"] for r in event["Records"]
    }
    # and a record before its last receive still goes back to SQS, not to the DLQ
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(last - 1)
    again = handler("fanout", "FanoutFunction", stack, endpoint, monkeypatch, EVENT_BUS_NAME="no-such-bus")
    response = again.lambda_handler({"Records": event["Records"][:1]}, LambdaContext())
    again.reset()
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


# --------------------------------------------------------------------------- the documented examples


def documented_examples() -> list[str]:
    """The YAML templates of docs/operations.md's EventBridge section (Slack, webhook)."""
    text = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    section = text.split("## Notifications on EventBridge", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```yaml\n(.*?)^```", section, flags=re.M | re.S)


def test_the_documented_examples_are_valid_templates(tmp_path: Path) -> None:
    examples = documented_examples()
    assert len(examples) == 2
    cfn_lint = ROOT / ".venv-sam/bin/cfn-lint"
    assert cfn_lint.exists(), "make setup installs the SAM CLI (and cfn-lint) into .venv-sam"
    paths = []
    for i, example in enumerate(examples):
        paths.append(tmp_path / f"example-{i}.yaml")
        paths[-1].write_text(example)
    done = subprocess.run([str(cfn_lint), *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_documented_rules_receive_the_notifications_they_promise(
    stack: Provisioned, clients: AwsClients, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given each documented rule's pattern on the stack's bus, with a queue as its target
    assert clients.events is not None
    bus = stack.physical("NotificationsBus")
    queues = {}
    for i, example in enumerate(documented_examples()):
        resources = parse_template(example)["Resources"].values()
        (rule,) = [r for r in resources if r["Type"] == "AWS::Events::Rule"]
        assert rule["Properties"]["EventBusName"] == {"Fn::Sub": "${PodwatchStack}-notifications"}
        pattern = rule["Properties"]["EventPattern"]
        queues[i] = subscribe_queue(
            clients.events, clients.sqs, bus, f"{stack.stack_name}-example-{i}", pattern=pattern
        )
    # When the fan-out function publishes a batch of notifications
    fanout = handler("fanout", "FanoutFunction", stack, endpoint, monkeypatch)
    response = fanout.lambda_handler(load_event("events/fanout/batch.json"), LambdaContext())
    fanout.reset()
    assert response == {"batchItemFailures": []}
    # Then Slack gets the trouble types it lists, and the webhook every notification
    slack = Counter(json.loads(m["Body"])["detail-type"] for m in drain(clients, queues[0]))
    assert slack == Counter({"crash-loop": 1, "oom-kill": 1, "evicted": 1, "image-pull": 1})
    assert len(drain(clients, queues[1])) == 5
