"""Builders of raw Pod and core/v1 Event JSON (as the API server sends them), for relay tests.

`pod(...)` gives a realistic pod; `with_secrets(pod)` adds everything that must never leave the
relay (env values, volumes, huge annotations, managedFields), each marked with `CANARY`.
"""

from __future__ import annotations

import uuid
from typing import Any

Obj = dict[str, Any]

#: Marker in every value that must never reach SQS.
CANARY = "pw-canary"
#: Makes an annotation huge (200 KB): alone it would break SQS's 256 KiB limit if forwarded.
PAD = "x" * 200_000


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(("tests", *parts))))


def container_status(
    name: str = "app",
    *,
    restarts: int = 0,
    running: bool = True,
    waiting: str | None = None,
    waiting_message: str | None = None,
    terminated: tuple[str, int] | None = None,
    last_terminated: tuple[str, int] | None = None,
    last_finished_at: str = "2026-11-20T09:05:00Z",
    ready: bool | None = None,
    image: str = "registry.example.com/app:1.0.0",
) -> Obj:
    state: Obj
    if waiting is not None:
        state = {"waiting": {"reason": waiting} | ({"message": waiting_message} if waiting_message else {})}
    elif terminated is not None:
        state = {"terminated": {"reason": terminated[0], "exitCode": terminated[1]}}
    elif running:
        state = {"running": {"startedAt": "2026-11-20T09:00:10Z"}}
    else:
        state = {}
    last: Obj = {}
    if last_terminated is not None:
        last = {
            "terminated": {
                "reason": last_terminated[0],
                "exitCode": last_terminated[1],
                "startedAt": "2026-11-20T09:00:10Z",
                "finishedAt": last_finished_at,
            }
        }
    is_ready = ready if ready is not None else (waiting is None and terminated is None and running)
    return {
        "name": name,
        "state": state,
        "lastState": last,
        "ready": is_ready,
        "restartCount": restarts,
        "image": image,
        "imageID": f"{image}@sha256:{'0' * 64}",
        "started": "running" in state,
    }


def pod(
    namespace: str = "shop",
    name: str = "api-7d9f8b6c5d-x2x7q",
    *,
    uid: str | None = None,
    rv: str = "100",
    phase: str = "Running",
    containers: list[Obj] | None = None,
    init_containers: list[Obj] | None = None,
    ephemeral_containers: list[Obj] | None = None,
    reason: str | None = None,
    message: str | None = None,
    labels: dict[str, str] | None = None,
    node: str = "node-1",
    scheduled: bool = True,
    ready: bool = True,
) -> Obj:
    status: Obj = {
        "phase": phase,
        "conditions": [
            {"type": "PodScheduled", "status": "True" if scheduled else "False"},
            {"type": "Ready", "status": "True" if ready else "False"},
        ],
        "containerStatuses": containers if containers is not None else [container_status()],
    }
    if init_containers is not None:
        status["initContainerStatuses"] = init_containers
    if ephemeral_containers is not None:
        status["ephemeralContainerStatuses"] = ephemeral_containers
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or _uid(namespace, name),
            "resourceVersion": rv,
            "creationTimestamp": "2026-11-20T09:00:00Z",
            "labels": labels
            if labels is not None
            else {"app": "api", "project-id": "proj-shop", "workload-id": "wl-shop-api"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "api-7d9f8b6c5d",
                    "uid": _uid(namespace, "rs"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "image": "registry.example.com/app:1.0.0"}],
        },
        "status": status,
    }


def with_secrets(obj: Obj) -> Obj:
    """The pod with env vars holding secret-looking values, volumes, a huge last-applied
    annotation and managedFields — every value marked with CANARY."""
    meta = obj["metadata"]
    spec = obj["spec"]
    env = [
        {"name": "DATABASE_URL", "value": f"postgres://app:hunter2-{CANARY}@db:5432/app"},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": f"wJalrXUtnFEMI/{CANARY}"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": f"tok-{CANARY}", "key": "t"}}},
    ]
    for c in spec["containers"]:
        c["env"] = env
        c["volumeMounts"] = [{"name": f"secret-{CANARY}", "mountPath": "/secrets"}]
    spec["volumes"] = [{"name": f"secret-{CANARY}", "secret": {"secretName": f"db-{CANARY}"}}]
    meta["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": f'{{"env": "{CANARY}", "pad": "{PAD}"}}',
        "vault.hashicorp.com/agent-inject-secret-db": f"database/creds/{CANARY}",
    }
    meta["managedFields"] = [
        {
            "manager": "kubectl",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:containers": {f"k:{CANARY}": {}}}},
        }
    ]
    # Secrets can hide in free text too, but messages are part of the contract (truncated only).
    return obj


def core_event(
    *,
    namespace: str = "shop",
    name: str = "api-7d9f8b6c5d-x2x7q.17f0a1b2c3d4e5f6",
    involved_kind: str = "Pod",
    involved_name: str = "api-7d9f8b6c5d-x2x7q",
    reason: str = "BackOff",
    message: str = "Back-off restarting failed container app",
    type_: str = "Warning",
    count: int | None = 1,
    series_count: int | None = None,
    rv: str = "200",
    uid: str | None = None,
) -> Obj:
    obj: Obj = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or _uid("event", namespace, name),
            "resourceVersion": rv,
            "creationTimestamp": "2026-11-20T09:01:00Z",
        },
        "involvedObject": {
            "kind": involved_kind,
            "name": involved_name,
            "namespace": namespace,
            "uid": _uid(namespace, involved_name),
            "fieldPath": "spec.containers{app}",
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2026-11-20T09:01:00Z",
        "lastTimestamp": "2026-11-20T09:02:00Z",
        "count": count,
    }
    if series_count is not None:
        obj.update(
            {
                "count": None,
                "firstTimestamp": None,
                "lastTimestamp": None,
                "eventTime": "2026-11-20T09:01:00.123456Z",
                "series": {"count": series_count, "lastObservedTime": "2026-11-20T09:03:00.654321Z"},
            }
        )
    return obj
