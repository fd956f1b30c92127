"""The local SQS event source mapping (local/esm.py) against a real moto server: Lambda's event
shape, partial batch failures, whole-batch failures, redrive to the DLQ."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.esm import SqsPoller, drain
from local.moto import MotoServer

pytestmark = pytest.mark.integration

MAX_RECEIVE = 3


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto-logs")) as server:
        yield server


@pytest.fixture
def sqs(moto: MotoServer) -> Any:
    return moto.client("sqs")


@pytest.fixture
def queues(sqs: Any) -> dict[str, str]:
    name = f"q-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "60",  # the retry override must beat this
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE)}
            ),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"url": url, "arn": arn, "dlq_url": dlq_url}


def send(sqs: Any, url: str, bodies: list[str], **extra: Any) -> list[str]:
    ids = []
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        answer = sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b, **extra} for i, b in enumerate(chunk)]
        )
        assert not answer.get("Failed")
        ids += [s["MessageId"] for s in answer["Successful"]]
    return ids


def all_bodies(sqs: Any, url: str) -> list[str]:
    out = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
            "Messages", []
        )
        if not messages:
            return out
        out += [m["Body"] for m in messages]


class Recorder:
    """A trivial handler: records every record it sees and fails the bodies it is told to."""

    def __init__(
        self, fail: set[str] | None = None, fail_times: int | None = None, raise_on: str | None = None
    ):
        self.fail = fail or set()
        self.fail_times = fail_times
        self.raise_on = raise_on
        self.seen: list[dict[str, Any]] = []
        self.batches: list[list[str]] = []
        self.contexts: list[Any] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event["Records"]
        self.batches.append([r["body"] for r in records])
        self.contexts.append(context)
        self.seen += records
        first_time = sum(r["body"] == self.raise_on for r in self.seen) == 1
        if any(r["body"] == self.raise_on for r in records) and first_time:
            raise RuntimeError("boom")
        failures = []
        for r in records:
            times = sum(s["body"] == r["body"] for s in self.seen)
            if r["body"] in self.fail and (self.fail_times is None or times <= self.fail_times):
                failures.append({"itemIdentifier": r["messageId"]})
        return {"batchItemFailures": failures}

    def count(self) -> Counter[str]:
        return Counter(r["body"] for r in self.seen)


def poller(sqs: Any, queues: dict[str, str], handler: Any, **kwargs: Any) -> SqsPoller:
    return SqsPoller(
        sqs=sqs,
        queue_url=queues["url"],
        queue_arn=queues["arn"],
        handler=handler,
        function_name="TestFunction",
        **{"batch_size": 10, "retry_delay_seconds": 1, **kwargs},
    )


def test_event_is_shaped_as_lambda_sends_it(sqs: Any, queues: dict[str, str]) -> None:
    ids = send(
        sqs,
        queues["url"],
        ["hello"],
        MessageAttributes={"reason": {"DataType": "String", "StringValue": "unit"}},
    )
    handler = Recorder()
    p = poller(sqs, queues, handler, timeout_seconds=7)
    p.drain(until_idle=0.2, timeout=20)

    (record,) = handler.seen
    assert record["messageId"] == ids[0]
    assert record["receiptHandle"]
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues["arn"]
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == hashlib.md5(b"hello", usedforsecurity=False).hexdigest()
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["SentTimestamp"].isdigit()
    assert record["messageAttributes"]["reason"]["stringValue"] == "unit"
    assert record["messageAttributes"]["reason"]["dataType"] == "String"
    ctx = handler.contexts[0]
    assert ctx.function_name == "TestFunction"
    assert ctx.invoked_function_arn.endswith(":function:TestFunction")
    assert 0 < ctx.get_remaining_time_in_millis() <= 7000
    assert all_bodies(sqs, queues["url"]) == []


def test_successes_deleted_partial_failures_redelivered(sqs: Any, queues: dict[str, str]) -> None:
    bodies = [f"m{i}" for i in range(7)]
    send(sqs, queues["url"], bodies)
    handler = Recorder(fail={"m2", "m5"}, fail_times=1)  # each fails on its first delivery only
    p = poller(sqs, queues, handler)
    result = p.drain(until_idle=0.3, timeout=30)

    counts = handler.count()
    assert counts == Counter({**dict.fromkeys(bodies, 1), "m2": 2, "m5": 2})
    retried = [r for r in handler.seen if r["body"] in {"m2", "m5"}]
    assert sorted(r["attributes"]["ApproximateReceiveCount"] for r in retried) == ["1", "1", "2", "2"]
    # the retry carries the same message id, so handlers can tell a retry from a duplicate
    assert len({r["messageId"] for r in retried}) == 2
    assert result.failed_records == 2
    assert all_bodies(sqs, queues["url"]) == []
    assert all_bodies(sqs, queues["dlq_url"]) == []
    assert p.stats.deleted == 7


def test_poison_goes_to_the_dlq_after_max_receive_count(sqs: Any, queues: dict[str, str]) -> None:
    send(sqs, queues["url"], ["good-1", "poison", "good-2"])
    handler = Recorder(fail={"poison"})
    p = poller(sqs, queues, handler)
    p.drain(until_idle=0.3, timeout=40)

    assert handler.count() == Counter({"good-1": 1, "good-2": 1, "poison": MAX_RECEIVE})
    assert all_bodies(sqs, queues["url"]) == []
    assert all_bodies(sqs, queues["dlq_url"]) == ["poison"]


def test_handler_exception_fails_the_whole_batch(sqs: Any, queues: dict[str, str]) -> None:
    send(sqs, queues["url"], ["a", "b", "c"])
    handler = Recorder(raise_on="b")  # raises on the first batch holding b, succeeds afterwards
    p = poller(sqs, queues, handler)
    p.drain(until_idle=0.3, timeout=30)

    assert p.stats.handler_errors == 1
    assert handler.count() == Counter({"a": 2, "b": 2, "c": 2})
    assert all_bodies(sqs, queues["url"]) == []


def test_unknown_item_identifier_fails_the_whole_batch(sqs: Any, queues: dict[str, str]) -> None:
    send(sqs, queues["url"], ["x", "y"])
    calls: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": "not-a-message-id"}]}
        return {"batchItemFailures": []}

    p = poller(sqs, queues, handler)
    p.drain(until_idle=0.3, timeout=30)
    assert sum(calls) == 4  # both records came back once
    assert p.stats.invalid_responses == 1


def test_batch_size_and_window(sqs: Any, queues: dict[str, str]) -> None:
    send(sqs, queues["url"], [f"b{i}" for i in range(23)])
    handler = Recorder()
    p = poller(sqs, queues, handler, batch_size=10, batching_window_seconds=0.5)
    p.drain(until_idle=0.3, timeout=30)
    assert sorted(len(b) for b in handler.batches) == [3, 10, 10]


def test_pollers_run_side_by_side_until_all_queues_idle(sqs: Any, queues: dict[str, str]) -> None:
    """Two pollers chained like processor → deliver: the drain waits for the second hop too."""
    second = {"url": sqs.create_queue(QueueName=f"second-{uuid.uuid4().hex[:8]}")["QueueUrl"]}
    second["arn"] = sqs.get_queue_attributes(QueueUrl=second["url"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sink = Recorder()

    def forward(event: dict[str, Any], context: Any) -> dict[str, Any]:
        send(sqs, second["url"], [f"fwd-{r['body']}" for r in event["Records"]])
        return {"batchItemFailures": []}

    send(sqs, queues["url"], [f"e{i}" for i in range(12)])
    first = poller(sqs, queues, forward)
    deliver = SqsPoller(
        sqs=sqs, queue_url=second["url"], queue_arn=second["arn"], handler=sink, batch_size=25,
        batching_window_seconds=0.3,
    )  # fmt: skip
    result = drain([first, deliver], until_idle=0.3, timeout=30)
    assert sorted(sink.count()) == sorted(f"fwd-e{i}" for i in range(12))
    assert result.records == 24


def test_environment_is_set_only_during_the_invocation(
    sqs: Any, queues: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    monkeypatch.delenv("PODWATCH_TEST_VAR", raising=False)
    seen: list[str | None] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        seen.append(os.environ.get("PODWATCH_TEST_VAR"))
        print("to the function log")

    log = (tmp_path / "fn.log").open("w")
    send(sqs, queues["url"], ["e"])
    p = poller(sqs, queues, handler, environment={"PODWATCH_TEST_VAR": "on"}, output=log)
    p.drain(until_idle=0.2, timeout=20)
    log.close()
    assert seen == ["on"]
    assert "PODWATCH_TEST_VAR" not in os.environ
    assert "to the function log" in (tmp_path / "fn.log").read_text()
