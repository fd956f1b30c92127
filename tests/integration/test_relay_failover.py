"""Issue 20 "Must show": a failover that loses nothing when the leader's container is restarted in
its own pod (same pod name, same spool volume: what kubelet does after a crash or an OOM kill).

Real `python -m podwatch_relay watch` processes (tests/integration/relay_processes.py) against the
fake API server and a moto queue. While the leader is down, a driver deletes pods, crash-loops
others and lets crash loops that were already reported recover. Every one of those changes must
reach the queue, and the pods left alone must not be re-sent (no full re-forward):

* two replicas, the leader SIGKILLed and restarted in its pod after 1 s and after 10 s (leases
  longer than the back-off plus a start, like the chart's 15 s): the warm standby takes over with
  its hold window, the restarted container stands by;
* one replica, SIGKILLed and restarted after 1 s and after 10 s: the restarted container diffs its
  first list against the checkpoint on its volume (changes, and a DELETED for each pod gone);
* two replicas, SIGTERM to the leader and an immediate restart of its container, ten times over
  (the chart's 2 s retry period: the restarted container starts before the standby's next try).
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from podwatch.models import PodEnvelope
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.pods import container_status, pod
from tests.integration.relay_harness import wait_for
from tests.integration.relay_processes import Queue, RelayProcess, held_by, holder, lease

pytestmark = pytest.mark.integration

PODS = 60
#: (lease duration, renew deadline, retry period) in seconds; the chart's are (15, 10, 2). A lease
#: outlasts the restart back-off plus the process's start (~2 s here), as the chart's does.
SHORT_LEASE = (3, 2.0, 0.5)
MEDIUM_LEASE = (8, 5.0, 0.5)
LONG_LEASE = (14, 9.0, 1.0)
#: the chart's retry period: a container restarted after SIGTERM starts within one
SIGTERM_LEASE = (8, 5.0, 2.0)
CHECKPOINT_INTERVAL = 0.5  # relay_processes.RelayProcess's
#: changes per second while the leader is down
RATE = 4.0


def _name(i: int) -> str:
    return f"app-{i:02d}"


def _crash(restarts: int) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["status"]["containerStatuses"] = [
            container_status(restarts=restarts, waiting="CrashLoopBackOff", last_terminated=("Error", 1))
        ]

    return change


def _recover(restarts: int) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["status"]["containerStatuses"] = [
            container_status(restarts=restarts, last_terminated=("Error", 1))
        ]

    return change


@dataclass
class Driver:
    """Changes pods on the fake API server and remembers what it did, to check the queue against."""

    fake: FakeKubeApi
    fresh: Iterator[int] = field(default_factory=lambda: iter(range(10, PODS)))
    crashing: list[str] = field(default_factory=list)
    deleted: dict[str, str] = field(default_factory=dict)  # name -> uid
    crashed: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)

    def crash_loops_reported_before(self, count: int = 6) -> None:
        """Pods app-00.. crash-looping (restart 1) before the fault, to recover during it."""
        for i in range(count):
            self.fake.update("Pod", "shop", _name(i), _crash(1))
            self.crashing.append(_name(i))

    def step(self, n: int) -> None:
        """One change: a delete, a new crash loop, or (when one is left) a recovery, in turn."""
        kind = n % 3
        if kind == 2 and self.crashing:
            name = self.crashing.pop(0)
            self.fake.update("Pod", "shop", name, _recover(1))
            self.recovered.append(name)
            return
        name = _name(next(self.fresh))
        if kind == 0:
            self.deleted[name] = self.fake.delete("Pod", "shop", name)["metadata"]["uid"]
        else:
            self.fake.update("Pod", "shop", name, _crash(2))
            self.crashed.append(name)

    def churn(self, seconds: float, queue: Queue, start: int = 0) -> int:
        """Change pods at `RATE` for `seconds`; returns the next step number."""
        n = start
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.step(n)
            n += 1
            queue.poll()  # keep moto's queue short (it slows as it fills)
            time.sleep(1 / RATE)
        return n

    @property
    def touched(self) -> set[str]:
        return set(self.deleted) | set(self.crashed) | set(self.recovered)

    def missing(self, envelopes: list[PodEnvelope]) -> list[str]:
        """The changes of this driver that none of `envelopes` reports."""
        out = []
        for name, uid in self.deleted.items():
            if not any(e.payload.uid == uid and e.payload.watch_type == "DELETED" for e in envelopes):
                out.append(f"DELETED {name}")
        for name in self.crashed:
            if not any(_crash_loop(e, name, 2) for e in envelopes):
                out.append(f"CrashLoopBackOff {name}")
        for name in self.recovered:
            if not any(_running(e, name) for e in envelopes):
                out.append(f"recovered {name}")
        return out


def _crash_loop(e: PodEnvelope, name: str, restarts: int) -> bool:
    return e.payload.name == name and any(
        c.state == "waiting" and c.reason == "CrashLoopBackOff" and c.restart_count == restarts
        for c in e.payload.containers
    )


def _running(e: PodEnvelope, name: str) -> bool:
    return (
        e.payload.name == name
        and e.payload.watch_type != "DELETED"
        and all(c.state == "running" and c.ready for c in e.payload.containers)
    )


def _pods_since(queue: Queue, mark: int) -> list[PodEnvelope]:
    return [e for e in queue.poll()[mark:] if isinstance(e, PodEnvelope)]


@pytest.fixture
def cluster(fake: FakeKubeApi) -> Driver:
    for i in range(PODS):
        fake.put(pod("shop", _name(i)))
    return Driver(fake)


@pytest.fixture
def start(
    fake: FakeKubeApi,
    moto_server: str,
    pod_events: Queue,
    tmp_path: Path,
) -> Iterator[Any]:
    """Starts relay containers (each pod gets its own spool volume); kills what is left at the end."""
    started: list[RelayProcess] = []

    def run(identity: str, *, lease: tuple[int, float, float] = SHORT_LEASE) -> RelayProcess:
        process = RelayProcess(
            identity,
            fake=fake,
            endpoint=moto_server,
            queue_url=pod_events.url,
            tmp=tmp_path,
            lease=lease,
            volume=tmp_path / identity / "spool",
        )
        started.append(process)
        return process

    def restart(old: RelayProcess, *, lease: tuple[int, float, float] = SHORT_LEASE) -> RelayProcess:
        process = old.restarted(
            fake=fake, endpoint=moto_server, queue_url=pod_events.url, tmp=tmp_path, lease=lease
        )
        started.append(process)
        return process

    run.restart = restart  # type: ignore[attr-defined]
    yield run
    for process in started:
        process.stop()


def _reported(queue: Queue, cluster: Driver) -> None:
    """Every pod, then a few crash loops (to recover during the fault), reported."""
    wait_for(
        lambda: len({e.payload.name for e in _pods_since(queue, 0)}) == PODS, timeout=20, what="all pods"
    )
    cluster.crash_loops_reported_before()
    wait_for(
        lambda: all(any(_crash_loop(e, n, 1) for e in _pods_since(queue, 0)) for n in cluster.crashing),
        timeout=10,
        what="the crash loops before the fault",
    )


def _settle(replica: RelayProcess, queue: Queue, cluster: Driver, lease: tuple[int, float, float]) -> None:
    """`_reported`, and a standby holding nothing (past its window: it would re-send it all)."""
    _reported(queue, cluster)
    _, deadline, retry = lease
    wait_for(
        lambda: replica.metric("podwatch_relay_standby_held") == 0,
        timeout=deadline + 4 * retry + 5,
        what="the standby past its hold window",
    )


@pytest.mark.parametrize(("gap", "timing"), [(1, MEDIUM_LEASE), (10, LONG_LEASE)], ids=["1s", "10s"])
def test_leader_killed_and_restarted_in_its_pod_the_standby_takes_over_and_nothing_is_lost(
    fake: FakeKubeApi,
    pod_events: Queue,
    cluster: Driver,
    start: Any,
    gap: float,
    timing: tuple[int, float, float],
) -> None:
    queue = pod_events
    # Given two replicas, a leading and b a warm standby past its hold window
    a = start("relay-a", lease=timing)
    wait_for(lambda: a.holds(fake), timeout=20, what="a leads")
    b = start("relay-b", lease=timing)
    wait_for(b.ready, timeout=20, what="b ready")
    _settle(b, queue, cluster, timing)
    mark = len(queue.poll())

    # When a's container is SIGKILLed and restarted in its pod after `gap` s, while pods change
    a.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    a.process.wait(timeout=5)
    n = cluster.churn(gap, queue)
    a2 = start.restart(a, lease=timing)
    cluster.churn(2.0, queue, n)

    # Then every delete, crash loop and recovery made meanwhile reaches the queue ...
    wait_for(
        lambda: not cluster.missing(_pods_since(queue, mark)), timeout=timing[0] + 15, what="every change"
    )
    print(
        f"\nSIGKILL + restart after {gap} s: all reported {time.monotonic() - killed_at:.1f} s after the kill"
    )
    time.sleep(1.0)
    after = _pods_since(queue, mark)
    assert not cluster.missing(after)
    # ... sent by b, which took over (the restarted container never renews its predecessor's lease)
    assert b.holds(fake)
    wait_for(a2.ready, timeout=20, what="the restarted container ready")
    assert not a2.holds(fake)
    assert a2.metric("podwatch_relay_is_leader") == 0
    # with no full re-forward: the pods left alone are not sent again
    assert {e.payload.name for e in after} <= cluster.touched
    assert b.metric("podwatch_relay_lease_holder_changes_total") >= 1
    assert b.metric('podwatch_relay_leader_transitions_total{event="acquired"}') == 1
    assert lease(fake)["spec"]["leaseTransitions"] == 1  # type: ignore[index]


@pytest.mark.parametrize("gap", [1, 10], ids=["1s", "10s"])
def test_a_lone_relay_restarted_in_its_pod_reports_what_happened_while_it_was_down(
    fake: FakeKubeApi,
    pod_events: Queue,
    cluster: Driver,
    start: Any,
    gap: float,
) -> None:
    queue = pod_events
    # Given one replica that forwarded every pod and the crash loops, and checkpointed them
    a = start("relay-a")
    wait_for(lambda: a.holds(fake), timeout=20, what="a leads")
    _reported(queue, cluster)
    time.sleep(3 * CHECKPOINT_INTERVAL)  # a checkpoint written since (checked below: restored_pods)
    mark = len(queue.poll())

    # When it is SIGKILLed and restarted in its pod after `gap` s, while pods change
    a.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    a.process.wait(timeout=5)
    n = cluster.churn(gap, queue)
    a2 = start.restart(a)
    cluster.churn(1.0, queue, n)

    # Then, once its predecessor's lease ran out, it leads and reports every change made meanwhile
    wait_for(lambda: a2.holds(fake), timeout=20, what="the restarted container leads")
    print(f"\nlone relay, SIGKILL + restart after {gap} s: leads {time.monotonic() - killed_at:.1f} s after")
    wait_for(lambda: not cluster.missing(_pods_since(queue, mark)), timeout=15, what="every change")
    time.sleep(1.0)
    after = _pods_since(queue, mark)
    assert not cluster.missing(after)
    # the deletes as DELETED found against the checkpoint, the rest as changes of known pods
    assert all(e.payload.watch_type == "DELETED" for e in after if e.payload.name in cluster.deleted)
    assert not any(e.payload.initial_sync for e in after if e.payload.name in cluster.recovered)
    # and no full re-forward: the pods left alone are not sent again
    assert {e.payload.name for e in after} <= cluster.touched
    assert a2.metric("podwatch_relay_checkpoint_restored_pods") == PODS
    assert a2.metric('podwatch_relay_initial_sync_forwarded_total{scope="pods@*"}') > 0
    assert any(
        e.get("message") == "checkpoint restored: the first list reports what changed and vanished since"
        for e in a2.logs()
    )


def test_sigterm_and_an_immediate_restart_in_the_same_pod_ten_times_loses_nothing(
    fake: FakeKubeApi,
    pod_events: Queue,
    cluster: Driver,
    start: Any,
) -> None:
    queue = pod_events
    # Given two replicas, a leading and b a warm standby past its hold window
    a = start("relay-a", lease=SIGTERM_LEASE)
    wait_for(lambda: a.holds(fake), timeout=20, what="a leads")
    replicas = {"relay-a": a, "relay-b": start("relay-b", lease=SIGTERM_LEASE)}
    wait_for(replicas["relay-b"].ready, timeout=20, what="b ready")
    _settle(replicas["relay-b"], queue, cluster, SIGTERM_LEASE)
    mark = len(queue.poll())
    steps = itertools.count()

    gaps = []
    for _ in range(10):
        # When the leader gets SIGTERM, pods change at once, and its container restarts right away
        name, leader = next((k, r) for k, r in replicas.items() if held_by(fake, r))
        old = holder(fake)
        leader.process.send_signal(signal.SIGTERM)
        signalled_at = time.monotonic()
        cluster.step(next(steps))
        cluster.step(next(steps))
        assert leader.process.wait(timeout=15) == 0, leader.log.read_text()[-2000:]
        replicas[name] = start.restart(leader, lease=SIGTERM_LEASE)
        cluster.step(next(steps))
        wait_for(lambda: holder(fake) not in {old, "", None}, timeout=10, what="a leader again")  # noqa: B023
        gaps.append(time.monotonic() - signalled_at)
        wait_for(replicas[name].ready, timeout=20, what="the restarted container ready")
    print(f"\nSIGTERM -> new holder: {min(gaps):.1f}..{max(gaps):.1f} s (median {sorted(gaps)[5]:.1f} s)")

    # Then every change made around the ten handovers reached the queue
    wait_for(lambda: not cluster.missing(_pods_since(queue, mark)), timeout=15, what="every change")
    time.sleep(1.0)
    after = _pods_since(queue, mark)
    assert not cluster.missing(after)
    # and no process won a lease before its first list (that would re-forward every pod)
    assert {e.payload.name for e in after} <= cluster.touched
    assert lease(fake)["spec"]["leaseTransitions"] >= 10  # type: ignore[index]
