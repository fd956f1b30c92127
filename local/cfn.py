"""The local stack's AWS resources, created from template.yaml by the tools `sam deploy` relies on,
so local runs cannot drift from what is deployed.

`provision` checks the parameters against their constraints (`parameter_values`; the Rules are
checked by its caller with `failed_rules`, as `local.stack` does), turns the SAM
template into plain CloudFormation with aws-sam-translator (`translate`), applies a small pre-pass for
what moto's CloudFormation does not model (`prepare`), uploads placeholder code for the functions and
calls `CreateStack` on the moto server. moto then creates the resources (queues and DLQs, tables,
the SSM parameter, the bus and its rules, SNS, IAM, log groups, the functions and their event source
mappings) and resolves every intrinsic function in them (only the Rules, which moto ignores, are
evaluated here). The returned `Provisioned` answers what the Lambda service would know, read back
from moto: physical names and ARNs, each function's environment, its SQS event sources.

How it works and what the pre-pass does, and why: docs/internals.md, "How the local stack is
provisioned". Strictness about unknown properties is cfn-lint's (`sam validate --lint`, `make test`).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import boto3
import yaml
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
DEFAULT_STACK_NAME = "podwatch-local"
DEFAULT_ACCOUNT_ID = "123456789012"
#: where the functions' placeholder code goes (moto's Lambda reads code from S3, as CloudFormation does)
ARTIFACTS_BUCKET = "podwatch-local-artifacts"

Template = dict[str, Any]
#: boto3 clients are untyped here (no boto3-stubs in the project).
AwsClient = Any

SQS_QUEUE: Final = "AWS::SQS::Queue"
LAMBDA_FUNCTION: Final = "AWS::Lambda::Function"
EVENT_SOURCE_MAPPING: Final = "AWS::Lambda::EventSourceMapping"
EVENT_BUS: Final = "AWS::Events::EventBus"
DYNAMODB_TABLE: Final = "AWS::DynamoDB::Table"

#: Resource types moto 5.2's CloudFormation does not create, left out with whatever refers to them.
LEFT_OUT_TYPES: Final[Mapping[str, str]] = {
    "AWS::CloudWatch::Alarm": "moto has no CloudFormation model for alarms (test_observability checks them)",
    "AWS::ApiGatewayV2::Api": "moto models no HTTP API in CloudFormation (local/historyapi.py serves one)",
    "AWS::SQS::QueuePolicy": "moto has no CloudFormation model for queue policies (nor enforces any)",
}
#: Outputs the pre-pass adds (`Local<what><logical id>`): values moto's models drop or its list of
#: resources leaves empty, read back as moto resolved them, all in one DescribeStacks
READ_BACK = "Local"
_WITH_ARN: Final = frozenset({SQS_QUEUE, DYNAMODB_TABLE, EVENT_BUS, LAMBDA_FUNCTION})

#: The handler code moto stores and never runs (moto runs functions only with Docker): the local
#: stack runs the real handlers in-process (local.esm, local.lambda_runtime).
_PLACEHOLDER_CODE = "def lambda_handler(event, context):\n    raise RuntimeError('placeholder')\n"


class CfnError(Exception):
    """The template cannot be provisioned locally (the message says what and where)."""


# --------------------------------------------------------------------------- loading


#: libyaml's parser when PyYAML has it (ten times faster on template.yaml), the pure-Python one if not
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_BaseLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """SafeLoader plus CloudFormation's short-form tags; dates stay strings, as in CloudFormation
    (samtranslator's yaml_parse would add the tags to yaml.SafeLoader itself, for every caller)."""


_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    key = suffix if suffix in {"Ref", "Condition"} else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def parse_template(text: str) -> Template:
    """Parse a CloudFormation/SAM YAML (or JSON) document, short-form tags included."""
    loader = _CfnLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise CfnError("not a CloudFormation template: no Resources mapping")
    return data


def load_template(path: Path | str = TEMPLATE_PATH) -> Template:
    """Read template.yaml (or another template) into plain dicts with long-form intrinsics."""
    return parse_template(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- parameters and Rules


def _text(value: Any, where: str) -> str:
    """A scalar as CloudFormation passes it on: strings as-is, true/false, numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise CfnError(f"{where}: expected a scalar, got {value!r}")


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """Every template parameter's value (override or default), checked against its constraints as
    CloudFormation checks them before creating anything (moto's CloudFormation checks none)."""
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    if unknown := sorted(set(overrides) - set(declared)):
        raise CfnError(f"parameters not in the template: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        raw = overrides.get(name, spec.get("Default"))
        if raw is None:
            raise CfnError(f"parameter {name} has no default and no value was given")
        values[name] = _text(raw, f"Parameters.{name}")
        _check_parameter(name, spec, values[name])
    return values


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in {_text(v, name) for v in allowed}:
        raise CfnError(f"parameter {name}={value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(str(pattern), value):
        raise CfnError(f"parameter {name}={value!r} does not match {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise CfnError(f"parameter {name}={value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise CfnError(f"parameter {name}={value} is below {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise CfnError(f"parameter {name}={value} is above {spec['MaxValue']}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise CfnError(f"parameter {name} is shorter than {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise CfnError(f"parameter {name} is longer than {spec['MaxLength']}")


def failed_rules(template: Mapping[str, Any], parameters: Mapping[str, str]) -> list[str]:
    """The template Rules whose assertions fail for these parameter values (CloudFormation refuses
    such a stack before creating anything; moto's CloudFormation ignores Rules)."""
    failed = []
    for name, rule in (template.get("Rules") or {}).items():
        if not _rule_holds(rule.get("RuleCondition", True), parameters, f"Rules.{name}"):
            continue
        if not all(
            _rule_holds(a["Assert"], parameters, f"Rules.{name}") for a in rule.get("Assertions") or []
        ):
            failed.append(name)
    return failed


def _rule_holds(expression: Any, parameters: Mapping[str, str], where: str) -> bool:
    if isinstance(expression, bool):
        return expression
    if not isinstance(expression, dict) or len(expression) != 1:
        raise CfnError(f"{where}: not a rule function: {expression!r}")
    ((key, arg),) = expression.items()
    if key == "Fn::Equals":
        left, right = (_rule_value(v, parameters, where) for v in arg)
        return left == right
    if key == "Fn::Not":
        return not _rule_holds(arg[0], parameters, where)
    if key == "Fn::And":
        return all(_rule_holds(c, parameters, where) for c in arg)
    if key == "Fn::Or":
        return any(_rule_holds(c, parameters, where) for c in arg)
    if key == "Fn::Contains":
        values, value = arg
        return _rule_value(value, parameters, where) in {_rule_value(v, parameters, where) for v in values}
    raise CfnError(f"{where}: {key} is not evaluated locally; extend local/cfn.py")


def _rule_value(value: Any, parameters: Mapping[str, str], where: str) -> str:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        try:
            return parameters[str(value["Ref"])]
        except KeyError:
            raise CfnError(f"{where}: Ref {value['Ref']} is not a parameter") from None
    return _text(value, where)


# --------------------------------------------------------------------------- translation and pre-pass


def translate(template: Mapping[str, Any], *, parameters: Mapping[str, str], region: str) -> Template:
    """The SAM template as plain CloudFormation, by aws-sam-translator (what `sam deploy` runs). Local
    CodeUri/ContentUri become `s3://ARTIFACTS_BUCKET/<folder>` first, as `sam package` would make them
    (the translator accepts only S3 locations)."""
    from samtranslator.metrics.method_decorator import MetricsMethodWrapperSingleton
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = json.loads(json.dumps(template))  # a deep copy: the translator edits its input
    for resource in sam["Resources"].values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://{ARTIFACTS_BUCKET}/{properties[key].strip('/')}"
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the translator only reads the region
        region_name=region,
    )
    try:
        translated: Template = Translator(None, Parser(), boto_session=session).translate(
            sam, dict(parameters), get_managed_policy_map=dict
        )
    except InvalidDocumentException as exc:
        raise CfnError(f"aws-sam-translator refuses the template: {exc}") from exc
    finally:  # the translator times itself into a process-wide cache that warns at exit unless published
        MetricsMethodWrapperSingleton.get_instance().publish()
    return translated


@dataclass(frozen=True)
class Prepared:
    """The translated template as moto will create it, and what the pre-pass left out."""

    template: Template
    #: logical id -> why it is not created locally
    left_out: dict[str, str]


def prepare(template: Mapping[str, Any]) -> Prepared:
    """The pre-pass for what moto's CloudFormation does not model; one line each says why."""
    cfn: Template = json.loads(json.dumps(template))
    if clash := [name for name in cfn.get("Outputs") or {} if name.startswith(READ_BACK)]:
        raise CfnError(f"outputs {', '.join(clash)}: the prefix {READ_BACK} is the local stack's own")
    left_out = _leave_out(cfn)
    resources: dict[str, Any] = cfn["Resources"]
    read_back: dict[str, tuple[str, Any]] = {}  # output name -> (resource, expression)
    for lid, resource in resources.items():
        properties = resource.setdefault("Properties", {})
        if resource["Type"] == EVENT_SOURCE_MAPPING:
            # an enabled mapping makes moto invoke the function on every send (Docker); local.esm polls
            read_back[f"{READ_BACK}Enabled{lid}"] = (lid, properties.get("Enabled", True))
            properties["Enabled"] = False
        elif resource["Type"] == DYNAMODB_TABLE:
            read_back.update(_prepare_table(lid, properties))
        if resource["Type"] in _WITH_ARN:
            read_back[f"{READ_BACK}Arn{lid}"] = (lid, {"Fn::GetAtt": [lid, "Arn"]})
    # moto 5.2's EventBus has no physical id, so its Ref yields an object: CloudFormation's Ref is the name
    bus_names = {lid: _bus_name(lid, r) for lid, r in resources.items() if r["Type"] == EVENT_BUS}
    read_back.update({f"{READ_BACK}Ref{lid}": (lid, name) for lid, name in bus_names.items()})
    cfn["Resources"] = _replace_refs(resources, bus_names)
    cfn["Outputs"] = _replace_refs(cfn.get("Outputs") or {}, bus_names)
    for name, (lid, value) in read_back.items():
        condition = resources[lid].get("Condition")
        value = _text(value, name) if isinstance(value, bool | int | float) else value  # outputs are strings
        cfn["Outputs"][name] = {"Value": value, **({"Condition": condition} if condition else {})}
    return Prepared(template=cfn, left_out=left_out)


def _prepare_table(lid: str, properties: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    sse = properties.get("SSESpecification")
    if isinstance(sse, dict) and "SSEEnabled" in sse:
        # moto's table model reads SSESpecification in the API's shape (Enabled, not SSEEnabled)
        sse["Enabled"] = sse["SSEEnabled"]
    # ... and drops TTL and point-in-time recovery: read back, then set through the API (TableSettings)
    ttl = properties.get("TimeToLiveSpecification") or {}
    pitr = properties.get("PointInTimeRecoverySpecification") or {}
    values = {
        "TtlEnabled": ttl.get("Enabled", False),
        "TtlAttribute": ttl.get("AttributeName", ""),
        "Pitr": pitr.get("PointInTimeRecoveryEnabled", False),
    }
    return {f"{READ_BACK}{what}{lid}": (lid, value) for what, value in values.items()}


@dataclass(frozen=True)
class TableSettings:
    """What moto's table model drops, set through the DynamoDB API once the stack exists."""

    ttl_attribute: str | None
    point_in_time_recovery: bool

    @classmethod
    def read_back(cls, lid: str, values: Mapping[str, str]) -> TableSettings:
        ttl_on = _is_true(values[f"{READ_BACK}TtlEnabled{lid}"])
        return cls(
            ttl_attribute=values[f"{READ_BACK}TtlAttribute{lid}"] if ttl_on else None,
            point_in_time_recovery=_is_true(values[f"{READ_BACK}Pitr{lid}"]),
        )


def _is_true(text: str) -> bool:
    """A boolean as moto writes it into an output (`True`, `true`)."""
    return text.lower() == "true"


def _leave_out(cfn: Template) -> dict[str, str]:
    """Drop LEFT_OUT_TYPES and, transitively, every resource and output that refers to one."""
    resources: dict[str, Any] = cfn["Resources"]
    gone = {lid: LEFT_OUT_TYPES[r["Type"]] for lid, r in resources.items() if r["Type"] in LEFT_OUT_TYPES}
    changed = True
    while changed:
        changed = False
        for lid, resource in resources.items():
            if lid not in gone and (hit := _references(resource, resources) & set(gone)):
                gone[lid] = f"refers to {', '.join(sorted(hit))}, which is left out"
                changed = True
    for lid in gone:
        del resources[lid]
    outputs = cfn.get("Outputs") or {}
    for name in [
        n for n, output in outputs.items() if _references(output, {**resources, **gone}) & set(gone)
    ]:
        del outputs[name]
    return gone


_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


def _references(value: Any, names: Mapping[str, Any]) -> set[str]:
    """The resources `value` refers to (Ref, GetAtt, Sub variables, DependsOn)."""
    return set(_walk_references(value, names))


def _walk_references(value: Any, names: Mapping[str, Any]) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _walk_references(item, names)
        return
    if not isinstance(value, dict):
        return
    for key, arg in value.items():
        if key in {"Ref", "DependsOn"}:
            yield from (n for n in ([arg] if isinstance(arg, str) else arg) if n in names)
        elif key == "Fn::GetAtt":
            yield str(arg[0])
        elif key == "Fn::Sub":
            text, variables = (arg[0], arg[1] or {}) if isinstance(arg, list) else (arg, {})
            heads = (v.split(".", 1)[0] for v in _SUB_VARIABLE.findall(str(text)) if v not in variables)
            yield from (h for h in heads if h in names)
            yield from _walk_references(variables, names)
        else:
            yield from _walk_references(arg, names)


def _bus_name(lid: str, resource: Mapping[str, Any]) -> Any:
    name = (resource.get("Properties") or {}).get("Name")
    if name is None:
        raise CfnError(
            f"Resources.{lid}: the local stack needs the bus's Name (moto cannot Ref an unnamed bus)"
        )
    return name


def _replace_refs(value: Any, replacements: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [_replace_refs(item, replacements) for item in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in replacements:
            return replacements[value["Ref"]]
        return {key: _replace_refs(item, replacements) for key, item in value.items()}
    return value


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class AwsClients:
    """The boto3 clients provisioning and the tests use, usually pointed at a moto server."""

    sqs: AwsClient
    dynamodb: AwsClient
    ssm: AwsClient
    events: AwsClient
    cloudformation: AwsClient
    s3: AwsClient
    lambda_: AwsClient

    @classmethod
    def from_factory(cls, make: Callable[[str], AwsClient]) -> AwsClients:
        """From a `service -> client` callable, such as `local.moto.MotoServer.client`."""
        services = ("sqs", "dynamodb", "ssm", "events", "cloudformation", "s3")
        return cls(**{s: make(s) for s in services}, lambda_=make("lambda"))

    @classmethod
    def for_endpoint(
        cls, endpoint_url: str, *, region: str, session: boto3.session.Session | None = None
    ) -> AwsClients:
        """Clients for `endpoint_url`; without a session, with moto's dummy credentials (never real ones)."""
        if session is None:
            session = boto3.session.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
                region_name=region,
            )
        return cls.from_factory(lambda service: session.client(service, endpoint_url=endpoint_url))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SqsEventSource:
    """One SQS event source mapping of a function, as the Lambda service would poll it."""

    queue_logical_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    maximum_batching_window_seconds: int
    report_batch_item_failures: bool
    #: as the template says (moto holds every mapping disabled: local.esm is the poller)
    enabled: bool
    #: SAM's logical id of the generated mapping (`<function><event>`)
    mapping_logical_id: str
    #: the mapping's UUID in moto's Lambda (config-sync retunes it there)
    mapping_id: str


@dataclass(frozen=True)
class FunctionSpec:
    """What the Lambda runtime needs to know about one function."""

    logical_id: str
    #: the function's physical name (moto's, as CloudFormation's: `<stack>-<logical id>-<suffix>`)
    name: str
    code_uri: str
    handler: str
    timeout: int
    runtime: str | None = None
    memory_size: int = 128

    @property
    def code_dir(self) -> Path:
        """The function's folder, absolute (CodeUri is relative to the template)."""
        return (ROOT / self.code_uri).resolve()

    @property
    def module(self) -> str:
        """`app` for `app.lambda_handler`."""
        return self.handler.rpartition(".")[0]

    @property
    def function(self) -> str:
        """`lambda_handler` for `app.lambda_handler`."""
        return self.handler.rpartition(".")[2]


class Provisioned:
    """A stack created on moto: its resources as CloudFormation lists them, and what the Lambda
    service would know about its functions (all read back from moto, nothing recomputed here)."""

    def __init__(
        self,
        *,
        stack_name: str,
        region: str,
        account_id: str,
        parameters: Mapping[str, str],
        prepared: Prepared,
        clients: AwsClients,
    ) -> None:
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.parameters = dict(parameters)
        self.template: Template = prepared.template
        #: logical id -> why it is not created locally (LEFT_OUT_TYPES and what refers to them)
        self.left_out = prepared.left_out
        self._clients = clients
        summaries = _paginate(
            clients.cloudformation, "list_stack_resources", "StackResourceSummaries", StackName=stack_name
        )
        (stack,) = clients.cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
        self._outputs = {k: v for k, v in outputs.items() if not k.startswith(READ_BACK)}
        #: the pre-pass's outputs (`Local<what><logical id>`), as moto resolved them
        self.read_back = {k: v for k, v in outputs.items() if k.startswith(READ_BACK)}
        self._resources: dict[str, tuple[str, str]] = {
            s["LogicalResourceId"]: (
                s["ResourceType"],
                self.read_back.get(f"{READ_BACK}Ref{s['LogicalResourceId']}")
                or s.get("PhysicalResourceId", ""),
            )
            for s in summaries
            if s.get("LogicalResourceId")  # moto lists resources whose Condition is false with no id
        }

    def physical(self, logical_id: str) -> str:
        """What `Ref` gives: a queue's URL, a table's name, a parameter's name, a function's name,
        an event source mapping's UUID, a bus's name."""
        try:
            return self._resources[logical_id][1]
        except KeyError:
            why = self.left_out.get(logical_id, "no such resource in the stack")
            raise CfnError(f"{logical_id} is not created locally: {why}") from None

    def resource_ids(self) -> set[str]:
        """The logical id of every resource created."""
        return set(self._resources)

    def resource_type(self, logical_id: str) -> str:
        self.physical(logical_id)
        return self._resources[logical_id][0]

    def arn(self, logical_id: str) -> str:
        """What `Fn::GetAtt <id>.Arn` gives (a queue, table, bus or function), as moto resolved it."""
        self.physical(logical_id)
        try:
            return self.read_back[f"{READ_BACK}Arn{logical_id}"]
        except KeyError:
            raise CfnError(f"{logical_id} ({self.resource_type(logical_id)}) has no ARN read back") from None

    def queue_urls(self) -> dict[str, str]:
        """logical id -> URL of every queue created."""
        return {lid: physical for lid, (kind, physical) in self._resources.items() if kind == SQS_QUEUE}

    def dead_letter_queues(self) -> list[str]:
        """Queues that are the dead-letter target of another queue (read from the queues' RedrivePolicy)."""
        return list(self._dead_letter_queues)

    @cached_property
    def _dead_letter_queues(self) -> list[str]:
        by_arn = {self.arn(lid): lid for lid in self.queue_urls()}
        dlqs: list[str] = []
        for url in self.queue_urls().values():
            attributes = self._clients.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["RedrivePolicy"]
            )
            policy = attributes.get("Attributes", {}).get("RedrivePolicy")
            target = by_arn.get(json.loads(policy)["deadLetterTargetArn"]) if policy else None
            if target and target not in dlqs:
                dlqs.append(target)
        return dlqs

    @cached_property
    def _configurations(self) -> dict[str, dict[str, Any]]:
        lambda_ = self._clients.lambda_
        return {
            lid: lambda_.get_function_configuration(FunctionName=physical)
            for lid, (kind, physical) in self._resources.items()
            if kind == LAMBDA_FUNCTION
        }

    def functions(self) -> dict[str, FunctionSpec]:
        """Every function of the stack, as moto's Lambda has it (Globals applied by the translator)."""
        code = {
            lid: r["Properties"]["Code"]["S3Key"]
            for lid, r in self.template["Resources"].items()
            if r["Type"] == LAMBDA_FUNCTION
        }
        return {
            lid: FunctionSpec(
                logical_id=lid,
                name=str(config["FunctionName"]),
                code_uri=code[lid],
                handler=str(config["Handler"]),
                timeout=int(config["Timeout"]),
                runtime=config.get("Runtime"),
                memory_size=int(config["MemorySize"]),
            )
            for lid, config in self._configurations.items()
        }

    def function_environment(self, function_logical_id: str) -> dict[str, str]:
        """The function's environment variables, as moto's CloudFormation resolved them."""
        if self._resources.get(function_logical_id, ("", ""))[0] != LAMBDA_FUNCTION:
            raise CfnError(f"{function_logical_id} is not a function of the stack")
        variables = self._configurations[function_logical_id].get("Environment", {}).get("Variables", {})
        return {str(k): str(v) for k, v in variables.items()}

    def event_sources(self, function_logical_id: str) -> list[SqsEventSource]:
        """The function's SQS event source mappings, with the queue each one polls."""
        name = self.physical(function_logical_id)
        mappings = _paginate(
            self._clients.lambda_, "list_event_source_mappings", "EventSourceMappings", FunctionName=name
        )
        queues = {self.arn(lid): lid for lid in self.queue_urls()}
        mapping_ids = {p: lid for lid, (kind, p) in self._resources.items() if kind == EVENT_SOURCE_MAPPING}
        sources = []
        for mapping in mappings:
            queue_id = queues.get(str(mapping["EventSourceArn"]))
            if queue_id is None:
                continue  # not an SQS queue of this stack
            logical_id = mapping_ids.get(str(mapping["UUID"]), "")
            sources.append(
                SqsEventSource(
                    queue_logical_id=queue_id,
                    queue_url=self.physical(queue_id),
                    queue_arn=str(mapping["EventSourceArn"]),
                    batch_size=int(mapping.get("BatchSize") or 10),
                    maximum_batching_window_seconds=int(mapping.get("MaximumBatchingWindowInSeconds") or 0),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (mapping.get("FunctionResponseTypes") or []),
                    enabled=_is_true(self.read_back.get(f"{READ_BACK}Enabled{logical_id}", "true")),
                    mapping_logical_id=logical_id,
                    mapping_id=str(mapping["UUID"]),
                )
            )
        return sorted(sources, key=lambda s: s.mapping_logical_id)

    def outputs(self) -> dict[str, str]:
        """The stack's Outputs, as moto resolved them (those naming left-out resources are left out)."""
        return dict(self._outputs)


def _paginate(client: AwsClient, operation: str, key: str, **request: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**request):
        items += page.get(key, [])
    return items


# --------------------------------------------------------------------------- provisioning


def provision(
    template: Mapping[str, Any],
    *,
    clients: AwsClients | Callable[[str], AwsClient],
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: Mapping[str, str] | None = None,
    region: str | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> Provisioned:
    """Create the template's stack on the moto server `clients` point at (or update it in place if
    one of that name exists) and return the answers.

    `clients`: an `AwsClients` or a `service -> client` factory; `region` defaults to the clients'.
    `parameters` override the template's defaults and are checked against their constraints, as
    CloudFormation would; the Rules are the caller's to check (`failed_rules`: tests provision
    stacks of any Stage without a manager).
    """
    aws = clients if isinstance(clients, AwsClients) else AwsClients.from_factory(clients)
    region = region or str(aws.cloudformation.meta.region_name)
    values = parameter_values(template, parameters or {})
    prepared = prepare(translate(template, parameters=values, region=region))
    _upload_placeholder_code(aws.s3, prepared.template)
    request = {
        "StackName": stack_name,
        "TemplateBody": json.dumps(prepared.template),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    }
    if _stack_exists(aws.cloudformation, stack_name):
        aws.cloudformation.update_stack(**request)
    else:
        aws.cloudformation.create_stack(**request)
    _check_complete(aws.cloudformation, stack_name, prepared.template)
    stack = Provisioned(
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        parameters=values,
        prepared=prepared,
        clients=aws,
    )
    for lid in stack.resource_ids():
        if stack.resource_type(lid) == DYNAMODB_TABLE:
            _apply_table_settings(
                aws.dynamodb, stack.physical(lid), TableSettings.read_back(lid, stack.read_back)
            )
    return stack


def _apply_table_settings(dynamodb: AwsClient, table: str, settings: TableSettings) -> None:
    """TTL and point-in-time recovery as the template says (idempotent: an update re-applies them)."""
    if settings.ttl_attribute is not None:
        current = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if (
            current.get("TimeToLiveStatus") != "ENABLED"
            or current.get("AttributeName") != settings.ttl_attribute
        ):
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"AttributeName": settings.ttl_attribute, "Enabled": True},
            )
    dynamodb.update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": settings.point_in_time_recovery},
    )


def _upload_placeholder_code(s3: AwsClient, template: Mapping[str, Any]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", _PLACEHOLDER_CODE)
    try:
        s3.head_bucket(Bucket=ARTIFACTS_BUCKET)
    except ClientError:  # outside us-east-1, S3 wants the bucket's region named (as `sam deploy`'s own)
        region = str(s3.meta.region_name)
        where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET, **where)
    keys = set()
    for resource in template["Resources"].values():
        properties = resource.get("Properties") or {}
        location = properties.get("Code") or properties.get("Content") or {}
        if isinstance(location, dict) and location.get("S3Bucket") == ARTIFACTS_BUCKET:
            keys.add(str(location["S3Key"]))
    for key in sorted(keys):
        s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=buffer.getvalue())


def _stack_exists(cloudformation: AwsClient, stack_name: str) -> bool:
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError:
        return False
    return str(stack["StackStatus"]) != "DELETE_COMPLETE"


def _check_complete(cloudformation: AwsClient, stack_name: str, template: Mapping[str, Any]) -> None:
    """The stack is complete and moto created every resource (it skips types it has no model for)."""
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    if not str(stack["StackStatus"]).endswith("_COMPLETE") or "ROLLBACK" in str(stack["StackStatus"]):
        raise CfnError(f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
    created = {
        s["LogicalResourceId"]
        for s in _paginate(
            cloudformation, "list_stack_resources", "StackResourceSummaries", StackName=stack_name
        )
    }
    conditions = _conditional(template)
    missing = sorted(
        f"{lid} ({r['Type']})"
        for lid, r in template["Resources"].items()
        if lid not in created and lid not in conditions
    )
    if missing:
        raise CfnError(
            f"moto created no {', '.join(missing)}: add the type to LEFT_OUT_TYPES in local/cfn.py "
            "with the reason, or give moto a model for it"
        )


def _conditional(template: Mapping[str, Any]) -> set[str]:
    """Resources with a Condition (moto leaves out those whose condition is false)."""
    return {lid for lid, r in template["Resources"].items() if "Condition" in r}
