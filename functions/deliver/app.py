"""Deliver: deliveries queue → chunks by the remote batch size → Restate NotifyPodEvents.

Thin on purpose: the logic is `podwatch.delivery.deliver_records`. Delivery succeeds or fails per
chunk, not per record, so this handler does not use BatchProcessor's per-record loop: it builds the
same partial response itself, `{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`, from
the per-record result (failed chunks' records; quarantined records are handled, not failures).

For tests and the local stack:
    build_dependencies(settings=None, *, sqs=None, ssm=None, http=None, breaker=None)
        -> DeliverDependencies
    set_dependencies(deps) / dependencies() / reset()
    dependencies().restate.stats  →  requests made to the Restate ingress, total and by status code

Import and Tracer: the kit's policies (podwatch.kit); the Tracer also patches httpx (Restate calls).

Metrics of an invocation (podwatch.telemetry, besides the tally's counts): DeliveryLatency, one
value per delivered notification; CircuitState, the breaker at the end (1 open, 0 closed; every
invocation, so an alarm on its Maximum clears on data, not on silence); BreakerOpened, its trips.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from podwatch import kit, telemetry

if TYPE_CHECKING:
    import httpx
    import pybreaker
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from podwatch.delivery import DeliverDeps, DeliveryResult
    from podwatch.restate import RestateClient
    from podwatch.settings import DeliverSettings

logger, tracer, metrics = kit.tools()

#: Do not start a call with less than this left beyond the timeouts of one request.
SAFETY_MARGIN_MS = 1000


@dataclass(frozen=True, slots=True)
class DeliverDependencies:
    settings: DeliverSettings
    restate: RestateClient
    delivery: DeliverDeps
    parameters: SSMProvider


def build_dependencies(
    settings: DeliverSettings | None = None,
    *,
    sqs: Any = None,
    ssm: Any = None,
    http: httpx.Client | None = None,
    breaker: pybreaker.CircuitBreaker | None = None,
    **restate_options: Any,
) -> DeliverDependencies:
    """Settings from the environment, boto3 clients and the Restate client, unless given.
    `restate_options` go to RestateClient (max_tries, backoff_base, ...)."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from podwatch import aws
    from podwatch.delivery import DeliverDeps
    from podwatch.settings import DeliverSettings

    settings = settings or DeliverSettings.from_env()
    parameters = SSMProvider(boto3_client=ssm or aws.client("ssm"))
    restate = kit.restate_client(settings, parameters, http=http, breaker=breaker, **restate_options)
    return DeliverDependencies(
        settings=settings,
        restate=restate,
        delivery=DeliverDeps(
            restate=restate,
            sqs=sqs or aws.client("sqs"),
            quarantine_queue_url=settings.quarantine_queue_url,
            max_receive_count=settings.max_receive_count,
        ),
        parameters=parameters,
    )


_deps: kit.Environment[DeliverDependencies] = kit.Environment(
    lambda: build_dependencies(),
    tracer=tracer,
    patch=kit.AWS_AND_HTTP,
    close=lambda d: d.restate.close(),
    forget=kit.forget_remote_config,
)
#: the dependencies of this execution environment, built on first use
dependencies = _deps.get
set_dependencies = _deps.set
#: forget dependencies (Parameters cache, Restate client, breaker state) and the last good config
reset = _deps.reset


def _status_class(status: str) -> str:
    return f"{status[0]}xx" if status.isdigit() else status


def emit_metrics(
    result: DeliveryResult, restate: RestateClient, *, requests_before: Counter[str], opened_before: int
) -> None:
    """The invocation's metrics: the tally (with Restate requests by status class and breaker trips
    since the `..._before` snapshot), a latency per delivered notification, the breaker's state."""
    for status, n in (Counter(restate.stats.by_status) - requests_before).items():
        result.tally.add(telemetry.RESTATE_REQUESTS, reason=_status_class(status), value=n)
    result.tally.add(telemetry.BREAKER_OPENED, value=restate.stats.breaker_opened - opened_before)
    result.tally.emit(metrics)
    # Several values of one metric go out in one EMF blob (Powertools flushes at 100 values)
    for value in result.latencies_ms:
        metrics.add_metric(name=telemetry.DELIVERY_LATENCY, unit=MetricUnit.Milliseconds, value=value)
    metrics.add_metric(
        name=telemetry.CIRCUIT_STATE, unit=MetricUnit.NoUnit, value=1 if restate.breaker_open else 0
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    deps = dependencies()
    from podwatch import config
    from podwatch.delivery import deliver_records

    remote, _current = config.load_remote_config(
        parameter_name=deps.settings.config_parameter_name,
        max_age=deps.settings.config_max_age_seconds,
        provider=deps.parameters,
        metrics=metrics,
    )
    # a call is started only if it can finish, retries included, before Lambda stops the function
    needed_ms = deps.restate.worst_call_seconds * 1000
    requests_before = Counter(deps.restate.stats.by_status)
    opened_before = deps.restate.stats.breaker_opened
    result = deliver_records(
        event.get("Records") or [],
        deps=deps.delivery,
        config=remote,
        time_left=lambda: context.get_remaining_time_in_millis() > needed_ms + SAFETY_MARGIN_MS,
    )
    emit_metrics(result, deps.restate, requests_before=requests_before, opened_before=opened_before)
    logger.info(
        "batch done",
        extra={
            "delivered": len(result.delivered),
            "failed": len(result.failed),
            "quarantined": len(result.quarantined),
            "restate_calls": result.calls,
            "breaker": deps.restate.breaker.current_state,
        },
    )
    return kit.failed_items(result.failed)
