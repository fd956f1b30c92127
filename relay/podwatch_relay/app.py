"""The relay's command line.

    python -m podwatch_relay replay FILE [--queue-url URL | --output FILE] [--cluster-id ID]
    python -m podwatch_relay watch [--kubeconfig PATH] [--context NAME] [--queue-url URL] [--cluster-id ID]

Settings come from `PODWATCH_*` environment variables (`RelaySettings`); flags override them.
Logs are JSON lines on stderr; `replay` prints its stats as one JSON object on stdout.
Exit codes: 0 done, 1 the sink gave up (envelopes not sent), 2 bad usage or settings, 3 leadership
lost (`PODWATCH_LEADER_ELECTION`: Kubernetes restarts the container, which comes back as a standby).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration, CoreV1Api
from pydantic import ValidationError

from podwatch.models import utcnow
from podwatch_relay import __version__
from podwatch_relay.checkpoint import Checkpointer
from podwatch_relay.deadlines import Deadlines, look_again_periodically
from podwatch_relay.errors import SinkRejected, SinkUnavailable
from podwatch_relay.kinds import KindSpec
from podwatch_relay.leader import LeaderCollector, LeaderElector, StandbyGate, election_from_settings
from podwatch_relay.objects import ObjectRelay
from podwatch_relay.objectwatch import ObjectGroup, start_objects
from podwatch_relay.ops import Health, OpsServer, RelayCollector, metrics_registry
from podwatch_relay.outbox import Outbox
from podwatch_relay.pipeline import Relay
from podwatch_relay.replay import RecordedClock, replay_file
from podwatch_relay.settings import RelaySettings
from podwatch_relay.sink import FileSink, Progress, Sink, SqsSink, make_sqs_client
from podwatch_relay.watch import (
    OTHER_EVENTS,
    ListWatcher,
    NamespaceScopes,
    WatchGroup,
    kube_system_uid,
    namespaces_matching,
    server_version,
)

log = logging.getLogger("podwatch_relay")

#: LogRecord attributes that are not `extra=` fields.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, every `extra=` field, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The kubernetes client and urllib3 are chatty at DEBUG and log headers (tokens) there.
    for noisy in ("kubernetes", "urllib3", "botocore", "boto3"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m podwatch_relay", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--queue-url", help="pod-events queue (default: PODWATCH_QUEUE_URL)")
        p.add_argument("--cluster-id", help="cluster id (default: PODWATCH_CLUSTER_ID, see README)")
        p.add_argument("--region", help="AWS region of the queue (default: from the environment)")

    replay = sub.add_parser("replay", help="replay a file of watch events (JSON lines)")
    replay.add_argument("file", help="JSON lines, one API-server watch event per line")
    replay.add_argument("--output", help="append envelopes to this file (JSON lines) instead of SQS")
    replay.add_argument("--no-enroll", action="store_true", help="do not send the enroll message first")
    replay.add_argument(
        "--recorded-time",
        action="store_true",
        help="stamp observed_at with the recording's time (the latest timestamp of the lines so far),"
        " not the wall clock, so a recording replayed later classifies as it did then",
    )
    common(replay)

    watch = sub.add_parser("watch", help="list and watch pods and pod Events of a cluster")
    watch.add_argument(
        "--kubeconfig", help="kubeconfig file (default: in-cluster config, else ~/.kube/config)"
    )
    watch.add_argument("--context", help="kubeconfig context")
    common(watch)
    return parser


def load_settings(args: argparse.Namespace) -> RelaySettings:
    overrides = {k: v for k, v in {"queue_url": args.queue_url, "cluster_id": args.cluster_id}.items() if v}
    return RelaySettings(**overrides)


def make_sink(settings: RelaySettings, *, region: str | None, output: str | None = None) -> Sink:
    if output:
        return FileSink(path=output)
    if not settings.queue_url:
        raise SystemExit("no queue: set PODWATCH_QUEUE_URL or --queue-url (replay also takes --output FILE)")
    client = make_sqs_client(
        connect_timeout=settings.sqs_connect_timeout_seconds,
        read_timeout=settings.sqs_read_timeout_seconds,
        region=region,
    )
    return SqsSink(
        client=client,
        queue_url=settings.queue_url,
        max_batch=settings.sqs_batch_size,
        max_batch_bytes=settings.sqs_max_batch_bytes,
        max_attempts=settings.sqs_max_attempts,
        backoff_seconds=settings.sqs_backoff_seconds,
        backoff_max_seconds=settings.sqs_backoff_max_seconds,
    )


def make_relay(
    settings: RelaySettings, *, sink: Sink, cluster_id: str, clock: Callable[[], datetime] = utcnow
) -> Relay:
    return Relay(
        sink=sink,
        cluster_id=cluster_id,
        relay_version=__version__,
        initial_sync_mode=settings.initial_sync_mode,
        batch_size=settings.sqs_batch_size,
        namespaces=settings.namespaces,
        clock=clock,
        label_keys=settings.label_key_list,
    )


def run_replay(args: argparse.Namespace, settings: RelaySettings) -> int:
    clock = RecordedClock() if args.recorded_time else None
    relay = make_relay(
        settings,
        sink=make_sink(settings, region=args.region, output=args.output),
        cluster_id=settings.cluster_id or "local",
        clock=clock or utcnow,
    )
    try:
        if not args.no_enroll:
            relay.enroll()
        stats = replay_file(args.file, relay, clock=clock)
    except (SinkUnavailable, SinkRejected) as exc:
        log.exception("replay stopped: the sink gave up", extra={"error": str(exc), "unsent": relay.pending})
        print(json.dumps(relay.stats.to_dict() | {"unsent": relay.pending}))
        return 1
    print(json.dumps(stats.to_dict()))
    return 0


def kube_api_client(*, kubeconfig: str | None, context: str | None) -> ApiClient:
    """In-cluster config when running in a pod (and no kubeconfig given), else the kubeconfig."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = Configuration()
        kube_config.load_incluster_config(client_configuration=configuration)
        return ApiClient(configuration)
    client: ApiClient = kube_config.new_client_from_config(config_file=kubeconfig, context=context)
    return client


def _watcher_factory(settings: RelaySettings) -> Callable[..., ListWatcher]:
    return functools.partial(
        ListWatcher,
        request_timeout=settings.request_timeout_seconds,
        watch_timeout=settings.watch_timeout_seconds,
        inactivity_timeout=settings.inactivity_timeout_seconds,
        page_size=settings.list_page_size,
        backoff_seconds=settings.reconnect_backoff_seconds,
        backoff_max_seconds=settings.reconnect_backoff_max_seconds,
    )


def send_heartbeats(
    relay: Relay,
    stop: threading.Event,
    interval: float,
    started_at: datetime,
    active: Callable[[], bool] | None = None,
) -> None:
    """A HeartbeatEnvelope every `interval` until `stop` (sequence 1, 2, ...), only while `active()`
    (the leader's: a standby is not the relay the cloud side hears from)."""
    sequence = 0
    while not stop.wait(interval):
        if active is not None and not active():
            continue
        sequence += 1
        try:
            relay.heartbeat(sequence=sequence, started_at=started_at)
        except (SinkUnavailable, SinkRejected):
            log.exception("heartbeat not sent")


def _take_over(gate: StandbyGate, relay: Relay, kubernetes_version: str | None) -> None:
    """This replica just became leader: forward what it held, then enroll (once per leadership)."""
    gate.take_over()
    relay.enroll(kubernetes_version=kubernetes_version)


def _restore_checkpoint(settings: RelaySettings, relay: Relay, progress: Progress) -> Checkpointer | None:
    """The checkpointer of this pod (None without a spool or checkpoint directory), with the newest
    checkpoint loaded into `relay`: the first list then reports what happened while none ran."""
    directory = settings.checkpoint_path
    if directory is None:
        return None
    checkpointer = Checkpointer(
        relay=relay,
        progress=progress,
        directory=directory,
        owner=socket.gethostname(),
        interval=settings.checkpoint_interval_seconds,
    )
    # In selector mode the namespaces are not known yet: the namespace watch forgets the others.
    checkpointer.restore(namespaces=settings.namespace_list)
    return checkpointer


def _object_watchers(
    settings: RelaySettings,
    relay: Relay,
    group: WatchGroup,
    *,
    api: CoreV1Api,
    stop: threading.Event,
    factory: Callable[..., ListWatcher],
    checkpointer: Checkpointer | None,
    namespace_watcher: ListWatcher | None,
) -> tuple[ObjectGroup, ListWatcher | None]:
    """The watchers of the configured kinds (started) and of CRDs (to start), into the relay's sink,
    each kind knowing from its start what the checkpoint knew of it. In selector mode namespaced
    kinds list once the namespace watch listed: before, every namespace looks unselected."""
    selected = None
    if settings.namespace_selector is not None:
        selected = lambda namespace: namespace in group.namespaces  # noqa: E731  # label mode only

    def make_relay(spec: KindSpec) -> ObjectRelay:
        made = ObjectRelay(
            spec=spec,
            sink=relay.sink,
            cluster_id=relay.cluster_id,
            relay_version=__version__,
            allowlist=relay.allowlist,
            namespace_filter=selected,
            initial_sync_mode=settings.initial_sync_mode,
        )
        if checkpointer is not None:
            checkpointer.restore_objects(spec.resource, made)
        return made

    found = start_objects(
        kinds=settings.kind_specs,
        patterns=settings.group_patterns,
        hooks=settings.watch_hooks,
        api=api,
        stop=stop,
        factory=factory,
        make_relay=make_relay,
        namespaces=settings.namespace_list,
        after=None if namespace_watcher is None else namespace_watcher.synced,
    )
    if checkpointer is not None:
        checkpointer.objects = found[0].by_resource
    return found


@dataclasses.dataclass(slots=True)
class _Running:
    """The parts of a running `watch`, as `_start` built them, for `_shut_down`."""

    stop: threading.Event
    outbox: Outbox
    relay: Relay
    elector: LeaderElector | None
    gate: StandbyGate | None
    checkpointer: Checkpointer | None
    group: WatchGroup
    objects: ObjectGroup
    #: /metrics and the probes (None until `_start` serves them)
    ops: OpsServer | None = None


def run_watch(
    args: argparse.Namespace, settings: RelaySettings, *, stop: threading.Event | None = None
) -> int:
    """List and watch until SIGTERM/SIGINT (or `stop`), then drain within the grace period.
    Exit 0 when nothing was lost (sent, or spooled for the next start), 1 otherwise, 3 when
    leadership was lost."""
    running = _start(args, settings, stop or threading.Event())
    while not running.stop.wait(1.0):
        if not running.group.alive():
            log.error("every watcher stopped")
            running.stop.set()
    return _shut_down(running, settings)


def _outbox(settings: RelaySettings, sink: Sink) -> Outbox:
    """The started outbox in front of the SQS sink (bounded buffer, spool, retries)."""
    return Outbox(
        sink=sink,
        capacity=settings.buffer_size,
        batch_size=settings.sqs_batch_size,
        flush_interval=settings.flush_interval_seconds,
        backpressure_timeout=settings.backpressure_timeout_seconds,
        spool_dir=settings.spool_dir,
        spool_max_bytes=settings.spool_max_bytes,
        # the pod name: replicas sharing a spool volume each write their own directory
        spool_owner=socket.gethostname(),
        retry_seconds=settings.sqs_backoff_seconds,
        retry_max_seconds=settings.reconnect_backoff_max_seconds,
    ).start()


def _relay(settings: RelaySettings, *, cluster_id: str, sink: Sink) -> Relay:
    """The pod relay as `watch` runs it."""
    # batch_size=1: every envelope goes straight to the outbox, which batches for SQS itself.
    return Relay(
        sink=sink,
        cluster_id=cluster_id,
        relay_version=__version__,
        initial_sync_mode=settings.initial_sync_mode,
        batch_size=1,
        namespaces=(settings.namespace_selector and f"selector:{settings.namespace_selector}")
        or settings.namespaces,
        deadlines=Deadlines(
            pending_seconds=settings.pending_too_long_seconds,
            not_ready_seconds=settings.not_ready_too_long_seconds,
        ),
        label_keys=settings.label_key_list,
        event_kinds=settings.event_kinds,
    )


def _start(args: argparse.Namespace, settings: RelaySettings, stop: threading.Event) -> _Running:
    """Connect, restore the checkpoint, enroll (or stand for election), serve /metrics and the
    probes, and start every watcher and background thread."""
    started_at = datetime.now(UTC)
    api_client = kube_api_client(kubeconfig=args.kubeconfig, context=args.context)
    api = CoreV1Api(api_client)
    cluster_id = settings.cluster_id or kube_system_uid(api, request_timeout=settings.request_timeout_seconds)
    sqs = make_sink(settings, region=args.region)
    outbox = _outbox(settings, sqs)
    elector: LeaderElector | None = None
    gate: StandbyGate | None = None
    if settings.leader_election:
        # A standby lists, watches and tracks like the leader; the gate holds what it would send.
        elector, gate = election_from_settings(
            settings,
            api_client,
            sink=outbox,
            kubeconfig=args.kubeconfig,
            context=args.context,
            progress=outbox,
        )
    relay = _relay(settings, cluster_id=cluster_id, sink=gate or outbox)
    checkpointer = _restore_checkpoint(settings, relay, gate or outbox)
    kubernetes_version = server_version(api_client, request_timeout=settings.request_timeout_seconds)
    if elector is None or gate is None:
        relay.enroll(kubernetes_version=kubernetes_version)
    else:
        elector.on_started_leading = functools.partial(_take_over, gate, relay, kubernetes_version)
        elector.on_stopped_leading = lambda _reason: stop.set()
    factory = _watcher_factory(settings)
    group = WatchGroup(api=api, relay=relay, stop=stop, factory=factory)
    selection = _namespace_watcher(settings, group, api=api, factory=factory)
    namespace_watcher = None if selection is None else selection[0]
    objects, crd_watcher = _object_watchers(
        settings,
        relay,
        group,
        api=api,
        stop=stop,
        factory=factory,
        checkpointer=checkpointer,
        namespace_watcher=namespace_watcher,
    )
    if selection is not None:
        selection[1].follows = objects  # the other kinds follow the selection (relist, forget)
    running = _Running(stop, outbox, relay, elector, gate, checkpointer, group, objects)
    running.ops = ops = _serve_ops(settings, running, sink_stats=getattr(sqs, "stats", None))
    _on_signals(stop)
    if elector is not None:
        # The first look at the lease comes before any watch: the standby's hold window starts
        # there. The lease is taken only after the initial list (`eligible`).
        elector.step()
        elector.start(stop)
    if checkpointer is not None:
        threading.Thread(target=checkpointer.run, args=(stop,), name="checkpoint", daemon=True).start()
    _start_watchers(
        settings,
        group,
        api=api,
        relay=relay,
        factory=factory,
        crd_watcher=crd_watcher,
        namespace_watcher=namespace_watcher,
    )
    _start_timers(settings, relay, stop, started_at=started_at, elector=elector)
    log.info(
        "watching",
        extra={
            "cluster_id": cluster_id,
            "scopes": [w.scope for w in group.watchers()],
            "http_port": ops.port,
            "leader_election": None
            if elector is None
            else {"lease": f"{elector.namespace}/{elector.name}", "identity": elector.identity},
        },
    )
    return running


def _serve_ops(settings: RelaySettings, running: _Running, *, sink_stats: Any) -> OpsServer:
    """/metrics, /healthz and /readyz of the running parts (started)."""
    group, objects, elector, gate = running.group, running.objects, running.elector, running.gate
    collector = RelayCollector(
        relay=running.relay,
        watchers=lambda: [*group.watchers(), *objects.watchers()],
        outbox=running.outbox,
        sink_stats=sink_stats,
        checkpoint=None if running.checkpointer is None else running.checkpointer.stats,
        objects=objects.relays,
    )
    registry = metrics_registry(
        collector, *([LeaderCollector(elector=elector, gate=gate)] if elector and gate else [])
    )
    # Every watcher counts; one of the history's kinds refused by RBAC holds no probe (ops.py).
    health = Health(
        watchers=lambda: [*group.watchers(), *objects.watchers()],
        stall_seconds=settings.health_stall_seconds,
        optional=objects.watchers,
    )
    if elector is not None:
        # Only a replica that finished its initial list (and so can diff) stands for election.
        elector.eligible = lambda: health.readyz()[0]
    return OpsServer(registry=registry, health=health, port=settings.http_port).start()


def _on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop` (only the main thread can install handlers)."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


def _start_watchers(
    settings: RelaySettings,
    group: WatchGroup,
    *,
    api: CoreV1Api,
    relay: Relay,
    factory: Callable[..., ListWatcher],
    crd_watcher: ListWatcher | None,
    namespace_watcher: ListWatcher | None,
) -> None:
    """The pod and Event watchers of every namespace scope (or the namespace watch that starts
    them, in selector mode), the CRD watcher, and the watchers of Events about other kinds."""
    stop = group.stop
    if namespace_watcher is not None:
        group.add_watcher(namespace_watcher)
    else:
        for namespace in settings.namespace_list or (None,):
            group.start_scope(namespace)
    if crd_watcher is not None:
        group.add_watcher(crd_watcher)
    if len(settings.event_kinds) > 1 and settings.namespace_selector is None:
        # Events about the other kinds (Nodes' live in `default`): for the history, not classified
        for namespace in settings.namespace_list or (None,):
            group.add_watcher(
                factory(api=api, relay=relay, resource=OTHER_EVENTS, namespace=namespace, stop=stop)
            )


def _namespace_watcher(
    settings: RelaySettings, group: WatchGroup, *, api: CoreV1Api, factory: Callable[..., ListWatcher]
) -> tuple[ListWatcher, NamespaceScopes] | None:
    """The watch of the namespaces the label selector selects (None without one), not started,
    with its consumer."""
    if settings.namespace_selector is None:
        return None
    resource = namespaces_matching(settings.namespace_selector)
    scopes = NamespaceScopes(group)
    return factory(api=api, relay=scopes, resource=resource, namespace=None, stop=group.stop), scopes


def _start_timers(
    settings: RelaySettings,
    relay: Relay,
    stop: threading.Event,
    *,
    started_at: datetime,
    elector: LeaderElector | None,
) -> None:
    """The heartbeat and the look at waiting pods, each on its own thread until `stop`."""
    threading.Thread(
        target=send_heartbeats,
        args=(relay, stop, settings.heartbeat_interval_seconds, started_at),
        kwargs={"active": elector.is_leader if elector is not None else None},
        name="heartbeat",
        daemon=True,
    ).start()
    threading.Thread(
        target=look_again_periodically,
        args=(relay.look_again, stop, settings.look_again_interval_seconds),
        name="look-again",
        daemon=True,
    ).start()


def _shut_down(running: _Running, settings: RelaySettings) -> int:
    """Stop watching, drain within the grace period, checkpoint, release the lease; the exit code."""
    elector, outbox, relay, checkpointer = (
        running.elector,
        running.outbox,
        running.relay,
        running.checkpointer,
    )
    deadline = time.monotonic() + settings.shutdown_grace_seconds
    if elector is not None:
        # No renewal after this point, before the watch stops forwarding: a standby's hold window
        # (from the last renewal it saw) then covers everything this process did not send.
        elector.join(timeout=min(settings.request_timeout_seconds, settings.shutdown_grace_seconds / 4))
    running.group.stop_all(join=min(2.0, settings.shutdown_grace_seconds / 4))
    running.objects.stop_all()
    try:
        relay.flush()
        running.objects.flush()
    except (SinkUnavailable, SinkRejected):
        log.exception("could not hand the last envelopes to the outbox")
    drained = outbox.close(timeout=max(0.0, deadline - time.monotonic()))
    if checkpointer is not None and not outbox.stats.dropped_reasons.get("shutdown"):
        # What was forwarded last, now that it is all sent or spooled (never past a loss).
        checkpointer.final(timeout=min(2.0, max(0.0, deadline - time.monotonic())))
    if elector is not None:
        elector.release()  # after the drain: a standby takes over at its next attempt
    if running.ops is not None:
        running.ops.stop()
    log.info(
        "stopped",
        extra={
            "drained": drained,
            "stats": relay.stats.to_dict(),
            "outbox": dataclasses.asdict(outbox.stats),
            "leader": None if elector is None else dataclasses.asdict(elector.stats),
            "standby": None if running.gate is None else dataclasses.asdict(running.gate.stats),
            "checkpoint": None if checkpointer is None else dataclasses.asdict(checkpointer.stats),
        },
    )
    if elector is not None and elector.lost.is_set():
        return 3
    return 0 if outbox.stats.dropped_reasons.get("shutdown", 0) == 0 and relay.pending == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    if args.command == "replay":
        return run_replay(args, settings)
    return run_watch(args, settings)
