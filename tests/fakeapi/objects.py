"""Builders of raw objects of other kinds (as the API server stores them), for the relay's tests:
a rollout (Deployment -> ReplicaSet -> pods), ConfigMaps and Secrets, Nodes, Services, CRDs,
custom resources and khook `Hook`s. Each carries what must never leave the relay (a last-applied
annotation, managedFields, env values, ConfigMap values), marked with `CANARY`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.fakeapi.pods import CANARY, container_status

Obj = dict[str, Any]


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(("tests-objects", *parts))))


def _meta(namespace: str | None, name: str, **extra: Any) -> Obj:
    meta: Obj = {
        "name": name,
        "uid": _uid(namespace or "-", name),
        "creationTimestamp": "2026-11-20T09:00:00Z",
        "labels": {"app": name.split("-")[0], "team-secret-label": CANARY},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": f'{{"spec": "{CANARY}"}}',
            "owner-contact": CANARY,
        },
        "managedFields": [
            {"manager": "kubectl", "operation": "Update", "fieldsV1": {f"f:{CANARY}": {}}},
        ],
    }
    meta["annotations"] |= extra.pop("annotations", {})
    meta |= extra
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _template(image: str) -> Obj:
    return {
        "metadata": {"labels": {"app": "api"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "command": ["/bin/app", f"--password={CANARY}"],
                    "env": [
                        {"name": "DB_PASSWORD", "value": CANARY},
                        {"name": "PLAIN", "value": CANARY},
                        {"name": "FROM", "valueFrom": {"secretKeyRef": {"name": CANARY, "key": "k"}}},
                    ],
                    "volumeMounts": [{"name": "creds", "mountPath": f"/{CANARY}"}],
                }
            ],
            "volumes": [{"name": "creds", "secret": {"secretName": CANARY}}],
        },
    }


def owner(obj: Obj) -> Obj:
    """An ownerReference to `obj` (as its controller)."""
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def deployment(namespace: str, name: str, *, image: str, replicas: int = 2, generation: int = 1) -> Obj:
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": _meta(
            namespace,
            name,
            generation=generation,
            annotations={"deployment.kubernetes.io/revision": str(generation), "note": CANARY},
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": _template(image),
        },
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": "2026-11-20T09:00:30Z",
                    "lastTransitionTime": "2026-11-20T09:00:30Z",
                }
            ],
        },
    }


def replicaset(deploy: Obj, template_hash: str, *, image: str, replicas: int) -> Obj:
    namespace = deploy["metadata"]["namespace"]
    name = f"{deploy['metadata']['name']}-{template_hash}"
    return {
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": _meta(namespace, name, ownerReferences=[owner(deploy)], generation=1),
        "spec": {
            "replicas": replicas,
            "selector": {
                "matchLabels": {"app": deploy["metadata"]["name"], "pod-template-hash": template_hash}
            },
            "template": _template(image),
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


def owned_pod(rs: Obj, suffix: str, *, image: str) -> Obj:
    """A running pod of a ReplicaSet (owner reference to it)."""
    namespace = rs["metadata"]["namespace"]
    name = f"{rs['metadata']['name']}-{suffix}"
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": _uid(namespace, name),
            "creationTimestamp": "2026-11-20T09:00:00Z",
            "labels": {"app": "api"},
            "ownerReferences": [owner(rs)],
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": image}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [container_status(image=image)],
        },
    }


def configmap(namespace: str, name: str, data: dict[str, str]) -> Obj:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": _meta(namespace, name),
        "data": dict(data),
        "binaryData": {"blob": "Y2FuYXJ5"},
    }


def secret(namespace: str, name: str) -> Obj:
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": _meta(namespace, name),
        "type": "Opaque",
        "stringData": {"password": CANARY},
        "data": {"password": "cHctY2FuYXJ5"},
    }


def node(name: str, *, ready: bool = True, heartbeat: str = "2026-11-20T09:00:00Z") -> Obj:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": _meta(None, name),
        "spec": {"podCIDR": "10.0.0.0/24", "providerID": f"aws:///{CANARY}"},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "Unknown",
                    "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                    "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting",
                    "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": "2026-11-20T09:00:00Z" if ready else "2026-11-20T09:10:00Z",
                }
            ],
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "nodeInfo": {"kubeletVersion": "v1.33.0", "machineID": CANARY, "bootID": CANARY},
            "images": [{"names": [f"registry.example.com/{CANARY}"], "sizeBytes": 1}],
        },
    }


def service(namespace: str, name: str) -> Obj:
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": _meta(namespace, name),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
        "status": {"loadBalancer": {}},
    }


def crd(
    group: str, plural: str, kind: str, *, versions: tuple[str, ...] = ("v1",), scope: str = "Namespaced"
) -> Obj:
    return {
        "kind": "CustomResourceDefinition",
        "apiVersion": "apiextensions.k8s.io/v1",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"plural": plural, "kind": kind, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": scope,
            "versions": [
                {"name": v, "served": True, "storage": i == len(versions) - 1, "schema": {}}
                for i, v in enumerate(versions)
            ],
        },
        "status": {"conditions": [{"type": "Established", "status": "True"}]},
    }


def custom(api_version: str, kind: str, namespace: str, name: str, *, phase: str = "Ready") -> Obj:
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": _meta(namespace, name, generation=1),
        "spec": {"connectionString": f"postgres://u:{CANARY}@db", "replicas": 3},
        "status": {
            "phase": phase,
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-20T09:00:00Z"}],
            "secretRef": CANARY,
        },
    }


#: khook's README example Hook (events/hooks/rules/), as a user applies it with kubectl
KHOOK_EXAMPLE = (
    Path(__file__).resolve().parents[2] / "events/hooks/rules/khook-readme-basic-pod-monitoring.yaml"
)


def hook(namespace: str = "default", name: str = "basic-pod-monitoring") -> Obj:
    """khook's README Hook as the API server stores it (uid, managedFields, last-applied...)."""
    obj = yaml.safe_load(KHOOK_EXAMPLE.read_text())
    obj["metadata"] = _meta(namespace, name, generation=1)
    return obj
