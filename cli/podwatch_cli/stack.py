"""Which stack the CLI works on, and the physical names of its queues, parameter and tables.

Resolution, first match wins:

1. `--stack-file FILE` (default `.local-run/current/stack.json` when it exists and no `--stack` is
   given): `{"stack_name", "region", "endpoint_url", "outputs": {OutputKey: value}}`, as the local
   stack would write it;
2. CloudFormation: `describe_stacks(--stack)` and its Outputs (`PodEventsQueueUrl`, ...);
3. only when an `--endpoint-url` is given and CloudFormation there does not know the stack (an
   emulator whose resources were made by hand; the local stack is made by moto's CloudFormation and
   answers step 2): the names docs/internals.md fixes (`<stack>-pod-events`, `/<stack>/remote-config`, ...);

and explicit options (`--pod-events-dlq-url`, `--config-parameter`, ...) override any one of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from podwatch import telemetry

DEFAULT_STACK_FILE = Path(".local-run/current/stack.json")

#: logical id -> (short name used on the command line, stack output holding its URL)
QUEUES: Mapping[str, tuple[str, str]] = {
    "PodEventsQueue": ("pod-events", "PodEventsQueueUrl"),
    "PodEventsDLQ": ("pod-events-dlq", "PodEventsDLQUrl"),
    "DeliveriesQueue": ("deliveries", "DeliveriesQueueUrl"),
    "DeliveriesDLQ": ("deliveries-dlq", "DeliveriesDLQUrl"),
    "FanoutQueue": ("fanout", "FanoutQueueUrl"),
    "FanoutDLQ": ("fanout-dlq", "FanoutDLQUrl"),
    "HooksQueue": ("hooks", "HooksQueueUrl"),
    "HooksDLQ": ("hooks-dlq", "HooksDLQUrl"),
    "HistoryQueue": ("history", "HistoryQueueUrl"),
    "HistoryDLQ": ("history-dlq", "HistoryDLQUrl"),
}
#: DLQ logical id -> the queue it is the dead-letter queue of (where a redrive sends messages back)
DLQ_SOURCES: Mapping[str, str] = {
    "PodEventsDLQ": "PodEventsQueue",
    "DeliveriesDLQ": "DeliveriesQueue",
    "FanoutDLQ": "FanoutQueue",
    "HooksDLQ": "HooksQueue",
    "HistoryDLQ": "HistoryQueue",
}
#: DLQ short names on the command line (`--queue pod-events`) -> DLQ logical id
DLQ_CHOICES: Mapping[str, str] = {
    "pod-events": "PodEventsDLQ",
    "deliveries": "DeliveriesDLQ",
    "fanout": "FanoutDLQ",
    "hooks": "HooksDLQ",
    "history": "HistoryDLQ",
}

#: Connect / read timeouts and retries of every AWS call the CLI makes.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 5, "mode": "standard"})


class StackError(Exception):
    """The stack or one of its resources cannot be found (the message says what and how to fix it)."""


@dataclass(frozen=True)
class Target:
    """Where to connect: region, profile, endpoint (a local stack) and the stack name."""

    stack_name: str | None = None
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    stack_file: Path | None = None
    #: logical id / "RemoteConfigParameter" / "ClustersTable" -> explicit physical name or URL
    overrides: Mapping[str, str] = field(default_factory=dict)


class Clients:
    """boto3 clients for one target, created on first use."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> boto3.session.Session:
        if self._session is None:
            session = boto3.session.Session(profile_name=self.target.profile, region_name=self.target.region)
            if self.target.endpoint_url and session.get_credentials() is None:
                # a local stack (moto) takes any credentials; never needed for real AWS
                session = boto3.session.Session(
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",  # noqa: S106 - dummy credentials for a local endpoint
                    region_name=self.target.region or session.region_name or "us-east-1",
                )
            if session.region_name is None:
                raise StackError(
                    "no AWS region: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION,"
                    " or give the profile a region"
                )
            self._session = session
        return self._session

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.target.endpoint_url, config=CLIENT_CONFIG
            )
        return self._clients[service]


@dataclass(frozen=True)
class Stack:
    """The resolved names of one stack."""

    name: str
    #: queue logical id -> URL
    queues: dict[str, str]
    config_parameter: str
    clusters_table: str | None
    #: how the names were found: "stack-file", "cloudformation" or "naming convention"
    source: str
    outputs: dict[str, str] = field(default_factory=dict)
    hooks_table: str | None = None

    @property
    def alarm_prefix(self) -> str:
        return f"{self.name}-"

    @property
    def metrics_namespace(self) -> str:
        """The stack's `MetricsNamespace` output, else the namespace the template gives every stack."""
        return self.outputs.get("MetricsNamespace") or telemetry.metrics_namespace(self.name)

    def queue_url(self, logical_id: str) -> str:
        try:
            return self.queues[logical_id]
        except KeyError:
            raise StackError(f"stack {self.name} has no {logical_id} (source: {self.source})") from None


def load_stack_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read stack file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("outputs"), dict):
        raise StackError(f"{path} is not a stack file: expected an object with `outputs`")
    return data


def target_from_stack_file(target: Target) -> Target:
    """`target` completed from its stack file (region, endpoint, stack name), if it uses one."""
    path = target.stack_file
    if path is None and target.stack_name is None and DEFAULT_STACK_FILE.is_file():
        path = DEFAULT_STACK_FILE
    if path is None:
        return target
    data = load_stack_file(path)
    return Target(
        stack_name=target.stack_name or data.get("stack_name"),
        region=target.region or data.get("region"),
        profile=target.profile,
        endpoint_url=target.endpoint_url or data.get("endpoint_url"),
        stack_file=path,
        overrides=target.overrides,
    )


def resolve(target: Target, clients: Clients) -> Stack:
    """The stack's names (see the module docstring for the order)."""
    if target.stack_file is not None:
        data = load_stack_file(target.stack_file)
        name = str(target.stack_name or data.get("stack_name") or "")
        return _from_outputs(name, {k: str(v) for k, v in data["outputs"].items()}, "stack-file", target)
    if not target.stack_name:
        raise StackError("which stack? pass --stack NAME (or --stack-file, or run inside a local stack)")
    name = target.stack_name
    try:
        described = clients("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        missing = exc.response.get("Error", {}).get("Code") == "ValidationError"
        if not (missing and target.endpoint_url):
            raise StackError(f"stack {name}: {exc}") from exc
        return _from_names(name, clients, target)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return _from_outputs(name, outputs, "cloudformation", target)


def _from_outputs(name: str, outputs: dict[str, str], source: str, target: Target) -> Stack:
    queues = {lid: outputs[key] for lid, (_, key) in QUEUES.items() if key in outputs}
    queues.update({lid: url for lid, url in target.overrides.items() if lid in QUEUES})
    parameter = target.overrides.get("RemoteConfigParameter") or outputs.get("RemoteConfigParameterName")
    if not parameter:
        if not name:
            raise StackError("the stack file names no RemoteConfigParameterName and no stack name")
        parameter = f"/{name}/remote-config"
    table = target.overrides.get("ClustersTable") or outputs.get("ClustersTableName")
    hooks = target.overrides.get("HooksTable") or outputs.get("HooksTableName")
    return Stack(name, queues, parameter, table, source, outputs, hooks)


def _from_names(name: str, clients: Clients, target: Target) -> Stack:
    sqs = clients("sqs")
    queues: dict[str, str] = {}
    for lid, (short, _) in QUEUES.items():
        if lid in target.overrides:
            queues[lid] = target.overrides[lid]
            continue
        try:
            queues[lid] = str(sqs.get_queue_url(QueueName=f"{name}-{short}")["QueueUrl"])
        except ClientError:
            continue  # reported when a command needs it
    if not queues:
        raise StackError(
            f"stack {name}: not in CloudFormation at {target.endpoint_url}, and no queue named {name}-*"
        )
    parameter = target.overrides.get("RemoteConfigParameter") or f"/{name}/remote-config"
    table = target.overrides.get("ClustersTable") or f"{name}-clusters"
    hooks = target.overrides.get("HooksTable") or f"{name}-hooks"
    return Stack(name, queues, parameter, table, "naming convention", {}, hooks)
