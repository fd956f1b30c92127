"""Matching: a hook sees its own namespace unless cluster-wide; every match is its own."""

from __future__ import annotations

from typing import Any

from podwatch.hooks.match import HookIndex
from podwatch.hooks.rules import parse_hook
from podwatch.models import EventType
from tests.factories import pod_notification


def _hook(name: str, namespace: str, *types: str, cluster_wide: bool = False) -> Any:
    return parse_hook(
        {
            "apiVersion": "kagent.dev/v1alpha2",
            "kind": "Hook",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "clusterWide": cluster_wide,
                "eventConfigurations": [
                    {"eventType": t, "agentRef": {"name": "a"}, "prompt": f"{t} {{{{.ResourceName}}}}"}
                    for t in types
                ],
            },
        }
    )


def _in(namespace: str, event_type: EventType = EventType.CRASH_LOOP) -> Any:
    return pod_notification("c", "p", event_type).model_copy(update={"namespace": namespace})


def test_own_namespace_only_unless_cluster_wide() -> None:
    index = HookIndex(
        [_hook("shop-hook", "shop", "pod-restart"), _hook("all", "ops", "crash-loop", cluster_wide=True)]
    )
    assert [m.name for m in index.matches(_in("shop"))] == ["shop/shop-hook#0", "ops/all#0"]
    assert [m.name for m in index.matches(_in("payments"))] == ["ops/all#0"]


def test_one_event_matches_several_configurations_of_one_hook() -> None:
    index = HookIndex([_hook("h", "shop", "pod-restart", "crash-loop", "oom-kill")])
    assert [m.config.eventType for m in index.matches(_in("shop"))] == ["pod-restart", "crash-loop"]
    assert [m.config.eventType for m in index.matches(_in("shop", EventType.OOM_KILL))] == ["oom-kill"]
    assert index.matches(_in("shop", EventType.EVICTED)) == []


def test_a_recovery_finds_the_matches_of_the_trouble_it_ends() -> None:
    index = HookIndex([_hook("h", "shop", "pod-restart")])
    recovered = _in("shop", EventType.RECOVERED).model_copy(update={"resolves": EventType.CRASH_LOOP})
    assert index.matches(recovered) == []
    assert [m.name for m in index.resolvers(recovered)] == ["shop/h#0"]
