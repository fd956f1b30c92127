"""Metric names (one namespace per stack, POWERTOOLS_METRICS_NAMESPACE) and per-invocation counting.

Every metric has the Powertools `service` dimension and is a Count, but HeartbeatAgeSeconds
(Seconds), DeliveryLatency (Milliseconds) and CircuitState (a 0/1 gauge). A few also come broken down by a
low-cardinality `reason` dimension (a bounded set of codes, never ids or names): Filtered (healthy,
deleted, ignored_namespace, disabled:<type>), Quarantined (the error reason), Control (kind),
EventTimeUntrusted (future, past).
Alarms and dashboard widgets may use exactly the names listed in the `*_METRICS` sets (PROCESSOR_METRICS,
DELIVER_METRICS, CONFIG_SYNC_METRICS, FANOUT_METRICS): tests/unit/test_observability.py checks them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aws_lambda_powertools import Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit


def metrics_namespace(stack_name: str) -> str:
    """A stack's namespace, as template.yaml sets POWERTOOLS_METRICS_NAMESPACE (`Podwatch/${AWS::StackName}`)
    and its alarms, dashboard and `MetricsNamespace` output use it: stacks never share metrics."""
    return f"Podwatch/{stack_name}"


# processor
RECEIVED = "Received"
FORWARDED = "Forwarded"
FILTERED = "Filtered"
DEDUPLICATED = "Deduplicated"
QUARANTINED = "Quarantined"
CONTROL = "Control"
#: records returned to SQS as batch item failures (transient errors; SQS retries them)
RETRIED = "Retried"
#: the remote config parameter held an invalid value; the last good config stayed in force
CONFIG_REJECTED = "ConfigRejected"
#: the remote config parameter could not be read; the last good config stayed in force
CONFIG_FETCH_FAILED = "ConfigFetchFailed"
#: incidents opened (a forwarded trouble notification that opened a dedup window) and resolved
#: (a forwarded `recovered` notification)
INCIDENTS_OPENED = "IncidentsOpened"
INCIDENTS_RESOLVED = "IncidentsResolved"
#: pod metadata table writes or reads that failed (best effort: the records were still processed)
METADATA_FAILED = "MetadataFailed"
#: records whose observed time was not believed (`reason` future | past: beyond the tolerance of
#: podwatch.dedup.window_time); their windows ran on the processor's clock
EVENT_TIME_UNTRUSTED = "EventTimeUntrusted"

# deliver
DELIVERED = "Delivered"
#: 4xx from the manager: the records went to the quarantine queue with the response
DELIVERY_REJECTED = "DeliveryRejected"
#: 401/403 from the manager: credentials, an alarm of its own
DELIVERY_UNAUTHORIZED = "DeliveryUnauthorized"
#: the breaker was open: no call was made, the records were returned to SQS
CIRCUIT_OPEN = "CircuitOpen"
#: Restate ingress requests made (the `reason` breakdown is the status code class: 2xx, 4xx, 5xx, error)
RESTATE_REQUESTS = "RestateRequests"

PROCESSOR_METRICS = frozenset(
    {
        RECEIVED,
        FORWARDED,
        FILTERED,
        DEDUPLICATED,
        QUARANTINED,
        CONTROL,
        RETRIED,
        CONFIG_REJECTED,
        CONFIG_FETCH_FAILED,
        INCIDENTS_OPENED,
        INCIDENTS_RESOLVED,
        METADATA_FAILED,
        EVENT_TIME_UNTRUSTED,
    }
)
DELIVER_METRICS = frozenset(
    {
        RECEIVED,
        DELIVERED,
        QUARANTINED,
        RETRIED,
        DELIVERY_REJECTED,
        DELIVERY_UNAUTHORIZED,
        CIRCUIT_OPEN,
        RESTATE_REQUESTS,
        CONFIG_REJECTED,
        CONFIG_FETCH_FAILED,
    }
)


def count(metrics: Metrics | None, name: str, value: int = 1) -> None:
    if metrics is not None and value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@dataclass
class Tally:
    """Counts of one invocation, emitted once at its end (one EMF blob + one per reason breakdown)."""

    totals: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, name: str, reason: str | None = None, value: int = 1) -> None:
        self.totals[name] += value
        if reason is not None:
            self.by_reason[(name, reason)] += value

    def emit(self, metrics: Metrics) -> None:
        for name, value in sorted(self.totals.items()):
            count(metrics, name, value)
        dimensions = {"service": metrics.service} if metrics.service else {}
        for (name, reason), value in sorted(self.by_reason.items()):
            with single_metric(
                name=name,
                unit=MetricUnit.Count,
                value=value,
                namespace=metrics.namespace,
                default_dimensions={**dimensions, "reason": reason},
            ):
                pass


# Enrollment and config sync (issue 6). Added here, after the rest, so the lists above stay as they were.
#: deliver: a relay version of a cluster enrolled with the manager (one Enroll call)
ENROLLED = "Enrolled"
DELIVER_METRICS = DELIVER_METRICS | {ENROLLED}

# config-sync (the scheduled function)
#: a cluster's remote config fetched from the manager and valid
CONFIG_FETCHED = "ConfigFetched"
#: the SSM parameter was rewritten (the manager's config changed)
CONFIG_UPDATED = "ConfigUpdated"
#: the deliveries event source mapping was retuned (batch size / batching window)
ESM_UPDATED = "EventSourceMappingUpdated"
#: the stack's clusters do not all have the same remote config (the first cluster's is used)
CONFIG_DIVERGENT = "ConfigDivergent"
#: clusters whose last enroll/heartbeat is older than the silence threshold (or never seen)
CLUSTERS_SILENT = "ClustersSilent"
#: age of a cluster's last enroll/heartbeat, seconds (dimension `cluster_id`: the stack's clusters)
HEARTBEAT_AGE_SECONDS = "HeartbeatAgeSeconds"
#: the config-sync function's metrics, besides CONFIG_REJECTED and CONFIG_FETCH_FAILED
CONFIG_SYNC_METRICS = frozenset(
    {
        CONFIG_FETCHED,
        CONFIG_REJECTED,
        CONFIG_FETCH_FAILED,
        CONFIG_UPDATED,
        ESM_UPDATED,
        CONFIG_DIVERGENT,
        CLUSTERS_SILENT,
        HEARTBEAT_AGE_SECONDS,
    }
)

# Delivery latency and breaker state (issue 7). Added after the rest, like the names above.
#: deliver: milliseconds from a notification's `observed_at` (the relay saw it) to the manager's 2xx
#: answer, one value per delivered notification (unit Milliseconds; dashboards use p50/p99)
DELIVERY_LATENCY = "DeliveryLatency"
#: deliver: the Restate breaker's state at the end of every invocation, 1 = open, 0 = closed
#: (unit None; Maximum > 0 = some execution environment's breaker is open: the alarm)
CIRCUIT_STATE = "CircuitState"
#: deliver: the breaker tripped (closed/half-open → open) during an invocation
BREAKER_OPENED = "BreakerOpened"
DELIVER_METRICS = DELIVER_METRICS | {DELIVERY_LATENCY, CIRCUIT_STATE, BREAKER_OPENED}

# Fan-out to the stack's EventBridge bus (issue 12). Added after the rest, like the names above.
#: processor: forwarded notifications the fan-out queue did not take (delivered all the same; logged)
FANOUT_FAILED = "FanoutFailed"
PROCESSOR_METRICS = PROCESSOR_METRICS | {FANOUT_FAILED}
#: fanout: notifications put on the bus (EventBridge accepted the entry)
PUBLISHED = "Published"
#: the fan-out function's metrics (Retried: entries EventBridge refused or calls that failed, back to SQS)
FANOUT_METRICS = frozenset({RECEIVED, PUBLISHED, RETRIED, QUARANTINED})

# Hooks (issue 17): the hooks function, service `podwatch-hooks`.
#: a hook's agent or webhook answered 2xx: its dedup window started
HOOK_FIRED = "HookFired"
#: a repeat inside a hook's window after a successful call: not called again
HOOK_DEDUPLICATED = "HookDeduplicated"
#: a hook call failed (`reason`: unreachable, http_5xx, http_429, circuit_open, ...; rejected ones too)
HOOK_FAILED = "HookFailed"
#: a hook call answered 4xx (or a JSON-RPC refusal): the notification went to the hooks DLQ
HOOK_REJECTED = "HookRejected"
#: a hook's event resolved because podwatch's incident resolved
HOOK_RESOLVED = "HookResolved"
#: a hook target's breaker tripped
HOOK_BREAKER_OPENED = "HookBreakerOpened"
HOOKS_METRICS = frozenset(
    {
        RECEIVED,
        RETRIED,
        QUARANTINED,
        HOOK_FIRED,
        HOOK_DEDUPLICATED,
        HOOK_FAILED,
        HOOK_REJECTED,
        HOOK_RESOLVED,
        HOOK_BREAKER_OPENED,
    }
)

# Event history (issue 16). Added after the rest, like the names above.
#: history-writer: items written to the history table (one per record)
HISTORY_WRITTEN = "HistoryWritten"
#: history-writer: items DynamoDB left unprocessed (throttling) or refused, retried inside the invocation
HISTORY_THROTTLED = "HistoryThrottled"
#: the history-writer's metrics (Retried: records returned to SQS; Quarantined(reason): to the history DLQ)
HISTORY_WRITER_METRICS = frozenset({RECEIVED, HISTORY_WRITTEN, HISTORY_THROTTLED, RETRIED, QUARANTINED})
#: history API: list and object queries answered (200)
HISTORY_QUERIES = "HistoryQueries"
#: history API: requests refused with 400 (a bad parameter)
HISTORY_BAD_REQUESTS = "HistoryBadRequests"
#: history API: requests that failed on the table (503)
HISTORY_QUERY_FAILED = "HistoryQueryFailed"
HISTORY_METRICS = frozenset({HISTORY_QUERIES, HISTORY_BAD_REQUESTS, HISTORY_QUERY_FAILED})
