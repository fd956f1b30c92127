"""The relay's watchers of other kinds (issue 19), run as `python -m podwatch_relay watch` runs
them (`run_watch`), through the real `kubernetes` client over HTTP against the fake API server
(tests/fakeapi, which serves built-in kinds and the kinds of the CRDs created in it), into SQS
(a moto server): a rollout as object records with owner references, unchanged updates
suppressed, ConfigMap values and Secrets never read, custom resources followed as their CRDs come
and go, khook `Hook` objects forwarded as hook rules when the CRD exists and the value is on."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from podwatch_relay.settings import CHART_KINDS
from tests.fakeapi import FakeKubeApi
from tests.fakeapi import objects as fx
from tests.fakeapi.pods import CANARY, core_event
from tests.integration.relay_harness import http_get, ops_port, pods, probe, records, running_relay, wait_for

pytestmark = pytest.mark.integration


def test_a_rollout_appears_as_object_records_with_owner_references(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Deployment at 1.0 with its ReplicaSet and two pods
    deploy = fake.put(fx.deployment("shop", "api", image="registry.example.com/api:1.0", replicas=2))
    rs1 = fake.put(fx.replicaset(deploy, "aaa111", image="registry.example.com/api:1.0", replicas=2))
    for suffix in ("p1", "p2"):
        fake.put(fx.owned_pod(rs1, suffix, image="registry.example.com/api:1.0"))

    with running_relay(fake, moto_server, tmp_path, monkeypatch, kinds=CHART_KINDS) as sent:
        # Then the relay's first list forwards each as an initial record
        wait_for(
            lambda: records(sent.bodies(), "ReplicaSet") and records(sent.bodies(), "Deployment"), what="list"
        )
        assert records(sent.bodies(), "Deployment", "api")[0]["initial_sync"] is True

        # When the Deployment rolls out 2.0: a new ReplicaSet scales up with new pods, the old one
        # scales down and its pods go; and a controller touches the old Deployment's managedFields
        deploy = fake.update(
            "Deployment",
            "shop",
            "api",
            lambda o: (
                o["spec"]["template"]["spec"]["containers"][0].update(image="registry.example.com/api:2.0"),
                o["metadata"].update(generation=2),
            ),
        )
        rs2 = fake.put(fx.replicaset(deploy, "bbb222", image="registry.example.com/api:2.0", replicas=2))
        for suffix in ("q1", "q2"):
            fake.put(fx.owned_pod(rs2, suffix, image="registry.example.com/api:2.0"))
        fake.update("ReplicaSet", "shop", rs1["metadata"]["name"], lambda o: o["spec"].update(replicas=0))
        for suffix in ("p1", "p2"):
            fake.delete("Pod", "shop", f"{rs1['metadata']['name']}-{suffix}")
        fake.update("Deployment", "shop", "api", lambda o: o["metadata"]["managedFields"].append({"t": 1}))

        # Then the chain Pod -> ReplicaSet -> Deployment is in the records, by uid
        new_pods = wait_for(lambda: pods(sent.bodies(), "api-bbb222-"), what="new pods")
        new_rs = wait_for(lambda: records(sent.bodies(), "ReplicaSet", "api-bbb222"), what="new ReplicaSet")
        assert {p["owner_references"][0]["uid"] for p in new_pods} == {rs2["metadata"]["uid"]}
        assert new_rs[0]["owner_references"] == [
            {"kind": "Deployment", "name": "api", "uid": deploy["metadata"]["uid"], "controller": True}
        ]
        assert new_rs[0]["watch_type"] == "ADDED"
        old_rs = wait_for(
            lambda: [
                r
                for r in records(sent.bodies(), "ReplicaSet", "api-aaa111")
                if r["snapshot"]["spec.replicas"] == 0
            ],
            what="old ReplicaSet scaled down",
        )
        assert old_rs[0]["watch_type"] == "MODIFIED"
        wait_for(lambda: len(pods(sent.bodies(), "api-aaa111-")) >= 4, what="old pods deleted")
        # The Deployments' watch is a stream of its own: a later Deployment's record marks that the
        # image change and the managedFields touch before it were both handled
        fake.put(fx.deployment("shop", "marker", image="registry.example.com/marker:1", replicas=1))
        wait_for(lambda: records(sent.bodies(), "Deployment", "marker"), what="the marker Deployment")
        images = [
            r["snapshot"]["spec.template.spec"]["containers"][0]["image"]
            for r in records(sent.bodies(), "Deployment", "api")
        ]
        # And the Deployment's image change is one record; its managedFields touch none
        assert images == ["registry.example.com/api:1.0", "registry.example.com/api:2.0"]


def test_configmap_values_never_leave_and_secrets_are_never_read(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a ConfigMap and a Secret holding the canary, and a node
    fake.put(fx.configmap("shop", "settings", {"DB_URL": f"postgres://u:{CANARY}@db", "mode": "fast"}))
    fake.put(fx.secret("shop", "db"))
    fake.put(fx.node("node-1"))

    with running_relay(fake, moto_server, tmp_path, monkeypatch, kinds=CHART_KINDS) as sent:
        # Then the ConfigMap is forwarded with its key names and a hash of each value
        cm = wait_for(lambda: records(sent.bodies(), "ConfigMap", "settings"), what="ConfigMap")
        assert set(cm[0]["snapshot"]["data"]) == {"DB_URL", "mode"}

        # When a value changes, a key is added, and the node's kubelet posts a heartbeat
        fake.update("ConfigMap", "shop", "settings", lambda o: o["data"].update(mode="slow", extra="1"))
        fake.update(
            "Node",
            None,
            "node-1",
            lambda o: o["status"]["conditions"][0].update(lastHeartbeatTime="2026-11-20T09:01:00Z"),
        )
        fake.update("Node", None, "node-1", lambda o: o["status"]["conditions"][0].update(status="False"))

        # Then the change shows as a new hash and a new key; the heartbeat is suppressed, the
        # NotReady node is forwarded
        changed = wait_for(lambda: records(sent.bodies(), "ConfigMap", "settings")[1:], what="change")
        assert changed[0]["snapshot"]["data"]["DB_URL"] == cm[0]["snapshot"]["data"]["DB_URL"]
        assert changed[0]["snapshot"]["data"]["mode"] != cm[0]["snapshot"]["data"]["mode"]
        assert "extra" in changed[0]["snapshot"]["data"]
        nodes = wait_for(lambda: records(sent.bodies(), "Node", "node-1")[1:], what="node change")
        assert [n["conditions"][0]["status"] for n in nodes] == ["False"]
        assert nodes[0]["transitions"] == [{"field": "condition.Ready", "from": "True", "to": "False"}]

    # And no request ever touched a Secret
    assert [r.path for r in fake.requests if "secrets" in r.path] == []
    assert {r.path for r in fake.list_requests("configmaps")} == {"/api/v1/configmaps"}


def test_a_troubled_initial_sync_lists_only_objects_in_trouble_then_forwards_every_change(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a node NotReady and one Ready, a Deployment past its progress deadline and a healthy one
    fake.put(fx.node("down", ready=False))
    fake.put(fx.node("up"))
    stuck = fx.deployment("shop", "stuck", image="registry.example.com/api:9")
    stuck["status"]["conditions"].append(
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    )
    fake.put(stuck)
    fake.put(fx.deployment("shop", "api", image="registry.example.com/api:1"))

    with running_relay(
        fake,
        moto_server,
        tmp_path,
        monkeypatch,
        kinds="Pod,Event,Node,Deployment",
        initial_sync_mode="troubled",
    ) as sent:
        # When the lists are done, and then the healthy ones change
        wait_for(lambda: probe("/readyz")[0] == 200, what="every first list")
        fake.update("Node", None, "up", lambda o: o["status"]["conditions"][0].update(status="False"))
        fake.update("Deployment", "shop", "api", lambda o: o["spec"].update(replicas=5))

        # Then the first lists forwarded only the objects in trouble, and the changes went out
        # (each after its kind's list, on the same stream)
        up = wait_for(lambda: records(sent.bodies(), "Node", "up"), what="the node's change")
        api = wait_for(lambda: records(sent.bodies(), "Deployment", "api"), what="the Deployment's change")
        assert [(r["initial_sync"], r["watch_type"]) for r in up + api] == [(False, "MODIFIED")] * 2
        assert [r["initial_sync"] for r in records(sent.bodies(), "Node", "down")] == [True]
        assert [r["initial_sync"] for r in records(sent.bodies(), "Deployment", "stuck")] == [True]


def test_a_relay_restarted_with_its_checkpoint_forwards_only_the_objects_that_changed_meanwhile(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a relay with a spool volume that forwarded a Deployment, two ConfigMaps and a node, then
    # stopped cleanly (its last checkpoint written)
    fake.put(fx.deployment("shop", "api", image="registry.example.com/api:1"))
    fake.put(fx.configmap("shop", "same", {"mode": "fast"}))
    fake.put(fx.configmap("shop", "changed", {"mode": "fast"}))
    fake.put(fx.node("node-1"))
    values = {"kinds": "Pod,Event,Node,Deployment,ConfigMap", "spool_dir": str(tmp_path / "spool")}
    (before := tmp_path / "before-restart").mkdir()
    with running_relay(fake, moto_server, before, monkeypatch, **values) as sent:
        wait_for(lambda: len([b for b in sent.bodies() if b["kind"] == "object"]) == 4, what="4 records")
        [first] = records(sent.bodies(), "ConfigMap", "changed")
    assert list((tmp_path / "spool" / "checkpoints").glob("*.json"))

    # When, while no relay runs, a ConfigMap changes and the node goes NotReady, and a relay starts again
    fake.update("ConfigMap", "shop", "changed", lambda o: o["data"].update(mode="slow"))
    fake.update("Node", None, "node-1", lambda o: o["status"]["conditions"][0].update(status="False"))
    (after := tmp_path / "after-restart").mkdir()
    with running_relay(fake, moto_server, after, monkeypatch, **values) as sent:
        wait_for(lambda: probe("/readyz")[0] == 200, what="every first list")
        fake.put(fx.configmap("shop", "marker", {"k": "v"}))
        wait_for(lambda: records(sent.bodies(), "ConfigMap", "marker"), what="the marker")
        node = wait_for(lambda: records(sent.bodies(), "Node", "node-1"), what="the node's change")

        # Then only the two changes went out, as changes of known objects; the unchanged not again
        changed = records(sent.bodies(), "ConfigMap", "changed")
        assert [r["initial_sync"] for r in changed] == [False]
        assert changed[0]["snapshot"]["data"]["mode"] != first["snapshot"]["data"]["mode"]
        assert node[0]["transitions"] == [{"field": "condition.Ready", "from": "True", "to": "False"}]
        assert records(sent.bodies(), "ConfigMap", "same") == []
        assert records(sent.bodies(), "Deployment") == []


def test_in_namespace_selector_mode_objects_follow_the_selection(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a labelled namespace and an unlabelled one, a ConfigMap in each, and a node
    for ns, labels in (("shop", {"podwatch": "on"}), ("dev", {})):
        fake.put({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns, "labels": labels}})
        fake.put(fx.configmap(ns, "settings", {"mode": "fast"}))
    fake.put(fx.node("node-1"))

    def metrics() -> str:
        return http_get(f"http://127.0.0.1:{ops_port()}/metrics")[1]

    def seen() -> list[tuple[str, str, bool]]:
        return [
            (r["namespace"], r["watch_type"], r["initial_sync"]) for r in records(sent.bodies(), "ConfigMap")
        ]

    values = {"kinds": "Pod,Event,Node,ConfigMap", "namespace_selector": "podwatch=on"}
    with running_relay(fake, moto_server, tmp_path, monkeypatch, **values) as sent:
        # Then the first lists forward the selected namespace's ConfigMap and the (cluster-scoped) node
        wait_for(lambda: records(sent.bodies(), "Node", "node-1"), what="the node")
        wait_for(lambda: probe("/readyz")[0] == 200, what="every first list")
        wait_for(lambda: seen() == [("shop", "ADDED", True)], what="shop's ConfigMap alone")

        # When dev's ConfigMap changes (skipped: dev is not selected), then dev gets the label
        fake.update("ConfigMap", "dev", "settings", lambda o: o["data"].update(mode="slow"))
        skipped = 'podwatch_relay_objects_total{kind="ConfigMap",outcome="skipped:namespace"} 2.0'
        wait_for(lambda: skipped in metrics(), what="dev's change skipped")
        fake.update("Namespace", None, "dev", lambda o: o["metadata"].update(labels={"podwatch": "on"}))

        # Then dev's ConfigMap goes out as it is now, at once (the kind lists again), and only it
        wait_for(lambda: len(seen()) == 2, what="dev's ConfigMap")
        assert seen() == [("shop", "ADDED", True), ("dev", "ADDED", True)]

        # When shop loses the label, then both ConfigMaps change
        fake.update("Namespace", None, "shop", lambda o: o["metadata"].update(labels={}))
        tracked = 'podwatch_relay_objects_tracked{kind="ConfigMap"} 1.0'  # shop's forgotten
        wait_for(lambda: tracked in metrics(), what="shop let go")
        for ns in ("shop", "dev"):
            fake.update("ConfigMap", ns, "settings", lambda o: o["data"].update(mode="off"))

        # Then only dev's change is forwarded; one cluster-wide list and watch per kind throughout
        wait_for(lambda: len(seen()) == 3, what="dev's change")
        threading.Event().wait(0.3)
        assert seen() == [("shop", "ADDED", True), ("dev", "ADDED", True), ("dev", "MODIFIED", False)]
        assert {r.path for r in fake.requests if "configmaps" in r.path} == {"/api/v1/configmaps"}
        assert len(fake.list_requests("configmaps")) == 2


def test_a_crd_created_at_run_time_is_watched_and_unwatched_when_it_goes(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_relay(
        fake, moto_server, tmp_path, monkeypatch, kinds="Pod,Event", custom_resource_groups="*.example.com"
    ) as sent:
        wait_for(lambda: fake.watch_requests("customresourcedefinitions"), what="CRD watch")

        # When a matching CRD and an unselected one are created, then a custom resource of each
        fake.put(fx.crd("db.example.com", "databases", "Database", versions=("v1beta1", "v1")))
        fake.put(fx.crd("other.io", "widgets", "Widget"))
        fake.put(fx.custom("db.example.com/v1", "Database", "shop", "orders"))
        fake.put(fx.custom("other.io/v1", "Widget", "shop", "w"))

        # Then the Database is forwarded (status, never spec), from the storage version; the
        # Widget's group is never asked for
        db = wait_for(lambda: records(sent.bodies(), "Database", "orders"), what="Database record")
        assert db[0]["api_version"] == "db.example.com/v1"
        assert db[0]["snapshot"] == {"status.phase": "Ready", "status.observedGeneration": 1}
        assert db[0]["conditions"][0]["type"] == "Ready"

        # When the CRD goes (its objects first, as the API server deletes them)
        fake.delete("CustomResourceDefinition", None, "databases.db.example.com")

        # Then the object's DELETED is forwarded and the kind is no longer watched
        wait_for(
            lambda: [r for r in records(sent.bodies(), "Database", "orders") if r["watch_type"] == "DELETED"],
            what="DELETED",
        )
        threading.Event().wait(0.5)  # the CRD's DELETED follows its objects' on another stream
        asked = len(fake.watch_requests("databases"))
        threading.Event().wait(3.5)  # longer than a watch's timeout: a live watcher would ask again
        assert len(fake.watch_requests("databases")) == asked
    assert not [r for r in fake.requests if r.path.startswith("/apis/other.io")]


def test_readyz_waits_for_a_custom_resource_kinds_first_list_but_not_for_a_forbidden_group(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two CRDs of selected groups: the API server is slow to list the Databases, and its
    # RBAC does not grant the Caches
    fake.put(fx.crd("db.example.com", "databases", "Database"))
    fake.put(fx.crd("cache.example.com", "caches", "Cache"))
    fake.put(fx.custom("db.example.com/v1", "Database", "shop", "orders"))
    fake.faults.lists_held.add("databases")
    fake.faults.forbidden.add("caches")

    groups = "*.example.com"
    with running_relay(
        fake, moto_server, tmp_path, monkeypatch, kinds="Pod,Event,Deployment", custom_resource_groups=groups
    ) as sent:
        # Then /readyz is 503 and names the Database watcher, the only one still listing; the
        # refused one is named as forbidden and holds neither probe
        waiting = _readyz_when(
            lambda body: body["waiting_for_initial_sync"] == ["databases@*"] and body["forbidden"] != []
        )
        assert waiting == (
            503,
            {"ok": False, "waiting_for_initial_sync": ["databases@*"], "forbidden": ["caches@*"]},
        )
        assert not records(sent.bodies(), "Database")

        # When the list is answered
        fake.faults.lists_held.discard("databases")

        # Then the relay is ready, and healthy though the Caches are still refused
        ready = _readyz_when(lambda body: body["ok"])
        assert ready == (200, {"ok": True, "waiting_for_initial_sync": [], "forbidden": ["caches@*"]})
        assert probe("/healthz")[0] == 200
        db = wait_for(lambda: records(sent.bodies(), "Database", "orders"), what="the Database record")
        assert db[0]["initial_sync"] is True

        # And once RBAC grants the Caches, their watcher lists and is no longer named
        fake.faults.forbidden.discard("caches")
        wait_for(lambda: probe("/readyz")[1]["forbidden"] == [], what="the Caches granted")
        assert probe("/readyz")[0] == 200


def _readyz_when(check: Callable[[dict[str, Any]], bool]) -> tuple[int, dict[str, Any]]:
    """The running relay's first `/readyz` answer whose body passes `check`."""
    found: tuple[int, dict[str, Any]] = wait_for(
        lambda: answer if check((answer := probe("/readyz"))[1]) else None, what="a /readyz answer"
    )
    return found


@pytest.mark.parametrize("enabled", [True, False])
def test_hooks_are_forwarded_when_the_crd_exists_and_the_value_is_on(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    with running_relay(fake, moto_server, tmp_path, monkeypatch, watch_hooks=enabled) as sent:
        if enabled:
            wait_for(lambda: fake.watch_requests("customresourcedefinitions"), what="CRD watch")
        threading.Event().wait(0.5)
        # Given no Hook CRD yet: the relay never asks for hooks
        assert not [r for r in fake.requests if r.path.startswith("/apis/kagent.dev")]

        # When khook's CRD is installed and khook's README Hook applied
        fake.put(fx.crd("kagent.dev", "hooks", "Hook", versions=("v1alpha2",)))
        hook = fake.put(fx.hook())

        if enabled:
            # Then it is forwarded as a hook envelope carrying the rule as written
            got = wait_for(lambda: [b for b in sent.bodies() if b["kind"] == "hook"], what="hook envelope")
            assert got[0]["payload"]["hook"] == {
                "apiVersion": "kagent.dev/v1alpha2",
                "kind": "Hook",
                "metadata": {"name": "basic-pod-monitoring", "namespace": "default"},
                "spec": hook["spec"],
            }
            assert got[0]["payload"]["name"] == "basic-pod-monitoring"

            # And its deletion too
            fake.delete("Hook", "default", "basic-pod-monitoring")
            wait_for(
                lambda: [
                    b
                    for b in sent.bodies()
                    if b["kind"] == "hook" and b["payload"]["watch_type"] == "DELETED"
                ],
                what="hook deleted",
            )
        else:
            threading.Event().wait(1.0)
            assert not [b for b in sent.bodies() if b["kind"] == "hook"]
            assert not fake.watch_requests("customresourcedefinitions")


def test_events_about_the_watched_kinds_go_to_the_history_and_no_other(
    fake: FakeKubeApi, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Events about a pod, a Deployment, a Node (cluster-scoped: its Events live in `default`)
    # and a Secret
    fake.put(core_event(namespace="shop", name="api-1.a", involved_kind="Pod", involved_name="api-1"))
    fake.put(
        core_event(
            namespace="shop", name="api.b", involved_kind="Deployment", involved_name="api",
            reason="ScalingReplicaSet", message="Scaled up replica set api-5d9f to 3", type_="Normal",
        )
    )  # fmt: skip
    node_event = core_event(
        namespace="default", name="node-1.c", involved_kind="Node", involved_name="node-1",
        reason="NodeNotReady", message="Node node-1 status is now: NodeNotReady", type_="Normal",
    )  # fmt: skip
    del node_event["involvedObject"]["namespace"]
    fake.put(node_event)
    fake.put(core_event(namespace="shop", name="db.d", involved_kind="Secret", involved_name="db"))

    with running_relay(fake, moto_server, tmp_path, monkeypatch, kinds=CHART_KINDS) as sent:
        # Then each watched kind's Event is forwarded once as a k8s_event, the Secret's never
        def subjects() -> list[tuple[str, str, str | None]]:
            return sorted(
                (
                    e["involved_object"]["kind"],
                    e["involved_object"]["name"],
                    e["involved_object"].get("namespace"),
                )
                for e in (b["payload"] for b in sent.bodies() if b["kind"] == "k8s_event")
            )

        wait_for(lambda: len(subjects()) >= 3, what="three Events")
        threading.Event().wait(0.5)
        assert subjects() == [
            ("Deployment", "api", "shop"),
            ("Node", "node-1", None),
            ("Pod", "api-1", "shop"),
        ]
    selectors = {r.query.get("fieldSelector") for r in fake.watch_requests("events")}
    assert selectors == {"involvedObject.kind=Pod", "involvedObject.kind!=Pod"}
