"""Relay replicas as real processes (`python -m podwatch_relay watch` with leader election) against
the fake API server (tests/fakeapi) and a moto SQS queue: shared by the leader election and
failover tests. A `RelayProcess` is one container of one pod: its pod name is the Lease identity's
base, its `volume` the pod's spool volume (a restarted container gets the same one)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from podwatch.models import PodEnvelope
from podwatch.wire import AnyEnvelope, parse_envelope
from tests.fakeapi import FakeKubeApi

ROOT = Path(__file__).resolve().parents[2]
LEASE_NAMESPACE = "podwatch"
LEASE_NAME = "podwatch-relay"
FLUSH_INTERVAL = 0.1


class Queue:
    """The pod-events queue (moto server): everything it received, drained and remembered."""

    def __init__(self, endpoint: str, name: str) -> None:
        self.sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        self.received: list[AnyEnvelope] = []

    def poll(self) -> list[AnyEnvelope]:
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages"):
            self.received += [parse_envelope(m["Body"]) for m in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return self.received

    def pods(self, name: str, restarts: int | None = None) -> list[PodEnvelope]:
        return [
            e
            for e in self.poll()
            if isinstance(e, PodEnvelope)
            and e.payload.name == name
            and (restarts is None or e.payload.restart_count == restarts)
        ]


class RelayProcess:
    """One relay container of the pod `identity`, with leader election on (the chart's setup)."""

    def __init__(
        self,
        identity: str,
        *,
        fake: FakeKubeApi,
        endpoint: str,
        queue_url: str,
        tmp: Path,
        lease: tuple[int, float, float] = (3, 2.0, 0.5),
        volume: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.identity = identity
        self.volume = volume
        runs = sorted(tmp.glob(f"{identity}.*.log"))
        self.log = tmp / f"{identity}.{len(runs)}.log"
        duration, deadline, retry = lease
        environment = os.environ | {
            "PYTHONPATH": f"{ROOT / 'layers/podwatch'}:{ROOT / 'relay'}:{ROOT}",
            "AWS_ENDPOINT_URL": endpoint,
            "PODWATCH_QUEUE_URL": queue_url,
            "PODWATCH_HTTP_PORT": "0",
            "PODWATCH_FLUSH_INTERVAL_SECONDS": str(FLUSH_INTERVAL),
            "PODWATCH_HEARTBEAT_INTERVAL_SECONDS": "3600",
            "PODWATCH_SHUTDOWN_GRACE_SECONDS": "5",
            "PODWATCH_REQUEST_TIMEOUT_SECONDS": "2",
            "PODWATCH_LEADER_ELECTION": "true",
            "PODWATCH_LEASE_NAME": LEASE_NAME,
            "PODWATCH_LEASE_NAMESPACE": LEASE_NAMESPACE,
            "PODWATCH_LEASE_IDENTITY": identity,
            "PODWATCH_LEASE_DURATION_SECONDS": str(duration),
            "PODWATCH_RENEW_DEADLINE_SECONDS": str(deadline),
            "PODWATCH_RETRY_PERIOD_SECONDS": str(retry),
            "PODWATCH_CHECKPOINT_INTERVAL_SECONDS": "0.5",
        }
        if volume is not None:
            environment["PODWATCH_SPOOL_DIR"] = str(volume)
        kubeconfig = fake.write_kubeconfig(tmp / f"{identity}.kubeconfig")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podwatch_relay", "watch", "--kubeconfig", str(kubeconfig)],
            env=environment | (env or {}),
            stderr=self.log.open("w"),
        )
        self._port: int | None = None

    def restarted(self, **kwargs: Any) -> RelayProcess:
        """A new container in the same pod: same pod name, same volume (this one must be gone)."""
        assert self.process.poll() is not None, "the old container still runs"
        return RelayProcess(self.identity, volume=self.volume, **kwargs)

    @property
    def lease_identity(self) -> str | None:
        """This process's holderIdentity (`<pod>_<suffix>`), once it logged that it is watching."""
        for entry in self.logs():
            if entry.get("message") == "watching":
                return str(entry["leader_election"]["identity"])
        return None

    def holds(self, fake: FakeKubeApi) -> bool:
        """This very process holds the lease."""
        mine = self.lease_identity
        return mine is not None and holder(fake) == mine

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    @property
    def port(self) -> int:
        if self._port is None:
            for entry in self.logs():
                if entry.get("message") == "watching":
                    self._port = int(entry["http_port"])
        if self._port is None:
            assert self.process.poll() is None, self.log.read_text()
            raise LookupError("not watching yet")
        return self._port

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except (LookupError, OSError):
            return False

    def metric(self, name: str) -> float:
        _, text = self.get("/metrics")
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert match, f"{name} not in /metrics"
        return float(match.group(1))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def lease(fake: FakeKubeApi) -> dict[str, Any] | None:
    return fake.get("Lease", LEASE_NAMESPACE, LEASE_NAME)


def holder(fake: FakeKubeApi) -> str | None:
    current = lease(fake)
    return None if current is None else current["spec"].get("holderIdentity")


def held_by(fake: FakeKubeApi, replica: RelayProcess) -> bool:
    """The lease is held by a process of `replica`'s pod (identity `<pod>_<per-process suffix>`)."""
    current = holder(fake) or ""
    return current == replica.identity or current.startswith(f"{replica.identity}_")
