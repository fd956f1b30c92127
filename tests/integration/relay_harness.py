"""The relay under test in-process: one relay with a pods watcher and a pod-events watcher against
the fake API server (tests/fakeapi) through the real `kubernetes` client, into SQS. Shared by the
relay integration tests; their fixtures are in conftest.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import CoreV1Api

from podwatch.models import PodEnvelope
from podwatch.wire import AnyEnvelope, parse_envelope
from podwatch_relay.deadlines import Deadlines, look_again_periodically
from podwatch_relay.pipeline import Relay
from podwatch_relay.sink import SqsSink
from podwatch_relay.watch import POD_EVENTS, PODS, ListWatcher, flush_periodically
from tests.fakeapi.pods import container_status


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
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return self.received
            self.received += [parse_envelope(m["Body"]) for m in messages]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def pods(self, name: str) -> list[PodEnvelope]:
        return [e for e in self.poll() if isinstance(e, PodEnvelope) and e.payload.name == name]


def crash(obj: dict[str, Any], restarts: int) -> None:
    """A pod in CrashLoopBackOff with `restarts` restarts (edits the raw object in place)."""
    obj["status"]["containerStatuses"] = [
        container_status(restarts=restarts, waiting="CrashLoopBackOff", last_terminated=("Error", 1))
    ]
