"""Hooks watched in the cluster: a `hook` envelope (the relay's watch of khook `Hook` objects)
applies a rule to the hooks table or deletes it, as `podwatch hooks apply|delete` do
(`HookStore.put_rule` / `delete_rule`, the same validation). docs/operations.md, "Hooks"."""

from __future__ import annotations

from podwatch.hooks.rules import HookInvalid, parse_hook
from podwatch.hooks.state import HookStore
from podwatch.models import HookObject

#: `source` of a rule applied from the cluster (the CLI's is `cli`)
SOURCE = "cluster"


def apply_hook_object(store: HookStore, obj: HookObject, *, cluster: str, now_s: int) -> str:
    """Apply or delete one watched Hook; returns what happened (`hook_applied`, `hook_deleted`,
    `hook_absent`, `hook_stale`: a change older than one already applied or deleted, left alone).
    HookInvalid (a PermanentError: quarantined) names every problem of a bad one."""
    key = f"{obj.namespace}/{obj.name}"
    hook = None
    if obj.watch_type != "DELETED":
        if obj.hook is None:
            raise HookInvalid(["hook: an added or modified Hook needs its object"])
        hook = parse_hook(obj.hook)
        if hook.key != key:
            raise HookInvalid([f"metadata: the Hook is {hook.key}, the envelope names {key}"])
    # resourceVersions are etcd revisions in practice; an opaque one cannot be ordered, so applies
    if obj.resource_version.isdigit() and not store.advance_seen(
        cluster, key, int(obj.resource_version), now_s=now_s
    ):
        return "hook_stale"
    if hook is None:
        return "hook_deleted" if store.delete_rule(key) else "hook_absent"
    store.put_rule(hook, now_s=now_s, source=SOURCE)
    return "hook_applied"
