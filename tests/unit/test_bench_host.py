"""bench.host: the fixed workload behind `host_reference_ms` does the same work every time."""

from __future__ import annotations

from bench import host


def test_the_reference_workload_is_fixed_and_timed() -> None:
    document = host._document()
    assert host._workload(document) == host._workload(host._document())  # same work, every run

    figure = host.host_reference(runs=2)["host_reference_ms"]
    assert isinstance(figure, float)
    assert 0 < figure < 10_000
