"""How fast this host runs Python today: `host_reference_ms`, to compare figures across runs.

The machine is a VM on a shared host: the same code has measured at half the time on another day
(processor_us_per_event of commit 85f7c84: 125.0 on 2026-11-23, 59.5 to 62.1 on 2026-12-06). A figure
of `bench/results.json` means little without the speed of the host it was taken on, so every
`make bench` also times one fixed workload that never changes (JSON in and out, dict and string
work, a SHA-256: what the relay and the processor do most) and records its CPU time: figures taken
on two hosts compare after scaling by the ratio of their references.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

#: timed runs; the best is kept (other load only ever makes a run slower)
RUNS = 9


def _document() -> dict[str, Any]:
    return {
        "items": [
            {
                "name": f"container-{i}",
                "image": f"registry.example.com/team/app-{i}:1.{i}.0",
                "ready": i % 3 != 0,
                "restartCount": i,
                "state": {"running": {"startedAt": f"2026-11-20T09:{i % 60:02d}:00Z"}},
                "labels": {f"k{j}": f"v{i}-{j}" for j in range(8)},
            }
            for i in range(200)
        ]
    }


def _workload(document: dict[str, Any]) -> int:
    total = 0
    for _ in range(20):
        text = json.dumps(document, separators=(",", ":"))
        items = json.loads(text)["items"]
        for item in items:
            if item["ready"]:
                total += item["restartCount"]
            started = item["state"].get("running", {}).get("startedAt", "")
            total += len(f"{item['name']}/{started}") + len(sorted(item["labels"]))
        total += len(hashlib.sha256(text.encode()).hexdigest())
    return total


def host_reference(runs: int = RUNS) -> dict[str, Any]:
    """{"host_reference_ms": best CPU ms of the fixed workload}."""
    document = _document()
    _workload(document)  # warm-up
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        _workload(document)
        best = min(best, time.process_time() - start)
    return {"host_reference_ms": round(best * 1000, 2)}


def main() -> None:
    from bench.processor import merge_results

    figures = host_reference()
    merge_results(figures)
    print(f"host_reference_ms                {figures['host_reference_ms']:>9}   (lower: a faster host)")


if __name__ == "__main__":
    main()
