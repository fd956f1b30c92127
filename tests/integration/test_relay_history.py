"""Issue 19 end to end through real parts: a rollout in the fake API server (Deployment →
ReplicaSets → pods), watched by the relay (`run_watch`, the real `kubernetes` client over HTTP),
its envelopes through the processor and the history-writer handlers against a moto server whose
queues and tables come from template.yaml, then asked for through the history API: the new pod's
object view shows its owner chain, the Deployment with its image change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.make_samples import CLUSTER
from local.cfn import AwsClients, Provisioned
from tests.fakeapi import FakeKubeApi
from tests.fakeapi import objects as fx
from tests.integration.relay_harness import pods, records, running_relay, wait_for
from tests.integration.template_stack import process, to_history

pytestmark = pytest.mark.integration


def now(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` created a minute ago: the history keeps what is younger than its retention."""
    created = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    obj["metadata"]["creationTimestamp"] = created.isoformat().replace("+00:00", "Z")
    return obj


def test_a_rollout_watched_by_the_relay_shows_its_owner_chain_in_the_history(
    fake: FakeKubeApi,
    moto_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    processor: object,
    writer: object,
    history_url: str,
    stack: Provisioned,
    clients: AwsClients,
) -> None:
    # Given a Deployment at 1.0 with its ReplicaSet and a pod, watched by the relay
    deploy = fake.put(now(fx.deployment("shop", "api", image="registry.example.com/api:1.0", replicas=1)))
    rs1 = fake.put(now(fx.replicaset(deploy, "aaa111", image="registry.example.com/api:1.0", replicas=1)))
    fake.put(now(fx.owned_pod(rs1, "p1", image="registry.example.com/api:1.0")))
    with running_relay(
        fake, moto_server, tmp_path, monkeypatch, kinds="Pod,Event,Deployment,ReplicaSet", cluster_id=CLUSTER
    ) as sent:
        wait_for(lambda: records(sent.bodies(), "ReplicaSet"), what="the list")

        # When it rolls out 2.0: a new ReplicaSet with a new pod, the old one scaled down
        deploy = fake.update(
            "Deployment",
            "shop",
            "api",
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(
                image="registry.example.com/api:2.0"
            ),
        )
        rs2 = fake.put(now(fx.replicaset(deploy, "bbb222", image="registry.example.com/api:2.0", replicas=1)))
        fake.put(now(fx.owned_pod(rs2, "q1", image="registry.example.com/api:2.0")))
        fake.update("ReplicaSet", "shop", rs1["metadata"]["name"], lambda o: o["spec"].update(replicas=0))
        wait_for(
            lambda: pods(sent.bodies(), "api-bbb222-") and len(records(sent.bodies(), "ReplicaSet")) >= 3,
            what="rollout",
        )
        relayed = [json.dumps(b) for b in sent.bodies() if b["kind"] != "enroll"]

    # And what the relay sent goes through the processor into the history
    process(processor, *relayed)
    assert to_history(clients, stack, writer) >= 1

    # Then the new pod's object view has its owner chain: the new ReplicaSet, then the Deployment,
    # whose records show the image it rolled out
    view = httpx.get(f"{history_url}/api/v1/events/shop/pod/api-bbb222-q1", timeout=60)
    assert view.status_code == 200, view.text
    owners = view.json()["owners"]
    assert [(o["kind"], o["name"]) for o in owners] == [("ReplicaSet", "api-bbb222"), ("Deployment", "api")]
    images = [
        w["object"]["snapshot"]["spec.template.spec"]["containers"][0]["image"]
        for w in owners[1]["watchEvents"]
    ]
    assert images == ["registry.example.com/api:2.0", "registry.example.com/api:1.0"]  # newest first
