"""Leader election (`podwatch_relay.leader`) on a fake clock: the timing rules of acquire, renew, step
down and release, the standby gate, and the lease settings. The elector talks to an in-memory Lease
store with the API server's concurrency rules; the same elector against the fake API server over
HTTP (real 409s, real processes) is in tests/integration/test_relay_leader.py."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from podwatch_relay.leader import (
    LeaderElector,
    StandbyGate,
    default_identity,
    default_lease_namespace,
    process_identity,
)
from podwatch_relay.settings import RelaySettings
from podwatch_relay.sink import SendResult

Json = dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return self.wall + timedelta(seconds=self.now - 1000.0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Response:
    def __init__(self, body: Json) -> None:
        self.data = json.dumps(body).encode()

    def release_conn(self) -> None:
        pass


class Leases:
    """CoordinationV1Api's three Lease calls over a dict, with the API server's rules: a create of
    an existing name and a replace with a stale resourceVersion answer 409, an absent one 404."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], Json] = {}
        self.rv = 1
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.down = False

    def _call(self, method: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((method, kwargs))
        if self.down:
            raise urllib3.exceptions.NewConnectionError(None, "connection refused")  # type: ignore[arg-type]

    def _stamp(self, body: Json) -> Response:
        self.rv += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.rv)
        self.store[body["metadata"]["namespace"], body["metadata"]["name"]] = body
        return Response(body)

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> Response:
        self._call("read", kwargs)
        if (namespace, name) not in self.store:
            raise ApiException(status=404, reason="Not Found")
        return Response(self.store[namespace, name])

    def create_namespaced_lease(self, namespace: str, body: Json, **kwargs: Any) -> Response:
        self._call("create", kwargs)
        if (namespace, body["metadata"]["name"]) in self.store:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._stamp(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: Json, **kwargs: Any) -> Response:
        self._call("replace", kwargs)
        stored = self.store.get((namespace, name))
        if stored is None:
            raise ApiException(status=404, reason="Not Found")
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        return self._stamp(body)

    def spec(self) -> Json:
        [lease] = self.store.values()
        spec: Json = lease["spec"]
        return spec

    def write_spec(self, **changes: Any) -> None:
        """Another writer changes the lease (a newer version)."""
        [lease] = self.store.values()
        self._stamp(lease | {"spec": lease["spec"] | changes})


def make(api: Leases, clock: Clock, identity: str, **kwargs: Any) -> LeaderElector:
    return LeaderElector(
        api=api,  # type: ignore[arg-type]
        name="podwatch-relay",
        namespace="podwatch",
        identity=identity,
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
        request_timeout=5,
        clock=clock,
        wall_clock=clock.utc,
        jitter=lambda: 0.5,
        **kwargs,
    )


@pytest.fixture
def api() -> Leases:
    return Leases()


@pytest.fixture
def clock() -> Clock:
    return Clock()


# --------------------------------------------------------------------------- elector


def test_the_first_candidate_creates_the_lease_and_leads(api: Leases, clock: Clock) -> None:
    started = threading.Event()
    a = make(api, clock, "a", on_started_leading=started.set)

    assert a.step() == 2
    assert a.is_leader()
    assert started.wait(2)
    spec = api.spec()
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-22T09:00:00.000000Z"


def test_a_held_lease_is_taken_over_one_lease_duration_after_its_last_observed_change(
    api: Leases, clock: Clock
) -> None:
    a, b = make(api, clock, "a"), make(api, clock, "b")
    a.step()
    # Given a standby that saw the leader's lease, and a leader that stops renewing (dead)
    assert b.step() == pytest.approx(2 * 1.1)  # standby attempts are jittered up to 1.2 x
    assert not b.is_leader()
    assert b.holder == "a"

    # When less than a lease duration passed since b saw it change: still a's
    clock.advance(14.9)
    b.step()
    assert not b.is_leader()

    # Then at one lease duration b takes it, as a new leadership term
    clock.advance(0.1)
    b.step()
    assert b.is_leader()
    spec = api.spec()
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-22T09:00:15.000000Z"


def test_a_process_that_has_not_listed_yet_only_reads_the_lease_then_takes_a_free_one(
    api: Leases, clock: Clock
) -> None:
    listed = False
    a = make(api, clock, "a", eligible=lambda: listed)
    b = make(api, clock, "b")
    b.step()
    assert b.release()  # a free lease: released by its last holder

    # While its initial list runs, a reads the lease (its clocks start) and never writes it
    a.step()
    clock.advance(30)
    a.step()
    assert not a.is_leader()
    assert [method for method, _ in api.calls[-2:]] == ["read", "read"]
    assert a.stats.looks == 2
    assert api.spec()["holderIdentity"] == ""

    # Once listed it takes the free lease at its next step
    listed = True
    a.step()
    assert a.is_leader()
    assert api.spec()["holderIdentity"] == "a"


def test_the_wait_of_a_process_that_may_not_stand_ends_when_it_may(api: Leases, clock: Clock) -> None:
    listed = threading.Event()
    a = make(api, clock, "a", eligible=listed.is_set)
    stop = threading.Event()
    a.start(stop)
    try:
        listed.set()  # the first list just finished: a free lease is taken now, not a retry later
        for _ in range(50):  # at most 1 s: well within the 2 s retry period
            if a.is_leader():
                break
            time.sleep(0.02)
        assert a.is_leader()
    finally:
        stop.set()
        a.join(timeout=2)


def test_a_container_restarted_in_its_pod_waits_out_its_predecessors_lease(api: Leases, clock: Clock) -> None:
    # Given a lease held by the previous container of pod relay-a (killed: it renews no more)
    before = make(api, clock, process_identity("relay-a"))
    before.step()

    # When the container restarts in the same pod (same pod name, a new process)
    after = make(api, clock, process_identity("relay-a"))
    after.step()

    # Then it does not take the lease for its own: it waits a lease duration, as any standby
    assert not after.is_leader()
    assert after.holder == before.identity
    assert before.identity.startswith("relay-a_")
    assert after.identity.startswith("relay-a_")
    clock.advance(15)
    after.step()
    assert after.is_leader()
    assert api.spec()["leaseTransitions"] == 1
    assert after.stats.holder_changes == 1  # before -> after, as it saw it


def test_a_renewing_leader_keeps_the_lease_and_the_standby_sees_each_renewal(
    api: Leases, clock: Clock
) -> None:
    a, b = make(api, clock, "a"), make(api, clock, "b")
    a.step()
    for _ in range(20):  # 40 s: well past a lease duration, renewed every retry period
        b.step()
        clock.advance(2)
        a.step()
        assert a.is_leader()
        assert not b.is_leader()
        assert b.renewal_seen_at is not None
        assert b.renewal_seen_at >= clock.now - 2
    assert a.stats.renewals == 20
    assert api.spec()["acquireTime"] == "2026-11-22T09:00:00.000000Z"


def test_a_leader_that_cannot_renew_steps_down_at_the_renew_deadline(api: Leases, clock: Clock) -> None:
    lost: list[str] = []
    stopped = threading.Event()
    a = make(api, clock, "a", on_stopped_leading=lambda reason: (lost.append(reason), stopped.set()))
    a.step()

    # When the API server is unreachable, the leader keeps forwarding until its deadline
    api.down = True
    for _ in range(4):
        clock.advance(2)
        a.step()
        assert a.is_leader()
        assert not a.lost.is_set()
    clock.advance(2)  # 10 s since the last successful renewal started: not even tried
    a.step()

    # Then it steps down for good: not leader, `lost` set (the process exits), callback told why
    assert not a.is_leader()
    assert a.lost.is_set()
    assert stopped.wait(2)
    assert "renew" in lost[0]
    assert a.stats.lost == 1
    assert a.stats.errors == 4


def test_a_frozen_leader_stops_leading_the_moment_it_runs_again_without_calling_the_api(
    api: Leases, clock: Clock
) -> None:
    a = make(api, clock, "a")
    a.step()
    calls = len(api.calls)

    # When the process was frozen for longer than the renew deadline (SIGSTOP, a stalled node)
    clock.advance(10.5)

    # Then it is no longer leader before its loop even runs, and the loop steps down without trying
    assert not a.is_leader()
    assert a.step() == 0
    assert a.lost.is_set()
    assert len(api.calls) == calls


def test_a_leader_that_finds_another_holder_steps_down(api: Leases, clock: Clock) -> None:
    a = make(api, clock, "a")
    a.step()
    api.write_spec(holderIdentity="intruder")
    a.step()
    assert a.lost.is_set()
    assert not a.is_leader()
    assert a.holder == "intruder"


def test_a_renewal_that_conflicts_reads_again_and_renews_the_new_version(api: Leases, clock: Clock) -> None:
    a = make(api, clock, "a")
    a.step()
    real_read = api.read_namespaced_lease

    def read_then_someone_writes(name: str, namespace: str, **kwargs: Any) -> Response:
        response = real_read(name, namespace, **kwargs)
        api.read_namespaced_lease = real_read  # type: ignore[method-assign]
        api.write_spec(strategy="OldestEmulationVersion")  # a newer version, still held by a
        return response

    api.read_namespaced_lease = read_then_someone_writes  # type: ignore[method-assign]
    clock.advance(2)
    a.step()

    assert [method for method, _ in api.calls[-4:]] == ["read", "replace", "read", "replace"]
    assert a.is_leader()
    assert a.stats.conflicts == 1
    assert a.stats.renewals == 1
    assert api.spec()["strategy"] == "OldestEmulationVersion"  # the other writer's change is kept
    assert api.spec()["renewTime"] == "2026-11-22T09:00:02.000000Z"


def test_release_empties_the_holder_so_a_standby_takes_over_at_its_next_attempt(
    api: Leases, clock: Clock
) -> None:
    a, b = make(api, clock, "a"), make(api, clock, "b")
    a.step()
    b.step()

    assert a.release()
    assert not a.is_leader()
    assert api.spec()["holderIdentity"] == ""
    assert api.spec()["leaseDurationSeconds"] == 1

    b.step()  # no time passed: a released lease is free at once
    assert b.is_leader()
    assert api.spec()["leaseTransitions"] == 1
    assert not a.release()  # not the holder any more: nothing written
    assert api.spec()["holderIdentity"] == "b"


def test_every_call_has_a_timeout_and_a_leaders_is_capped_by_its_deadline(api: Leases, clock: Clock) -> None:
    a = make(api, clock, "a")
    a.step()
    clock.advance(2)
    a.step()
    clock.advance(9)  # 9 s since the last renewal began: 1 s left before the deadline
    api.down = True
    a.step()

    assert all(0 < kwargs["_request_timeout"] <= 5 for _, kwargs in api.calls)
    assert all(kwargs.get("_preload_content") is False for _, kwargs in api.calls)
    assert api.calls[-1][1]["_request_timeout"] == pytest.approx(1.0)


def test_a_failing_leader_callback_makes_the_elector_step_down(api: Leases, clock: Clock) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    a = make(api, clock, "a", on_started_leading=broken)
    a.step()
    assert a.lost.wait(2)
    assert not a.is_leader()


def test_the_loop_stops_on_the_stop_event_and_on_loss(api: Leases) -> None:
    a = LeaderElector(
        api=api,  # type: ignore[arg-type]
        name="l",
        namespace="ns",
        identity="a",
        lease_duration=3,
        renew_deadline=2,
        retry_period=0.05,
    )
    stop = threading.Event()
    a.start(stop)
    threading.Event().wait(0.2)
    assert a.is_leader()
    assert a.stats.renewals >= 2
    stop.set()
    a.join(timeout=2)
    assert a._thread is not None
    assert not a._thread.is_alive()


@pytest.mark.parametrize(("duration", "deadline", "retry"), [(10, 10, 2), (15, 10, 9), (15, 2.4, 2)])
def test_inconsistent_timing_is_refused(duration: int, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="renew_deadline"):
        LeaderElector(
            api=Leases(),  # type: ignore[arg-type]
            name="l",
            namespace="ns",
            identity="a",
            lease_duration=duration,
            renew_deadline=deadline,
            retry_period=retry,
        )
    with pytest.raises(ValidationError, match="renew_deadline"):
        RelaySettings(
            lease_duration_seconds=duration, renew_deadline_seconds=deadline, retry_period_seconds=retry
        )


# --------------------------------------------------------------------------- gate


class Collecting:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        self.bodies += bodies
        return SendResult(sent=len(bodies))


class Leadership:
    def __init__(self) -> None:
        self.leading = False
        self.renewal_seen: float | None = None


def gate_for(clock: Clock, *, capacity: int = 100) -> tuple[StandbyGate, Collecting, Leadership]:
    sink, state = Collecting(), Leadership()
    gate = StandbyGate(
        sink=sink,
        leading=lambda: state.leading,
        renewal_seen=lambda: state.renewal_seen,
        margin=5,
        capacity=capacity,
        clock=clock,
    )
    return gate, sink, state


def test_a_standby_holds_what_it_would_send_and_drops_what_the_leader_covered(clock: Clock) -> None:
    gate, sink, state = gate_for(clock)
    state.renewal_seen = clock.now
    gate.send(["old-1", "old-2"])
    clock.advance(4)
    gate.send(["recent"])

    # When the standby sees the leader renew, the envelopes produced more than `margin` before drop
    clock.advance(3)
    state.renewal_seen = clock.now  # 7 s after old-*, 3 s after recent
    assert gate.depth == 1
    assert sink.bodies == []
    assert gate.stats.suppressed_standby == 2


def test_on_takeover_the_window_goes_first_then_everything_passes(clock: Clock) -> None:
    gate, sink, state = gate_for(clock)
    gate.send(["covered"])
    clock.advance(6)
    state.renewal_seen = clock.now  # the leader's last renewal: it was alive 6 s after `covered`
    gate.send(["after-the-last-renewal-1"])
    clock.advance(10)  # the leader died: no renewal seen since
    gate.send(["after-the-last-renewal-2"])

    state.leading = True
    assert gate.take_over() == 2
    gate.send(["live"])

    assert sink.bodies == ["after-the-last-renewal-1", "after-the-last-renewal-2", "live"]
    assert gate.stats.takeover_resent == 2
    assert gate.forwarding


def test_without_ever_seeing_a_leader_the_takeover_sends_everything(clock: Clock) -> None:
    gate, sink, state = gate_for(clock)
    gate.send(["initial-sync-1", "initial-sync-2"])
    clock.advance(60)
    state.leading = True
    gate.take_over()
    assert sink.bodies == ["initial-sync-1", "initial-sync-2"]


def test_a_leader_whose_leadership_lapsed_holds_again(clock: Clock) -> None:
    gate, sink, state = gate_for(clock)
    state.leading = True
    gate.take_over()
    gate.send(["sent"])
    state.leading = False  # the renew deadline passed
    result = gate.send(["held"])
    assert sink.bodies == ["sent"]
    assert result.queued == 1
    assert gate.depth == 1
    assert not gate.forwarding


def test_the_hold_is_bounded_oldest_dropped_and_counted(clock: Clock) -> None:
    gate, _, _ = gate_for(clock, capacity=3)
    gate.send([f"e{i}" for i in range(5)])
    assert gate.depth == 3
    assert gate.stats.overflow == 2


# --------------------------------------------------------------------------- settings


def test_lease_settings_come_from_the_charts_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PODWATCH_LEADER_ELECTION": "true",
        "PODWATCH_LEASE_NAME": "relay-lease",
        "PODWATCH_LEASE_NAMESPACE": "podwatch",
        "PODWATCH_LEASE_IDENTITY": "podwatch-relay-7d9c-x2x4z",
        "PODWATCH_LEASE_DURATION_SECONDS": "15",
        "PODWATCH_RENEW_DEADLINE_SECONDS": "10",
        "PODWATCH_RETRY_PERIOD_SECONDS": "2",
    }.items():
        monkeypatch.setenv(name, value)

    settings = RelaySettings()

    assert settings.leader_election is True
    assert (settings.lease_name, settings.lease_namespace) == ("relay-lease", "podwatch")
    assert settings.lease_identity == "podwatch-relay-7d9c-x2x4z"
    assert (settings.lease_duration_seconds, settings.renew_deadline_seconds) == (15, 10.0)
    assert settings.retry_period_seconds == 2.0
    for field in ("leader_election", "lease_name", "lease_identity", "renew_deadline_seconds"):
        assert RelaySettings.model_fields[field].description, field


def test_leader_election_is_off_by_default_and_lease_names_are_checked() -> None:
    assert RelaySettings().leader_election is False
    with pytest.raises(ValidationError):
        RelaySettings(lease_name="Not_A_Name")


def test_the_lease_namespace_defaults_to_the_pods_then_the_kubeconfig_contexts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "ops", "context": {"cluster": "c", "user": "u", "namespace": "podwatch"}},
                    {"name": "bare", "context": {"cluster": "c", "user": "u"}},
                ],
                "current-context": "ops",
            }
        )
    )
    assert default_lease_namespace(kubeconfig=str(kubeconfig), context=None) == "podwatch"
    assert default_lease_namespace(kubeconfig=str(kubeconfig), context="bare") == "default"
    assert default_lease_namespace(kubeconfig=str(tmp_path / "missing"), context=None) == "default"

    in_pod = tmp_path / "namespace"
    in_pod.write_text("relay-ns\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert default_lease_namespace(kubeconfig=None, context=None, service_account_file=in_pod) == "relay-ns"
    assert default_identity() != default_identity()  # unique per process start
