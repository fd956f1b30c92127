"""`python -m bench`: run the benchmarks and merge their figures into bench/results.json.

Run from the repository root; the shared package, the relay and the root are put on the path here,
so no PYTHONPATH is needed (the Makefile sets it anyway).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "layers" / "podwatch", ROOT / "relay", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def main() -> None:
    from bench import delivery, processor, relay

    processor.main()
    delivery.main()  # local stack: restate_requests_per_1000_events, delivery_p99_ms
    relay.write(relay.run())  # relay_events_per_s, relay_vs_official_watch_ratio, relay_rss_mb_*


if __name__ == "__main__":
    main()
