"""Other kinds through real parts (issue 19, the cloud side): the processor, history-writer, history
API and hooks handlers against a moto server whose queues and tables come from template.yaml, the
reference A2A agent, and `object` / `hook` envelopes as the relay writes them (docs/internals.md,
"Pod-events envelopes: kinds"; built by events/make_samples.py's builders). Nodes are real ones from
public issue threads (tests/corpus/nodes.yaml). The stack and handler fixtures are in conftest.py.

Covers: a node going NotReady → one delivered notification, its repeat deduplicated, its recovery
resolving the incident, and a cluster-wide hook firing on it; a Hook applied and deleted in the
cluster changing the rules the hooks function uses; bad object and Hook envelopes quarantined with
the reason; a rollout (Deployment → ReplicaSets → pods) replayed as envelopes showing the owner
chain and the pod's node condition changes in the history's object view.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import httpx
import pytest

from events.make_samples import (
    CLUSTER,
    HOOK_DOC,
    hook_envelope,
    kube_event_envelope,
    object_envelope,
    pod_envelope,
)
from local.agent import AgentServer
from local.cfn import AwsClients, Provisioned
from local.lambda_runtime import LambdaContext, sqs_event
from podwatch.hooks.state import HookStore
from podwatch.models import (
    DEFAULT_ENABLED_REASONS,
    ContainerStatus,
    EventType,
    HookObject,
    InvolvedObject,
    KubeEvent,
    KubeObject,
    Notification,
    OwnerReference,
    PodCondition,
    PodEvent,
    RemoteConfig,
    Transition,
    WatchType,
)
from podwatch_cli.app import main as cli_main
from tests.integration.template_stack import drain, process, to_history
from tests.nodes import corpus, healthy, node_object

pytestmark = pytest.mark.integration

NODES = {case["id"]: case["node"] for case in corpus()}
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


# --------------------------------------------------------------------------- helpers


def notifications(clients: AwsClients, stack: Provisioned) -> list[Notification]:
    return [Notification.model_validate_json(m["Body"]) for m in drain(clients, stack, "DeliveriesQueue")]


def set_config(clients: AwsClients, stack: Provisioned, config: RemoteConfig) -> None:
    name = stack.physical("RemoteConfigParameter")
    clients.ssm.put_parameter(Name=name, Value=config.to_json(), Type="String", Overwrite=True)


def hook_body(
    hook: dict[str, Any] | None, *, rv: str, watch_type: WatchType = "ADDED", name: str = ""
) -> str:
    meta = (hook or {}).get("metadata") or {}
    payload = HookObject(
        namespace=meta.get("namespace", "kagent"),
        name=name or meta.get("name", "node-triage"),
        uid=f"uid-hook-{name or meta.get('name')}",
        hook=hook,
        watch_type=watch_type,
        resource_version=rv,
        observed_at=T0,
    )
    return hook_envelope(payload)


def node_body(
    node: dict[str, Any], rv: int, *, previous: dict[str, Any] | None = None, minutes: int = 0
) -> str:
    obj = node_object(
        node, resource_version=str(rv), observed_at=T0 + timedelta(minutes=minutes), previous=previous
    )
    return object_envelope(obj)


def call_hooks(hooks: ModuleType, *found: Notification) -> None:
    event = sqs_event([n.model_dump_json() for n in found])
    assert hooks.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}


# --------------------------------------------------------------------------- node trouble and hooks


def test_a_node_not_ready_is_delivered_once_resolves_and_fires_a_hook_applied_in_the_cluster(
    processor: ModuleType, hooks: ModuleType, stack: Provisioned, clients: AwsClients, agent: AgentServer
) -> None:
    set_config(clients, stack, RemoteConfig(enabled_reasons=DEFAULT_ENABLED_REASONS | {EventType.RECOVERED}))
    store = HookStore(table_name=stack.physical("HooksTable"), client=clients.dynamodb)
    # Given a cluster-wide Hook applied in the cluster (a `hook` envelope)
    process(processor, hook_body(HOOK_DOC, rv="10"))
    assert [h.key for h in store.rules()] == ["kagent/node-triage"]
    assert [i["source"]["S"] for i in store.rule_items()] == ["cluster"]
    # When a real node stops posting its status (kubernetes#94020), then changes again still NotReady
    sick = NODES["k8s-94020-kubelet-stopped-posting"]
    process(processor, node_body(sick, 20, previous=healthy(sick)))
    process(processor, node_body(sick, 21, minutes=1))
    # Then one notification: the node's, its incident firing; the repeat is folded into it
    (found,) = notifications(clients, stack)
    assert (found.event_type, found.source, found.reason) == (
        EventType.NODE_NOT_READY,
        "node",
        "NodeStatusUnknown",
    )
    assert (found.namespace, found.pod, found.node) == ("", "mgt07", "mgt07")
    assert found.dedup_key == f"{CLUSTER}/node:mgt07/node-not-ready"
    assert found.incident_state == "firing"
    # with what changed on the node (every condition went Unknown when the kubelet stopped posting)
    assert {(t.field, t.old, t.new) for t in found.transitions} == {
        ("condition.Ready", "True", "Unknown"),
        ("condition.MemoryPressure", "False", "Unknown"),
        ("condition.DiskPressure", "False", "Unknown"),
        ("condition.PIDPressure", "False", "Unknown"),
    }
    # and the hook's agent is asked once about the node
    call_hooks(hooks, found)
    call_hooks(hooks, found)  # a redelivery
    (asked,) = agent.received()
    assert asked["agent"] == "k8s-agent"
    assert asked["text"].startswith("Node mgt07 is not ready (NodeStatusUnknown): <<<pod-message ")
    # When the node is Ready again, its incident resolves
    process(processor, node_body(healthy(sick), 22, previous=sick, minutes=5))
    (back,) = notifications(clients, stack)
    assert (back.event_type, back.resolves, back.incident_state) == (
        EventType.RECOVERED,
        EventType.NODE_NOT_READY,
        "resolved",
    )
    assert back.dedup_key == found.dedup_key
    assert back.incident_count == 2  # the first report and its repeat
    # When the Hook is deleted in the cluster, the hooks function no longer has it
    process(processor, hook_body(HOOK_DOC, rv="30", watch_type="DELETED"))
    assert store.rules() == []
    # and the old ADDED arriving late (SQS retried it after the delete) does not bring it back
    process(processor, hook_body(HOOK_DOC, rv="10"))
    assert store.rules() == []
    other = NODES["kots-2975-kubelet-stopped"]
    process(processor, node_body(other, 40))
    (later,) = notifications(clients, stack)
    call_hooks(hooks, later)
    assert len(agent.received()) == 1
    assert drain(clients, stack, "PodEventsDLQ") == []


def test_bad_object_and_hook_envelopes_are_quarantined_with_the_reason(
    processor: ModuleType, stack: Provisioned, clients: AwsClients
) -> None:
    good = json.loads(node_body(NODES["k8s-93711-disk-pressure"], 50))
    no_uid = json.loads(json.dumps(good))
    del no_uid["payload"]["uid"]
    no_kind = json.loads(json.dumps(good))
    no_kind["payload"]["kind"] = ""
    typo = json.loads(json.dumps(HOOK_DOC))
    typo["spec"]["eventConfigurations"][0]["eventType"] = "node-on-fire"
    elsewhere = json.loads(json.dumps(HOOK_DOC))
    bodies = [
        json.dumps(no_uid),
        json.dumps(no_kind),
        hook_body(typo, rv="60"),
        hook_body(elsewhere, rv="61", name="not-this-one"),
        json.dumps(good),  # a good one among them is still delivered
    ]
    process(processor, *bodies)
    quarantined = {
        m["Body"]: (
            m["MessageAttributes"]["reason"]["StringValue"],
            m["MessageAttributes"]["error"]["StringValue"],
        )
        for m in drain(clients, stack, "PodEventsDLQ")
    }
    assert len(quarantined) == 4
    assert quarantined[bodies[0]][0] == quarantined[bodies[1]][0] == "malformed"
    assert "object.payload.uid: Field required" in quarantined[bodies[0]][1]
    assert "object.payload.kind" in quarantined[bodies[1]][1]
    assert quarantined[bodies[2]][0] == "invalid_hook"
    assert (
        "spec.eventConfigurations[0].eventType: unknown event type 'node-on-fire'"
        in quarantined[bodies[2]][1]
    )
    assert quarantined[bodies[3]][0] == "invalid_hook"
    assert (
        "the Hook is kagent/node-triage, the envelope names kagent/not-this-one" in quarantined[bodies[3]][1]
    )
    assert HookStore(table_name=stack.physical("HooksTable"), client=clients.dynamodb).rules() == []
    assert [n.event_type for n in notifications(clients, stack)] == [EventType.NODE_DISK_PRESSURE]


# --------------------------------------------------------------------------- a rollout in the history

NODE = "ip-10-0-3-17.eu-west-1.compute.internal"


def _object(kind: str, name: str, rv: int, minutes: int, **kw: Any) -> str:
    obj = KubeObject(
        api_version="v1" if kind == "Node" else "apps/v1",
        kind=kind,
        namespace=None if kind == "Node" else "shop",
        name=name,
        uid=f"uid-{kind}-{name}",
        resource_version=str(rv),
        observed_at=T0 + timedelta(minutes=minutes),
        **kw,
    )
    return object_envelope(obj)


def _owner(kind: str, name: str) -> OwnerReference:
    return OwnerReference(kind=kind, name=name, uid=f"uid-{kind}-{name}", controller=True)


def _pod(name: str, replicaset: str, rv: int, minutes: int) -> str:
    pod = PodEvent(
        namespace="shop",
        name=name,
        uid=f"uid-pod-{name}",
        phase="Running",
        labels={"app": "web", "pod-template-hash": replicaset.rsplit("-", 1)[1]},
        owner_references=[_owner("ReplicaSet", replicaset)],
        node=NODE,
        containers=[ContainerStatus(name="web", state="running", ready=True, started=True)],
        conditions=[PodCondition(type="Ready", status="True")],
        watch_type="ADDED",
        resource_version=str(rv),
        observed_at=T0 + timedelta(minutes=minutes),
    )
    return pod_envelope(pod)


def _node_condition(status: str, reason: str) -> list[PodCondition]:
    return [PodCondition(type="Ready", status=status, reason=reason, last_transition_time=T0)]


def rollout() -> list[str]:
    """web 1.0 → 1.1: the Deployment, its old and new ReplicaSets, the new pods on a node that goes
    NotReady for a while (with the node controller's Event about it), in the order the relay sends."""
    old, new = "web-6b7f9c5d4", "web-7d4b9c8f6d"
    node_event = KubeEvent(
        namespace="default",
        name=f"{NODE}.18a1",
        uid="uid-event-node-not-ready",
        reason="NodeNotReady",
        message=f"Node {NODE} status is now: NodeNotReady",
        type="Normal",
        involved_object=InvolvedObject(kind="Node", name=NODE, uid=f"uid-Node-{NODE}"),
        last_timestamp=T0 + timedelta(minutes=8),
        observed_at=T0 + timedelta(minutes=8),
        resource_version="1090",
    )
    return [
        _object(
            "Deployment", "web", 1000, 0, watch_type="ADDED", snapshot={"replicas": 2, "image": ["web:1.0"]}
        ),
        _object(
            "ReplicaSet", old, 1001, 0, watch_type="ADDED", owner_references=[_owner("Deployment", "web")]
        ),
        _object(
            "Node", NODE, 1002, 0, watch_type="ADDED", conditions=_node_condition("True", "KubeletReady")
        ),
        _object(
            "Deployment",
            "web",
            1010,
            5,
            snapshot={"replicas": 2, "image": ["web:1.1"]},
            transitions=[Transition(field="image", old="web:1.0", new="web:1.1")],
        ),
        _object(
            "ReplicaSet", new, 1011, 5, watch_type="ADDED", owner_references=[_owner("Deployment", "web")]
        ),
        _pod(f"{new}-x2x7q", new, 1012, 6),
        _pod(f"{new}-m8k2p", new, 1013, 6),
        _object(
            "ReplicaSet",
            old,
            1014,
            7,
            owner_references=[_owner("Deployment", "web")],
            snapshot={"replicas": 0},
        ),
        _object(
            "Node",
            NODE,
            1020,
            8,
            conditions=_node_condition("Unknown", "NodeStatusUnknown"),
            transitions=[Transition(field="condition.Ready", old="True", new="Unknown")],
        ),
        kube_event_envelope(node_event),
        _object(
            "Node",
            NODE,
            1030,
            12,
            conditions=_node_condition("True", "KubeletReady"),
            transitions=[Transition(field="condition.Ready", old="Unknown", new="True")],
        ),
    ]


def test_a_rollout_shows_its_owner_chain_and_the_pods_node_in_the_object_view(
    processor: ModuleType, writer: ModuleType, history_url: str, stack: Provisioned, clients: AwsClients
) -> None:
    # Given a rollout replayed through the processor into the history
    bodies = rollout()
    process(processor, *bodies)
    assert to_history(clients, stack, writer) >= 1  # packed: several records a message
    assert drain(clients, stack, "HistoryDLQ") == []
    # When a new pod's history is asked for
    answer = httpx.get(f"{history_url}/api/v1/events/shop/pod/web-7d4b9c8f6d-x2x7q", timeout=60)
    assert answer.status_code == 200, answer.text
    view = answer.json()
    # Then its fields are as before, and its owner chain is the new ReplicaSet, then the Deployment
    assert view["object"]["name"] == "web-7d4b9c8f6d-x2x7q"
    assert [w["verb"] for w in view["watchEvents"]] == ["create"]
    owners = view["owners"]
    assert [(o["kind"], o["name"]) for o in owners] == [
        ("ReplicaSet", "web-7d4b9c8f6d"),
        ("Deployment", "web"),
    ]
    assert [w["verb"] for w in owners[0]["watchEvents"]] == ["create"]
    deployment = owners[1]
    assert [w["verb"] for w in deployment["watchEvents"]] == ["update", "create"]  # newest first
    assert deployment["object"]["snapshot"]["snapshot"]["image"] == ["web:1.1"]
    assert deployment["watchEvents"][0]["object"]["transitions"] == [
        {"field": "image", "from": "web:1.0", "to": "web:1.1"}
    ]
    # and its node's condition changes, newest first, with the Event about the node
    node = view["node"]
    assert node["name"] == NODE
    assert [(c["type"], c["from"], c["to"], c["reason"]) for c in node["conditionChanges"]] == [
        ("Ready", "Unknown", "True", "KubeletReady"),
        ("Ready", "True", "Unknown", "NodeStatusUnknown"),
    ]
    assert [e["reason"] for e in node["relatedEvents"]] == ["NodeNotReady"]
    # A cluster-scoped object is asked for with the namespace `_`; a ReplicaSet of the list by kind
    node_view = httpx.get(f"{history_url}/api/v1/events/_/node/{NODE}", timeout=60).json()
    assert [w["verb"] for w in node_view["watchEvents"]] == ["update", "update", "create"]
    assert node_view["watchEvents"][1]["reason"] == "NodeStatusUnknown"
    assert node_view["owners"] == []
    # The CLI's object view shows the same chain and node (podwatch events pod NAMESPACE/NAME)
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(
        ["events", "--api-url", history_url, "pod", "shop/web-7d4b9c8f6d-x2x7q"], out=out, err=err
    )
    assert (code, err.getvalue()) == (0, "")
    text = out.getvalue()
    assert "owned by (ReplicaSet web-7d4b9c8f6d → Deployment web):" in text
    deployment_lines = text.split("  Deployment web: last seen ")[1].splitlines()
    assert [line.split()[2:4] for line in deployment_lines[2:4]] == [
        ["update", "Deployment"],
        ["create", "Deployment"],
    ]
    assert f"node {NODE}: last seen " in text
    assert "Ready Unknown → True  KubeletReady" in text
    assert "Ready True → Unknown  NodeStatusUnknown" in text
    assert "Events about the node (1):" in text
    assert "NodeNotReady" in text
    listed = httpx.get(
        f"{history_url}/api/v1/events",
        params={"kind": "replicasets", "start": (T0 - timedelta(hours=1)).isoformat()},
        timeout=60,
    ).json()
    assert sorted((e["objectRef"]["name"], e["verb"]) for e in listed["events"]) == [
        ("web-6b7f9c5d4", "create"),
        ("web-6b7f9c5d4", "update"),
        ("web-7d4b9c8f6d", "create"),
    ]
    # the node's trouble was classified on its way into the history
    assert node_view["watchEvents"][1]["classification"][0]["eventType"] == "node-not-ready"
