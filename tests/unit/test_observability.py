"""The dashboard and the alarms in template.yaml against the metrics the code really emits.

A classic failure of serverless monitoring is an alarm on a metric name, namespace or dimension set
that nothing emits: it never fires. So this test derives what the code emits and checks both ways:

* what is emitted: every name of telemetry's `<FUNCTION>_METRICS` set, in namespace
  `POWERTOOLS_METRICS_NAMESPACE`, with dimensions `{service}` (service = the function's
  `POWERTOOLS_SERVICE_NAME`) — `Tally.emit` sends every total that way — and also `{service, reason}`
  for the names the function's code adds with a `reason=` (found in its source, the layer modules it
  imports included); plus Powertools' `ColdStart` (`{function_name, service}`) for every handler
  decorated with `capture_cold_start_metric=True`;
* every custom metric a widget or alarm names must be one of those (namespace, name, dimension
  names, service value, and a literal `reason` value the code can produce); AWS/SQS and AWS/Lambda
  metrics must name a queue or function of this template;
* every emitted (service, metric) appears on at least one dashboard widget; every alarm is on the
  dashboard's alarm widget (but the conditional one); the alarms issue 7 asks for exist.

The checker is exercised on broken copies of the template too, so it is known to catch mistakes.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.cfn import ROOT, load_template
from podwatch import telemetry
from podwatch.models import ENVELOPE_KINDS

FUNCTIONS_DIR = ROOT / "functions"
LAYER_DIR = ROOT / "layers" / "podwatch"

#: AWS metrics the dashboard and alarms may use, by namespace and the dimension naming the resource.
AWS_METRICS = {
    "AWS/SQS": (
        "QueueName",
        "AWS::SQS::Queue",
        {
            "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateAgeOfOldestMessage",
            "NumberOfMessagesSent",
            "NumberOfMessagesReceived",
            "NumberOfMessagesDeleted",
        },
    ),
    "AWS/Lambda": (
        "FunctionName",
        "AWS::Serverless::Function",
        {"Errors", "Throttles", "Duration", "Invocations", "ConcurrentExecutions", "IteratorAge"},
    ),
}
#: `reason` values a widget or alarm may name literally, per metric: the values the code produces.
#: Control's reason is the envelope kind of a control message (podwatch/processing.py).
LITERAL_REASONS = {telemetry.CONTROL: ENVELOPE_KINDS - {"pod", "k8s_event"}}


# --------------------------------------------------------------------------- what the code emits


@dataclass(frozen=True)
class Emitted:
    namespace: str
    #: service -> metric name -> the dimension-name sets it is emitted with
    metrics: dict[str, dict[str, set[frozenset[str]]]]
    #: service -> the template function (logical id) that emits it
    function_of: dict[str, str]

    def dimension_sets(self, service: str, name: str) -> set[frozenset[str]]:
        return self.metrics.get(service, {}).get(name, set())


def function_service(template: dict[str, Any], fid: str) -> str:
    own = template["Resources"][fid]["Properties"].get("Environment", {}).get("Variables", {})
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    return str({**globals_env, **own}["POWERTOOLS_SERVICE_NAME"])


def metric_sets() -> dict[str, frozenset[str]]:
    """telemetry's `PROCESSOR_METRICS`, `DELIVER_METRICS`, ... by the function folder they belong to."""
    return {
        name.removesuffix("_METRICS").lower(): value
        for name, value in vars(telemetry).items()
        if name.endswith("_METRICS") and isinstance(value, frozenset)
    }


def imported_modules(path: Path, seen: set[Path] | None = None) -> set[Path]:
    """`path` and every `podwatch.*` module it imports, transitively."""
    seen = set() if seen is None else seen
    if path in seen:
        return seen
    seen.add(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "podwatch":
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.split(".")[0] == "podwatch"]
        for name in names:
            candidate = LAYER_DIR / (name.replace(".", "/") + ".py")
            if candidate.is_file():
                imported_modules(candidate, seen)
    return seen


def _telemetry_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "telemetry":
        value = getattr(telemetry, node.attr, None)
        return value if isinstance(value, str) else None
    return None


def _dict_keys(node: ast.expr | None) -> set[str] | None:
    """The literal keys of a dict display (`**x` counts as the `service` dimension); None if not one."""
    if not isinstance(node, ast.Dict):
        return None
    return {ast.literal_eval(k) if k is not None else "service" for k in node.keys}


def scanned_dimensions(app: Path) -> dict[str, set[frozenset[str]]]:
    """Metric name -> the dimension sets a function's code emits it with, read from its modules:

    * `tally.add(telemetry.X, ...)`, `telemetry.count(m, telemetry.X)`, `m.add_metric(name=telemetry.X)`
      -> {service} (Tally.emit and Powertools' Metrics add the service dimension);
    * `tally.add(telemetry.X, reason=...)` and the processor's action table (`_METRIC_OF_ACTION` x
      `_BROKEN_DOWN_BY_REASON`) -> also {service, reason};
    * `single_metric(name=telemetry.X, default_dimensions={**service, "k": ...})` -> {service, k}.
    """
    found: dict[str, set[frozenset[str]]] = {}

    def add(name: str | None, *dimensions: str) -> None:
        if name is not None:
            found.setdefault(name, set()).add(frozenset(dimensions))

    for module in imported_modules(app):
        tables: dict[str, Any] = {}
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if isinstance(target, ast.Name) and node.value is not None:
                    tables[target.id] = node.value
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            if callee == "add" and node.args:
                add(_telemetry_name(node.args[0]), "service")
                if "reason" in keywords:
                    add(_telemetry_name(node.args[0]), "service", "reason")
            elif callee == "count" and len(node.args) >= 2:
                add(_telemetry_name(node.args[1]), "service")
            elif callee == "add_metric" and "name" in keywords:
                add(_telemetry_name(keywords["name"]), "service")
            elif callee == "single_metric" and "name" in keywords:
                keys = _dict_keys(keywords.get("default_dimensions"))
                if keys is not None:
                    add(_telemetry_name(keywords["name"]), *keys)
        action_table, by_reason = tables.get("_METRIC_OF_ACTION"), tables.get("_BROKEN_DOWN_BY_REASON")
        if isinstance(action_table, ast.Dict) and isinstance(by_reason, ast.Set):
            broken_down = {ast.literal_eval(e) for e in by_reason.elts}
            for key, value in zip(action_table.keys, action_table.values, strict=True):
                name = _telemetry_name(value)
                add(name, "service")
                if key is not None and ast.literal_eval(key) in broken_down:
                    add(name, "service", "reason")
    return found


def emitted(template: dict[str, Any]) -> Emitted:
    """What every template function emits: the names of its telemetry `*_METRICS` set, with the
    dimension sets its code uses (a listed name the scan does not find is assumed {service})."""
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    namespace = str(globals_env["POWERTOOLS_METRICS_NAMESPACE"])
    sets = metric_sets()
    metrics: dict[str, dict[str, set[frozenset[str]]]] = {}
    function_of: dict[str, str] = {}
    for fid, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        folder = Path(resource["Properties"]["CodeUri"]).name
        service = function_service(template, fid)
        function_of[service] = fid
        app = ROOT / resource["Properties"]["CodeUri"] / "app.py"
        by_name = metrics.setdefault(service, {})
        if not app.is_file():  # a function being written: no code, nothing emitted yet
            continue
        scanned = scanned_dimensions(app)
        for name in sets.get(folder.replace("-", "_"), frozenset()):
            by_name[name] = set(scanned.get(name) or {frozenset({"service"})})
        if "capture_cold_start_metric=True" in app.read_text(encoding="utf-8"):
            by_name.setdefault("ColdStart", set()).add(frozenset({"function_name", "service"}))
    return Emitted(namespace=namespace, metrics=metrics, function_of=function_of)


# --------------------------------------------------------------------------- what the template names


@dataclass(frozen=True)
class MetricRef:
    where: str
    namespace: str
    name: str
    #: dimension name -> value; "${Lid}" / "${Lid.Attr}" for a reference to a template resource,
    #: None when a SEARCH leaves the dimension open
    dimensions: dict[str, str | None]


def _placeholder(value: Any) -> str:
    """Alarm dimension values (`!Ref X`, `!GetAtt X.Attr`, literals) in the dashboard's `${...}` form."""
    if isinstance(value, dict) and "Ref" in value:
        return "${" + str(value["Ref"]) + "}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    return str(value)


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard JSON with `${...}` left as text (numbers substituted so it parses)."""
    (dashboard,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = dashboard["Properties"]["DashboardBody"]
    assert set(body) == {"Fn::Sub"}, "the body is one Fn::Sub"
    assert isinstance(body["Fn::Sub"], str), "the body is one Fn::Sub of a string"
    numbers = {n for n, p in template["Parameters"].items() if p["Type"] == "Number"}
    text = re.sub(
        r"\$\{(\w+)\}",
        lambda m: str(template["Parameters"][m[1]]["Default"]) if m[1] in numbers else m[0],
        body["Fn::Sub"],
    )
    parsed: dict[str, Any] = json.loads(text)
    return parsed


_SEARCH = re.compile(r"SEARCH\(\s*'\{([^}]*)\}\s*([^']*)'")
_TERM = re.compile(r'(\w+)="([^"]*)"')


def widget_refs(body: dict[str, Any]) -> Iterator[MetricRef]:
    for index, widget in enumerate(body["widgets"]):
        if widget["type"] != "metric":
            continue
        where = f"widget {index} ({widget['properties'].get('title')})"
        previous: list[Any] = []
        for row in widget["properties"]["metrics"]:
            items = [item for item in row if not isinstance(item, dict)]
            options = [item for item in row if isinstance(item, dict)]
            if not items and options and "expression" in options[0]:
                yield from _search_refs(where, options[0]["expression"])
                continue
            # "." repeats the previous row's item at the same position
            items = [previous[i] if item == "." else item for i, item in enumerate(items)]
            previous = items
            namespace, name, *pairs = items
            assert len(pairs) % 2 == 0, f"{where}: dimension names and values must pair up: {row}"
            yield MetricRef(where, namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)))


def _search_refs(where: str, expression: str) -> Iterator[MetricRef]:
    for schema, terms in _SEARCH.findall(expression):
        namespace, *dimension_names = [part.strip().strip('"') for part in schema.split(",")]
        fixed = dict(_TERM.findall(terms))
        assert "MetricName" in fixed, f"{where}: a SEARCH must fix MetricName to be checkable: {expression}"
        dimensions: dict[str, str | None] = {d: fixed.get(d) for d in dimension_names}
        yield MetricRef(f"{where} SEARCH", namespace, fixed["MetricName"], dimensions)
    if "SEARCH" in expression:
        assert _SEARCH.search(expression), f"{where}: unreadable SEARCH {expression}"


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def alarm_refs(template: dict[str, Any]) -> Iterator[MetricRef]:
    for lid, alarm in alarms(template).items():
        p = alarm["Properties"]
        stats = (
            [p]
            if "MetricName" in p
            else [q["MetricStat"]["Metric"] for q in p["Metrics"] if "MetricStat" in q]
        )
        assert stats, f"{lid}: names no metric"
        for metric in stats:
            dims = {d["Name"]: _placeholder(d["Value"]) for d in metric.get("Dimensions", [])}
            yield MetricRef(f"alarm {lid}", metric["Namespace"], metric["MetricName"], dims)


# --------------------------------------------------------------------------- the check


def problems(template: dict[str, Any]) -> list[str]:
    """Everything wrong between the template's widgets/alarms and the code's metrics (empty = fine)."""
    emits = emitted(template)
    resources = template["Resources"]
    widget_metrics = list(widget_refs(dashboard_body(template)))
    found: list[str] = []
    for ref in [*widget_metrics, *alarm_refs(template)]:
        found += _check_ref(ref, emits, resources)
    on_widgets = {
        (r.dimensions.get("service"), r.name) for r in widget_metrics if r.namespace == emits.namespace
    }
    for service, names in emits.metrics.items():
        for name in sorted(names):
            if (service, name) not in on_widgets:
                found.append(f"{name} (service={service}) is emitted but on no dashboard widget")
    return found


def _check_ref(ref: MetricRef, emits: Emitted, resources: dict[str, Any]) -> list[str]:
    if ref.namespace in AWS_METRICS:
        dimension, resource_type, names = AWS_METRICS[ref.namespace]
        value = ref.dimensions.get(dimension) or ""
        lid = value.removeprefix("${").removesuffix("}").split(".")[0]
        out = []
        if ref.name not in names:
            out.append(f"{ref.where}: {ref.namespace} {ref.name} is not a metric this check knows")
        if set(ref.dimensions) != {dimension} or resources.get(lid, {}).get("Type") != resource_type:
            out.append(f"{ref.where}: {ref.namespace} {ref.name} must name one {resource_type} of this stack")
        return out
    if ref.namespace != emits.namespace:
        return [f"{ref.where}: namespace {ref.namespace!r} is not one the code emits to ({emits.namespace})"]
    service = ref.dimensions.get("service")
    label = f"{ref.where}: {ref.name} {ref.dimensions}"
    if service is None:
        return [
            f"{label}: dimensions {sorted(ref.dimensions)} are never emitted (every metric has `service`)"
        ]
    if service not in emits.metrics:
        return [f"{label}: service {service!r} is no function's POWERTOOLS_SERVICE_NAME"]
    dimension_sets = emits.dimension_sets(service, ref.name)
    if not dimension_sets:
        return [f"{label}: {service} never emits {ref.name}"]
    if frozenset(ref.dimensions) not in dimension_sets:
        emitted_sets = sorted(sorted(s) for s in dimension_sets)
        return [f"{label}: dimensions {sorted(ref.dimensions)} are never emitted (emitted: {emitted_sets})"]
    reason = ref.dimensions.get("reason")
    if reason is not None and reason not in LITERAL_REASONS.get(ref.name, set()):
        return [f"{label}: reason {reason!r} is not a value the code produces (use a SEARCH)"]
    function_name = ref.dimensions.get("function_name")
    if function_name is not None and function_name != "${" + emits.function_of[service] + "}":
        return [f"{label}: function_name must be ${{{emits.function_of[service]}}}"]
    return []


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_the_code_emits_what_the_check_assumes(template: dict[str, Any]) -> None:
    emits = emitted(template)
    assert emits.namespace == "Podwatch"
    processor, deliver = emits.metrics["podwatch-processor"], emits.metrics["podwatch-deliver"]
    assert set(processor) == telemetry.PROCESSOR_METRICS | {"ColdStart"}
    assert set(deliver) == telemetry.DELIVER_METRICS | {"ColdStart"}
    with_reason = frozenset({"service", "reason"})
    assert {n for n, sets in processor.items() if with_reason in sets} == {
        "Filtered",
        "Quarantined",
        "Control",
    }
    assert {n for n, sets in deliver.items() if with_reason in sets} == {"Quarantined", "RestateRequests"}
    config_sync = emits.metrics["podwatch-config-sync"]
    assert set(config_sync) == telemetry.CONFIG_SYNC_METRICS  # its handler does not capture cold starts
    assert config_sync["HeartbeatAgeSeconds"] == {frozenset({"service", "cluster_id"})}


def test_tally_emits_the_dimension_sets_the_check_assumes(capsys: pytest.CaptureFixture[str]) -> None:
    # Given Powertools Metrics as a handler has them
    from aws_lambda_powertools import Metrics

    metrics = Metrics(namespace="Podwatch", service="podwatch-deliver")
    tally = telemetry.Tally()
    tally.add(telemetry.QUARANTINED, reason="rejected")
    tally.add(telemetry.DELIVERED, value=2)
    # When the tally is emitted and flushed
    tally.emit(metrics)
    metrics.flush_metrics()
    # Then every total goes out with {service}, every breakdown with {service, reason}
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    seen = {
        (d["Namespace"], m["Name"], frozenset(dims))
        for blob in blobs
        for d in blob["_aws"]["CloudWatchMetrics"]
        for dims in d["Dimensions"]
        for m in d["Metrics"]
    }
    assert seen == {
        ("Podwatch", "Quarantined", frozenset({"service", "reason"})),
        ("Podwatch", "Quarantined", frozenset({"service"})),
        ("Podwatch", "Delivered", frozenset({"service"})),
    }


def test_dashboard_and_alarms_name_only_emitted_metrics_and_show_every_one(template: dict[str, Any]) -> None:
    assert problems(template) == []


def test_every_alarm_notifies_the_topic_and_is_on_the_dashboard(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    on_widget = set(alarm_widget["properties"]["alarms"])
    for lid, alarm in alarms(template).items():
        p = alarm["Properties"]
        assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}], lid
        assert p["OKActions"] == [{"Ref": "AlarmTopic"}], lid
        assert p["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), (
            f"{lid}: the CLI finds alarms by prefix"
        )
        assert "TreatMissingData" in p, lid
        if "Condition" not in alarm:  # a conditional alarm cannot be named by the unconditional dashboard
            assert "${" + lid + ".Arn}" in on_widget, f"{lid} is not on the alarm widget"


def test_the_alarms_issue_7_asks_for_exist(template: dict[str, Any]) -> None:
    refs = list(alarm_refs(template))

    def alarmed(namespace: str, name: str, **dimensions: str) -> bool:
        return any(
            r.namespace == namespace and r.name == name and dimensions.items() <= r.dimensions.items()
            for r in refs
        )

    for dlq in ("PodEventsDLQ", "DeliveriesDLQ"):
        assert alarmed("AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName=f"${{{dlq}.QueueName}}"), (
            dlq
        )
    for queue in ("PodEventsQueue", "DeliveriesQueue"):
        assert alarmed("AWS/SQS", "ApproximateAgeOfOldestMessage", QueueName=f"${{{queue}.QueueName}}"), queue
    functions = [lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    for function in functions:
        assert alarmed("AWS/Lambda", "Errors", FunctionName=f"${{{function}}}"), function
    for name in ("CircuitOpen", "DeliveryUnauthorized", "DeliveryRejected", "Retried"):
        assert alarmed("Podwatch", name, service="podwatch-deliver"), name
    for service, names in emitted(template).metrics.items():
        if "ConfigRejected" in names:
            assert alarmed("Podwatch", "ConfigRejected", service=service), service
    # relay heartbeats stopped, per cluster (config-sync counts the silent ones)
    assert alarmed("Podwatch", "ClustersSilent", service="podwatch-config-sync")


def test_alarm_email_is_optional_and_outputs_name_the_dashboard_and_topic(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert re.fullmatch(template["Parameters"]["AlarmEmail"]["AllowedPattern"], "ops@example.com")
    assert not re.fullmatch(template["Parameters"]["AlarmEmail"]["AllowedPattern"], "not an address")
    outputs = template["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert "#dashboards:name=${Dashboard}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]


# --------------------------------------------------------------------------- the check catches mistakes


def _replace_in_body(template: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    broken = copy.deepcopy(template)
    body = broken["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    assert old in body["Fn::Sub"]
    body["Fn::Sub"] = body["Fn::Sub"].replace(old, new, 1)
    return broken


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"Podwatch", "Delivered"', '"Podwatch", "Delivred"', "never emits Delivred"),
        ('["Podwatch", "IncidentsOpened"', '["PodWatch", "IncidentsOpened"', "namespace 'PodWatch'"),
        (
            '"CircuitOpen", "service", "podwatch-deliver"',
            '"CircuitOpen", "service", "podwatch-deliver", "reason", "open"',
            "are never emitted",
        ),
        ('"reason", "heartbeat"', '"reason", "heartbeats"', "reason 'heartbeats'"),
        (
            '"service", "podwatch-processor", {"label": "opened"}',
            '"service", "processor", {"label": "o"}',
            "service",
        ),
        (
            '"QueueName", "${PodEventsDLQ.QueueName}"',
            '"QueueName", "podwatch-pod-events-dlq"',
            "must name one",
        ),
        (
            '"IncidentsResolved"',
            '"IncidentsOpened"',
            "IncidentsResolved (service=podwatch-processor) is emitted",
        ),
        ('MetricName=\\"Filtered\\"', 'MetricName=\\"Filterd\\"', "never emits Filterd"),
    ],
)
def test_the_check_catches_a_broken_widget(
    template: dict[str, Any], old: str, new: str, message: str
) -> None:
    found = problems(_replace_in_body(template, old, new))
    assert any(message in problem for problem in found), found


def test_the_check_catches_a_broken_alarm(template: dict[str, Any]) -> None:
    # an alarm on a dimension set nothing emits (Powertools' service dimension left out)
    broken = copy.deepcopy(template)
    broken["Resources"]["CircuitOpenAlarm"]["Properties"]["Dimensions"] = []
    assert any("CircuitOpenAlarm" in p and "never emitted" in p for p in problems(broken))
    # an alarm on a metric another function emits
    broken = copy.deepcopy(template)
    broken["Resources"]["DeliveryUnauthorizedAlarm"]["Properties"]["Dimensions"] = [
        {"Name": "service", "Value": "podwatch-processor"}
    ]
    assert any("podwatch-processor never emits DeliveryUnauthorized" in p for p in problems(broken))
    # a metric-math alarm whose MetricStat names a metric nothing emits
    broken = copy.deepcopy(template)
    broken["Resources"]["ConfigRejectedAlarm"]["Properties"]["Metrics"][1]["MetricStat"]["Metric"][
        "MetricName"
    ] = "ConfigRejects"
    assert any("never emits ConfigRejects" in p for p in problems(broken))


def test_the_check_catches_a_metric_the_code_adds_without_a_widget(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry, "DELIVER_METRICS", telemetry.DELIVER_METRICS | {"DeliveryLatency"})
    assert "DeliveryLatency (service=podwatch-deliver) is emitted but on no dashboard widget" in problems(
        template
    )
