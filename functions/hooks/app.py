"""Hooks: the hooks queue (notifications fanned out from the processor) → khook-format rules →
one agent (A2A) or webhook call per matching hook, deduplicated per hook in the hooks table.

Thin on purpose: the logic is `podwatch.hooks.engine.handle_records`. Like deliver, this handler
builds the partial batch response itself from the per-record result (a record fails when one of its
hook calls must be retried; rejected calls and malformed records are quarantined and handled).

For tests and the local stack:
    build_dependencies(settings=None, *, dynamodb=None, sqs=None, ssm=None, secretsmanager=None,
                       http=None) -> Dependencies
    set_dependencies(deps) / dependencies() / reset()
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from podwatch import aws, telemetry
from podwatch.hooks.engine import HooksDeps, handle_records
from podwatch.hooks.match import HookIndex
from podwatch.hooks.state import HookStore
from podwatch.hooks.targets import TargetClient, secret_reader
from podwatch.lazy import Lazy
from podwatch.settings import HooksSettings

#: Do not start a record with less than this left beyond the timeouts of its calls.
SAFETY_MARGIN_MS = 1000

logger = Logger()
tracer = Tracer()
metrics = Metrics()
copy_config_to_registered_loggers(source_logger=logger, include={"podwatch"})


class RuleCache:
    """The applied rules, indexed, re-read from the hooks table at most every `max_age` seconds."""

    def __init__(self, store: HookStore, max_age: float) -> None:
        self.store, self.max_age = store, max_age
        self._lock = threading.Lock()
        self._index: HookIndex | None = None
        self._read_at = 0.0

    def __call__(self) -> HookIndex:
        with self._lock:
            if self._index is None or time.monotonic() - self._read_at >= self.max_age:
                self._index = HookIndex(self.store.rules())
                self._read_at = time.monotonic()
            return self._index


@dataclass(frozen=True, slots=True)
class Dependencies:
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
) -> Dependencies:
    """Settings from the environment, boto3 clients and the target client, unless given."""
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
    )
    return Dependencies(settings=settings, hooks=hooks, targets=targets)


_deps: Lazy[Dependencies] = Lazy(lambda: build_dependencies(), close=lambda d: d.targets.close())


def dependencies() -> Dependencies:
    return _deps.get()


def set_dependencies(deps: Dependencies | None) -> None:
    _deps.set(deps)


def reset() -> None:
    """Forget dependencies (rule cache, breakers, secret caches)."""
    set_dependencies(None)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = dependencies()
    trips_before = deps.targets.stats.breaker_opened
    # a record is started only if two calls at their timeouts still fit (a record may match several hooks)
    needed_ms = (
        2 * (deps.settings.hook_connect_timeout_seconds + deps.settings.hook_read_timeout_seconds) * 1000
    )
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
    return result.batch_item_failures()
