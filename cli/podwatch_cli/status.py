"""`podwatch status`: queue and DLQ depths, the last heartbeat of every cluster, breaker and alarms.

Queue depths come from SQS, clusters from the clusters table (`last_seen_at` = the newest enroll or
heartbeat of the cluster's relay), breaker and alarm state from CloudWatch (the `CircuitOpen`
metric of the deliver function, the stack's alarms by name prefix). A local stack has no CloudWatch
data: those lines say so instead of guessing.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from podwatch_cli.dlq import table
from podwatch_cli.stack import DLQ_SOURCES, QUEUES, Clients, Stack

#: A cluster not heard of for this long is shown as silent (config-sync's SILENT_AFTER_SECONDS).
SILENT_AFTER_SECONDS = 900
BREAKER_WINDOW = timedelta(minutes=15)
DELIVER_SERVICE = "podwatch-deliver"


def queues(clients: Clients, stack: Stack) -> list[dict[str, Any]]:
    sqs = clients("sqs")
    rows = []
    for lid, (short, _) in QUEUES.items():
        if lid not in stack.queues:
            continue
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.queues[lid],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        rows.append(
            {
                "queue": short,
                "dlq": lid in DLQ_SOURCES,
                "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
            }
        )
    return rows


def clusters(clients: Clients, stack: Stack, *, now: float) -> list[dict[str, Any]] | None:
    """Every cluster of the clusters table with its last enroll/heartbeat; None without a table."""
    if not stack.clusters_table:
        return None
    dynamodb = clients("dynamodb")
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": stack.clusters_table}
    try:
        while True:
            page = dynamodb.scan(**request)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    rows = []
    for item in items:
        seen = float(item["last_seen_at"]["N"]) if "last_seen_at" in item else None
        rows.append(
            {
                "cluster_id": item["pk"]["S"],
                "last_seen_at": None if seen is None else datetime.fromtimestamp(seen, UTC).isoformat(),
                "age_seconds": None if seen is None else max(0, int(now - seen)),
                "silent": seen is None or now - seen > SILENT_AFTER_SECONDS,
                "last_kind": item.get("last_kind", {}).get("S"),
                "relay_version": item.get("relay_version", {}).get("S"),
            }
        )
    return sorted(rows, key=lambda r: r["cluster_id"])


def cmd_forget(clients: Clients, stack: Stack, cluster_id: str, *, out: IO[str], err: IO[str]) -> int:
    """`podwatch clusters forget ID`: delete a decommissioned cluster's item from the clusters table,
    so config-sync stops counting it in `ClustersSilent` (the item would otherwise stay until its
    TTL, 30 days, and keep the relay-heartbeats-stopped alarm on). A relay of that cluster that is
    still running brings it back with its next heartbeat (and enrolls again)."""
    if not stack.clusters_table:
        err.write("podwatch clusters forget: the stack has no clusters table\n")
        return 1
    try:
        answer = clients("dynamodb").delete_item(
            TableName=stack.clusters_table,
            Key={"pk": {"S": cluster_id}},
            ConditionExpression="attribute_exists(pk)",
            ReturnValues="ALL_OLD",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            err.write(f"podwatch clusters forget: no cluster {cluster_id!r} in {stack.clusters_table}\n")
            return 1
        raise
    seen = answer.get("Attributes", {}).get("last_seen_at", {}).get("N")
    when = datetime.fromtimestamp(float(seen), UTC).isoformat() if seen else "never"
    out.write(
        f"forgot cluster {cluster_id} (last heard of: {when}); a relay of it that is still running "
        "brings it back with its next heartbeat\n"
    )
    return 0


def alarms(clients: Clients, stack: Stack) -> list[dict[str, str]] | None:
    try:
        pages = (
            clients("cloudwatch")
            .get_paginator("describe_alarms")
            .paginate(AlarmNamePrefix=stack.alarm_prefix)
        )
        found = [a for page in pages for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])]
    except (ClientError, BotoCoreError):
        return None
    return [
        {"name": a["AlarmName"], "state": a["StateValue"], "why": a.get("StateReason", "")} for a in found
    ]


def breaker(clients: Clients, stack: Stack, *, now: datetime) -> int | None:
    """Records skipped by an open breaker in the last 15 minutes; None when CloudWatch has no data."""
    try:
        answer = clients("cloudwatch").get_metric_statistics(
            Namespace=stack.metrics_namespace,
            MetricName="CircuitOpen",
            Dimensions=[{"Name": "service", "Value": DELIVER_SERVICE}],
            StartTime=now - BREAKER_WINDOW,
            EndTime=now,
            Period=int(BREAKER_WINDOW.total_seconds()),
            Statistics=["Sum"],
        )
    except (ClientError, BotoCoreError):
        return None
    points = answer.get("Datapoints", [])
    return int(sum(p["Sum"] for p in points)) if points else None


def gather(clients: Clients, stack: Stack) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "stack": stack.name,
        "resolved_from": stack.source,
        "queues": queues(clients, stack),
        "clusters": clusters(clients, stack, now=time.time()),
        "breaker_open_records_15m": breaker(clients, stack, now=now),
        "alarms": alarms(clients, stack),
    }


def cmd_status(clients: Clients, stack: Stack, *, as_json: bool, out: IO[str]) -> int:
    report = gather(clients, stack)
    if as_json:
        out.write(json.dumps(report, indent=2) + "\n")
        return 0
    out.write(f"stack {report['stack']} (names from {report['resolved_from']})\n\n")
    rows: list[tuple[str, ...]] = [("QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED", "")]
    for q in report["queues"]:
        flag = "<- look: `podwatch dlq list`" if q["dlq"] and q["visible"] else ""
        rows.append((q["queue"], str(q["visible"]), str(q["in_flight"]), str(q["delayed"]), flag))
    out.write(table(rows) + "\n")

    if report["clusters"] is None:
        out.write("clusters: no clusters table in this stack\n")
    elif not report["clusters"]:
        out.write("clusters: none has enrolled yet (is a relay installed?)\n")
    else:
        rows = [("CLUSTER", "LAST HEARD", "AGE", "LAST", "RELAY", "")]
        for c in report["clusters"]:
            age = "never" if c["age_seconds"] is None else _age(c["age_seconds"])
            rows.append(
                (
                    c["cluster_id"],
                    c["last_seen_at"] or "-",
                    age,
                    c["last_kind"] or "-",
                    c["relay_version"] or "-",
                    "SILENT" if c["silent"] else "",
                )
            )
        out.write(table(rows))
    out.write("\n")

    skipped = report["breaker_open_records_15m"]
    if skipped is None:
        out.write("breaker: no CircuitOpen data in the last 15 min (closed, or no CloudWatch here)\n")
    else:
        out.write(f"breaker: OPEN in the last 15 min, {skipped} record(s) sent back to SQS\n")
    if report["alarms"] is None:
        out.write("alarms: CloudWatch not reachable\n")
    else:
        firing = [a for a in report["alarms"] if a["state"] == "ALARM"]
        out.write(f"alarms: {len(firing)} of {len(report['alarms'])} in ALARM\n")
        for a in firing:
            out.write(f"  {a['name']}: {a['why']}\n")
    return 0


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
