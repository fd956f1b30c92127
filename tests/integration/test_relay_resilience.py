"""Issue 3 "Must show": the relay's watch engine and SQS outbox under faults, each through the real
`kubernetes` client over HTTP against the fake API server (tests/fakeapi), into SQS (moto)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from kubernetes.client import CoreV1Api
from moto.server import ThreadedMotoServer

from podwatch.models import HeartbeatEnvelope, PodEnvelope
from podwatch.wire import AnyEnvelope, parse_envelope
from podwatch_relay.outbox import Outbox
from podwatch_relay.pipeline import Relay
from podwatch_relay.settings import RelaySettings
from podwatch_relay.sink import SqsSink
from podwatch_relay.watch import POD_EVENTS, PODS, ListWatcher
from tests.fakeapi import FakeKubeApi
from tests.fakeapi.pods import CANARY, pod, with_secrets
from tests.integration.relay_harness import Harness, crash, http_get, ops_port, running_relay, wait_for
from tests.queues import drain_bodies

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- watch engine


def test_410_mid_stream_relists_once_and_emits_only_the_missed_transition(
    fake: FakeKubeApi, harness: Harness
) -> None:
    # Given three pods the relay forwarded at start
    for name in ("api-1", "api-2", "api-3"):
        fake.put(pod("shop", name))
    harness.start()
    wait_for(lambda: len(harness.poll()) == 3, what="initial list")

    # When one pod crashes and the history is compacted before the watch saw it (410 mid-stream)
    with fake.atomically():
        fake.update("Pod", "shop", "api-2", lambda o: crash(o, 1))
        fake.compact()

    # Then exactly one relist, and exactly the missed change is forwarded (no flood)
    wait_for(lambda: [e for e in harness.pods("api-2") if e.payload.restart_count == 1], what="missed change")
    time.sleep(0.3)
    assert harness.watchers["pods"].stats.relists == 1
    assert [e.payload.name for e in harness.poll()].count("api-1") == 1
    assert [e.payload.name for e in harness.poll()].count("api-3") == 1


def test_410_during_list_is_retried_after_a_backoff(fake: FakeKubeApi, harness: Harness) -> None:
    # Given a pod, and an API server whose next two lists answer HTTP 410
    fake.put(pod("shop", "api-1"))
    fake.faults.list_gone = 2

    # When the relay starts
    harness.start()

    # Then it lists again until it gets the list, and forwards the pod once
    wait_for(lambda: harness.pods("api-1"), what="the pod, after the 410 lists")
    assert harness.watchers["pods"].stats.lists_gone + harness.watchers["events"].stats.lists_gone == 2
    assert len(harness.pods("api-1")) == 1


def test_410_as_an_http_status_of_the_watch_relists(fake: FakeKubeApi, harness: Harness) -> None:
    fake.put(pod("shop", "api-1"))
    harness.start()
    wait_for(lambda: harness.pods("api-1"), what="initial list")
    wait_for(lambda: fake.open_watches == 2, what="both watches open")

    # When the stream breaks and the reconnecting watch is answered HTTP 410
    with fake.atomically():
        fake.faults.watch_gone = 1
        fake.update("Pod", "shop", "api-1", lambda o: crash(o, 1))
    fake.drop_connections()

    # Then a relist brings the change
    wait_for(lambda: [e for e in harness.pods("api-1") if e.payload.restart_count == 1], what="change")
    assert sum(w.stats.relists for w in harness.watchers.values()) == 1


def test_connection_dropped_without_fin_is_resumed_within_the_timeout(
    fake: FakeKubeApi, api: CoreV1Api, queue: tuple[Any, str]
) -> None:
    harness = Harness(api=api, sqs=queue[0], queue_url=queue[1], inactivity_timeout=0.5)
    fake.put(pod("shop", "api-1"))
    try:
        harness.start()
        wait_for(lambda: harness.pods("api-1"), what="initial list")
        streams = harness.watchers["pods"].stats.streams

        # When the connection goes silent (no FIN, no bookmarks) and a change happens meanwhile
        fake.faults.stalled = True
        fake.update("Pod", "shop", "api-1", lambda o: crash(o, 1))
        stalled_at = time.monotonic()
        wait_for(lambda: harness.watchers["pods"].stats.streams > streams, what="a new stream")
        fake.faults.stalled = False

        # Then the relay noticed within the inactivity timeout (+ backoff) and resumed, no relist;
        # the bound stays under the server's 5 s watch timeout (so only the inactivity timeout can
        # explain the resume) with room for a loaded 2-core CI machine
        assert time.monotonic() - stalled_at < 0.5 + 0.2 + 3.0
        wait_for(lambda: [e for e in harness.pods("api-1") if e.payload.restart_count == 1], what="change")
        assert harness.watchers["pods"].stats.relists == 0
    finally:
        harness.close()


def test_pod_deleted_and_recreated_while_disconnected_gives_deleted_then_added(
    fake: FakeKubeApi, harness: Harness
) -> None:
    # Given two pods the relay knows
    old = fake.put(pod("shop", "api-1", uid="uid-old"))
    fake.put(pod("shop", "gone-1"))
    harness.start()
    wait_for(lambda: harness.pods("api-1") and harness.pods("gone-1"), what="initial list")

    # When, unseen (history compacted), api-1 is deleted and recreated with a new uid, gone-1 deleted
    with fake.atomically():
        fake.delete("Pod", "shop", "api-1")
        fake.put(pod("shop", "api-1", uid="uid-new"))
        fake.delete("Pod", "shop", "gone-1")
        fake.compact()

    # Then the relist emits DELETED for the old uid before ADDED for the new one, and DELETED for gone-1
    wait_for(lambda: len(harness.pods("api-1")) == 3 and len(harness.pods("gone-1")) == 2, what="relist")
    after = [(e.payload.uid, e.payload.watch_type) for e in harness.pods("api-1")][1:]
    assert after == [(old["metadata"]["uid"], "DELETED"), ("uid-new", "ADDED")]
    gone = harness.pods("gone-1")[-1].payload
    assert gone.watch_type == "DELETED"
    assert ("vanished", False, True) in {(t.field, t.old, t.new) for t in gone.transitions}
    assert harness.relay.stats.synthetic_deleted == 2


def test_malformed_stream_lines_are_counted_and_skipped_and_the_stream_goes_on(
    fake: FakeKubeApi, harness: Harness
) -> None:
    fake.put(pod("shop", "api-1"))
    harness.start()
    wait_for(lambda: harness.pods("api-1"), what="initial list")
    wait_for(lambda: fake.open_watches == 2, what="both watches open")

    # When garbage arrives on the pods stream, then a real change
    fake.inject_raw("Pod", b'{"type":"MODIFIED","object":{"kind":"Pod",')
    fake.inject_raw("Pod", b"[1, 2, 3]")
    fake.update("Pod", "shop", "api-1", lambda o: crash(o, 1))

    # Then the change still arrives on the same stream, and the bad lines are counted
    wait_for(lambda: [e for e in harness.pods("api-1") if e.payload.restart_count == 1], what="change")
    assert harness.relay.stats.malformed == 2
    assert {"malformed:json", "malformed:not-an-object"} <= set(harness.outcomes["pods"])
    assert harness.watchers["pods"].stats.streams == 1


def test_secret_env_values_and_huge_annotations_never_reach_sqs(fake: FakeKubeApi, harness: Harness) -> None:
    fake.put(with_secrets(pod("shop", "api-1")))
    harness.start()
    wait_for(lambda: harness.pods("api-1"), what="the pod")
    fake.update("Pod", "shop", "api-1", lambda o: crash(o, 1))
    wait_for(lambda: len(harness.pods("api-1")) == 2, what="change")
    bodies = [e.model_dump_json() for e in harness.poll()]
    assert all(CANARY not in body and len(body) < 8_000 for body in bodies)


# --------------------------------------------------------------------------- SQS outbox


class FlakySqs:
    """A real (moto) client behind switches: `down` refuses every call as the network would;
    `fail_ids` fails those entry ids once (not the sender's fault). Records what SQS accepted."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.down = False
        self.fail_ids: set[str] = set()
        self.requests: list[list[str]] = []
        self.accepted: list[str] = []
        self.lock = threading.Lock()

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> Any:
        with self.lock:
            self.requests.append([e["MessageBody"] for e in Entries])
            if self.down:
                raise EndpointConnectionError(endpoint_url=QueueUrl)
            failing = [e for e in Entries if e["Id"] in self.fail_ids]
            self.fail_ids.clear()
            ok = [e for e in Entries if e not in failing]
            response = self.client.send_message_batch(QueueUrl=QueueUrl, Entries=ok) if ok else {}
            self.accepted += [e["MessageBody"] for e in ok]
            failed = [
                {"Id": e["Id"], "Code": "InternalError", "SenderFault": False, "Message": "flaky"}
                for e in failing
            ]
            return {"Successful": response.get("Successful", []), "Failed": failed}


class OutboxHarness:
    """Watchers → Relay → Outbox (buffer, spool, sender thread) → SqsSink → FlakySqs."""

    def __init__(self, *, api: CoreV1Api, sqs: FlakySqs, queue_url: str, spool: Path, capacity: int) -> None:
        sink = SqsSink(
            client=sqs, queue_url=queue_url, max_attempts=2, backoff_seconds=0.01, backoff_max_seconds=0.02
        )
        self.outbox = Outbox(
            sink=sink,
            capacity=capacity,
            flush_interval=0.05,
            backpressure_timeout=0.05,
            spool_dir=spool,
            retry_seconds=0.05,
            retry_max_seconds=0.1,
        ).start()
        self.relay = Relay(sink=self.outbox, cluster_id="c1", relay_version="t", batch_size=1)
        self.stop = threading.Event()
        self.watchers = [
            ListWatcher(
                api=api,
                relay=self.relay,
                resource=r,
                namespace=None,
                stop=self.stop,
                request_timeout=5,
                watch_timeout=5,
                inactivity_timeout=3,
                backoff_seconds=0.05,
                backoff_max_seconds=0.2,
            )
            for r in (PODS, POD_EVENTS)
        ]
        self.threads = [threading.Thread(target=w.run, daemon=True) for w in self.watchers]
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for w in self.watchers:
            w.interrupt()
        for t in self.threads:
            t.join(timeout=5)
        self.outbox.close(timeout=5)


def _pod_names(bodies: list[str]) -> list[str]:
    return [e.payload.name for e in map(parse_envelope, bodies) if isinstance(e, PodEnvelope)]


def test_partly_failing_batches_retry_only_the_failed_entries(
    fake: FakeKubeApi, api: CoreV1Api, queue: tuple[Any, str], tmp_path: Path
) -> None:
    sqs = FlakySqs(queue[0])
    sqs.fail_ids = {"1", "3"}  # the first batch: entries 1 and 3 fail
    for i in range(5):
        fake.put(pod("shop", f"api-{i}"))
    h = OutboxHarness(api=api, sqs=sqs, queue_url=queue[1], spool=tmp_path / "spool", capacity=100)
    try:
        wait_for(lambda: len(sqs.accepted) == 5, what="every pod accepted")
        first, retry = sqs.requests[0], sqs.requests[1]
        assert len(first) == 5
        assert retry == [first[1], first[3]]
        assert sorted(_pod_names(sqs.accepted)) == [f"api-{i}" for i in range(5)]
    finally:
        h.close()


def test_sqs_down_spools_to_disk_then_delivers_everything_in_order(
    fake: FakeKubeApi, api: CoreV1Api, queue: tuple[Any, str], tmp_path: Path
) -> None:
    # Given a relay whose buffer holds 5 envelopes, and SQS unreachable
    sqs = FlakySqs(queue[0])
    sqs.down = True
    h = OutboxHarness(api=api, sqs=sqs, queue_url=queue[1], spool=tmp_path / "spool", capacity=5)
    try:
        wait_for(lambda: all(w.synced.is_set() for w in h.watchers), what="initial sync")

        # When 30 pods appear one after the other while SQS is down
        for i in range(30):
            fake.put(pod("shop", f"p-{i:02d}"))
        wait_for(lambda: h.relay.stats.forwarded == 30, what="all forwarded to the outbox")

        # Then the buffer is full and the rest went to disk
        assert h.outbox.depth == 5
        assert h.outbox.spool_depth == 25
        assert list((tmp_path / "spool").glob("*.jsonl"))

        # When SQS comes back
        sqs.down = False

        # Then every envelope is delivered, once, in the order of the changes, and the spool is empty
        wait_for(lambda: len(sqs.accepted) >= 30, timeout=10, what="delivery")
        assert _pod_names(sqs.accepted) == [f"p-{i:02d}" for i in range(30)]
        wait_for(lambda: not list((tmp_path / "spool").glob("*.jsonl")), what="spool files removed")
        assert h.outbox.spool_depth == 0
        # the counter is bumped by the outbox thread just after the spool commit removes the file
        wait_for(lambda: h.outbox.stats.replayed_from_spool == 25, what="replay counted")
    finally:
        h.close()


# --------------------------------------------------------------------------- the process


@pytest.fixture
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _drain(sqs: Any, url: str) -> list[AnyEnvelope]:
    return [parse_envelope(body) for body in drain_bodies(sqs, url)]


def test_sigterm_drains_the_buffer_before_exit(fake: FakeKubeApi, moto_server: str, tmp_path: Path) -> None:
    # Given the relay process, whose envelopes wait up to 60 s for a full batch
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_server)
    url = sqs.create_queue(QueueName="pod-events")["QueueUrl"]
    for i in range(4):
        fake.put(pod("shop", f"api-{i}"))
    env = os.environ | {
        "PYTHONPATH": f"{ROOT / 'layers/podwatch'}:{ROOT / 'relay'}:{ROOT}",
        "AWS_ENDPOINT_URL": moto_server,
        "PODWATCH_QUEUE_URL": url,
        "PODWATCH_FLUSH_INTERVAL_SECONDS": "60",
        "PODWATCH_HTTP_PORT": "0",
        "PODWATCH_SHUTDOWN_GRACE_SECONDS": "10",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podwatch_relay",
            "watch",
            "--kubeconfig",
            str(fake.write_kubeconfig(tmp_path / "k")),
        ],
        env=env,
        stderr=(tmp_path / "relay.log").open("w"),
    )
    try:
        wait_for(
            lambda: len(fake.watch_requests()) >= 2 or process.poll() is not None, timeout=15, what="watching"
        )
        assert process.poll() is None, (tmp_path / "relay.log").read_text()
        time.sleep(0.3)
        assert _drain(sqs, url) == []  # enroll and the pods wait in the buffer for a full batch

        # When SIGTERM arrives
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)

        # Then it exits 0, quickly, after sending what was buffered
        assert code == 0
        assert time.monotonic() - started < 10
        received = _drain(sqs, url)
        assert sorted(e.kind for e in received) == ["enroll", "pod", "pod", "pod", "pod"]
        pods = [e for e in received if isinstance(e, PodEnvelope)]
        assert sorted(e.payload.name for e in pods) == [f"api-{i}" for i in range(4)]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_label_selected_namespaces_heartbeats_and_ops_endpoints(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given namespaces, one labelled for podwatch, each with a pod
    for ns, labels in (("shop", {"podwatch": "on"}), ("dev", {})):
        fake.put({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns, "labels": labels}})
        fake.put(pod(ns, f"{ns}-pod"))
    with running_relay(
        fake,
        moto_server,
        tmp_path,
        monkeypatch,
        namespace_selector="podwatch=on",
        heartbeat_interval_seconds=0.3,
        watch_timeout_seconds=5,
        health_stall_seconds=1.5,
    ) as sent:

        def names() -> set[str]:
            return {e.payload.name for e in sent.envelopes() if isinstance(e, PodEnvelope)}

        def restarted(name: str) -> bool:
            return any(
                isinstance(e, PodEnvelope) and e.payload.name == name and e.payload.restart_count
                for e in sent.envelopes()
            )

        # Then only the labelled namespace's pod is forwarded
        wait_for(lambda: "shop-pod" in names(), timeout=10, what="shop pod")

        # When dev gets the label, shop loses it, and a new labelled namespace appears
        fake.update("Namespace", None, "dev", lambda o: o["metadata"].update(labels={"podwatch": "on"}))
        fake.update("Namespace", None, "shop", lambda o: o["metadata"].update(labels={}))
        fake.put(
            {
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {"name": "new", "labels": {"podwatch": "on"}},
            }
        )
        fake.put(pod("new", "new-pod"))
        wait_for(lambda: {"dev-pod", "new-pod"} <= names(), timeout=10, what="watchers started")

        # Then shop is no longer watched: its changes are not forwarded
        fake.update("Pod", "shop", "shop-pod", lambda o: crash(o, 1))
        fake.update("Pod", "dev", "dev-pod", lambda o: crash(o, 1))
        wait_for(lambda: restarted("dev-pod"), timeout=10, what="dev change")
        assert not restarted("shop-pod")
        assert {r.query.get("fieldSelector") for r in fake.watch_requests("events")} == {
            "involvedObject.kind=Pod"
        }

        # And heartbeats come on their period, numbered
        wait_for(
            lambda: sum(isinstance(e, HeartbeatEnvelope) for e in sent.envelopes()) >= 2,
            timeout=5,
            what="heartbeats",
        )
        beats = [e.payload.sequence for e in sent.envelopes() if isinstance(e, HeartbeatEnvelope)]
        assert beats[:2] == [1, 2]

        # And the ops port answers: ready, healthy, metrics with every family
        port = ops_port()
        assert http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        code, text = http_get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        for family in (
            "podwatch_relay_watch_events_total",
            "podwatch_relay_forwarded_total",
            "podwatch_relay_suppressed_total",
            "podwatch_relay_queue_depth",
            "podwatch_relay_spool_depth",
            "podwatch_relay_reconnects_total",
            "podwatch_relay_relists_total",
            "podwatch_relay_watch_lag_seconds",
            "podwatch_relay_sqs_send_failures_total",
        ):
            assert family in text, family

        # When the API server goes silent for longer than the bound, /healthz fails
        fake.faults.stalled = True
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 503, timeout=5, what="unhealthy")
        fake.faults.stalled = False


def test_settings_document_every_new_variable() -> None:
    fields = RelaySettings.model_fields
    for name in ("namespace_selector", "buffer_size", "spool_dir", "heartbeat_interval_seconds", "http_port"):
        assert fields[name].description, name
    assert json.dumps(RelaySettings().http_port) == "8080"
