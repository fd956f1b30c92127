"""The local stack's AWS resources, created from template.yaml itself, so local runs cannot drift
from what `sam deploy` creates.

`load_template` reads the template with the short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...) turned
into their long forms. `provision` creates, in dependency order, every `AWS::SQS::Queue`,
`AWS::DynamoDB::Table`, `AWS::SSM::Parameter`, `AWS::Events::EventBus`, `AWS::Events::Rule` (with its
targets) and `AWS::SQS::QueuePolicy` with the properties the
template gives them (resolved against its Parameters, Conditions and the pseudo parameters), and
records every other resource without creating it. The returned `Provisioned` answers what the
Lambda service would know: physical names and ARNs, each function's resolved environment, its SQS
event sources.

Intrinsic functions resolved: Ref, Fn::GetAtt, Fn::Sub (string and list forms), Fn::If,
Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap,
Fn::Base64, Fn::ToJsonString. A property this module does not know is an error, never silently
dropped: extend the table here when the template grows.

Provisioning is idempotent: an existing queue gets the template's attributes again, an existing
table its TTL and point-in-time recovery settings, and an existing parameter keeps its value (as
CloudFormation keeps a value written after deploy while the template's literal is unchanged).
"""

from __future__ import annotations

import base64
import graphlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import boto3
import yaml
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
DEFAULT_STACK_NAME = "podwatch-local"
DEFAULT_ACCOUNT_ID = "123456789012"

Template = dict[str, Any]
#: boto3 clients are untyped here (no boto3-stubs in the project).
AwsClient = Any
ParameterValue = str | list[str]

SQS_QUEUE: Final = "AWS::SQS::Queue"
DYNAMODB_TABLE: Final = "AWS::DynamoDB::Table"
SSM_PARAMETER: Final = "AWS::SSM::Parameter"
SERVERLESS_FUNCTION: Final = "AWS::Serverless::Function"
EVENT_BUS: Final = "AWS::Events::EventBus"
EVENT_RULE: Final = "AWS::Events::Rule"
QUEUE_POLICY: Final = "AWS::SQS::QueuePolicy"
PROVISIONED_TYPES: Final = frozenset(
    {SQS_QUEUE, DYNAMODB_TABLE, SSM_PARAMETER, EVENT_BUS, EVENT_RULE, QUEUE_POLICY}
)


class CfnError(Exception):
    """The template cannot be resolved or provisioned locally (the message says what and where)."""


class NotProvisionedError(CfnError):
    """A Ref or GetAtt names a resource the local stack does not create (a function, a role, ...)."""


# --------------------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """SafeLoader plus CloudFormation's short-form tags. Dates stay strings, as in CloudFormation."""


_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_node(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node.tag}", node.start_mark)


def _long_form(key: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {key: _construct_node(loader, node)}

    return construct


def _construct_get_att(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct_node(loader, node)
    if isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {"Fn::GetAtt": value}


for _name in (
    "And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "If", "ImportValue", "Join",
    "Length", "Not", "Or", "Select", "Split", "Sub", "ToJsonString", "Transform",
):  # fmt: skip
    _CfnLoader.add_constructor(f"!{_name}", _long_form(f"Fn::{_name}"))
_CfnLoader.add_constructor("!Ref", _long_form("Ref"))
_CfnLoader.add_constructor("!Condition", _long_form("Condition"))
_CfnLoader.add_constructor("!GetAtt", _construct_get_att)


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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SqsEventSource:
    """One SQS event source mapping of a function, as the Lambda service would poll it."""

    name: str
    queue_logical_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    maximum_batching_window_seconds: int
    report_batch_item_failures: bool
    enabled: bool = True
    #: SAM's logical id of the generated mapping (`<function><event>`)
    mapping_logical_id: str = ""
    #: UUID of the mapping created in moto by `provision_functions` (None before)
    mapping_id: str | None = None


@dataclass(frozen=True)
class FunctionSpec:
    """What `sam build` and the Lambda runtime need to know about one function."""

    logical_id: str
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


@dataclass(frozen=True)
class AwsClients:
    """The boto3 clients provisioning uses, usually pointed at a moto server."""

    sqs: AwsClient
    dynamodb: AwsClient
    ssm: AwsClient
    #: EventBridge (the notifications bus); None: a template with a bus cannot be provisioned
    events: AwsClient | None = None

    @classmethod
    def from_factory(cls, make: Callable[[str], AwsClient]) -> AwsClients:
        """From a `service -> client` callable, such as `local.moto.MotoServer.client`."""
        return cls(sqs=make("sqs"), dynamodb=make("dynamodb"), ssm=make("ssm"), events=make("events"))

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


class _NoValue:
    """`Ref: AWS::NoValue`: removes the property or list item it stands for."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _partition(region: str) -> tuple[str, str]:
    if region.startswith("cn-"):
        return "aws-cn", "amazonaws.com.cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov", "amazonaws.com"
    return "aws", "amazonaws.com"


def _text(value: Any, where: str) -> str:
    """A scalar as CloudFormation passes it to a service: strings as-is, true/false, numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise CfnError(f"{where}: expected a scalar, got {value!r}")


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise CfnError(f"{where}: expected a boolean, got {value!r}")


def _as_int(value: Any, where: str) -> int:
    try:
        return int(_text(value, where))
    except ValueError as exc:
        raise CfnError(f"{where}: expected an integer, got {value!r}") from exc


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class Provisioned:
    """The local stack's resources and the template resolved against them.

    Built by `provision`; every answer is derived from the template, so the local stack and the
    deployed one agree by construction.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        stack_name: str,
        region: str,
        account_id: str,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.template: Mapping[str, Any] = template
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.partition, self.url_suffix = _partition(region)
        self.parameters: dict[str, ParameterValue] = self._parameter_values(parameters or {})
        #: logical id -> resource type, for every resource the local stack does not create
        #: (functions, roles, log groups, ...) or whose Condition is false.
        self.ignored: dict[str, str] = {}
        self._resources: dict[str, Any] = dict(template.get("Resources") or {})
        self._physical: dict[str, str] = {}
        self._attributes: dict[str, dict[str, str]] = {}
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    # ------------------------------------------------------------------ public answers

    def physical(self, logical_id: str) -> str:
        """What `Ref` gives: a queue's URL, a table's name, a parameter's name, a function's name,
        an event source mapping's UUID (`provision_functions`)."""
        if logical_id in self._physical:
            return self._physical[logical_id]
        self._resource(logical_id)
        if logical_id not in self._physical:
            raise NotProvisionedError(
                f"{logical_id} ({self.ignored.get(logical_id, 'unknown type')}) is not created locally"
            )
        return self._physical[logical_id]

    def arn(self, logical_id: str) -> str:
        """The ARN of a queue, table or parameter."""
        self.physical(logical_id)
        return self._attributes[logical_id]["Arn"]

    def attribute(self, logical_id: str, attribute: str) -> str:
        """What `Fn::GetAtt` gives (Arn, QueueUrl, QueueName, StreamArn, ...)."""
        self.physical(logical_id)
        try:
            return self._attributes[logical_id][attribute]
        except KeyError:
            raise CfnError(f"{logical_id} has no attribute {attribute} locally") from None

    def queue_urls(self) -> dict[str, str]:
        """logical id -> URL of every queue created."""
        return {
            lid: url
            for lid, url in self._physical.items()
            if lid in self._resources and self._type(lid) == SQS_QUEUE
        }

    def functions(self) -> dict[str, FunctionSpec]:
        """Every `AWS::Serverless::Function` whose Condition holds, with Globals applied."""
        specs: dict[str, FunctionSpec] = {}
        for lid, resource in self._resources.items():
            if resource.get("Type") != SERVERLESS_FUNCTION or not self._enabled(resource):
                continue
            where = f"Resources.{lid}"
            code_uri = self.resolve(self._function_property(lid, "CodeUri"))
            handler = self.resolve(self._function_property(lid, "Handler"))
            if not isinstance(code_uri, str) or not isinstance(handler, str):
                raise CfnError(f"{where}: CodeUri and Handler must be strings locally")
            runtime = self.resolve(self._function_property(lid, "Runtime"))
            specs[lid] = FunctionSpec(
                logical_id=lid,
                code_uri=code_uri,
                handler=handler,
                timeout=_as_int(self.resolve(self._function_property(lid, "Timeout", 3)), where),
                runtime=None if runtime is None else _text(runtime, where),
                memory_size=_as_int(self.resolve(self._function_property(lid, "MemorySize", 128)), where),
            )
        return specs

    def function_environment(self, function_logical_id: str) -> dict[str, str]:
        """Globals.Function.Environment merged with the function's own (the function wins), resolved."""
        self._function(function_logical_id)
        globals_env = self._globals().get("Environment", {}).get("Variables", {})
        own_env = self._properties(function_logical_id).get("Environment", {}).get("Variables", {})
        environment: dict[str, str] = {}
        for name, raw in {**globals_env, **own_env}.items():
            value = self.resolve(raw)
            if value is not NO_VALUE:
                environment[name] = _text(value, f"{function_logical_id}.Environment.{name}")
        return environment

    def event_sources(self, function_logical_id: str) -> list[SqsEventSource]:
        """The function's SQS events, with the queue each one polls."""
        self._function(function_logical_id)
        queue_by_arn = {self._attributes[lid]["Arn"]: lid for lid in self.queue_urls()}
        sources: list[SqsEventSource] = []
        for name, event in (self._properties(function_logical_id).get("Events") or {}).items():
            if event.get("Type") != "SQS":
                continue
            where = f"{function_logical_id}.Events.{name}"
            props = event.get("Properties") or {}
            queue_arn = self.resolve(props.get("Queue"))
            if queue_arn not in queue_by_arn:
                raise CfnError(f"{where}: queue {queue_arn!r} is not a queue of this stack")
            queue_id = queue_by_arn[queue_arn]
            response_types = self.resolve(props.get("FunctionResponseTypes", []))
            sources.append(
                SqsEventSource(
                    name=name,
                    queue_logical_id=queue_id,
                    queue_url=self._physical[queue_id],
                    queue_arn=queue_arn,
                    batch_size=_as_int(self.resolve(props.get("BatchSize", 10)), where),
                    maximum_batching_window_seconds=_as_int(
                        self.resolve(props.get("MaximumBatchingWindowInSeconds", 0)), where
                    ),
                    report_batch_item_failures="ReportBatchItemFailures" in response_types,
                    enabled=_as_bool(self.resolve(props.get("Enabled", True)), where),
                    mapping_logical_id=f"{function_logical_id}{name}",
                    mapping_id=self._physical.get(f"{function_logical_id}{name}"),
                )
            )
        return sources

    def register(self, logical_id: str, physical_id: str, **attributes: str) -> None:
        """Record a resource created outside `provision` (a function, a SAM-generated event source
        mapping), so Ref / GetAtt / Sub resolve to it."""
        self._physical[logical_id] = physical_id
        self._attributes[logical_id] = dict(attributes)

    def outputs(self) -> dict[str, str]:
        """The template's Outputs that only name resources created locally (others are left out)."""
        values: dict[str, str] = {}
        for name, output in (self.template.get("Outputs") or {}).items():
            if "Condition" in output and not self.condition(output["Condition"]):
                continue
            try:
                values[name] = _text(self.resolve(output["Value"]), f"Outputs.{name}")
            except NotProvisionedError:
                continue
        return values

    def condition(self, name: str) -> bool:
        """The value of a template Condition."""
        if name in self._conditions:
            return self._conditions[name]
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise CfnError(f"unknown condition {name}")
        if name in self._evaluating:
            raise CfnError(f"condition {name} refers to itself")
        self._evaluating.add(name)
        try:
            self._conditions[name] = self._evaluate_condition(conditions[name], f"Conditions.{name}")
        finally:
            self._evaluating.discard(name)
        return self._conditions[name]

    def failed_rules(self) -> list[str]:
        """The template Rules (as CloudFormation checks them before creating anything) whose
        assertions fail for these parameters; `provision` does not enforce them (tests provision
        stacks of any Stage without a manager), the caller decides."""
        failed = []
        for name, rule in (self.template.get("Rules") or {}).items():
            where = f"Rules.{name}"
            if not self._evaluate_condition(rule.get("RuleCondition", True), where):
                continue
            if not all(self._evaluate_condition(a["Assert"], where) for a in rule.get("Assertions") or []):
                failed.append(name)
        return failed

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic function in `value` (`NO_VALUE` where `AWS::NoValue` remains)."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    return self._intrinsic(key, arg)
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        return value

    # ------------------------------------------------------------------ parameters and conditions

    def _parameter_values(self, overrides: Mapping[str, str]) -> dict[str, ParameterValue]:
        declared: Mapping[str, Any] = self.template.get("Parameters") or {}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise CfnError(f"parameters not in the template: {', '.join(unknown)}")
        values: dict[str, ParameterValue] = {}
        for name, spec in declared.items():
            raw = overrides.get(name, spec.get("Default"))
            if raw is None:
                raise CfnError(f"parameter {name} has no default and no value was given")
            text = _text(raw, f"Parameters.{name}")
            self._check_parameter(name, spec, text)
            kind = str(spec.get("Type", "String"))
            is_list = kind == "CommaDelimitedList" or kind.startswith("List<")
            values[name] = [item.strip() for item in text.split(",")] if is_list else text
        return values

    @staticmethod
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

    def _evaluate_condition(self, expression: Any, where: str) -> bool:
        if isinstance(expression, bool):
            return expression
        if not isinstance(expression, dict) or len(expression) != 1:
            raise CfnError(f"{where}: not a condition: {expression!r}")
        ((key, arg),) = expression.items()
        if key == "Condition":
            return self.condition(str(arg))
        if key == "Fn::Equals":
            left, right = (self.resolve(v) for v in arg)
            return bool(self._comparable(left) == self._comparable(right))
        if key == "Fn::Not":
            return not self._evaluate_condition(arg[0], where)
        if key == "Fn::And":
            return all(self._evaluate_condition(c, where) for c in arg)
        if key == "Fn::Or":
            return any(self._evaluate_condition(c, where) for c in arg)
        raise CfnError(f"{where}: {key} is not a condition function")

    @staticmethod
    def _comparable(value: Any) -> Any:
        return _text(value, "Fn::Equals") if isinstance(value, bool | int | float) else value

    # ------------------------------------------------------------------ intrinsic functions

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self._ref(str(arg))
        if key == "Fn::GetAtt":
            resource, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
            return self.attribute(str(resource), str(self.resolve(attribute)))
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(_text(v, "Fn::Join") for v in self.resolve(items))
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            delimiter, text = self.resolve(arg)
            return str(text).split(str(delimiter))
        if key == "Fn::FindInMap":
            mapping, top, second = (str(v) for v in self.resolve(arg))
            try:
                return self.template["Mappings"][mapping][top][second]
            except KeyError:
                raise CfnError(f"Fn::FindInMap: no {mapping}.{top}.{second}") from None
        if key == "Fn::Base64":
            return base64.b64encode(_text(self.resolve(arg), key).encode()).decode()
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        raise CfnError(f"{key} is not resolved by the local stack")

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        pseudo: dict[str, Any] = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::StackId": (
                f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:"
                f"stack/{self.stack_name}/00000000-0000-0000-0000-000000000000"
            ),
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self._physical:  # includes SAM-generated resources registered by provision_functions
            return self._physical[name]
        if name in self._resources:
            return self.physical(name)
        raise CfnError(f"Ref {name}: no such parameter, pseudo parameter or resource")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _text(variables[name], f"Fn::Sub {name}")
            if "." in name and name.split(".", 1)[0] in self._resources:
                resource, attribute = name.split(".", 1)
                return self.attribute(resource, attribute)
            return _text(self._ref(name), f"Fn::Sub {name}")

        return _SUB_VARIABLE.sub(replace, str(text))

    # ------------------------------------------------------------------ template access

    def _resource(self, logical_id: str) -> Mapping[str, Any]:
        try:
            resource: Mapping[str, Any] = self._resources[logical_id]
        except KeyError:
            raise CfnError(f"no resource {logical_id} in the template") from None
        return resource

    def _type(self, logical_id: str) -> str:
        return str(self._resource(logical_id).get("Type", ""))

    def _properties(self, logical_id: str) -> Mapping[str, Any]:
        properties: Mapping[str, Any] = self._resource(logical_id).get("Properties") or {}
        return properties

    def _enabled(self, resource: Mapping[str, Any]) -> bool:
        return "Condition" not in resource or self.condition(str(resource["Condition"]))

    def _globals(self) -> Mapping[str, Any]:
        function_globals: Mapping[str, Any] = (self.template.get("Globals") or {}).get("Function") or {}
        return function_globals

    def _function(self, logical_id: str) -> None:
        if self._type(logical_id) != SERVERLESS_FUNCTION:
            raise CfnError(f"{logical_id} is not an {SERVERLESS_FUNCTION}")

    def _function_property(self, logical_id: str, name: str, default: Any = None) -> Any:
        return self._properties(logical_id).get(name, self._globals().get(name, default))

    # ------------------------------------------------------------------ provisioning

    def _dependencies(self, value: Any) -> Iterator[str]:
        """Resources `value` refers to (Ref, GetAtt, Sub variables)."""
        if isinstance(value, list):
            for item in value:
                yield from self._dependencies(item)
        elif isinstance(value, dict):
            for key, arg in value.items():
                if key == "Ref" and str(arg) in self._resources:
                    yield str(arg)
                elif key == "Fn::GetAtt":
                    yield str(arg.split(".", 1)[0] if isinstance(arg, str) else arg[0])
                elif key == "Fn::Sub":
                    text, variables = (arg[0], arg[1] or {}) if isinstance(arg, list) else (arg, {})
                    for name in _SUB_VARIABLE.findall(str(text)):
                        head = name.split(".", 1)[0]
                        if name not in variables and head in self._resources:
                            yield head
                    yield from self._dependencies(variables)
                else:
                    yield from self._dependencies(arg)

    def _provision_order(self) -> list[str]:
        graph: dict[str, set[str]] = {}
        for lid, resource in self._resources.items():
            if resource.get("Type") not in PROVISIONED_TYPES or not self._enabled(resource):
                self.ignored[lid] = str(resource.get("Type"))
                continue
            depends_on = resource.get("DependsOn", [])
            explicit = [depends_on] if isinstance(depends_on, str) else list(depends_on)
            graph[lid] = set(self._dependencies(resource.get("Properties") or {})) | set(explicit)
        try:
            order = list(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as exc:
            raise CfnError(f"dependency cycle between {exc.args[1]}") from exc
        return [lid for lid in order if lid in graph]

    def _create_all(self, clients: AwsClients) -> None:
        creators: dict[str, Callable[[str, Mapping[str, Any], AwsClients], None]] = {
            SQS_QUEUE: self._create_queue,
            DYNAMODB_TABLE: self._create_table,
            SSM_PARAMETER: self._create_parameter,
            EVENT_BUS: self._create_event_bus,
            EVENT_RULE: self._create_event_rule,
            QUEUE_POLICY: self._create_queue_policy,
        }
        for lid in self._provision_order():
            properties = self.resolve(dict(self._properties(lid)))
            creators[self._type(lid)](lid, properties, clients)

    @staticmethod
    def _check_known(lid: str, properties: Mapping[str, Any], known: frozenset[str]) -> None:
        unknown = sorted(set(properties) - known)
        if unknown:
            raise CfnError(
                f"Resources.{lid}: local/cfn.py does not create {', '.join(unknown)} yet; extend it"
                " so the local stack keeps matching the template"
            )

    def _create_queue(self, lid: str, properties: Mapping[str, Any], clients: AwsClients) -> None:
        self._check_known(lid, properties, _SQS_PROPERTIES | {"QueueName", "Tags"})
        fifo = _as_bool(properties.get("FifoQueue", False), f"{lid}.FifoQueue")
        name = _text(
            properties.get("QueueName") or f"{self.stack_name}-{lid}" + (".fifo" if fifo else ""), lid
        )
        attributes = {
            key: json.dumps(value) if isinstance(value, dict | list) else _text(value, f"{lid}.{key}")
            for key, value in properties.items()
            if key in _SQS_PROPERTIES
        }
        tags = {str(t["Key"]): _text(t["Value"], f"{lid}.Tags") for t in properties.get("Tags", [])}
        sqs = clients.sqs
        try:
            url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if _error_code(exc) not in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
                raise
            url = str(sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"])
        else:
            mutable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
            if mutable:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)
            if tags:
                sqs.tag_queue(QueueUrl=url, Tags=tags)
        arn = str(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        )
        self._physical[lid] = url
        self._attributes[lid] = {"Arn": arn, "QueueUrl": url, "QueueName": name}

    def _create_table(self, lid: str, properties: Mapping[str, Any], clients: AwsClients) -> None:
        self._check_known(lid, properties, _DYNAMODB_PROPERTIES)
        dynamodb = clients.dynamodb
        name = _text(properties.get("TableName") or f"{self.stack_name}-{lid}", lid)
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get(
                "BillingMode", "PROVISIONED" if "ProvisionedThroughput" in properties else "PAY_PER_REQUEST"
            ),
        }
        for key in (
            "ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "Tags", "TableClass"
        ):  # fmt: skip
            if key in properties:
                request[key] = properties[key]
        if "DeletionProtectionEnabled" in properties:
            request["DeletionProtectionEnabled"] = _as_bool(properties["DeletionProtectionEnabled"], lid)
        if "SSESpecification" in properties:
            sse = properties["SSESpecification"]
            request["SSESpecification"] = {
                "Enabled": _as_bool(sse.get("SSEEnabled", False), f"{lid}.SSESpecification"),
                **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
            }
        if "StreamSpecification" in properties:
            view = properties["StreamSpecification"]["StreamViewType"]
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
        try:
            table = dynamodb.describe_table(TableName=name)["Table"]
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            table = dynamodb.create_table(**request)["TableDescription"]
            dynamodb.get_waiter("table_exists").wait(
                TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
            )
        else:
            if table["KeySchema"] != request["KeySchema"]:
                raise CfnError(f"{lid}: table {name} exists with another key schema ({table['KeySchema']})")
        ttl = properties.get("TimeToLiveSpecification")
        if ttl is not None:
            self._update_ttl(dynamodb, name, ttl, lid)
        pitr = properties.get("PointInTimeRecoverySpecification")
        if pitr is not None:
            enabled = _as_bool(pitr.get("PointInTimeRecoveryEnabled", False), f"{lid}.PointInTimeRecovery")
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled}
            )
        self._physical[lid] = name
        self._attributes[lid] = {"Arn": str(table["TableArn"])}
        if table.get("LatestStreamArn"):
            self._attributes[lid]["StreamArn"] = str(table["LatestStreamArn"])

    @staticmethod
    def _update_ttl(dynamodb: AwsClient, table: str, spec: Mapping[str, Any], lid: str) -> None:
        enabled = _as_bool(spec.get("Enabled", False), f"{lid}.TimeToLiveSpecification")
        attribute = str(spec.get("AttributeName", ""))
        current = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        is_on = current.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}
        if is_on == enabled and (not enabled or current.get("AttributeName") == attribute):
            return
        if not enabled and not attribute:
            attribute = str(current.get("AttributeName", ""))
        dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"AttributeName": attribute, "Enabled": enabled}
        )

    def _create_event_bus(self, lid: str, properties: Mapping[str, Any], clients: AwsClients) -> None:
        self._check_known(lid, properties, frozenset({"Name", "Description", "Tags"}))
        if clients.events is None:
            raise CfnError(f"Resources.{lid}: an event bus needs an EventBridge client")
        name = _text(properties.get("Name") or f"{self.stack_name}-{lid}", lid)
        try:
            arn = str(clients.events.describe_event_bus(Name=name)["Arn"])
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            request: dict[str, Any] = {"Name": name}
            if "Description" in properties:
                request["Description"] = _text(properties["Description"], f"{lid}.Description")
            arn = str(clients.events.create_event_bus(**request)["EventBusArn"])
        self._physical[lid] = name
        self._attributes[lid] = {"Arn": arn, "Name": name}

    def _create_event_rule(self, lid: str, properties: Mapping[str, Any], clients: AwsClients) -> None:
        """A rule on a bus with its targets (EventBridge delivers to an SQS target on moto too)."""
        known = frozenset({"Name", "Description", "EventBusName", "EventPattern", "State", "Targets"})
        self._check_known(lid, properties, known)
        if clients.events is None:
            raise CfnError(f"Resources.{lid}: a rule needs an EventBridge client")
        name = _text(properties.get("Name") or f"{self.stack_name}-{lid}", lid)
        bus = _text(properties.get("EventBusName", "default"), f"{lid}.EventBusName")
        request: dict[str, Any] = {
            "Name": name,
            "EventBusName": bus,
            "EventPattern": json.dumps(properties["EventPattern"]),
            "State": _text(properties.get("State", "ENABLED"), f"{lid}.State"),
        }
        if "Description" in properties:
            request["Description"] = _text(properties["Description"], f"{lid}.Description")
        arn = str(clients.events.put_rule(**request)["RuleArn"])
        targets = [
            {"Id": _text(t["Id"], lid), "Arn": _text(t["Arn"], lid)} for t in properties.get("Targets", [])
        ]
        if targets:
            clients.events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        self._physical[lid] = name
        self._attributes[lid] = {"Arn": arn}

    def _create_queue_policy(self, lid: str, properties: Mapping[str, Any], clients: AwsClients) -> None:
        """The policy set on each queue (moto keeps it; it does not enforce it)."""
        self._check_known(lid, properties, frozenset({"Queues", "PolicyDocument"}))
        policy = json.dumps(properties["PolicyDocument"])
        for url in properties["Queues"]:
            clients.sqs.set_queue_attributes(
                QueueUrl=_text(url, f"{lid}.Queues"), Attributes={"Policy": policy}
            )
        self._physical[lid] = f"{self.stack_name}-{lid}"

    def _create_parameter(self, lid: str, properties: Mapping[str, Any], clients: AwsClients) -> None:
        self._check_known(lid, properties, _SSM_PROPERTIES)
        ssm = clients.ssm
        name = _text(properties.get("Name") or f"{self.stack_name}-{lid}", lid)
        try:
            ssm.get_parameter(Name=name)
        except ClientError as exc:
            if _error_code(exc) != "ParameterNotFound":
                raise
            request: dict[str, Any] = {
                "Name": name,
                "Value": _text(properties["Value"], f"{lid}.Value"),
                "Type": _text(properties.get("Type", "String"), f"{lid}.Type"),
            }
            for key in ("Description", "AllowedPattern", "Tier", "DataType", "Policies"):
                if key in properties:
                    request[key] = _text(properties[key], f"{lid}.{key}")
            tags = properties.get("Tags") or {}
            if tags:
                request["Tags"] = [{"Key": str(k), "Value": _text(v, f"{lid}.Tags")} for k, v in tags.items()]
            ssm.put_parameter(**request)
        path = name if name.startswith("/") else f"/{name}"
        self._physical[lid] = name
        self._attributes[lid] = {
            "Arn": f"arn:{self.partition}:ssm:{self.region}:{self.account_id}:parameter{path}",
            "Type": _text(properties.get("Type", "String"), lid),
            "Value": _text(properties["Value"], lid),
        }


_SQS_PROPERTIES: Final = frozenset(
    {
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "DelaySeconds",
        "FifoQueue",
        "FifoThroughputLimit",
        "KmsDataKeyReusePeriodSeconds",
        "KmsMasterKeyId",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "RedriveAllowPolicy",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
        "VisibilityTimeout",
    }
)
_DYNAMODB_PROPERTIES: Final = frozenset(
    {
        "AttributeDefinitions",
        "BillingMode",
        "DeletionProtectionEnabled",
        "GlobalSecondaryIndexes",
        "KeySchema",
        "LocalSecondaryIndexes",
        "PointInTimeRecoverySpecification",
        "ProvisionedThroughput",
        "SSESpecification",
        "StreamSpecification",
        "TableClass",
        "TableName",
        "Tags",
        "TimeToLiveSpecification",
    }
)
_SSM_PROPERTIES: Final = frozenset(
    {"AllowedPattern", "DataType", "Description", "Name", "Policies", "Tags", "Tier", "Type", "Value"}
)


def provision(
    template: Mapping[str, Any],
    *,
    clients: AwsClients | Callable[[str], AwsClient],
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: Mapping[str, str] | None = None,
    region: str | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> Provisioned:
    """Create the template's queues, tables and parameters (idempotently) and return the answers.

    `clients` are boto3 clients for sqs, dynamodb and ssm (or a `service -> client` factory),
    normally pointed at a moto server; `region` defaults to the SQS client's region.
    `parameters` override the template's Parameter defaults and are checked against their
    constraints, as CloudFormation would.
    """
    aws = clients if isinstance(clients, AwsClients) else AwsClients.from_factory(clients)
    stack = Provisioned(
        template,
        stack_name=stack_name,
        region=region or str(aws.sqs.meta.region_name),
        account_id=account_id,
        parameters=parameters,
    )
    stack._create_all(aws)
    return stack


# --------------------------------------------------------------------------- functions (moto Lambda)

#: The handler code moto stores: never run (moto runs functions only with Docker). The local stack
#: runs the real handlers in-process (local.esm); moto's functions and mappings exist so the Lambda
#: API (GetEventSourceMapping, UpdateEventSourceMapping) has something real to act on.
_PLACEHOLDER_CODE = b"def lambda_handler(event, context):\n    raise RuntimeError('placeholder')\n"
LOCAL_LAMBDA_ROLE = "podwatch-local-lambda"


def _placeholder_zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", _PLACEHOLDER_CODE)
    return buffer.getvalue()


def function_name(provisioned: Provisioned, spec: FunctionSpec) -> str:
    """`<stack>-<folder>`: the name the local stack gives each function (moto, pollers, contexts)."""
    return f"{provisioned.stack_name}-{spec.code_dir.name}"


def provision_functions(provisioned: Provisioned, *, lambda_client: AwsClient, iam_client: AwsClient) -> None:
    """Create every template function in moto's Lambda (placeholder code) and its SQS event source
    mappings with the template's batch size and window, then register them, so `!Ref DeliverFunction`
    and SAM's generated `!Ref DeliverFunctionDeliveries` resolve. Mappings are created *disabled*:
    an enabled one would make moto take messages off the queue itself (and fail without Docker);
    `local.esm.SqsPoller` is the poller, and reads batch size and window from the mapping.
    Idempotent: existing functions and mappings are reused."""
    try:
        role_arn = str(iam_client.get_role(RoleName=LOCAL_LAMBDA_ROLE)["Role"]["Arn"])
    except ClientError:
        role_arn = str(
            iam_client.create_role(
                RoleName=LOCAL_LAMBDA_ROLE,
                AssumeRolePolicyDocument=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "lambda.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                ),
            )["Role"]["Arn"]
        )
    code = _placeholder_zip()
    for lid, spec in provisioned.functions().items():
        name = function_name(provisioned, spec)
        try:
            arn = str(lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            arn = str(
                lambda_client.create_function(
                    FunctionName=name,
                    Runtime=spec.runtime or "python3.13",
                    Role=role_arn,
                    Handler=spec.handler,
                    Code={"ZipFile": code},
                    Timeout=spec.timeout,
                    MemorySize=spec.memory_size,
                )["FunctionArn"]
            )
        provisioned.register(lid, name, Arn=arn)
        existing = {
            str(m["EventSourceArn"]): str(m["UUID"])
            for m in lambda_client.list_event_source_mappings(FunctionName=name).get(
                "EventSourceMappings", []
            )
        }
        for source in provisioned.event_sources(lid):
            uuid = existing.get(source.queue_arn)
            if uuid is None:
                request: dict[str, Any] = {
                    "EventSourceArn": source.queue_arn,
                    "FunctionName": name,
                    "BatchSize": source.batch_size,
                    "Enabled": False,
                }
                if source.maximum_batching_window_seconds:
                    request["MaximumBatchingWindowInSeconds"] = source.maximum_batching_window_seconds
                if source.report_batch_item_failures:
                    request["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
                uuid = str(lambda_client.create_event_source_mapping(**request)["UUID"])
            provisioned.register(source.mapping_logical_id, uuid)
