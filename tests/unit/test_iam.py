"""Least privilege, read from template.yaml: no wildcard that is not required, and every function's
role reaches only the resources that function is wired to.

"Its own resources" is derived, not listed: what a function's Properties reference (environment
variables, SQS event sources, its log group) — logical ids and template parameters. A policy
statement whose resource names anything else (another function's queue, a table it is not told
about, a hand-written ARN) fails, so a new function gets the same check without editing this file.
X-Ray's write actions are the one known `Resource: "*"`: X-Ray has no resource-level permissions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from local.cfn import load_template

XRAY_WRITE_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
#: Lambda's network interfaces when the hooks function is in a VPC: EC2 scopes these to no resource.
VPC_ENI_ACTIONS = frozenset(
    {
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    }
)
#: Hook secrets are named by the Hooks themselves: readable under the stack's HookSecretsPrefix only.
PREFIX_GRANT = "${HookSecretsPrefix}*"
PREFIX_ACTIONS = frozenset({"ssm:GetParameter", "secretsmanager:GetSecretValue"})
#: What a function role may do at all, by service; scoping to resources is checked separately.
ALLOWED_ACTIONS = {
    "sqs": {
        "ReceiveMessage",
        "DeleteMessage",
        "GetQueueAttributes",
        "ChangeMessageVisibility",
        "SendMessage",
    },
    "dynamodb": {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
    },
    "ssm": {"GetParameter", "GetParameters", "GetParameterHistory", "PutParameter"},
    "logs": {"CreateLogStream", "PutLogEvents"},
    "xray": {"PutTraceSegments", "PutTelemetryRecords"},
    "lambda": {"GetEventSourceMapping", "UpdateEventSourceMapping"},
    "events": {"PutEvents"},
    "secretsmanager": {"GetSecretValue"},
    "ec2": {a.split(":")[1] for a in VPC_ENI_ACTIONS},
}
#: Consuming a queue is for the queue a function's SQS event source polls, nothing else.
CONSUME_ACTIONS = frozenset({"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"})
PSEUDO_PARAMETERS = frozenset(
    {"AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::StackName", "AWS::URLSuffix", "AWS::NoValue"}
)
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def if_branches(value: Any) -> list[Any]:
    """Both outcomes of `Fn::If` items (a conditional grant is checked either way), NoValue dropped."""
    out: list[Any] = []
    for item in as_list(value):
        if isinstance(item, dict) and "Fn::If" in item:
            out += if_branches(item["Fn::If"][1]) + if_branches(item["Fn::If"][2])
        elif item != {"Ref": "AWS::NoValue"}:
            out.append(item)
    return out


def outcomes(value: Any) -> list[list[Any]]:
    """Every list `value` can resolve to, one per combination of its `Fn::If` items' branches
    (`AWS::NoValue` items removed)."""
    results: list[list[Any]] = [[]]
    for item in as_list(value):
        if isinstance(item, dict) and "Fn::If" in item:
            choices = outcomes(item["Fn::If"][1]) + outcomes(item["Fn::If"][2])
        elif item == {"Ref": "AWS::NoValue"}:
            choices = [[]]
        else:
            choices = [[item]]
        results = [done + choice for done in results for choice in choices]
    return results


def references(value: Any) -> set[str]:
    """Logical ids and parameters `value` refers to (Ref, GetAtt, Sub variables), pseudo parameters aside."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref":
                found.add(str(arg))
            elif key == "Fn::GetAtt":
                found.add(str(arg[0] if isinstance(arg, list) else arg.split(".")[0]))
            elif key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                found |= {name.split(".")[0] for name in _SUB_VARIABLE.findall(text) if name not in variables}
                found |= references(variables)
            else:
                found |= references(arg)
    return found - PSEUDO_PARAMETERS


def statements(policy_holder: dict[str, Any]) -> Iterator[dict[str, Any]]:
    props = policy_holder["Properties"]
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
    if "PolicyDocument" in props:
        documents.append(props["PolicyDocument"])
    for document in documents:
        yield from if_branches(document["Statement"])  # a conditional statement: either outcome


def iam_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    kinds = {"AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] in kinds}


def functions_by_role(template: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for fid, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            role = resource["Properties"]["Role"]["Fn::GetAtt"][0]
            out.setdefault(role, []).append(fid)
    return out


def wired_to(template: dict[str, Any], fid: str) -> tuple[set[str], set[str]]:
    """(everything the function references, the queues its SQS event sources poll)."""
    props = template["Resources"][fid]["Properties"]
    own = references(props.get("Environment", {})) | references(props.get("LoggingConfig", {}))
    polled: set[str] = set()
    for event in props.get("Events", {}).values():
        if event["Type"] == "SQS":
            polled |= references(event["Properties"]["Queue"])
        own |= references(event.get("Properties", {}))
    return own, polled


# --------------------------------------------------------------------------- well-formed


def test_no_statement_can_resolve_to_an_empty_resource_or_action_list(template: dict[str, Any]) -> None:
    # IAM refuses the whole policy ("MalformedPolicyDocument: Policy statement must contain
    # resources"), so `sam deploy` fails: a grant that depends on a condition must be a
    # conditional statement, not a conditional item of an otherwise empty list.
    checked = 0
    for lid, resource in iam_resources(template).items():
        props = resource["Properties"]
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            for statement_list in outcomes(document["Statement"]):
                assert statement_list, f"{lid}: a policy with no statement"
                for statement in statement_list:
                    for key in ("Resource", "Action"):
                        for resolved in outcomes(statement[key]):
                            assert resolved, f"{lid} {statement.get('Sid')}: {key} can resolve to []"
                            checked += 1
    assert checked > 20


# --------------------------------------------------------------------------- wildcards


def test_no_statement_uses_a_wildcard_it_does_not_need(template: dict[str, Any]) -> None:
    checked = 0
    for lid, resource in iam_resources(template).items():
        for statement in statements(resource):
            checked += 1
            where = f"{lid}/{statement.get('Sid', '?')}"
            assert statement["Effect"] == "Allow", where
            assert "NotAction" not in statement, where
            assert "NotResource" not in statement, where
            actions = set(as_list(statement["Action"]))
            assert not any("*" in action for action in actions), f"{where}: wildcard action {actions}"
            for item in if_branches(statement["Resource"]):
                text = item if isinstance(item, str) else str(item.get("Fn::Sub", ""))
                if "*" in text and item != "*":
                    assert text.endswith(PREFIX_GRANT), f"{where}: '*' inside {item}"
                    assert actions <= PREFIX_ACTIONS, f"{where}: a prefix grant for {actions}"
                elif "*" in text:
                    assert actions <= XRAY_WRITE_ACTIONS | VPC_ENI_ACTIONS, (
                        f"{where}: '*' resource for {actions}"
                    )
    assert checked >= 10


def test_function_actions_are_data_plane_only(template: dict[str, Any]) -> None:
    for role in functions_by_role(template):
        for statement in statements(template["Resources"][role]):
            for action in as_list(statement["Action"]):
                service, _, name = action.partition(":")
                assert name in ALLOWED_ACTIONS.get(service, set()), f"{role}: {action} is not allowed"


# --------------------------------------------------------------------------- own resources


def test_each_function_has_a_role_of_its_own(template: dict[str, Any]) -> None:
    for role, fids in functions_by_role(template).items():
        assert len(fids) == 1, f"{role} is shared by {fids}"
        trust = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ], role


def test_function_roles_reach_only_their_functions_resources(template: dict[str, Any]) -> None:
    for role, (fid,) in functions_by_role(template).items():
        own, polled = wired_to(template, fid)
        for statement in statements(template["Resources"][role]):
            actions = set(as_list(statement["Action"]))
            for item in if_branches(statement["Resource"]):
                if item == "*":
                    continue  # X-Ray, checked above
                named = references(item)
                where = f"{role}/{statement.get('Sid')}: {item}"
                assert named, f"{where}: a literal ARN, not one of the function's resources"
                assert named <= own, f"{where} names {sorted(named - own)}, which {fid} is not wired to"
                if actions & CONSUME_ACTIONS:
                    assert named <= polled, f"{where}: {fid} consumes only the queue its event source polls"


def test_log_grants_name_the_functions_own_log_group(template: dict[str, Any]) -> None:
    for role, (fid,) in functions_by_role(template).items():
        log_group = template["Resources"][fid]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for statement in statements(template["Resources"][role]):
            if any(action.startswith("logs:") for action in as_list(statement["Action"])):
                assert if_branches(statement["Resource"]) == [{"Fn::GetAtt": [log_group, "Arn"]}], role


def test_relay_policy_sends_to_the_pod_events_queue_only(template: dict[str, Any]) -> None:
    (statement,) = statements(template["Resources"]["RelayPolicy"])
    assert set(as_list(statement["Action"])) == {"sqs:SendMessage"}
    assert if_branches(statement["Resource"]) == [{"Fn::GetAtt": ["PodEventsQueue", "Arn"]}]


# --------------------------------------------------------------------------- the checks catch mistakes


def test_the_checks_catch_a_grant_on_another_functions_queue(template: dict[str, Any]) -> None:
    import copy

    broken = copy.deepcopy(template)
    policy = broken["Resources"]["DeliverFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"].append(
        {
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": ["PodEventsQueue", "Arn"]},
        }
    )
    with pytest.raises(AssertionError, match="not wired to"):
        test_function_roles_reach_only_their_functions_resources(broken)
    broken = copy.deepcopy(template)
    policy = broken["Resources"]["ProcessorFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"].append(
        {
            "Effect": "Allow",
            "Action": "dynamodb:DeleteTable",
            "Resource": {"Fn::Sub": "arn:aws:dynamodb:*:*:table/*"},
        }
    )
    with pytest.raises(AssertionError, match="'\\*' inside"):
        test_no_statement_uses_a_wildcard_it_does_not_need(broken)
    with pytest.raises(AssertionError, match="dynamodb:DeleteTable is not allowed"):
        test_function_actions_are_data_plane_only(broken)
