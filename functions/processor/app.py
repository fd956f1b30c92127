"""Processor: pod-events queue → classify, filter, dedup, enrich → deliveries queue.

Thin on purpose: the logic is `podwatch.processing.process_record`. This module owns the Powertools
tools, builds its dependencies on the first invocation (settings from the environment, boto3
clients) and reports partial batch failures: a record fails when its handler raised (a transient
error) or when a notification it produced was not taken by the batched send at the end
(`NotificationOutbox.flush`, SendMessageBatch); SQS retries it, and the retry passes dedup as the same event.

Records are parsed by `parse_envelope` inside the record handler rather than by a BatchProcessor
`model=`: a model failure would be a batch item failure (retried until the DLQ, reason lost), while
a bad body must be quarantined at once with its reason and reported as handled.

Import and Tracer: the kit's policies (podwatch.kit): the processing layer (pydantic and the wire
models, dedup, enrichment, the remote config), boto3 and the clients come with the first invocation;
`python -m bench` reports the import and that first invocation.

For tests and the local stack:
    build_dependencies(settings=None, *, dynamodb=None, sqs=None, ssm=None) -> ProcessorDependencies
    set_dependencies(deps) / dependencies() / reset()
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from podwatch import audit, kit, telemetry

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from podwatch.historyfeed import HistoryOutbox
    from podwatch.processing import Decision, ProcessorDeps
    from podwatch.settings import ProcessorSettings

logger, tracer, metrics = kit.tools()
processor = BatchProcessor(event_type=EventType.SQS)
# The audit trail (one line per decision) gets a lean formatter of the logger's shape, reading its keys.
audit.install(logger.registered_formatter, getattr(logger.registered_handler, "stream", None))

_METRIC_OF_ACTION = {
    "forwarded": telemetry.FORWARDED,
    "filtered": telemetry.FILTERED,
    "deduplicated": telemetry.DEDUPLICATED,
    "quarantined": telemetry.QUARANTINED,
    "control": telemetry.CONTROL,
}
_BROKEN_DOWN_BY_REASON = {"filtered", "quarantined", "control"}
#: envelope kinds that go to the history queue (with HISTORY_QUEUE_URL set)
_HISTORY_KINDS = {"pod", "k8s_event", "object"}


@dataclass(frozen=True, slots=True)
class ProcessorDependencies:
    settings: ProcessorSettings
    processing: ProcessorDeps
    #: Powertools Parameters provider over the injected SSM client: its cache is the config cache.
    parameters: SSMProvider


def build_dependencies(
    settings: ProcessorSettings | None = None,
    *,
    dynamodb: Any = None,
    sqs: Any = None,
    ssm: Any = None,
) -> ProcessorDependencies:
    """Settings from the environment and boto3 clients, unless given."""
    # Imported here, not at module import (the kit's import policy)
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from podwatch import aws
    from podwatch.control import ClusterRegistry, ControlHandler
    from podwatch.dedup import DedupStore
    from podwatch.hooks.state import HookStore
    from podwatch.metadata import MetadataStore
    from podwatch.processing import ProcessorDeps
    from podwatch.settings import ProcessorSettings

    settings = settings or ProcessorSettings.from_env()
    audit.summarize_filtered(settings.audit_filtered == "summary")
    sqs = sqs or aws.client("sqs")
    dynamodb = dynamodb or aws.client("dynamodb")
    metadata = (
        MetadataStore(table_name=settings.metadata_table_name, client=dynamodb)
        if settings.metadata_table_name
        else None
    )
    return ProcessorDependencies(
        settings=settings,
        processing=ProcessorDeps(
            dedup=DedupStore(table_name=settings.dedup_table_name, client=dynamodb),
            sqs=sqs,
            deliveries_queue_url=settings.deliveries_queue_url,
            quarantine_queue_url=settings.quarantine_queue_url,
            metadata=metadata,
            history_page_url=settings.history_page_url,
            control=ControlHandler(
                registry=ClusterRegistry(table_name=settings.clusters_table_name, client=dynamodb),
                sqs=sqs,
                deliveries_queue_url=settings.deliveries_queue_url,
            )
            if settings.clusters_table_name
            else None,
            hooks=HookStore(table_name=settings.hooks_table_name, client=dynamodb)
            if settings.hooks_table_name
            else None,
        ),
        parameters=SSMProvider(boto3_client=ssm or aws.client("ssm")),
    )


_deps: kit.Environment[ProcessorDependencies] = kit.Environment(
    lambda: build_dependencies(), tracer=tracer, forget=kit.forget_remote_config
)
#: the dependencies of this execution environment, built on first use
dependencies = _deps.get
set_dependencies = _deps.set
#: forget dependencies (and with them the Parameters cache) and the last good remote config
reset = _deps.reset


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    deps = dependencies()  # the first invocation imports the processing layer (module docstring)
    from podwatch import config
    from podwatch.fanout import Forwarder
    from podwatch.processing import NotificationOutbox, process_record

    remote, _current = config.load_remote_config(
        parameter_name=deps.settings.config_parameter_name,
        max_age=deps.settings.config_max_age_seconds,
        provider=deps.parameters,
        metrics=metrics,
    )
    tally = telemetry.Tally()
    records: list[dict[str, Any]] = event.get("Records") or []
    tally.add(telemetry.RECEIVED, value=len(records))
    fanout = (
        Forwarder(sqs=deps.processing.sqs, queue_url=deps.settings.fanout_queue_url)
        if deps.settings.fanout_queue_url
        else None
    )
    outbox = NotificationOutbox(
        sqs=deps.processing.sqs, queue_url=deps.processing.deliveries_queue_url, fanout=fanout
    )
    history = _history_outbox(deps)
    decided: dict[str, list[Decision]] = {}

    def record_handler(record: SQSRecord) -> list[Decision]:
        decisions = process_record(
            record.body,
            deps=deps.processing,
            config=remote,
            now=datetime.now(UTC),
            message_id=record.message_id,
            outbox=outbox,
        )
        decided[record.message_id] = decisions
        first = decisions[0]
        if history is not None and first.record.kind in _HISTORY_KINDS and first.action != "quarantined":
            history.add(record.message_id, record.body, decisions)
        return decisions

    retried = len(records)  # unless a response says otherwise, Lambda retries the whole batch
    try:
        with processor(records, record_handler, context):
            processor.process()
            failed = outbox.flush()
            # after the notifications went: the history side path never delays them
            if history is not None:
                failed = {**history.flush(), **failed}
        response = kit.item_failures(processor, failed)
        retried = len(response["batchItemFailures"])
        for message_id, decisions in decided.items():
            if message_id not in failed:
                _count(tally, decisions)
        return response
    finally:
        tally.add(telemetry.RETRIED, value=retried)
        if fanout is not None:
            tally.add(telemetry.FANOUT_FAILED, value=fanout.failed)
        if deps.processing.metadata is not None:
            tally.add(telemetry.METADATA_FAILED, value=deps.processing.metadata.take_failures())
        tally.emit(metrics)
        audit.flush_filtered()


def _history_outbox(deps: ProcessorDependencies) -> HistoryOutbox | None:
    if not deps.settings.history_queue_url:
        return None
    from podwatch.historyfeed import HistoryOutbox

    return HistoryOutbox(sqs=deps.processing.sqs, queue_url=deps.settings.history_queue_url)


def _count(tally: telemetry.Tally, decisions: list[Decision]) -> None:
    if decisions and decisions[0].untrusted_time:
        tally.add(telemetry.EVENT_TIME_UNTRUSTED, reason=decisions[0].untrusted_time)
    for decision in decisions:
        reason = decision.reason if decision.action in _BROKEN_DOWN_BY_REASON else None
        tally.add(_METRIC_OF_ACTION[decision.action], reason=reason)
        if decision.action == "forwarded" and decision.reason == "opened":
            tally.add(telemetry.INCIDENTS_OPENED)
        elif decision.action == "forwarded" and decision.reason == "resolved":
            tally.add(telemetry.INCIDENTS_RESOLVED)
