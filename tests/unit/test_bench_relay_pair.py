"""bench.relay_pair: two checkouts' relays timed alternately over the same stream, run as its
docstring says (`python -m bench.relay_pair OLD_CHECKOUT --rounds N --lines N`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # it finds its own paths
    return subprocess.run(
        [sys.executable, "-m", "bench.relay_pair", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_checkout_against_itself_gives_both_rates_and_the_change() -> None:
    done = run(str(ROOT), "--rounds", "2", "--lines", "300")
    assert done.returncode == 0, done.stderr
    old, new, change = done.stdout.splitlines()
    for line, name in ((old, "old"), (new, "new")):
        assert line.startswith(f"{name} {ROOT}: lines/s best ")
        rates = [float(x.replace(",", "")) for x in re.findall(r"(?:best|median|top5) ([\d,]+)", line)]
        assert len(rates) == 3
        assert all(r > 0 for r in rates)
    assert re.match(r"new vs old: best [+-]\d+\.\d% {2}median [+-]\d+\.\d% {2}top5 [+-]\d+\.\d%", change)
    assert "(rounds 2, load " in change


def test_something_that_is_not_a_checkout_is_refused_clearly(tmp_path: Path) -> None:
    done = run(str(tmp_path))
    assert done.returncode == 2
    assert "not a podwatch checkout" in done.stderr
