"""Every sample event under events/ is invoked through its function's handler, as
`sam local invoke <Fn> -e events/<function>/<file>.json` would (README "Trying one function").

The samples are found by globbing events/<function>/*.json, so a new one cannot be forgotten: a
sample without an entry in EXPECTED fails, and so does an entry without a sample. The handlers run
in-process on moto (queues, tables, the remote-config parameter, the deliveries event source
mapping) with the environment variables the template gives each function, and a loopback HTTP
server stands in for the Restate ingress (the manager: 200 to every call, a remote config to
GetRemoteConfig). The cases behind each sample are tested in depth elsewhere (test_processor_moto,
test_processor_incidents, test_deliver_http, test_deliver_restate, test_config_sync); here each
sample is invoked end to end and its outcome checked against the small table below.
"""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.cfn import load_template
from local.lambda_runtime import ROOT, LambdaContext, load_event, load_function_module
from podwatch.models import RemoteConfig

EVENTS = ROOT / "events"
STACK = "podwatch-samples"
PARAMETER = f"/{STACK}/remote-config"
#: the stack's clusters (ClusterIds): what the scheduled config sync covers
CLUSTER_IDS = "prod-eu-1"
#: what the manager answers to GetRemoteConfig: not the defaults, so a sync has something to write
MANAGER_CONFIG = RemoteConfig(version="manager-7", batch_size=50, batch_flush_seconds=10)
#: the template's logical id of the function behind each events/ folder
FUNCTION_OF = {
    "processor": "ProcessorFunction",
    "deliver": "DeliverFunction",
    "config_sync": "ConfigSyncFunction",
}


@dataclass(frozen=True)
class Expect:
    """What invoking a sample comes to."""

    #: SQS functions: records returned as batch item failures
    failures: int = 0
    #: processor: messages sent to the deliveries queue, by kind (a Notification's event type, or
    #: a control command's kind)
    forwarded: dict[str, int] = field(default_factory=dict)
    #: deliver: what the manager received, by handler (NotifyPodEvents: notifications; Enroll: calls)
    received: dict[str, int] = field(default_factory=dict)
    #: messages in the function's quarantine queue (its DLQ), by their `reason` attribute
    quarantined: dict[str, int] = field(default_factory=dict)
    #: config sync: entries of the returned summary
    summary: dict[str, Any] = field(default_factory=dict)


EXPECTED: dict[str, Expect] = {
    "processor/batch.json": Expect(
        forwarded={"crash-loop": 1, "oom-kill": 1, "evicted": 1, "probe-failed": 1, "image-pull": 1}
    ),
    "processor/poison.json": Expect(
        forwarded={"crash-loop": 1, "unschedulable": 1},
        quarantined={"malformed": 2, "unknown_kind": 1, "unsupported_schema_version": 1},
    ),
    # the first enroll of a relay version goes on to the manager through the deliveries queue
    "processor/enroll.json": Expect(forwarded={"enroll": 1}),
    # three replicas crash-loop: an incident each (the default dedup scope is the pod), the repeat
    # is deduplicated, and `recovered` is not enabled by default (filtered)
    "processor/lifecycle.json": Expect(forwarded={"crash-loop": 3}),
    "deliver/batch.json": Expect(received={"NotifyPodEvents": 5}),
    "deliver/enroll.json": Expect(received={"Enroll": 1, "NotifyPodEvents": 1}),
    "deliver/poison.json": Expect(received={"NotifyPodEvents": 3}, quarantined={"malformed": 5}),
    "config_sync/schedule.json": Expect(
        summary={
            "clusters": ["prod-eu-1"],
            "config_version": "manager-7",
            "parameter_written": True,
            "mapping_updated": True,
            "mapping": {"batch_size": 50, "batching_window_seconds": 10},
            "rejected": {},
            "fetch_failed": {},
            "silent": ["prod-eu-1"],  # nothing heard of it in this empty clusters table
        }
    ),
    "config_sync/sync-now.json": Expect(
        summary={
            "clusters": ["prod-eu-1", "staging-us-2"],
            "config_version": "manager-7",
            "parameter_written": True,
            "rejected": {},
            "fetch_failed": {},
            "divergent": [],
        }
    ),
}


def samples() -> list[str]:
    return sorted(str(p.relative_to(EVENTS)) for p in EVENTS.glob("*/*.json"))


def test_every_sample_has_an_expectation_and_a_function() -> None:
    found = samples()
    assert found, "no samples under events/"
    assert set(found) == set(EXPECTED), (
        f"samples without an entry in EXPECTED: {sorted(set(found) - set(EXPECTED))}; "
        f"entries without a sample: {sorted(set(EXPECTED) - set(found))}"
    )
    assert not [p for p in EVENTS.rglob("*.json") if p.parent.parent != EVENTS], "samples nest one level deep"
    template = load_template()["Resources"]
    for folder in {Path(s).parts[0] for s in found}:
        assert folder in FUNCTION_OF, f"events/{folder}/ is the samples of no function"
        function = template[FUNCTION_OF[folder]]
        assert Path(function["Properties"]["CodeUri"]).name == folder, folder


def test_the_readme_shows_the_command_of_every_sample() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = {
        (fn, path)
        for fn, path in re.findall(r"^sam local invoke (\w+)\s+-e (events/\S+)", readme, flags=re.M)
    }
    wanted = {(FUNCTION_OF[Path(s).parts[0]], f"events/{s}") for s in samples()}
    assert commands == wanted, f"missing: {sorted(wanted - commands)}; extra: {sorted(commands - wanted)}"


# --------------------------------------------------------------------------- the manager


@dataclass
class Manager:
    """A loopback HTTP server standing in for the Restate ingress (the reference manager's paths)."""

    url: str = ""
    #: (handler, cluster id, request body) of every call
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def received(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for handler, _cluster, body in self.calls:
            out[handler] += len(body["events"]) if handler == "NotifyPodEvents" else 1
        return dict(out)


@pytest.fixture
def manager() -> Iterator[Manager]:
    state = Manager()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            _, _object, cluster, handler = self.path.split("/")
            body = json.loads(raw) if raw else None
            state.calls.append((handler, cluster, body))
            if handler == "GetRemoteConfig":
                answer = MANAGER_CONFIG.to_json()
            elif handler == "NotifyPodEvents":
                answer = json.dumps({"received": len(body["events"]), "new": len(body["events"])})
            else:
                answer = json.dumps({"new": True})
            data = answer.encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# --------------------------------------------------------------------------- the AWS side


@dataclass
class Aws:
    sqs: Any
    ssm: Any
    lambda_client: Any
    #: the template's logical id -> the moto resource's name, URL or id
    physical: dict[str, str]

    def drain(self, lid: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.physical[lid], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            )
            messages = answer.get("Messages", [])
            if not messages:
                return out
            out.extend(messages)
            for m in messages:
                self.sqs.delete_message(QueueUrl=self.physical[lid], ReceiptHandle=m["ReceiptHandle"])

    def environment(self, folder: str, manager: Manager) -> dict[str, str]:
        """The function's environment, as the template sets it (names checked against it)."""
        p = self.physical
        restate = {
            "RESTATE_INGRESS_URL": manager.url,
            "RESTATE_CONNECT_TIMEOUT_SECONDS": "1",
            "RESTATE_READ_TIMEOUT_SECONDS": "2",
            "RESTATE_TOKEN_PARAMETER_NAME": "",  # SAM's "" for the optional parameter left empty
        }
        common = {"CONFIG_PARAMETER_NAME": PARAMETER, "CONFIG_MAX_AGE_SECONDS": "0"}
        env = {
            "processor": {
                **common,
                "DEDUP_TABLE_NAME": p["DedupTable"],
                "METADATA_TABLE_NAME": p["MetadataTable"],
                "CLUSTERS_TABLE_NAME": p["ClustersTable"],
                "DELIVERIES_QUEUE_URL": p["DeliveriesQueue"],
                "QUARANTINE_QUEUE_URL": p["PodEventsDLQ"],
            },
            "deliver": {
                **common,
                **restate,
                "QUARANTINE_QUEUE_URL": p["DeliveriesDLQ"],
                "RESTATE_NOTIFY_PATH": "/PodwatchManager/{cluster_id}/NotifyPodEvents",
                "RESTATE_ENROLL_PATH": "/PodwatchManager/{cluster_id}/Enroll",
            },
            "config_sync": {
                "CONFIG_PARAMETER_NAME": PARAMETER,
                **restate,
                "CLUSTER_IDS": CLUSTER_IDS,
                "CLUSTERS_TABLE_NAME": p["ClustersTable"],
                "DELIVERIES_EVENT_SOURCE_MAPPING_ID": p["DeliverFunctionDeliveries"],
                "SILENT_AFTER_SECONDS": "900",
                "RESTATE_CONFIG_PATH": "/PodwatchManager/{cluster_id}/GetRemoteConfig",
            },
        }[folder]
        return {"POWERTOOLS_SERVICE_NAME": f"podwatch-{folder.replace('_', '-')}", **env}


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        ssm = boto3.client("ssm", region_name="us-east-1")
        lambda_client = boto3.client("lambda", region_name="us-east-1")
        iam = boto3.client("iam", region_name="us-east-1")
        physical: dict[str, str] = {}
        for lid, name in {
            "PodEventsDLQ": "pod-events-dlq",
            "DeliveriesQueue": "deliveries",
            "DeliveriesDLQ": "deliveries-dlq",
        }.items():
            physical[lid] = sqs.create_queue(QueueName=f"{STACK}-{name}")["QueueUrl"]
        for lid, name in {
            "DedupTable": "dedup",
            "MetadataTable": "metadata",
            "ClustersTable": "clusters",
        }.items():
            physical[lid] = f"{STACK}-{name}"
            dynamodb.create_table(
                TableName=physical[lid],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        ssm.put_parameter(Name=PARAMETER, Value=RemoteConfig().to_json(), Type="String")
        # the deliveries event source mapping config sync retunes (the template's 25 / 5 s)
        role = iam.create_role(RoleName=f"{STACK}-deliver", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lambda_client.create_function(
            FunctionName=f"{STACK}-deliver",
            Runtime="python3.13",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": _dummy_zip()},
        )
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=physical["DeliveriesQueue"], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        physical["DeliverFunctionDeliveries"] = lambda_client.create_event_source_mapping(
            EventSourceArn=queue_arn,
            FunctionName=f"{STACK}-deliver",
            BatchSize=25,
            MaximumBatchingWindowInSeconds=5,
        )["UUID"]
        yield Aws(sqs, ssm, lambda_client, physical)


def test_the_environments_are_the_templates(aws: Aws, manager: Manager) -> None:
    template = load_template()
    for folder, lid in FUNCTION_OF.items():
        variables = template["Resources"][lid]["Properties"]["Environment"]["Variables"]
        assert set(aws.environment(folder, manager)) == set(variables), folder


# --------------------------------------------------------------------------- every sample


def forwarded_kinds(messages: list[dict[str, Any]]) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    for message in messages:
        body = json.loads(message["Body"])
        kinds[body["kind"] if "kind" in body else body["event_type"]] += 1
    return dict(kinds)


def emf_namespaces(out: str) -> set[str]:
    """The namespaces of the EMF blobs in a handler's output (none: no metrics went out)."""
    return {
        directive["Namespace"]
        for line in out.splitlines()
        if line.startswith("{") and '"_aws"' in line
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]
    }


def quarantine_reasons(messages: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(m["MessageAttributes"]["reason"]["StringValue"] for m in messages))


@pytest.mark.parametrize("sample", samples())
def test_sample(
    sample: str,
    aws: Aws,
    manager: Manager,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expect = EXPECTED.get(sample)
    assert expect is not None, (
        f"events/{sample} has no entry in EXPECTED (tests/integration/test_event_samples.py)"
    )
    folder = Path(sample).parts[0]
    for name, value in aws.environment(folder, manager).items():
        monkeypatch.setenv(name, value)
    app = load_function_module(folder)
    app.reset()
    event = load_event(EVENTS / sample)
    try:
        # When the function's handler is invoked with the sample, as `sam local invoke` does
        response = app.lambda_handler(event, LambdaContext())
    finally:
        app.reset()

    # Then it comes to what the table says
    if folder == "config_sync":
        assert {key: response[key] for key in expect.summary} == expect.summary
        stored = aws.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"]
        assert RemoteConfig.from_json(stored) == MANAGER_CONFIG
        assert emf_namespaces(capsys.readouterr().out) == {"Podwatch"}
        return
    assert len(response["batchItemFailures"]) == expect.failures
    if folder == "processor":
        assert forwarded_kinds(aws.drain("DeliveriesQueue")) == expect.forwarded
        assert quarantine_reasons(aws.drain("PodEventsDLQ")) == expect.quarantined
        assert manager.calls == []
    else:
        assert manager.received() == expect.received
        assert quarantine_reasons(aws.drain("DeliveriesDLQ")) == expect.quarantined
        # every notification the sample carries validly reached the manager exactly once
        sent = [
            n["notification_id"]
            for _h, _c, body in manager.calls
            if body and "events" in body
            for n in body["events"]
        ]
        assert len(sent) == len(set(sent))
    # and the invocation's metrics went out (EMF on stdout), in the stack's namespace
    assert emf_namespaces(capsys.readouterr().out) == {"Podwatch"}
