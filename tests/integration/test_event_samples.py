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
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.cfn import load_template
from local.lambda_runtime import ROOT, LambdaContext, load_event, load_function_module
from podwatch import telemetry
from podwatch.models import RemoteConfig
from tests.integration.samples import (
    BUS_TARGET,
    CLUSTER_IDS,
    EVENTS,
    EXPECTED,
    FUNCTION_OF,
    PARAMETER,
    STACK,
    Manager,
    check_outcome,
    samples,
    serve_manager,
    subscribe_queue,
)


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


@pytest.fixture
def manager() -> Iterator[Manager]:
    with serve_manager() as state:
        yield state


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
                "FANOUT_QUEUE_URL": p["FanoutQueue"],
                "AUDIT_FILTERED": "each",
                "HISTORY_QUEUE_URL": p["HistoryQueue"],
                "HOOKS_TABLE_NAME": p["HooksTable"],
                "HISTORY_PAGE_URL": "",  # SAM's "" for the optional parameter left empty
            },
            "fanout": {
                "EVENT_BUS_NAME": p["NotificationsBus"],
                "QUARANTINE_QUEUE_URL": p["FanoutDLQ"],
                "MAX_RECEIVE_COUNT": "5",
            },
            "history_writer": {
                "HISTORY_TABLE_NAME": p["HistoryTable"],
                "QUARANTINE_QUEUE_URL": p["HistoryDLQ"],
                "RETENTION_DAYS": "14",
                "HISTORY_MAX_RECEIVES": "10",
            },
            "history": {
                "HISTORY_TABLE_NAME": p["HistoryTable"],
                "RETENTION_DAYS": "14",
                "HISTORY_DEFAULT_CLUSTER": "",
                "HOOKS_TABLE_NAME": p["HooksTable"],
            },
            "deliver": {
                **common,
                **restate,
                "QUARANTINE_QUEUE_URL": p["DeliveriesDLQ"],
                "MAX_RECEIVE_COUNT": "45",
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
            "hooks": {
                "HOOKS_TABLE_NAME": p["HooksTable"],
                "QUARANTINE_QUEUE_URL": p["HooksDLQ"],
                "MAX_RECEIVE_COUNT": "45",
                "KAGENT_BASE_URL": "",
                "A2A_PROTOCOL": "0.3",
                "HOOK_SECRETS_PREFIX": "/podwatch/hooks/",
                "HOOK_CONNECT_TIMEOUT_SECONDS": "1",
                "HOOK_READ_TIMEOUT_SECONDS": "2",
                "RULES_MAX_AGE_SECONDS": "0",
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
            "FanoutQueue": "fanout",
            "FanoutDLQ": "fanout-dlq",
            "HooksDLQ": "hooks-dlq",
            "HistoryQueue": "history",
            "HistoryDLQ": "history-dlq",
        }.items():
            physical[lid] = sqs.create_queue(QueueName=f"{STACK}-{name}")["QueueUrl"]
        physical["HistoryTable"] = f"{STACK}-history"
        history = load_template()["Resources"]["HistoryTable"]["Properties"]  # its keys and index
        dynamodb.create_table(
            TableName=physical["HistoryTable"],
            KeySchema=history["KeySchema"],
            AttributeDefinitions=history["AttributeDefinitions"],
            GlobalSecondaryIndexes=history["GlobalSecondaryIndexes"],
            BillingMode="PAY_PER_REQUEST",
        )
        events = boto3.client("events", region_name="us-east-1")
        physical["NotificationsBus"] = f"{STACK}-notifications"
        events.create_event_bus(Name=physical["NotificationsBus"])
        bus = physical["NotificationsBus"]
        physical[BUS_TARGET] = subscribe_queue(events, sqs, bus, f"{STACK}-subscriber")
        physical["HooksTable"] = f"{STACK}-hooks"
        dynamodb.create_table(
            TableName=physical["HooksTable"],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
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
    # the Globals variable: the stack's own namespace (read when the module builds its Metrics)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", telemetry.metrics_namespace(STACK))
    app = load_function_module(folder, fresh=True)
    app.reset()
    event = load_event(EVENTS / sample)
    try:
        # When the function's handler is invoked with the sample, as `sam local invoke` does
        response = app.lambda_handler(event, LambdaContext())
    finally:
        app.reset()

    # Then it comes to what the table says, and its metrics went out (EMF on stdout)
    check_outcome(
        sample,
        response,
        drain=aws.drain,
        stored_config=aws.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"],
        manager=manager,
        out=capsys.readouterr().out,
        namespace=telemetry.metrics_namespace(STACK),
    )
