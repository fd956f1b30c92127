"""local/cfn.py against a real moto server (aws-sam-translator, then moto's CreateStack): the
resources template.yaml declares exist with the template's settings, provisioning is idempotent,
and the redrive policy really moves messages."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from local.cfn import AwsClients, CfnError, Provisioned, load_template, parse_template, provision
from podwatch.models import RemoteConfig

pytestmark = pytest.mark.integration

REGION = "us-east-1"
SOURCE_TO_DLQ = {
    "PodEventsQueue": "PodEventsDLQ",
    "DeliveriesQueue": "DeliveriesDLQ",
    "FanoutQueue": "FanoutDLQ",
    "HooksQueue": "HooksDLQ",
    "HistoryQueue": "HistoryDLQ",
}
#: maxReceiveCount by source queue (deliveries: the DeliveriesMaxReceiveCount default, a manager
#: outage of ~3 h, 45 x 240 s; history: HISTORY_MAX_RECEIVES)
MAX_RECEIVES = {
    "PodEventsQueue": 5,
    "DeliveriesQueue": 45,
    "FanoutQueue": 5,
    "HooksQueue": 45,
    "HistoryQueue": 10,
}


@pytest.fixture(scope="module")
def clients() -> Iterator[AwsClients]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield AwsClients.for_endpoint(f"http://{host}:{port}", region=REGION)
    finally:
        server.stop()


@pytest.fixture
def stack_name() -> str:
    """Each test gets its own stack, so tests share the server but no resources."""
    return f"pw-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def stack(clients: AwsClients, stack_name: str) -> Provisioned:
    return provision(load_template(), clients=clients, stack_name=stack_name)


def test_queues_exist_with_the_template_attributes(stack: Provisioned, clients: AwsClients) -> None:
    assert set(stack.queue_urls()) == {*SOURCE_TO_DLQ, *SOURCE_TO_DLQ.values()}
    for source, dlq in SOURCE_TO_DLQ.items():
        attributes = clients.sqs.get_queue_attributes(
            QueueUrl=stack.physical(source), AttributeNames=["All"]
        )["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == stack.arn(dlq)
        assert int(redrive["maxReceiveCount"]) == MAX_RECEIVES[source]
        assert attributes["MaximumMessageSize"] == "262144"
        assert attributes["SqsManagedSseEnabled"] == "true"
        assert int(attributes["VisibilityTimeout"]) >= 180
        dlq_attributes = clients.sqs.get_queue_attributes(
            QueueUrl=stack.physical(dlq), AttributeNames=["All"]
        )["Attributes"]
        assert dlq_attributes["MessageRetentionPeriod"] == str(14 * 24 * 3600)
        assert "RedrivePolicy" not in dlq_attributes
    assert stack.physical("PodEventsQueue").endswith(f"/{stack.stack_name}-pod-events")
    assert (
        stack.arn("DeliveriesDLQ") == f"arn:aws:sqs:{REGION}:123456789012:{stack.stack_name}-deliveries-dlq"
    )


def test_dedup_table_has_ttl_sse_and_backups(stack: Provisioned, clients: AwsClients) -> None:
    name = stack.physical("DedupTable")
    assert name == f"{stack.stack_name}-dedup"
    table = clients.dynamodb.describe_table(TableName=name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert stack.arn("DedupTable") == table["TableArn"]
    ttl = clients.dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    # purge_at: an incident outlives its window (podwatch.dedup.INCIDENT_RETENTION_S)
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "purge_at")
    backups = clients.dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_history_table_has_its_time_index_and_ttl(stack: Provisioned, clients: AwsClients) -> None:
    name = stack.physical("HistoryTable")
    table = clients.dynamodb.describe_table(TableName=name)["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-time"
    # the keys and what the list filters read (podwatch.history.TIME_INDEX_ATTRIBUTES), not the snapshot
    assert index["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["k", "n", "r", "et", "wt", "x"],
    }
    backups = clients.dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"  # the default
    ttl = clients.dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "x")


def test_parameter_holds_the_default_remote_config(stack: Provisioned, clients: AwsClients) -> None:
    name = stack.physical("RemoteConfigParameter")
    assert name == f"/{stack.stack_name}/remote-config"
    parameter = clients.ssm.get_parameter(Name=name)["Parameter"]
    assert parameter["Type"] == "String"
    assert parameter["Value"] == RemoteConfig().to_json()


def test_functions_see_the_provisioned_resources(clients: AwsClients, stack_name: str) -> None:
    # Given overrides for the Restate parameters
    stack = provision(
        load_template(),
        clients=clients,
        stack_name=stack_name,
        parameters={"RestateIngressUrl": "http://127.0.0.1:9999", "RestateTokenParameterName": "/pw/token"},
    )
    # Then each function's environment names this stack's resources and the overrides
    processor = stack.function_environment("ProcessorFunction")
    assert processor["DELIVERIES_QUEUE_URL"] == stack.queue_urls()["DeliveriesQueue"]
    assert processor["QUARANTINE_QUEUE_URL"] == stack.queue_urls()["PodEventsDLQ"]
    assert processor["DEDUP_TABLE_NAME"] == stack.physical("DedupTable")
    assert processor["POWERTOOLS_SERVICE_NAME"] == "podwatch-processor"
    deliver = stack.function_environment("DeliverFunction")
    assert deliver["RESTATE_INGRESS_URL"] == "http://127.0.0.1:9999"
    assert deliver["RESTATE_TOKEN_PARAMETER_NAME"] == "/pw/token"
    assert deliver["QUARANTINE_QUEUE_URL"] == stack.queue_urls()["DeliveriesDLQ"]
    for env in (processor, deliver):
        assert clients.ssm.get_parameter(Name=env["CONFIG_PARAMETER_NAME"])["Parameter"]["Value"]
    # and each event source polls the right queue with the template's settings
    (pod_events,) = stack.event_sources("ProcessorFunction")
    assert (pod_events.queue_logical_id, pod_events.batch_size) == ("PodEventsQueue", 10)
    assert pod_events.queue_url == stack.physical("PodEventsQueue")
    assert pod_events.report_batch_item_failures
    (deliveries,) = stack.event_sources("DeliverFunction")
    assert deliveries.queue_arn == stack.arn("DeliveriesQueue")
    assert (deliveries.batch_size, deliveries.maximum_batching_window_seconds) == (25, 5)
    assert deliveries.report_batch_item_failures
    functions = stack.functions()
    assert {fid: (f.code_uri, f.handler, f.timeout) for fid, f in functions.items()} == {
        "ProcessorFunction": ("functions/processor", "app.lambda_handler", 30),
        "DeliverFunction": ("functions/deliver", "app.lambda_handler", 30),
        "ConfigSyncFunction": ("functions/config_sync", "app.lambda_handler", 60),
        "FanoutFunction": ("functions/fanout", "app.lambda_handler", 30),
        "HooksFunction": ("functions/hooks", "app.lambda_handler", 30),
        "HistoryWriterFunction": ("functions/history_writer", "app.lambda_handler", 30),
        "HistoryFunction": ("functions/history", "app.lambda_handler", 20),
    }
    hooks = stack.function_environment("HooksFunction")
    assert hooks["HOOKS_TABLE_NAME"] == stack.physical("HooksTable")
    assert hooks["QUARANTINE_QUEUE_URL"] == stack.queue_urls()["HooksDLQ"]
    assert processor["HISTORY_QUEUE_URL"] == stack.physical("HistoryQueue")
    history = stack.function_environment("HistoryFunction")
    assert history["HISTORY_TABLE_NAME"] == stack.physical("HistoryTable")
    (writes,) = stack.event_sources("HistoryWriterFunction")
    assert (writes.queue_logical_id, writes.batch_size) == ("HistoryQueue", 10)  # packs: ~10 records each
    assert stack.outputs()["PodEventsQueueUrl"] == stack.physical("PodEventsQueue")
    assert stack.outputs()["RelayPolicyArn"].startswith("arn:aws:iam::123456789012:policy/")
    assert "HistoryApiUrl" not in stack.outputs()  # the HTTP API is left out (moto has no model)
    # the notifications bus exists (EventBridge) and the fan-out function is told its name
    bus = stack.physical("NotificationsBus")
    assert bus == f"{stack.stack_name}-notifications"
    assert clients.events is not None
    assert clients.events.describe_event_bus(Name=bus)["Arn"] == stack.outputs()["NotificationsBusArn"]
    assert stack.function_environment("FanoutFunction")["EVENT_BUS_NAME"] == bus
    assert processor["FANOUT_QUEUE_URL"] == stack.queue_urls()["FanoutQueue"]
    # the functions exist in moto's Lambda, their mappings disabled there (local.esm is the poller)
    assert clients.lambda_.get_function(FunctionName=stack.physical("ProcessorFunction"))
    mapping = clients.lambda_.get_event_source_mapping(UUID=pod_events.mapping_id)
    assert (mapping["State"], mapping["FunctionArn"]) == ("Disabled", stack.arn("ProcessorFunction"))
    assert pod_events.enabled  # as the template says
    # what moto's CloudFormation has no model for is left out, each with its reason
    assert stack.left_out["HistoryApi"].startswith("moto models no HTTP API")
    assert "refers to HistoryApi" in stack.left_out["HistoryApiRoute"]
    assert all(stack.left_out[a] for a in ("ProcessorErrorsAlarm", "Dashboard", "HooksQueuePolicy"))


def test_provisioning_twice_is_idempotent(clients: AwsClients, stack: Provisioned) -> None:
    # Given a provisioned stack whose config was changed at runtime and a message waiting on a queue
    name = stack.physical("RemoteConfigParameter")
    tuned = RemoteConfig(version="tuned", batch_size=7).to_json()
    clients.ssm.put_parameter(Name=name, Value=tuned, Type="String", Overwrite=True)
    url = stack.physical("PodEventsQueue")
    clients.sqs.send_message(QueueUrl=url, MessageBody="waiting")
    # When the same template is provisioned again (an UpdateStack of the existing stack, as
    # CloudFormation would: it leaves resources alone whose template did not change)
    again = provision(load_template(), clients=clients, stack_name=stack.stack_name)
    # Then the same resources answer, the runtime config and the queued message are kept
    assert again.queue_urls() == stack.queue_urls()
    assert {lid: again.arn(lid) for lid in again.queue_urls()} == {
        lid: stack.arn(lid) for lid in stack.queue_urls()
    }
    assert again.physical("DedupTable") == stack.physical("DedupTable")
    assert again.functions() == stack.functions()
    assert clients.ssm.get_parameter(Name=name)["Parameter"]["Value"] == tuned
    ttl = clients.dynamodb.describe_time_to_live(TableName=again.physical("DedupTable"))
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    (message,) = clients.sqs.receive_message(QueueUrl=url).get("Messages", [])
    assert message["Body"] == "waiting"


def test_a_message_received_max_receive_count_times_lands_in_the_dlq(
    stack: Provisioned, clients: AwsClients
) -> None:
    # Given a message on pod-events
    source, dlq = stack.physical("PodEventsQueue"), stack.physical("PodEventsDLQ")
    clients.sqs.send_message(QueueUrl=source, MessageBody='{"poison": true}')
    # When it is received and not deleted maxReceiveCount (5) times
    for attempt in range(1, 6):
        messages = clients.sqs.receive_message(
            QueueUrl=source, VisibilityTimeout=0, MessageSystemAttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        assert len(messages) == 1, attempt
        assert messages[0]["Attributes"]["ApproximateReceiveCount"] == str(attempt)
    # Then the next receive finds it moved to the DLQ instead
    assert clients.sqs.receive_message(QueueUrl=source, VisibilityTimeout=0).get("Messages", []) == []
    moved = clients.sqs.receive_message(QueueUrl=dlq).get("Messages", [])
    assert [m["Body"] for m in moved] == ['{"poison": true}']


@pytest.mark.filterwarnings("ignore:Tried to parse AWS..AppRunner")  # moto warns, then skips it
def test_a_resource_moto_cannot_create_fails_provisioning_with_a_clear_error(
    clients: AwsClients, stack_name: str
) -> None:
    # Given a template with a type moto's CloudFormation has no model for (moto only warns and skips it)
    template = parse_template("""
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Service:
    Type: AWS::AppRunner::Service
    Properties: {SourceConfiguration: {ImageRepository: {ImageIdentifier: x, ImageRepositoryType: ECR}}}
""")
    # Then provisioning names it and says where to decide about it
    with pytest.raises(CfnError, match=r"moto created no Service \(AWS::AppRunner::Service\): add the type"):
        provision(template, clients=clients, stack_name=stack_name)


def test_a_setting_moto_drops_follows_the_template_through_its_condition(
    clients: AwsClients, stack_name: str
) -> None:
    # Given the history table's point-in-time recovery, `!If [HistoryPitr, true, false]` (off by default)
    def pitr(stack: Provisioned) -> str:
        backups = clients.dynamodb.describe_continuous_backups(TableName=stack.physical("HistoryTable"))
        return str(
            backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
                "PointInTimeRecoveryStatus"
            ]
        )

    # Then it is off by default and on when the parameter says so, as moto resolved the condition
    assert pitr(provision(load_template(), clients=clients, stack_name=stack_name)) == "DISABLED"
    switched = provision(
        load_template(),
        clients=clients,
        stack_name=f"{stack_name}-pitr",
        parameters={"HistoryPointInTimeRecovery": "true"},
    )
    assert pitr(switched) == "ENABLED"
