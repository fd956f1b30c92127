"""The operator CLI (`podwatch`, cli/podwatch_cli) against a moto server whose queues, tables and
parameter are created from template.yaml (local/cfn.py), with the real processor handler producing
the DLQ contents: what an operator sees and does after a poison message, a redrive, a config change."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local.cfn import ROOT, AwsClients, Provisioned, load_template, provision
from local.lambda_runtime import LambdaContext, load_event, load_function_module, sqs_event
from podwatch.models import RemoteConfig
from podwatch_cli.app import main

pytestmark = pytest.mark.integration

REGION = "us-east-1"
#: indexes of the bad records in events/processor/poison.json and the reasons they are quarantined for
POISON_REASONS = {"malformed": 2, "unknown_kind": 1, "unsupported_schema_version": 1}


@pytest.fixture
def stack(clients: AwsClients) -> Provisioned:
    """A stack of its own per test (the server is shared)."""
    return provision(load_template(), clients=clients, stack_name=f"pw-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def processor(stack: Provisioned, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The real processor handler, in the environment the template gives it, against the moto server."""
    for name, value in stack.function_environment("ProcessorFunction").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONFIG_MAX_AGE_SECONDS", "0")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    module = load_function_module("processor")
    module.reset()
    yield module
    module.reset()


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


def podwatch(endpoint: str, stack: Provisioned, *args: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--stack", stack.stack_name, "--endpoint-url", endpoint, "--region", REGION, *args], out=out, err=err
    )
    return Run(code, out.getvalue(), err.getvalue())


def queue_messages(clients: AwsClients, url: str) -> list[dict[str, Any]]:
    """Receive (and delete) everything on a queue."""
    found: list[dict[str, Any]] = []
    while batch := clients.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
    ).get("Messages", []):
        found += batch
        for m in batch:
            clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def depth(clients: AwsClients, url: str) -> int:
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def quarantine_poison(processor: ModuleType) -> dict[str, Any]:
    event = load_event("events/processor/poison.json")
    assert processor.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
    return event


# --------------------------------------------------------------------------- help


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [[], ["config"], ["config", "get"], ["config", "set"], ["config", "validate"], ["dlq"]]
    commands += [["dlq", "list"], ["dlq", "show"], ["dlq", "redrive"], ["status"]]
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0, command
        assert "usage: podwatch" in capsys.readouterr().out, command


def test_the_module_runs_as_a_command() -> None:
    # what `podwatch` runs once installed (`python -m podwatch_cli`)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "cli"), str(ROOT / "layers/podwatch"), str(ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "podwatch_cli", "dlq", "redrive", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--dry-run" in done.stdout


# --------------------------------------------------------------------------- dlq


def test_a_poison_message_shows_its_reason(
    processor: ModuleType, stack: Provisioned, clients: AwsClients, endpoint: str
) -> None:
    # Given the processor quarantined the bad records of the poison sample
    event = quarantine_poison(processor)
    originals = {r["messageId"]: r["body"] for r in event["Records"]}

    # When the operator lists the DLQs
    listed = podwatch(endpoint, stack, "dlq", "list", "--json")

    # Then every quarantined message is there with its reason and error, and stays on the queue
    assert listed.code == 0, listed.err
    rows = json.loads(listed.out)
    assert sorted(r["reason"] for r in rows) == sorted(r for r, n in POISON_REASONS.items() for _ in range(n))
    assert {r["queue"] for r in rows} == {"pod-events-dlq"}
    assert all(r["error"] for r in rows)
    assert depth(clients, stack.physical("PodEventsDLQ")) == 4
    table = podwatch(endpoint, stack, "dlq", "list").out
    assert "unknown_kind" in table
    assert "4 message(s)" in table

    # and `show` gives one message's reason, error, source message and original body
    row = next(r for r in rows if r["reason"] == "unknown_kind")
    shown = podwatch(endpoint, stack, "dlq", "show", row["message_id"])
    assert shown.code == 0, shown.err
    assert "reason:         unknown_kind" in shown.out
    assert "redrives to pod-events" in shown.out
    source = row["attributes"]["source_message_id"]
    assert f"source_message_id:{source}" in shown.out.replace(" ", "")
    assert json.loads(shown.out.split("body:\n", 1)[1]) == json.loads(originals[source])
    assert podwatch(endpoint, stack, "dlq", "show", "no-such-id").code == 1


def test_show_prints_a_body_too_deep_to_pretty_print_as_it_is(
    processor: ModuleType, stack: Provisioned, endpoint: str
) -> None:
    # Given the processor quarantined a body nested 100,000 levels deep (issue 14's poison)
    deep = "[" * 100_000 + "]" * 100_000
    assert processor.lambda_handler(sqs_event([deep]), LambdaContext()) == {"batchItemFailures": []}
    (row,) = json.loads(podwatch(endpoint, stack, "dlq", "list", "--json").out)

    # When the operator shows it, Then it is shown with its reason and the body as it is (no crash)
    shown = podwatch(endpoint, stack, "dlq", "show", row["message_id"])
    assert shown.code == 0, shown.err
    assert "reason:         malformed" in shown.out
    assert shown.out.split("body:\n", 1)[1] == deep + "\n"


def test_redrive_sends_messages_back_and_after_a_fix_they_are_delivered(
    processor: ModuleType, stack: Provisioned, clients: AwsClients, endpoint: str
) -> None:
    # Given quarantined poison, and a good event whose retries were exhausted (SQS moved it unchanged)
    quarantine_poison(processor)
    queue_messages(clients, stack.physical("DeliveriesQueue"))  # the sample's good pods, forwarded
    dlq, source = stack.physical("PodEventsDLQ"), stack.physical("PodEventsQueue")
    good = load_event("events/processor/batch.json")["Records"][0]["body"]
    clients.sqs.send_message(QueueUrl=dlq, MessageBody=good)
    rows = json.loads(podwatch(endpoint, stack, "dlq", "list", "--json").out)
    exhausted = next(r for r in rows if r["reason"] == "(retries exhausted)")
    poison = next(r for r in rows if r["reason"] == "malformed")

    # When the operator dry-runs a redrive of one message: nothing moves
    dry = podwatch(endpoint, stack, "dlq", "redrive", "--dry-run", poison["message_id"])
    assert dry.code == 0, dry.err
    assert f"would redrive {poison['message_id']} (malformed) to pod-events" in dry.out
    assert (depth(clients, dlq), depth(clients, source)) == (5, 0)

    # When the operator redrives that one message
    one = podwatch(endpoint, stack, "dlq", "redrive", "--progress", poison["message_id"])
    # Then it is back on pod-events, body untouched, without the quarantine attributes
    assert one.code == 0, one.err
    assert "redrove 1 message(s)" in one.out
    assert "redrive pod-events-dlq -> pod-events [" in one.err  # the progress bar
    (back,) = queue_messages(clients, source)
    assert "reason" not in back.get("MessageAttributes", {})
    assert depth(clients, dlq) == 4

    # When (the cause fixed) the operator redrives --all: permanent failures (bad input) stay put
    everything = podwatch(endpoint, stack, "dlq", "redrive", "--all", "--queue", "pod-events")
    assert everything.code == 0, everything.err
    assert "redrove 1 message(s)" in everything.out
    assert "3 permanent failure(s) left in place" in everything.out
    assert depth(clients, dlq) == 3
    # and only --include-permanent sends those too; then the processor runs on everything
    permanent = podwatch(endpoint, stack, "dlq", "redrive", "--all", "--include-permanent")
    assert permanent.code == 0, permanent.err
    assert "redrove 3 message(s)" in permanent.out
    assert depth(clients, dlq) == 0
    redriven = queue_messages(clients, source)
    assert len(redriven) == 4
    assert good in {m["Body"] for m in redriven}
    response = processor.lambda_handler(sqs_event([m["Body"] for m in redriven]), LambdaContext())

    # Then the event whose retries had run out is forwarded to the deliveries queue, and the
    # poison (still poison) is quarantined again with the same reason
    assert response == {"batchItemFailures": []}
    forwarded = queue_messages(clients, stack.physical("DeliveriesQueue"))
    assert len(forwarded) == 1
    assert json.loads(forwarded[0]["Body"])["pod"] == json.loads(good)["payload"]["name"]
    again = json.loads(podwatch(endpoint, stack, "dlq", "list", "--json").out)
    assert sorted(r["reason"] for r in again) == ["malformed", "unknown_kind", "unsupported_schema_version"]
    assert exhausted["message_id"] not in {r["message_id"] for r in again}


def test_redrive_of_an_unknown_id_fails_and_changes_nothing(
    processor: ModuleType, stack: Provisioned, clients: AwsClients, endpoint: str
) -> None:
    quarantine_poison(processor)
    run = podwatch(endpoint, stack, "dlq", "redrive", "nope")
    assert run.code == 1
    assert "nope: not found" in run.err
    assert depth(clients, stack.physical("PodEventsDLQ")) == 4
    assert depth(clients, stack.physical("PodEventsQueue")) == 0
    assert podwatch(endpoint, stack, "dlq", "redrive").code == 2  # neither ids nor --all
    assert podwatch(endpoint, stack, "dlq", "redrive", "--include-permanent").code == 2  # without --all


def test_redrive_by_reason_takes_only_that_reason(
    processor: ModuleType, stack: Provisioned, clients: AwsClients, endpoint: str
) -> None:
    # Given quarantined poison (2 malformed, 1 unknown_kind, 1 unsupported_schema_version) and a good
    # event whose retries ran out
    quarantine_poison(processor)
    dlq, source = stack.physical("PodEventsDLQ"), stack.physical("PodEventsQueue")
    good = load_event("events/processor/batch.json")["Records"][0]["body"]
    clients.sqs.send_message(QueueUrl=dlq, MessageBody=good)
    # When the operator redrives what SQS moved after retries, by its reason
    exhausted = podwatch(endpoint, stack, "dlq", "redrive", "--reason", "retries_exhausted")
    # Then only that one goes back
    assert exhausted.code == 0, exhausted.err
    assert "redrove 1 message(s)" in exhausted.out
    assert [m["Body"] for m in queue_messages(clients, source)] == [good]
    # When the operator names a permanent reason: that is asking for it
    schema = podwatch(
        endpoint, stack, "dlq", "redrive", "--reason", "unsupported_schema_version", "--dry-run"
    )
    assert schema.code == 0, schema.err
    assert "would redrive 1 message(s)" in schema.out
    both = podwatch(endpoint, stack, "dlq", "redrive", "--reason", "malformed", "--reason", "unknown_kind")
    assert "redrove 3 message(s)" in both.out
    assert depth(clients, dlq) == 1
    assert podwatch(endpoint, stack, "dlq", "redrive", "--reason", "malformed", "some-id").code == 2


# --------------------------------------------------------------------------- config


def stored(clients: AwsClients, stack: Provisioned) -> tuple[str, int]:
    parameter = clients.ssm.get_parameter(Name=stack.physical("RemoteConfigParameter"))["Parameter"]
    return parameter["Value"], parameter["Version"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("dedup_cooldown_seconds=-5", "dedup_cooldown_seconds: Input should be greater than or equal to 0"),
        ("dedup_scope=cluster", "dedup_scope: Input should be 'container', 'pod' or 'workload'"),
        ("enabled_reasons=crash-loop,typo", "enabled_reasons"),
        ("dedup_cooldown=60", "dedup_cooldown: Extra inputs are not permitted"),
        ("batch_size", "expected KEY=VALUE"),
    ],
)
def test_config_set_with_an_invalid_value_is_refused_and_changes_nothing(
    stack: Provisioned, clients: AwsClients, endpoint: str, change: str, message: str
) -> None:
    before = stored(clients, stack)
    run = podwatch(endpoint, stack, "config", "set", change, "--yes")
    assert run.code == 1
    assert message in run.err
    assert run.out == ""  # no diff: nothing would be written
    assert stored(clients, stack) == before


def test_config_set_shows_a_diff_and_writes_a_valid_change(
    stack: Provisioned, clients: AwsClients, endpoint: str
) -> None:
    before, version = stored(clients, stack)
    dry = podwatch(
        endpoint, stack, "config", "set", "batch_size=50", "ignored_namespaces=kube-system", "--dry-run"
    )
    assert dry.code == 0, dry.err
    assert '-  "batch_size": 25,' in dry.out
    assert '+  "batch_size": 50,' in dry.out
    assert '+    "kube-system"' in dry.out
    assert stored(clients, stack) == (before, version)

    written = podwatch(
        endpoint, stack, "config", "set", "batch_size=50", "ignored_namespaces=kube-system", "--yes"
    )
    assert written.code == 0, written.err
    value, new_version = stored(clients, stack)
    assert new_version == version + 1
    config = RemoteConfig.from_json(value)
    assert (config.batch_size, config.ignored_namespaces) == (50, frozenset({"kube-system"}))
    assert value == config.to_json()  # stored compact, as the template and config-sync write it
    assert "no change" in podwatch(endpoint, stack, "config", "set", "batch_size=50", "--yes").out


def test_config_set_without_yes_off_a_terminal_writes_nothing(
    stack: Provisioned, clients: AwsClients, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    before = stored(clients, stack)
    run = podwatch(endpoint, stack, "config", "set", "batch_size=40")
    assert run.code == 1
    assert "pass --yes" in run.err
    assert stored(clients, stack) == before


def test_config_get_and_validate(
    stack: Provisioned, clients: AwsClients, endpoint: str, tmp_path: Path
) -> None:
    got = podwatch(endpoint, stack, "config", "get")
    assert got.code == 0
    assert json.loads(got.out) == json.loads(RemoteConfig().to_json())
    assert "valid" in got.err
    assert podwatch(endpoint, stack, "config", "validate").code == 0

    bad = tmp_path / "bad.json"
    bad.write_text('{"batch_size": 0}')
    run = podwatch(endpoint, stack, "config", "validate", str(bad))
    assert run.code == 1
    assert "batch_size: Input should be greater than or equal to 1" in run.err

    # a stored value the functions would reject is reported as such
    clients.ssm.put_parameter(
        Name=stack.physical("RemoteConfigParameter"), Value='{"version": ""}', Type="String", Overwrite=True
    )
    assert podwatch(endpoint, stack, "config", "validate").code == 1
    assert "INVALID" in podwatch(endpoint, stack, "config", "get").err
    refused = podwatch(endpoint, stack, "config", "set", "batch_size=10", "--yes")
    assert refused.code == 1
    assert "write a whole document with --file" in refused.err


# --------------------------------------------------------------------------- status and targets


def test_status_shows_depths_and_each_clusters_last_heartbeat(
    processor: ModuleType, stack: Provisioned, clients: AwsClients, endpoint: str
) -> None:
    quarantine_poison(processor)
    now = int(time.time())
    table = stack.physical("ClustersTable")
    for cluster, seen in (("prod-eu-1", now - 30), ("staging", now - 3600)):
        clients.dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": cluster},
                "last_seen_at": {"N": str(seen)},
                "last_kind": {"S": "heartbeat"},
                "relay_version": {"S": "0.1.0"},
            },
        )
    report = json.loads(podwatch(endpoint, stack, "status", "--json").out)
    queues = {q["queue"]: q for q in report["queues"]}
    assert queues["pod-events-dlq"]["visible"] == 4
    assert queues["deliveries"]["visible"] == 2  # the poison sample's two good pods
    clusters = {c["cluster_id"]: c for c in report["clusters"]}
    assert clusters["staging"]["silent"] is True
    assert clusters["prod-eu-1"]["silent"] is False
    text = podwatch(endpoint, stack, "status").out
    assert "podwatch dlq list" in text
    assert "SILENT" in text
    assert "alarms: 0 of 0 in ALARM" in text


def test_clusters_forget_removes_a_decommissioned_cluster_from_the_silent_ones(
    stack: Provisioned, clients: AwsClients, endpoint: str
) -> None:
    table = stack.physical("ClustersTable")
    old = int(time.time()) - 7 * 24 * 3600
    clients.dynamodb.put_item(
        TableName=table, Item={"pk": {"S": "decommissioned"}, "last_seen_at": {"N": str(old)}}
    )
    before = {
        c["cluster_id"]: c for c in json.loads(podwatch(endpoint, stack, "status", "--json").out)["clusters"]
    }
    assert before["decommissioned"]["silent"] is True

    done = podwatch(endpoint, stack, "clusters", "forget", "decommissioned")
    assert done.code == 0, done.err
    assert "forgot cluster decommissioned" in done.out

    after = json.loads(podwatch(endpoint, stack, "status", "--json").out)["clusters"]
    assert "decommissioned" not in {c["cluster_id"] for c in after}
    again = podwatch(endpoint, stack, "clusters", "forget", "decommissioned")
    assert again.code == 1
    assert "no cluster 'decommissioned'" in again.err


def test_a_stack_file_names_the_resources(
    stack: Provisioned, clients: AwsClients, endpoint: str, tmp_path: Path
) -> None:
    # what the local stack would write to .local-run/current/stack.json
    stack_file = tmp_path / "stack.json"
    stack_file.write_text(
        json.dumps(
            {
                "stack_name": stack.stack_name,
                "region": REGION,
                "endpoint_url": endpoint,
                "outputs": stack.outputs(),
            }
        )
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["--stack-file", str(stack_file), "status", "--json"], out=out, err=err) == 0, err.getvalue()
    assert json.loads(out.getvalue())["resolved_from"] == "stack-file"


def test_an_unknown_stack_is_a_clear_error(endpoint: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--stack", "nope", "--endpoint-url", endpoint, "--region", REGION, "status"], out=out, err=err
    )
    assert code == 1
    assert "stack nope" in err.getvalue()


def test_target_options_go_before_or_after_the_command(stack: Provisioned, endpoint: str) -> None:
    target = ["--stack", stack.stack_name, "--endpoint-url", endpoint, "--region", REGION]
    reports = []
    for argv in (
        [*target, "status", "--json"],
        ["status", "--json", *target],
        ["--stack", "some-other-stack", "status", "--json", *target],  # after the command wins
    ):
        out, err = io.StringIO(), io.StringIO()
        assert main(argv, out=out, err=err) == 0, (argv, err.getvalue())
        reports.append(json.loads(out.getvalue())["stack"])
    assert reports == [stack.stack_name] * 3
    out, err = io.StringIO(), io.StringIO()
    assert main(["dlq", "list", *target], out=out, err=err) == 0, err.getvalue()
    assert main(["config", "get", *target], out=out, err=err) == 0, err.getvalue()


def test_aws_region_is_honoured_and_the_missing_region_error_says_what_works(
    stack: Provisioned, endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .local-run/ stack file here
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.delenv("AWS_REGION", raising=False)
    argv = ["--stack", stack.stack_name, "--endpoint-url", endpoint, "status", "--json"]
    out, err = io.StringIO(), io.StringIO()
    assert main(argv, out=out, err=err) == 1
    assert "set AWS_REGION or AWS_DEFAULT_REGION" in err.getvalue()
    # When AWS_REGION (what Lambda, CloudShell and most CI set) names the region
    monkeypatch.setenv("AWS_REGION", REGION)
    out, err = io.StringIO(), io.StringIO()
    # Then the CLI works without --region
    assert main(argv, out=out, err=err) == 0, err.getvalue()
    assert json.loads(out.getvalue())["stack"] == stack.stack_name


def test_config_validate_of_a_file_needs_no_stack_and_no_credentials(tmp_path: Path) -> None:
    good, bad = tmp_path / "new-config.json", tmp_path / "bad.json"
    good.write_text(RemoteConfig(version="v2", batch_size=40).to_json())
    bad.write_text('{"batch_size": 0}')
    # a shell with nothing AWS in it: no region, no credentials, no stack
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "cli"), str(ROOT / "layers/podwatch")]),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for path, code, says in ((good, 0, "valid (version 'v2')"), (bad, 1, "batch_size")):
        done = subprocess.run(
            [sys.executable, "-m", "podwatch_cli", "config", "validate", str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert done.returncode == code, done.stderr
        assert says in done.stdout + done.stderr
