"""A recorded-style watch stream of realistic pods for the relay benchmark (deterministic).

Pods look like what a production API server sends: 6 app containers + 1 init container with
probes, resources and env in the spec, the usual labels and a few annotations, managedFields from
three managers, a full status. Each is about 17 KB on the wire (`pod_bytes_*` in the results): on
the heavy side of real pods (a 1-2 container pod is 4-8 KB), kept so because what the relay must
read of a pod (metadata and status) grows with its containers, not with the rest of its spec.

The stream: ADDED for every pod, then rounds of MODIFIED in the proportions a busy cluster shows:
about 3 in 4 updates change nothing that matters (the kubelet refreshing a probe time, a controller
touching labels or annotations, managedFields timestamps), 1 in 4 is a real transition (readiness
flip, restart with a termination reason, a waiting reason), plus some pods deleted and recreated.
"""

from __future__ import annotations

import copy
import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "events" / "replay"))
import make_sample as ms  # noqa: E402  # the replay sample's realistic pod builders

Obj = dict[str, Any]
CONTAINERS = [
    (f"svc-{name}", f"registry.example.com/shop/{name}:2.{i}.1")
    for i, name in enumerate(("api", "worker", "cache-sidecar", "log-shipper", "metrics-exporter", "envoy"))
]


def make_pod(index: int, *, uid_salt: str = "") -> Obj:
    namespace = f"team-{index % 40:02d}"
    pod = ms.make_pod(
        namespace=namespace,
        app=f"app{index % 300}",
        replicaset_hash=f"{(index * 7919) % 0xFFFFFFFFFF:010x}",
        suffix=f"{index:05d}",
        containers=CONTAINERS,
        node=f"ip-10-0-{index % 64}-{index % 200}.ec2.internal",
        created=index,
        project_id=f"proj-{index % 40}",
        workload_id=f"wl-{index % 300}",
        init_containers=[("init-migrate", "registry.example.com/shop/migrate:1.0")],
    )
    for volume in pod["spec"]["volumes"]:  # the sample omits `path`, which V1KeyToPath requires
        for source in volume.get("projected", {}).get("sources", []):
            for item in source.get("configMap", {}).get("items", []):
                item.setdefault("path", item["key"])
    meta = pod["metadata"]
    if uid_salt:
        meta["uid"] = ms._uid(f"{namespace}/{meta['name']}/{uid_salt}")
    meta["annotations"] = {
        "kubectl.kubernetes.io/restartedAt": "2026-11-20T08:00:00Z",
        "checksum/config": "9f" * 32,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
    }
    ms.set_running(pod, index + 30)
    return pod


def _line(watch_type: str, pod: Obj, rv: int) -> bytes:
    pod["metadata"]["resourceVersion"] = str(rv)
    return json.dumps({"type": watch_type, "object": pod}, separators=(",", ":")).encode()


def build_stream(pods: int = 2000, rounds: int = 12, seed: int = 7) -> list[bytes]:
    """ADDED for `pods` pods, then `rounds` MODIFIED per pod in a shuffled order (see module doc)."""
    rng = random.Random(seed)
    live = [make_pod(i) for i in range(pods)]
    rv = 10_000
    lines = []
    for pod in live:
        rv += 1
        lines.append(_line("ADDED", pod, rv))
    order = [i for _ in range(rounds) for i in range(pods)]
    rng.shuffle(order)
    for i in order:
        pod = live[i]
        rv += 1
        roll = rng.random()
        status = pod["status"]
        if roll < 0.45:  # probe refresh: only a lastProbeTime/managedFields time moves
            status["conditions"][0]["lastProbeTime"] = f"2026-11-20T09:{rv % 60:02d}:00Z"
            pod["metadata"]["managedFields"][-1]["time"] = f"2026-11-20T09:{rv % 60:02d}:00Z"
        elif roll < 0.75:  # a controller touches metadata only
            pod["metadata"]["labels"]["rollout-step"] = str(rv % 5)
            pod["metadata"]["annotations"]["checksum/config"] = f"{rv:064x}"
        elif roll < 0.87:  # readiness flip of one container
            c = status["containerStatuses"][rv % len(status["containerStatuses"])]
            c["ready"] = not c["ready"]
            for cond in status["conditions"]:
                if cond["type"] in {"Ready", "ContainersReady"}:
                    cond["status"] = (
                        "True" if all(x["ready"] for x in status["containerStatuses"]) else "False"
                    )
        elif roll < 0.97:  # a restart, with the previous instance's end
            c = status["containerStatuses"][rv % len(status["containerStatuses"])]
            c["restartCount"] += 1
            c["lastState"] = {
                "terminated": {
                    "exitCode": 137,
                    "reason": rng.choice(["OOMKilled", "Error"]),
                    "startedAt": "2026-11-20T09:00:00Z",
                    "finishedAt": f"2026-11-20T09:{rv % 60:02d}:{rv % 59:02d}Z",
                }
            }
        else:  # deleted and recreated by its ReplicaSet (new uid, same name)
            lines.append(_line("DELETED", pod, rv))
            rv += 1
            pod = live[i] = make_pod(i, uid_salt=str(rv))
            lines.append(_line("ADDED", pod, rv))
            continue
        lines.append(_line("MODIFIED", pod, rv))
    return lines


def pod_lines(count: int, start: int = 0) -> Any:
    """ADDED lines for `count` distinct pods, generated one at a time (for the memory benchmark).

    Not all alike, so that the tracker's sharing of identical container states is not flattered:
    one pod in five has a container that restarted (its own restart count, termination reason and
    time), one in ten has a container not ready."""
    template = make_pod(0)
    for i in range(start, start + count):
        pod = copy.deepcopy(template)
        meta = pod["metadata"]
        meta["name"] = f"app{i % 300}-{(i * 7919) % 0xFFFFFFFFFF:010x}-{i:06d}"
        meta["namespace"] = f"team-{i % 40:02d}"
        meta["uid"] = ms._uid(f"bench/{i}")
        pod["spec"]["nodeName"] = f"ip-10-0-{i % 64}-{i % 200}.ec2.internal"
        statuses = pod["status"]["containerStatuses"]
        if i % 5 == 0:
            c = statuses[i % len(statuses)]
            c["restartCount"] = 1 + i % 7
            c["lastState"] = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "OOMKilled" if i % 2 else "Error",
                    "startedAt": "2026-11-20T08:00:00Z",
                    "finishedAt": f"2026-11-20T{8 + i % 10:02d}:{i % 60:02d}:{(i // 60) % 60:02d}Z",
                }
            }
        if i % 10 == 3:
            statuses[(i // 10) % len(statuses)]["ready"] = False
        yield _line("ADDED", pod, 20_000 + i)
