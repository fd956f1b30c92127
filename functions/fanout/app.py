"""Fan-out: fan-out queue → the stack's EventBridge bus (PutEvents, ≤ 10 entries a call).

Thin on purpose: the logic is `podwatch.fanout.publish_records`; the event shape (source `podwatch`,
detail-type = the event type, detail = the Notification) is in docs/internals.md, "Fan-out". The
partial response is built from the per-record result, as in deliver: a record whose entry
EventBridge refused goes back to SQS (then the fan-out DLQ); a body that is no Notification is
quarantined there at once with reason `malformed`. Import and Tracer: the kit's policies
(podwatch.kit).

For tests and the local stack:
    build_dependencies(settings=None, *, events=None, sqs=None) -> FanoutDependencies
    set_dependencies(deps) / dependencies() / reset()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from podwatch import kit

if TYPE_CHECKING:
    from podwatch.fanout import PublishDeps
    from podwatch.settings import FanoutSettings

logger, tracer, metrics = kit.tools()


@dataclass(frozen=True, slots=True)
class FanoutDependencies:
    settings: FanoutSettings
    publish: PublishDeps


def build_dependencies(
    settings: FanoutSettings | None = None, *, events: Any = None, sqs: Any = None
) -> FanoutDependencies:
    """Settings from the environment and boto3 clients, unless given."""
    from podwatch import aws
    from podwatch.fanout import PublishDeps
    from podwatch.settings import FanoutSettings

    settings = settings or FanoutSettings.from_env()
    return FanoutDependencies(
        settings=settings,
        publish=PublishDeps(
            events=events or aws.client("events"),
            bus_name=settings.event_bus_name,
            sqs=sqs or aws.client("sqs"),
            quarantine_queue_url=settings.quarantine_queue_url,
            max_receive_count=settings.max_receive_count,
        ),
    )


_deps: kit.Environment[FanoutDependencies] = kit.Environment(lambda: build_dependencies(), tracer=tracer)
#: the dependencies of this execution environment, built on first use
dependencies = _deps.get
set_dependencies = _deps.set
reset = _deps.reset


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    from podwatch.fanout import publish_records

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
    return kit.failed_items(result.failed)
