"""End-to-end load through the local stack, as `make run` drives it:

e2e_lines_per_s_local   a generated scenario (events/replay/make_load.py: 20,000 lines, 2,000
                        pods, a 200-replica crash loop, OOMKilled, image-pull, evicted, healthy
                        churn) replayed through the relay's own code with the recording's time
                        while the event source mappings drain the queues (moto server, the
                        processor and deliver handlers, the real Restate server and reference
                        manager), until every queue is idle: lines / wall seconds.
e2e_seconds_local       that wall time (replay start → idle)
e2e_bench               what reached the manager: troubled pods accounted for, healthy pods
                        notified, duplicate notifications, DLQ messages (all must be 0 but the
                        first, which must equal the troubled pods)

python -m bench e2e [--lines 20000 --pods 2000 --crash-replicas 200]   # or via `python -m bench`
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = "load"


def make_load() -> ModuleType:
    """events/replay/make_load.py as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("make_load", ROOT / "events" / "replay" / "make_load.py")
    if spec is None or spec.loader is None:
        raise ImportError("events/replay/make_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def account(delivered: list[Mapping[str, Any]], trouble: Mapping[str, str], dlq: int) -> dict[str, Any]:
    """What reached the manager against what should: `trouble` is `namespace/pod` → event type."""
    ids = Counter(str(n["notification_id"]) for n in delivered)
    by_pod_type = Counter((f"{n['namespace']}/{n['pod']}", str(n["event_type"])) for n in delivered)
    notified = {pod for pod, _ in by_pod_type}
    return {
        "troubled_pods": len(trouble),
        "troubled_pods_notified": sum(1 for pod, kind in trouble.items() if by_pod_type[(pod, kind)]),
        "healthy_pods_notified": len(notified - set(trouble)),
        "duplicate_notification_ids": sum(n - 1 for n in ids.values()),
        "repeated_pod_and_type": sum(n - 1 for n in by_pod_type.values()),
        "notifications": len(delivered),
        "dlq_messages": dlq,
    }


def replay_and_drain(stack: Any, path: Path, *, cluster_id: str, timeout: float) -> dict[str, Any]:
    """`make run`'s way: replay while the mappings drain, then drain to idle; timings and counts."""
    started = time.monotonic()
    with stack.pumping():
        result = stack.replay(path, cluster_id=cluster_id, recorded_time=True)
    replayed = time.monotonic() - started
    stack.pump_until_idle(timeout=timeout)
    seconds = time.monotonic() - started
    lines = int(result.stats.input_events)
    return {
        "lines": lines,
        "forwarded": int(result.stats.forwarded),
        "replay_seconds": round(replayed, 1),
        "seconds": round(seconds, 1),
        "lines_per_s": round(lines / seconds, 1),
    }


def run(
    *, lines: int = 20_000, pods: int = 2000, crash_replicas: int = 200, timeout: float = 900.0
) -> dict[str, Any]:
    from local.stack import LocalStack

    load = make_load()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    path = run_dir / "load.jsonl"
    trouble = load.write(path, load.Scenario(pods=pods, lines=lines, crash_replicas=crash_replicas))
    with (
        open(run_dir / "functions.log", "w", encoding="utf-8") as output,
        LocalStack(run_dir=run_dir, cluster_id=CLUSTER, function_output=output) as stack,
    ):
        timing = replay_and_drain(stack, path, cluster_id=CLUSTER, timeout=timeout)
        outcome = account(stack.delivered(CLUSTER), trouble, len(stack.dlq_messages()))
    return {
        "e2e_lines_per_s_local": timing["lines_per_s"],
        "e2e_seconds_local": timing["seconds"],
        "e2e_bench": {
            **timing,
            **outcome,
            "pods": pods,
            "crash_replicas": crash_replicas,
            "note": "make run's path: moto server (SQS patched, local/moto_server.py), the handlers behind "
            "the template's mappings drained while replaying, real Restate + reference manager; "
            "template batching windows; host shared and loaded",
        },
    }


def main(argv: list[str] | None = None) -> None:
    from bench.processor import merge_results

    parser = argparse.ArgumentParser(prog="python -m bench e2e")
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--crash-replicas", type=int, default=200)
    args = parser.parse_args(argv)
    figures = run(lines=args.lines, pods=args.pods, crash_replicas=args.crash_replicas)
    merge_results(figures)
    detail = figures["e2e_bench"]
    print(f"{'e2e_lines_per_s_local':32} {figures['e2e_lines_per_s_local']:>9}   ({detail['seconds']} s)")
    print(f"  {json.dumps(detail)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
