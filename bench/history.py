"""Event history benchmark: what storing and querying the history costs.

history_wcu_per_event                 write units per stored transition: every item the relay's
                                      messages become (the `make run` sample and the relay
                                      bench's heavy 7-container pods, through the relay's own
                                      code), ceil(size / 1 KB) in the table plus ceil(entry /
                                      1 KB) in the time index (projection INCLUDE: keys and
                                      history.TIME_INDEX_ATTRIBUTES). Goal <= 2.
history_query_us_per_page             CPU of the history function's handler for one 100-record
                                      page of `GET /api/v1/events` (a next page: cursor given),
                                      DynamoDB stubbed with those real items spread over the 16
                                      shards of a day: Query pages of the index's projection,
                                      then BatchGetItem of the page's items. Goal <= 5,000 us.
history_cost_usd_per_million_events   writes, storage for RetentionDays (table, index; point-in-
                                      time recovery when HistoryPointInTimeRecovery=true: off by
                                      default), SQS requests (processor -> history queue, packs
                                      of one invocation's records -> writer) and the writer's
                                      Lambda time, at list prices, from the counts and sizes
                                      measured here. Goal <= $1.50. The same items priced as the
                                      design was before (index ALL, PITR on, a message a record)
                                      are printed with it: `cost.before`, lever by lever.

python -m bench history          # this section alone (merged into bench/results.json)
"""

from __future__ import annotations

import bisect
import json
import math
import os
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "events" / "replay" / "sample-stream.jsonl"
GOALS = {
    "history_wcu_per_event": 2,
    "history_query_us_per_page": 5000,
    "history_cost_usd_per_million_events": 1.50,
}
#: list prices: bench/prices.json (shared with `python -m bench cost`), by the names used here
PRICE_NAMES = {
    "dynamodb_write_per_million_wru": "dynamodb_on_demand_usd_per_million_wru",
    "dynamodb_storage_per_gb_month": "dynamodb_storage_usd_per_gb_month",
    "dynamodb_pitr_per_gb_month": "dynamodb_pitr_usd_per_gb_month",
    "sqs_per_million_requests": "sqs_usd_per_million_requests",
    "lambda_arm_per_gb_second": "lambda_arm64_usd_per_gb_second",
    "lambda_per_million_invocations": "lambda_usd_per_million_invocations",
}


def load_prices() -> dict[str, float]:
    listed = json.loads((ROOT / "bench" / "prices.json").read_text())["prices"]
    return {name: float(listed[key]["value"]) for name, key in PRICE_NAMES.items()}


#: DynamoDB counts 100 bytes of overhead per item in a table and per entry in an index (storage)
ITEM_OVERHEAD = 100
RETENTION_DAYS = 14
DAYS_PER_MONTH = 30.44
#: the history-writer: batch size 10 messages (template); memory 512 MB; BatchWriteItem ~10 ms per 25
#: items. The processor: ProcessorBatchSize 10 (template default), so a pack holds <= 10 records
WRITER_BATCH, WRITER_MEMORY_GB, BATCH_WRITE_WALL_S = 10, 0.5, 0.010
PROCESSOR_BATCH = 10
#: SQS bills a request per 64 KiB chunk of its payload
SQS_CHUNK = 64 * 1024
PAGE, ROUNDS = 100, 60


def _bodies(path: Path, *, heavy: bool) -> list[str]:
    """The SQS bodies the relay's own code makes of a watch stream (recorded clock)."""
    from podwatch_relay.pipeline import Relay
    from podwatch_relay.replay import RecordedClock, replay_file
    from podwatch_relay.sink import FileSink

    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "stream.jsonl"
        if heavy:
            from bench import relay_stream

            stream.write_bytes(b"\n".join(relay_stream.build_stream(pods=200, rounds=3)) + b"\n")
        else:
            stream.write_bytes(path.read_bytes())
        out = Path(tmp) / "bodies.jsonl"
        clock = RecordedClock()
        relay = Relay(sink=FileSink(path=str(out)), cluster_id="bench", relay_version="bench", clock=clock)
        replay_file(stream, relay, clock=clock)
        return out.read_text().splitlines()


def _items(bodies: list[str]) -> list[dict[str, Any]]:
    """History items, with the classification a troubled pod gets (as the processor attaches it)."""
    from podwatch.classify import classify
    from podwatch.history import Classification, item_of
    from podwatch.models import KubeEventEnvelope, PodEnvelope
    from podwatch.wire import parse_envelope

    items = []
    for body in bodies:
        envelope = parse_envelope(body)
        if not isinstance(envelope, PodEnvelope | KubeEventEnvelope):
            continue
        classes = [
            Classification(
                f.event_type.value, "forwarded", "opened", f"bench/ns/pod/{f.container}/{f.event_type}"
            )
            for f in classify(envelope, pending_too_long_s=0)
        ]
        items.append(item_of(envelope, classes))
    return items


def index_entry(item: dict[str, Any]) -> dict[str, Any]:
    """What the time index holds of an item: its keys and history.TIME_INDEX_ATTRIBUTES."""
    from podwatch.history import TIME_INDEX_ATTRIBUTES

    kept = {"pk", "sk", "tk", *TIME_INDEX_ATTRIBUTES}
    return {k: v for k, v in item.items() if k in kept}


def write_units(items: list[dict[str, Any]]) -> dict[str, Any]:
    from podwatch.history import item_size

    sizes = [item_size(i) for i in items]
    entries = [item_size(index_entry(i)) for i in items]
    units = [
        math.ceil(size / 1024) + math.ceil(entry / 1024) for size, entry in zip(sizes, entries, strict=True)
    ]
    return {
        "wcu_per_event": round(statistics.fmean(units), 3),
        "item_bytes_avg": round(statistics.fmean(sizes)),
        "item_bytes_max": max(sizes),
        "index_entry_bytes_avg": round(statistics.fmean(entries)),
        "index_entry_bytes_max": max(entries),
        "trimmed": sum(1 for i in items if i.get("tr")),
        "items": len(items),
    }


class StubDynamoDB:
    """DynamoDB's Query of the time index (pages of `Limit`, newest first, its projection) and
    BatchGetItem over in-memory items: the handler's own work is what is measured, not moto's or
    the network's."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        from podwatch.historystore import to_attributes

        self.partitions: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self.table: dict[tuple[str, str], dict[str, Any]] = {}
        for item in items:
            self.partitions[item["tk"]].append((item["sk"], to_attributes(index_entry(item))))
            self.table[(item["pk"], item["sk"])] = to_attributes(item)
        for rows in self.partitions.values():
            rows.sort(key=lambda row: row[0], reverse=True)
        self.keys = {tk: [_Desc(sk) for sk, _ in rows] for tk, rows in self.partitions.items()}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((name, request),) = RequestItems.items()
        assert len(request["Keys"]) <= 100
        found = [self.table[(k["pk"]["S"], k["sk"]["S"])] for k in request["Keys"]]
        return {"Responses": {name: found}, "UnprocessedKeys": {}}

    def query(self, **request: Any) -> dict[str, Any]:
        values = request["ExpressionAttributeValues"]
        key, low, high = values[":pk"]["S"], values[":lo"]["S"], values[":hi"]["S"]
        rows = self.partitions.get(key, [])
        keys = self.keys.get(key, [])  # ascending negated order: bisect on the newest-first list
        start = request.get("ExclusiveStartKey", {}).get("sk", {}).get("S")
        top = min(high, start) if start is not None else high
        first = (
            bisect.bisect_left(keys, _Desc(top)) if start is None else bisect.bisect_right(keys, _Desc(top))
        )
        last = bisect.bisect_right(keys, _Desc(low))
        if request.get("Select") == "COUNT":
            return {"Count": last - first}
        end = min(last, first + request["Limit"])
        answer: dict[str, Any] = {"Items": [attributes for _, attributes in rows[first:end]]}
        if end < last:
            answer["LastEvaluatedKey"] = {"tk": {"S": key}, "sk": {"S": rows[end - 1][0]}}
        return answer


class _Desc:
    """A sort key compared the other way round (the stub's partitions are newest first)."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __lt__(self, other: _Desc) -> bool:
        return self.key > other.key


def _spread(items: list[dict[str, Any]], day: datetime, copies: int) -> list[dict[str, Any]]:
    """The real items, `copies` times, renamed over many pods and spread over one day's shards."""
    from podwatch.history import iso, object_key, shard_of, time_key

    out = []
    for n in range(copies):
        for i, item in enumerate(items):
            name = f"pod-{n}-{i}"
            moment = day + timedelta(seconds=(n * len(items) + i) * 7 % 86_000)
            out.append(
                {
                    **item,
                    "pk": object_key("bench", "shop", "pod", name),
                    "n": name,
                    "sk": f"{iso(moment)}##ev-{n}-{i}",
                    "tk": time_key("bench", day.date().isoformat(), shard_of("bench", "shop", name)),
                    "x": int((day + timedelta(days=30)).timestamp()),
                }
            )
    return out


def query_cpu(items: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU of the handler for one page (a first page, with its count; and the next pages)."""
    from bench.processor import stdout_to_devnull
    from local.historyapi import http_api_event
    from local.lambda_runtime import LambdaContext, load_function_module
    from podwatch.settings import HistoryApiSettings

    for name, value in {
        "POWERTOOLS_SERVICE_NAME": "podwatch-history",
        "POWERTOOLS_METRICS_NAMESPACE": "Podwatch/bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        os.environ.setdefault(name, value)
    day = datetime(2026, 11, 20, tzinfo=UTC)
    module = load_function_module("history", fresh=True)
    settings = HistoryApiSettings(history_table_name="bench-history", history_default_cluster="bench")
    stub = StubDynamoDB(_spread(items, day, copies=40))
    module.set_dependencies(
        module.build_dependencies(settings, dynamodb=stub, clock=lambda: day + timedelta(days=1))
    )
    query = f"/api/v1/events?start=2026-11-20T00:00:00Z&end=2026-11-20T23:59:59Z&limit={PAGE}"
    context = LambdaContext()

    def page(path: str) -> tuple[float, dict[str, Any]]:
        started = time.process_time()
        answer = module.lambda_handler(http_api_event("GET", path, {}), context)
        return time.process_time() - started, answer

    first, next_ = [], []
    with stdout_to_devnull():  # the EMF lines (their making is measured, not the terminal)
        page(query)  # warm-up: the first invocation builds what a cold start would
        for _ in range(ROUNDS):
            cpu, answer = page(query)
            first.append(cpu)
            cursor = json.loads(answer["body"])["nextCursor"]
            cpu, answer = page(f"{query}&cursor={cursor}")
            next_.append(cpu)
            assert len(json.loads(answer["body"])["events"]) == PAGE
    module.reset()
    return {
        "us_per_page": round(statistics.median(next_) * 1e6),
        "us_first_page_with_count": round(statistics.median(first) * 1e6),
        "records_stubbed": sum(len(rows) for rows in stub.partitions.values()),
    }


class RecordingSqs:
    """SendMessageBatch that takes everything and keeps each call's message sizes."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.bodies: list[str] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([len(e["MessageBody"].encode()) for e in Entries])
        self.bodies += [e["MessageBody"] for e in Entries]
        return {"Successful": [{"Id": e["Id"], "MessageId": "m"} for e in Entries], "Failed": []}


def history_messages(bodies: list[str], *, packed: bool = True) -> RecordingSqs:
    """What the processor sends to the history queue for `bodies`, PROCESSOR_BATCH records an
    invocation: its own HistoryOutbox's packs (packed=False: a message a record, the earlier design)."""
    from podwatch.historyfeed import HistoryOutbox

    sqs = RecordingSqs()
    for start in range(0, len(bodies), PROCESSOR_BATCH):
        chunk = bodies[start : start + PROCESSOR_BATCH]
        if packed:
            outbox = HistoryOutbox(sqs=sqs, queue_url="history")
            for n, body in enumerate(chunk):
                outbox.add(f"m{start + n}", body, [])
            assert outbox.flush() == {}
        else:
            sqs.send_message_batch(
                QueueUrl="history", Entries=[{"Id": str(n), "MessageBody": b} for n, b in enumerate(chunk)]
            )
    return sqs


def sqs_requests_per_event(sent: RecordingSqs, events: int) -> float:
    """Processor → history queue (SendMessageBatch, billed per 64 KiB chunk of a call's payload) +
    the writer's receives (10 messages a call, as the event source polls, billed the same way) and
    deletes (a DeleteMessageBatch a receive)."""
    sends = sum(max(1, math.ceil(sum(call) / SQS_CHUNK)) for call in sent.calls)
    sizes = [size for call in sent.calls for size in call]
    receives = sum(
        max(1, math.ceil(sum(sizes[start : start + 10]) / SQS_CHUNK)) for start in range(0, len(sizes), 10)
    )
    deletes = math.ceil(len(sizes) / 10)
    return (sends + receives + deletes) / events


def writer_cpu_s_per_event(sent: RecordingSqs, events: int) -> float:
    """The writer's own CPU per record (unpack + parse + item), measured; the calls' wall time is
    added apart."""
    from podwatch.historyfeed import WriterDeps, messages_of, write_history
    from podwatch.historystore import HistoryWriter

    class Accepting:
        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            return {"UnprocessedItems": {}}

    deps = WriterDeps(
        writer=HistoryWriter(table_name="t", client=Accepting()),
        sqs=None,
        quarantine_queue_url="",
        retention_days=RETENTION_DAYS,
        max_receives=10,
    )
    started = time.process_time()
    for _ in range(5):
        messages = [m for i, body in enumerate(sent.bodies) for m in messages_of(str(i), body, None, 1)]
        assert len(messages) == events
        write_history(messages, deps)
    return (time.process_time() - started) / (5 * events)


def cost(items: list[dict[str, Any]], units: dict[str, Any], bodies: list[str]) -> dict[str, Any]:
    """The bill per million stored transitions as deployed now, and the same items priced as the
    design was before (index ALL, PITR on, a message a record), lever by lever."""
    from podwatch.history import item_size

    prices = load_prices()
    table_bytes = statistics.fmean(item_size(i) + ITEM_OVERHEAD for i in items)
    index_bytes = statistics.fmean(item_size(index_entry(i)) + ITEM_OVERHEAD for i in items)
    packed, single = history_messages(bodies), history_messages(bodies, packed=False)
    now = _parts(
        prices, units["wcu_per_event"], table_bytes, index_bytes, pitr=False, sent=packed, events=len(bodies)
    )
    before = _parts(  # the writer's batch was 100 messages then
        prices, 2.0, table_bytes, table_bytes, pitr=True, sent=single, events=len(bodies), writer_batch=100
    )
    n = len(bodies)
    levers = {  # each alone, against `before`
        "pitr_off": _parts(
            prices, 2.0, table_bytes, table_bytes, pitr=False, sent=single, events=n, writer_batch=100
        ),
        "packs": _parts(prices, 2.0, table_bytes, table_bytes, pitr=True, sent=packed, events=n),
        "index_include": _parts(
            prices,
            units["wcu_per_event"],
            table_bytes,
            index_bytes,
            pitr=True,
            sent=single,
            events=n,
            writer_batch=100,
        ),
    }
    total = round(sum(now["parts"].values()), 3)
    return {
        "usd_per_million_events": total,
        "parts_usd": {k: round(v, 4) for k, v in now["parts"].items()},
        "sqs_requests_per_event": now["sqs_requests_per_event"],
        "records_per_message": round(len(bodies) / len(packed.bodies), 2),
        "stored_bytes_per_event": round(table_bytes + index_bytes),
        "writer_ms_per_event": now["writer_ms_per_event"],
        "before": {
            "usd_per_million_events": round(sum(before["parts"].values()), 3),
            "parts_usd": {k: round(v, 4) for k, v in before["parts"].items()},
            "sqs_requests_per_event": before["sqs_requests_per_event"],
            "design": "index projection ALL, point-in-time recovery on, one history message a record",
        },
        "saved_by_lever_usd": {
            name: round(sum(before["parts"].values()) - sum(lever["parts"].values()), 4)
            for name, lever in levers.items()
        },
        "prices": "bench/prices.json",
        "retention_days": RETENTION_DAYS,
    }


def _parts(
    prices: dict[str, float],
    wcu: float,
    table_bytes: float,
    index_bytes: float,
    *,
    pitr: bool,
    sent: RecordingSqs,
    events: int,
    writer_batch: int = WRITER_BATCH,
) -> dict[str, Any]:
    per_million = 1_000_000
    months = RETENTION_DAYS / DAYS_PER_MONTH
    gb = per_million / 1e9
    sqs_requests = sqs_requests_per_event(sent, events)
    lambda_s = writer_cpu_s_per_event(sent, events) + BATCH_WRITE_WALL_S / 25
    compute = per_million * lambda_s * WRITER_MEMORY_GB * prices["lambda_arm_per_gb_second"]
    records_per_invocation = writer_batch * events / len(sent.bodies)
    invocations = prices["lambda_per_million_invocations"] / records_per_invocation
    parts = {
        "writes": wcu * prices["dynamodb_write_per_million_wru"],
        "storage": (table_bytes + index_bytes) * gb * months * prices["dynamodb_storage_per_gb_month"],
        "pitr": table_bytes * gb * months * prices["dynamodb_pitr_per_gb_month"] if pitr else 0.0,
        "sqs": sqs_requests * prices["sqs_per_million_requests"],
        "lambda": compute + invocations,
    }
    return {
        "parts": parts,
        "sqs_requests_per_event": round(sqs_requests, 3),
        "writer_ms_per_event": round(lambda_s * 1000, 3),
    }


def run() -> dict[str, Any]:
    from bench.host import host_reference

    reference = host_reference()["host_reference_ms"]  # this run's own: the file's is left alone
    load = [round(x, 1) for x in os.getloadavg()]
    sample = _bodies(SAMPLE, heavy=False)
    heavy = _bodies(SAMPLE, heavy=True)
    items = _items(sample) + _items(heavy)
    bodies = [b for b in sample + heavy if '"kind":"pod"' in b or '"kind":"k8s_event"' in b]
    units = write_units(items)
    query = query_cpu(_items(sample))
    spend = cost(items, units, bodies)
    return {
        "history_wcu_per_event": units["wcu_per_event"],
        "history_query_us_per_page": query["us_per_page"],
        "history_cost_usd_per_million_events": spend["usd_per_million_events"],
        "history_bench": {
            "items": {
                **units,
                "sample_items": len(_items(sample)),
                "heavy_items": len(_items(heavy)),
                "sources": "events/replay/sample-stream.jsonl + bench.relay_stream (200 pods x 3 rounds)",
            },
            "query": query,
            "cost": spend,
            "host_reference_ms": reference,
            "load_average_at_start": load,
        },
    }


def main() -> None:
    from bench.processor import merge_results, print_goals

    figures = run()
    merge_results(figures)
    print_goals(figures, GOALS, 36)
    detail = figures["history_bench"]
    print(f"  items: {detail['items']}")
    print(f"  query: {detail['query']}")
    print(f"  cost parts (USD per million events): {detail['cost']['parts_usd']}")
    before = detail["cost"]["before"]
    print(f"  before ({before['design']}): {before['usd_per_million_events']} {before['parts_usd']}")
    print(f"  saved by each lever alone (USD per million events): {detail['cost']['saved_by_lever_usd']}")


if __name__ == "__main__":
    main()
