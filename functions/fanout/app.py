"""Fan-out: fan-out queue → the stack's EventBridge bus (PutEvents, ≤ 10 entries a call).

Thin on purpose: the logic is `podwatch.fanout.publish_records`; the event shape (source `podwatch`,
detail-type = the event type, detail = the Notification) is in docs/internals.md, "Fan-out". The
partial response is built from the per-record result, as in deliver: a record whose entry
EventBridge refused goes back to SQS (then the fan-out DLQ); a body that is no Notification is
quarantined there at once with reason `malformed`.

For tests and the local stack:
    build_dependencies(settings=None, *, events=None, sqs=None) -> Dependencies
    set_dependencies(deps) / dependencies() / reset()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from podwatch import aws
from podwatch.fanout import PublishDeps, publish_records
from podwatch.lazy import Lazy
from podwatch.settings import FanoutSettings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
copy_config_to_registered_loggers(source_logger=logger, include={"podwatch"})


@dataclass(frozen=True, slots=True)
class Dependencies:
    settings: FanoutSettings
    publish: PublishDeps


def build_dependencies(
    settings: FanoutSettings | None = None, *, events: Any = None, sqs: Any = None
) -> Dependencies:
    """Settings from the environment and boto3 clients, unless given."""
    settings = settings or FanoutSettings.from_env()
    return Dependencies(
        settings=settings,
        publish=PublishDeps(
            events=events or aws.client("events"),
            bus_name=settings.event_bus_name,
            sqs=sqs or aws.client("sqs"),
            quarantine_queue_url=settings.quarantine_queue_url,
        ),
    )


_deps: Lazy[Dependencies] = Lazy(lambda: build_dependencies())


def dependencies() -> Dependencies:
    """The dependencies of this execution environment, built on first use."""
    return _deps.get()


def set_dependencies(deps: Dependencies | None) -> None:
    _deps.set(deps)


def reset() -> None:
    set_dependencies(None)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = publish_records(event.get("Records") or [], deps=dependencies().publish)
    result.tally.emit(metrics)
    logger.info(
        "batch done",
        extra={
            "published": len(result.published),
            "failed": len(result.failed),
            "quarantined": len(result.quarantined),
        },
    )
    return result.batch_item_failures()
