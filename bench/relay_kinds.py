"""Objects of the other kinds for the relay benchmark (deterministic): Deployments, ReplicaSets,
Services, ConfigMaps and Nodes as a production API server sends them (managedFields from several
managers, the last-applied annotation, env in the pod templates, a node's image list), and a
mixed watch stream of them with the pods of `relay_stream`.

The mixed stream (`mixed_stream`): the pod stream, and per 2,000 pods 400 ReplicaSets, 200
Deployments, 100 Services, 200 ConfigMaps and 20 Nodes (the proportions of
`relay_rss_mb_10k_pods_all_kinds`), each ADDED, then 12 rounds of MODIFIED in a shuffled order,
spread through the pod lines: half change nothing projected (a resourceVersion, a managedFields
time, a node's heartbeat), a quarter touch metadata the relay does not read (annotations, labels
off its list), a quarter are real changes (replica counts, a condition, an image, a ConfigMap
value). Each line goes to its kind's consumer, as each kind's watcher feeds its own.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]
#: kind -> objects per 2,000 pods (per 10,000 pods x 5: the memory benchmark's counts)
PER_2000_PODS = {"ReplicaSet": 400, "Deployment": 200, "Service": 100, "ConfigMap": 200, "Node": 20}


def _uid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, ("bench-kinds", *parts)))))


def _managed(*managers: str) -> list[Obj]:
    return [
        {
            "manager": m,
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": "2026-11-20T08:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}, "f:team": {}}},
                "f:spec": {"f:replicas": {}},
            },
        }
        for m in managers
    ]


def _meta(kind: str, i: int, namespace: str | None, **extra: Any) -> Obj:
    name = f"{kind.lower()}-{i:05d}"
    meta: Obj = {
        "name": name,
        "uid": _uid(kind, i),
        "resourceVersion": "1",
        "generation": 1,
        "creationTimestamp": "2026-11-20T08:00:00Z",
        "labels": {"app": f"app{i % 300}", "app.kubernetes.io/name": f"app{i % 300}", "team": f"t{i % 40}"},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"kind": kind, "pad": "x" * 1500}),
            "meta.helm.sh/release-name": f"app{i % 300}",
        },
        "managedFields": _managed("helm", "kube-controller-manager", "kubectl-client-side-apply"),
        **extra,
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _template(i: int) -> Obj:
    env = [{"name": f"SETTING_{k}", "value": f"value-{k}-{i}"} for k in range(10)]
    return {
        "metadata": {"labels": {"app": f"app{i % 300}"}},
        "spec": {
            "containers": [
                {
                    "name": name,
                    "image": f"registry.example.com/shop/{name}:2.{i % 9}.1",
                    "env": env,
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
                }
                for name in ("api", "envoy")
            ]
        },
    }


def make(kind: str, i: int) -> Obj:
    """One object of `kind` (the i-th)."""
    ns = f"team-{i % 40:02d}"
    status_conditions = [
        {
            "type": "Available",
            "status": "True",
            "reason": "MinimumReplicasAvailable",
            "message": "Deployment has minimum availability.",
            "lastUpdateTime": "2026-11-20T08:00:00Z",
            "lastTransitionTime": "2026-11-20T08:00:00Z",
        }
    ]
    if kind == "Deployment":
        return {
            "kind": kind,
            "apiVersion": "apps/v1",
            "metadata": _meta(kind, i, ns),
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": f"app{i % 300}"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
                "template": _template(i),
            },
            "status": {
                "observedGeneration": 1,
                "replicas": 3,
                "readyReplicas": 3,
                "conditions": status_conditions,
            },
        }
    if kind == "ReplicaSet":
        owner = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": f"deployment-{i // 2:05d}",
            "uid": _uid("Deployment", i // 2),
            "controller": True,
        }
        return {
            "kind": kind,
            "apiVersion": "apps/v1",
            "metadata": _meta(kind, i, ns, ownerReferences=[owner]),
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": f"app{i % 300}"}},
                "template": _template(i),
            },
            "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3},
        }
    if kind == "Service":
        return {
            "kind": kind,
            "apiVersion": "v1",
            "metadata": _meta(kind, i, ns),
            "spec": {
                "type": "ClusterIP",
                "clusterIP": f"10.96.{i % 250}.{i % 200}",
                "selector": {"app": f"app{i % 300}"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
            "status": {"loadBalancer": {}},
        }
    if kind == "ConfigMap":
        return {
            "kind": kind,
            "apiVersion": "v1",
            "metadata": _meta(kind, i, ns),
            "data": {f"config-{k}.yaml": f"key: value-{k}\n" * 20 for k in range(10)},
        }
    return {  # Node
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": _meta(kind, i, None),
        "spec": {"podCIDR": f"10.1.{i}.0/24", "providerID": f"aws:///eu-west-1a/i-{i:017x}"},
        "status": {
            "conditions": [
                {
                    "type": t,
                    "status": "True" if t == "Ready" else "False",
                    "reason": f"Kubelet{t}",
                    "message": f"kubelet reports {t}",
                    "lastHeartbeatTime": "2026-11-20T08:00:00Z",
                    "lastTransitionTime": "2026-11-20T08:00:00Z",
                }
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
            ],
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "7910m", "memory": "31Gi", "pods": "110"},
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Bottlerocket", "machineID": f"{i:032x}"},
            "images": [
                {
                    "names": [f"registry.example.com/shop/image-{k}@sha256:{k:064x}"],
                    "sizeBytes": 10_000_000 + k,
                }
                for k in range(30)
            ],
        },
    }


def line(watch_type: str, obj: Obj, rv: int) -> bytes:
    obj["metadata"]["resourceVersion"] = str(rv)
    return json.dumps({"type": watch_type, "object": obj}, separators=(",", ":")).encode()


def _update(kind: str, obj: Obj, rv: int, roll: float) -> None:
    """Half nothing projected, a quarter metadata the relay does not read, a quarter real."""
    meta = obj["metadata"]
    if roll < 0.5:
        meta["managedFields"][1]["time"] = f"2026-11-20T09:{rv % 60:02d}:00Z"
        if kind == "Node":
            for condition in obj["status"]["conditions"]:
                condition["lastHeartbeatTime"] = f"2026-11-20T09:{rv % 60:02d}:{rv % 59:02d}Z"
    elif roll < 0.75:
        meta["annotations"]["meta.helm.sh/release-revision"] = str(rv)
        meta["labels"]["team"] = f"t{rv % 40}"
    elif kind in {"Deployment", "ReplicaSet"}:
        obj["status"]["readyReplicas"] = rv % 4
    elif kind == "ConfigMap":
        obj["data"]["config-0.yaml"] = f"key: {rv}\n"
    elif kind == "Node":
        ready = obj["status"]["conditions"][-1]
        ready["status"] = "False" if ready["status"] == "True" else "True"
        ready["lastTransitionTime"] = f"2026-11-20T09:{rv % 60:02d}:00Z"
    else:
        obj["spec"]["ports"][0]["targetPort"] = 8080 + rv % 3


def object_stream(pods: int = 2000, rounds: int = 12, seed: int = 11) -> list[tuple[str, bytes]]:
    """(kind, line): ADDED for every object, then `rounds` MODIFIED each, shuffled."""
    rng = random.Random(seed)
    scale = pods / 2000
    live = [
        (kind, make(kind, i)) for kind, count in PER_2000_PODS.items() for i in range(round(count * scale))
    ]
    rv = 500_000
    out: list[tuple[str, bytes]] = []
    for kind, obj in live:
        rv += 1
        out.append((kind, line("ADDED", obj, rv)))
    order = [i for _ in range(rounds) for i in range(len(live))]
    rng.shuffle(order)
    for i in order:
        kind, obj = live[i]
        rv += 1
        _update(kind, obj, rv, rng.random())
        out.append((kind, line("MODIFIED", obj, rv)))
    return out


def mixed_stream(pod_lines: list[bytes], pods: int = 2000, seed: int = 13) -> list[tuple[str, bytes]]:
    """The pod stream (of `pods` pods) with the object stream spread through it, each in its order."""
    objects = object_stream(pods=pods)
    rng = random.Random(seed)
    slots = sorted(rng.sample(range(len(pod_lines) + len(objects)), len(objects)))
    out: list[tuple[str, bytes]] = []
    pods = iter(pod_lines)
    taken = 0
    for position in range(len(pod_lines) + len(objects)):
        if taken < len(slots) and slots[taken] == position:
            out.append(objects[taken])
            taken += 1
        else:
            out.append(("Pod", next(pods)))
    return out


def object_lines(kind: str, count: int) -> Iterator[bytes]:
    """ADDED lines of `count` distinct objects of `kind`, one at a time (the memory benchmark)."""
    for i in range(count):
        yield line("ADDED", make(kind, i), i + 1)
