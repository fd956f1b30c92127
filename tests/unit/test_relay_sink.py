"""SqsSink: SendMessageBatch limits, retry of failed entries only, typed give-up errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from podwatch_relay.errors import SinkRejected, SinkUnavailable
from podwatch_relay.sink import SqsSink, pack_batches


class SpyClient:
    """Wraps a real (moto) client and records every SendMessageBatch request."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: list[list[dict[str, str]]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> Any:
        self.requests.append(Entries)
        return self.client.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)


class ScriptedClient:
    """Answers SendMessageBatch from a script: each step fails the listed entry ids (or raises)."""

    def __init__(self, script: list[dict[str, tuple[str, bool]] | Exception]) -> None:
        self.script = script
        self.requests: list[list[dict[str, str]]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> Any:
        self.requests.append(Entries)
        step = self.script.pop(0) if self.script else {}
        if isinstance(step, Exception):
            raise step
        ok = [{"Id": e["Id"], "MessageId": f"m-{e['Id']}"} for e in Entries if e["Id"] not in step]
        failed = [
            {"Id": entry_id, "Code": code, "SenderFault": sender, "Message": "scripted"}
            for entry_id, (code, sender) in step.items()
            if any(e["Id"] == entry_id for e in Entries)
        ]
        return {"Successful": ok, "Failed": failed}


def _throttled() -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "RequestThrottled", "Message": "slow down"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
        "SendMessageBatch",
    )


def _sink(client: Any, sleeps: list[float] | None = None, **kwargs: Any) -> SqsSink:
    recorded = sleeps if sleeps is not None else []
    return SqsSink(
        client=client, queue_url="https://sqs.test/q", sleep=recorded.append, jitter=lambda: 1.0, **kwargs
    )


@pytest.fixture
def sqs() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="pod-events")["QueueUrl"]
        yield client, url


def _drain(client: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        bodies += [m["Body"] for m in messages]
        client.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def test_pack_batches_respects_count_and_bytes() -> None:
    # Count: 25 small bodies → 10, 10, 5 in order
    bodies = [f"b{i}" for i in range(25)]
    batches = pack_batches(bodies)
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [x for b in batches for x in b] == bodies

    # Bytes: 100 KB bodies never share a batch beyond the byte limit
    big = ["x" * 100_000 for _ in range(5)]
    batches = pack_batches(big, max_batch_bytes=250_000)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_bodies_reach_the_queue_in_batches_within_limits(sqs: tuple[Any, str]) -> None:
    # Given a sink on a (moto) queue
    client, url = sqs
    spy = SpyClient(client)
    sink = SqsSink(client=spy, queue_url=url, max_batch_bytes=60_000)
    bodies = [f'{{"n": {i}, "pad": "{"p" * 9_000}"}}' for i in range(23)]

    # When 23 bodies of ~9 KB are sent
    result = sink.send(bodies)

    # Then all arrived, every request had ≤10 entries and ≤ the byte limit, each entry an id
    assert result.sent == 23
    assert result.dropped == 0
    assert all(len(r) <= 10 for r in spy.requests)
    assert all(sum(len(e["MessageBody"]) for e in r) <= 60_000 for r in spy.requests)
    assert all(len({e["Id"] for e in r}) == len(r) for r in spy.requests)
    assert sorted(_drain(client, url)) == sorted(bodies)


def test_only_the_failed_entries_of_a_partly_failed_batch_are_retried() -> None:
    # Given SQS fails entries 2 and 5 of the first call transiently, then accepts everything
    client = ScriptedClient([{"2": ("InternalError", False), "5": ("ServiceUnavailable", False)}])
    sleeps: list[float] = []
    sink = _sink(client, sleeps)
    bodies = [f"body-{i}" for i in range(10)]

    # When ten bodies are sent
    result = sink.send(bodies)

    # Then the second call carried exactly the two failed entries, with their ids, after a backoff
    assert len(client.requests) == 2
    assert client.requests[1] == [{"Id": "2", "MessageBody": "body-2"}, {"Id": "5", "MessageBody": "body-5"}]
    assert (result.sent, result.dropped, result.retried_entries, result.calls) == (10, 0, 2, 2)
    assert len(sleeps) == 1


def test_sender_fault_entries_are_dropped_with_their_reason_not_retried() -> None:
    # Given SQS says entry 1 is itself invalid
    client = ScriptedClient([{"1": ("InvalidMessageContents", True)}])
    sink = _sink(client)

    # When three bodies are sent
    result = sink.send(["a", "b", "c"])

    # Then one call was made, the bad one is dropped with SQS's code, the others sent
    assert len(client.requests) == 1
    assert (result.sent, result.dropped) == (2, 1)
    assert result.dropped_reasons == {"InvalidMessageContents": 1}


def test_throttled_call_is_retried_with_growing_backoff() -> None:
    client = ScriptedClient([_throttled(), _throttled(), {}])
    sleeps: list[float] = []
    sink = _sink(client, sleeps, backoff_seconds=0.1)

    result = sink.send(["a", "b"])

    assert result.sent == 2
    assert len(client.requests) == 3
    assert sleeps == [0.1, 0.2]


def test_gives_up_after_max_attempts_and_hands_back_every_unsent_body() -> None:
    # Given SQS unreachable for the whole time
    network_down = EndpointConnectionError(endpoint_url="https://sqs.test")
    client = ScriptedClient([network_down] * 10)
    sink = _sink(client, max_attempts=3)
    bodies = [f"b{i}" for i in range(15)]

    # When 15 bodies (two batches) are sent, then it raises a TransientError with all 15 pending
    with pytest.raises(SinkUnavailable) as info:
        sink.send(bodies)
    assert info.value.pending == bodies
    assert len(client.requests) == 3


def test_whole_request_refused_raises_sink_rejected(sqs: tuple[Any, str]) -> None:
    # Given a queue URL that does not exist
    client, url = sqs
    sink = SqsSink(client=client, queue_url=url + "-missing")

    # When / Then the refusal is permanent, typed, and keeps the bodies
    with pytest.raises(SinkRejected) as info:
        sink.send(["a"])
    assert info.value.pending == ["a"]
    assert info.value.__cause__ is not None


def test_oversize_body_is_sent_as_a_stub_never_dropped(sqs: tuple[Any, str]) -> None:
    # A body over the limit that is not even an envelope (no pod to trim): a stub goes in its place
    client, url = sqs
    sink = SqsSink(client=client, queue_url=url)

    result = sink.send(["x" * 300_000, "small"])

    assert (result.sent, result.dropped) == (2, 0)
    stub, small = _drain(client, url)
    assert small == "small"
    assert json.loads(stub)["kind"] == "oversize"
    assert json.loads(stub)["payload"]["bytes"] == 300_000
