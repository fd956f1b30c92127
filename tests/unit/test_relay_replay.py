"""Replay of the sample streams in events/replay through the relay into (moto) SQS, and the CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from podwatch.models import EnrollEnvelope, KubeEventEnvelope, PodEnvelope
from podwatch.wire import AnyEnvelope, parse_envelope
from podwatch_relay import app
from podwatch_relay.pipeline import Relay
from podwatch_relay.replay import replay_file
from podwatch_relay.sink import FileSink, SqsSink
from tests.fakeapi.pods import CANARY
from tests.queues import drain_bodies

REPLAY = Path(__file__).resolve().parents[2] / "events" / "replay"
SAMPLE = REPLAY / "sample-stream.jsonl"
BAD_INPUT = REPLAY / "bad-input.jsonl"

CRASH = "payments-api-84c6d9f7b8-tq5vn"
OOM = "report-worker-59f6c7d8b9-h7c2d"
EVICTED = "batch-exporter-6d5f4c8b7a-r8t4m"
PULL = "checkout-web-7fb9c6d4e2-j3n6s"
HEALTHY = ("api-7d9f8b6c5d-x2x7q", "worker-6b7c9d8f5a-p9w2r", "web-5c8d7f9b44-m4k8z")


@pytest.fixture
def queue() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        yield client, client.create_queue(QueueName="podwatch-local-pod-events")["QueueUrl"]


def _pods(envelopes: list[AnyEnvelope], name: str) -> list[PodEnvelope]:
    found = [e for e in envelopes if isinstance(e, PodEnvelope) and e.payload.name == name]
    return sorted(found, key=lambda e: int(e.payload.resource_version))


def test_sample_stream_replays_into_sqs(queue: tuple[Any, str]) -> None:
    # Given a relay sending to a (moto) SQS queue
    client, url = queue
    relay = Relay(sink=SqsSink(client=client, queue_url=url), cluster_id="local", relay_version="test")

    # When the sample stream is replayed
    stats = replay_file(SAMPLE, relay)
    bodies = drain_bodies(client, url)

    # Then every line is accounted for
    assert stats.input_events == 58
    assert stats.outcomes == {
        "forwarded": 47,
        "suppressed": 3,
        "bookmark": 4,
        "skipped:not-a-pod-event": 1,
        "skipped:kind-ConfigMap": 1,
        "malformed:json": 1,
        "malformed:unknown-type": 1,
    }
    assert stats.by_kind == {"pod": 38, "k8s_event": 9}
    assert stats.sent == 47
    assert stats.dropped == 0

    # And what reached SQS is exactly that, valid against the contract, and leaks nothing
    assert len(bodies) == 47
    assert not any(CANARY in body for body in bodies)
    envelopes = [parse_envelope(body) for body in bodies]
    assert len({e.event_id for e in envelopes}) == 47

    # And each troubled pod's trouble is in what was sent
    crash = _pods(envelopes, CRASH)
    restarts = [
        (t.old, t.new)
        for e in crash
        for t in e.payload.transitions
        if t.field == "restart_count" and t.container == "api"
    ]
    assert restarts == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert crash[-1].payload.containers[0].reason == "CrashLoopBackOff"
    assert crash[-1].payload.restart_count == 5

    oom = _pods(envelopes, OOM)[-1].payload
    assert ("last_termination_reason", None, "OOMKilled") in {
        (t.field, t.old, t.new) for t in oom.transitions
    }
    assert oom.containers[0].last_exit_code == 137

    evicted = _pods(envelopes, EVICTED)[-1].payload
    assert (evicted.phase, evicted.reason) == ("Failed", "Evicted")
    assert evicted.message is not None
    assert "ephemeral-storage" in evicted.message

    pull_reasons = [c.reason for e in _pods(envelopes, PULL) for c in e.payload.containers]
    assert pull_reasons[-2:] == ["ErrImagePull", "ImagePullBackOff"]

    # And healthy pods show no trouble; the scaled-away one ends DELETED
    for name in HEALTHY:
        for envelope in _pods(envelopes, name):
            for c in envelope.payload.containers:
                assert c.reason in {None, "ContainerCreating", "Completed"}
                assert c.last_termination_reason is None
    assert _pods(envelopes, "web-5c8d7f9b44-m4k8z")[-1].payload.watch_type == "DELETED"

    # And the Node event never left; the pod events did
    events = [e for e in envelopes if isinstance(e, KubeEventEnvelope)]
    assert {e.payload.involved_object.kind for e in events} == {"Pod"}
    assert {e.payload.reason for e in events} == {"Pulled", "Started", "BackOff", "Evicted"}


def test_replaying_twice_gives_the_same_event_ids(tmp_path: Path) -> None:
    # Given two independent replays of the same stream (as after a restart of the local stack)
    ids: list[set[str]] = []
    for run in range(2):
        out = tmp_path / f"run{run}.jsonl"
        replay_file(SAMPLE, Relay(sink=FileSink(path=str(out)), cluster_id="local", relay_version="test"))
        ids.append({parse_envelope(line).event_id for line in out.read_text().splitlines()})

    # Then they carry exactly the same event ids: downstream recognises them as the same events
    assert ids[0] == ids[1]
    assert len(ids[0]) == 47


def test_bad_input_is_counted_and_the_good_pods_still_go_through(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    relay = Relay(sink=FileSink(path=str(out)), cluster_id="local", relay_version="test")

    stats = replay_file(BAD_INPUT, relay)

    assert stats.malformed == 8
    assert stats.skipped == 2
    assert stats.errors == 1
    assert stats.forwarded == 2
    sent = [parse_envelope(line) for line in out.read_text().splitlines()]
    assert sorted(e.payload.name for e in sent if isinstance(e, PodEnvelope)) == [
        "invoicer-5b6c7d8e9f-a1b2c",
        "pdf-renderer-8c9d7e6f5a-z9y8x",
    ]
    assert CANARY not in out.read_text()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_cli_replay_sends_enroll_then_events_and_prints_stats(
    queue: tuple[Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the queue URL in the environment's way (a flag) and a cluster id
    client, url = queue

    # When the CLI replays the sample stream
    code = app.main(
        ["replay", str(SAMPLE), "--queue-url", url, "--cluster-id", "cluster-a", "--region", "us-east-1"]
    )

    # Then it exits 0, prints its stats as JSON, and the queue holds the enroll plus the events
    captured = capsys.readouterr()
    assert code == 0
    stats = json.loads(captured.out)
    assert stats["forwarded"] == 47
    assert stats["sent"] == 48
    assert stats["by_kind"]["enroll"] == 1
    envelopes = [parse_envelope(b) for b in drain_bodies(client, url)]
    assert sum(isinstance(e, EnrollEnvelope) for e in envelopes) == 1
    assert {e.cluster_id for e in envelopes} == {"cluster-a"}

    # And its logs are JSON lines, with the malformed lines explained
    logs = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert any(entry.get("outcome") == "malformed:json" for entry in logs)


@pytest.mark.usefixtures("restore_logging")
def test_cli_replay_without_a_queue_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODWATCH_QUEUE_URL", raising=False)
    with pytest.raises(SystemExit, match="PODWATCH_QUEUE_URL"):
        app.main(["replay", str(SAMPLE)])


def test_cli_rejects_invalid_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PODWATCH_INITIAL_SYNC_MODE", "sometimes")
    assert app.main(["replay", str(SAMPLE), "--output", "/dev/null"]) == 2
    assert "initial_sync_mode" in capsys.readouterr().err
