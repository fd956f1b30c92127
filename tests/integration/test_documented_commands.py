"""Every `podwatch ...` command that README.md, docs/*.md, an alarm description or the dashboard
text tells an operator to run is run here, exactly as written, against a moto-backed stack: so the
docs and the CLI cannot drift apart again (alarms once said `podwatch status --stack X`, which the
CLI rejected).

Commands are taken from fenced code blocks (a line starting with `podwatch `, its `# comment` cut)
and from inline code spans. Placeholders are filled from the stack (PLACEHOLDERS): `<stack>` and
`${AWS::StackName}` with its name, `<message-id>` / `<id>` / `<ids>` with a real DLQ message id (a
cluster id after `clusters forget`), `<cluster-id>` with a cluster it knows; a placeholder not in the
table fails the test. The shell is an operator's with PODWATCH_STACK, PODWATCH_ENDPOINT_URL and
AWS_REGION exported (commands written without `--stack` rely on that) and PODWATCH_HISTORY_URL at
the stack's history API (served on loopback: moto has no API Gateway), in a folder holding the
`new-config.json` and the `hook.yaml` (khook's README Hook, `kagent/basic-pod-monitoring`, also
applied beforehand) a command names; a confirmation prompt is answered `y`. Every command must
exit 0. `podwatch mcp` commands serve until stopped: tests/e2e/test_mcp.py runs them with an MCP
client; `podwatch ui` ones too: tests/e2e/test_ui_browser.py runs them with a browser.

A `sam deploy ... --parameter-overrides ...` line of the docs is read by SAM CLI's own parser (with
samconfig.toml, as `sam deploy` reads it), and what `sam deploy` then does is done on the moto server
in the environment's region: the parameters and Rules checked, the template translated by
aws-sam-translator, the stack created by CreateStack (moto has no SAM transform of its own).
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from local.cfn import (
    ROOT,
    AwsClients,
    Provisioned,
    failed_rules,
    load_template,
    parameter_values,
    provision,
)
from local.historyapi import HistoryApiServer
from local.lambda_runtime import LambdaContext, load_event, load_function_module
from podwatch.hooks.rules import parse_hook
from podwatch.hooks.state import HookStore
from podwatch.models import RemoteConfig
from podwatch.settings import HistoryApiSettings
from podwatch_cli.app import main

pytestmark = pytest.mark.integration

REGION = "us-east-1"
#: the stack the docs name
STACK = "podwatch-prod"
#: clusters the docs name, known to the stack (a relay's heartbeat put them in the clusters table)
CLUSTERS = ("prod-eu-1", "old-eu-1")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: the `hook.yaml` the docs apply: khook's README Hook (kagent/basic-pod-monitoring)
HOOK_FILE = ROOT / "events" / "hooks" / "rules" / "khook-readme-first-hook.yaml"

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
_INLINE = re.compile(r"`(podwatch [^`\n]+)`")


def commands_in_markdown(text: str) -> set[str]:
    found = {m.strip() for m in _INLINE.findall(text)}
    for block in _FENCE.findall(text):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("podwatch "):
                found.add(line.split(" #", 1)[0].strip())
    return found


def commands_in_template() -> set[str]:
    resources = load_template()["Resources"]
    texts = [r["Properties"].get("AlarmDescription", "") for r in resources.values()]
    texts += [
        r["Properties"]["DashboardBody"]["Fn::Sub"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    return {m.strip() for text in texts for m in _INLINE.findall(" ".join(text.split()))}


def is_mcp(command: str) -> bool:
    """`podwatch mcp ...` serves until stopped: tests/e2e/test_mcp.py runs those with an MCP client."""
    return "mcp" in shlex.split(command)


def is_ui(command: str) -> bool:
    """`podwatch ui ...` serves until stopped: tests/e2e/test_ui_browser.py runs those with Chromium."""
    return "ui" in shlex.split(command)


def documented() -> list[str]:
    found = commands_in_template()
    for doc in DOCS:
        found |= commands_in_markdown(doc.read_text(encoding="utf-8"))
    return sorted(c for c in found if not (is_mcp(c) or is_ui(c)))


def test_the_docs_name_commands_of_every_kind() -> None:
    # the extraction finds what is there (an empty list would make the test below vacuous)
    found = documented()
    assert {c.split()[1] for c in found} >= {"status", "dlq", "config", "clusters"}
    assert "podwatch status --stack ${AWS::StackName}" in found
    assert "podwatch dlq list --stack <stack>" in found


# --------------------------------------------------------------------------- the stack


@pytest.fixture(scope="module")
def stack(clients: AwsClients) -> Provisioned:
    return provision(load_template(), clients=clients, stack_name=STACK)


@pytest.fixture(scope="module")
def quarantined(stack: Provisioned, endpoint: str) -> list[dict[str, Any]]:
    """What the real processor quarantines from the poison sample (bodies and attributes), once."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.function_environment("ProcessorFunction").items():
            patch.setenv(name, value)
        patch.setenv("CONFIG_MAX_AGE_SECONDS", "0")
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        processor: ModuleType = load_function_module("processor", fresh=True)
        processor.reset()
        try:
            response = processor.lambda_handler(load_event("events/processor/poison.json"), LambdaContext())
        finally:
            processor.reset()
    assert response == {"batchItemFailures": []}
    sqs = AwsClients.for_endpoint(endpoint, region=REGION).sqs
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=stack.physical("PodEventsDLQ"), MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        messages += batch
    assert len(messages) == 4
    return messages


class Terminal(io.StringIO):
    """An operator at a terminal who answers `y`."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def seeded(stack: Provisioned, clients: AwsClients, quarantined: list[dict[str, Any]]) -> dict[str, str]:
    """The stack as an operator finds it when the docs send them: poison in the pod-events DLQ, a
    rejected notification in the deliveries DLQ, known clusters, the default config."""
    for url in stack.queue_urls().values():  # emptied (PurgeQueue allows one call a minute)
        while batch := clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for m in batch:
                clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    dlq = stack.physical("PodEventsDLQ")
    for m in quarantined:
        attributes = m["MessageAttributes"]
        clients.sqs.send_message(QueueUrl=dlq, MessageBody=m["Body"], MessageAttributes=attributes)
    clients.sqs.send_message(
        QueueUrl=stack.physical("DeliveriesDLQ"),
        MessageBody=json.dumps({"notification_id": "n-1"}),
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": "rejected"},
            "status_code": {"DataType": "String", "StringValue": "400"},
        },
    )
    for cluster in CLUSTERS:
        clients.dynamodb.put_item(
            TableName=stack.physical("ClustersTable"),
            Item={"pk": {"S": cluster}, "last_seen_at": {"N": "1700000000"}, "last_kind": {"S": "heartbeat"}},
        )
    clients.ssm.put_parameter(
        Name=stack.physical("RemoteConfigParameter"),
        Value=RemoteConfig().to_json(),
        Type="String",
        Overwrite=True,
    )
    hooks = HookStore(table_name=stack.physical("HooksTable"), client=clients.dynamodb)
    hooks.put_rule(parse_hook(yaml.safe_load(HOOK_FILE.read_text())), now_s=1700000000)
    first = clients.sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=0)["Messages"][0]["MessageId"]
    return {"message_id": first, "cluster_id": CLUSTERS[0]}


def filled(command: str, seeded: dict[str, str]) -> list[str]:
    """The command's words with its placeholders filled (PLACEHOLDERS in the module docstring)."""
    text = command.replace("${AWS::StackName}", STACK).replace("<stack>", STACK)
    text = re.sub(r"\s*\[<id>\.\.\.\]|\s+\.\.\.$", "", text)
    is_cluster = text.startswith("podwatch clusters forget")
    for placeholder in ("<message-id>", "<ids>", "<id>", "<cluster-id>"):
        value = seeded["cluster_id"] if is_cluster or placeholder == "<cluster-id>" else seeded["message_id"]
        text = text.replace(placeholder, value)
    assert not re.search(r"[<>\[\]]", text), f"a placeholder this test cannot fill: {command}"
    return shlex.split(text)


@pytest.fixture(scope="module")
def history_api(stack: Provisioned, clients: AwsClients) -> Iterator[str]:
    """The stack's history API on loopback (a deployed stack's HistoryApiUrl: moto has no API Gateway)."""
    module = load_function_module("history", fresh=True)
    settings = HistoryApiSettings(
        history_table_name=stack.physical("HistoryTable"), history_default_cluster="prod-eu-1"
    )
    module.set_dependencies(module.build_dependencies(settings, dynamodb=clients.dynamodb))
    with HistoryApiServer(lambda event: module.lambda_handler(event, LambdaContext())) as server:
        yield server.url
    module.reset()


@pytest.mark.parametrize("command", documented())
def test_a_documented_command_works_as_written(
    command: str,
    seeded: dict[str, str],
    history_api: str,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Given an operator's shell pointed at the stack, in a folder with the file a command names
    monkeypatch.setenv("PODWATCH_STACK", STACK)
    monkeypatch.setenv("PODWATCH_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("PODWATCH_HISTORY_URL", history_api)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "new-config.json").write_text(RemoteConfig(version="v2").to_json())
    (tmp_path / "hook.yaml").write_text(HOOK_FILE.read_text())
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    words = filled(command, seeded)
    assert words[0] == "podwatch"
    # When it is run as written
    out, err = io.StringIO(), io.StringIO()
    code = main(words[1:], out=out, err=err)
    # Then it works
    assert code == 0, f"{command!r} -> exit {code}\n{err.getvalue()}{out.getvalue()}"


# --------------------------------------------------------------------------- `sam deploy` lines

#: SAM CLI's own `sam deploy` command, given a documented line's words: what it makes of them (the
#: environment's samconfig.toml table, then the line) without deploying
_SAM_DEPLOY_PARSE = """
import json, shlex, sys
from samcli.commands.deploy.command import cli
words = shlex.split(sys.argv[1])
assert words[:2] == ["sam", "deploy"], words
print(json.dumps(cli.make_context("deploy", words[2:]).params, default=str))
"""


def documented_sam_deploys() -> list[str]:
    """`sam deploy` lines of the docs' code blocks that set parameters (`--parameter-overrides`)."""
    found = []
    for doc in DOCS:
        for block in _FENCE.findall(doc.read_text(encoding="utf-8")):
            for line in block.splitlines():
                if line.startswith("sam deploy ") and "--parameter-overrides" in line:
                    found.append(line.split(" #", 1)[0].strip())
    return found


def test_the_docs_name_a_sam_deploy_with_overrides() -> None:
    # the test below is not vacuous: the batching trade-off's line is found
    assert any("ProcessorBatchingWindowSeconds=" in line for line in documented_sam_deploys())


@pytest.mark.parametrize("command", documented_sam_deploys())
def test_a_documented_sam_deploy_creates_its_stack(command: str, endpoint: str) -> None:
    # Given the line as SAM CLI reads it (its own parser and samconfig.toml, from the project's folder)
    sam_python = ROOT / ".venv-sam/bin/python"
    assert sam_python.exists(), "make setup installs the SAM CLI into .venv-sam"
    done = subprocess.run(
        [str(sam_python), "-c", _SAM_DEPLOY_PARSE, command],
        cwd=ROOT,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    deploy = json.loads(done.stdout.strip().splitlines()[-1])
    overrides: dict[str, str] = deploy["parameter_overrides"]
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    region = samconfig[deploy["config_env"]]["global"]["parameters"]["region"]
    # When what `sam deploy` then does is done: CloudFormation checks the parameters and the Rules,
    # the SAM transform runs (aws-sam-translator) and the stack is created (moto's CreateStack; moto
    # runs no SAM transform itself, so `sam deploy` cannot talk to it directly)
    template = load_template()
    assert failed_rules(template, parameter_values(template, overrides)) == []
    clients = AwsClients.for_endpoint(endpoint, region=region)  # its own region: no clash with STACK
    stack = provision(template, clients=clients, stack_name=deploy["stack_name"], parameters=overrides)
    # Then the stack has what the line set: every processor batch setting on the event source as given
    (pod_events,) = stack.event_sources("ProcessorFunction")
    if "ProcessorBatchSize" in overrides:
        assert pod_events.batch_size == int(overrides["ProcessorBatchSize"])
    if "ProcessorBatchingWindowSeconds" in overrides:
        assert pod_events.maximum_batching_window_seconds == int(overrides["ProcessorBatchingWindowSeconds"])
    assert (
        stack.function_environment("DeliverFunction")["RESTATE_INGRESS_URL"] == overrides["RestateIngressUrl"]
    )
