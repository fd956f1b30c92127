"""Delivery benchmark, through the local stack (moto SQS, the real Restate server and reference
manager, the real handlers behind the template's event source mappings):

    restate_requests_per_1000_events   1000 notifications put on the deliveries queue, delivered by
                                       the deliver function (batch size and chunk size 25, the
                                       defaults): Restate ingress requests made. Goal ≤
                                       ceil(1000 / batch size) + retries (non-2xx attempts).
    delivery_p99_ms                    relay observes → manager records: crash-looping pods fed one
                                       by one through the relay's own code (`observed_at` stamped by
                                       the relay) while the pollers run; the manager's receipt time
                                       (Restate `ctx.time()`) minus `observed_at`, p99. Batch flush
                                       excluded: the batching windows are capped at 0, so a poller
                                       takes what is there (the deployed 5 s window adds up to 5 s).

    python -m bench.delivery        # or via `python -m bench`
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
EVENTS = 1000
LATENCY_EVENTS = 150
LATENCY_INTERVAL_S = 0.1
SAMPLE_LINE = 19  # events/replay/sample-stream.jsonl: payments-api in CrashLoopBackOff


def _notifications(cluster_id: str, n: int) -> list[str]:
    from datetime import UTC

    from podwatch import ids
    from podwatch.models import EventType, Notification

    bodies = []
    for i in range(n):
        event_id = ids.pod_event_id(cluster_id, f"uid-{i}", str(1000 + i), "MODIFIED")
        bodies.append(
            Notification(
                notification_id=ids.notification_id(event_id, EventType.CRASH_LOOP, "app"),
                event_id=event_id,
                cluster_id=cluster_id,
                event_type=EventType.CRASH_LOOP,
                reason="CrashLoopBackOff",
                source="pod",
                dedup_key=f"{cluster_id}/bench/pod-{i}/app/crash-loop",
                namespace="bench",
                pod=f"pod-{i}",
                container="app",
                observed_at=datetime.now(UTC),
            ).model_dump_json()
        )
    return bodies


def measure_requests(stack: Any) -> dict[str, Any]:
    cluster = f"bench-req-{uuid.uuid4().hex[:6]}"
    url = stack.queue_url("DeliveriesQueue")
    bodies = _notifications(cluster, EVENTS)
    for start in range(0, len(bodies), 10):
        stack.sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])],
        )
    before = stack.restate_stats()
    stack.pump_until_idle(timeout=600)
    after = stack.restate_stats()
    by_status = {
        k: v - before["by_status"].get(k, 0)
        for k, v in after["by_status"].items()
        if v - before["by_status"].get(k, 0)
    }
    requests = after["requests"] - before["requests"]
    retries = sum(v for k, v in by_status.items() if not k.startswith("2"))
    batch_size = stack.pollers["DeliverFunction"][0].batch_size
    delivered = stack.manager_stats(cluster)["events_new"]
    return {
        "restate_requests_per_1000_events": round(requests * 1000 / EVENTS, 1),
        "requests_by_status": by_status,
        "goal": math.ceil(EVENTS / batch_size) + retries,
        "batch_size": batch_size,
        "delivered": delivered,
    }


def _pod_lines(n: int) -> list[str]:
    raw = (ROOT / "events/replay/sample-stream.jsonl").read_text().splitlines()[SAMPLE_LINE - 1]
    template = json.loads(raw)
    lines = []
    for i in range(n):
        event = json.loads(json.dumps(template))
        meta = event["object"]["metadata"]
        meta["name"] = f"bench-{i}-{meta['name']}"
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(500000 + i)
        lines.append(json.dumps(event))
    return lines


def measure_latency(stack: Any) -> dict[str, Any]:
    cluster = f"bench-lat-{uuid.uuid4().hex[:6]}"
    lines = _pod_lines(LATENCY_EVENTS)
    done = threading.Event()
    pumped: list[Any] = []

    def pump() -> None:
        # keeps running while events keep coming (idle only once the feed has stopped for 3 s)
        pumped.append(stack.pump_until_idle(timeout=600, until_idle=3.0))
        done.set()

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, line in enumerate(lines):
            path = Path(tmp) / f"{i}.jsonl"
            path.write_text(line + "\n")
            paths.append(path)
        thread = threading.Thread(target=pump, name="bench-pump", daemon=True)
        first = stack.replay(paths[0], cluster_id=cluster, enroll=False)
        thread.start()
        results = [first]
        for path in paths[1:]:
            time.sleep(LATENCY_INTERVAL_S)
            results.append(stack.replay(path, cluster_id=cluster, enroll=False))
        done.wait(timeout=600)
        thread.join(timeout=30)
    delivered = stack.delivered(cluster)
    received_at = stack.manager_stats(cluster)["received_at"]
    latencies = sorted(
        (received_at[n["notification_id"]] - datetime.fromisoformat(n["observed_at"]).timestamp()) * 1000
        for n in delivered
        if n["notification_id"] in received_at
    )
    if not latencies:
        raise RuntimeError(f"nothing delivered for {cluster}: {results[0].stats}")
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
    return {
        "delivery_p99_ms": round(p99, 1),
        "delivery_p50_ms": round(statistics.median(latencies), 1),
        "delivered": len(latencies),
        "fed": len(lines),
    }


def run() -> dict[str, Any]:
    """Both figures (plus details), through one local stack."""
    from local.stack import LocalStack

    run_dir = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    with (
        open(run_dir / "functions.log", "w", encoding="utf-8") as output,
        LocalStack(run_dir=run_dir, max_batching_window_seconds=0.0, function_output=output) as stack,
    ):
        requests = measure_requests(stack)
        latency = measure_latency(stack)
    return {
        "restate_requests_per_1000_events": requests["restate_requests_per_1000_events"],
        "delivery_p99_ms": latency["delivery_p99_ms"],
        "delivery_bench": {
            "requests": requests,
            "latency": latency,
            "note": "local stack: moto SQS + real Restate + reference manager; batching windows capped at 0",
        },
    }


def main() -> None:
    from bench.processor import merge_results

    figures = run()
    merge_results(figures)
    detail = figures["delivery_bench"]
    goal = detail["requests"]["goal"]
    verdict = "ok" if figures["restate_requests_per_1000_events"] <= goal else "MISSES GOAL"
    requests, p99 = figures["restate_requests_per_1000_events"], figures["delivery_p99_ms"]
    print(f"{'restate_requests_per_1000_events':32} {requests:>9}   goal <= {goal:<6} {verdict}")
    print(f"{'delivery_p99_ms':32} {p99:>9}   (p50 {detail['latency']['delivery_p50_ms']} ms)")
    print(f"  {json.dumps(detail)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
