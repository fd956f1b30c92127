"""template.yaml and samconfig.toml, read the way the local stack reads them (local/cfn.py), checked
against the rules an operator relies on and against the names docs/internals.md fixes."""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bench import processor as processor_bench
from local.cfn import ROOT, CfnError, failed_rules, load_template, parameter_values, parse_template
from podwatch.models import MAX_MESSAGE_BYTES, RemoteConfig

INTERNALS = ROOT / "docs" / "internals.md"
SAMCONFIG = ROOT / "samconfig.toml"

#: Which column of the environment table in docs/internals.md describes which function.
FUNCTION_COLUMNS = {
    "ProcessorFunction": "processor",
    "DeliverFunction": "deliver",
    "FanoutFunction": "fanout",
    "HooksFunction": "hooks",
}
#: Set in Globals for every function, on top of the table.
GLOBAL_ONLY_VARIABLES = {"LOG_LEVEL"}
#: X-Ray has no resource-level permissions: its write actions are the only ones allowed on "*".
XRAY_WRITE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
#: Lambda's network interfaces in a VPC (the hooks function, conditionally): no resource-level scope either.
VPC_ENI_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}
#: The one prefix grant: a Hook names its secrets, under the stack's HookSecretsPrefix.
PREFIX_GRANT = "${HookSecretsPrefix}*"
SQS_DEFAULT_RETENTION = 345600


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id].get("Properties", {})
    return properties


def function_setting(template: dict[str, Any], logical_id: str, name: str) -> Any:
    return props(template, logical_id).get(name, template["Globals"]["Function"].get(name))


def sqs_events(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for fid in resources_of(template, "AWS::Serverless::Function"):
        for name, event in props(template, fid).get("Events", {}).items():
            if event["Type"] == "SQS":
                yield fid, name, event["Properties"]


def getatt_target(value: Any) -> str:
    assert isinstance(value, dict), value
    assert "Fn::GetAtt" in value, value
    resource, attribute = value["Fn::GetAtt"]
    assert attribute == "Arn"
    return str(resource)


def parameter_max(template: dict[str, Any], value: Any) -> int:
    """A literal, or the largest value a Ref'd parameter may take."""
    if isinstance(value, dict) and "Ref" in value:
        return int(template["Parameters"][value["Ref"]]["MaxValue"])
    return int(value)


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def if_branches(value: Any) -> list[Any]:
    """Both outcomes of Fn::If items, so a conditional resource is checked either way."""
    out: list[Any] = []
    for item in as_list(value):
        if isinstance(item, dict) and "Fn::If" in item:
            out += if_branches(item["Fn::If"][1]) + if_branches(item["Fn::If"][2])
        elif item != {"Ref": "AWS::NoValue"}:
            out.append(item)
    return out


def internals_environment() -> dict[str, dict[str, str | None]]:
    """docs/internals.md's environment table: column -> {variable: documented value or None}."""
    lines = INTERNALS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| variable |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    table: dict[str, dict[str, str | None]] = {column: {} for column in header[1:]}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        for column, cell in zip(header[1:], cells[1:], strict=False):
            if cell.startswith("✓"):
                table[column].update(dict.fromkeys(names))
            elif cell.startswith("`"):
                table[column].update(dict.fromkeys(names, cell.strip("`")))
    return table


# --------------------------------------------------------------------------- the loader


def test_short_form_tags_load_as_long_forms() -> None:
    # Given a template written with every short form the project may use
    text = """
Conditions:
  C: !Not [!Equals [!Ref P, ""]]
Resources:
  R:
    Type: T
    Properties:
      A: !GetAtt Q.Arn
      B: !Sub "${AWS::StackName}-x"
      C: !If [C, !Select [0, !Split [",", "a,b"]], !Join ["-", [a, b]]]
      D: !Sub ["${X}", {X: !GetAtt [Q, QueueUrl]}]
      E: 2010-09-09
"""
    # When it is parsed
    template = parse_template(text)
    # Then each tag is its long form, and dates stay strings as CloudFormation reads them
    assert template["Conditions"]["C"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]}
    p = template["Resources"]["R"]["Properties"]
    assert p["A"] == {"Fn::GetAtt": ["Q", "Arn"]}
    assert p["B"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert p["C"] == {
        "Fn::If": [
            "C",
            {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]},
            {"Fn::Join": ["-", ["a", "b"]]},
        ]
    }
    assert p["D"] == {"Fn::Sub": ["${X}", {"X": {"Fn::GetAtt": ["Q", "QueueUrl"]}}]}
    assert p["E"] == "2010-09-09"


def refusal(template: dict[str, Any], overrides: dict[str, str]) -> str | None:
    """Why CloudFormation refuses a stack with these overrides before creating anything (a
    parameter's constraint, else the Rules that fail), or None."""
    try:
        values = parameter_values(template, overrides)
    except CfnError as exc:
        return str(exc)
    return ", ".join(failed_rules(template, values)) or None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"Stage": "staging"}, "not one of"),
        ({"RestateIngressUrl": "http://"}, "does not match"),
        ({"RestateIngressUrl": "ftp://x"}, "does not match"),
        ({"RestateTokenParameterName": "no-leading-slash"}, "does not match"),
        ({"ProcessorBatchSize": "101", "ProcessorBatchingWindowSeconds": "1"}, "above 100"),
        ({"ProcessorBatchSize": "0"}, "below 1"),
        ({"ProcessorBatchingWindowSeconds": "21"}, "above 20"),
        ({"ProcessorBatchingWindowSeconds": "-1"}, "below 0"),
        # Lambda's rule for SQS event sources: more than 10 records only with a batching window
        ({"ProcessorBatchSize": "11"}, "ProcessorBatchAboveTenNeedsAWindow"),
        (
            {"ProcessorBatchSize": "100", "ProcessorBatchingWindowSeconds": "0"},
            "ProcessorBatchAboveTenNeedsAWindow",
        ),
        ({"Nope": "1"}, "not in the template"),
    ],
)
def test_parameters_are_checked_like_cloudformation(
    template: dict[str, Any], overrides: dict[str, str], message: str
) -> None:
    reason = refusal(template, {"Stage": "local", **overrides})
    assert reason is not None
    assert message in reason


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # the defaults: 10 records, no window
        {"ProcessorBatchSize": "1"},
        {"ProcessorBatchSize": "10", "ProcessorBatchingWindowSeconds": "0"},
        {"ProcessorBatchSize": "10", "ProcessorBatchingWindowSeconds": "20"},
        {"ProcessorBatchSize": "11", "ProcessorBatchingWindowSeconds": "1"},
        {"ProcessorBatchSize": "100", "ProcessorBatchingWindowSeconds": "1"},
        {"ProcessorBatchSize": "100", "ProcessorBatchingWindowSeconds": "20"},
    ],
)
def test_processor_batches_cloudformation_accepts(
    template: dict[str, Any], overrides: dict[str, str]
) -> None:
    assert refusal(template, {"Stage": "local", **overrides}) is None


# --------------------------------------------------------------------------- names


def test_logical_ids_types_and_names_follow_internals(template: dict[str, Any]) -> None:
    expected = {
        "PodEventsQueue": ("AWS::SQS::Queue", "QueueName", "${AWS::StackName}-pod-events"),
        "PodEventsDLQ": ("AWS::SQS::Queue", "QueueName", "${AWS::StackName}-pod-events-dlq"),
        "DeliveriesQueue": ("AWS::SQS::Queue", "QueueName", "${AWS::StackName}-deliveries"),
        "DeliveriesDLQ": ("AWS::SQS::Queue", "QueueName", "${AWS::StackName}-deliveries-dlq"),
        "DedupTable": ("AWS::DynamoDB::Table", "TableName", "${AWS::StackName}-dedup"),
        "MetadataTable": ("AWS::DynamoDB::Table", "TableName", "${AWS::StackName}-metadata"),
        "RemoteConfigParameter": ("AWS::SSM::Parameter", "Name", "/${AWS::StackName}/remote-config"),
    }
    for lid, (kind, name_property, name) in expected.items():
        assert template["Resources"][lid]["Type"] == kind
        assert props(template, lid)[name_property] == {"Fn::Sub": name}
    assert props(template, "ProcessorFunction")["CodeUri"] == "functions/processor"
    assert props(template, "DeliverFunction")["CodeUri"] == "functions/deliver"
    for fid in ("ProcessorFunction", "DeliverFunction"):
        assert props(template, fid)["Handler"] == "app.lambda_handler"
        assert (ROOT / props(template, fid)["CodeUri"]).is_dir()
    assert props(template, "PodwatchLayer")["ContentUri"] == "layers/podwatch"
    assert (ROOT / "layers/podwatch/podwatch/__init__.py").is_file()


def test_function_environment_names_equal_internals(template: dict[str, Any]) -> None:
    documented = internals_environment()
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    for fid, column in FUNCTION_COLUMNS.items():
        own = props(template, fid)["Environment"]["Variables"]
        merged = {**globals_env, **own}
        assert set(merged) == set(documented[column]) | GLOBAL_ONLY_VARIABLES, fid
        for name, value in documented[column].items():
            if value is not None:
                actual = merged[name]
                actual = actual["Fn::Sub"] if isinstance(actual, dict) and "Fn::Sub" in actual else actual
                assert actual == value, f"{fid}.{name}"


def test_restate_defaults_are_the_documented_ones(template: dict[str, Any]) -> None:
    env = props(template, "DeliverFunction")["Environment"]["Variables"]
    assert env["RESTATE_NOTIFY_PATH"] == "/PodwatchManager/{cluster_id}/NotifyPodEvents"
    assert env["RESTATE_ENROLL_PATH"] == "/PodwatchManager/{cluster_id}/Enroll"
    assert (env["RESTATE_CONNECT_TIMEOUT_SECONDS"], env["RESTATE_READ_TIMEOUT_SECONDS"]) == ("2", "10")
    assert env["RESTATE_INGRESS_URL"] == {"Ref": "RestateIngressUrl"}
    # no loopback default: a stack of any Stage but local without a URL is refused by a Rule
    assert template["Parameters"]["RestateIngressUrl"]["Default"] == ""


@pytest.mark.parametrize(
    ("stage", "url", "refused"),
    [
        ("prod", "", True),
        ("dev", "", True),
        ("sandbox", "", True),
        ("prod", "https://restate.example.com:8080", False),
        ("local", "", False),
    ],
)
def test_a_deployed_stack_without_a_restate_url_is_refused(
    template: dict[str, Any], stage: str, url: str, refused: bool
) -> None:
    # Given the template's Rules, evaluated as CloudFormation does before creating anything
    values = parameter_values(template, {"Stage": stage, "RestateIngressUrl": url})
    # Then only a non-local stack without a URL is refused
    assert failed_rules(template, values) == (["RestateIngressUrlRequired"] if refused else [])


def test_every_sqs_event_source_caps_its_concurrency_by_a_parameter(template: dict[str, Any]) -> None:
    caps = {fid: props["ScalingConfig"]["MaximumConcurrency"] for fid, _, props in sqs_events(template)}
    assert caps == {
        "ProcessorFunction": {"Ref": "ProcessorMaximumConcurrency"},
        "DeliverFunction": {"Ref": "DeliverMaximumConcurrency"},
        "FanoutFunction": 2,  # a side path, not a tuning knob
        "HooksFunction": {"Ref": "HooksMaximumConcurrency"},
        "HistoryWriterFunction": {"Ref": "HistoryWriterMaximumConcurrency"},
    }
    for parameter in (caps["ProcessorFunction"], caps["DeliverFunction"], caps["HistoryWriterFunction"]):
        spec = template["Parameters"][parameter["Ref"]]
        assert spec["MinValue"] == 2, "Lambda's minimum for MaximumConcurrency"
        assert 2 <= spec["Default"] <= spec["MaxValue"] == 1000


# --------------------------------------------------------------------------- queues


def test_every_sqs_event_source_reports_batch_item_failures(template: dict[str, Any]) -> None:
    events = list(sqs_events(template))
    assert {fid for fid, _, _ in events} == {*FUNCTION_COLUMNS, "HistoryWriterFunction"}
    for fid, name, properties in events:
        assert properties.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], f"{fid}.{name}"


def test_every_queue_but_a_dlq_redrives_to_a_dlq(template: dict[str, Any]) -> None:
    queues = resources_of(template, "AWS::SQS::Queue")
    dlqs = {
        getatt_target(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    assert dlqs == {"PodEventsDLQ", "DeliveriesDLQ", "FanoutDLQ", "HooksDLQ", "HistoryDLQ"}
    receives = {"DeliveriesQueue": {"Ref": "DeliveriesMaxReceiveCount"}, "HooksQueue": 45, "HistoryQueue": 10}
    for lid, queue in queues.items():
        p = queue["Properties"]
        if lid in dlqs:
            assert "RedrivePolicy" not in p, f"{lid} is a DLQ and must not redrive further"
            assert p["MessageRetentionPeriod"] == 14 * 24 * 3600, lid
        else:
            expected = receives.get(lid, 5)
            assert p["RedrivePolicy"]["maxReceiveCount"] == expected, lid
            dlq = getatt_target(p["RedrivePolicy"]["deadLetterTargetArn"])
            # a message keeps its age in the DLQ: the DLQ must keep it longer than the source did
            dlq_retention = props(template, dlq)["MessageRetentionPeriod"]
            assert dlq_retention > p.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION), lid


def test_queues_set_maximum_message_size_explicitly(template: dict[str, Any]) -> None:
    # SQS's default is now 1 MiB; the contract (and the relay) stop at 256 KiB
    for lid, queue in resources_of(template, "AWS::SQS::Queue").items():
        assert queue["Properties"].get("MaximumMessageSize") == MAX_MESSAGE_BYTES == 262144, lid


def test_visibility_timeout_covers_six_function_timeouts(template: dict[str, Any]) -> None:
    for fid, name, properties in sqs_events(template):
        queue = getatt_target(properties["Queue"])
        timeout = int(function_setting(template, fid, "Timeout"))
        window = parameter_max(template, properties.get("MaximumBatchingWindowInSeconds", 0))
        visibility = int(props(template, queue)["VisibilityTimeout"])
        assert visibility >= 6 * timeout + window, f"{fid}.{name}: {queue} {visibility}s"


def test_batch_parameters_default_to_the_remote_config(template: dict[str, Any]) -> None:
    defaults = RemoteConfig()
    parameters = template["Parameters"]
    assert parameters["DeliveriesBatchSize"]["Default"] == defaults.batch_size
    assert parameters["DeliveriesBatchingWindowSeconds"]["Default"] == defaults.batch_flush_seconds
    # the processor as before the window existed: 10 records, invoked as soon as they are there
    assert parameters["ProcessorBatchSize"]["Default"] == 10
    assert parameters["ProcessorBatchingWindowSeconds"]["Default"] == 0
    # more than 10 records per batch needs a batching window of at least one second: always for the
    # deliveries, and for the processor the Rule holds exactly the sizes allowed without one
    assert parameters["DeliveriesBatchingWindowSeconds"]["MinValue"] >= 1
    assert parameters["ProcessorBatchSize"]["MaxValue"] == 100
    rule = template["Rules"]["ProcessorBatchAboveTenNeedsAWindow"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "ProcessorBatchingWindowSeconds"}, "0"]}
    ((assertion,),) = [rule["Assertions"]]
    sizes, size = assertion["Assert"]["Fn::Contains"]
    assert size == {"Ref": "ProcessorBatchSize"}
    assert sizes == [str(n) for n in range(parameters["ProcessorBatchSize"]["MinValue"], 11)]
    assert "ProcessorBatchingWindowSeconds of at least 1" in assertion["AssertDescription"]


@pytest.mark.parametrize("records", [10, processor_bench.BATCH])
def test_the_processor_bench_names_the_parameters_of_each_batch_it_measures(
    template: dict[str, Any], records: int
) -> None:
    # Given the parameters the bench prints for a batch of `records`
    overrides = dict(item.split("=") for item in processor_bench.deployed_as(records).split())
    # Then a stack may be deployed with them, and it gives the processor that many records at most
    assert refusal(template, {"Stage": "local", **overrides}) is None
    assert parameter_values(template, overrides)["ProcessorBatchSize"] == str(records)
    if records == 10:  # "the template's defaults"
        assert parameter_values(template, overrides) == parameter_values(template, {})


def test_the_processor_event_source_takes_both_batch_parameters(template: dict[str, Any]) -> None:
    ((_, _, pod_events),) = [e for e in sqs_events(template) if e[0] == "ProcessorFunction"]
    assert pod_events["BatchSize"] == {"Ref": "ProcessorBatchSize"}
    assert pod_events["MaximumBatchingWindowInSeconds"] == {"Ref": "ProcessorBatchingWindowSeconds"}
    window = template["Parameters"]["ProcessorBatchingWindowSeconds"]
    assert (window["MinValue"], window["MaxValue"]) == (0, 20)
    # the visibility timeout covers the largest window (test_visibility_timeout_covers_six_function_timeouts)
    assert props(template, "PodEventsQueue")["VisibilityTimeout"] == 6 * 30 + 20


# --------------------------------------------------------------------------- state


def test_the_time_index_holds_the_keys_and_what_the_list_filters_read(template: dict[str, Any]) -> None:
    from podwatch import history, historyapi

    (index,) = props(template, "HistoryTable")["GlobalSecondaryIndexes"]
    assert index["IndexName"] == history.TIME_INDEX
    assert index["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": list(history.TIME_INDEX_ATTRIBUTES),
    }
    # every attribute a list filter names is in the index (a filter on a missing one matches nothing)
    every = {"start": "", "namespace": "ns", "kind": "pod", "name": "n", "reason": "r", "eventType": "x"}
    names = set()
    for event_type in ("crash-loop", "MODIFIED"):
        where = historyapi.list_filter({**every, "eventType": event_type}, datetime.now(UTC), "c")
        names |= set(where.names.values())
    assert names <= {"pk", "sk", "tk", *history.TIME_INDEX_ATTRIBUTES}


@pytest.mark.parametrize(
    ("function", "queue"),
    [
        ("DeliverFunction", "DeliveriesQueue"),
        ("FanoutFunction", "FanoutQueue"),
        ("HooksFunction", "HooksQueue"),
    ],
)
def test_a_function_quarantining_at_the_last_receive_knows_its_queues_max_receive_count(
    template: dict[str, Any], function: str, queue: str
) -> None:
    # the function dead-letters a record itself at this receive, with the reason; SQS would move it bare
    told = props(template, function)["Environment"]["Variables"]["MAX_RECEIVE_COUNT"]
    assert str(told) == str(props(template, queue)["RedrivePolicy"]["maxReceiveCount"])
    (source,) = props(template, function)["Events"].values()
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}


def test_history_pitr_is_a_parameter_off_by_default(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["HistoryPointInTimeRecovery"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["false", "true"])
    pitr = props(template, "HistoryTable")["PointInTimeRecoverySpecification"]
    assert pitr == {"PointInTimeRecoveryEnabled": {"Fn::If": ["HistoryPitr", True, False]}}
    assert template["Conditions"]["HistoryPitr"] == {
        "Fn::Equals": [{"Ref": "HistoryPointInTimeRecovery"}, "true"]
    }


def test_queues_and_table_are_encrypted_at_rest(template: dict[str, Any]) -> None:
    for lid, queue in resources_of(template, "AWS::SQS::Queue").items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, lid
    for lid, table in resources_of(template, "AWS::DynamoDB::Table").items():
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True, lid


@pytest.mark.parametrize(("table", "ttl"), [("DedupTable", "purge_at"), ("MetadataTable", "expires_at")])
def test_tables_expire_items_and_keep_backups(template: dict[str, Any], table: str, ttl: str) -> None:
    p = props(template, table)
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": ttl, "Enabled": True}
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_processor_is_told_the_metadata_table(template: dict[str, Any]) -> None:
    env = props(template, "ProcessorFunction")["Environment"]["Variables"]
    assert env["METADATA_TABLE_NAME"] == {"Ref": "MetadataTable"}
    assert env["DEDUP_TABLE_NAME"] == {"Ref": "DedupTable"}
    assert template["Outputs"]["MetadataTableName"]["Value"] == {"Ref": "MetadataTable"}


def test_remote_config_parameter_defaults_to_the_model_defaults(template: dict[str, Any]) -> None:
    p = props(template, "RemoteConfigParameter")
    assert p["Type"] == "String"
    assert p["Value"] == RemoteConfig().to_json()
    assert RemoteConfig.from_json(p["Value"]) == RemoteConfig()


# --------------------------------------------------------------------------- code


def test_runtime_and_layer_build_match_the_test_interpreter(template: dict[str, Any]) -> None:
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert template["Globals"]["Function"]["Runtime"] == runtime
    layer = template["Resources"]["PodwatchLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == runtime
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    for fid in resources_of(template, "AWS::Serverless::Function"):
        assert function_setting(template, fid, "Runtime") == runtime, fid
        architectures = function_setting(template, fid, "Architectures")
        assert architectures == layer["Properties"]["CompatibleArchitectures"] == ["arm64"], fid
        assert layer["Metadata"]["BuildArchitecture"] == architectures[0]
        assert {"Ref": "PodwatchLayer"} in function_setting(template, fid, "Layers"), fid
        assert function_setting(template, fid, "Tracing") == "Active"


def test_every_function_has_a_log_group_with_retention(template: dict[str, Any]) -> None:
    for fid in resources_of(template, "AWS::Serverless::Function"):
        log_group = props(template, fid)["LoggingConfig"]["LogGroup"]["Ref"]
        assert template["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup"
        assert props(template, log_group).get("RetentionInDays") == {"Ref": "LogRetentionDays"}, fid


# --------------------------------------------------------------------------- IAM


def test_functions_use_template_roles_so_sam_adds_no_managed_policies(template: dict[str, Any]) -> None:
    # A SAM-generated role would get AWSLambdaSQSQueueExecutionRole & co., whose resources are "*".
    for fid in resources_of(template, "AWS::Serverless::Function"):
        role = getatt_target(props(template, fid)["Role"])
        assert template["Resources"][role]["Type"] == "AWS::IAM::Role", fid
        assert "Policies" not in props(template, fid), f"{fid}: policies belong on {role}"
    for lid, resource in resources_of(template, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in resource["Properties"], lid


def test_no_iam_statement_grants_a_wildcard(template: dict[str, Any]) -> None:
    statements = [node for node in walk(template) if isinstance(node, dict) and "Effect" in node]
    assert len(statements) > 10
    for statement in statements:
        assert "NotAction" not in statement, statement
        assert "NotResource" not in statement, statement
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), statement
        if "Resource" in statement:  # trust policies name a Principal instead
            resources = if_branches(statement["Resource"])
            if "*" in resources:
                assert set(actions) <= XRAY_WRITE_ACTIONS | VPC_ENI_ACTIONS, f"'*' resource for {actions}"
            for resource in resources:
                text = str(resource.get("Fn::Sub", "")) if isinstance(resource, dict) else ""
                if "*" in text:
                    assert text.endswith(PREFIX_GRANT), f"a wildcard in {text}"
                    assert set(actions) <= {"ssm:GetParameter", "secretsmanager:GetSecretValue"}, actions


def test_function_roles_reach_exactly_their_own_resources(template: dict[str, Any]) -> None:
    def grants(role: str) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for policy in props(template, role)["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                for action in as_list(statement["Action"]):
                    out.setdefault(action, []).extend(if_branches(statement["Resource"]))
        return out

    processor = grants("ProcessorFunctionRole")
    assert processor["sqs:ReceiveMessage"] == [{"Fn::GetAtt": ["PodEventsQueue", "Arn"]}]
    assert processor["sqs:SendMessage"] == [
        {"Fn::GetAtt": ["DeliveriesQueue", "Arn"]},
        {"Fn::GetAtt": ["PodEventsDLQ", "Arn"]},
        {"Fn::GetAtt": ["FanoutQueue", "Arn"]},
        {"Fn::GetAtt": ["HistoryQueue", "Arn"]},
    ]
    assert set(processor) >= {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    dedup, metadata = {"Fn::GetAtt": ["DedupTable", "Arn"]}, {"Fn::GetAtt": ["MetadataTable", "Arn"]}
    hooks = {"Fn::GetAtt": ["HooksTable", "Arn"]}
    assert processor["dynamodb:PutItem"] == [metadata, hooks]
    assert processor["dynamodb:GetItem"] == [metadata]
    # Hooks watched in the cluster: a rule put, or deleted with its events (podwatch.hooks.cluster)
    assert processor["dynamodb:DeleteItem"] == processor["dynamodb:Query"] == [hooks]
    clusters = {"Fn::GetAtt": ["ClustersTable", "Arn"]}
    # metadata rows are only ever put whole; dedup and cluster items only ever updated, conditionally
    # (podwatch.dedup, podwatch.control); so are the hooks table's `seen` items (podwatch.hooks.cluster)
    assert processor["dynamodb:UpdateItem"] == [dedup, clusters, hooks]
    assert processor["logs:PutLogEvents"] == [{"Fn::GetAtt": ["ProcessorLogGroup", "Arn"]}]
    assert len(processor["ssm:GetParameter"]) == 1

    deliver = grants("DeliverFunctionRole")
    assert deliver["sqs:ReceiveMessage"] == [{"Fn::GetAtt": ["DeliveriesQueue", "Arn"]}]
    assert deliver["sqs:SendMessage"] == [{"Fn::GetAtt": ["DeliveriesDLQ", "Arn"]}]
    assert not any(action.startswith("dynamodb:") for action in deliver)
    assert deliver["logs:PutLogEvents"] == [{"Fn::GetAtt": ["DeliverLogGroup", "Arn"]}]

    fanout = grants("FanoutFunctionRole")
    assert fanout["sqs:ReceiveMessage"] == [{"Fn::GetAtt": ["FanoutQueue", "Arn"]}]
    assert fanout["sqs:SendMessage"] == [{"Fn::GetAtt": ["FanoutDLQ", "Arn"]}]
    assert fanout["events:PutEvents"] == [{"Fn::GetAtt": ["NotificationsBus", "Arn"]}]
    assert not any(action.startswith(("dynamodb:", "ssm:")) for action in fanout)
    # the token parameter only when one is configured
    assert len(deliver["ssm:GetParameter"]) == 2
    token_grant = props(template, "DeliverFunctionRole")["Policies"][0]["PolicyDocument"]["Statement"]
    conditional = next(s for s in token_grant if s["Action"] == "ssm:GetParameter")["Resource"][1]
    assert conditional["Fn::If"][0] == "HasRestateToken"

    history_table = {"Fn::GetAtt": ["HistoryTable", "Arn"]}
    writer = grants("HistoryWriterFunctionRole")
    assert writer["sqs:ReceiveMessage"] == [{"Fn::GetAtt": ["HistoryQueue", "Arn"]}]
    assert writer["sqs:SendMessage"] == [{"Fn::GetAtt": ["HistoryDLQ", "Arn"]}]
    assert [a for a in writer if a.startswith("dynamodb:")] == ["dynamodb:BatchWriteItem"]
    assert writer["dynamodb:BatchWriteItem"] == [history_table]
    # the API function reads only: Query on the table and its time index, a page's items by key, and
    # Query on the hooks table (the hook calls about a pod, in the timeline page's side panel)
    api = grants("HistoryFunctionRole")
    reads = ["dynamodb:Query", "dynamodb:BatchGetItem"]
    assert [a for a in api if not a.startswith(("logs:", "xray:"))] == reads
    assert api["dynamodb:Query"] == [
        history_table,
        {"Fn::Sub": "${HistoryTable.Arn}/index/by-time"},
        {"Fn::GetAtt": ["HooksTable", "Arn"]},
    ]
    assert api["dynamodb:BatchGetItem"] == [history_table]
    assert not any(action.startswith("dynamodb:") for action in deliver)


# --------------------------------------------------------------------------- samconfig.toml


def test_samconfig_environments_are_complete_and_match_the_template(template: dict[str, Any]) -> None:
    config = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))
    assert config["version"] == 0.1
    stacks, stages, regions = set(), set(), set()
    for env in ("default", "dev", "prod"):
        stacks.add(config[env]["global"]["parameters"]["stack_name"])
        assert config[env]["validate"]["parameters"]["lint"] is True, env
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["capabilities"] == "CAPABILITY_IAM", env
        assert deploy["resolve_s3"] is True, env
        overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"])
        # every override is a template parameter with an allowed value
        parameter_values(template, overrides)
        stages.add(overrides["Stage"])
        regions.add(config[env]["global"]["parameters"].get("region"))
        assert config[env]["global"]["parameters"].get("region"), f"{env} names no region"
    assert len(stacks) == 3
    # stacks apart: each environment its own Stage (tags, alarm topic name); all three name a region
    assert stages == {"sandbox", "dev", "prod"}
    assert None not in regions
