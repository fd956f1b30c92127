"""Issue 4 "Must show": Lease leader election between relay replicas, through the real `kubernetes`
client over HTTP against the fake API server (tests/fakeapi), into SQS (a moto server).

Two `python -m podwatch_relay watch` processes with short lease settings (duration 3 s, renew
deadline 2 s, retry period 0.5 s): the leader is killed, frozen, or stopped cleanly, and the
standby takes over without losing the pod changes made in between. Then two electors in this
process race for the same Lease: the loser of each race gets a 409 and decides again correctly.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoordinationV1Api
from kubernetes.config import new_client_from_config

from podwatch_relay.leader import LeaderElector
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.pods import container_status, pod
from tests.integration.relay_harness import wait_for
from tests.integration.relay_processes import (
    FLUSH_INTERVAL,
    LEASE_NAME,
    LEASE_NAMESPACE,
    Queue,
    RelayProcess,
    held_by,
    holder,
    lease,
)

pytestmark = pytest.mark.integration

LEASE_DURATION = 3
RENEW_DEADLINE = 2.0
RETRY_PERIOD = 0.5
#: what a standby holds beyond the last renewal it saw (leader.election_from_settings)
HOLD_MARGIN = RENEW_DEADLINE + RETRY_PERIOD + FLUSH_INTERVAL


@pytest.fixture
def queue(pod_events: Queue) -> Queue:
    return pod_events


@pytest.fixture
def replicas(
    fake: FakeKubeApi, moto_server: str, queue: Queue, tmp_path: Path
) -> Iterator[list[RelayProcess]]:
    """Two replicas started together: [the one that won the lease, the warm standby (initial sync
    done)], both running."""
    for i in range(3):
        fake.put(pod("shop", f"api-{i}"))
    started = [
        RelayProcess(identity, fake=fake, endpoint=moto_server, queue_url=queue.url, tmp=tmp_path)
        for identity in ("relay-a", "relay-b")
    ]
    try:
        wait_for(lambda: holder(fake), timeout=15, what="a leader")
        wait_for(lambda: all(r.ready() for r in started), timeout=15, what="both ready (initial sync done)")
        yield sorted(started, key=lambda r: not held_by(fake, r))
    finally:
        for replica in started:
            replica.stop()


def frozen(pid: int) -> bool:
    """Every thread of the process is stopped (state T in /proc)."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(OSError):
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
    return bool(states) and all(state in {"T", "t"} for state in states)


def _crash(restarts: int) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["status"]["containerStatuses"] = [
            container_status(restarts=restarts, waiting="CrashLoopBackOff", last_terminated=("Error", 1))
        ]

    return change


def _settle_past_the_hold_window() -> None:
    """Let the leader renew for longer than the standby's hold margin: what the standby produced
    before (its own initial sync) is then known to be sent by the leader, and dropped."""
    time.sleep(HOLD_MARGIN + 2 * RETRY_PERIOD)


def test_leader_killed_the_standby_takes_over_within_a_lease_duration_and_loses_nothing(
    fake: FakeKubeApi, queue: Queue, replicas: list[RelayProcess]
) -> None:
    a, b = replicas
    # Given a leader that forwarded the pods, and a change while both run (forwarded by a alone)
    wait_for(lambda: all(queue.pods(f"api-{i}") for i in range(3)), timeout=10, what="initial pods")
    fake.update("Pod", "shop", "api-0", _crash(1))
    wait_for(lambda: queue.pods("api-0", restarts=1), what="a forwards the change")
    _settle_past_the_hold_window()
    assert b.metric("podwatch_relay_is_leader") == 0
    assert b.metric("podwatch_relay_standby_held") == 0  # the standby holds nothing the leader sent

    # When the leader is killed, and a pod crashes before anyone leads again
    a.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    a.process.wait(timeout=5)  # dead for sure: the change below is not a's to see
    fake.update("Pod", "shop", "api-1", _crash(1))

    # Then b takes over within about one lease duration (+ its retry period, jittered)
    wait_for(lambda: held_by(fake, b), timeout=10, what="b leads")
    failover = time.monotonic() - killed_at
    print(f"\nfailover after SIGKILL: {failover:.2f} s (lease duration {LEASE_DURATION} s)")
    assert failover < LEASE_DURATION + 3 * RETRY_PERIOD + 0.5

    # And the change made in between is forwarded, once, with nothing else re-sent
    wait_for(lambda: queue.pods("api-1", restarts=1), timeout=5, what="the change made in between")
    time.sleep(0.5)
    assert [len(queue.pods(f"api-{i}")) for i in range(3)] == [2, 2, 1]  # no full re-forward
    assert len(queue.pods("api-1", restarts=1)) == 1
    assert b.metric("podwatch_relay_is_leader") == 1
    assert b.metric("process_resident_memory_bytes") > 0  # prometheus-client's process collector
    assert b.metric("podwatch_relay_takeover_resent_total") == 1  # the counted possible duplicates
    assert b.metric("podwatch_relay_suppressed_standby_total") >= 4  # its initial sync + api-0's change
    assert lease(fake)["spec"]["leaseTransitions"] == 1  # type: ignore[index]


def test_leader_frozen_past_the_renew_deadline_steps_down_and_exits(
    fake: FakeKubeApi, queue: Queue, replicas: list[RelayProcess]
) -> None:
    a, b = replicas
    wait_for(lambda: all(queue.pods(f"api-{i}") for i in range(3)), timeout=10, what="initial pods")

    # When the leader is frozen (SIGSTOP) for longer than its renew deadline, and a pod changes
    a.process.send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    wait_for(lambda: frozen(a.process.pid), what="every thread of a stopped")  # signals are async
    fake.update("Pod", "shop", "api-2", _crash(1))
    wait_for(lambda: held_by(fake, b), timeout=10, what="b leads")
    print(f"\nfailover after SIGSTOP: {time.monotonic() - frozen_at:.2f} s")
    assert time.monotonic() - frozen_at > RENEW_DEADLINE

    # Then, running again, it steps down (it even sees its watch deliver the change) and exits 3
    a.process.send_signal(signal.SIGCONT)
    resumed_at = time.monotonic()
    assert a.process.wait(timeout=10) == 3
    print(f"frozen leader exited {time.monotonic() - resumed_at:.2f} s after SIGCONT")
    assert time.monotonic() - resumed_at < RETRY_PERIOD + 5  # its shutdown grace bounds the drain
    assert any(e.get("message") == "leadership lost: stepping down" for e in a.logs())

    # And the change is forwarded by the new leader alone, exactly once
    wait_for(lambda: queue.pods("api-2", restarts=1), timeout=5, what="the change")
    time.sleep(0.5)
    assert len(queue.pods("api-2", restarts=1)) == 1
    assert held_by(fake, b)


def test_clean_sigterm_releases_the_lease_and_failover_is_immediate(
    fake: FakeKubeApi, queue: Queue, replicas: list[RelayProcess]
) -> None:
    a, b = replicas
    wait_for(lambda: all(queue.pods(f"api-{i}") for i in range(3)), timeout=10, what="initial pods")

    # When the leader gets SIGTERM (a rolling update, a drain)
    a.process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    fake.update("Pod", "shop", "api-1", _crash(1))
    released_at = acquired_at = None
    while acquired_at is None and time.monotonic() - signalled_at < 10:
        now, current = time.monotonic(), holder(fake)
        if current == "" and released_at is None:
            released_at = now
        if held_by(fake, b):
            acquired_at = now
        time.sleep(0.01)

    # Then it exits 0 having released the lease, and b takes over at its next attempt
    assert a.process.wait(timeout=10) == 0, a.log.read_text()[-3000:]
    assert released_at is not None, "the lease was never released"
    assert acquired_at is not None, "b never took over"
    print(
        f"\nSIGTERM → released {released_at - signalled_at:.2f} s, "
        f"b leads {acquired_at - released_at:.2f} s after the release"
    )
    assert acquired_at - released_at < 1.2 * RETRY_PERIOD + 0.4
    assert acquired_at - signalled_at < LEASE_DURATION  # far from waiting the lease out
    assert any(e.get("message") == "released the lease" for e in a.logs())

    # And the change made during the handover arrives
    wait_for(lambda: queue.pods("api-1", restarts=1), timeout=5, what="the change during the handover")
    assert b.metric("podwatch_relay_is_leader") == 1


# --------------------------------------------------------------------------- 409 Conflict


@pytest.fixture
def client(fake: FakeKubeApi, tmp_path: Path) -> Iterator[ApiClient]:
    api_client = new_client_from_config(config_file=str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
    yield api_client
    api_client.close()


def elector(client: ApiClient, identity: str) -> LeaderElector:
    return LeaderElector(
        api=CoordinationV1Api(client),
        name=LEASE_NAME,
        namespace=LEASE_NAMESPACE,
        identity=identity,
        lease_duration=LEASE_DURATION,
        renew_deadline=RENEW_DEADLINE,
        retry_period=RETRY_PERIOD,
        request_timeout=2,
    )


def codes(fake: FakeKubeApi) -> list[tuple[str, int]]:
    return [(w.method, w.code) for w in fake.writes]


def test_two_candidates_race_for_a_free_lease_the_loser_gets_409_and_stands_by(
    fake: FakeKubeApi, client: ApiClient
) -> None:
    a, b = elector(client, "a"), elector(client, "b")
    first = elector(client, "first")
    assert first.step()
    assert first.release()

    # When b takes it between a's read and a's write
    fake.faults.before_write = lambda method, body: b.try_acquire_or_renew()
    a.step()

    # Then a's write is refused (409 Conflict), a reads again, sees b, and stands by
    assert codes(fake) == [("POST", 201), ("PUT", 200), ("PUT", 200), ("PUT", 409)]  # first, release, b, a
    assert not a.is_leader()
    assert b.is_leader()
    assert a.stats.conflicts == 1
    assert a.holder == "b"
    spec = lease(fake)["spec"]  # type: ignore[index]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1  # created by first (0); b took it; a never wrote


def test_a_renewal_that_conflicts_with_another_writer_is_retried_on_the_new_version(
    fake: FakeKubeApi, client: ApiClient
) -> None:
    a = elector(client, "a")
    assert a.step() == RETRY_PERIOD
    assert a.is_leader()
    before = lease(fake)

    # When someone else writes the lease (an annotation) between the leader's read and its write
    fake.faults.before_write = lambda method, body: fake.update(
        "Lease",
        LEASE_NAMESPACE,
        LEASE_NAME,
        lambda o: o["metadata"].setdefault("annotations", {}).update(x="1"),
    )
    time.sleep(0.01)
    a.step()

    # Then the stale write gets 409, and the retry on the version read again renews the lease
    assert codes(fake)[-2:] == [("PUT", 409), ("PUT", 200)]
    assert a.is_leader()
    assert a.stats.conflicts == 1
    assert a.stats.renewals == 1
    after = lease(fake)
    assert after["spec"]["renewTime"] > before["spec"]["renewTime"]  # type: ignore[index]
    assert after["spec"]["acquireTime"] == before["spec"]["acquireTime"]  # type: ignore[index]
    assert after["metadata"]["annotations"] == {"x": "1"}  # the other writer's change is kept


def test_two_candidates_create_the_lease_at_once_the_loser_gets_409_and_reads_it(
    fake: FakeKubeApi, client: ApiClient
) -> None:
    a, b = elector(client, "a"), elector(client, "b")

    # When there is no lease, and b creates it between a's 404 and a's create
    fake.faults.before_write = lambda method, body: b.try_acquire_or_renew()
    a.step()

    # Then a's create is refused (409 AlreadyExists), a reads b's lease and stands by
    assert codes(fake) == [("POST", 201), ("POST", 409)]
    assert not a.is_leader()
    assert b.is_leader()
    assert a.holder == "b"
    assert lease(fake)["spec"]["leaseTransitions"] == 0  # type: ignore[index]
