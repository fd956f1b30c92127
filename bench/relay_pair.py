"""`python -m bench.relay_pair OLD_CHECKOUT [--rounds N] [--lines N]`: this checkout's relay against
another checkout's (e.g. `git worktree add --detach ../old <commit>`), timed alternately run by run in
one process pinned to one core, over the same bench stream (`bench.relay_stream`).

What "no slower than before by more than X %" asks, on a host whose speed moves by a few per cent from
one minute to the next: both trees see the same minutes. Each run is a fresh relay as the bench builds
it (`bench.relay.bench_relay`), `gc.collect()`, then CPU time around `process_line` over every line and
`flush()`. Prints, per tree, lines/s best, median and the mean of the best five, then this tree's
change against the old one. Each tree's modules are loaded from its own `layers/podwatch`, `relay` and
root (the old tree needs `bench.relay.bench_relay`, there since the relay bench began).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("podwatch", "podwatch_relay", "bench")


def _paths(root: Path) -> list[str]:
    return [str(root / "layers" / "podwatch"), str(root / "relay"), str(root)]


def load_relay_factory(root: Path, other: Path) -> Callable[[], Any]:
    """`bench_relay` of the checkout at `root`, its modules loaded from there: the ones loaded
    before are dropped from `sys.modules` (what was built from them keeps working), and `other`'s
    paths leave `sys.path`."""
    for name in [n for n in sys.modules if n.split(".")[0] in _PACKAGES]:
        del sys.modules[name]
    drop = set(_paths(root) + _paths(other))
    kept = [p for p in sys.path if str(Path(p or ".").resolve()) not in drop]
    sys.path[:] = _paths(root) + kept
    from bench.relay import bench_relay  # the checkout's own

    factory: Callable[[], Any] = bench_relay
    return factory


def rate(factory: Callable[[], Any], lines: list[bytes]) -> float:
    """Lines per CPU second of one run through a fresh relay."""
    relay = factory()
    gc.collect()
    start = time.process_time()
    for line in lines:
        relay.process_line(line)
    relay.flush()
    return len(lines) / (time.process_time() - start)


def summary(rates: list[float]) -> dict[str, float]:
    best = sorted(rates, reverse=True)
    return {"best": best[0], "median": statistics.median(rates), "top5": statistics.mean(best[:5])}


def pair(old: Path, rounds: int, lines: int | None) -> dict[str, dict[str, float]]:
    """Rates of `old` and of this checkout, alternated run by run (the order flips every round)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    load_relay_factory(ROOT, old)
    from bench.relay_stream import build_stream

    stream = build_stream()[:lines]
    factories = {"old": load_relay_factory(old, ROOT), "new": load_relay_factory(ROOT, old)}
    rates: dict[str, list[float]] = {"old": [], "new": []}
    for i in range(rounds):
        for name in ("old", "new") if i % 2 == 0 else ("new", "old"):
            rates[name].append(rate(factories[name], stream))
    return {name: summary(values) for name, values in rates.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_pair", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the other checkout (a git worktree of an older commit)")
    parser.add_argument("--rounds", type=int, default=40, help="runs of each tree (default 40)")
    parser.add_argument("--lines", type=int, default=None, help="only the stream's first N lines")
    args = parser.parse_args(argv)
    old = args.old.resolve()
    if not (old / "relay" / "podwatch_relay" / "pipeline.py").is_file():
        parser.error(f"{args.old}: not a podwatch checkout (no relay/podwatch_relay/pipeline.py)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    result = pair(old, args.rounds, args.lines)
    for name, where in (("old", old), ("new", ROOT)):
        figures = "  ".join(f"{k} {v:,.0f}" for k, v in result[name].items())
        print(f"{name} {where}: lines/s {figures}")
    change = "  ".join(f"{k} {result['new'][k] / result['old'][k] - 1:+.1%}" for k in result["new"])
    print(f"new vs old: {change}  (rounds {args.rounds}, load {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
