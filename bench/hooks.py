"""Hooks benchmark: `hooks_us_per_event`, the CPU time per notification of what the hooks function
does before any call leaves: match the rules, render the prompt, take the dedup decision.

    50 hooks x 50 configurations loaded (2,500), one hook per namespace plus one cluster-wide
    hook; notifications of the types and namespaces the rules name. Per notification: every
    matching configuration is rendered (the real function renders only those it calls: this is the
    upper bound) and claimed through `HookStore.claim` against a stub DynamoDB client (AWS stubbed:
    the bench measures podwatch's code, not the network). Goal ≤ 200 µs.

A valid Hook has one configuration per eventType, and there are 11 eventType names: 50 per hook is
reached here by repeating types (models built without `parse_hook`'s duplicate check), which makes
the index denser and each notification match more configurations than any valid rule set would.

    python -m bench hooks          # this section alone; `python -m bench` runs every section
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

HOOKS = 50
CONFIGURATIONS = 50
EVENTS = 2000
ROUNDS = 7
GOAL_US = 200.0
PROMPT = (
    "AUTONOMOUS MODE: {{.EventType}} for pod {{.ResourceName}} in {{.Namespace}} (cluster {{.Cluster}}, "
    "workload {{.Workload}}, container {{.Container}}) at {{.Timestamp}}. Reason: {{.Reason}}, restarts: "
    "{{.RestartCount}}, incident {{.IncidentId}}.\nThe pod reported:\n{{.Message}}\nINSTRUCTIONS:\n"
    "- Use all available tools to diagnose and resolve the issue\n- Focus on crashes, resource limits, "
    "health checks, configuration\n- Annotate fixed resources with kagentFix=<timestamp>\n"
)


class StubDynamoDB:
    """Answers the claim's UpdateItem as DynamoDB does when the claim is granted (a new window)."""

    calls = 0

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        return {"Attributes": {"generation": {"N": "3"}, "pk": request["Key"]["pk"]}}


def rules() -> list[Any]:
    from podwatch.hooks.rules import HOOK_EVENT_TYPES, Hook

    types = sorted(HOOK_EVENT_TYPES)
    hooks = []
    for h in range(HOOKS):
        configurations = [
            {"eventType": types[(h + i) % len(types)], "agentRef": {"name": f"agent-{i}"}, "prompt": PROMPT}
            for i in range(CONFIGURATIONS)
        ]
        hooks.append(
            Hook.model_validate(
                {
                    "apiVersion": "kagent.dev/v1alpha2",
                    "kind": "Hook",
                    "metadata": {"name": f"hook-{h}", "namespace": f"ns-{h}"},
                    "spec": {"clusterWide": h == 0, "eventConfigurations": configurations},
                }
            )
        )
    return hooks


def notifications() -> list[Any]:
    from podwatch import ids
    from podwatch.models import EventType, Notification

    kinds = [EventType.CRASH_LOOP, EventType.OOM_KILL, EventType.IMAGE_PULL, EventType.EVICTED]
    out = []
    for i in range(EVENTS):
        event_type = kinds[i % len(kinds)]
        event_id = ids.pod_event_id("bench", f"uid-{i}", str(1000 + i), "MODIFIED")
        out.append(
            Notification(
                notification_id=ids.notification_id(event_id, event_type, "app"),
                event_id=event_id,
                cluster_id="bench",
                event_type=event_type,
                reason="CrashLoopBackOff",
                message=f"back-off 5m0s restarting failed container app in pod api-{i} {{{{.Namespace}}}}",
                source="pod",
                dedup_key=f"bench/ns-{i % HOOKS}/api-{i}/app/{event_type}",
                namespace=f"ns-{i % HOOKS}",
                pod=f"api-{i}",
                container="app",
                workload_name="api",
                restart_count=i % 7,
                observed_at=datetime(2026, 12, 6, 12, 0, tzinfo=UTC),
            )
        )
    return out


def measure() -> dict[str, Any]:
    from podwatch.hooks.match import HookIndex
    from podwatch.hooks.prompt import base_values
    from podwatch.hooks.state import EventKey, HookStore

    index = HookIndex(rules())
    events = notifications()
    store = HookStore(table_name="bench-hooks", client=StubDynamoDB())
    now_s = int(time.time())

    def one_round() -> tuple[float, int]:
        matched = 0
        started = time.process_time()
        for n in events:
            values: dict[str, str] = {}
            for match in index.matches(n):
                key = EventKey(match.hook.key, match.config.eventType, n.cluster_id, n.namespace, n.pod)
                store.claim(key, n.notification_id, now_s=now_s, lease_s=24, window_s=600)
                if not values:  # as the engine does: once per notification, at its first call
                    values.update(base_values(n))
                values["EventType"] = match.config.eventType
                match.template.render(values)
                matched += 1
        return (time.process_time() - started) / len(events) * 1e6, matched

    one_round()  # warm: compiled templates cached, models built
    runs = [one_round() for _ in range(ROUNDS)]
    per_event = [us for us, _ in runs]
    return {
        "hooks_us_per_event": round(min(per_event), 1),
        "hooks_bench": {
            "hooks": HOOKS,
            "configurations": HOOKS * CONFIGURATIONS,
            "events": EVENTS,
            "matches_per_event": round(runs[0][1] / len(events), 2),
            "us_per_event_median": round(statistics.median(per_event), 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "note": "CPU time, best of 7 rounds; match + render + claim (stub DynamoDB) per match",
        },
    }


def main() -> None:
    from bench.host import host_reference
    from bench.processor import merge_results

    figures = measure()
    # this section may run alone: its figure keeps the speed of the host it was taken on
    figures["hooks_bench"]["host_reference_ms"] = host_reference()["host_reference_ms"]
    merge_results(figures)
    value = figures["hooks_us_per_event"]
    verdict = "ok" if value <= GOAL_US else "MISSES GOAL"
    print(f"{'hooks_us_per_event':32} {value:>9}   goal <= {GOAL_US:<6} {verdict}")
    print(f"  {figures['hooks_bench']}")


if __name__ == "__main__":
    main()
