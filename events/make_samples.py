"""Generate the sample SQS events of the processor and deliver functions from the shared models.

Bodies are exactly what the producers write (the relay's `encode_envelope`, the processor's
`Notification.model_dump_json`); ids, uids and timestamps are fixed, so a regeneration is
byte-identical. The envelope builders (`pod_envelope`, `object_envelope`, ...) are the tests' too
(test_kinds_moto, bench/processor.py). Edit this script, not the JSON files:

    PYTHONPATH=layers/podwatch:relay:. .venv/bin/python events/make_samples.py

    events/processor/batch.json   a normal batch: crash loop, OOM kill, eviction, image pull, a probe
                                  failure Event, a restart (type disabled by default), a healthy pod,
                                  a deleted pod, a heartbeat
    events/processor/poison.json  malformed JSON, an unknown kind, a wrong schema version and a pod
                                  envelope missing its uid, among three good messages
    events/processor/enroll.json  a relay's enroll and heartbeat messages
    events/processor/lifecycle.json  an incident's life: three replicas of a Deployment crash-loop,
                                  one repeats, then all three are running and ready again
                                  (recovered; delivered when the remote config enables it)
    events/processor/kinds.json   other kinds (`object`, `hook` envelopes): a rollout (Deployment,
                                  ReplicaSet), a node going NotReady and one under memory pressure
                                  (delivered), the first node Ready again (recovered: filtered unless
                                  enabled), a Hook applied then deleted in the cluster, and an object
                                  without its uid and a Hook with an unknown event type (quarantined)
    events/deliver/batch.json     notifications for two clusters, as the processor forwards them
    events/deliver/poison.json    a body cut off mid-write, notifications that fail validation (an
                                  unknown event type, no cluster_id, a wrong schema version) and an
                                  enroll command without its request, among three good notifications
                                  of two clusters (delivered; the rest quarantined as `malformed`)
    events/fanout/batch.json      the same notifications as events/deliver/batch.json, on the fan-out
                                  queue (put on the EventBridge bus)
    events/fanout/poison.json     the bodies of events/deliver/poison.json on the fan-out queue (the
                                  good three put on the bus, the rest quarantined as `malformed`)
    events/hooks/batch.json       notifications as the hooks queue gets them: one as the processor
                                  writes it, one wrapped in an EventBridge event (`detail`), and a
                                  body that is not JSON (quarantined as `malformed`)
    events/history_writer/batch.json   the history message of processor/batch.json: one pack of its
                                  pods and Event (the crash loop's with its classification)
    events/history_writer/poison.json  the bodies of processor/poison.json on the history queue (the
                                  good three stored, the rest quarantined with their reasons)
    events/history/events.json    GET /clusters/prod-eu-1/api/v1/events?namespace=payments&limit=50
    events/history/object.json    GET /clusters/prod-eu-1/api/v1/events/payments/pod/payments-api-...
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from podwatch import ids
from podwatch.models import (
    ContainerStatus,
    EnrollEnvelope,
    EnrollPayload,
    EventType,
    HeartbeatEnvelope,
    HeartbeatPayload,
    HookEnvelope,
    HookObject,
    InvolvedObject,
    KubeEvent,
    KubeEventEnvelope,
    KubeObject,
    Notification,
    ObjectEnvelope,
    OwnerReference,
    PodCondition,
    PodEnvelope,
    PodEvent,
    Transition,
)
from podwatch.wire import encode_envelope

ROOT = Path(__file__).resolve().parent
CLUSTER = "prod-eu-1"
RELAY_VERSION = "0.1.0"
T0 = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
REGION = "us-east-1"
ACCOUNT = "123456789012"
POD_EVENTS_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:podwatch-local-pod-events"
HOOKS_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:podwatch-local-hooks"
DELIVERIES_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:podwatch-local-deliveries"
FANOUT_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:podwatch-local-fanout"
HISTORY_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:podwatch-local-history"


def _uid(name: str) -> str:
    h = hashlib.sha256(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _rs_pod(namespace: str, deployment: str, template_hash: str, suffix: str, **kw: Any) -> PodEvent:
    name = f"{deployment}-{template_hash}-{suffix}"
    labels = {
        "app.kubernetes.io/name": deployment,
        "pod-template-hash": template_hash,
        "project-id": f"proj-{namespace}",
        "workload-id": f"wl-{deployment}",
    }
    defaults: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "uid": _uid(name),
        "phase": "Running",
        "labels": labels,
        "owner_references": [
            OwnerReference(
                kind="ReplicaSet", name=f"{deployment}-{template_hash}", uid=_uid(deployment), controller=True
            )
        ],
        "node": "ip-10-0-12-34.eu-west-1.compute.internal",
        "created_at": T0 - timedelta(hours=2),
        "observed_at": T0,
        "conditions": [
            PodCondition(type="PodScheduled", status="True"),
            PodCondition(type="Ready", status="True"),
        ],
    }
    defaults.update(kw)
    return PodEvent(**defaults)


def pod_envelope(pod: PodEvent, cluster: str = CLUSTER) -> str:
    event_id = ids.pod_event_id(cluster, pod.uid, pod.resource_version, pod.watch_type)
    return encode_envelope(
        PodEnvelope(
            event_id=event_id, cluster_id=cluster, relay_version=RELAY_VERSION, sent_at=T0, payload=pod
        )
    )


def kube_event_envelope(event: KubeEvent) -> str:
    event_id = ids.kube_event_id(CLUSTER, event.uid, event.count)
    return encode_envelope(
        KubeEventEnvelope(
            event_id=event_id, cluster_id=CLUSTER, relay_version=RELAY_VERSION, sent_at=T0, payload=event
        )
    )


def crash_loop_pod(suffix: str = "tq5vn", rv: str = "48213") -> PodEvent:
    return _rs_pod(
        "payments",
        "payments-api",
        "84c6d9f7b8",
        suffix,
        resource_version=rv,
        restart_count=5,
        containers=[
            ContainerStatus(
                name="api",
                image="registry.example.com/payments-api:1.42.0",
                restart_count=5,
                state="waiting",
                reason="CrashLoopBackOff",
                message="back-off 2m40s restarting failed container=api",
                last_termination_reason="Error",
                last_exit_code=1,
            ),
            ContainerStatus(
                name="envoy", image="envoyproxy/envoy:v1.31", ready=True, restart_count=0, state="running"
            ),
        ],
        conditions=[
            PodCondition(type="PodScheduled", status="True"),
            PodCondition(type="Ready", status="False", reason="ContainersNotReady"),
        ],
        transitions=[Transition(field="restart_count", container="api", old=4, new=5)],
    )


def oom_pod() -> PodEvent:
    return _rs_pod(
        "reports",
        "report-worker",
        "59f6c7d8b9",
        "h7c2d",
        resource_version="48230",
        restart_count=1,
        containers=[
            ContainerStatus(
                name="worker",
                image="registry.example.com/report-worker:3.1.0",
                ready=True,
                started=True,
                restart_count=1,
                state="running",
                last_termination_reason="OOMKilled",
                last_exit_code=137,
                last_finished_at=T0 - timedelta(seconds=20),
            )
        ],
        transitions=[
            Transition(field="restart_count", container="worker", old=0, new=1),
            Transition(field="last_termination_reason", container="worker", old=None, new="OOMKilled"),
        ],
    )


def evicted_pod() -> PodEvent:
    return _rs_pod(
        "reports",
        "batch-exporter",
        "6d5f4c8b7a",
        "r8t4m",
        resource_version="48241",
        phase="Failed",
        reason="Evicted",
        message="The node was low on resource: ephemeral-storage. Container exporter was using 12Gi.",
        containers=[
            ContainerStatus(
                name="exporter", state="terminated", reason="Error", exit_code=137, restart_count=0
            )
        ],
        transitions=[
            Transition(field="phase", old="Running", new="Failed"),
            Transition(field="reason", old=None, new="Evicted"),
        ],
    )


def image_pull_pod() -> PodEvent:
    return _rs_pod(
        "shop",
        "checkout-web",
        "7fb9c6d4e2",
        "j3n6s",
        resource_version="48250",
        phase="Pending",
        containers=[
            ContainerStatus(
                name="web",
                image="registry.example.com/checkout-web:does-not-exist",
                state="waiting",
                reason="ImagePullBackOff",
                message='Back-off pulling image "registry.example.com/checkout-web:does-not-exist"',
            )
        ],
        conditions=[
            PodCondition(type="PodScheduled", status="True"),
            PodCondition(type="Ready", status="False"),
        ],
        transitions=[
            Transition(field="waiting_reason", container="web", old="ErrImagePull", new="ImagePullBackOff")
        ],
    )


def restarted_pod() -> PodEvent:
    return _rs_pod(
        "shop",
        "cart",
        "5d8c7b9f6d",
        "k2l9p",
        resource_version="48260",
        restart_count=3,
        containers=[
            ContainerStatus(
                name="cart",
                ready=True,
                restart_count=3,
                state="running",
                # a clean exit that restarts: pod-restart (a non-zero exit would be a crash loop)
                last_termination_reason="Completed",
                last_exit_code=0,
            )
        ],
        transitions=[Transition(field="restart_count", container="cart", old=2, new=3)],
    )


def healthy_pod(suffix: str = "x2x7q", rv: str = "48270") -> PodEvent:
    return _rs_pod(
        "shop",
        "api",
        "7d9f8b6c5d",
        suffix,
        resource_version=rv,
        containers=[
            ContainerStatus(name="migrate", kind="init", state="terminated", reason="Completed", exit_code=0),
            ContainerStatus(name="api", ready=True, started=True, state="running"),
        ],
        transitions=[Transition(field="ready", container="api", old=False, new=True)],
    )


def deleted_pod() -> PodEvent:
    return _rs_pod(
        "shop",
        "web",
        "5c8d7f9b44",
        "m4k8z",
        resource_version="48280",
        watch_type="DELETED",
        phase="Running",
        deleted_at=T0,
        containers=[ContainerStatus(name="web", state="terminated", reason="Completed", exit_code=0)],
    )


def unschedulable_pod() -> PodEvent:
    return _rs_pod(
        "ml",
        "trainer",
        "6f7b8c9d5b",
        "z9q4w",
        resource_version="48290",
        phase="Pending",
        node=None,
        containers=[ContainerStatus(name="trainer", state="waiting", reason="ContainerCreating")],
        conditions=[
            PodCondition(
                type="PodScheduled",
                status="False",
                reason="Unschedulable",
                message="0/6 nodes are available: 6 Insufficient nvidia.com/gpu.",
            )
        ],
        transitions=[Transition(field="condition.PodScheduled", old=None, new="False")],
    )


def probe_event() -> KubeEvent:
    pod = "checkout-web-7fb9c6d4e2-b5v8n"
    return KubeEvent(
        namespace="shop",
        name=f"{pod}.1873a2b4c5d6e7f8",
        uid=_uid(f"event-{pod}-unhealthy"),
        reason="Unhealthy",
        message="Readiness probe failed: HTTP probe failed with statuscode: 503",
        type="Warning",
        count=3,
        involved_object=InvolvedObject(
            kind="Pod", name=pod, namespace="shop", uid=_uid(pod), field_path="spec.containers{web}"
        ),
        first_timestamp=T0 - timedelta(minutes=2),
        last_timestamp=T0,
        source_component="kubelet",
        resource_version="48300",
        observed_at=T0,
    )


def heartbeat() -> str:
    return encode_envelope(
        HeartbeatEnvelope(
            event_id=ids.control_event_id("heartbeat", CLUSTER, 42),
            cluster_id=CLUSTER,
            relay_version=RELAY_VERSION,
            sent_at=T0,
            payload=HeartbeatPayload(sequence=42, started_at=T0 - timedelta(hours=1), pods_tracked=57),
        )
    )


def enroll() -> str:
    started = T0 - timedelta(hours=1)
    return encode_envelope(
        EnrollEnvelope(
            event_id=ids.control_event_id("enroll", CLUSTER, RELAY_VERSION, started.isoformat()),
            cluster_id=CLUSTER,
            relay_version=RELAY_VERSION,
            sent_at=started,
            payload=EnrollPayload(
                relay_version=RELAY_VERSION, started_at=started, kubernetes_version="v1.33.4"
            ),
        )
    )


def recovered_pod(suffix: str, rv: str) -> PodEvent:
    """The crash-looping `api` container of `crash_loop_pod(suffix)` is running and ready again."""
    crashed = crash_loop_pod(suffix)
    api, envoy = crashed.containers
    return crashed.model_copy(
        update={
            "resource_version": rv,
            "observed_at": T0 + timedelta(minutes=10),
            "containers": [
                api.model_copy(
                    update={
                        "state": "running",
                        "reason": None,
                        "message": None,
                        "ready": True,
                        "started": True,
                    }
                ),
                envoy,
            ],
            "conditions": [
                PodCondition(type="PodScheduled", status="True"),
                PodCondition(type="Ready", status="True"),
            ],
            "transitions": [Transition(field="ready", container="api", old=False, new=True)],
        }
    )


def processor_lifecycle() -> list[str]:
    replicas = ("tq5vn", "m8x2k", "p4w7d")
    crashes = [pod_envelope(crash_loop_pod(s, rv=str(48400 + i))) for i, s in enumerate(replicas)]
    repeat = pod_envelope(crash_loop_pod("tq5vn", rv="48410"))
    recoveries = [pod_envelope(recovered_pod(s, rv=str(48420 + i))) for i, s in enumerate(replicas)]
    return [*crashes, repeat, *recoveries]


def record(body: str, n: int, *, queue_arn: str) -> dict[str, Any]:
    """An SQS event source record, as Lambda delivers it, with fixed ids and timestamps."""
    sent = str(int(T0.timestamp() * 1000))
    return {
        "messageId": f"{hashlib.sha256(queue_arn.encode()).hexdigest()[:8]}-0000-4000-8000-{n:012d}",
        "receiptHandle": f"AQEB{hashlib.sha256(body.encode()).hexdigest()}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": sent,
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": sent,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def event(bodies: list[str], *, queue_arn: str, first: int = 1) -> dict[str, Any]:
    return {"Records": [record(b, first + i, queue_arn=queue_arn) for i, b in enumerate(bodies)]}


def processor_batch() -> list[str]:
    return [
        pod_envelope(crash_loop_pod()),
        pod_envelope(healthy_pod()),
        kube_event_envelope(probe_event()),
        pod_envelope(oom_pod()),
        pod_envelope(restarted_pod()),
        pod_envelope(evicted_pod()),
        pod_envelope(image_pull_pod()),
        pod_envelope(deleted_pod()),
        heartbeat(),
    ]


def processor_poison() -> list[str]:
    good_healthy = pod_envelope(healthy_pod("q8w2e", "48310"))
    missing_uid = json.loads(pod_envelope(healthy_pod("r7t5y", "48311")))
    del missing_uid["payload"]["uid"]
    unknown_kind = json.loads(heartbeat())
    unknown_kind["kind"] = "node"
    wrong_version = json.loads(pod_envelope(crash_loop_pod("v3b6n", "48312")))
    wrong_version["schema_version"] = 99
    return [
        pod_envelope(crash_loop_pod("c4d7f", "48313")),
        '{"schema_version": 1, "kind": "pod", "event_id": ',  # cut off mid-write
        good_healthy,
        json.dumps(unknown_kind, separators=(",", ":")),
        pod_envelope(unschedulable_pod()),
        json.dumps(wrong_version, separators=(",", ":")),
        json.dumps(missing_uid, separators=(",", ":")),
    ]


def object_envelope(obj: KubeObject, cluster: str = CLUSTER) -> str:
    event_id = ids.object_event_id(cluster, obj.kind, obj.uid, obj.resource_version, obj.watch_type)
    return encode_envelope(
        ObjectEnvelope(
            event_id=event_id, cluster_id=cluster, relay_version=RELAY_VERSION, sent_at=T0, payload=obj
        )
    )


def hook_envelope(hook: HookObject) -> str:
    event_id = ids.object_event_id(CLUSTER, "Hook", hook.uid, hook.resource_version, hook.watch_type)
    return encode_envelope(
        HookEnvelope(
            event_id=event_id, cluster_id=CLUSTER, relay_version=RELAY_VERSION, sent_at=T0, payload=hook
        )
    )


def rollout() -> list[KubeObject]:
    """The Deployment and ReplicaSet that own `crash_loop_pod` (payments-api, hash 84c6d9f7b8)."""
    deployment = KubeObject(
        api_version="apps/v1",
        kind="Deployment",
        namespace="payments",
        name="payments-api",
        uid=_uid("deployment/payments-api"),
        labels={"app.kubernetes.io/name": "payments-api"},
        snapshot={"replicas": 3, "image": ["registry.example.com/payments-api:2.4.1"], "revision": "7"},
        created_at=T0 - timedelta(days=30),
        watch_type="MODIFIED",
        resource_version="48190",
        observed_at=T0 - timedelta(minutes=3),
        transitions=[
            Transition(
                field="image",
                old="registry.example.com/payments-api:2.4.0",
                new="registry.example.com/payments-api:2.4.1",
            )
        ],
    )
    replicaset = KubeObject(
        api_version="apps/v1",
        kind="ReplicaSet",
        namespace="payments",
        name="payments-api-84c6d9f7b8",
        uid=_uid("payments-api"),
        labels={"app.kubernetes.io/name": "payments-api", "pod-template-hash": "84c6d9f7b8"},
        owner_references=[
            OwnerReference(kind="Deployment", name="payments-api", uid=deployment.uid, controller=True)
        ],
        snapshot={"replicas": 3, "readyReplicas": 0, "image": ["registry.example.com/payments-api:2.4.1"]},
        created_at=T0 - timedelta(minutes=3),
        watch_type="ADDED",
        resource_version="48191",
        observed_at=T0 - timedelta(minutes=3),
    )
    return [deployment, replicaset]


NODE = "ip-10-0-12-34.eu-west-1.compute.internal"


def node(name: str, rv: str, conditions: list[PodCondition], **kw: Any) -> KubeObject:
    """A Node as the relay projects it; the conditions of a healthy kubelet unless given."""
    return KubeObject(
        api_version="v1",
        kind="Node",
        name=name,
        uid=_uid(f"node/{name}"),
        labels={"kubernetes.io/hostname": name.split(".")[0], "topology.kubernetes.io/zone": "eu-west-1a"},
        conditions=conditions,
        snapshot={"unschedulable": False, "kubeletVersion": "v1.31.2"},
        created_at=T0 - timedelta(days=9),
        resource_version=rv,
        observed_at=T0,
        **kw,
    )


def _node_conditions(ready: str, reason: str, message: str, **pressure: str) -> list[PodCondition]:
    healthy = {
        "MemoryPressure": ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        "DiskPressure": ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure": ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    }
    out = []
    for kind, (ok_reason, ok_message) in healthy.items():
        status = pressure.get(kind, "False")
        bad = status != "False"
        out.append(
            PodCondition(
                type=kind,
                status=status,
                reason=f"KubeletHas{kind}" if bad and status == "True" else reason if bad else ok_reason,
                message=f"kubelet has {kind.replace('Pressure', '').lower()} pressure"
                if status == "True"
                else message
                if bad
                else ok_message,
                last_transition_time=T0 - timedelta(days=9),
            )
        )
    out.append(
        PodCondition(type="Ready", status=ready, reason=reason, message=message, last_transition_time=T0)
    )
    return out


def node_trouble() -> list[KubeObject]:
    lost = node(
        NODE,
        "48500",
        _node_conditions("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
        transitions=[Transition(field="condition.Ready", old="True", new="Unknown")],
    )
    squeezed_name = "ip-10-0-40-7.eu-west-1.compute.internal"
    squeezed = node(
        squeezed_name,
        "48501",
        _node_conditions("True", "KubeletReady", "kubelet is posting ready status", MemoryPressure="True"),
        transitions=[Transition(field="condition.MemoryPressure", old="False", new="True")],
    )
    back = node(
        NODE,
        "48530",
        _node_conditions("True", "KubeletReady", "kubelet is posting ready status"),
        transitions=[Transition(field="condition.Ready", old="Unknown", new="True")],
    )
    return [lost, squeezed, back.model_copy(update={"observed_at": T0 + timedelta(minutes=6)})]


HOOK_DOC: dict[str, Any] = {
    "apiVersion": "kagent.dev/v1alpha2",
    "kind": "Hook",
    "metadata": {"name": "node-triage", "namespace": "kagent"},
    "spec": {
        "clusterWide": True,
        "eventConfigurations": [
            {
                "eventType": "node-not-ready",
                "agentRef": {"name": "k8s-agent"},
                "prompt": "Node {{.ResourceName}} is not ready ({{.Reason}}): {{.Message}}",
            }
        ],
    },
}


def hooks_in_cluster() -> tuple[HookObject, HookObject, HookObject]:
    """A Hook applied in the cluster, a bad one (unknown event type), and the first deleted."""
    applied = HookObject(
        namespace="kagent",
        name="node-triage",
        uid=_uid("hook/node-triage"),
        hook=HOOK_DOC,
        watch_type="ADDED",
        resource_version="48600",
        observed_at=T0,
    )
    bad_doc = json.loads(json.dumps(HOOK_DOC))
    bad_doc["metadata"]["name"] = "typo"
    bad_doc["spec"]["eventConfigurations"][0]["eventType"] = "node-on-fire"
    bad = HookObject(
        namespace="kagent",
        name="typo",
        uid=_uid("hook/typo"),
        hook=bad_doc,
        resource_version="48601",
        observed_at=T0,
    )
    deleted = applied.model_copy(
        update={
            "watch_type": "DELETED",
            "resource_version": "48700",
            "observed_at": T0 + timedelta(minutes=1),
        }
    )
    return applied, bad, deleted


def processor_kinds() -> list[str]:
    deployment, replicaset = rollout()
    lost, squeezed, back = node_trouble()
    applied, bad_hook, deleted = hooks_in_cluster()
    no_uid = json.loads(object_envelope(replicaset.model_copy(update={"resource_version": "48199"})))
    del no_uid["payload"]["uid"]
    return [
        object_envelope(deployment),
        object_envelope(replicaset),
        object_envelope(lost),
        object_envelope(squeezed),
        object_envelope(back),
        hook_envelope(applied),
        hook_envelope(bad_hook),
        json.dumps(no_uid, separators=(",", ":")),
        hook_envelope(deleted),
    ]


def notification(
    envelope_body: str, event_type: EventType, reason: str, container: str | None
) -> Notification:
    env = json.loads(envelope_body)
    payload = env["payload"]
    event_id = env["event_id"]
    namespace = payload.get("namespace")
    pod = payload.get("name")
    if env["kind"] == "k8s_event":
        namespace = payload["involved_object"]["namespace"]
        pod = payload["involved_object"]["name"]
    return Notification(
        notification_id=ids.notification_id(event_id, event_type, container),
        event_id=event_id,
        cluster_id=env["cluster_id"],
        event_type=event_type,
        reason=reason,
        source=env["kind"],
        dedup_key=f"{env['cluster_id']}/{namespace}/{pod}/{container or '-'}/{event_type}",
        namespace=namespace,
        pod=pod,
        container=container,
        observed_at=T0,
        processed_at=T0 + timedelta(seconds=1),
    )


def deliver_batch() -> list[str]:
    notifications = [
        notification(pod_envelope(crash_loop_pod()), EventType.CRASH_LOOP, "CrashLoopBackOff", "api"),
        notification(pod_envelope(oom_pod()), EventType.OOM_KILL, "OOMKilled", "worker"),
        notification(pod_envelope(evicted_pod()), EventType.EVICTED, "Evicted", None),
        notification(kube_event_envelope(probe_event()), EventType.PROBE_FAILED, "Unhealthy", "web"),
    ]
    other_cluster = pod_envelope(image_pull_pod(), cluster="staging-us-2")
    notifications.append(notification(other_cluster, EventType.IMAGE_PULL, "ImagePullBackOff", "web"))
    return [n.model_dump_json() for n in notifications]


def deliver_poison() -> list[str]:
    crash = notification(
        pod_envelope(crash_loop_pod("c4d7f", "48313")), EventType.CRASH_LOOP, "CrashLoopBackOff", "api"
    )
    oom = notification(pod_envelope(oom_pod()), EventType.OOM_KILL, "OOMKilled", "worker")
    other_cluster = notification(
        pod_envelope(unschedulable_pod(), cluster="staging-us-2"),
        EventType.UNSCHEDULABLE,
        "Unschedulable",
        None,
    )
    unknown_type = json.loads(crash.model_dump_json())
    unknown_type["notification_id"] = "0" * 31 + "1"
    unknown_type["event_type"] = "node-on-fire"
    no_cluster = json.loads(oom.model_dump_json())
    no_cluster["notification_id"] = "0" * 31 + "2"
    del no_cluster["cluster_id"]
    wrong_version = json.loads(other_cluster.model_dump_json())
    wrong_version["notification_id"] = "0" * 31 + "3"
    wrong_version["schema_version"] = 99
    return [
        crash.model_dump_json(),
        '{"schema_version":1,"notification_id":"9c8fb4fd',  # cut off mid-write
        json.dumps(unknown_type, separators=(",", ":")),
        oom.model_dump_json(),
        json.dumps(no_cluster, separators=(",", ":")),
        '{"kind":"enroll","request":{}}',  # says it is a control command, is not a valid one
        json.dumps(wrong_version, separators=(",", ":")),
        other_cluster.model_dump_json(),
    ]


def hooks_batch() -> list[str]:
    crash = notification(pod_envelope(crash_loop_pod()), EventType.CRASH_LOOP, "CrashLoopBackOff", "api")
    oom = notification(pod_envelope(oom_pod()), EventType.OOM_KILL, "OOMKilled", "worker")
    wrapped = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "podwatch notification",
        "source": "podwatch",
        "account": "123456789012",
        "time": "2026-11-20T09:00:01Z",
        "region": "us-east-1",
        "resources": [],
        "detail": json.loads(oom.model_dump_json()),
    }
    return [crash.model_dump_json(), json.dumps(wrapped, separators=(",", ":")), "not json"]


def history_batch() -> dict[str, Any]:
    """The processor's history message for processor/batch.json: one pack (podwatch.historyfeed)
    of each pod and Event body as it arrived (not the heartbeat), the crash loop's classified."""
    from podwatch.historyfeed import pack, pack_record

    classification = [
        {
            "eventType": "crash-loop",
            "decision": "forwarded",
            "reason": "opened",
            "incidentId": f"{CLUSTER}/payments/payments-api-84c6d9f7b8-tq5vn/api/crash-loop",
        }
    ]
    records = [
        pack_record(
            record(body, n, queue_arn=POD_EVENTS_ARN)["messageId"],
            body,
            json.dumps(classification, separators=(",", ":")) if n == 1 else None,
        )
        for n, body in enumerate(processor_batch(), start=1)
        if '"kind":"heartbeat"' not in body
    ]
    return event([pack(records)], queue_arn=HISTORY_ARN)


def http_get(path: str, query: dict[str, str]) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) GET, as the history function receives it."""
    raw_query = "&".join(f"{k}={v}" for k, v in query.items())
    epoch_ms = int(T0.timestamp() * 1000)
    return {
        "version": "2.0",
        "routeKey": "GET /{proxy+}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {"accept": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "queryStringParameters": query or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "awscurl",
            },
            "requestId": f"req-{hashlib.sha256(path.encode()).hexdigest()[:12]}",
            "routeKey": "GET /{proxy+}",
            "stage": "$default",
            "time": T0.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": False,
    }


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def main(root: Path = ROOT) -> None:
    """Write every sample under `root` (events/; a test writes them elsewhere to compare)."""
    write(root / "processor" / "batch.json", event(processor_batch(), queue_arn=POD_EVENTS_ARN))
    write(root / "processor" / "poison.json", event(processor_poison(), queue_arn=POD_EVENTS_ARN, first=101))
    write(
        root / "processor" / "enroll.json",
        event([enroll(), heartbeat()], queue_arn=POD_EVENTS_ARN, first=201),
    )
    write(
        root / "processor" / "lifecycle.json",
        event(processor_lifecycle(), queue_arn=POD_EVENTS_ARN, first=301),
    )
    write(root / "processor" / "kinds.json", event(processor_kinds(), queue_arn=POD_EVENTS_ARN, first=401))
    write(root / "deliver" / "batch.json", event(deliver_batch(), queue_arn=DELIVERIES_ARN))
    write(root / "deliver" / "poison.json", event(deliver_poison(), queue_arn=DELIVERIES_ARN, first=101))
    write(root / "fanout" / "batch.json", event(deliver_batch(), queue_arn=FANOUT_ARN))
    write(root / "fanout" / "poison.json", event(deliver_poison(), queue_arn=FANOUT_ARN, first=101))
    write(root / "hooks" / "batch.json", event(hooks_batch(), queue_arn=HOOKS_ARN))
    write(root / "history_writer" / "batch.json", history_batch())
    write(
        root / "history_writer" / "poison.json",
        event(processor_poison(), queue_arn=HISTORY_ARN, first=101),
    )
    write(
        root / "history" / "events.json",
        http_get(f"/clusters/{CLUSTER}/api/v1/events", {"namespace": "payments", "limit": "50"}),
    )
    write(
        root / "history" / "object.json",
        http_get(f"/clusters/{CLUSTER}/api/v1/events/payments/pod/payments-api-84c6d9f7b8-tq5vn", {}),
    )


if __name__ == "__main__":
    main()
