"""Config sync (scheduled): the manager's remote config → SSM parameter → deliveries event source mapping.

Thin on purpose: the logic is `podwatch.configsync.sync`. The clusters are the stack's
(`CLUSTER_IDS`); an invocation may name others with `{"cluster_ids": ["c1", ...]}` (a manual
"sync now"). The scheduled event itself carries nothing the function needs. Import and Tracer:
the kit's policies (podwatch.kit); the Tracer also patches httpx (Restate calls).

For tests and the local stack:
    build_dependencies(settings=None, *, ssm=None, lambda_client=None, dynamodb=None, http=None)
        -> ConfigSyncDependencies
    set_dependencies(deps) / dependencies() / reset()
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from podwatch import kit, telemetry

if TYPE_CHECKING:
    import httpx

    from podwatch.configsync import ConfigSyncDeps, SyncResult
    from podwatch.restate import RestateClient
    from podwatch.settings import ConfigSyncSettings

logger, tracer, metrics = kit.tools()

#: what the sync needs after the fetches (the parameter, the mapping, the heartbeat scan, metrics)
REST_OF_SYNC_MS = 5000


@dataclass(frozen=True, slots=True)
class ConfigSyncDependencies:
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
) -> ConfigSyncDependencies:
    """Settings from the environment, boto3 clients and the Restate client, unless given."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from podwatch import aws
    from podwatch.configsync import ConfigSyncDeps
    from podwatch.control import ClusterRegistry
    from podwatch.settings import ConfigSyncSettings

    settings = settings or ConfigSyncSettings.from_env()
    ssm = ssm or aws.client("ssm")
    restate = kit.restate_client(settings, SSMProvider(boto3_client=ssm), http=http, **restate_options)
    registry = (
        ClusterRegistry(table_name=settings.clusters_table_name, client=dynamodb or aws.client("dynamodb"))
        if settings.clusters_table_name
        else None
    )
    return ConfigSyncDependencies(
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


_deps: kit.Environment[ConfigSyncDependencies] = kit.Environment(
    lambda: build_dependencies(), tracer=tracer, patch=kit.AWS_AND_HTTP, close=lambda d: d.restate.close()
)
#: the dependencies of this execution environment, built on first use
dependencies = _deps.get
set_dependencies = _deps.set
#: forget dependencies (the Restate client, its breaker)
reset = _deps.reset


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
    from podwatch.configsync import sync

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
