"""Leader election on a `coordination.k8s.io/v1` Lease, and the gate that keeps a standby quiet.

Our own elector, because the official client's `leaderelection` module keeps renewing after its
callback crashed, never releases the lease and has a worker thread that does not stop.

`LeaderElector`
* **acquire / renew**: GET the Lease, then PUT it back carrying the resourceVersion that was read
  (optimistic concurrency). `409 Conflict` (someone wrote in between) → read again and decide
  again (at most `MAX_CONFLICT_RETRIES` times per attempt); `404` → create it; a create answered
  `409 AlreadyExists` (another candidate created it first) → read it and decide again.
* A lease held by someone else is free once its `leaseDurationSeconds` passed since this process
  **observed** it change (its own monotonic clock: the holder's clock is never trusted), or at once
  when its holder is empty (released).
* The leader renews every `retry_period` and is leader only until `renew_deadline` after the start
  of its last successful renewal. `is_leader()` reads the clock, so a process that was frozen
  (SIGSTOP, a stalled node) stops forwarding the moment it runs again, before its elector thread
  even wakes up. `lease_duration > renew_deadline` means it stops before any standby may take
  over. Past the deadline (or on finding another holder) it **steps down for good**: `lost` is
  set, and the process exits non-zero so that Kubernetes restarts it as a standby.
* `release()` (clean shutdown): holderIdentity "" and leaseDurationSeconds 1, so a standby takes
  over at its next attempt instead of waiting out the lease.
* **Who may stand**: a process that has not finished its initial list (`eligible()` false) only
  reads the lease (its observation clock and hold window start), never writes it: it could not
  diff, so winning would forward an initial sync and fold away what changed meanwhile.
* **Identities are per process** (`process_identity`: the pod name plus a random suffix): a
  container restarted in its pod finds the lease held by its dead predecessor, someone else, and
  waits it out like any standby, so the warm standby (which saw the last renewal first) takes over.
* Every API call has `_request_timeout`; a leader's is capped by the time left before its deadline.
* Callbacks run on their own threads: a slow callback never delays a renewal, and one that fails
  makes the elector step down (it never goes on renewing a lease it does not use).

`StandbyGate` sits between the `Relay` and the outbox. A standby lists, watches and tracks pods
exactly like the leader (its tracker is warm, its `/readyz` the same), but what it would forward is
**held** in memory with the (monotonic) time it was produced:

* held envelopes produced before `renewal_seen - margin` are dropped, counted `suppressed_standby`:
  the leader renewed after that, so it was alive and forwarding them itself;
* on takeover the envelopes still held are sent first, counted `takeover_resent` (an upper bound
  of the duplicates: the old leader may have sent some of them before it died; the cloud side
  deduplicates by event_id), then everything passes through. Nothing produced after the old
  leader's last renewal is lost, not even what sat unsent in a killed leader's outbox;
* `margin` (see `election_from_settings`) = renew_deadline + retry_period + flush_interval: the
  standby sees a renewal up to one retry period late, a dead leader's outbox may have held one
  flush interval of envelopes, and the two replicas' watches may lag each other (allowance: the
  renew deadline).

A cleanly stopping leader stops renewing before it stops forwarding (app.py), so the same window
covers what it did not forward; it releases the lease only after draining its outbox.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, CoordinationV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from podwatch_relay.settings import RelaySettings
from podwatch_relay.sink import Progress, SendResult, Sink

log = logging.getLogger("podwatch_relay.leader")

Json = dict[str, Any]

#: 409s absorbed within one attempt (each one re-reads the lease and decides again)
MAX_CONFLICT_RETRIES = 3
#: A leader must never act on a lease it cannot see: the smallest timeout of one of its calls.
MIN_CALL_TIMEOUT = 0.05
#: How often a process that may not stand yet checks whether it may (no API call).
ELIGIBILITY_POLL = 0.1
#: Errors of a call that a later attempt may not get (the connection, a timeout).
RETRYABLE = (urllib3.exceptions.HTTPError, OSError)
API_VERSION = "coordination.k8s.io/v1"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_PREFIX = "podwatch_relay"


def micro_time(at: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 in UTC with microseconds), as Lease times are written."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class ElectorStats:
    attempts: int = 0
    renewals: int = 0
    #: this process became leader / stopped leading (it exits then) / released the lease
    acquired: int = 0
    lost: int = 0
    released: int = 0
    #: 409s: a write that lost a race (Conflict), or a create that found the lease (AlreadyExists)
    conflicts: int = 0
    #: other failed calls (connection, timeout, 5xx, 403, ...)
    errors: int = 0
    #: reads of a process that may not stand yet (initial list not finished): no write
    looks: int = 0
    #: times this process saw the lease pass to another holder (itself included) or be released
    holder_changes: int = 0


class _Conflict(Exception):
    """A 409 inside one attempt: read again and decide again."""


class LeaderElector:
    """Acquires, renews and releases one Lease; thread-safe (`run` on one thread, the rest anywhere)."""

    def __init__(
        self,
        *,
        api: CoordinationV1Api,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: int,
        renew_deadline: float,
        retry_period: float,
        request_timeout: float = 10.0,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[str], None] | None = None,
        eligible: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not lease_duration > renew_deadline > 1.2 * retry_period:
            raise ValueError("lease_duration > renew_deadline > 1.2 x retry_period is required")
        if not identity:
            raise ValueError("identity must not be empty")
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.request_timeout = request_timeout
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        #: may this process stand for election (its initial list is done)? None: always
        self.eligible = eligible
        self._clock = clock
        self._wall = wall_clock
        self._jitter = jitter
        self.stats = ElectorStats()
        #: set once leadership is lost (deadline passed, another holder, a failed callback): the
        #: process must exit; this elector never leads again
        self.lost = threading.Event()
        #: the holder seen at the last read ("" when released, None before the first read)
        self.holder: str | None = None
        self._leading = False
        self._renewed_at = float("-inf")
        self._observed_spec: Json | None = None
        self._observed_at = float("-inf")
        self._renewal_seen_at: float | None = None
        self._superseded = False
        self._attempt_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ state

    def is_leader(self) -> bool:
        """Leading, and the last successful renewal started less than `renew_deadline` ago."""
        return self._leading and self._clock() < self._renewed_at + self.renew_deadline

    def may_stand(self) -> bool:
        """Whether this process may take the lease: it finished its initial list (see `eligible`)."""
        return self.eligible is None or self.eligible()

    @property
    def renewal_seen_at(self) -> float | None:
        """When (this process's monotonic clock) it last saw another holder's lease change: that
        holder was alive and leading then. None if it never saw one."""
        return self._renewal_seen_at

    # ------------------------------------------------------------------ the loop

    def start(self, stop: threading.Event) -> LeaderElector:
        self._thread = threading.Thread(target=self.run, args=(stop,), name="leader-election", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def run(self, stop: threading.Event) -> None:
        """Acquire, then renew, until `stop` or until leadership is lost."""
        clean = False
        try:
            while not stop.is_set() and not self.lost.is_set():
                if self._pause(stop, self.step()):
                    break
            clean = True
        finally:
            if not clean:  # a bug, not an API error (those are handled): never lead blind
                self._lose("the election loop failed")

    def _pause(self, stop: threading.Event, delay: float) -> bool:
        """Wait `delay` (True when `stop` was set); a process that may not stand yet stops waiting
        as soon as it may, so a free lease is taken right after its initial list."""
        if self.may_stand():
            return stop.wait(delay)
        deadline = self._clock() + delay
        while not stop.wait(min(ELIGIBILITY_POLL, max(0.0, deadline - self._clock()))):
            if self._clock() >= deadline or self.may_stand():
                return False
        return True

    def step(self) -> float:
        """One acquire-or-renew round; returns the seconds to wait before the next."""
        if self.lost.is_set():
            return self.retry_period
        if not self._leading and not self.may_stand():
            self.look()
            return self.retry_period * (1.0 + 0.2 * self._jitter())
        if self._leading and not self.is_leader():
            # Woken up after the deadline (frozen process, starved thread): someone may hold the
            # lease by now. Do not even try to renew.
            self._lose(f"no renewal for more than renew_deadline ({self.renew_deadline}s)")
            return 0.0
        was_leading = self._leading
        ok = self.try_acquire_or_renew()
        if was_leading:
            if ok:
                self.stats.renewals += 1
            elif self._superseded:
                self._lose(f"the lease is held by {self.holder!r}")
            elif not self.is_leader():
                self._lose(f"could not renew within renew_deadline ({self.renew_deadline}s)")
            return self.retry_period
        if ok:
            self.stats.acquired += 1
            log.info(
                "became leader",
                extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity},
            )
            self._dispatch(self.on_started_leading, name="on_started_leading")
            return self.retry_period
        return self.retry_period * (1.0 + 0.2 * self._jitter())

    def _lose(self, reason: str) -> None:
        if self.lost.is_set():
            return
        was_leading = self._leading
        self._leading = False
        self.lost.set()
        if was_leading:
            self.stats.lost += 1
        log.error(
            "leadership lost: stepping down",
            extra={"reason": reason, "lease": f"{self.namespace}/{self.name}", "identity": self.identity},
        )
        callback = self.on_stopped_leading
        if callback is not None:
            threading.Thread(target=callback, args=(reason,), name="on_stopped_leading", daemon=True).start()

    def _dispatch(self, callback: Callable[[], None] | None, *, name: str) -> None:
        if callback is None:
            return

        def call() -> None:
            try:
                callback()
            except Exception:
                log.exception("leader callback failed", extra={"callback": name})
                self._lose(f"{name} failed")

        threading.Thread(target=call, name=name, daemon=True).start()

    # ------------------------------------------------------------------ one attempt

    def look(self) -> None:
        """Read the lease and note what it says, without writing (a process that may not stand
        yet): the expiry clock and the standby's hold window start at the first read."""
        with self._attempt_lock:
            self.stats.looks += 1
            try:
                lease = self._read()
            except (ApiException, *RETRYABLE, ValueError) as exc:
                self.stats.errors += 1
                log.warning("lease read failed", extra={"lease": self.name, "error": str(exc)[:300]})
                return
            if lease is not None:
                self._observe(lease)

    def try_acquire_or_renew(self) -> bool:
        """Read the lease; take it or renew it if it is ours to take. True when this process holds
        it now (written successfully). Never raises for API or connection errors."""
        with self._attempt_lock:
            self.stats.attempts += 1
            for _ in range(1 + MAX_CONFLICT_RETRIES):
                started = self._clock()
                try:
                    return self._attempt(started)
                except _Conflict:
                    self.stats.conflicts += 1
                    log.info("lease changed under us (409): reading it again", extra={"lease": self.name})
                except (ApiException, *RETRYABLE, ValueError) as exc:
                    self.stats.errors += 1
                    log.warning(
                        "lease call failed",
                        extra={
                            "lease": f"{self.namespace}/{self.name}",
                            "error": f"{type(exc).__name__}: {getattr(exc, 'status', '')} {exc}"[:300],
                        },
                    )
                    return False
            log.warning("lease kept changing under us: giving up this attempt", extra={"lease": self.name})
            return False

    def _attempt(self, started: float) -> bool:
        lease = self._read()
        if lease is None:
            spec = self._spec_for(None, "")
            self._write(None, spec, started)
            return True
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired(spec):
            self._superseded = self._leading
            return False
        self._write(lease, self._spec_for(spec, holder), started)
        return True

    def _expired(self, spec: Json) -> bool:
        duration = spec.get("leaseDurationSeconds")
        if not isinstance(duration, int) or isinstance(duration, bool) or duration <= 0:
            duration = self.lease_duration
        return self._clock() >= self._observed_at + duration

    def _spec_for(self, spec: Json | None, holder: str) -> Json:
        now = micro_time(self._wall())
        old = spec or {}
        if holder == self.identity and old.get("acquireTime"):
            return old | {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_duration,
                "renewTime": now,
            }
        transitions = old.get("leaseTransitions")
        transitions = transitions if isinstance(transitions, int) and transitions >= 0 else 0
        return old | {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_duration,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": transitions + 1 if spec is not None else 0,
        }

    def _observe(self, lease: Json) -> None:
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if self.holder is not None and holder != self.holder:
            self.stats.holder_changes += 1
            log.info(
                "lease holder changed",
                extra={"lease": self.name, "from": self.holder, "to": holder, "leading": self._leading},
            )
        self.holder = holder
        if spec != self._observed_spec:
            now = self._clock()
            self._observed_spec = spec
            self._observed_at = now
            if holder and holder != self.identity:
                self._renewal_seen_at = now

    # ------------------------------------------------------------------ API calls

    def _timeout(self) -> float:
        if self._leading:
            left = self._renewed_at + self.renew_deadline - self._clock()
            return max(MIN_CALL_TIMEOUT, min(self.request_timeout, left))
        return min(self.request_timeout, self.renew_deadline)

    def _read(self) -> Json | None:
        try:
            response = self.api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False, _request_timeout=self._timeout()
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _body(response)

    def _write(self, lease: Json | None, spec: Json, started: float) -> None:
        """Create (lease None) or replace with the resourceVersion read. Success makes this
        process the holder as of `started`; a 409 raises `_Conflict`."""
        try:
            # plain dicts, sent as they are (the client's hints say V1Lease: it takes both)
            body: Any
            if lease is None:
                body = {
                    "apiVersion": API_VERSION,
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": spec,
                }
                response = self.api.create_namespaced_lease(
                    self.namespace, body, _preload_content=False, _request_timeout=self._timeout()
                )
            else:
                body = {
                    "apiVersion": API_VERSION,
                    "kind": "Lease",
                    "metadata": lease["metadata"],
                    "spec": spec,
                }
                response = self.api.replace_namespaced_lease(
                    self.name, self.namespace, body, _preload_content=False, _request_timeout=self._timeout()
                )
        except ApiException as exc:
            if exc.status == 409:
                raise _Conflict from exc
            raise
        stored = _body(response)
        self._observe(stored)
        self._renewed_at = started
        self._superseded = False
        self._leading = True

    def release(self) -> bool:
        """Give the lease up (clean shutdown) if this process holds it: holder "" and duration 1 s,
        so a standby takes over at its next attempt. Stops leading first. True if released."""
        self._leading = False
        with self._attempt_lock:
            for _ in range(1 + MAX_CONFLICT_RETRIES):
                try:
                    lease = self._read()
                    spec = (lease or {}).get("spec") or {}
                    if lease is None or spec.get("holderIdentity") != self.identity:
                        return False
                    now = micro_time(self._wall())
                    released = spec | {
                        "holderIdentity": "",
                        "leaseDurationSeconds": 1,
                        "acquireTime": now,
                        "renewTime": now,
                    }
                    body: Any = {"apiVersion": API_VERSION, "kind": "Lease", "metadata": lease["metadata"]}
                    _body(  # read to the end: a half-read answer must not go back to the pool
                        self.api.replace_namespaced_lease(
                            self.name,
                            self.namespace,
                            body | {"spec": released},
                            _preload_content=False,
                            _request_timeout=self._timeout(),
                        )
                    )
                except ApiException as exc:
                    if exc.status == 409:
                        self.stats.conflicts += 1
                        continue
                    self.stats.errors += 1
                    log.warning(
                        "could not release the lease", extra={"status": exc.status, "lease": self.name}
                    )
                    return False
                except (*RETRYABLE, ValueError) as exc:
                    self.stats.errors += 1
                    log.warning("could not release the lease", extra={"error": str(exc), "lease": self.name})
                    return False
                self.stats.released += 1
                log.info("released the lease", extra={"lease": f"{self.namespace}/{self.name}"})
                return True
            return False


def _body(response: Any) -> Json:
    try:
        body = json.loads(response.data)
    finally:
        response.release_conn()
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        raise urllib3.exceptions.ProtocolError("the API server's answer is not a Lease")
    return body


# --------------------------------------------------------------------------- the gate


@dataclass(slots=True)
class GateStats:
    #: envelopes held while standby
    held: int = 0
    #: held envelopes dropped because the leader renewed after they were produced (it sent them)
    suppressed_standby: int = 0
    #: held envelopes sent on takeover: an upper bound of the duplicates a failover causes
    takeover_resent: int = 0
    #: held envelopes dropped (oldest first) because the hold was full
    overflow: int = 0
    takeovers: int = 0


class StandbyGate:
    """A `Sink` that passes envelopes on only while this process leads; see the module docstring."""

    def __init__(
        self,
        *,
        sink: Sink,
        leading: Callable[[], bool],
        renewal_seen: Callable[[], float | None],
        margin: float,
        capacity: int = 10_000,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        #: what tells when the envelopes passed on while leading left memory (the outbox)
        self.progress = progress
        self.margin = margin
        self.capacity = capacity
        self.stats = GateStats()
        self._leading = leading
        self._renewal_seen = renewal_seen
        self._clock = clock
        self._open = False
        self._held: deque[tuple[float, str]] = deque()
        self._lock = threading.RLock()

    @property
    def depth(self) -> int:
        """Envelopes held now (after dropping those the leader is known to have sent)."""
        with self._lock:
            self._prune()
            return len(self._held)

    @property
    def forwarding(self) -> bool:
        return self._open and self._leading()

    def send(self, bodies: Sequence[str]) -> SendResult:
        with self._lock:
            if self._open and self._leading():
                return self.sink.send(bodies)
            now = self._clock()
            self._held.extend((now, body) for body in bodies)
            self.stats.held += len(bodies)
            self._prune()
            return SendResult(queued=len(bodies))

    def _prune(self) -> None:
        seen = self._renewal_seen()
        if seen is not None:
            cutoff = seen - self.margin
            while self._held and self._held[0][0] < cutoff:
                self._held.popleft()
                self.stats.suppressed_standby += 1
        overflow = len(self._held) - self.capacity
        if overflow > 0:
            for _ in range(overflow):
                self._held.popleft()
            if self.stats.overflow == 0:
                log.warning(
                    "standby hold full: dropping the oldest held envelopes", extra={"cap": self.capacity}
                )
            self.stats.overflow += overflow

    def mark(self) -> tuple[bool, float, Any]:
        """`Progress.mark`: whether this process forwards now, when, and the outbox's mark."""
        with self._lock:
            forwarding = self.forwarding
            inner = self.progress.mark() if forwarding and self.progress is not None else None
            return forwarding, self._clock(), inner

    def covered(self, mark: tuple[bool, float, Any]) -> bool | None:
        """`Progress.covered`: a leader's envelopes are covered once the outbox has them out of
        memory; a standby's once the leader renewed `margin` after the mark (it sent them, and
        they are dropped from the hold). None when leadership changed since the mark."""
        forwarding, at, inner = mark
        if forwarding != self.forwarding:
            return None
        if forwarding:
            return self.progress is not None and bool(self.progress.covered(inner))
        seen = self._renewal_seen()
        return seen is not None and seen - self.margin > at

    def take_over(self) -> int:
        """This process leads now: send what is held and still in the window, then pass everything
        through. Returns how many held envelopes were sent."""
        with self._lock:
            self._prune()
            bodies = [body for _, body in self._held]
            self._held.clear()
            self._open = True
            self.stats.takeovers += 1
            self.stats.takeover_resent += len(bodies)
            if bodies:
                self.sink.send(bodies)
        log.info("forwarding as leader", extra={"resent": len(bodies)})
        return len(bodies)


# --------------------------------------------------------------------------- wiring


def process_identity(base: str | None = None) -> str:
    """`<base>_<random>` (base: the pod name, else the hostname): unique per process, like
    client-go's default, so a process restarted in the same pod never takes its predecessor's
    lease for its own."""
    return f"{base or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_identity() -> str:
    """`<hostname>_<random>` (`process_identity` of the hostname)."""
    return process_identity()


def default_lease_namespace(
    *, kubeconfig: str | None, context: str | None, service_account_file: Path = SERVICE_ACCOUNT_NAMESPACE
) -> str:
    """The pod's namespace in a cluster, else the kubeconfig context's namespace, else `default`."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            namespace = service_account_file.read_text(encoding="utf-8").strip()
        except OSError:
            namespace = ""
        if namespace:
            return namespace
    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError):
        return "default"
    chosen = next((c for c in contexts or [] if c.get("name") == context), None) if context else active
    configured = ((chosen or {}).get("context") or {}).get("namespace")
    return configured if isinstance(configured, str) and configured else "default"


def election_from_settings(
    settings: RelaySettings,
    api_client: ApiClient,
    *,
    sink: Sink,
    kubeconfig: str | None = None,
    context: str | None = None,
    eligible: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> tuple[LeaderElector, StandbyGate]:
    """The elector of the configured Lease and the gate in front of `sink` (the outbox); the
    elector stands only once `eligible()` (the initial list is done)."""
    elector = LeaderElector(
        api=CoordinationV1Api(api_client),
        name=settings.lease_name,
        namespace=settings.lease_namespace or default_lease_namespace(kubeconfig=kubeconfig, context=context),
        identity=process_identity(settings.lease_identity),
        lease_duration=settings.lease_duration_seconds,
        renew_deadline=settings.renew_deadline_seconds,
        retry_period=settings.retry_period_seconds,
        request_timeout=settings.request_timeout_seconds,
        eligible=eligible,
    )
    gate = StandbyGate(
        sink=sink,
        leading=elector.is_leader,
        renewal_seen=lambda: elector.renewal_seen_at,
        margin=settings.renew_deadline_seconds
        + settings.retry_period_seconds
        + settings.flush_interval_seconds,
        capacity=settings.buffer_size,
        progress=progress,
    )
    return elector, gate


@dataclass(eq=False)
class LeaderCollector(Collector):
    """Election metrics, read at scrape time (registered next to `ops.RelayCollector`)."""

    elector: LeaderElector
    gate: StandbyGate

    def collect(self) -> Iterator[Any]:
        e, g = self.elector.stats, self.gate.stats
        yield GaugeMetricFamily(
            f"{_PREFIX}_is_leader",
            "1 while this replica holds the lease and forwards",
            value=int(self.gate.forwarding),
        )
        transitions = CounterMetricFamily(
            f"{_PREFIX}_leader_transitions",
            "This replica became leader (acquired), lost leadership (lost) or released the lease",
            labels=["event"],
        )
        for event, count in (("acquired", e.acquired), ("lost", e.lost), ("released", e.released)):
            transitions.add_metric([event], count)
        yield transitions
        yield CounterMetricFamily(
            f"{_PREFIX}_lease_holder_changes",
            "Times this replica saw the lease pass to another holder (itself included) or be released",
            value=e.holder_changes,
        )
        yield GaugeMetricFamily(
            f"{_PREFIX}_election_candidate",
            "1 once this replica may take the lease (its initial list is done), else 0",
            value=int(self.elector.may_stand()),
        )
        yield CounterMetricFamily(
            f"{_PREFIX}_lease_conflicts",
            "Lease writes answered 409 (retried after a new read)",
            value=e.conflicts,
        )
        yield CounterMetricFamily(
            f"{_PREFIX}_lease_errors", "Lease calls that failed otherwise", value=e.errors
        )
        yield GaugeMetricFamily(
            f"{_PREFIX}_standby_held",
            "Envelopes a standby holds in case it takes over",
            value=self.gate.depth,
        )
        yield CounterMetricFamily(
            f"{_PREFIX}_suppressed_standby",
            "Envelopes a standby did not forward because the leader was alive to do it",
            value=g.suppressed_standby,
        )
        yield CounterMetricFamily(
            f"{_PREFIX}_takeover_resent",
            "Held envelopes sent on takeover: at most this many duplicates from failovers",
            value=g.takeover_resent,
        )
        yield CounterMetricFamily(
            f"{_PREFIX}_standby_overflow",
            "Held envelopes dropped because the standby hold was full",
            value=g.overflow,
        )
