"""Operability: Prometheus `/metrics`, `/healthz` and `/readyz` on one port.

Metrics are read from the counters the relay keeps anyway (`RelayStats`, `OutboxStats`,
`WatchStats`, `SqsSink.stats`) when Prometheus scrapes, by a custom collector: the watch's hot
path increments plain ints, never a labelled prometheus_client metric.

`metrics_registry` puts them together with prometheus-client's own process, platform and GC
collectors (`process_*`, `python_*`) and `podwatch_relay_build_info`.

* `/healthz` is 200 while every watcher made progress (a line, bookmarks included, or a list)
  within `stall_seconds`, else 503: a watch that is silently stuck gets the pod restarted. Its
  body names the watchers restarted after unexpected errors (`restarted`: count, in a row, last
  error); one restarted `RESTARTS_UNHEALTHY` times in a row without a line handled well between
  (`failing`) makes it 503 too.
* `/readyz` is 200 once every watcher finished its first list (initial sync), else 503; its body
  names the watchers still waiting. Every watcher the relay runs counts, custom resources' too
  (a kind whose CRD appears at run time makes the relay unready until that kind's first list).
* A watcher of the history's kinds (`optional`) that the API server refuses (403: RBAC does not
  grant its group) holds neither probe: it is named under `forbidden` and retried with backoff.
  The history is a side path; a group the RBAC forgot must not stop the pods' notifications
  (an unready relay never stands for election, an unhealthy one is restarted).
"""

from __future__ import annotations

import json
import logging
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from podwatch_relay import __version__
from podwatch_relay.checkpoint import CheckpointStats, written_age
from podwatch_relay.outbox import Outbox
from podwatch_relay.pipeline import Relay

log = logging.getLogger("podwatch_relay.ops")

PREFIX = "podwatch_relay"
#: a watcher restarted this many times in a row after unexpected errors, with no line handled
#: well in between, is not healing itself: /healthz fails so Kubernetes restarts the pod
RESTARTS_UNHEALTHY = 3


@dataclass(eq=False)
class RelayCollector(Collector):
    """Every relay metric, read from the live objects at scrape time."""

    relay: Relay
    watchers: Callable[[], Iterable[Any]]
    outbox: Outbox | None = None
    sink_stats: Any = None
    checkpoint: CheckpointStats | None = None
    #: the `ObjectRelay`s of the other kinds (issue 19), each with `spec.kind`, `stats`, `len()`
    objects: Callable[[], Iterable[Any]] | None = None

    def _objects(self) -> Iterator[Any]:
        """Records of other kinds by kind and outcome, and how many objects each kind tracks."""
        outcomes = CounterMetricFamily(
            f"{PREFIX}_objects",
            "Watch events of other kinds (history records) by kind and outcome",
            labels=["kind", "outcome"],
        )
        tracked = GaugeMetricFamily(
            f"{PREFIX}_objects_tracked",
            "Objects of other kinds the relay knows (a digest each)",
            labels=["kind"],
        )
        for relay in self.objects() if self.objects is not None else ():
            for outcome, count in sorted(relay.stats.outcomes.items()):
                outcomes.add_metric([relay.spec.kind, outcome], count)
            tracked.add_metric([relay.spec.kind], len(relay))
        yield outcomes
        yield tracked

    def collect(self) -> Iterator[Any]:
        yield from self._objects()
        s = self.relay.stats
        seen = CounterMetricFamily(
            f"{PREFIX}_watch_events",
            "Watch events seen, by object kind and watch type",
            labels=["kind", "type"],
        )
        for key, count in sorted(s.seen.items()):
            kind, _, watch_type = key.partition("/")
            seen.add_metric([kind, watch_type], count)
        yield seen
        reasons = CounterMetricFamily(
            f"{PREFIX}_k8s_events",
            "core/v1 Events about pods seen, by Event type and reason",
            labels=["type", "reason"],
        )
        for key, count in sorted(s.event_reasons.items()):
            event_type, _, reason = key.partition("/")
            reasons.add_metric([event_type, reason], count)
        yield reasons
        yield CounterMetricFamily(
            f"{PREFIX}_forwarded", "Envelopes forwarded (queued for SQS)", value=s.forwarded
        )
        yield CounterMetricFamily(
            f"{PREFIX}_suppressed", "Pod/Event updates that changed nothing that matters", value=s.suppressed
        )
        yield CounterMetricFamily(
            f"{PREFIX}_overdue",
            "Waiting pods forwarded again when their threshold passed, with no watch line",
            value=s.overdue,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_synthetic_deleted",
            "DELETED sent for pods gone while not watched (relist) or replaced under their name",
            value=s.synthetic_deleted,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_trimmed",
            "Envelopes over the SQS message limit, trimmed to fit (messages, then containers)",
            value=s.trimmed,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_oversize",
            "Envelopes that could not be trimmed to fit, sent as an oversize stub (quarantined downstream)",
            value=s.oversize,
        )
        outcomes = CounterMetricFamily(
            f"{PREFIX}_outcomes", "Every input by outcome label", labels=["outcome"]
        )
        for outcome, count in sorted(s.outcomes.items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        dropped = CounterMetricFamily(
            f"{PREFIX}_dropped", "Input or envelopes given up on, by reason", labels=["reason"]
        )
        drops: dict[str, int] = {}
        for outcome, count in s.outcomes.items():
            if outcome.startswith("malformed:"):
                drops[outcome.replace(":", "_", 1)] = drops.get(outcome, 0) + count
        for reason, count in s.dropped_reasons.items():
            drops[reason] = drops.get(reason, 0) + count
        if self.outbox is not None:
            for reason, count in self.outbox.stats.dropped_reasons.items():
                drops[reason] = drops.get(reason, 0) + count
        for reason, count in sorted(drops.items()):
            dropped.add_metric([reason], count)
        yield dropped
        if self.outbox is not None:
            o = self.outbox.stats
            yield GaugeMetricFamily(
                f"{PREFIX}_queue_depth", "Envelopes buffered in memory", value=self.outbox.depth
            )
            yield GaugeMetricFamily(
                f"{PREFIX}_spool_depth",
                "Envelopes spooled to disk, not yet sent",
                value=self.outbox.spool_depth,
            )
            yield CounterMetricFamily(f"{PREFIX}_sent", "Envelopes SQS accepted", value=o.sent)
            yield CounterMetricFamily(f"{PREFIX}_spooled", "Envelopes written to the spool", value=o.spooled)
            yield CounterMetricFamily(
                f"{PREFIX}_backpressure_waits",
                "Times a watch waited for room in the buffer",
                value=o.backpressure_waits,
            )
        failures = CounterMetricFamily(
            f"{PREFIX}_sqs_send_failures", "SendMessageBatch calls that did not get every entry accepted"
        )
        failures.add_metric([], getattr(self.sink_stats, "failed_calls", 0))
        yield failures
        if self.checkpoint is not None:
            yield from _checkpoint_metrics(self.checkpoint)
        restarts = CounterMetricFamily(
            f"{PREFIX}_watch_restarts",
            "Watches restarted (relisted) after an unexpected error in their loop",
            labels=["scope"],
        )
        initial = CounterMetricFamily(
            f"{PREFIX}_initial_sync_forwarded",
            "Envelopes the (re)lists forwarded: pods new or changed since what the relay knew, pods gone",
            labels=["scope"],
        )
        reconnects = CounterMetricFamily(f"{PREFIX}_reconnects", "Watch reconnects", labels=["scope"])
        relists = CounterMetricFamily(f"{PREFIX}_relists", "Relists after 410 Gone", labels=["scope"])
        lag = GaugeMetricFamily(
            f"{PREFIX}_watch_lag_seconds",
            "Seconds since the watch last received anything (event or bookmark) or listed",
            labels=["scope"],
        )
        now = time.monotonic()
        for watcher in self.watchers():
            restarts.add_metric([watcher.scope], watcher.stats.restarts)
            reconnects.add_metric([watcher.scope], watcher.stats.reconnects)
            relists.add_metric([watcher.scope], watcher.stats.relists)
            lag.add_metric([watcher.scope], max(0.0, now - watcher.stats.last_progress))
            initial.add_metric([watcher.scope], watcher.stats.initial_forwarded)
        yield restarts
        yield initial
        yield reconnects
        yield relists
        yield lag


def _checkpoint_metrics(stats: CheckpointStats) -> Iterator[Any]:
    yield CounterMetricFamily(f"{PREFIX}_checkpoints_written", "Checkpoints written", value=stats.written)
    yield CounterMetricFamily(
        f"{PREFIX}_checkpoint_failures", "Checkpoints that could not be written", value=stats.failed
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_checkpoint_pods", "Pods in the last checkpoint written", value=stats.pods
    )
    age = written_age(stats)
    if age is not None:
        yield GaugeMetricFamily(
            f"{PREFIX}_checkpoint_age_seconds", "Seconds since the last checkpoint was written", value=age
        )
    yield GaugeMetricFamily(
        f"{PREFIX}_checkpoint_restored_pods",
        "Pods known from the checkpoint loaded at start (the first list diffed against them)",
        value=stats.restored_pods,
    )


def metrics_registry(*collectors: Collector) -> CollectorRegistry:
    """The registry `/metrics` serves: `collectors` (the relay's, the election's), the process,
    platform and GC collectors, and `podwatch_relay_build_info` (version, Python, client)."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Info(
        f"{PREFIX}_build", "The relay's version, its Python and its Kubernetes client", registry=registry
    ).info(
        {
            "version": __version__,
            "python": platform.python_version(),
            "kubernetes_client": metadata.version("kubernetes"),
        }
    )
    return registry


class Health:
    """`/healthz` and `/readyz` answers, from the current watchers (`optional`: those of the
    history's kinds, a subset; see the module docstring)."""

    def __init__(
        self,
        *,
        watchers: Callable[[], Iterable[Any]],
        stall_seconds: float,
        optional: Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        self.watchers = watchers
        self.stall_seconds = stall_seconds
        self.optional = optional

    def _counted(self) -> tuple[list[Any], list[str]]:
        """The watchers that hold the probes, and the scopes of the optional ones refused (403)."""
        refused = {id(w): w.scope for w in self.optional() if w.stats.forbidden} if self.optional else {}
        return [w for w in self.watchers() if id(w) not in refused], sorted(refused.values())

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        watchers, forbidden = self._counted()
        stalled = {
            w.scope: round(now - w.stats.last_progress, 1)
            for w in watchers
            if now - w.stats.last_progress > self.stall_seconds
        }
        restarted = {
            w.scope: {
                "restarts": w.stats.restarts,
                "in_a_row": w.stats.restarts_in_a_row,
                "last_error": w.stats.last_error,
            }
            for w in watchers
            if w.stats.restarts
        }
        failing = [s for s, r in restarted.items() if r["in_a_row"] >= RESTARTS_UNHEALTHY]
        ok = not stalled and not failing
        return ok, {
            "stalled": stalled,
            "bound_seconds": self.stall_seconds,
            "restarted": restarted,
            "failing": failing,
            "forbidden": forbidden,
        }

    def readyz(self) -> tuple[bool, dict[str, Any]]:
        watchers, forbidden = self._counted()
        waiting = [w.scope for w in watchers if not w.synced.is_set()]
        ready = bool(watchers) and not waiting
        return ready, {"waiting_for_initial_sync": waiting, "forbidden": forbidden}


class OpsServer:
    """The HTTP server of `/metrics`, `/healthz`, `/readyz` (a daemon thread)."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        health: Health,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104  # scraped and probed from outside the pod
    ) -> None:
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(ops.registry), CONTENT_TYPE_LATEST)
                elif path in {"/healthz", "/readyz"}:
                    ok, detail = ops.health.healthz() if path == "/healthz" else ops.health.readyz()
                    body = json.dumps({"ok": ok, **detail}).encode()
                    self._send(200 if ok else 503, body, "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.registry = registry
        self.health = health
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> OpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
