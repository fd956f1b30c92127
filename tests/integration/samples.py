"""What every sample under events/ is expected to come to, and the stand-in manager it is invoked
against: shared by test_event_samples (the handlers in-process on moto) and test_deployed (the
handlers in a clean environment with only what Lambda gives them, on a moto server)."""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.lambda_runtime import ROOT
from podwatch.models import RemoteConfig
from podwatch_cli.loopback import LoopbackHandler, LoopbackServer

EVENTS = ROOT / "events"
STACK = "podwatch-samples"
PARAMETER = f"/{STACK}/remote-config"
#: the stack's clusters (ClusterIds): what the scheduled config sync covers
CLUSTER_IDS = "prod-eu-1"
#: what the manager answers to GetRemoteConfig: not the defaults, so a sync has something to write
MANAGER_CONFIG = RemoteConfig(version="manager-7", batch_size=50, batch_flush_seconds=10)
#: the template's logical id of the function behind each events/ folder
FUNCTION_OF = {
    "processor": "ProcessorFunction",
    "deliver": "DeliverFunction",
    "config_sync": "ConfigSyncFunction",
    "fanout": "FanoutFunction",
    "hooks": "HooksFunction",
    "history_writer": "HistoryWriterFunction",
    "history": "HistoryFunction",
}
#: what the processor forwards besides notifications (control commands for the manager)
CONTROL_KINDS = frozenset({"enroll"})
#: a queue subscribed to the stack's bus by a rule for `source: podwatch` (what a user's rule sees)
BUS_TARGET = "BusTarget"
BUS_RULE_PATTERN = {"source": ["podwatch"]}


@dataclass(frozen=True)
class Expect:
    """What invoking a sample comes to."""

    #: SQS functions: records returned as batch item failures
    failures: int = 0
    #: processor: messages sent to the deliveries queue, by kind (a Notification's event type, or
    #: a control command's kind)
    forwarded: dict[str, int] = field(default_factory=dict)
    #: deliver: what the manager received, by handler (NotifyPodEvents: notifications; Enroll: calls)
    received: dict[str, int] = field(default_factory=dict)
    #: messages in the function's quarantine queue (its DLQ), by their `reason` attribute
    quarantined: dict[str, int] = field(default_factory=dict)
    #: config sync: entries of the returned summary
    summary: dict[str, Any] = field(default_factory=dict)
    #: fanout: events a rule on the bus delivered, by detail-type
    published: dict[str, int] = field(default_factory=dict)
    #: history-writer: records stored (its HistoryWritten metric)
    written: int = 0
    #: history API: the answer's status and the lists its body has
    status: int = 0
    lists: tuple[str, ...] = ()
    #: the timeline page: text its (gzipped) HTML holds
    page: str = ""


EXPECTED: dict[str, Expect] = {
    "processor/batch.json": Expect(
        forwarded={"crash-loop": 1, "oom-kill": 1, "evicted": 1, "probe-failed": 1, "image-pull": 1}
    ),
    "processor/poison.json": Expect(
        forwarded={"crash-loop": 1, "unschedulable": 1},
        quarantined={"malformed": 2, "unknown_kind": 1, "unsupported_schema_version": 1},
    ),
    # the first enroll of a relay version goes on to the manager through the deliveries queue
    "processor/enroll.json": Expect(forwarded={"enroll": 1}),
    # three replicas crash-loop: an incident each (the default dedup scope is the pod), the repeat
    # is deduplicated, and `recovered` is not enabled by default (filtered)
    "processor/lifecycle.json": Expect(forwarded={"crash-loop": 3}),
    # history-only objects (filtered history_only), two nodes in trouble, the first one's recovery
    # (recovered is not enabled by default), a Hook applied then deleted (control), and a bad
    # object and a bad Hook
    "processor/kinds.json": Expect(
        forwarded={"node-not-ready": 1, "node-memory-pressure": 1},
        quarantined={"invalid_hook": 1, "malformed": 1},
    ),
    "deliver/batch.json": Expect(received={"NotifyPodEvents": 5}),
    "deliver/enroll.json": Expect(received={"Enroll": 1, "NotifyPodEvents": 1}),
    "deliver/poison.json": Expect(received={"NotifyPodEvents": 3}, quarantined={"malformed": 5}),
    "config_sync/schedule.json": Expect(
        summary={
            "clusters": ["prod-eu-1"],
            "config_version": "manager-7",
            "parameter_written": True,
            "mapping_updated": True,
            "mapping": {"batch_size": 50, "batching_window_seconds": 10},
            "rejected": {},
            "fetch_failed": {},
            "silent": ["prod-eu-1"],  # nothing heard of it in this empty clusters table
        }
    ),
    "fanout/batch.json": Expect(
        published={"crash-loop": 1, "oom-kill": 1, "evicted": 1, "probe-failed": 1, "image-pull": 1},
    ),
    "fanout/poison.json": Expect(
        published={"crash-loop": 1, "oom-kill": 1, "unschedulable": 1}, quarantined={"malformed": 5}
    ),
    # no Hook applied in the sample stack: the notifications match nothing (no call), the plain and
    # the EventBridge-wrapped body both parse, the body that is not JSON is quarantined
    "hooks/batch.json": Expect(quarantined={"malformed": 1}),
    # the pods and the Event of processor/batch.json, healthy ones too
    "history_writer/batch.json": Expect(written=8),
    "history_writer/poison.json": Expect(
        written=3, quarantined={"malformed": 2, "unknown_kind": 1, "unsupported_schema_version": 1}
    ),
    # an empty table: 200 with empty lists (the same as for an unknown object)
    "history/events.json": Expect(status=200, lists=("events",)),
    "history/object.json": Expect(status=200, lists=("watchEvents", "relatedEvents")),
    # the timeline page, gzipped as the browser asked, from the function's own ui/ folder
    "history/page.json": Expect(status=200, page='<script src="ui/app.js" defer>'),
    "config_sync/sync-now.json": Expect(
        summary={
            "clusters": ["prod-eu-1", "staging-us-2"],
            "config_version": "manager-7",
            "parameter_written": True,
            "rejected": {},
            "fetch_failed": {},
            "divergent": [],
        }
    ),
}


def samples() -> list[str]:
    """Every sample, as `<function folder>/<file>.json`."""
    return sorted(str(p.relative_to(EVENTS)) for p in EVENTS.glob("*/*.json"))


# --------------------------------------------------------------------------- the manager


@dataclass
class Manager:
    """A loopback HTTP server standing in for the Restate ingress (the reference manager's paths)."""

    url: str = ""
    #: (handler, cluster id, request body) of every call
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def received(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for handler, _cluster, body in self.calls:
            out[handler] += len(body["events"]) if handler == "NotifyPodEvents" else 1
        return dict(out)


@contextmanager
def serve_manager() -> Iterator[Manager]:
    state = Manager()

    class Handler(LoopbackHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            _, _object, cluster, handler = self.path.split("/")
            body = json.loads(raw) if raw else None
            state.calls.append((handler, cluster, body))
            if handler == "GetRemoteConfig":
                answer = MANAGER_CONFIG.to_json()
            elif handler == "NotifyPodEvents":
                answer = json.dumps({"received": len(body["events"]), "new": len(body["events"])})
            else:
                answer = json.dumps({"new": True})
            self.send(200, {"content-type": "application/json"}, answer.encode())

    with LoopbackServer(Handler, name="manager", poll_interval=0.05) as server:
        state.url = server.url
        yield state


def forwarded_kinds(messages: list[dict[str, Any]]) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    for message in messages:
        body = json.loads(message["Body"])
        kinds[body["kind"] if "kind" in body else body["event_type"]] += 1
    return dict(kinds)


def emf_namespaces(out: str) -> set[str]:
    """The namespaces of the EMF blobs in a handler's output (none: no metrics went out)."""
    return {
        directive["Namespace"]
        for line in out.splitlines()
        if line.startswith("{") and '"_aws"' in line
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]
    }


def emf_values(out: str, name: str) -> list[float]:
    """The values of metric `name` in a handler's EMF output."""
    return [
        value
        for line in out.splitlines()
        if line.startswith("{") and '"_aws"' in line and name in json.loads(line)
        for value in json.loads(line)[name]
    ]


def quarantine_reasons(messages: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(m["MessageAttributes"]["reason"]["StringValue"] for m in messages))


def check_outcome(
    sample: str,
    response: Any,
    *,
    drain: Callable[[str], list[dict[str, Any]]],
    stored_config: str,
    manager: Manager,
    out: str,
    namespace: str,
) -> None:
    """Assert that invoking `sample` came to what EXPECTED says: the response, what went to the
    deliveries queue and the DLQs (`drain(logical id)` empties a queue), what the manager received,
    the stored remote config, and metrics (EMF in the handler's output `out`) in `namespace`."""
    expect = EXPECTED[sample]
    folder = Path(sample).parts[0]
    if folder == "config_sync":
        assert {key: response[key] for key in expect.summary} == expect.summary
        assert RemoteConfig.from_json(stored_config) == MANAGER_CONFIG
        assert emf_namespaces(out) == {namespace}
        return
    if folder == "history" and expect.page:
        assert response["statusCode"] == expect.status
        assert response["headers"]["Content-Encoding"] == "gzip"
        assert expect.page in gzip.decompress(base64.b64decode(response["body"])).decode()
        return
    if folder == "history":
        assert response["statusCode"] == expect.status
        body = json.loads(response["body"])
        assert all(body[name] == [] for name in expect.lists), body
        assert emf_namespaces(out) == {namespace}
        return
    assert len(response["batchItemFailures"]) == expect.failures
    if folder == "history_writer":
        assert emf_values(out, "HistoryWritten") == [expect.written]
        assert quarantine_reasons(drain("HistoryDLQ")) == expect.quarantined
        assert manager.calls == []
    elif folder == "fanout":
        events = [json.loads(m["Body"]) for m in drain(BUS_TARGET)]
        assert dict(Counter(e["detail-type"] for e in events)) == expect.published
        assert {e["source"] for e in events} == {"podwatch"}
        # the detail is the notification itself, each once
        assert len({e["detail"]["notification_id"] for e in events}) == len(events)
        assert quarantine_reasons(drain("FanoutDLQ")) == expect.quarantined
        assert manager.calls == []
    elif folder == "processor":
        assert forwarded_kinds(drain("DeliveriesQueue")) == expect.forwarded
        # every forwarded notification (not the control commands) went to the fan-out queue too
        notifications = {kind: n for kind, n in expect.forwarded.items() if kind not in CONTROL_KINDS}
        assert forwarded_kinds(drain("FanoutQueue")) == notifications
        assert quarantine_reasons(drain("PodEventsDLQ")) == expect.quarantined
        assert manager.calls == []
    elif folder == "hooks":
        assert quarantine_reasons(drain("HooksDLQ")) == expect.quarantined
        assert manager.calls == []
    else:
        assert manager.received() == expect.received
        assert quarantine_reasons(drain("DeliveriesDLQ")) == expect.quarantined
        # every notification the sample carries validly reached the manager exactly once
        sent = [
            n["notification_id"]
            for _h, _c, body in manager.calls
            if body and "events" in body
            for n in body["events"]
        ]
        assert len(sent) == len(set(sent))
    assert emf_namespaces(out) == {namespace}


def subscribe_queue(
    events: Any, sqs: Any, bus_name: str, queue_name: str, pattern: Any = BUS_RULE_PATTERN
) -> str:
    """A queue a rule on `bus_name` sends the events matching `pattern` to (default: every podwatch
    event); its URL."""
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"{queue_name}-rule"
    events.put_rule(Name=rule, EventBusName=bus_name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=bus_name, Targets=[{"Id": "q", "Arn": arn}])
    return str(url)
