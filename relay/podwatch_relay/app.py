"""The relay's command line.

    python -m podwatch_relay replay FILE [--queue-url URL | --output FILE] [--cluster-id ID]
    python -m podwatch_relay watch [--kubeconfig PATH] [--context NAME] [--queue-url URL] [--cluster-id ID]

Settings come from `PODWATCH_*` environment variables (`RelaySettings`); flags override them.
Logs are JSON lines on stderr; `replay` prints its stats as one JSON object on stdout.
Exit codes: 0 done, 1 the sink gave up (envelopes not sent), 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration, CoreV1Api
from pydantic import ValidationError

from podwatch_relay import __version__
from podwatch_relay.errors import SinkRejected, SinkUnavailable
from podwatch_relay.pipeline import Relay
from podwatch_relay.replay import replay_file
from podwatch_relay.settings import RelaySettings
from podwatch_relay.sink import FileSink, Sink, SqsSink, make_sqs_client
from podwatch_relay.watch import (
    POD_EVENTS,
    PODS,
    ListWatcher,
    flush_periodically,
    kube_system_uid,
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


def make_relay(settings: RelaySettings, *, sink: Sink, cluster_id: str) -> Relay:
    return Relay(
        sink=sink,
        cluster_id=cluster_id,
        relay_version=__version__,
        initial_sync_mode=settings.initial_sync_mode,
        batch_size=settings.sqs_batch_size,
        namespaces=settings.namespaces,
    )


def run_replay(args: argparse.Namespace, settings: RelaySettings) -> int:
    relay = make_relay(
        settings,
        sink=make_sink(settings, region=args.region, output=args.output),
        cluster_id=settings.cluster_id or "local",
    )
    try:
        if not args.no_enroll:
            relay.enroll()
        stats = replay_file(args.file, relay)
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
    return kube_config.new_client_from_config(config_file=kubeconfig, context=context)


def run_watch(
    args: argparse.Namespace, settings: RelaySettings, *, stop: threading.Event | None = None
) -> int:
    stop = stop or threading.Event()
    api_client = kube_api_client(kubeconfig=args.kubeconfig, context=args.context)
    api = CoreV1Api(api_client)
    cluster_id = settings.cluster_id or kube_system_uid(api, request_timeout=settings.request_timeout_seconds)
    relay = make_relay(settings, sink=make_sink(settings, region=args.region), cluster_id=cluster_id)
    relay.enroll(
        kubernetes_version=server_version(api_client, request_timeout=settings.request_timeout_seconds)
    )
    watchers = [
        ListWatcher(
            api=api,
            relay=relay,
            resource=resource,
            namespace=namespace,
            stop=stop,
            request_timeout=settings.request_timeout_seconds,
            watch_timeout=settings.watch_timeout_seconds,
            inactivity_timeout=settings.inactivity_timeout_seconds,
            page_size=settings.list_page_size,
            backoff_seconds=settings.reconnect_backoff_seconds,
            backoff_max_seconds=settings.reconnect_backoff_max_seconds,
        )
        for namespace in (settings.namespace_list or (None,))
        for resource in (PODS, POD_EVENTS)
    ]

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()
        for watcher in watchers:
            watcher.interrupt()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    threads = [threading.Thread(target=w.run, name=w.scope, daemon=True) for w in watchers]
    for thread in threads:
        thread.start()
    log.info("watching", extra={"cluster_id": cluster_id, "scopes": [w.scope for w in watchers]})
    flusher = threading.Thread(
        target=flush_periodically,
        args=(relay, stop, settings.flush_interval_seconds),
        name="flusher",
        daemon=True,
    )
    flusher.start()
    while not stop.wait(1.0):
        if not any(t.is_alive() for t in threads):
            log.error("every watcher stopped")
            stop.set()
    for thread in threads:
        thread.join(timeout=settings.request_timeout_seconds)
    try:
        relay.flush()
    except (SinkUnavailable, SinkRejected) as exc:
        log.exception("exit with unsent envelopes", extra={"error": str(exc), "unsent": relay.pending})
        return 1
    log.info("stopped", extra={"stats": relay.stats.to_dict()})
    return 0


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
