"""Hooks on the whole local stack: the relay's code → processor → (fan-out) hooks queue → the hooks
function → the reference agent (a real a2a-sdk server), with the Hook applied by the operator CLI.

Issue 17's "must show", end to end: a crash-looping pod → exactly one agent call per matching hook,
also when the hooks function gets the notification again (redelivery) and starts cold; a second
hook on the same event type fires once too; the agent down (5xx) → nothing lost, retried until it
succeeds; the agent answering 400 → the hooks DLQ with the reason; both A2A wire versions.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack

pytestmark = pytest.mark.e2e

SAMPLE = "events/replay/sample-stream.jsonl"
CRASHING = "payments-api-84c6d9f7b8-tq5vn"  # the sample's crash-looping pod, in namespace payments


def hooks_file(tmp_path: Path, tag: str) -> Path:
    """Two hooks matching the sample's crash-loop: payments' own (wire 0.3) and a cluster-wide one (1.0)."""
    path = tmp_path / "hooks.yaml"
    path.write_text(
        f"""
apiVersion: kagent.dev/v1alpha2
kind: Hook
metadata: {{name: restarts-{tag}, namespace: payments}}
spec:
  eventConfigurations:
  - eventType: pod-restart
    agentRef: {{name: k8s-agent, namespace: kagent}}
    prompt: "[{{{{.Cluster}}}}] {{{{.ResourceName}}}} restarted: {{{{.Message}}}}"
---
apiVersion: kagent.dev/v1alpha2
kind: Hook
metadata: {{name: oncall-{tag}, namespace: ops}}
spec:
  clusterWide: true
  agent: {{protocol: "1.0"}}
  eventConfigurations:
  - eventType: crash-loop
    agentId: ops/triage
    prompt: "[{{{{.Cluster}}}}] {{{{.Namespace}}}}/{{{{.ResourceName}}}} crash-loops"
"""
    )
    return path


def calls_of(stack: LocalStack, cluster: str) -> list[dict[str, Any]]:
    return [c for c in stack.hook_calls() if c["text"].startswith(f"[{cluster}]")]


def test_one_call_per_hook_through_an_outage_a_redelivery_and_a_cold_start(
    local_stack: LocalStack, cluster_id: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    local_stack.apply_hooks(hooks_file(tmp_path, tag))
    assert local_stack.agent is not None
    # Given an agent that answers 503 to its next three calls
    local_stack.agent.fault(503, times=3)
    # When the sample (a crash-looping pod among others) is replayed and everything settles
    local_stack.replay(SAMPLE, cluster_id=cluster_id)
    local_stack.pump_until_idle(timeout=90)
    # Then each hook's agent got the crash-loop exactly once, in its own wire version
    calls = calls_of(local_stack, cluster_id)
    assert sorted((c["namespace"], c["agent"], c["a2a_version"]) for c in calls) == [
        ("kagent", "k8s-agent", None),
        ("ops", "triage", "1.0"),
    ]
    assert all(CRASHING in c["text"] for c in calls)
    restarts = next(c for c in calls if c["agent"] == "k8s-agent")
    assert "<<<pod-message " in restarts["text"]  # the pod's own message, fenced

    # When the hooks function gets the same notification again, after a cold start
    (crash,) = [n for n in local_stack.delivered(cluster_id) if n["event_type"] == "crash-loop"]
    local_stack.in_function("HooksFunction", lambda module: module.reset())
    local_stack.send_raw(json.dumps(crash), queue="HooksQueue")
    local_stack.pump_until_idle(timeout=60)
    # Then no agent is called again
    assert len(calls_of(local_stack, cluster_id)) == 2

    # When the same trouble shows up on another pod and the agent refuses its first call (400)
    local_stack.agent.fault(400, times=1)
    other = {**crash, "notification_id": uuid.uuid4().hex, "pod": "payments-api-84c6d9f7b8-zz9zz"}
    local_stack.send_raw(json.dumps(other), queue="HooksQueue")
    local_stack.pump_until_idle(timeout=60)
    # Then one hook's call is in the hooks DLQ, with the status and the hook named; the other is made
    refused = [
        m for m in local_stack.dlq_messages() if m.queue == "HooksDLQ" and other["notification_id"] in m.body
    ]
    assert len(refused) == 1
    assert refused[0].reason == "rejected"
    assert refused[0].attributes["status_code"] == "400"
    assert refused[0].attributes["hook"].endswith(f"-{tag}#0")
    assert len(calls_of(local_stack, cluster_id)) == 3
