"""Generate a load scenario: a big watch stream, deterministically, so it is never committed.

    PYTHONPATH=layers/podwatch:relay:. .venv/bin/python events/replay/make_load.py OUT.jsonl \
        [--pods 2000] [--lines 20000] [--crash-replicas 200]

One API-server watch event per line, as `GET /api/v1/pods?watch=1` sends it, over ten minutes of
recorded time (fixed uids, timestamps and increasing resourceVersions: the same arguments always
write the same bytes). The pods are lean (no 10 KB annotations: make_sample.py has those), each
with one secret-looking env value holding `pw-canary`. Of `--pods`:

* `--crash-replicas` replicas of Deployment `load-crash/api` crash-loop (restartCount 1..4, waiting
  CrashLoopBackOff, last terminated Error) — each restart observed within the same minute;
* 5 % are OOMKilled once (last terminated OOMKilled, exit 137) and run again;
* 5 % cannot pull their image (ErrImagePull, then ImagePullBackOff);
* 5 % are evicted (phase Failed, reason Evicted);
* the rest are healthy churn: Pending → ContainerCreating → Running and Ready, then label-only
  updates (which the relay suppresses) up to the line budget, and a third of them scaled away
  (deletionTimestamp, then DELETED).

`expected(...)` says which pods are in trouble and of what type (what must reach the manager).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE_TIME = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
CANARY = "pw-canary"
SPAN_S = 600
FIRST_RV = 5_000_000
NODES = [f"ip-10-0-{i}-{i * 7 % 250}.eu-west-1.compute.internal" for i in range(1, 41)]

Obj = dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    pods: int = 2000
    lines: int = 20_000
    crash_replicas: int = 200
    #: share of the pods per other trouble type (OOMKilled, image pull, evicted)
    other_share: float = 0.05

    @property
    def share(self) -> int:
        """Pods per other trouble type."""
        return int(self.pods * self.other_share)


def _ts(seconds: float) -> str:
    return (BASE_TIME + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"podwatch-load/{name}"))


def _hash(text: str, n: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _suffix(n: int) -> str:
    """A unique 5-letter pod-name suffix for `n` (Kubernetes' safe alphabet)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[(n // len(alphabet) ** i) % len(alphabet)] for i in range(5))


def _pod(namespace: str, app: str, index: int, created: float) -> Obj:
    rs = f"{app}-{_hash(namespace + app, 10)}"
    name = f"{rs}-{_suffix(index)}"
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": _uid(f"{namespace}/{name}"),
            "resourceVersion": "0",
            "creationTimestamp": _ts(created),
            "labels": {
                "app": app,
                "pod-template-hash": rs.rsplit("-", 1)[1],
                "project-id": f"proj-{namespace}",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs,
                    "uid": _uid(rs),
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": NODES[index % len(NODES)],
            "containers": [
                {
                    "name": "app",
                    "image": f"registry.example.com/{app}:1.{index % 7}",
                    "env": [{"name": "DB_PASSWORD", "value": f"{CANARY}-{_hash(name, 8)}"}],
                }
            ],
        },
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": _ts(created)}],
            "qosClass": "Burstable",
        },
    }


def _container(pod: Obj, state: Obj, *, ready: bool, restarts: int = 0, last: Obj | None = None) -> Obj:
    image = pod["spec"]["containers"][0]["image"]
    return {
        "name": "app",
        "state": state,
        "lastState": last or {},
        "ready": ready,
        "restartCount": restarts,
        "image": image,
        "started": "running" in state,
    }


def _set(pod: Obj, t: float, *, phase: str, ready: bool, container: Obj) -> None:
    status = pod["status"]
    status["phase"] = phase
    status["startTime"] = status.get("startTime", _ts(t))
    status["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "True",
            "lastTransitionTime": pod["metadata"]["creationTimestamp"],
        },
        {"type": "Initialized", "status": "True", "lastTransitionTime": _ts(t)},
        {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": _ts(t)},
        {"type": "Ready", "status": str(ready), "lastTransitionTime": _ts(t)},
    ]
    status["containerStatuses"] = [container]


def _terminated(reason: str, code: int, started: float, finished: float) -> Obj:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "startedAt": _ts(started),
            "finishedAt": _ts(finished),
        }
    }


class _Timeline:
    """Watch events with their recorded time; written in time order with increasing resourceVersions."""

    def __init__(self) -> None:
        self.events: list[tuple[float, int, str, Obj]] = []

    def add(self, t: float, watch_type: str, pod: Obj) -> None:
        self.events.append((t, len(self.events), watch_type, json.loads(json.dumps(pod))))

    def lines(self) -> list[str]:
        out = []
        for rv, (_, _, watch_type, obj) in enumerate(sorted(self.events), start=FIRST_RV):
            obj["metadata"]["resourceVersion"] = str(rv)
            out.append(json.dumps({"type": watch_type, "object": obj}, separators=(",", ":")))
        return out


def _running(timeline: _Timeline, pod: Obj, t: float) -> None:
    timeline.add(t, "ADDED", pod)
    _set(
        pod,
        t + 2,
        phase="Pending",
        ready=False,
        container=_container(pod, {"waiting": {"reason": "ContainerCreating"}}, ready=False),
    )
    timeline.add(t + 2, "MODIFIED", pod)
    _set(
        pod,
        t + 6,
        phase="Running",
        ready=True,
        container=_container(pod, {"running": {"startedAt": _ts(t + 6)}}, ready=True),
    )
    timeline.add(t + 6, "MODIFIED", pod)


def _crash_loop(timeline: _Timeline, pod: Obj, t: float) -> None:
    _running(timeline, pod, t)
    for restarts in range(1, 5):
        at = t + 8 + restarts * 10
        last = _terminated("Error", 1, at - 9, at - 1)
        state = {
            "waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container app"}
        }
        _set(
            pod,
            at,
            phase="Running",
            ready=False,
            container=_container(pod, state, ready=False, restarts=restarts, last=last),
        )
        timeline.add(at, "MODIFIED", pod)


def _oom(timeline: _Timeline, pod: Obj, t: float) -> None:
    _running(timeline, pod, t)
    last = _terminated("OOMKilled", 137, t + 6, t + 40)
    _set(
        pod,
        t + 41,
        phase="Running",
        ready=True,
        container=_container(pod, {"running": {"startedAt": _ts(t + 41)}}, ready=True, restarts=1, last=last),
    )
    timeline.add(t + 41, "MODIFIED", pod)


def _image_pull(timeline: _Timeline, pod: Obj, t: float) -> None:
    timeline.add(t, "ADDED", pod)
    for i, reason in enumerate(("ErrImagePull", "ImagePullBackOff", "ImagePullBackOff")):
        message = f'Back-off pulling image "{pod["spec"]["containers"][0]["image"]}"'
        _set(
            pod,
            t + 3 + i * 15,
            phase="Pending",
            ready=False,
            container=_container(pod, {"waiting": {"reason": reason, "message": message}}, ready=False),
        )
        timeline.add(t + 3 + i * 15, "MODIFIED", pod)


def _evicted(timeline: _Timeline, pod: Obj, t: float) -> None:
    _running(timeline, pod, t)
    container = _container(pod, _terminated("Error", 137, t + 6, t + 60), ready=False)
    _set(pod, t + 60, phase="Failed", ready=False, container=container)
    pod["status"]["reason"] = "Evicted"
    pod["status"]["message"] = "The node was low on resource: ephemeral-storage."
    timeline.add(t + 60, "MODIFIED", pod)


def _healthy(timeline: _Timeline, pod: Obj, t: float, updates: int, *, scaled_away: bool) -> None:
    _running(timeline, pod, t)
    for i in range(updates):
        pod["metadata"]["labels"]["churn"] = str(i)  # label-only change: the relay suppresses it
        timeline.add(t + 10 + i * 3, "MODIFIED", pod)
    if scaled_away:
        end = t + 12 + updates * 3
        pod["metadata"]["deletionTimestamp"] = _ts(end + 30)
        timeline.add(end, "MODIFIED", pod)
        timeline.add(end + 2, "DELETED", pod)


def build(scenario: Scenario) -> tuple[list[str], dict[str, str]]:
    """The lines and the troubled pods (`namespace/name` → event type)."""
    timeline = _Timeline()
    trouble: dict[str, str] = {}
    index = 0

    def start() -> float:  # pods start over the first eight minutes, deterministically spread
        return (index * 7919) % (SPAN_S - 120)

    kinds = [("crash-loop", "load-crash", "api", _crash_loop, scenario.crash_replicas)]
    kinds += [
        ("oom-kill", "load-oom", "worker", _oom, scenario.share),
        ("image-pull", "load-image", "web", _image_pull, scenario.share),
        ("evicted", "load-evict", "batch", _evicted, scenario.share),
    ]
    for event_type, namespace, app, play, count in kinds:
        for i in range(count):
            pod = _pod(namespace, app, i, start())
            play(timeline, pod, start() if event_type != "crash-loop" else i * 0.05)
            trouble[f"{namespace}/{pod['metadata']['name']}"] = event_type
            index += 1
    healthy = scenario.pods - index
    budget = max(0, scenario.lines - len(timeline.events))
    per_pod = budget / healthy if healthy else 0
    for i in range(healthy):
        scaled_away = i % 3 == 0
        fixed = 3 + (2 if scaled_away else 0)
        updates = max(0, round(per_pod * (i + 1)) - round(per_pod * i) - fixed)
        _healthy(
            timeline,
            _pod(f"load-ns-{i % 20}", f"svc-{i % 50}", i, start()),
            start(),
            updates,
            scaled_away=scaled_away,
        )
        index += 1
    return timeline.lines(), trouble


def expected(scenario: Scenario) -> dict[str, str]:
    return build(scenario)[1]


def write(path: Path, scenario: Scenario) -> dict[str, str]:
    lines, trouble = build(scenario)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return trouble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--pods", type=int, default=Scenario.pods)
    parser.add_argument("--lines", type=int, default=Scenario.lines)
    parser.add_argument("--crash-replicas", type=int, default=Scenario.crash_replicas)
    args = parser.parse_args()
    trouble = write(args.out, Scenario(pods=args.pods, lines=args.lines, crash_replicas=args.crash_replicas))
    print(f"{args.out}: {sum(1 for _ in args.out.open())} lines, {len(trouble)} troubled pods")


if __name__ == "__main__":
    main()
