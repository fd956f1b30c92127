"""History writer: history queue → history table (BatchWriteItem), never in the notifications' way.

Thin on purpose: the logic is `podwatch.historyfeed.write_history`. The record handler only reads
each SQS record (a pack of the processor's records, or a single one); the batch is written at once
after (BatchWriteItem, 25 items a call, throttled items retried with backoff). A message with a
record whose item could not be written becomes a batch item failure (SQS retries it; the put is
idempotent); on its last receive the failing records go to the history DLQ with the reason instead.
Bad input goes there at once. Import and Tracer: the kit's policies (podwatch.kit).

For tests and the local stack:
    build_dependencies(settings=None, *, dynamodb=None, sqs=None, sleep=None) -> WriterDeps
    set_dependencies(deps) / dependencies() / reset()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from podwatch import kit, telemetry

if TYPE_CHECKING:
    from podwatch.historyfeed import HistoryMessage, WriterDeps
    from podwatch.settings import HistoryWriterSettings

logger, tracer, metrics = kit.tools()
processor = BatchProcessor(event_type=EventType.SQS)


def build_dependencies(
    settings: HistoryWriterSettings | None = None,
    *,
    dynamodb: Any = None,
    sqs: Any = None,
    sleep: Callable[[float], None] | None = None,
) -> WriterDeps:
    """Settings from the environment and boto3 clients, unless given."""
    from podwatch import aws
    from podwatch.historyfeed import WriterDeps
    from podwatch.historystore import HistoryWriter
    from podwatch.settings import HistoryWriterSettings

    settings = settings or HistoryWriterSettings.from_env()
    writer = HistoryWriter(table_name=settings.history_table_name, client=dynamodb or aws.client("dynamodb"))
    if sleep is not None:
        writer.sleep = sleep
    return WriterDeps(
        writer=writer,
        sqs=sqs or aws.client("sqs"),
        quarantine_queue_url=settings.quarantine_queue_url,
        retention_days=settings.retention_days,
        max_receives=settings.history_max_receives,
    )


_deps: kit.Environment[WriterDeps] = kit.Environment(lambda: build_dependencies(), tracer=tracer)
#: the dependencies of this execution environment, built on first use
dependencies = _deps.get
set_dependencies = _deps.set
reset = _deps.reset


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    deps = dependencies()
    from podwatch.historyfeed import CLASSIFICATION_ATTRIBUTE, messages_of, write_history

    records: list[dict[str, Any]] = event.get("Records") or []
    tally = telemetry.Tally()
    messages: list[HistoryMessage] = []

    def record_handler(record: SQSRecord) -> None:
        # the raw attribute: SQSMessageAttributes.get answers a plain dict, not the typed attribute
        attribute = (record.raw_event.get("messageAttributes") or {}).get(CLASSIFICATION_ATTRIBUTE) or {}
        messages.extend(
            messages_of(
                record.message_id,
                record.body,
                attribute.get("stringValue"),
                int(record.attributes.approximate_receive_count or 1),
            )
        )

    retried = len(records)  # unless a response says otherwise, Lambda retries the whole batch
    try:
        with processor(records, record_handler, context):
            processor.process()
            tally.add(telemetry.RECEIVED, value=len(messages))  # records (a pack holds several)
            outcome = write_history(messages, deps)
        response = kit.item_failures(processor, outcome.retry)
        retried = len(response["batchItemFailures"])
        tally.add(telemetry.HISTORY_WRITTEN, value=outcome.written)
        tally.add(telemetry.HISTORY_THROTTLED, value=outcome.throttled)
        for reason, count in outcome.quarantined.items():
            tally.add(telemetry.QUARANTINED, reason=reason, value=count)
        return response
    finally:
        tally.add(telemetry.RETRIED, value=retried)
        tally.emit(metrics)
