"""The handlers on a moto server whose queues and tables come from template.yaml (`local.cfn.provision`):
what the tests that run several of them in a row share (test_kinds_moto, test_relay_history). Their
fixtures (`stack`, `processor`, `hooks`, `writer`, `history_url`) are in conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from local.cfn import AwsClients, Provisioned
from local.lambda_runtime import LambdaContext, load_function_module, sqs_event, sqs_record
from tests.queues import drain_queue


def handler_module(
    name: str, logical_id: str, stack: Provisioned, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """A real handler, in the environment the template gives it, against the moto server."""
    for variable, value in stack.function_environment(logical_id).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("CONFIG_MAX_AGE_SECONDS", "0")
    monkeypatch.setenv("RULES_MAX_AGE_SECONDS", "0")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    module = load_function_module(name, fresh=True)
    module.reset()
    yield module
    module.reset()


def drain(clients: AwsClients, stack: Provisioned, logical_id: str) -> list[dict[str, Any]]:
    """Every message on the stack's queue `logical_id`, received and deleted."""
    return drain_queue(clients.sqs, stack.physical(logical_id))


def process(processor: ModuleType, *bodies: str) -> None:
    """The processor handler on these pod-events bodies; every record must succeed."""
    assert processor.lambda_handler(sqs_event(list(bodies)), LambdaContext()) == {"batchItemFailures": []}


def to_history(clients: AwsClients, stack: Provisioned, writer: ModuleType) -> int:
    """What the processor sent to the history queue (packs), written by the history-writer handler;
    how many messages."""
    messages = drain(clients, stack, "HistoryQueue")
    records = [
        sqs_record(
            m["Body"],
            message_attributes={
                name: {"stringValue": a["StringValue"], "dataType": a["DataType"]}
                for name, a in (m.get("MessageAttributes") or {}).items()
            },
        )
        for m in messages
    ]
    assert writer.lambda_handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
    return len(messages)
