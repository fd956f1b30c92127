"""Fixtures of the relay integration tests (test_relay_watch, test_relay_resilience; relay processes:
test_relay_leader, test_relay_failover), the moto endpoint and the reference agent, and the handlers
on a stack provisioned from template.yaml (test_kinds_moto, test_relay_history; test_hooks uses its
`stack`); a test module may override any of them (test_relay_leader has its own `queue`,
test_processor_moto its own `stack`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from kubernetes.client import CoreV1Api
from kubernetes.config import new_client_from_config
from moto import mock_aws
from moto.server import ThreadedMotoServer

from events.make_samples import CLUSTER
from local.agent import AgentServer
from local.cfn import AwsClients, Provisioned, load_template, provision
from local.historyapi import HistoryApiServer
from local.lambda_runtime import LambdaContext, load_function_module
from podwatch.settings import HistoryApiSettings, HistoryWriterSettings
from tests.fakeapi import FakeKubeApi
from tests.integration.relay_harness import Harness
from tests.integration.relay_processes import Queue
from tests.integration.template_stack import handler_module

MOTO_REGION = "us-east-1"


@pytest.fixture
def fake() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(bookmark_interval=0.2) as server:
        yield server


@pytest.fixture
def api(fake: FakeKubeApi, tmp_path: Path) -> Iterator[CoreV1Api]:
    client = new_client_from_config(config_file=str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
    yield CoreV1Api(client)
    client.close()


@pytest.fixture
def queue() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        yield sqs, sqs.create_queue(QueueName="pod-events")["QueueUrl"]


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A moto server on loopback, for relays running as processes."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def endpoint(moto_server: str) -> str:
    """The moto server's URL, for tests that provision the template's stack on it."""
    return moto_server


@pytest.fixture(scope="module")
def clients(endpoint: str) -> AwsClients:
    """Clients of that server, in the region every such test uses."""
    return AwsClients.for_endpoint(endpoint, region=MOTO_REGION)


@pytest.fixture
def pod_events(moto_server: str, request: pytest.FixtureRequest) -> Queue:
    """A pod-events queue of its own on the moto server (named after the test)."""
    return Queue(moto_server, re.sub(r"[^a-zA-Z0-9-]", "-", request.node.name)[:70])


@pytest.fixture
def harness(api: CoreV1Api, queue: tuple[Any, str]) -> Iterator[Harness]:
    h = Harness(api=api, sqs=queue[0], queue_url=queue[1])
    yield h
    h.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """The reference A2A agent (local/agent.py), for the hooks tests (test_hooks, test_kinds_moto)."""
    server = AgentServer(tmp_path_factory.mktemp("agent"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- the template's stack


@pytest.fixture
def stack(clients: AwsClients, agent: AgentServer) -> Provisioned:
    """template.yaml's queues, tables and parameters on the moto server, under a name of its own."""
    agent.reset()
    return provision(
        load_template(),
        clients=clients,
        stack_name=f"pw-{uuid.uuid4().hex[:8]}",
        parameters={"KagentBaseUrl": agent.base_url},
    )


@pytest.fixture
def processor(stack: Provisioned, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    yield from handler_module("processor", "ProcessorFunction", stack, endpoint, monkeypatch)


@pytest.fixture
def hooks(stack: Provisioned, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    yield from handler_module("hooks", "HooksFunction", stack, endpoint, monkeypatch)


@pytest.fixture
def history_url(stack: Provisioned, clients: AwsClients) -> Iterator[str]:
    """The history API handler behind a loopback HTTP server (the cluster of events/ by default)."""
    module = load_function_module("history", fresh=True)
    settings = HistoryApiSettings(
        history_table_name=stack.physical("HistoryTable"), history_default_cluster=CLUSTER
    )
    module.set_dependencies(module.build_dependencies(settings, dynamodb=clients.dynamodb))
    with HistoryApiServer(lambda event: module.lambda_handler(event, LambdaContext())) as server:
        yield server.url
    module.reset()


@pytest.fixture
def writer(stack: Provisioned, clients: AwsClients) -> Iterator[ModuleType]:
    module = load_function_module("history_writer", fresh=True)
    settings = HistoryWriterSettings(
        history_table_name=stack.physical("HistoryTable"), quarantine_queue_url=stack.physical("HistoryDLQ")
    )
    module.set_dependencies(
        module.build_dependencies(settings, dynamodb=clients.dynamodb, sqs=clients.sqs, sleep=lambda _: None)
    )
    yield module
    module.reset()
