"""The deliver handler against a real HTTP server on loopback acting as the Restate ingress, with moto
(in-process) for the quarantine queue and the remote config parameter.

Every sample in events/deliver/ is invoked here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.lambda_runtime import LambdaContext, load_event, load_function_module, sqs_event
from podwatch import ids
from podwatch.models import Notification, RemoteConfig
from podwatch.restate import new_breaker
from podwatch.settings import DeliverSettings
from podwatch_cli.loopback import LoopbackHandler, LoopbackServer

PARAMETER = "/podwatch-test/remote-config"
TOKEN_PARAMETER = "/podwatch-test/restate-token"
DELIVERIES_ARN = "arn:aws:sqs:us-east-1:123456789012:podwatch-test-deliveries"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


Answer = tuple[int, dict[str, str], str]


@dataclass
class Ingress:
    """A loopback HTTP server standing in for the Restate ingress: records every request and
    answers with `answer(request)` (200 with a NotifyPodEvents-like body by default)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answer: Callable[[Received], Answer] = lambda r: (
        200,
        {"content-type": "application/json"},
        json.dumps({"received": len(r.body.get("events", [])), "new": len(r.body.get("events", []))}),
    )


@pytest.fixture
def ingress() -> Iterator[Ingress]:
    state = Ingress()

    class Handler(LoopbackHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"{}")
            )
            state.received.append(request)
            status, headers, body = state.answer(request)
            self.send(status, headers, body.encode())

    with LoopbackServer(Handler, name="ingress", poll_interval=0.05) as server:
        state.url = server.url
        yield state


@dataclass
class Aws:
    sqs: Any
    ssm: Any
    quarantine_url: str

    def set_config(self, config: RemoteConfig) -> None:
        self.ssm.put_parameter(Name=PARAMETER, Value=config.to_json(), Type="String", Overwrite=True)

    def quarantined(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.quarantine_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return list(answer.get("Messages", []))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, ingress: Ingress) -> Iterator[Aws]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        ssm = boto3.client("ssm", region_name="us-east-1")
        quarantine = sqs.create_queue(QueueName="podwatch-test-deliveries-dlq")["QueueUrl"]
        ssm.put_parameter(Name=PARAMETER, Value=RemoteConfig().to_json(), Type="String")
        for name, value in {
            "CONFIG_PARAMETER_NAME": PARAMETER,
            "CONFIG_MAX_AGE_SECONDS": "0",
            "RESTATE_INGRESS_URL": ingress.url,
            "RESTATE_CONNECT_TIMEOUT_SECONDS": "1",
            "RESTATE_READ_TIMEOUT_SECONDS": "2",
            "QUARANTINE_QUEUE_URL": quarantine,
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("RESTATE_TOKEN_PARAMETER_NAME", raising=False)
        yield Aws(sqs, ssm, quarantine)


@pytest.fixture
def app(aws: Aws) -> Iterator[ModuleType]:
    module = load_function_module("deliver")
    module.reset()
    # Fast retries for tests; everything else as built from the environment on first use.
    module.set_dependencies(module.build_dependencies(max_tries=2, backoff_base=0.001, backoff_cap=0.005))
    yield module
    module.reset()


def invoke(app: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = app.lambda_handler(event, LambdaContext())
    return response


def sample() -> dict[str, Any]:
    return load_event("events/deliver/batch.json")


def notifications_of(event: dict[str, Any]) -> list[Notification]:
    return [Notification.model_validate_json(r["body"]) for r in event["Records"]]


def metric_values(out: str, name: str) -> list[float]:
    """Every value of metric `name` in the EMF blobs of a handler's output."""
    values: list[float] = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            value = json.loads(line).get(name)
            values += value if isinstance(value, list) else [] if value is None else [value]
    return values


# --------------------------------------------------------------------------- happy path


def test_sample_batch_is_one_call_per_cluster(
    app: ModuleType, ingress: Ingress, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the sample: four notifications of prod-eu-1, one of staging-us-2
    event = sample()
    sent = notifications_of(event)

    # When deliver handles it (batch size 25)
    capsys.readouterr()
    before = datetime.now(UTC)
    response = invoke(app, event)
    after = datetime.now(UTC)

    # Then each cluster gets one NotifyPodEvents call on its object's path, with a content key
    assert response == {"batchItemFailures": []}
    assert [r.path for r in ingress.received] == [
        "/PodwatchManager/prod-eu-1/NotifyPodEvents",
        "/PodwatchManager/staging-us-2/NotifyPodEvents",
    ]
    for request in ingress.received:
        cluster = request.path.split("/")[2]
        expected = [n for n in sent if n.cluster_id == cluster]
        received = [Notification.model_validate(e) for e in request.body["events"]]
        assert received == expected  # exactly as the processor forwarded them
        assert request.headers["idempotency-key"] == ids.idempotency_key(n.notification_id for n in expected)
        assert "authorization" not in request.headers
    assert app.dependencies().restate.stats.as_dict() == {"requests": 2, "by_status": {"200": 2}}
    # and the invocation reports a latency per notification (observed_at → the 2xx), breaker closed
    out = capsys.readouterr().out
    latencies = metric_values(out, "DeliveryLatency")
    assert len(latencies) == len(sent)
    for note, latency in zip(sent, latencies, strict=True):
        low, high = ((t - note.observed_at).total_seconds() * 1000 for t in (before, after))
        assert max(0.0, low) - 1 <= latency <= max(0.0, high) + 1
    assert metric_values(out, "CircuitState") == [0.0]
    assert metric_values(out, "BreakerOpened") == []


def test_no_call_starts_that_could_not_finish_before_the_function_times_out(
    app: ModuleType, ingress: Ingress
) -> None:
    # A call retries for up to max_time (10 s) and its last attempt may then take connect + read
    # (1 + 2 s here): 13 s, plus a 1 s margin. With less time left, the records go back to SQS unsent.
    restate = app.dependencies().restate
    assert restate.worst_call_seconds == 10 + 1 + 2
    event = sample()

    short = app.lambda_handler(event, LambdaContext(timeout_ms=13_500))
    assert ingress.received == []
    assert sorted(f["itemIdentifier"] for f in short["batchItemFailures"]) == sorted(
        r["messageId"] for r in event["Records"]
    )

    enough = app.lambda_handler(event, LambdaContext(timeout_ms=14_500))
    assert enough == {"batchItemFailures": []}
    assert len(ingress.received) == 2


def test_the_same_content_carries_the_same_idempotency_key(app: ModuleType, ingress: Ingress) -> None:
    # Given the same notifications redelivered by SQS (new message ids, another order)
    first = sample()
    again = sqs_event([r["body"] for r in reversed(first["Records"])], queue_arn=DELIVERIES_ARN)
    invoke(app, first)
    invoke(app, again)
    keys = {r.path: [] for r in ingress.received}  # type: dict[str, list[str]]
    for r in ingress.received:
        keys[r.path].append(r.headers["idempotency-key"])
    # Then every repeat of a call carries the key of its first time
    assert all(len(set(k)) == 1 and len(k) == 2 for k in keys.values())


def test_a_notification_twice_in_a_batch_is_sent_once(app: ModuleType, ingress: Ingress) -> None:
    body = sample()["Records"][0]["body"]
    response = invoke(app, sqs_event([body, body], queue_arn=DELIVERIES_ARN))
    assert response == {"batchItemFailures": []}
    [request] = ingress.received
    assert len(request.body["events"]) == 1


def test_chunks_by_the_remote_batch_size(app: ModuleType, ingress: Ingress, aws: Aws) -> None:
    aws.set_config(RemoteConfig(version="small", batch_size=2))
    response = invoke(app, sample())
    assert response == {"batchItemFailures": []}
    assert [(r.path.split("/")[2], len(r.body["events"])) for r in ingress.received] == [
        ("prod-eu-1", 2),
        ("prod-eu-1", 2),
        ("staging-us-2", 1),
    ]


def test_bearer_token_from_a_secure_string(
    app: ModuleType, ingress: Ingress, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.ssm.put_parameter(Name=TOKEN_PARAMETER, Value="tok-123", Type="SecureString")
    monkeypatch.setenv("RESTATE_TOKEN_PARAMETER_NAME", TOKEN_PARAMETER)
    app.reset()  # settings are read on first use: rebuild from the environment
    invoke(app, sample())
    assert {r.headers["authorization"] for r in ingress.received} == {"Bearer tok-123"}


# --------------------------------------------------------------------------- failures


def test_5xx_returns_the_chunks_records_as_batch_item_failures(
    app: ModuleType, ingress: Ingress, aws: Aws
) -> None:
    # Given the ingress fails for prod-eu-1 only
    ingress.answer = lambda r: (503, {}, "unavailable") if "prod-eu-1" in r.path else (200, {}, "{}")
    event = sample()
    prod_ids = [r["messageId"] for r in event["Records"] if "prod-eu-1" in r["body"]]

    response = invoke(app, event)

    # Then prod-eu-1's records come back for SQS to retry (after max_tries attempts), staging's are done
    assert response == {"batchItemFailures": [{"itemIdentifier": m} for m in prod_ids]}
    assert [r.path.split("/")[2] for r in ingress.received] == ["prod-eu-1", "prod-eu-1", "staging-us-2"]
    assert aws.quarantined() == []


def test_400_quarantines_the_chunk_with_the_response(app: ModuleType, ingress: Ingress, aws: Aws) -> None:
    problem = '{"code": 400, "message": "events[0]: cluster_id does not match the object key"}'
    ingress.answer = lambda r: (400, {"content-type": "application/json"}, problem)
    event = sample()

    response = invoke(app, event)

    # Then nothing is retried: every record is in the quarantine queue with status and body attached
    assert response == {"batchItemFailures": []}
    assert len(ingress.received) == 2  # no retry of a 4xx
    quarantined = aws.quarantined()
    assert {m["MessageAttributes"]["source_message_id"]["StringValue"] for m in quarantined} == {
        r["messageId"] for r in event["Records"]
    }
    for m in quarantined:
        attributes = {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
        assert (attributes["reason"], attributes["status_code"], attributes["response_body"]) == (
            "rejected",
            "400",
            problem,
        )
    assert {m["Body"] for m in quarantined} == {r["body"] for r in event["Records"]}
    # and a 4xx does not count toward the breaker
    assert app.dependencies().restate.breaker.fail_counter == 0


def test_an_invalid_record_is_quarantined_and_the_rest_delivered(
    app: ModuleType, ingress: Ingress, aws: Aws
) -> None:
    good = sample()["Records"][0]["body"]
    event = sqs_event([good, '{"notification_id": "x"}', "not json"], queue_arn=DELIVERIES_ARN)

    response = invoke(app, event)

    assert response == {"batchItemFailures": []}
    assert [len(r.body["events"]) for r in ingress.received] == [1]
    quarantined = aws.quarantined()
    assert sorted(m["MessageAttributes"]["source_message_id"]["StringValue"] for m in quarantined) == sorted(
        r["messageId"] for r in event["Records"][1:]
    )
    assert {m["MessageAttributes"]["reason"]["StringValue"] for m in quarantined} == {"malformed"}


def test_breaker_opens_after_repeated_failures_and_then_no_call_is_made(
    app: ModuleType, ingress: Ingress, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a breaker that opens after 2 failed attempts, and a manager that is down
    app.set_dependencies(
        app.build_dependencies(
            max_tries=1, backoff_base=0.001, breaker=new_breaker(fail_max=2, reset_timeout=60)
        )
    )
    ingress.answer = lambda r: (500, {}, "down")
    event = sample()
    everything = {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    # When two chunks fail, the breaker opens
    capsys.readouterr()
    assert invoke(app, event) == everything
    assert len(ingress.received) == 2
    assert app.dependencies().restate.breaker.current_state == "open"
    out = capsys.readouterr().out
    assert metric_values(out, "BreakerOpened") == [1.0]
    assert metric_values(out, "CircuitState") == [1.0]  # what the breaker alarm watches
    assert metric_values(out, "DeliveryLatency") == []

    # Then the next invocation returns every record at once, without a call
    assert invoke(app, event) == everything
    assert len(ingress.received) == 2
    out = capsys.readouterr().out
    assert metric_values(out, "CircuitOpen") == [5.0]
    assert metric_values(out, "CircuitState") == [1.0]
    assert metric_values(out, "BreakerOpened") == []
    assert app.dependencies().restate.stats.requests == 2


def test_lazy_dependencies_from_the_environment(aws: Aws, ingress: Ingress) -> None:
    module = load_function_module("deliver")
    module.reset()
    try:
        assert invoke(module, sample()) == {"batchItemFailures": []}
        deps = module.dependencies()
        assert deps.settings == DeliverSettings.from_env()
        assert deps.restate.stats.requests == 2
    finally:
        module.reset()
