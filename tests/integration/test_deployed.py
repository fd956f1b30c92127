"""Deployed = tested: every handler imports and handles every sample in a clean environment with only
what Lambda gives a function (the layer's requirements and the runtime's boto3, tests/cleanenv.py),
and the relay runs with only its image's requirements. The test venv installs more than either
(aws-xray-sdk, moto, ...), so a handler that works in-process can still fail in Lambda at import:
this is where it would show.

Each handler runs in a subprocess of that environment (tests/integration/lambda_invoke.py, as the
runtime: the function's folder first on sys.path, the layer on PYTHONPATH), with the environment the
template gives it, against a moto server whose resources are created from template.yaml and a
loopback stand-in for the Restate ingress; the outcome is checked against the same table as
test_event_samples. Tracing is on as in Lambda (LAMBDA_TASK_ROOT, a trace header), with a UDP socket
as the X-Ray daemon, so the Tracer really records and sends segments.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.cfn import AwsClients, Provisioned, load_template, provision
from local.lambda_runtime import ROOT
from local.moto import DUMMY_AWS_ENV
from tests.cleanenv import bare_env, layer_python, relay_python
from tests.integration.samples import (
    BUS_TARGET,
    CLUSTER_IDS,
    EVENTS,
    FUNCTION_OF,
    Manager,
    check_outcome,
    samples,
    serve_manager,
    subscribe_queue,
)

pytestmark = pytest.mark.integration

REGION = "us-east-1"
INVOKE = Path(__file__).with_name("lambda_invoke.py")
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture
def manager() -> Iterator[Manager]:
    with serve_manager() as state:
        yield state


@pytest.fixture
def stack(clients: AwsClients, manager: Manager) -> Provisioned:
    """A stack of its own per test (the server is shared), its functions' mappings included."""
    return provision(
        load_template(),
        clients=clients,
        stack_name=f"pw-{uuid.uuid4().hex[:8]}",
        parameters={"RestateIngressUrl": manager.url, "ClusterIds": CLUSTER_IDS},
    )


@pytest.fixture
def xray_daemon() -> Iterator[socket.socket]:
    """A UDP socket where the X-Ray SDK sends its segments (AWS_XRAY_DAEMON_ADDRESS)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def segments(sock: socket.socket) -> list[dict[str, Any]]:
    """The segment documents received (each datagram: a JSON header line, then the document)."""
    found: list[dict[str, Any]] = []
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return found
        found.append(json.loads(data.decode().split("\n", 1)[1]))


def lambda_env(stack: Provisioned, lid: str, endpoint: str, daemon: socket.socket) -> dict[str, str]:
    """What Lambda sets for the function: the template's variables, the runtime's own, and moto."""
    spec = stack.functions()[lid]
    code_dir = spec.code_dir
    host, port = daemon.getsockname()
    return bare_env(
        **stack.function_environment(lid),
        **DUMMY_AWS_ENV,
        AWS_ENDPOINT_URL=endpoint,
        AWS_LAMBDA_FUNCTION_NAME=spec.name,
        LAMBDA_TASK_ROOT=str(code_dir),
        _X_AMZN_TRACE_ID=TRACE_HEADER,
        AWS_XRAY_DAEMON_ADDRESS=f"{host}:{port}",
        AWS_XRAY_CONTEXT_MISSING="RUNTIME_ERROR",
        PYTHONPATH=str(ROOT / "layers/podwatch"),
    )


def queue_drain(clients: AwsClients, stack: Provisioned) -> Any:
    # a user's rule on the stack's bus, sending every podwatch event to a queue of its own
    assert clients.events is not None
    subscriber = subscribe_queue(
        clients.events, clients.sqs, stack.physical("NotificationsBus"), f"{stack.stack_name}-subscriber"
    )

    def drain(lid: str) -> list[dict[str, Any]]:
        url, out = (subscriber if lid == BUS_TARGET else stack.physical(lid)), []
        while batch := clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            out += batch
            for m in batch:
                clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return out

    return drain


def test_the_layer_env_has_only_what_lambda_gives() -> None:
    # Given the clean environment of a deployed function
    python = layer_python()
    # Then nothing of the test venv or the repository is in it
    probe = (
        "import importlib.util as u;"
        "print([m for m in ('moto', 'pytest', 'podwatch_relay', 'local') if u.find_spec(m)])"
    )
    done = subprocess.run(
        [str(python), "-P", "-c", probe], env=bare_env(), capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("sample", samples())
def test_sample_in_the_deployed_environment(
    sample: str,
    stack: Provisioned,
    clients: AwsClients,
    endpoint: str,
    manager: Manager,
    xray_daemon: socket.socket,
    tmp_path: Path,
) -> None:
    folder = Path(sample).parts[0]
    lid = FUNCTION_OF[folder]
    response_path = tmp_path / "response.json"
    drain = queue_drain(clients, stack)
    # When the handler is invoked in the clean environment, as the Lambda runtime would
    done = subprocess.run(
        [
            str(layer_python()),
            "-P",
            str(INVOKE),
            str(stack.functions()[lid].code_dir),
            str(EVENTS / sample),
            str(response_path),
        ],
        env=lambda_env(stack, lid, endpoint, xray_daemon),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it imports and runs (the error is the function's, as Lambda would log it)
    assert done.returncode == 0, done.stderr[-3000:]
    # and comes to what the sample's entry says, metrics in the stack's namespace
    check_outcome(
        sample,
        json.loads(response_path.read_text()),
        drain=drain,
        stored_config=clients.ssm.get_parameter(Name=stack.physical("RemoteConfigParameter"))["Parameter"][
            "Value"
        ],
        manager=manager,
        out=done.stdout,
        namespace=stack.function_environment(lid)["POWERTOOLS_METRICS_NAMESPACE"],
    )
    # and the Tracer recorded the invocation (segments reached the daemon address)
    assert segments(xray_daemon), "no X-Ray segment sent"


# --------------------------------------------------------------------------- the relay image


def relay_env(**extra: str) -> dict[str, str]:
    """The image's PYTHONPATH (/app holds podwatch and podwatch_relay)."""
    return bare_env(PYTHONPATH=f"{ROOT / 'layers/podwatch'}:{ROOT / 'relay'}", **extra)


def test_the_relay_runs_with_only_its_image_requirements() -> None:
    done = subprocess.run(
        [str(relay_python()), "-P", "-m", "podwatch_relay", "--help"],
        env=relay_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replay" in done.stdout
    assert "watch" in done.stdout


def test_the_relay_replays_a_sample_to_sqs_with_only_its_image_requirements(
    clients: AwsClients, endpoint: str
) -> None:
    # Given a queue on the moto server
    url = clients.sqs.create_queue(QueueName=f"relay-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    # When the image's environment replays the sample stream to it
    done = subprocess.run(
        [
            str(relay_python()),
            "-P",
            "-m",
            "podwatch_relay",
            "replay",
            str(ROOT / "events/replay/sample-stream.jsonl"),
            "--queue-url",
            url,
            "--cluster-id",
            "prod-eu-1",
        ],
        env=relay_env(**DUMMY_AWS_ENV, AWS_ENDPOINT_URL=endpoint),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    # Then every envelope it says it sent is on the queue (the enroll first)
    received: list[dict[str, Any]] = []
    while batch := clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        received += batch
        for m in batch:
            clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    kinds = [json.loads(m["Body"])["kind"] for m in received]
    assert kinds.count("enroll") == 1
    assert kinds.count("pod") + kinds.count("k8s_event") >= 4, kinds
    assert stats, done.stdout
