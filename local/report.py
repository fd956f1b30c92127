"""What happened to every input event of a local run, for people (`render`) and for tools
(`build_summary` → the JSON of `make run SUMMARY=...`).

The story of one watch line is joined from three sources, each the real component's own record:
the relay's outcome for the line (and the envelope's event_id), the processor's audit records
(`podwatch.audit`, keyed by event_id) and what the manager recorded (GetDelivered, keyed by
notification_id).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: The processor actions the summary always reports, even at zero.
PROCESSOR_ACTIONS = ("filtered", "deduplicated", "forwarded", "quarantined")


def _decision(audit: Mapping[str, Any], delivered_ids: set[str]) -> dict[str, Any]:
    nid = audit.get("notification_id")
    return {
        "action": audit.get("action"),
        "reason": audit.get("reason"),
        "event_type": audit.get("event_type"),
        "notification_id": nid,
        "delivered": bool(nid and nid in delivered_ids),
    }


def build_summary(
    *,
    replay_path: str,
    cluster_id: str,
    relay_stats: Mapping[str, Any],
    lines: Sequence[Any],
    audit_records: Sequence[Mapping[str, Any]],
    delivered: Sequence[Mapping[str, Any]],
    restate: Mapping[str, Any],
    dlq: Sequence[Mapping[str, Any]],
    log_dir: str,
    pump: Mapping[str, Any] | None = None,
    manager: Mapping[str, Any] | None = None,
    hooks: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON summary. Required keys (issue 2): input_events, relay_forwarded, processor
    {filtered, deduplicated, forwarded, quarantined}, delivered (as the manager received them),
    restate_requests, dlq; issue 17 adds hooks {fired, deduplicated, failed, resolved} (and `calls`,
    what the reference agent received). The rest (events, pods, relay, ...) explains them."""
    delivered_ids = {str(n.get("notification_id")) for n in delivered}
    by_event: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in audit_records:
        if record.get("event_id"):
            by_event[str(record["event_id"])].append(record)

    actions = Counter(str(r.get("action")) for r in audit_records)
    processor: dict[str, Any] = {action: actions.get(action, 0) for action in PROCESSOR_ACTIONS}
    processor["control"] = actions.get("control", 0)
    processor["reasons"] = dict(
        sorted(Counter(f"{r.get('action')}:{r.get('reason')}" for r in audit_records).items())
    )

    events: list[dict[str, Any]] = []
    for line in lines:
        decisions = [_decision(a, delivered_ids) for a in by_event.get(line.event_id or "", [])]
        events.append(
            {
                "line": line.line_no,
                "watch_type": line.watch_type,
                "kind": line.kind,
                "namespace": line.namespace,
                "name": line.name,
                "pod": line.pod,
                "k8s_reason": line.reason,
                "relay": line.outcome,
                "error": getattr(line, "error", None),
                "event_id": line.event_id,
                "processor": decisions,
                "delivered": any(d["delivered"] for d in decisions),
            }
        )

    return {
        "replay": replay_path,
        "cluster_id": cluster_id,
        "input_events": int(relay_stats.get("input_events", 0)),
        "relay_forwarded": int(relay_stats.get("forwarded", 0)),
        "relay": dict(relay_stats),
        "processor": processor,
        "delivered": list(delivered),
        "restate_requests": int(restate.get("requests", 0)),
        "restate_status": dict(restate.get("by_status", {})),
        "dlq": list(dlq),
        "pods": _pods(events, delivered),
        "events": events,
        "manager": dict(manager or {}),
        "hooks": dict(hooks or {"fired": 0, "deduplicated": 0, "failed": 0, "resolved": 0, "calls": []}),
        "pump": dict(pump or {}),
        "logs": log_dir,
    }


def _pods(
    events: Iterable[Mapping[str, Any]], delivered: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    pods: dict[str, dict[str, Any]] = {}
    for event in events:
        # a pod the relay could read: not a malformed or skipped line that happens to name one
        if not event.get("pod") or str(event["relay"]).startswith(("malformed", "skipped")):
            continue
        key = f"{event.get('namespace')}/{event['pod']}"
        pod = pods.setdefault(
            key, {"pod": key, "input_events": 0, "relay": Counter(), "processor": Counter(), "delivered": []}
        )
        pod["input_events"] += 1
        pod["relay"][str(event["relay"])] += 1
        for decision in event["processor"]:
            pod["processor"][str(decision["action"])] += 1
    for note in delivered:
        key = f"{note.get('namespace')}/{note.get('pod')}"
        pod = pods.setdefault(
            key, {"pod": key, "input_events": 0, "relay": Counter(), "processor": Counter(), "delivered": []}
        )
        pod["delivered"].append(
            {
                "event_type": note.get("event_type"),
                "reason": note.get("reason"),
                "container": note.get("container"),
            }
        )
    return [{**p, "relay": dict(p["relay"]), "processor": dict(p["processor"])} for p in pods.values()]


# --------------------------------------------------------------------------- text


def _counts(counter: Mapping[str, int], order: Sequence[str] = ()) -> str:
    keys = [k for k in order if counter.get(k)] + sorted(k for k in counter if k not in order and counter[k])
    return ", ".join(f"{counter[k]} {k}" for k in keys) or "-"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: Sequence[Sequence[str]], header: Sequence[str], widths: Sequence[int]) -> list[str]:
    def fmt(cells: Sequence[str]) -> str:
        parts = [_cut(c, w).ljust(w) if w else c for c, w in zip(cells, widths, strict=True)]
        return "  " + "  ".join(parts).rstrip()

    return [fmt(header), fmt(["-" * (w or len(h)) for h, w in zip(header, widths, strict=True)])] + [
        fmt(r) for r in rows
    ]


def _processor_text(decisions: Sequence[Mapping[str, Any]]) -> str:
    if not decisions:
        return ""
    parts = []
    for d in decisions:
        text = f"{d['action']} ({d['reason']})"
        if d.get("event_type") and d["action"] != "filtered":
            text += f" {d['event_type']}"
        if d.get("delivered"):
            text += " → manager"
        parts.append(text)
    return "; ".join(parts)


def _hook_calls(calls: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each message the reference agent received: the agent, the A2A wire version, the prompt."""
    out = ["Hook calls (as the agent received them)"]
    for call in calls:
        wire = "1.0" if call.get("a2a_version") == "1.0" else "0.3"
        out.append(
            f"  → {call.get('namespace')}/{call.get('agent')} (A2A {wire}, message {call.get('message_id')})"
        )
        out += [f"      {line}" for line in str(call.get("text") or "").splitlines()]
    out.append("")
    return out


def render(summary: Mapping[str, Any], *, verbose_events: bool = True) -> str:
    """The human report of a run."""
    out: list[str] = []
    relay = summary["relay"]
    processor = summary["processor"]
    delivered = summary["delivered"]
    out.append(f"podwatch local run: {summary['replay']} (cluster {summary['cluster_id']!r})")
    out.append("")

    out.append("Pods")
    pod_rows = []
    for pod in summary["pods"]:
        verdict = (
            ", ".join(
                f"{d['event_type']} ({d['reason']}{', ' + d['container'] if d.get('container') else ''})"
                for d in pod["delivered"]
            )
            or "not delivered"
        )
        pod_rows.append(
            [
                pod["pod"],
                str(pod["input_events"]),
                _counts(pod["relay"], ("forwarded", "suppressed")),
                _counts(pod["processor"], ("forwarded", "deduplicated", "filtered", "quarantined")),
                verdict,
            ]
        )
    out += _table(
        pod_rows, ["POD", "EVENTS", "RELAY", "PROCESSOR", "DELIVERED TO MANAGER"], [44, 6, 26, 40, 0]
    )
    out.append("")

    if verbose_events:
        out.append("Every input event")
        rows = []
        for e in summary["events"]:
            what = f"{e.get('namespace') or ''}/{e.get('pod') or e.get('name') or ''}".strip("/") or "-"
            if e.get("kind") == "Event" and e.get("k8s_reason"):
                what += f" [{e['k8s_reason']}]"
            if e.get("error"):
                what = f"({e['error']})"
            rows.append(
                [
                    str(e["line"]),
                    e.get("watch_type") or "-",
                    e.get("kind") or "-",
                    what,
                    e["relay"],
                    _processor_text(e["processor"]),
                ]
            )
        out += _table(
            rows, ["LINE", "WATCH", "KIND", "OBJECT", "RELAY", "PROCESSOR → MANAGER"], [4, 8, 6, 52, 28, 0]
        )
        out.append("")

    hooks = summary.get("hooks") or {}
    if hooks.get("calls"):
        out += _hook_calls(hooks["calls"])
    out.append("Totals")
    out.append(
        f"  relay:     {summary['input_events']} input events → "
        + _counts(
            {
                "forwarded": relay.get("forwarded", 0),
                "suppressed": relay.get("suppressed", 0),
                "bookmarks": relay.get("bookmarks", 0),
                "skipped": relay.get("skipped", 0),
                "malformed": relay.get("malformed", 0),
                "errors": relay.get("errors", 0),
            },
            ("forwarded", "suppressed", "bookmarks", "skipped", "malformed", "errors"),
        )
        + f"; {relay.get('sent', 0)} messages sent to pod-events"
        + (f" (incl. {relay['by_kind']['enroll']} enroll)" if relay.get("by_kind", {}).get("enroll") else "")
    )
    out.append(
        "  processor: "
        + _counts(
            {k: processor.get(k, 0) for k in (*PROCESSOR_ACTIONS, "control")},
            ("forwarded", "deduplicated", "filtered", "quarantined", "control"),
        )
    )
    pods = sorted({f"{n.get('namespace')}/{n.get('pod')}" for n in delivered})
    out.append(
        f"  manager:   {len(delivered)} notification(s) recorded for {len(pods)} pod(s), "
        f"in {summary['restate_requests']} Restate request(s)"
        + (
            " (HTTP "
            + ", ".join(f"{code}: {n}" for code, n in sorted(summary["restate_status"].items()))
            + ")"
            if summary.get("restate_status")
            else ""
        )
    )
    out.append(
        f"  hooks:     {hooks.get('fired', 0)} fired, {hooks.get('deduplicated', 0)} deduplicated, "
        f"{hooks.get('failed', 0)} failed, {hooks.get('resolved', 0)} resolved"
    )
    if summary["dlq"]:
        out.append(f"  DLQs:      {len(summary['dlq'])} message(s)")
        for m in summary["dlq"]:
            out.append(
                f"             {m['queue']}: reason={m.get('reason')} {_cut(str(m.get('error') or ''), 90)}"
            )
            out.append(f"               body: {_cut(str(m.get('body', '')), 100)}")
    else:
        out.append("  DLQs:      empty")
    out.append("")
    files = ", ".join(summary.get("log_files", [])) or "moto.log, restate.log, manager.log, functions.log"
    out.append(f"Logs: {summary['logs']}/ ({files})")
    return "\n".join(out)
