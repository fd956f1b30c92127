"""Node objects for tests: the public Node corpus (tests/corpus/nodes.yaml) and a Node, as the API
has it, turned into the payload of the `object` envelope the relay sends (docs/internals.md, "Pod-events
envelopes: kinds": conditions without heartbeat times, `condition.<type>` transitions against the
node's previous state). The relay's own per-kind projection is its side of the contract; this is
the cloud side's reading of the same contract, for feeding the processor real Node conditions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from podwatch import ids
from podwatch.models import KubeObject, PodCondition, Transition, WatchType

CORPUS = Path(__file__).resolve().parent / "corpus" / "nodes.yaml"


def corpus() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["nodes"]
    return cases


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def _statuses(node: Mapping[str, Any] | None) -> dict[str, str]:
    conditions = ((node or {}).get("status") or {}).get("conditions") or []
    return {c["type"]: c["status"] for c in conditions}


def node_object(
    node: Mapping[str, Any],
    *,
    resource_version: str,
    observed_at: datetime,
    previous: Mapping[str, Any] | None = None,
    watch_type: WatchType = "MODIFIED",
    initial_sync: bool = False,
) -> KubeObject:
    meta = node["metadata"]
    conditions = (node.get("status") or {}).get("conditions") or []
    before, now = _statuses(previous), _statuses(node)
    transitions = [
        Transition(field=f"condition.{kind}", old=before[kind], new=status)
        for kind, status in now.items()
        if previous is not None and kind in before and before[kind] != status
    ]
    return KubeObject(
        api_version=node.get("apiVersion", "v1"),
        kind="Node",
        name=meta["name"],
        uid=meta.get("uid") or ids.object_event_id("test", "Node", meta["name"], "uid")[:32],
        labels=dict(meta.get("labels") or {}),
        conditions=[
            PodCondition(
                type=c["type"],
                status=c["status"],
                reason=c.get("reason"),
                message=c.get("message"),
                last_transition_time=_time(c.get("lastTransitionTime")),
            )
            for c in conditions
        ],
        snapshot={"taints": list((node.get("spec") or {}).get("taints") or [])},
        watch_type=watch_type,
        resource_version=resource_version,
        observed_at=observed_at,
        initial_sync=initial_sync,
        transitions=transitions,
    )


def healthy(node: Mapping[str, Any]) -> dict[str, Any]:
    """The same node with every condition healthy again (Ready True, the pressures False)."""
    conditions = [
        {**c, "status": "True" if c["type"] == "Ready" else "False", "reason": "KubeletReady"}
        if c["type"] in {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"}
        else c
        for c in node["status"]["conditions"]
    ]
    if not any(c["type"] == "Ready" for c in conditions):
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady"})
    return {**node, "status": {**node["status"], "conditions": conditions}}
