"""`podwatch hooks`: the khook-format Hook rules of a stack (its hooks table, podwatch.hooks.state).

    podwatch hooks apply -f hook.yaml      validate every document, then store them all (or none)
    podwatch hooks list                    one line per hook: event types, scope, targets
    podwatch hooks delete NAMESPACE/NAME   remove a hook and its events
    podwatch hooks status [NAMESPACE/NAME] khook's status (activeEvents, firing|resolved) + call counts

A Hook file from khook applies unchanged; validation names the field of every problem.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

import yaml

from podwatch.hooks.rules import Hook, HookInvalid, parse_hook
from podwatch.hooks.state import HookStore, status_of
from podwatch_cli.dlq import table


def _documents(path: str) -> list[Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def cmd_apply(store: HookStore, path: str, *, dry_run: bool, out: IO[str], err: IO[str]) -> int:
    try:
        documents = _documents(path)
    except (OSError, yaml.YAMLError) as exc:
        err.write(f"podwatch hooks apply: cannot read {path}: {exc}\n")
        return 1
    hooks: list[Hook] = []
    refused = False
    for i, raw in enumerate(documents):
        name = raw.get("metadata", {}).get("name", "?") if isinstance(raw, dict) else "?"
        try:
            hooks.append(parse_hook(raw if isinstance(raw, dict) else {}))
        except HookInvalid as exc:
            refused = True
            err.write(f"podwatch hooks apply: {path}, document {i + 1} ({name}) refused:\n")
            err.writelines(f"  {problem}\n" for problem in exc.problems)
    if refused or not hooks:
        err.write("podwatch hooks apply: nothing applied\n" if refused else f"{path}: no Hook documents\n")
        return 1
    for hook in hooks:
        if not dry_run:
            store.put_rule(hook, now_s=int(time.time()), source="cli")
        types = ", ".join(c.eventType for c in hook.spec.eventConfigurations)
        verb = "valid (dry run)" if dry_run else "applied"
        out.write(f"hook {hook.key} {verb}: {types}\n")
    return 0


def _targets(hook: Hook) -> str:
    names = set()
    for config in hook.spec.eventConfigurations:
        if config.webhook is not None:
            names.add(f"webhook {config.webhook.url}")
        else:
            namespace, agent = hook.agent_of(config)
            names.add(f"agent {namespace}/{agent}")
    return "; ".join(sorted(names))


def cmd_list(store: HookStore, *, as_json: bool, out: IO[str]) -> int:
    hooks = sorted(store.rules(), key=lambda h: h.key)
    rows = [
        {
            "hook": hook.key,
            "event_types": ",".join(c.eventType for c in hook.spec.eventConfigurations),
            "scope": "cluster" if hook.spec.clusterWide else "namespace",
            "window_s": str(hook.spec.dedupWindowSeconds),
            "targets": _targets(hook),
        }
        for hook in hooks
    ]
    problems = store.rule_problems()
    if as_json:
        out.write(json.dumps({"hooks": rows, "invalid": problems}, indent=2) + "\n")
        return 0
    columns = ["hook", "event_types", "scope", "window_s", "targets"]
    out.write(table([columns, *([row[c] for c in columns] for row in rows)]) if rows else "no hooks\n")
    for key, problem in sorted(problems.items()):
        out.write(f"stored hook {key} no longer validates: {problem}\n")
    return 0


def _key(name: str) -> str:
    return name if "/" in name else f"default/{name}"


def cmd_delete(store: HookStore, name: str, *, out: IO[str], err: IO[str]) -> int:
    key = _key(name)
    if not store.delete_rule(key):
        err.write(f"podwatch hooks delete: no hook {key}\n")
        return 1
    out.write(f"hook {key} deleted\n")
    return 0


def cmd_status(store: HookStore, name: str | None, *, out: IO[str], err: IO[str]) -> int:
    keys = [_key(name)] if name else sorted(h.key for h in store.rules())
    known = {h.key for h in store.rules()}
    if name and keys[0] not in known:
        err.write(f"podwatch hooks status: no hook {keys[0]}\n")
        return 1
    now_s = int(time.time())
    status = {key: status_of(store.events(key), now_s=now_s) for key in keys}
    out.write(json.dumps(status if not name else status[keys[0]], indent=2) + "\n")
    return 0


def store_for(dynamodb: Any, table_name: str) -> HookStore:
    return HookStore(table_name=table_name, client=dynamodb)
