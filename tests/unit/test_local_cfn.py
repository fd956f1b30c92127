"""local/cfn.py's own logic, without AWS: aws-sam-translator's output for a small SAM template, and
the pre-pass for what moto's CloudFormation does not model (docs/internals.md, "How the local stack
is provisioned"). The provisioning itself runs against a moto server in
tests/integration/test_cfn_provision.py."""

from __future__ import annotations

from typing import Any

import pytest

from local.cfn import (
    ARTIFACTS_BUCKET,
    LEFT_OUT_TYPES,
    CfnError,
    TableSettings,
    parse_template,
    prepare,
    translate,
)

SAM = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: local}
  PollerOn: {Type: String, Default: "false", AllowedValues: ["true", "false"]}
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Bus:
    Type: AWS::Events::EventBus
    Properties:
      Name: !Sub ${AWS::StackName}-bus
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: {source: [podwatch]}
      Targets: [{Id: q, Arn: !GetAtt Queue.Arn}]
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      TimeToLiveSpecification: {AttributeName: purge_at, Enabled: true}
      SSESpecification: {SSEEnabled: true}
      PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/processor/
      Handler: app.lambda_handler
      Runtime: python3.13
      Environment:
        Variables:
          BUS: !Ref Bus
      Events:
        Polled:
          Type: SQS
          Properties: {Queue: !GetAtt Queue.Arn, BatchSize: 7}
        Paused:
          Type: SQS
          Properties: {Queue: !GetAtt Queue.Arn, Enabled: !Ref PollerOn}
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: api, ProtocolType: HTTP}
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: GET /x
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties: {MetricName: m, Namespace: n, Statistic: Sum, Period: 60, EvaluationPeriods: 1,
                 Threshold: 1, ComparisonOperator: GreaterThanThreshold}
  Dashboard:
    Type: AWS::CloudWatch::Dashboard
    Properties:
      DashboardBody: !Sub '{"widgets": [{"alarms": ["${Alarm.Arn}"]}]}'
Outputs:
  QueueUrl: {Value: !Ref Queue}
  BusName: {Value: !Ref Bus}
  ApiUrl: {Value: !Sub "https://${Api}.execute-api.${AWS::Region}.amazonaws.com"}
"""
PARAMETERS = {"Stage": "local", "PollerOn": "false"}


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    return translate(parse_template(SAM), parameters=PARAMETERS, region="us-east-1")


def test_the_translator_makes_plain_cloudformation_with_the_code_folder_as_its_s3_key(
    translated: dict[str, Any],
) -> None:
    resources = translated["Resources"]
    assert not [lid for lid, r in resources.items() if r["Type"].startswith("AWS::Serverless::")]
    function = resources["Fn"]
    assert function["Type"] == "AWS::Lambda::Function"
    # the folder, where `sam package` would have uploaded it: the local stack loads the handler there
    assert function["Properties"]["Code"] == {"S3Bucket": ARTIFACTS_BUCKET, "S3Key": "functions/processor"}
    assert resources["FnPolled"]["Type"] == "AWS::Lambda::EventSourceMapping"
    assert resources["FnPolled"]["Properties"]["BatchSize"] == 7


def test_the_pre_pass_leaves_out_what_moto_cannot_create_and_everything_that_refers_to_it(
    translated: dict[str, Any],
) -> None:
    prepared = prepare(translated)
    assert prepared.left_out == {
        "Api": LEFT_OUT_TYPES["AWS::ApiGatewayV2::Api"],
        "Alarm": LEFT_OUT_TYPES["AWS::CloudWatch::Alarm"],
        "Route": "refers to Api, which is left out",
        "Dashboard": "refers to Alarm, which is left out",
    }
    assert not set(prepared.left_out) & set(prepared.template["Resources"])
    assert "ApiUrl" not in prepared.template["Outputs"]
    assert {"QueueUrl", "BusName"} <= set(prepared.template["Outputs"])


def test_the_pre_pass_disables_every_mapping_and_reads_back_what_the_template_said(
    translated: dict[str, Any],
) -> None:
    prepared = prepare(translated)
    mappings = {
        lid: r["Properties"]["Enabled"]
        for lid, r in prepared.template["Resources"].items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert mappings == {"FnPolled": False, "FnPaused": False}
    outputs = prepared.template["Outputs"]
    assert outputs["LocalEnabledFnPolled"] == {"Value": "true"}
    assert outputs["LocalEnabledFnPaused"] == {"Value": {"Ref": "PollerOn"}}  # moto resolves it


def test_the_pre_pass_gives_a_bus_ref_its_name_and_reads_every_arn_back_as_an_output(
    translated: dict[str, Any],
) -> None:
    prepared = prepare(translated)
    name = {"Fn::Sub": "${AWS::StackName}-bus"}
    resources = prepared.template["Resources"]
    assert resources["Rule"]["Properties"]["EventBusName"] == name
    assert resources["Fn"]["Properties"]["Environment"]["Variables"]["BUS"] == name
    outputs = prepared.template["Outputs"]
    assert outputs["BusName"] == {"Value": name}
    assert outputs["LocalRefBus"] == {"Value": name}
    assert {k: v["Value"] for k, v in outputs.items() if k.startswith("LocalArn")} == {
        f"LocalArn{lid}": {"Fn::GetAtt": [lid, "Arn"]} for lid in ("Queue", "Bus", "Table", "Fn")
    }


def test_the_pre_pass_reads_back_the_table_settings_moto_would_drop(translated: dict[str, Any]) -> None:
    prepared = prepare(translated)
    sse = prepared.template["Resources"]["Table"]["Properties"]["SSESpecification"]
    assert sse["Enabled"] is True  # the API's shape, which moto's table model reads
    outputs = {k: v["Value"] for k, v in prepared.template["Outputs"].items()}
    assert (outputs["LocalTtlEnabledTable"], outputs["LocalTtlAttributeTable"]) == ("true", "purge_at")
    assert outputs["LocalPitrTable"] == "true"
    # as moto writes them back, the settings set through the DynamoDB API
    back = {"LocalTtlEnabledTable": "True", "LocalTtlAttributeTable": "purge_at", "LocalPitrTable": "false"}
    assert TableSettings.read_back("Table", back) == TableSettings(
        ttl_attribute="purge_at", point_in_time_recovery=False
    )


def test_a_read_back_output_keeps_its_resource_condition(translated: dict[str, Any]) -> None:
    resources = dict(translated["Resources"])
    resources["Table"] = {**resources["Table"], "Condition": "WithTable"}
    prepared = prepare({**translated, "Resources": resources})
    assert prepared.template["Outputs"]["LocalPitrTable"]["Condition"] == "WithTable"
    assert prepared.template["Outputs"]["LocalArnTable"]["Condition"] == "WithTable"


def test_an_output_named_like_the_read_back_ones_is_refused(translated: dict[str, Any]) -> None:
    with pytest.raises(CfnError, match="the prefix Local is the local stack's own"):
        prepare({**translated, "Outputs": {"LocalThing": {"Value": "x"}}})


def test_a_bus_without_a_name_is_refused(translated: dict[str, Any]) -> None:
    resources = dict(translated["Resources"])
    resources["Bus"] = {"Type": "AWS::Events::EventBus", "Properties": {}}
    with pytest.raises(CfnError, match=r"Resources\.Bus: the local stack needs the bus's Name"):
        prepare({**translated, "Resources": resources})
