"""`python -m bench`: run the benchmarks and merge their figures into bench/results.json.
`python -m bench hooks` runs the hooks section alone; `python -m bench e2e [options]` the end-to-end
load alone (bench/e2e.py); `python -m bench history` the event history's section alone; `python -m
bench ui` the timeline page's (headless Chromium).

Run from the repository root; the shared package, the relay, the CLI (its loopback server) and the
root are put on the path here, so no PYTHONPATH is needed (the Makefile sets it anyway).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PATHS = (ROOT / "layers" / "podwatch", ROOT / "relay", ROOT / "cli", ROOT)
for path in _PATHS:
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def main(argv: list[str] | None = None) -> None:
    from bench import cost, delivery, e2e, history, hooks, host, processor, ui

    sections = (argv if argv is not None else sys.argv[1:]) or ["all"]
    if sections == ["hooks"]:  # one section alone (it records the host reference of its own run)
        hooks.main()
        return
    if sections == ["cost"]:  # `python -m bench cost`: the cost section alone
        cost.main()
        return
    if sections[0] == "e2e":  # one section alone: the load takes minutes
        e2e.main(sections[1:])
        return
    if sections == ["history"]:  # `python -m bench history`: the event history's section alone
        history.main()
        return
    if sections == ["ui"]:  # `python -m bench ui`: the timeline page's section alone
        ui.main()
        return

    host.main()  # host_reference_ms: the speed of this host today, to compare figures across runs
    # relay_events_per_s, relay_vs_official_watch_ratio, relay_rss_mb_*: first, while nothing the
    # others start (the local stack's servers) is still winding down, and in a process of its own
    # (what the others leave on the heap would lengthen its garbage collector's passes)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in _PATHS)}
    subprocess.run([sys.executable, "-m", "bench.relay"], check=True, cwd=ROOT, env=env)
    processor.main()  # the handler in a subprocess of its own, too
    delivery.main()  # local stack: restate_requests_per_1000_events, delivery_p99_ms
    hooks.main()  # hooks_us_per_event: match + render + dedup decision, AWS stubbed
    cost.main()  # local stack: cost_usd_per_million_events (counts of a realistic mix x bench/prices.json)
    e2e.main([])  # local stack: e2e_lines_per_s_local (20,000 generated lines)
    history.main()  # history_wcu_per_event, history_query_us_per_page, history_cost_usd_per_million_events
    ui.main()  # ui_bytes_gzip, ui_render_ms_5k (headless Chromium)


if __name__ == "__main__":
    main()
