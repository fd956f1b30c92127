"""Config sync (scheduled): the manager's remote config → SSM parameter → deliveries event source mapping.

Thin on purpose: the logic is `podwatch.configsync.sync`. The clusters are the stack's
(`CLUSTER_IDS`); an invocation may name others with `{"cluster_ids": ["c1", ...]}` (a manual
"sync now"). The scheduled event itself carries nothing the function needs.

For tests and the local stack:
    build_dependencies(settings=None, *, ssm=None, lambda_client=None, dynamodb=None, http=None)
    set_dependencies(deps) / dependencies() / reset()
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from podwatch import aws, telemetry
from podwatch.configsync import ConfigSyncDeps, SyncResult, sync
from podwatch.control import ClusterRegistry
from podwatch.lazy import Lazy
from podwatch.restate import RestateClient, ssm_token_source
from podwatch.settings import ConfigSyncSettings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
copy_config_to_registered_loggers(source_logger=logger, include={"podwatch"})


#: what the sync needs after the fetches (the parameter, the mapping, the heartbeat scan, metrics)
REST_OF_SYNC_MS = 5000


@dataclass(frozen=True, slots=True)
class Dependencies:
    settings: ConfigSyncSettings
    restate: RestateClient
    sync: ConfigSyncDeps


def build_dependencies(
    settings: ConfigSyncSettings | None = None,
    *,
    ssm: Any = None,
    lambda_client: Any = None,
    dynamodb: Any = None,
    http: httpx.Client | None = None,
    **restate_options: Any,
) -> Dependencies:
    settings = settings or ConfigSyncSettings.from_env()
    ssm = ssm or aws.client("ssm")
    token = (
        ssm_token_source(SSMProvider(boto3_client=ssm), settings.restate_token_parameter_name)
        if settings.restate_token_parameter_name
        else None
    )
    restate = RestateClient(
        base_url=settings.restate_ingress_url,
        config_path=settings.restate_config_path,
        connect_timeout=settings.restate_connect_timeout_seconds,
        read_timeout=settings.restate_read_timeout_seconds,
        token=token,
        http=http,
        **restate_options,
    )
    registry = (
        ClusterRegistry(table_name=settings.clusters_table_name, client=dynamodb or aws.client("dynamodb"))
        if settings.clusters_table_name
        else None
    )
    return Dependencies(
        settings=settings,
        restate=restate,
        sync=ConfigSyncDeps(
            manager=restate,
            ssm=ssm,
            lambda_client=lambda_client or aws.client("lambda"),
            parameter_name=settings.config_parameter_name,
            mapping_id=settings.deliveries_event_source_mapping_id,
            registry=registry,
            silent_after_seconds=settings.silent_after_seconds,
        ),
    )


_deps: Lazy[Dependencies] = Lazy(lambda: build_dependencies(), close=lambda d: d.restate.close())


def dependencies() -> Dependencies:
    """The dependencies of this execution environment, built on first use."""
    return _deps.get()


def set_dependencies(deps: Dependencies | None) -> None:
    _deps.set(deps)


def reset() -> None:
    set_dependencies(None)


def _emit(result: SyncResult, has_registry: bool) -> None:
    result.tally.emit(metrics)
    if has_registry:  # always a data point, 0 included, so an alarm on it sees "all fine"
        metrics.add_metric(name=telemetry.CLUSTERS_SILENT, unit=MetricUnit.Count, value=len(result.silent))
    dimensions = {"service": metrics.service} if metrics.service else {}
    for cluster, age in result.heartbeat_age.items():
        if age is None:
            continue
        with single_metric(
            name=telemetry.HEARTBEAT_AGE_SECONDS,
            unit=MetricUnit.Seconds,
            value=round(age, 1),
            namespace=metrics.namespace,
            default_dimensions={**dimensions, "cluster_id": cluster},
        ):
            pass


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = dependencies()
    requested = event.get("cluster_ids") if isinstance(event, dict) else None
    clusters = (
        [str(c) for c in requested if str(c).strip()]
        if isinstance(requested, list)
        else deps.settings.clusters
    )
    # a fetch starts only if it can finish, retries included, with time to spare for the rest
    needed_ms = deps.restate.worst_call_seconds * 1000 + REST_OF_SYNC_MS
    result = sync(
        clusters,
        deps=deps.sync,
        now=datetime.now(UTC),
        time_left=lambda: context.get_remaining_time_in_millis() > needed_ms,
    )
    _emit(result, deps.sync.registry is not None)
    summary = result.as_dict()
    logger.info("config sync done", extra={"sync": summary})
    return summary
