"""Hooks: the hooks queue (notifications fanned out from the processor) → khook-format rules →
one agent (A2A) or webhook call per matching hook, deduplicated per hook in the hooks table.

Thin on purpose: the logic is `podwatch.hooks.engine.handle_records`. Like deliver, this handler
builds the partial batch response itself from the per-record result (a record fails when one of its
hook calls must be retried; rejected calls and malformed records are quarantined and handled).
Import and Tracer: the kit's policies (podwatch.kit); the Tracer also patches httpx (hook calls).

For tests and the local stack:
    build_dependencies(settings=None, *, dynamodb=None, sqs=None, ssm=None, secretsmanager=None,
                       http=None) -> HooksDependencies
    set_dependencies(deps) / dependencies() / reset()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from podwatch import kit, telemetry

if TYPE_CHECKING:
    import httpx

    from podwatch.hooks.engine import HooksDeps
    from podwatch.hooks.targets import TargetClient
    from podwatch.settings import HooksSettings

#: Do not start a record with less than this left beyond the timeouts of its calls.
SAFETY_MARGIN_MS = 1000

logger, tracer, metrics = kit.tools()


@dataclass(frozen=True, slots=True)
class HooksDependencies:
    settings: HooksSettings
    hooks: HooksDeps
    targets: TargetClient


def build_dependencies(
    settings: HooksSettings | None = None,
    *,
    dynamodb: Any = None,
    sqs: Any = None,
    ssm: Any = None,
    secretsmanager: Any = None,
    http: httpx.Client | None = None,
) -> HooksDependencies:
    """Settings from the environment, boto3 clients and the target client, unless given."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

    from podwatch import aws
    from podwatch.hooks.engine import HooksDeps, RuleCache
    from podwatch.hooks.state import HookStore
    from podwatch.hooks.targets import TargetClient, secret_reader
    from podwatch.settings import HooksSettings

    settings = settings or HooksSettings.from_env()
    store = HookStore(table_name=settings.hooks_table_name, client=dynamodb or aws.client("dynamodb"))
    secrets = secret_reader(
        SSMProvider(boto3_client=ssm or aws.client("ssm")),
        SecretsProvider(boto3_client=secretsmanager or aws.client("secretsmanager")),
        prefix=settings.hook_secrets_prefix,
    )
    targets = TargetClient(
        secrets=secrets,
        http=http,
        connect_timeout=settings.hook_connect_timeout_seconds,
        read_timeout=settings.hook_read_timeout_seconds,
    )
    hooks = HooksDeps(
        store=store,
        targets=targets,
        sqs=sqs or aws.client("sqs"),
        quarantine_queue_url=settings.quarantine_queue_url,
        rules=RuleCache(store, settings.rules_max_age_seconds),
        agent_base_url=settings.kagent_base_url,
        agent_protocol=settings.a2a_protocol,
        lease_seconds=int(settings.hook_connect_timeout_seconds + settings.hook_read_timeout_seconds) * 2,
        max_receive_count=settings.max_receive_count,
    )
    return HooksDependencies(settings=settings, hooks=hooks, targets=targets)


_deps: kit.Environment[HooksDependencies] = kit.Environment(
    lambda: build_dependencies(), tracer=tracer, patch=kit.AWS_AND_HTTP, close=lambda d: d.targets.close()
)
#: the dependencies of this execution environment, built on first use
dependencies = _deps.get
set_dependencies = _deps.set
#: forget dependencies (rule cache, breakers, secret caches)
reset = _deps.reset


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    deps = dependencies()
    trips_before = deps.targets.stats.breaker_opened
    # a record is started only if two calls at their timeouts still fit (a record may match several hooks)
    needed_ms = (
        2 * (deps.settings.hook_connect_timeout_seconds + deps.settings.hook_read_timeout_seconds) * 1000
    )
    from podwatch.hooks.engine import handle_records

    result = handle_records(
        event.get("Records") or [],
        deps.hooks,
        time_left=lambda: context.get_remaining_time_in_millis() > needed_ms + SAFETY_MARGIN_MS,
    )
    result.tally.add(telemetry.HOOK_BREAKER_OPENED, value=deps.targets.stats.breaker_opened - trips_before)
    result.tally.emit(metrics)
    logger.info(
        "batch done",
        extra={
            "fired": len(result.fired),
            "failed": len(result.failed),
            "quarantined": len(result.quarantined),
        },
    )
    return kit.failed_items(result.failed)
