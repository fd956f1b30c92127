"""local/cfn.py's own logic, without AWS: aws-sam-translator's output for a small SAM template, and
the pre-pass for what moto's CloudFormation does not model (docs/internals.md, "How the local stack
is provisioned"). The provisioning itself runs against a moto server in
tests/integration/test_cfn_provision.py."""

from __future__ import annotations

from typing import Any

import pytest

from local.cfn import ARTIFACTS_BUCKET, LEFT_OUT_TYPES, CfnError, parse_template, prepare, translate

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
    prepared = prepare(translated, PARAMETERS)
    assert prepared.left_out == {
        "Api": LEFT_OUT_TYPES["AWS::ApiGatewayV2::Api"],
        "Alarm": LEFT_OUT_TYPES["AWS::CloudWatch::Alarm"],
        "Route": "refers to Api, which is left out",
        "Dashboard": "refers to Alarm, which is left out",
    }
    assert not set(prepared.left_out) & set(prepared.template["Resources"])
    assert "ApiUrl" not in prepared.template["Outputs"]
    assert {"QueueUrl", "BusName"} <= set(prepared.template["Outputs"])


def test_the_pre_pass_disables_every_mapping_and_remembers_what_the_template_said(
    translated: dict[str, Any],
) -> None:
    prepared = prepare(translated, PARAMETERS)
    mappings = {
        lid: r["Properties"]["Enabled"]
        for lid, r in prepared.template["Resources"].items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert mappings == {"FnPolled": False, "FnPaused": False}
    assert prepared.mappings_enabled == {"FnPolled": True, "FnPaused": False}
    assert prepare(translated, {**PARAMETERS, "PollerOn": "true"}).mappings_enabled["FnPaused"] is True


def test_the_pre_pass_gives_a_bus_ref_its_name_and_reads_every_arn_back_as_an_output(
    translated: dict[str, Any],
) -> None:
    prepared = prepare(translated, PARAMETERS)
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


def test_the_pre_pass_keeps_the_table_settings_moto_would_drop(translated: dict[str, Any]) -> None:
    prepared = prepare(translated, PARAMETERS)
    sse = prepared.template["Resources"]["Table"]["Properties"]["SSESpecification"]
    assert sse["Enabled"] is True  # the API's shape, which moto's table model reads
    settings = prepared.tables["Table"]
    assert (settings.ttl_attribute, settings.point_in_time_recovery) == ("purge_at", True)


def test_a_mapping_switched_by_something_else_than_a_literal_or_a_parameter_is_refused(
    translated: dict[str, Any],
) -> None:
    broken = {**translated, "Resources": dict(translated["Resources"])}
    mapping = broken["Resources"]["FnPaused"]
    broken["Resources"]["FnPaused"] = {
        **mapping,
        "Properties": {**mapping["Properties"], "Enabled": {"Fn::If": ["C", True, False]}},
    }
    with pytest.raises(CfnError, match=r"FnPaused\.Enabled"):
        prepare(broken, PARAMETERS)


def test_a_bus_without_a_name_is_refused(translated: dict[str, Any]) -> None:
    resources = dict(translated["Resources"])
    resources["Bus"] = {"Type": "AWS::Events::EventBus", "Properties": {}}
    with pytest.raises(CfnError, match=r"Resources\.Bus: the local stack needs the bus's Name"):
        prepare({**translated, "Resources": resources}, PARAMETERS)
