"""Per-kind projections (relay/podwatch_relay/kinds.py): what each kind forwards, safe by
construction: random objects full of secret-looking values go through every projection and
none comes out; env values, annotations, managedFields, ConfigMap values and a custom resource's
spec never do; Secrets are refused by name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podwatch_relay._json import dumps
from podwatch_relay.kinds import (
    BUILTIN,
    NEVER,
    KindError,
    KindSpec,
    check_kinds,
    custom_kind,
    project_hook,
    project_object,
)
from podwatch_relay.settings import CHART_KINDS, RelaySettings
from tests.fakeapi import objects as fx
from tests.fakeapi.pods import CANARY
from tests.unit.test_relay_redact import free_text

CUSTOM = custom_kind("db.example.com", "v1", "databases", "Database", namespaced=True)
HOOK = custom_kind("kagent.dev", "v1alpha2", "hooks", "Hook", namespaced=True, hook=True)
#: every projection the relay has
SPECS: list[KindSpec] = [*BUILTIN.values(), CUSTOM, HOOK]


def _deploy() -> dict[str, Any]:
    return fx.deployment("shop", "api", image="registry.example.com/api:2.0", replicas=3)


#: realistic objects of each kind, each carrying CANARY where nothing may be read
REALISTIC: dict[str, dict[str, Any]] = {
    "Deployment": _deploy(),
    "ReplicaSet": fx.replicaset(_deploy(), "5d9f", image="registry.example.com/api:2.0", replicas=3),
    "ConfigMap": fx.configmap("shop", "settings", {"DB_PASSWORD": CANARY, "mode": CANARY}),
    "Node": fx.node("node-1"),
    "Service": fx.service("shop", "api"),
    "Database": fx.custom("db.example.com/v1", "Database", "shop", "orders"),
    "Hook": fx.hook(),
}


def _spec_of(kind: str) -> KindSpec:
    return {"Database": CUSTOM, "Hook": HOOK}.get(kind) or BUILTIN[kind]


@pytest.mark.parametrize("kind", sorted(REALISTIC))
def test_realistic_objects_leave_nothing_marked_behind(kind: str) -> None:
    # Given a realistic object whose env values, annotations, managedFields, ConfigMap values,
    # node ids and custom spec all hold the canary
    obj = REALISTIC[kind]

    # When it is projected
    spec = _spec_of(kind)
    meta = obj["metadata"]
    projected = (
        project_hook(obj, meta["namespace"], meta["name"]) if spec is HOOK else project_object(obj, spec)
    )
    out = dumps(projected)

    # Then no canary is left, nor the last-applied annotation
    assert CANARY not in out
    assert "last-applied" not in out
    assert "managedFields" not in out


def test_a_deployment_keeps_what_tells_a_rollout() -> None:
    out = project_object(_deploy(), BUILTIN["Deployment"])
    snapshot = out["snapshot"]
    assert snapshot["spec.replicas"] == 3
    assert snapshot["spec.template.spec"] == {
        "containers": [{"name": "app", "image": "registry.example.com/api:2.0"}]
    }
    assert snapshot["spec.selector"] == {"matchLabels": {"app": "api"}}
    assert snapshot["status.readyReplicas"] == 3
    assert out["conditions"] == [
        {
            "type": "Available",
            "status": "True",
            "reason": "MinimumReplicasAvailable",
            "message": "Deployment has minimum availability.",
            "last_transition_time": "2026-11-20T09:00:30Z",
        }
    ]
    assert "annotations" not in out
    assert out["labels"] == {"app": "api"}
    assert out["labels_omitted"] == 1


def test_a_replicaset_names_its_owner() -> None:
    deploy = _deploy()
    rs = fx.replicaset(deploy, "5d9f", image="registry.example.com/api:2.0", replicas=3)
    out = project_object(rs, BUILTIN["ReplicaSet"])
    assert out["owner_references"] == [
        {"kind": "Deployment", "name": "api", "uid": deploy["metadata"]["uid"], "controller": True}
    ]


def test_a_configmap_gives_key_names_and_hashes_only() -> None:
    a = project_object(fx.configmap("shop", "cfg", {"url": "v1", "mode": "x"}), BUILTIN["ConfigMap"])
    b = project_object(fx.configmap("shop", "cfg", {"url": "v2", "mode": "x"}), BUILTIN["ConfigMap"])
    assert set(a["snapshot"]["data"]) == {"url", "mode"}
    assert a["snapshot"]["data"]["mode"] == b["snapshot"]["data"]["mode"]  # same value, same hash
    assert a["snapshot"]["data"]["url"] != b["snapshot"]["data"]["url"]  # a change shows
    assert all(len(h) == 16 for h in a["snapshot"]["data"].values())


def test_a_node_heartbeat_is_not_part_of_the_projection() -> None:
    before = project_object(fx.node("n1", heartbeat="2026-11-20T09:00:00Z"), BUILTIN["Node"])
    after = project_object(fx.node("n1", heartbeat="2026-11-20T09:00:40Z"), BUILTIN["Node"])
    not_ready = project_object(fx.node("n1", ready=False), BUILTIN["Node"])
    assert before == after
    assert not_ready != before
    assert not_ready["conditions"][0]["status"] == "Unknown"
    assert "lastHeartbeatTime" not in dumps(before)


def test_a_hook_keeps_its_rule_as_written() -> None:
    hook = fx.hook()
    out = project_hook(hook, "default", "basic-pod-monitoring")
    assert out == {
        "apiVersion": "kagent.dev/v1alpha2",
        "kind": "Hook",
        "metadata": {"name": "basic-pod-monitoring", "namespace": "default"},
        "spec": hook["spec"],  # khook's README prompts pass redaction unchanged
    }


def test_a_custom_resource_gives_its_status_never_its_spec() -> None:
    out = project_object(fx.custom("db.example.com/v1", "Database", "shop", "orders"), CUSTOM)
    assert out["snapshot"] == {"status.phase": "Ready", "status.observedGeneration": 1}
    assert out["conditions"] == [
        {"type": "Ready", "status": "True", "last_transition_time": "2026-11-20T09:00:00Z"}
    ]


@pytest.mark.parametrize("name", ["Secret", "secret", "SECRET"])
def test_secrets_are_refused_whatever_the_configuration(name: str) -> None:
    with pytest.raises(KindError, match="never watched"):
        check_kinds(["Pod", name])
    with pytest.raises(ValueError, match="never watched"):
        RelaySettings(kinds=f"Pod,Deployment,{name}")
    assert "Secret" in NEVER
    assert "Secret" not in BUILTIN


def test_the_chart_kinds_are_the_issues_list_and_unknown_kinds_are_refused() -> None:
    assert RelaySettings(kinds=CHART_KINDS).kinds == CHART_KINDS
    assert len(CHART_KINDS.split(",")) == 17
    assert RelaySettings().kind_specs == ()  # a bare relay: pods and their Events
    with pytest.raises(KindError, match="unknown kind 'Widget'"):
        check_kinds(["Widget"])


# --- the property: random objects full of secrets, through every projection ----------------------

#: keys the random objects are made of: the real field names of every kind (so random trees hit
#: the allow-listed paths and their neighbours), and some that are never read
VOCAB = sorted(
    {
        "metadata", "spec", "status", "template", "jobTemplate", "containers", "initContainers", "env",
        "value", "valueFrom", "name", "image", "command", "args", "data", "binaryData", "stringData",
        "annotations", "conditions", "message", "reason", "type", "phase", "selector", "matchLabels",
        "matchExpressions", "key", "operator", "values", "ports", "port", "targetPort", "rules", "host",
        "http", "paths", "path", "backend", "service", "number", "tls", "hosts", "schedule", "capacity",
        "allocatable", "claimRef", "scaleTargetRef", "loadBalancer", "ingress", "ip", "hostname", "taints",
        "effect", "nodeInfo", "kubeletVersion", "replicas", "strategy", "lastTransitionTime",
        "eventConfigurations", "prompt", "agentRef", "password", "token", "volumes", "secretName",
        "nodeName", "clusterIP", "storageClassName", "accessModes", "resources", "requests",
    }
)  # fmt: skip


#: every allow-listed path of every projection (and where conditions and a Hook's rule are read)
PATHS = sorted({path for spec in SPECS for path, _ in spec.fields} | {("status", "conditions"), ("spec",)})


@st.composite
def secret_trees(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """(an object of random shape whose every string holds a secret, the secrets' cores)."""
    cases = draw(st.lists(free_text(), min_size=1, max_size=6))
    leaf = st.one_of(st.sampled_from([text for text, _ in cases]), st.integers(-3, 3), st.booleans())
    tree = st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(st.sampled_from(VOCAB), children, max_size=4)
        ),
        max_leaves=40,
    )
    obj = draw(st.dictionaries(st.sampled_from(VOCAB), tree, max_size=6))
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=12)):  # the allow-listed paths too
        target = obj
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = draw(tree)
    meta = draw(st.dictionaries(st.sampled_from(VOCAB), tree, max_size=4))
    meta["labels"] = {"app": cases[0][0], "other": cases[-1][0]}
    meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": cases[0][0], "uid": cases[-1][0]}]
    obj["metadata"] = {**meta, "name": "obj", "namespace": "ns", "uid": "u-1"}
    return obj, [needle for _, needle in cases]


def _secretize(value: Any, cases: list[tuple[str, str]], path: tuple[str, ...] = ()) -> Any:
    """`value` with every string (identity aside) replaced by one of `cases`' secret-holding
    texts, in turn (drawing one per string costs the generator seconds per example)."""
    if isinstance(value, dict):
        return {k: _secretize(v, cases, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_secretize(v, cases, path) for v in value]
    if isinstance(value, str) and path not in {("metadata", "name"), ("metadata", "namespace")}:
        cases.append(cases.pop(0))
        return cases[-1][0]
    return value


def _assert_nothing_leaks(obj: dict[str, Any], needles: list[str]) -> None:
    outputs = {spec.kind: project_object(obj, spec) for spec in SPECS}
    outputs["Hook rule"] = project_hook(obj, "ns", "obj")
    for kind, projection in outputs.items():
        out = dumps(projection)
        leaked = [n for n in needles if n in out]
        assert not leaked, (kind, leaked, out[:500])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret_trees())
def test_no_secret_in_a_random_object_leaves_through_any_projection(
    case: tuple[dict[str, Any], list[str]],
) -> None:
    obj, needles = case
    _assert_nothing_leaks(obj, needles)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(REALISTIC)), st.lists(free_text(), min_size=5, max_size=9))
def test_no_secret_in_any_field_of_a_realistic_object_leaves(kind: str, cases: list[tuple[str, str]]) -> None:
    # Given a realistic object with every one of its strings replaced by text holding a secret
    needles = [needle for _, needle in cases]
    obj = _secretize(REALISTIC[kind], list(cases))

    # Then no projection lets one through: allow-listed strings are redacted, the rest dropped
    _assert_nothing_leaks(obj, needles)
