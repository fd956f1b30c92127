"""A backlog held past the cooldown changes nothing about what is notified: dedup windows run on when
the relay observed the trouble, not on when the processor got to it (moto server, the real Restate
server and reference manager, the relay's own code replaying a 27-replica crash loop)."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local.processes import ROOT
from local.stack import LocalStack

pytestmark = pytest.mark.e2e

REPLICAS = 27
BACKLOG_S = 20 * 60  # longer than the default 900 s cooldown


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: this module runs the processor's clock ahead for a while."""
    with LocalStack(
        run_dir=tmp_path_factory.mktemp("backlog"), max_batching_window_seconds=0.5, retry_delay_seconds=1
    ) as stack:
        yield stack


def make_load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_load", ROOT / "events/replay/make_load.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@contextmanager
def processor_clock_ahead(stack: LocalStack, seconds: float) -> Iterator[None]:
    """The processor's clock runs `seconds` ahead: it gets to the queue that much later."""

    def shift(module: ModuleType) -> Callable[[], None]:
        real = module.datetime

        class Later(real):  # type: ignore[misc,valid-type]
            @classmethod
            def now(cls, tz: Any = None) -> datetime:
                return real.now(tz) + timedelta(seconds=seconds)

        module.datetime = Later
        return lambda: setattr(module, "datetime", real)

    restore = stack.in_function("ProcessorFunction", shift)
    try:
        yield
    finally:
        stack.in_function("ProcessorFunction", lambda _m: restore())


def test_a_backlog_longer_than_the_cooldown_notifies_each_crash_looping_replica_once(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    cluster = f"e2e-backlog-{uuid.uuid4().hex[:6]}"
    load = make_load()
    scenario = load.Scenario(pods=REPLICAS, lines=REPLICAS * 7, crash_replicas=REPLICAS, other_share=0)
    lines, trouble = load.build(scenario)
    assert len(trouble) == REPLICAS
    # the first crash of every replica (restartCount 1), then the whole recording
    first_crash = max(i for i, line in enumerate(lines) if '"restartCount":1' in line and "CrashLoop" in line)
    prefix, everything = tmp_path / "first.jsonl", tmp_path / "all.jsonl"
    prefix.write_text("\n".join(lines[: first_crash + 1]) + "\n")
    everything.write_text("\n".join(lines) + "\n")

    # Given each replica's first crash processed at once: one incident (and notification) each
    local_stack.replay(prefix, cluster_id=cluster, recorded_time=True)
    local_stack.pump_until_idle(timeout=120)
    first = {n["notification_id"] for n in local_stack.delivered(cluster)}
    assert len(first) == REPLICAS

    # When the rest of the recording (restarts 2..4, observed within a minute of the first) reaches
    # the processor only after a backlog longer than the cooldown
    with processor_clock_ahead(local_stack, BACKLOG_S):
        local_stack.replay(everything, cluster_id=cluster, enroll=False, recorded_time=True)
        local_stack.pump_until_idle(timeout=120)

    # Then nothing is notified again: the restarts fold into the incidents they belong to
    delivered = local_stack.delivered(cluster)
    assert {n["notification_id"] for n in delivered} == first
    assert sorted(f"{n['namespace']}/{n['pod']}" for n in delivered) == sorted(trouble)
    folded = [
        a
        for a in local_stack.audit_records()
        if (a.get("dedup_key") or "").startswith(f"{cluster}/") and a["action"] == "deduplicated"
    ]
    assert len(folded) >= REPLICAS * 3  # restarts 2, 3 and 4 of every replica
