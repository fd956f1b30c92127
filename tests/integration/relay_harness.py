"""The relay under test in-process, against the fake API server (tests/fakeapi) through the real
`kubernetes` client, into SQS: `Harness`, one relay with a pods watcher and a pod-events watcher
built by hand; `running_relay`, the whole relay as `python -m podwatch_relay watch` runs it
(`run_watch`) in a thread. Shared by the relay integration tests; their fixtures are in conftest.py."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes.client import CoreV1Api

from podwatch.models import PodEnvelope
from podwatch.wire import AnyEnvelope, parse_envelope
from podwatch_relay.app import build_parser, run_watch
from podwatch_relay.deadlines import Deadlines, look_again_periodically
from podwatch_relay.pipeline import Relay
from podwatch_relay.settings import RelaySettings
from podwatch_relay.sink import SqsSink
from podwatch_relay.watch import POD_EVENTS, PODS, ListWatcher, flush_periodically
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.pods import CANARY, container_status
from tests.queues import drain_bodies

#: `running_relay`'s settings unless a test gives its own: short timeouts, quick flushes and retries
FAST_SETTINGS: dict[str, Any] = {
    "http_port": 0,
    "flush_interval_seconds": 0.05,
    "inactivity_timeout_seconds": 5,
    "watch_timeout_seconds": 3,
    "reconnect_backoff_seconds": 0.05,
    "reconnect_backoff_max_seconds": 0.3,
}


def wait_for(predicate: Callable[[], Any], *, timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Harness:
    """One relay with a pods watcher and a pod-events watcher, a flusher, and the queue's contents."""

    def __init__(
        self,
        *,
        api: CoreV1Api,
        sqs: Any,
        queue_url: str,
        inactivity_timeout: float = 3.0,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.relay = Relay(
            sink=SqsSink(client=sqs, queue_url=queue_url),
            cluster_id="c1",
            relay_version="t",
            deadlines=deadlines,
        )
        self.stop = threading.Event()
        self.outcomes: dict[str, list[str]] = {"pods": [], "events": []}
        self.received: list[AnyEnvelope] = []
        self.watchers = {
            resource.plural: ListWatcher(
                api=api,
                relay=self.relay,
                resource=resource,
                namespace=None,
                stop=self.stop,
                request_timeout=5,
                watch_timeout=5,
                inactivity_timeout=inactivity_timeout,
                backoff_seconds=0.05,
                backoff_max_seconds=0.2,
                on_line=self.outcomes[resource.plural].append,
            )
            for resource in (PODS, POD_EVENTS)
        }
        self.threads = [threading.Thread(target=w.run, daemon=True) for w in self.watchers.values()]
        self.threads.append(
            threading.Thread(target=flush_periodically, args=(self.relay, self.stop, 0.05), daemon=True)
        )
        if deadlines is not None:
            self.threads.append(
                threading.Thread(
                    target=look_again_periodically, args=(self.relay.look_again, self.stop, 0.05), daemon=True
                )
            )

    def start(self) -> Harness:
        for thread in self.threads:
            thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        for watcher in self.watchers.values():
            watcher.interrupt()
        for thread in self.threads:
            thread.join(timeout=5)
        assert not any(t.is_alive() for t in self.threads), "a watcher did not stop"

    def poll(self) -> list[AnyEnvelope]:
        """Everything the queue received so far (drained and remembered)."""
        self.received += [parse_envelope(body) for body in drain_bodies(self.sqs, self.queue_url)]
        return self.received

    def pods(self, name: str) -> list[PodEnvelope]:
        return [e for e in self.poll() if isinstance(e, PodEnvelope) and e.payload.name == name]


class Sent:
    """What a running relay's queue received so far: drained on each look and remembered, every
    body read by the wire contract (the models) as it is taken, or the look fails."""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs, self.url = sqs, url
        self._envelopes: list[AnyEnvelope] = []
        self._bodies: list[dict[str, Any]] = []

    def envelopes(self) -> list[AnyEnvelope]:
        self._take()
        return self._envelopes

    def bodies(self) -> list[dict[str, Any]]:
        """The same, as decoded JSON."""
        self._take()
        return self._bodies

    def _take(self) -> None:
        for body in drain_bodies(self.sqs, self.url):
            self._envelopes.append(parse_envelope(body))
            self._bodies.append(json.loads(body))


@contextmanager
def running_relay(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **values: Any
) -> Iterator[Sent]:
    """`run_watch` in a thread, with `FAST_SETTINGS` and these settings, into a queue of its own on
    the moto server; yields what the queue received. Stops the relay and checks it exited cleanly
    and that no value that must stay in the cluster (tests/fakeapi CANARY) left it."""
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_server)
    name = f"relay-{len(list(tmp_path.parent.iterdir()))}-{tmp_path.name}"[:80]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    settings = RelaySettings(queue_url=url, **{**FAST_SETTINGS, **values})
    args = build_parser().parse_args(["watch", "--kubeconfig", str(fake.write_kubeconfig(tmp_path / "k"))])
    stop = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(run_watch(args, settings, stop=stop)), daemon=True)
    thread.start()
    sent = Sent(sqs, url)
    try:
        yield sent
    finally:
        stop.set()
        thread.join(timeout=30)
    assert codes == [0], "the relay did not stop cleanly"
    assert CANARY not in json.dumps(sent.bodies()), "a value that must stay in the cluster left it"


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET (an error status is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  # loopback only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def ops_port(timeout: float = 5.0) -> int:
    """The ops server's port (settings said 0: any free port), found by its thread's server once
    the relay started it."""

    def port() -> int | None:
        for t in threading.enumerate():
            server = getattr(getattr(t, "_target", None), "__self__", None)
            if t.name == "ops-http" and server is not None:
                return int(server.server_address[1])
        return None

    found: int = wait_for(port, timeout=timeout, what="the ops server thread")
    return found


def probe(path: str) -> tuple[int, dict[str, Any]]:
    """A probe of the running relay's ops server (`/readyz`, `/healthz`): status and JSON body."""
    code, text = http_get(f"http://127.0.0.1:{ops_port()}{path}")
    return code, json.loads(text)


def records(bodies: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The payloads of object/hook envelopes of this kind (and name)."""
    return [
        b["payload"]
        for b in bodies
        if b["kind"] in {"object", "hook"}
        and b["payload"]["kind"] == kind
        and (name is None or b["payload"]["name"] == name)
    ]


def pods(bodies: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """The payloads of pod envelopes whose pod's name starts with `prefix`."""
    return [b["payload"] for b in bodies if b["kind"] == "pod" and b["payload"]["name"].startswith(prefix)]


def crash(obj: dict[str, Any], restarts: int) -> None:
    """A pod in CrashLoopBackOff with `restarts` restarts (edits the raw object in place)."""
    obj["status"]["containerStatuses"] = [
        container_status(restarts=restarts, waiting="CrashLoopBackOff", last_terminated=("Error", 1))
    ]
