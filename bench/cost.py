"""Cost benchmark: what a million watch events cost on AWS, from counts measured on the local stack.

A realistic mix (events/replay/make_load.py: most pods healthy churn, a few per cent in trouble) is
replayed through the real relay code into the local stack (moto, the real Restate server and
reference manager, the real handlers behind the template's event sources), and everything that
AWS bills per event is counted while it runs:

    SQS requests         every SQS data-plane call of the relay, the functions and the event
                         source pollers, by a botocore hook (empty receives are the idle polling
                         floor: reported apart, a monthly cost, not a per-event one)
    Lambda               invocations and GB-s: each invocation's measured duration (this host) x the
                         function's MemorySize from template.yaml, at the arm64 price
    DynamoDB             write and read request units: one per write / read call (items < 1 KB)
    CloudWatch Logs      bytes the functions write (JSON logs, audit lines, EMF), plus ~260 bytes
                         of START/END/REPORT lines Lambda adds per invocation
    X-Ray                traces recorded: one per invocation, times the default sampling (5 %)
    EventBridge          entries put on the notifications bus

The event history's side path (the history queue and its DLQ, the history-writer) runs in the stack
too, but is priced apart: `cost_usd_per_million_events` is everything else (the notification path,
fan-out, hooks), and `cost_usd_per_million_events_with_history` adds the history at
`python -m bench history`'s price per stored record (writes, storage, SQS, the writer; measured in
this run) times the records stored per watch event in this mix (the items the writer put).

Prices: bench/prices.json (region, source, date). Figures merged into bench/results.json:
`cost_usd_per_million_events`, `cost_usd_per_million_events_with_history`, `cost_bench` (counts,
breakdown, biggest item, the mix, the history's share), and the same mix with the cheaper audit mode
(template AuditFilteredEvents=summary: filtered events counted per invocation instead of a log line
each), `cost_usd_per_million_events_audit_summary`.

    python -m bench cost            # this section alone (`make bench` runs it with the rest)
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PRICES = ROOT / "bench" / "prices.json"
#: the mix: 400 pods, 4 crash-looping replicas and 1 % each OOMKilled / image pull / evicted
#: (4 % of the pods in trouble), the rest healthy churn up to 4000 watch lines
MIX = {"pods": 400, "lines": 4000, "crash_replicas": 4, "other_share": 0.01}
#: what Lambda itself writes to a function's log group per invocation (START, END, REPORT lines)
PLATFORM_LOG_BYTES = 260
#: X-Ray's default sampling rule: 1 request a second, then 5 % (the per-second reservoir is left out)
XRAY_SAMPLING = 0.05
GOAL_USD = 0.50


class CallCounter:
    """A botocore `after-call` hook: API calls by service and operation, non-empty receives apart,
    entries put on EventBridge; with `params` (`provide-client-params`), each SQS call's queue
    (`by_queue`) and the items BatchWriteItem puts."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.by_queue: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()

    def params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_queue"] = params.get("QueueUrl", "")
        with self.lock:
            for requests in (params.get("RequestItems") or {}).values():
                self.calls["dynamodb.BatchWriteItem.puts"] += sum(1 for r in requests if "PutRequest" in r)

    def __call__(
        self,
        event_name: str,
        parsed: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        _, service, operation = event_name.split(".", 2)
        key = f"{service}.{operation}"
        with self.lock:
            if key == "sqs.ReceiveMessage":
                key = "sqs.ReceiveMessage" if (parsed or {}).get("Messages") else "sqs.ReceiveMessage(empty)"
            self.calls[key] += 1
            if service == "sqs":
                self.by_queue[(key, (context or {}).get("bench_queue", ""))] += 1
            if key == "eventbridge.PutEvents":
                self.calls["eventbridge.entries"] += len((parsed or {}).get("Entries") or [])


class ByteCounter(io.TextIOBase):
    """Where the functions' stdout/stderr go: counted (UTF-8 bytes), not kept."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            self.bytes += len(text.encode())
        return len(text)


def _load_stream(path: Path) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("make_load", ROOT / "events/replay/make_load.py")
    if spec is None or spec.loader is None:
        raise ImportError("events/replay/make_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    module.write(path, module.Scenario(**MIX))
    return {"lines": sum(1 for _ in path.open(encoding="utf-8"))}


def _billed_ms(outcomes: list[Any]) -> int:
    return sum(math.ceil(o.duration_ms) for o in outcomes)


def measure(audit_filtered: str = "each") -> dict[str, Any]:
    """Replay the mix through the local stack; the counts (see the module docstring).
    `audit_filtered`: the template's AuditFilteredEvents (each | summary)."""
    import boto3

    from local.stack import LocalStack

    counter, logs = CallCounter(), ByteCounter()
    session = boto3.setup_default_session() or boto3.DEFAULT_SESSION
    if session is None:
        raise RuntimeError("no default boto3 session")
    session.events.register("after-call", counter)
    session.events.register("provide-client-params", counter.params)
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "mix.jsonl"
        lines = _load_stream(stream)["lines"]
        with LocalStack(
            run_dir=Path(tmp) / "run",
            function_output=logs,
            parameters={"AuditFilteredEvents": audit_filtered},
        ) as stack:
            result = stack.replay(stream, recorded_time=True)
            stack.pump_until_idle(timeout=1800)
            functions = {}
            for lid, pollers in stack.pollers.items():
                outcomes = [o for p in pollers for o in p.outcomes]
                memory_gb = stack.function_specs[lid].memory_size / 1024
                functions[lid] = {
                    "invocations": len(outcomes),
                    "records": sum(o.received for o in outcomes),
                    # billed per started ms, at the function's MemorySize
                    "gb_seconds": round(_billed_ms(outcomes) / 1000 * memory_gb, 3),
                }
            audit = stack.audit_records()
            history_queues = {stack.queue_url("HistoryQueue"), stack.queue_url("HistoryDLQ")}
    return {
        "watch_events": lines,
        "relay_forwarded": result.stats.to_dict().get("forwarded"),
        "calls": dict(sorted(counter.calls.items())),
        "functions": functions,
        "log_bytes": logs.bytes,
        "audit_lines": len(audit),
        "audit_by_action": dict(Counter(str(r.get("action")) for r in audit)),
        # the history side path, priced apart (module docstring)
        "history_sqs_calls": sum(
            n for (op, queue), n in counter.by_queue.items() if queue in history_queues and op in _SQS_BILLED
        ),
        "history_records": counter.calls.get("dynamodb.BatchWriteItem.puts", 0),
    }


def cost(counts: dict[str, Any], prices: dict[str, Any]) -> dict[str, Any]:
    """USD per million watch events, by item, from the counts and the price table."""
    p = {name: float(entry["value"]) for name, entry in prices["prices"].items()}
    calls: dict[str, int] = counts["calls"]
    scale = 1_000_000 / counts["watch_events"]
    sqs = sum(calls.get(f"sqs.{op}", 0) for op in SQS_DATA_PLANE) - counts.get("history_sqs_calls", 0)
    functions = [f for lid, f in counts["functions"].items() if lid not in HISTORY_FUNCTIONS]
    invocations = sum(f["invocations"] for f in functions)
    gb_s = sum(f["gb_seconds"] for f in functions)
    writes = sum(calls.get(f"dynamodb.{op}", 0) for op in ("PutItem", "UpdateItem", "DeleteItem"))
    reads = sum(calls.get(f"dynamodb.{op}", 0) for op in ("GetItem", "Query"))
    log_bytes = counts["log_bytes"] + PLATFORM_LOG_BYTES * invocations
    units = {
        "sqs_requests": sqs,
        "lambda_invocations": invocations,
        "lambda_gb_seconds": round(gb_s, 3),
        "dynamodb_wru": writes,
        "dynamodb_rru": reads,
        "cloudwatch_logs_bytes": log_bytes,
        "xray_traces": round(invocations * XRAY_SAMPLING, 2),
        "eventbridge_events": calls.get("eventbridge.entries", 0),
    }
    usd = {
        "sqs": sqs * p["sqs_usd_per_million_requests"] / 1e6,
        "lambda_requests": invocations * p["lambda_usd_per_million_invocations"] / 1e6,
        "lambda_duration": gb_s * p["lambda_arm64_usd_per_gb_second"],
        "dynamodb": writes * p["dynamodb_on_demand_usd_per_million_wru"] / 1e6
        + reads * p["dynamodb_on_demand_usd_per_million_rru"] / 1e6,
        "cloudwatch_logs": log_bytes / 1e9 * p["cloudwatch_logs_usd_per_gb_ingested"],
        "xray": units["xray_traces"] * p["xray_usd_per_million_traces"] / 1e6,
        "eventbridge": units["eventbridge_events"] * p["eventbridge_usd_per_million_events"] / 1e6,
    }
    per_million = {k: round(v * scale, 4) for k, v in usd.items()}
    total = round(sum(per_million.values()), 4)
    return {
        "usd_per_million_events": total,
        "breakdown_usd_per_million_events": per_million,
        "biggest_item": max(per_million, key=lambda k: per_million[k]),
        "units_per_million_events": {k: round(v * scale, 1) for k, v in units.items()},
    }


#: SQS calls billed per event: sends, receives that got messages, deletes, visibility changes (not
#: the idle polling floor of empty receives, nor the harness's GetQueueAttributes / CreateQueue)
SQS_DATA_PLANE = (
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
)
_SQS_BILLED = {f"sqs.{op}" for op in SQS_DATA_PLANE}
#: functions of the history side path (priced by `python -m bench history`, not here)
HISTORY_FUNCTIONS = frozenset({"HistoryWriterFunction", "HistoryFunction"})


def with_history(
    figures: dict[str, Any], counts: dict[str, Any], history_usd_per_record: float
) -> dict[str, Any]:
    """The whole bill per million watch events: this section's figure plus the history's, at its
    price per stored record times the records this mix stored per watch event."""
    per_event = counts["history_records"] / counts["watch_events"]
    history = history_usd_per_record * per_event
    return {
        "usd_per_million_events": round(figures["usd_per_million_events"] + history, 4),
        "history_usd_per_million_events": round(history, 4),
        "history_records_per_watch_event": round(per_event, 3),
        "history_usd_per_million_records": history_usd_per_record,
    }


def run() -> dict[str, Any]:
    prices = json.loads(PRICES.read_text(encoding="utf-8"))
    from bench import history as history_bench

    counts = measure("each")
    figures = cost(counts, prices)
    history_usd = history_bench.run()["history_cost_usd_per_million_events"]  # this run's, not merged
    whole = with_history(figures, counts, history_usd)
    # the cheaper audit mode (AuditFilteredEvents=summary), measured on the same mix
    summary_counts = measure("summary")
    summary = cost(summary_counts, prices)
    return {
        "cost_usd_per_million_events": figures["usd_per_million_events"],
        "cost_usd_per_million_events_audit_summary": summary["usd_per_million_events"],
        "cost_usd_per_million_events_with_history": whole["usd_per_million_events"],
        "cost_bench": {
            **figures,
            "with_history": whole,
            "audit_summary_mode": {**summary, "counts": summary_counts},
            "goal_usd": GOAL_USD,
            "mix": {**MIX, "generator": "events/replay/make_load.py"},
            "counts": counts,
            "prices": f"bench/prices.json ({prices['region']})",
            "assumptions": [
                "Lambda durations measured on this host (x86, shared), billed per ms at arm64 prices",
                "one DynamoDB request unit per read/write call (items under 1 KB)",
                f"X-Ray sampling {XRAY_SAMPLING:.0%} of invocations",
                f"{PLATFORM_LOG_BYTES} B of Lambda's own log lines per invocation",
                "idle SQS polling (empty receives), custom metrics and log storage: monthly, not per event",
            ],
        },
    }


def main() -> None:
    from bench.processor import merge_results

    figures = run()
    merge_results(figures)
    detail = figures["cost_bench"]
    total = figures["cost_usd_per_million_events"]
    verdict = "ok" if total <= GOAL_USD else "MISSES GOAL"
    print(f"{'cost_usd_per_million_events':32} {total:>9}   goal <= {GOAL_USD} {verdict}")
    print(f"  biggest: {detail['biggest_item']}; {json.dumps(detail['breakdown_usd_per_million_events'])}")
    cheaper = figures["cost_usd_per_million_events_audit_summary"]
    print(f"{'  with AuditFilteredEvents=summary':32} {cheaper:>9}")
    whole = detail["with_history"]
    print(
        f"{'cost_usd_per_million_events_with_history':32} {whole['usd_per_million_events']:>9}   "
        f"(+ history {whole['history_usd_per_million_events']}: {whole['history_records_per_watch_event']} "
        f"records a watch event x ${whole['history_usd_per_million_records']} per million records)"
    )


if __name__ == "__main__":
    main()
