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
  dashboard's alarm widget (but the conditional one); the alarms issue 7 asks for exist;
* units: a metric the code emits only in another unit than Count (DeliveryLatency in Milliseconds,
  the CircuitState gauge, HeartbeatAgeSeconds) is never summed by a widget or alarm (a Sum of
  latencies or of a 0/1 state means nothing; percentiles, Maximum, Average do).

The checker is exercised on broken copies of the template too, so it is known to catch mistakes.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest

from local.cfn import ROOT, load_template
from local.lambda_runtime import load_event, load_function_module
from podwatch import telemetry
from podwatch.delivery import DeliverDeps, deliver_records
from podwatch.models import ENVELOPE_KINDS, Notification, RemoteConfig
from podwatch.restate import RestateClient, new_breaker
from podwatch_cli.loopback import LoopbackHandler, LoopbackServer

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
#: statistics that add values up: meaningless for a metric that is not a count
SUMMING_STATS = {"Sum"}


# --------------------------------------------------------------------------- what the code emits


@dataclass(frozen=True)
class Emitted:
    namespace: str
    #: service -> metric name -> the dimension-name sets it is emitted with
    metrics: dict[str, dict[str, set[frozenset[str]]]]
    #: service -> the template function (logical id) that emits it
    function_of: dict[str, str]
    #: service -> metric name -> the units it is emitted in (MetricUnit member names, e.g. "Count")
    units: dict[str, dict[str, set[str]]]

    def dimension_sets(self, service: str, name: str) -> set[frozenset[str]]:
        return self.metrics.get(service, {}).get(name, set())

    def counted(self, service: str, name: str) -> bool:
        """Is `name` a count (Sum makes sense)? True unless every emission of it is in another unit."""
        return "Count" in self.units.get(service, {}).get(name, {"Count"})


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


def _unit(node: ast.expr | None) -> str:
    """`MetricUnit.X` -> "X"; anything else (a variable, a literal) -> "Count", the safe assumption."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "MetricUnit":
        return node.attr
    return "Count"


def scanned_units(app: Path) -> dict[str, set[str]]:
    """Metric name -> the units a function's code emits it in: `tally.add` / `telemetry.count` are
    Counts, `add_metric(name=..., unit=MetricUnit.X)` and `single_metric(...)` say theirs."""
    found: dict[str, set[str]] = {}
    for module in imported_modules(app):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            name, unit = None, "Count"
            if callee == "add" and node.args:
                name = _telemetry_name(node.args[0])
            elif callee == "count" and len(node.args) >= 2:
                name = _telemetry_name(node.args[1])
            elif callee in ("add_metric", "single_metric") and "name" in keywords:
                name, unit = _telemetry_name(keywords["name"]), _unit(keywords.get("unit"))
            if name is not None:
                found.setdefault(name, set()).add(unit)
    return found


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


def sub_text(value: Any) -> str:
    """A literal, or the text of a `!Sub` (as the dashboard body, one Fn::Sub, leaves it)."""
    return str(value["Fn::Sub"]) if isinstance(value, dict) and "Fn::Sub" in value else str(value)


def emitted(template: dict[str, Any]) -> Emitted:
    """What every template function emits: the names of its telemetry `*_METRICS` set, with the
    dimension sets its code uses (a listed name the scan does not find is assumed {service})."""
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    namespace = sub_text(globals_env["POWERTOOLS_METRICS_NAMESPACE"])
    sets = metric_sets()
    metrics: dict[str, dict[str, set[frozenset[str]]]] = {}
    units: dict[str, dict[str, set[str]]] = {}
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
        scanned, scanned_unit = scanned_dimensions(app), scanned_units(app)
        for name in sets.get(folder.replace("-", "_"), frozenset()):
            by_name[name] = set(scanned.get(name) or {frozenset({"service"})})
            units.setdefault(service, {})[name] = set(scanned_unit.get(name) or {"Count"})
        if "capture_cold_start_metric=True" in app.read_text(encoding="utf-8"):
            by_name.setdefault("ColdStart", set()).add(frozenset({"function_name", "service"}))
    return Emitted(namespace=namespace, metrics=metrics, function_of=function_of, units=units)


# --------------------------------------------------------------------------- what the template names


@dataclass(frozen=True)
class MetricRef:
    where: str
    namespace: str
    name: str
    #: dimension name -> value; "${Lid}" / "${Lid.Attr}" for a reference to a template resource,
    #: None when a SEARCH leaves the dimension open
    dimensions: dict[str, str | None]
    #: the statistic it is shown or alarmed with (the row's, else the widget's; a SEARCH's own)
    stat: str | None = None


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


_SEARCH = re.compile(r"SEARCH\(\s*'\{((?:\$\{[^}]*\}|[^}])*)\}\s*([^']*)'\s*,\s*'(\w+)'")
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
            stat = next((o["stat"] for o in options if "stat" in o), widget["properties"].get("stat"))
            # "." repeats the previous row's item at the same position
            items = [previous[i] if item == "." else item for i, item in enumerate(items)]
            previous = items
            namespace, name, *pairs = items
            assert len(pairs) % 2 == 0, f"{where}: dimension names and values must pair up: {row}"
            yield MetricRef(where, namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)), stat)


def _search_refs(where: str, expression: str) -> Iterator[MetricRef]:
    for schema, terms, stat in _SEARCH.findall(expression):
        namespace, *dimension_names = [part.strip().strip('"') for part in schema.split(",")]
        fixed = dict(_TERM.findall(terms))
        assert "MetricName" in fixed, f"{where}: a SEARCH must fix MetricName to be checkable: {expression}"
        dimensions: dict[str, str | None] = {d: fixed.get(d) for d in dimension_names}
        yield MetricRef(f"{where} SEARCH", namespace, fixed["MetricName"], dimensions, stat)
    if "SEARCH" in expression:
        assert _SEARCH.search(expression), f"{where}: unreadable SEARCH {expression}"


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def alarm_refs(template: dict[str, Any]) -> Iterator[MetricRef]:
    for lid, alarm in alarms(template).items():
        p = alarm["Properties"]
        stats = (
            [(p, p.get("Statistic") or p.get("ExtendedStatistic"))]
            if "MetricName" in p
            else [
                (q["MetricStat"]["Metric"], q["MetricStat"]["Stat"])
                for q in p["Metrics"]
                if "MetricStat" in q
            ]
        )
        assert stats, f"{lid}: names no metric"
        for metric, stat in stats:
            dims = {d["Name"]: _placeholder(d["Value"]) for d in metric.get("Dimensions", [])}
            yield MetricRef(f"alarm {lid}", sub_text(metric["Namespace"]), metric["MetricName"], dims, stat)


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
    if ref.stat in SUMMING_STATS and not emits.counted(service, ref.name):
        units = sorted(emits.units[service][ref.name])
        return [
            f"{label}: a {ref.stat} of {ref.name} ({'/'.join(units)}) means nothing; use pNN/Maximum/Average"
        ]
    return []


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_the_code_emits_what_the_check_assumes(template: dict[str, Any]) -> None:
    emits = emitted(template)
    assert emits.namespace == telemetry.metrics_namespace("${AWS::StackName}")
    processor, deliver = emits.metrics["podwatch-processor"], emits.metrics["podwatch-deliver"]
    assert set(processor) == telemetry.PROCESSOR_METRICS | {"ColdStart"}
    assert set(deliver) == telemetry.DELIVER_METRICS | {"ColdStart"}
    with_reason = frozenset({"service", "reason"})
    assert {n for n, sets in processor.items() if with_reason in sets} == {
        "Filtered",
        "Quarantined",
        "Control",
        "EventTimeUntrusted",
    }
    assert {n for n, sets in deliver.items() if with_reason in sets} == {"Quarantined", "RestateRequests"}
    config_sync = emits.metrics["podwatch-config-sync"]
    assert set(config_sync) == telemetry.CONFIG_SYNC_METRICS  # its handler does not capture cold starts
    assert config_sync["HeartbeatAgeSeconds"] == {frozenset({"service", "cluster_id"})}
    # every metric is a Count but these, which must not be summed
    not_counts = {
        (service, name, unit)
        for service, names in emits.units.items()
        for name, units in names.items()
        for unit in units
        if unit != "Count"
    }
    assert not_counts == {
        ("podwatch-deliver", "DeliveryLatency", "Milliseconds"),
        ("podwatch-deliver", "CircuitState", "NoUnit"),
        ("podwatch-config-sync", "HeartbeatAgeSeconds", "Seconds"),
    }
    assert deliver["DeliveryLatency"] == deliver["CircuitState"] == {frozenset({"service"})}


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


@dataclass(frozen=True)
class Blob:
    """One metric of one EMF blob: its values, unit and dimension names."""

    values: list[float]
    unit: str
    dimensions: frozenset[str]


def emf_blobs(out: str) -> dict[str, list[Blob]]:
    """Metric name -> its occurrences in the EMF blobs of `out` (stdout of a flush)."""
    found: dict[str, list[Blob]] = {}
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Podwatch"
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                for dims in directive["Dimensions"]:
                    found.setdefault(metric["Name"], []).append(
                        Blob(value if isinstance(value, list) else [value], metric["Unit"], frozenset(dims))
                    )
    return found


@pytest.fixture
def manager() -> Iterator[tuple[str, list[int]]]:
    """A loopback HTTP server standing in for the Restate ingress: answers `status[0]` to every POST
    (with a NotifyPodEvents-like body when it is a 2xx)."""
    status = [503]

    class Handler(LoopbackHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send(status[0], {}, b'{"received": 1, "new": 1}' if status[0] < 300 else b"unavailable")

    with LoopbackServer(Handler, name="manager", poll_interval=0.05) as server:
        yield server.url, status


def test_deliver_emits_latency_and_breaker_state_as_the_check_assumes(
    manager: tuple[str, list[int]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools import Metrics

    # Given the deliver function's metrics code, the real RestateClient against a manager that
    # answers 503, and a breaker that opens after 2 failures and lets a trial call through after 0.2 s
    url, status = manager
    app = load_function_module("deliver")
    monkeypatch.setattr(app, "metrics", Metrics(namespace="Podwatch", service="podwatch-deliver"))
    restate = RestateClient(
        base_url=url,
        max_tries=1,
        connect_timeout=1,
        read_timeout=2,
        breaker=new_breaker(fail_max=2, reset_timeout=0.2),
    )
    event = load_event("events/deliver/batch.json")  # 4 notifications of prod-eu-1, 1 of staging-us-2
    observed = {Notification.model_validate_json(r["body"]).observed_at for r in event["Records"]}
    assert len(observed) == 1
    answered = min(observed) + timedelta(seconds=2, milliseconds=500)
    deps = DeliverDeps(restate=restate, sqs=None, quarantine_queue_url="unused", clock=lambda: answered)

    def invoke() -> tuple[int, dict[str, list[Blob]]]:
        """One invocation as the handler does it; (records failed, the EMF it printed)."""
        requests_before, opened_before = Counter(restate.stats.by_status), restate.stats.breaker_opened
        result = deliver_records(event["Records"], deps=deps, config=RemoteConfig())
        app.emit_metrics(result, restate, requests_before=requests_before, opened_before=opened_before)
        app.metrics.flush_metrics()
        return len(result.failed), emf_blobs(capsys.readouterr().out)

    service = frozenset({"service"})
    try:
        # When both chunks fail: the breaker trips on the second
        failed, blobs = invoke()
        assert failed == 5
        assert restate.breaker_open
        assert blobs["CircuitState"] == [Blob([1.0], "None", service)]
        assert blobs["BreakerOpened"] == [Blob([1.0], "Count", service)]
        assert "DeliveryLatency" not in blobs

        # Then the next invocation makes no call, still reports the breaker open, and no new trip
        failed, blobs = invoke()
        assert failed == 5
        assert restate.stats.requests == 2
        assert blobs["CircuitState"] == [Blob([1.0], "None", service)]
        assert blobs["CircuitOpen"] == [Blob([5.0], "Count", service)]
        assert "BreakerOpened" not in blobs

        # And once the manager answers again and the reset timeout passed, the trial call closes it:
        # one latency per delivered notification, all in one blob, in ms from observed_at
        status[0] = 200
        time.sleep(0.25)
        failed, blobs = invoke()
        assert failed == 0
        assert not restate.breaker_open
        assert blobs["CircuitState"] == [Blob([0.0], "None", service)]
        assert blobs["DeliveryLatency"] == [Blob([2500.0] * 5, "Milliseconds", service)]
        assert "BreakerOpened" not in blobs
        # every metric went out with a dimension set the cross-check assumes the code emits
        emits = emitted(load_template())
        for name, occurrences in blobs.items():
            for blob in occurrences:
                assert blob.dimensions in emits.dimension_sets("podwatch-deliver", name), (name, blob)
    finally:
        restate.close()


def test_latency_is_never_negative_and_a_naive_observed_at_is_utc() -> None:
    from podwatch.delivery import latency_ms

    note = Notification.model_validate_json(load_event("events/deliver/batch.json")["Records"][0]["body"])
    observed = note.observed_at
    assert latency_ms(note, observed + timedelta(milliseconds=1234)) == 1234.0
    assert latency_ms(note, observed - timedelta(seconds=3)) == 0.0  # the relay's clock runs ahead
    naive = note.model_copy(update={"observed_at": observed.astimezone(UTC).replace(tzinfo=None)})
    assert latency_ms(naive, observed + timedelta(seconds=1)) == 1000.0


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


#: the namespace as the template writes it (every stack its own)
NS = telemetry.metrics_namespace("${AWS::StackName}")


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
    for name in ("DeliveryUnauthorized", "DeliveryRejected", "Retried"):
        assert alarmed(NS, name, service="podwatch-deliver"), name
    # breaker open: on the state every invocation reports (not on skipped records, which only count
    # once the breaker has skipped something), by its maximum over the deliver function's environments
    assert any(
        r.name == "CircuitState" and r.stat == "Maximum" and r.dimensions == {"service": "podwatch-deliver"}
        for r in refs
    )
    for service, names in emitted(template).metrics.items():
        if "ConfigRejected" in names:
            assert alarmed(NS, "ConfigRejected", service=service), service
    # relay heartbeats stopped, per cluster (config-sync counts the silent ones)
    assert alarmed(NS, "ClustersSilent", service="podwatch-config-sync")


def test_the_dashboard_shows_delivery_latency_percentiles_and_the_breaker(template: dict[str, Any]) -> None:
    shown = {(r.name, r.stat) for r in widget_refs(dashboard_body(template)) if r.namespace == NS}
    assert {("DeliveryLatency", "p50"), ("DeliveryLatency", "p99"), ("CircuitState", "Maximum")} <= shown
    assert ("BreakerOpened", "Sum") in shown


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
        (f'"{NS}", "Delivered"', f'"{NS}", "Delivred"', "never emits Delivred"),
        (f'["{NS}", "IncidentsOpened"', '["Podwatch", "IncidentsOpened"', "namespace 'Podwatch'"),
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
        ('{"stat": "p99", "label": "p99"}', '{"stat": "Sum", "label": "p99"}', "a Sum of DeliveryLatency"),
        (
            '"CircuitState", "service", "podwatch-deliver", {"stat": "Maximum"',
            '"CircuitState", "service", "podwatch-deliver", {"stat": "Sum"',
            "a Sum of CircuitState (NoUnit) means nothing",
        ),
        ("'Maximum', 300)", "'Sum', 300)", "a Sum of HeartbeatAgeSeconds (Seconds) means nothing"),
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
    # the breaker alarm summing a 0/1 state
    broken = copy.deepcopy(template)
    broken["Resources"]["CircuitOpenAlarm"]["Properties"]["Statistic"] = "Sum"
    assert any("CircuitOpenAlarm" in p and "a Sum of CircuitState" in p for p in problems(broken))


def test_the_check_catches_a_metric_the_code_adds_without_a_widget(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry, "DELIVER_METRICS", telemetry.DELIVER_METRICS | {"ManagerAnswerBytes"})
    assert "ManagerAnswerBytes (service=podwatch-deliver) is emitted but on no dashboard widget" in problems(
        template
    )
