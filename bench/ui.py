"""Timeline page benchmark: what the page weighs and how fast a big namespace appears.

ui_bytes_gzip      HTML + JS + CSS of the page (functions/history/ui), each gzipped as the history
                   function serves it (Powertools' compress: gzip level 9), summed. Goal <= 150 KB.
ui_render_ms_5k    time from navigation to the timeline's first render (the page's
                   `body[data-rendered]`, performance.now()) of a namespace with 5,000 pod
                   transitions (100 pods, 10 workloads) and 1,000 Kubernetes Events, in headless
                   Chromium (local/browser.py). The API's answers are real records (`item_of` ->
                   `record_of`), 1,000 a page with cursors, served from memory on loopback: this is
                   the browser's part (6 pages fetched, parsed, drawn); the API's own time per page
                   is `history_query_us_per_page`. Median of 5 loads. Goal <= 500 ms.

python -m bench ui          # this section alone (merged into bench/results.json)
"""

from __future__ import annotations

import gzip
import json
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.browser import launch_args, missing
from podwatch_cli.loopback import LoopbackHandler, LoopbackServer

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "functions" / "history" / "ui"
GOALS = {"ui_bytes_gzip": 150 * 1024, "ui_render_ms_5k": 500}
JSON = {"Content-Type": "application/json"}
PODS, TRANSITIONS_PER_POD, EVENTS, PAGE, LOADS = 100, 50, 1000, 1000, 5
START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def page_bytes_gzip() -> dict[str, int]:
    from podwatch.webui import Assets

    assets = Assets(UI)
    return {name: len(gzip.compress(assets.get(name).body, 9)) for name in assets.names()}  # type: ignore[union-attr]


def _records() -> list[dict[str, Any]]:
    """5,000 pod transitions (a crash loop in every tenth pod, some deletions) and 1,000 BackOff
    Events over 20 hours, as the history API returns them, newest first."""
    from podwatch.history import Classification, item_of, record_of
    from podwatch.models import (
        ContainerStatus,
        InvolvedObject,
        KubeEvent,
        KubeEventEnvelope,
        OwnerReference,
        PodEnvelope,
        PodEvent,
    )

    out = []
    step = timedelta(hours=20) / (PODS * TRANSITIONS_PER_POD)
    for i in range(PODS * TRANSITIONS_PER_POD):
        pod, n = i % PODS, i // PODS
        workload, template = f"svc-{pod % 10}", f"{pod % 10:x}5c8d7f9b4"
        troubled = pod % 10 == 0 and n % 2 == 1
        payload = PodEvent(
            namespace="bench",
            name=f"svc-{pod % 10}-{template}-{pod:05d}",
            uid=f"uid-{pod}",
            phase="Running",
            restart_count=n,
            labels={"app": workload, "pod-template-hash": template},
            owner_references=[
                OwnerReference(kind="ReplicaSet", name=f"{workload}-{template}", controller=True)
            ],
            node="ip-10-0-1-1.eu-west-1.compute.internal",
            containers=[
                ContainerStatus(
                    name="app",
                    state="waiting" if troubled else "running",
                    reason="CrashLoopBackOff" if troubled else None,
                    restart_count=n,
                )
            ],
            watch_type="DELETED" if n == TRANSITIONS_PER_POD - 1 and pod % 7 == 0 else "MODIFIED",
            resource_version=str(1000 + i),
            observed_at=START + i * step,
        )
        classes = [
            Classification(
                "crash-loop",
                "forwarded" if n == 1 else "deduplicated",
                "opened" if n == 1 else "cooldown",
                f"bench/bench/{payload.name}/app/crash-loop",
            )
        ]
        out.append(
            item_of(
                PodEnvelope(event_id=f"bench-pod-{i:08d}", cluster_id="bench", payload=payload),
                classes if troubled else [],
            )
        )
    for i in range(EVENTS):
        pod = (i % 10) * 10  # the crash-looping pods (every tenth)
        name = f"svc-{pod % 10}-{pod % 10:x}5c8d7f9b4-{pod:05d}"
        at = START + i * timedelta(hours=20) / EVENTS
        event = KubeEvent(
            namespace="bench",
            name=f"{name}.{i:x}",
            uid=f"ev-{i}",
            reason="BackOff",
            message="Back-off restarting failed container app",
            type="Warning",
            count=i + 1,
            involved_object=InvolvedObject(kind="Pod", name=name, namespace="bench"),
            last_timestamp=at,
            resource_version=str(90000 + i),
            observed_at=at,
        )
        out.append(
            item_of(KubeEventEnvelope(event_id=f"bench-event-{i:08d}", cluster_id="bench", payload=event))
        )
    out.sort(key=lambda item: str(item["sk"]), reverse=True)
    return [record_of(item) for item in out]


def _pages(records: list[dict[str, Any]]) -> dict[str, bytes]:
    """The list API's answers by cursor ("" = the first page)."""
    pages = {}
    for n in range(0, len(records), PAGE):
        chunk = records[n : n + PAGE]
        more = n + PAGE < len(records)
        body = {
            "events": chunk,
            "count": len(chunk),
            "total": len(records),
            "hasMore": more,
            "nextCursor": f"p{n + PAGE}" if more else None,
        }
        pages["" if n == 0 else f"p{n}"] = json.dumps(body, separators=(",", ":")).encode()
    return pages


def _server(pages: dict[str, bytes], now: str) -> LoopbackServer:
    from podwatch.webui import Assets

    assets = Assets(UI)

    class Handler(LoopbackHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/api/v1/health":
                self.send(200, JSON, json.dumps({"status": "ok", "now": now}).encode())
            elif parts.path == "/api/v1/events":
                self.send(200, JSON, pages[query.get("cursor", "")])
            elif (asset := assets.get(parts.path.rpartition("/")[2] or "index.html")) is None:
                self.send(404, {"Content-Type": "text/plain"}, b"no such file")
            else:
                gzipped = {"Content-Type": asset.content_type, "Content-Encoding": "gzip"}
                self.send(200, gzipped, gzip.compress(asset.body, 9))

    return LoopbackServer(Handler, name="bench-ui")


def render_ms(records: list[dict[str, Any]]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    if reason := missing():
        raise SystemExit(reason)
    now = datetime.fromisoformat(records[0]["timestamp"].replace("Z", "+00:00")) + timedelta(minutes=1)
    url_path = "/#ns=bench&w=24h"
    times, shown = [], {}
    with _server(_pages(records), now.strftime("%Y-%m-%dT%H:%M:%S.000Z")) as server, sync_playwright() as p:
        browser = p.chromium.launch(**launch_args())
        for _ in range(LOADS + 1):  # the first load warms the browser's caches of code: not counted
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url + url_path)
            page.wait_for_selector("body[data-rendered]", timeout=30_000)
            times.append(float(page.evaluate("document.body.dataset.rendered")))
            shown = {
                "mark_paths": page.locator("path.mark").count(),
                "tick_paths": page.locator("path.tick").count(),
                "rows": page.locator(".row").count(),
                "status": page.inner_text("#status"),
            }
            page.close()
        browser.close()
    counted = times[1:]
    return {
        "median_ms": round(statistics.median(counted), 1),
        "loads_ms": [round(t, 1) for t in counted],
        "first_load_ms": round(times[0], 1),
        **shown,
    }


def run() -> dict[str, Any]:
    sizes = page_bytes_gzip()
    records = _records()
    rendered = render_ms(records)
    return {
        "ui_bytes_gzip": sum(sizes.values()),
        "ui_render_ms_5k": rendered["median_ms"],
        "ui_bench": {"bytes_gzip_by_file": sizes, "records": len(records), "render": rendered},
    }


def main() -> None:
    from bench.processor import merge_results, print_goals

    figures = run()
    merge_results(figures)
    print_goals(figures, GOALS, 22)
    print(f"  {figures['ui_bench']}")


if __name__ == "__main__":
    main()
