"""Generate the replay watch streams in this folder, deterministically.

    PYTHONPATH=layers/podwatch:relay:. .venv/bin/python events/replay/make_sample.py

Writes `sample-stream.jsonl` and `bad-input.jsonl`: one API-server watch event per line, exactly as
`GET /api/v1/pods?watch=1` (and `/api/v1/events?watch=1`) sends it:
`{"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": {...}}`. Uids, timestamps and
resourceVersions are fixed (resourceVersions increase line by line), so a regeneration is
byte-identical. README.md in this folder says what each pod does and what must come out.

Every pod carries what a real pod carries and the relay must never forward: env vars with
secret-looking values, volumes, a large `last-applied-configuration` annotation, managedFields.
Each such value contains the marker `pw-canary`, so a test can prove none of it left the relay.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASE_TIME = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
#: Marker in every value that must never leave the relay (env, annotations, volumes, managedFields).
CANARY = "pw-canary"

Obj = dict[str, Any]


def _uid(name: str) -> str:
    """A stable, realistic-looking uid for a named object."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"podwatch-sample/{name}"))


def _ts(seconds: float) -> str:
    return (BASE_TIME + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_ts(seconds: float) -> str:
    return (BASE_TIME + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Stream:
    """Collects watch events in order and stamps each object with the next resourceVersion."""

    def __init__(self, first_rv: int) -> None:
        self.rv = first_rv
        self.lines: list[str] = []

    def emit(self, watch_type: str, obj: Obj) -> None:
        self.rv += 1
        snapshot = copy.deepcopy(obj)
        snapshot["metadata"]["resourceVersion"] = str(self.rv)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.lines.append(json.dumps({"type": watch_type, "object": snapshot}, separators=(",", ":")))

    def bookmark(self, kind: str = "Pod") -> None:
        self.rv += 1
        obj = {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": str(self.rv)}}
        self.lines.append(json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")))

    def raw(self, line: str) -> None:
        self.lines.append(line)

    def write(self, path: Path) -> None:
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- pods


def _env(app: str) -> list[Obj]:
    return [
        {"name": "APP_ENV", "value": "production"},
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "DATABASE_URL", "value": f"postgres://{app}:hunter2-{CANARY}@db.internal:5432/{app}"},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": f"wJalrXUtnFEMI/K7MDENG/bPxRfiCY{CANARY}"},
        {"name": "STRIPE_API_KEY", "value": f"sk_live_51H{CANARY}x9QeZ"},
        {
            "name": "JWT_SIGNING_KEY",
            "valueFrom": {"secretKeyRef": {"name": f"{app}-secrets-{CANARY}", "key": "jwt"}},
        },
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
    ]


def _container_spec(app: str, name: str, image: str, *, probes: bool = True) -> Obj:
    spec: Obj = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": _env(app),
        "envFrom": [{"secretRef": {"name": f"{app}-env-{CANARY}"}}],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app", "readOnly": True},
            {"name": "secrets", "mountPath": "/var/run/secrets/app", "readOnly": True},
            {"name": "kube-api-access-7xk2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True},
    }
    if probes:
        spec["livenessProbe"] = {
            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
        spec["readinessProbe"] = {
            "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
    return spec


def _managed_fields(t: float) -> list[Obj]:
    return [
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": _ts(t),
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:generateName": {},
                    "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                    "f:ownerReferences": {".": {}, 'k:{"uid":"..."}': {}},
                },
                "f:spec": {
                    "f:containers": {'k:{"name":"app"}': {"f:env": {'k:{"name":"DATABASE_URL"}': {}}}},
                    "f:volumes": {},
                    "f:note": {f"f:{CANARY}": {}},
                },
            },
        },
        {
            "manager": "kubelet",
            "operation": "Update",
            "apiVersion": "v1",
            "time": _ts(t + 5),
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:phase": {}}},
            "subresource": "status",
        },
    ]


def make_pod(
    *,
    namespace: str,
    app: str,
    replicaset_hash: str,
    suffix: str,
    containers: list[tuple[str, str]],
    node: str,
    created: float,
    project_id: str,
    workload_id: str,
    init_containers: list[tuple[str, str]] | None = None,
) -> Obj:
    """A Pending, just-scheduled pod owned by a ReplicaSet, as the API server returns it."""
    rs_name = f"{app}-{replicaset_hash}"
    name = f"{rs_name}-{suffix}"
    spec_containers = [_container_spec(app, c, image) for c, image in containers]
    last_applied = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": spec_containers},
    }
    pod: Obj = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "generateName": f"{rs_name}-",
            "namespace": namespace,
            "uid": _uid(f"{namespace}/{name}"),
            "resourceVersion": "0",
            "creationTimestamp": _ts(created),
            "labels": {
                "app": app,
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/part-of": namespace,
                "pod-template-hash": replicaset_hash,
                "project-id": project_id,
                "workload-id": workload_id,
            },
            "annotations": {
                # Huge, and full of secrets: the classic way they leak from a cluster.
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(last_applied) + "\n",
                "kubectl.kubernetes.io/restartedAt": _ts(created - 60),
                "checksum/config": hashlib.sha256(f"{app}-config".encode()).hexdigest(),
                "vault.hashicorp.com/agent-inject-secret-db": f"database/creds/{app}-{CANARY}",
                "example.com/runbook-notes": (f"{CANARY} " + "lorem ipsum dolor sit amet " * 120).strip(),
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs_name,
                    "uid": _uid(f"{namespace}/replicaset/{rs_name}"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": _managed_fields(created),
        },
        "spec": {
            "volumes": [
                {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}},
                {"name": "secrets", "secret": {"secretName": f"{app}-tls-{CANARY}", "defaultMode": 256}},
                {
                    "name": "kube-api-access-7xk2p",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt"}]}},
                        ],
                        "defaultMode": 420,
                    },
                },
            ],
            "containers": spec_containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": app,
            "serviceAccount": app,
            "nodeName": node,
            "securityContext": {"fsGroup": 2000},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": _ts(created),
                }
            ],
            "qosClass": "Burstable",
        },
    }
    if init_containers:
        pod["spec"]["initContainers"] = [
            _container_spec(app, c, image, probes=False) for c, image in init_containers
        ]
    return pod


def _conditions(t: float, *, initialized: bool, ready: bool, scheduled_at: float) -> list[Obj]:
    def cond(kind: str, ok: bool, reason: str | None = None) -> Obj:
        c: Obj = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
        c["lastTransitionTime"] = _ts(t)
        if reason and not ok:
            c["reason"] = reason
        return c

    return [
        cond("PodReadyToStartContainers", True),
        cond("Initialized", initialized, "PodInitializing"),
        cond("Ready", ready, "ContainersNotReady"),
        cond("ContainersReady", ready, "ContainersNotReady"),
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": _ts(scheduled_at),
        },
    ]


def _cs(name: str, image: str, *, state: Obj, ready: bool, restarts: int = 0, last: Obj | None = None) -> Obj:
    started = "running" in state
    return {
        "name": name,
        "state": state,
        "lastState": last or {},
        "ready": ready,
        "restartCount": restarts,
        "image": image,
        "imageID": f"{image.split(':')[0]}@sha256:" + hashlib.sha256(image.encode()).hexdigest(),
        "containerID": "containerd://" + hashlib.sha256(f"{name}{restarts}".encode()).hexdigest(),
        "started": started,
    }


def _running(t: float) -> Obj:
    return {"running": {"startedAt": _ts(t)}}


def _waiting(reason: str, message: str | None = None) -> Obj:
    w: Obj = {"reason": reason}
    if message:
        w["message"] = message
    return {"waiting": w}


def _terminated(reason: str, code: int, started: float, finished: float, message: str | None = None) -> Obj:
    t: Obj = {
        "exitCode": code,
        "reason": reason,
        "startedAt": _ts(started),
        "finishedAt": _ts(finished),
        "containerID": "containerd://" + hashlib.sha256(f"{reason}{finished}".encode()).hexdigest(),
    }
    if message:
        t["message"] = message
    return {"terminated": t}


def set_running(pod: Obj, t: float, *, ready: bool = True, containers: list[Obj] | None = None) -> None:
    status = pod["status"]
    status["phase"] = "Running"
    status["hostIP"] = "10.0.12.34"
    status["hostIPs"] = [{"ip": "10.0.12.34"}]
    status["podIP"] = "10.244.3." + str(
        int(hashlib.sha256(pod["metadata"]["name"].encode()).hexdigest(), 16) % 250
    )
    status["podIPs"] = [{"ip": status["podIP"]}]
    status.setdefault("startTime", _ts(t))
    created = datetime.strptime(pod["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    scheduled_at = (created - BASE_TIME).total_seconds()
    status["conditions"] = _conditions(t, initialized=True, ready=ready, scheduled_at=scheduled_at)
    if containers is None:
        containers = [
            _cs(c["name"], c["image"], state=_running(t), ready=ready) for c in pod["spec"]["containers"]
        ]
    status["containerStatuses"] = containers
    if "initContainers" in pod["spec"]:
        status["initContainerStatuses"] = [
            _cs(c["name"], c["image"], state=_terminated("Completed", 0, t - 8, t - 2), ready=True)
            for c in pod["spec"]["initContainers"]
        ]


def set_creating(pod: Obj, t: float) -> None:
    status = pod["status"]
    status["hostIP"] = "10.0.12.34"
    status["hostIPs"] = [{"ip": "10.0.12.34"}]
    status["startTime"] = _ts(t)
    created = datetime.strptime(pod["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    status["conditions"] = _conditions(
        t,
        initialized="initContainers" not in pod["spec"],
        ready=False,
        scheduled_at=(created - BASE_TIME).total_seconds(),
    )
    status["containerStatuses"] = [
        _cs(c["name"], c["image"], state=_waiting("ContainerCreating"), ready=False)
        for c in pod["spec"]["containers"]
    ]


# --------------------------------------------------------------------------- core/v1 Events


def make_event(
    *,
    namespace: str,
    involved: Obj,
    reason: str,
    message: str,
    type_: str,
    t: float,
    component: str = "kubelet",
    host: str | None = None,
    field_path: str | None = None,
) -> Obj:
    inv = dict(involved)
    if field_path:
        inv["fieldPath"] = field_path
    name = f"{inv['name']}.{hashlib.sha256(f'{reason}{t}'.encode()).hexdigest()[:16]}"
    source: Obj = {"component": component}
    if host:
        source["host"] = host
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": _uid(f"event/{namespace}/{name}"),
            "resourceVersion": "0",
            "creationTimestamp": _ts(t),
            "managedFields": [
                {"manager": component, "operation": "Update", "apiVersion": "v1", "time": _ts(t)}
            ],
        },
        "involvedObject": inv,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": _ts(t),
        "lastTimestamp": _ts(t),
        "count": 1,
        "type": type_,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": host or "",
    }


def involved_pod(pod: Obj) -> Obj:
    md = pod["metadata"]
    return {
        "kind": "Pod",
        "namespace": md["namespace"],
        "name": md["name"],
        "uid": md["uid"],
        "apiVersion": "v1",
        "resourceVersion": md["resourceVersion"],
    }


# --------------------------------------------------------------------------- the sample stream


def sample_stream() -> Stream:
    s = Stream(first_rv=184_200)
    node_a, node_b = "ip-10-0-12-34.eu-west-1.compute.internal", "ip-10-0-47-11.eu-west-1.compute.internal"

    # (d) three healthy pods: ADDED (Pending, scheduled) → ContainerCreating → Running and Ready.
    healthy = [
        make_pod(
            namespace="shop",
            app="api",
            replicaset_hash="7d9f8b6c5d",
            suffix="x2x7q",
            containers=[
                ("api", "registry.example.com/shop/api:2.14.0"),
                ("envoy", "envoyproxy/envoy:v1.31.2"),
            ],
            init_containers=[("migrate", "registry.example.com/shop/api:2.14.0")],
            node=node_a,
            created=0,
            project_id="proj-shop",
            workload_id="wl-shop-api",
        ),
        make_pod(
            namespace="shop",
            app="web",
            replicaset_hash="5c8d7f9b44",
            suffix="m4k8z",
            containers=[("web", "registry.example.com/shop/web:1.9.3")],
            node=node_b,
            created=1,
            project_id="proj-shop",
            workload_id="wl-shop-web",
        ),
        make_pod(
            namespace="shop",
            app="worker",
            replicaset_hash="6b7c9d8f5a",
            suffix="p9w2r",
            containers=[
                ("worker", "registry.example.com/shop/worker:3.0.1"),
                ("log-shipper", "fluent/fluent-bit:3.1.9"),
            ],
            node=node_b,
            created=2,
            project_id="proj-shop",
            workload_id="wl-shop-worker",
        ),
    ]
    for pod in healthy:
        s.emit("ADDED", pod)
    s.bookmark()
    for i, pod in enumerate(healthy):
        set_creating(pod, 4 + i)
        s.emit("MODIFIED", pod)
    for i, pod in enumerate(healthy):
        set_running(pod, 12 + i, ready=False)
        s.emit("MODIFIED", pod)
    for i, pod in enumerate(healthy):
        set_running(pod, 20 + i, ready=True)
        pod["status"]["containerStatuses"] = [
            dict(c, state=_running(12 + i)) for c in pod["status"]["containerStatuses"]
        ]
        s.emit("MODIFIED", pod)
    api_pod = healthy[0]
    s.emit(
        "ADDED",
        make_event(
            namespace="shop",
            involved=involved_pod(api_pod),
            reason="Pulled",
            message='Container image "registry.example.com/shop/api:2.14.0" already present on machine',
            type_="Normal",
            t=10,
            host=node_a,
            field_path="spec.containers{api}",
        ),
    )
    s.emit(
        "ADDED",
        make_event(
            namespace="shop",
            involved=involved_pod(api_pod),
            reason="Started",
            message="Started container api",
            type_="Normal",
            t=12,
            host=node_a,
            field_path="spec.containers{api}",
        ),
    )

    # (a) payments-api goes into CrashLoopBackOff and restarts 1..5 times.
    crash = make_pod(
        namespace="payments",
        app="payments-api",
        replicaset_hash="84c6d9f7b8",
        suffix="tq5vn",
        containers=[
            ("api", "registry.example.com/payments/api:4.2.0"),
            ("envoy", "envoyproxy/envoy:v1.31.2"),
        ],
        node=node_a,
        created=30,
        project_id="proj-payments",
        workload_id="wl-payments-api",
    )
    s.emit("ADDED", crash)
    set_creating(crash, 32)
    s.emit("MODIFIED", crash)
    envoy_image = "envoyproxy/envoy:v1.31.2"
    api_image = "registry.example.com/payments/api:4.2.0"
    envoy_ok = _cs("envoy", envoy_image, state=_running(36), ready=True)
    set_running(
        crash, 36, ready=False, containers=[_cs("api", api_image, state=_running(36), ready=False), envoy_ok]
    )
    s.emit("MODIFIED", crash)
    backoff = make_event(
        namespace="payments",
        involved=involved_pod(crash),
        reason="BackOff",
        message=f"Back-off restarting failed container api in pod {crash['metadata']['name']}_payments"
        f"({crash['metadata']['uid']})",
        type_="Warning",
        t=45,
        host=node_a,
        field_path="spec.containers{api}",
    )
    t = 40.0
    crash_message = (
        "panic: failed to connect to database: dial tcp 10.96.14.2:5432: connect: connection refused"
    )
    for restart in range(1, 6):
        last = _terminated("Error", 1, t - 3, t, message=crash_message)
        set_running(
            crash,
            t,
            ready=False,
            containers=[
                _cs(
                    "api",
                    api_image,
                    state=_waiting(
                        "CrashLoopBackOff",
                        f"back-off {10 * 2 ** (restart - 1)}s restarting failed container=api "
                        f"pod={crash['metadata']['name']}_payments({crash['metadata']['uid']})",
                    ),
                    ready=False,
                    restarts=restart,
                    last=last,
                ),
                envoy_ok,
            ],
        )
        s.emit("MODIFIED", crash)
        if restart == 1:
            s.emit("ADDED", backoff)
        else:
            backoff["count"] = restart
            backoff["lastTimestamp"] = _ts(t + 1)
            s.emit("MODIFIED", backoff)
        if restart < 5:
            # The kubelet starts it again once the back-off expires; it fails a few seconds later.
            t += 10 * 2 ** (restart - 1)
            set_running(
                crash,
                t,
                ready=False,
                containers=[
                    _cs("api", api_image, state=_running(t), ready=False, restarts=restart, last=last),
                    envoy_ok,
                ],
            )
            s.emit("MODIFIED", crash)
            t += 4
        if restart == 2:
            s.bookmark()

    # (b) report-worker: its container is OOMKilled once, restarts and keeps running.
    oom = make_pod(
        namespace="reports",
        app="report-worker",
        replicaset_hash="59f6c7d8b9",
        suffix="h7c2d",
        containers=[("worker", "registry.example.com/reports/worker:1.4.2")],
        node=node_b,
        created=60,
        project_id="proj-reports",
        workload_id="wl-report-worker",
    )
    s.emit("ADDED", oom)
    set_creating(oom, 61)
    s.emit("MODIFIED", oom)
    set_running(oom, 64, ready=True)
    s.emit("MODIFIED", oom)
    oom_image = "registry.example.com/reports/worker:1.4.2"
    set_running(
        oom,
        190,
        ready=True,
        containers=[
            _cs(
                "worker",
                oom_image,
                state=_running(190),
                ready=True,
                restarts=1,
                last=_terminated("OOMKilled", 137, 64, 189),
            )
        ],
    )
    s.emit("MODIFIED", oom)

    # (e) checkout-web cannot pull its image: ErrImagePull, then ImagePullBackOff.
    pull = make_pod(
        namespace="shop",
        app="checkout-web",
        replicaset_hash="7fb9c6d4e2",
        suffix="j3n6s",
        containers=[("web", "registry.example.com/shop/checkout-web:9.9.9-typo")],
        node=node_a,
        created=90,
        project_id="proj-shop",
        workload_id="wl-checkout-web",
    )
    s.emit("ADDED", pull)
    set_creating(pull, 91)
    s.emit("MODIFIED", pull)
    pull_image = "registry.example.com/shop/checkout-web:9.9.9-typo"
    not_found = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{pull_image}": '
        f'failed to resolve reference "{pull_image}": not found'
    )
    pull["status"]["containerStatuses"] = [
        _cs("web", pull_image, state=_waiting("ErrImagePull", not_found), ready=False)
    ]
    s.emit("MODIFIED", pull)
    pull["status"]["containerStatuses"] = [
        _cs(
            "web",
            pull_image,
            state=_waiting("ImagePullBackOff", f'Back-off pulling image "{pull_image}"'),
            ready=False,
        )
    ]
    s.emit("MODIFIED", pull)
    # An Event written through events.k8s.io/v1 (series instead of count), as seen on core/v1.
    series_event = make_event(
        namespace="shop",
        involved=involved_pod(pull),
        reason="BackOff",
        message=f'Back-off pulling image "{pull_image}"',
        type_="Normal",
        t=100,
        host=node_a,
        field_path="spec.containers{web}",
    )
    series_event.update(
        {
            "firstTimestamp": None,
            "lastTimestamp": None,
            "count": None,
            "eventTime": _micro_ts(100),
            "series": {"count": 4, "lastObservedTime": _micro_ts(160)},
            "action": "Pulling",
            "reportingComponent": "kubelet",
        }
    )
    s.emit("ADDED", series_event)

    # (f) an Event about a Node: not about a pod, the relay skips it.
    s.emit(
        "ADDED",
        make_event(
            namespace="default",
            involved={"kind": "Node", "name": node_b, "uid": node_b, "apiVersion": "v1"},
            reason="NodeHasDiskPressure",
            message=f"Node {node_b} status is now: NodeHasDiskPressure",
            type_="Normal",
            t=200,
            host=node_b,
        ),
    )

    # (c) batch-exporter is evicted for ephemeral-storage pressure.
    evicted = make_pod(
        namespace="reports",
        app="batch-exporter",
        replicaset_hash="6d5f4c8b7a",
        suffix="r8t4m",
        containers=[("exporter", "registry.example.com/reports/exporter:2.0.7")],
        node=node_b,
        created=195,
        project_id="proj-reports",
        workload_id="wl-batch-exporter",
    )
    s.emit("ADDED", evicted)
    set_running(evicted, 198, ready=True)
    s.emit("MODIFIED", evicted)
    eviction_message = (
        "The node was low on resource: ephemeral-storage. Threshold quantity: 2146223048, available: "
        "1838404Ki. Container exporter was using 12885424Ki, request is 0, has larger consumption of "
        "ephemeral-storage. "
    )
    status = evicted["status"]
    status["phase"] = "Failed"
    status["reason"] = "Evicted"
    status["message"] = eviction_message
    status["conditions"] = [
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "TerminationByKubelet",
            "message": eviction_message,
            "lastProbeTime": None,
            "lastTransitionTime": _ts(205),
        },
        *[
            dict(c, status="False", reason="PodFailed", lastTransitionTime=_ts(206))
            if c["type"] in {"Ready", "ContainersReady"}
            else c
            for c in status["conditions"]
        ],
    ]
    status["containerStatuses"] = [
        _cs(
            "exporter",
            "registry.example.com/reports/exporter:2.0.7",
            state=_terminated("Error", 137, 198, 206),
            ready=False,
        )
    ]
    s.emit("MODIFIED", evicted)
    s.emit(
        "ADDED",
        make_event(
            namespace="reports",
            involved=involved_pod(evicted),
            reason="Evicted",
            message=eviction_message,
            type_="Warning",
            t=205,
            host=node_b,
        ),
    )

    # Noise that must be suppressed: the healthy pods change only in metadata.
    for i, pod in enumerate(healthy):
        pod["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] = _ts(240 + i)
        pod["metadata"]["managedFields"] = _managed_fields(240 + i)
        s.emit("MODIFIED", pod)
    s.bookmark()

    # (h) bad input the relay must count and skip without stopping.
    s.raw('{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"truncated-po')
    s.raw(json.dumps({"type": "WHATEVER", "object": {"kind": "Pod", "metadata": {"name": "x"}}}))
    s.emit(
        "ADDED",
        {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "api-config", "namespace": "shop", "uid": _uid("shop/configmap/api-config")},
            "data": {"DATABASE_PASSWORD": f"hunter2-{CANARY}"},
        },
    )

    # A healthy pod scaled away: graceful termination, then DELETED.
    web = healthy[1]
    web["metadata"]["deletionTimestamp"] = _ts(300)
    web["metadata"]["deletionGracePeriodSeconds"] = 30
    s.emit("MODIFIED", web)
    web["status"]["containerStatuses"] = [
        _cs(
            "web",
            "registry.example.com/shop/web:1.9.3",
            state=_terminated("Completed", 0, 13, 272),
            ready=False,
        )
    ]
    web["status"]["conditions"] = [
        dict(c, status="False", reason="PodCompleted") if c["type"] in {"Ready", "ContainersReady"} else c
        for c in web["status"]["conditions"]
    ]
    s.emit("MODIFIED", web)
    s.emit("DELETED", web)
    s.bookmark()
    return s


# --------------------------------------------------------------------------- bad input


def bad_input_stream() -> Stream:
    s = Stream(first_rv=990_000)
    node = "ip-10-0-99-1.eu-west-1.compute.internal"
    s.raw("this is not json at all")
    s.raw('{"type":"ADDED","object":')
    s.raw("[1, 2, 3]")
    s.raw(json.dumps({"object": {"kind": "Pod", "metadata": {"name": "no-type"}}}))
    s.raw(json.dumps({"type": "ADDED"}))
    s.raw(json.dumps({"type": "WHATEVER", "object": {"kind": "Pod", "metadata": {"name": "x"}}}))
    s.raw(
        json.dumps(
            {"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "no-uid", "namespace": "a"}}}
        )
    )
    s.raw(
        json.dumps(
            {
                "type": "ADDED",
                "object": {
                    "kind": "Secret",
                    "metadata": {"name": "db", "namespace": "a"},
                    "data": {"p": CANARY},
                },
            }
        )
    )
    s.raw(
        json.dumps(
            {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": "etcdserver: request timed out",
                    "reason": "InternalError",
                    "code": 500,
                },
            }
        )
    )
    s.raw("")

    crash = make_pod(
        namespace="billing",
        app="invoicer",
        replicaset_hash="5b6c7d8e9f",
        suffix="a1b2c",
        containers=[("invoicer", "registry.example.com/billing/invoicer:0.9.0")],
        node=node,
        created=0,
        project_id="proj-billing",
        workload_id="wl-invoicer",
    )
    set_running(
        crash,
        50,
        ready=False,
        containers=[
            _cs(
                "invoicer",
                "registry.example.com/billing/invoicer:0.9.0",
                state=_waiting("CrashLoopBackOff", "back-off 40s restarting failed container=invoicer"),
                ready=False,
                restarts=3,
                last=_terminated("Error", 2, 40, 48, message="config key INVOICE_BUCKET missing"),
            )
        ],
    )
    s.emit("ADDED", crash)
    s.raw('{"type": "MODIFIED", "object": {"kind": "Pod", "metadata": {"name": "inv')
    oom = make_pod(
        namespace="billing",
        app="pdf-renderer",
        replicaset_hash="8c9d7e6f5a",
        suffix="z9y8x",
        containers=[("renderer", "registry.example.com/billing/pdf-renderer:2.3.1")],
        node=node,
        created=5,
        project_id="proj-billing",
        workload_id="wl-pdf-renderer",
    )
    set_running(
        oom,
        120,
        ready=True,
        containers=[
            _cs(
                "renderer",
                "registry.example.com/billing/pdf-renderer:2.3.1",
                state=_running(120),
                ready=True,
                restarts=1,
                last=_terminated("OOMKilled", 137, 10, 118),
            )
        ],
    )
    s.emit("ADDED", oom)
    s.raw(
        json.dumps(
            {
                "type": "ADDED",
                "object": {
                    "kind": "Event",
                    "apiVersion": "v1",
                    "metadata": {"name": "n.1", "namespace": "default", "uid": _uid("event/node-1")},
                    "involvedObject": {"kind": "Node", "name": node},
                    "reason": "Rebooted",
                    "type": "Warning",
                    "count": 1,
                },
            }
        )
    )
    s.bookmark()
    return s


def main() -> None:
    sample_stream().write(HERE / "sample-stream.jsonl")
    bad_input_stream().write(HERE / "bad-input.jsonl")


if __name__ == "__main__":
    main()
