"""`python -m bench hooks` measures what it says: 50 hooks x 50 configurations, the engine's steps."""

from __future__ import annotations

import pytest

from bench import hooks


def test_the_hooks_bench_loads_2500_configurations_and_claims_every_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hooks, "EVENTS", 40)
    monkeypatch.setattr(hooks, "ROUNDS", 1)
    figures = hooks.measure()
    detail = figures["hooks_bench"]
    assert detail["configurations"] == 2500
    assert detail["matches_per_event"] > 1  # its own namespace's hook and the cluster-wide one
    assert figures["hooks_us_per_event"] > 0
