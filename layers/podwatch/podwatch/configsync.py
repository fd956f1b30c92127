"""Config sync: the manager's remote config → the SSM parameter → the deliveries event source mapping.

One run (the scheduled config-sync function):

1. `get_remote_config(cluster)` for each of the stack's clusters. Each answer is validated by the
   `RemoteConfig` model (in `RestateClient.get_remote_config`); an invalid one is logged with the
   reasons and counted (`ConfigRejected`), a failed fetch is counted (`ConfigFetchFailed`); neither
   replaces anything. The stack has one parameter, so the **first** cluster's config is the stack's;
   another cluster whose config differs is logged and counted (`ConfigDivergent`).
2. The parameter is written only when the config changed (compared as `RemoteConfig`, not as text),
   with `Overwrite`; SSM gives the new value a version, logged next to the manager's `version`.
3. The deliveries event source mapping follows the config in force (the new one, else the
   parameter's current value): `BatchSize` = batch_size, `MaximumBatchingWindowInSeconds` =
   batch_flush_seconds clamped to 1..60 (the template's bounds: at least 1 for batches above 10, at
   most 60, which the queue's visibility timeout accounts for). Updated only when it differs, so a
   deploy that reset it to the template's values is corrected on the next run.
4. How long ago each cluster's relay was heard of (the clusters table): `HeartbeatAgeSeconds` per
   configured cluster and `ClustersSilent` (configured clusters never heard of, or not for
   `silent_after_seconds`, plus unconfigured ones gone quiet).

Errors: the manager's failures are counted, never raised (the next run retries); SSM and Lambda API
failures raise TransientError (the invocation fails, Lambda's Errors metric shows it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from podwatch import telemetry
from podwatch.control import ClusterRegistry
from podwatch.errors import ConfigError, DeliveryRejected, TransientError
from podwatch.models import RemoteConfig

log = logging.getLogger(__name__)

#: MaximumBatchingWindowInSeconds bounds of the deliveries mapping (template parameter bounds).
MIN_BATCHING_WINDOW = 1
MAX_BATCHING_WINDOW = 60


class RemoteConfigSource(Protocol):
    """What config sync needs of the manager (`podwatch.restate.RestateClient`)."""

    def get_remote_config(self, cluster_id: str) -> RemoteConfig: ...


@dataclass(frozen=True, slots=True)
class ConfigSyncDeps:
    manager: RemoteConfigSource
    #: boto3 SSM client
    ssm: Any
    #: boto3 Lambda client
    lambda_client: Any
    parameter_name: str
    #: the deliveries event source mapping's UUID; None: nothing to retune
    mapping_id: str | None = None
    registry: ClusterRegistry | None = None
    silent_after_seconds: int = 900


@dataclass
class SyncResult:
    clusters: list[str]
    #: the config in force after the run (None: the parameter holds nothing valid and none came)
    config: RemoteConfig | None = None
    parameter_written: bool = False
    #: SSM's version of the parameter after the run
    parameter_version: int | None = None
    mapping_updated: bool = False
    #: {"batch_size": n, "batching_window_seconds": s} of the mapping after the run
    mapping: dict[str, int] | None = None
    #: cluster → why its config was rejected / could not be fetched
    rejected: dict[str, str] = field(default_factory=dict)
    fetch_failed: dict[str, str] = field(default_factory=dict)
    divergent: list[str] = field(default_factory=list)
    #: cluster → seconds since its relay was last heard of (None: never)
    heartbeat_age: dict[str, float | None] = field(default_factory=dict)
    silent: list[str] = field(default_factory=list)
    tally: telemetry.Tally = field(default_factory=telemetry.Tally)

    def as_dict(self) -> dict[str, Any]:
        return {
            "clusters": self.clusters,
            "config_version": self.config.version if self.config else None,
            "parameter_written": self.parameter_written,
            "parameter_version": self.parameter_version,
            "mapping_updated": self.mapping_updated,
            "mapping": self.mapping,
            "rejected": self.rejected,
            "fetch_failed": self.fetch_failed,
            "divergent": self.divergent,
            "heartbeat_age": self.heartbeat_age,
            "silent": self.silent,
        }


def mapping_tuning(config: RemoteConfig) -> dict[str, int]:
    """The deliveries mapping's settings for `config`."""
    window = min(MAX_BATCHING_WINDOW, max(MIN_BATCHING_WINDOW, config.batch_flush_seconds))
    return {"batch_size": config.batch_size, "batching_window_seconds": window}


def sync(
    cluster_ids: Sequence[str],
    *,
    deps: ConfigSyncDeps,
    now: datetime,
    time_left: Callable[[], bool] | None = None,
) -> SyncResult:
    """`time_left()` is asked before each fetch from the manager; once it says False, the clusters
    not fetched yet count as fetch failures, and the rest (the parameter, the mapping, the
    heartbeats) still runs on what was fetched."""
    result = SyncResult(clusters=list(cluster_ids))
    fetched = _fetch(result, deps, time_left)
    chosen = fetched.get(cluster_ids[0]) if cluster_ids else None
    if chosen is not None:
        result.divergent = sorted(c for c, cfg in fetched.items() if cfg != chosen)
        if result.divergent:
            result.tally.add(telemetry.CONFIG_DIVERGENT, value=len(result.divergent))
            log.warning(
                "the stack's clusters have different remote configs; the first cluster's is used",
                extra={"source_cluster": cluster_ids[0], "divergent": result.divergent},
            )
    result.config = _write_parameter(result, deps, chosen)
    if result.config is not None and deps.mapping_id:
        _retune(result, deps, result.config)
    if deps.registry is not None:
        _heartbeats(result, deps.registry, cluster_ids, now, deps.silent_after_seconds)
    return result


def _fetch(
    result: SyncResult, deps: ConfigSyncDeps, time_left: Callable[[], bool] | None
) -> dict[str, RemoteConfig]:
    fetched: dict[str, RemoteConfig] = {}
    for cluster in result.clusters:
        if time_left is not None and not time_left():
            result.fetch_failed[cluster] = "no_time_left: not fetched, the invocation is nearly over"
            result.tally.add(telemetry.CONFIG_FETCH_FAILED)
            log.warning("remote config not fetched: no time left", extra={"cluster_id": cluster})
            continue
        try:
            config = deps.manager.get_remote_config(cluster)
        except ConfigError as exc:
            result.rejected[cluster] = str(exc)
            result.tally.add(telemetry.CONFIG_REJECTED)
            log.error(  # noqa: TRY400 - the reasons are the message; a traceback adds nothing
                "remote config from the manager rejected; the last good config stays",
                extra={"cluster_id": cluster, "problems": str(exc)},
            )
            continue
        except (TransientError, DeliveryRejected) as exc:
            body = getattr(exc, "body", "")  # the manager's last answer, when there was one
            result.fetch_failed[cluster] = f"{exc.reason}: {exc}" + (
                f" (answer: {body[:200]})" if body else ""
            )
            result.tally.add(telemetry.CONFIG_FETCH_FAILED)
            log.warning(
                "remote config could not be fetched; the last good config stays",
                extra={
                    "cluster_id": cluster,
                    "reason": exc.reason,
                    "error": str(exc),
                    "status_code": getattr(exc, "status_code", None),
                    "response_body": body,
                },
            )
            continue
        fetched[cluster] = config
        result.tally.add(telemetry.CONFIG_FETCHED)
    return fetched


def _write_parameter(
    result: SyncResult, deps: ConfigSyncDeps, new: RemoteConfig | None
) -> RemoteConfig | None:
    """Write `new` if it differs from the parameter; the config in force afterwards."""
    try:
        current = deps.ssm.get_parameter(Name=deps.parameter_name)["Parameter"]
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(f"cannot read {deps.parameter_name}: {exc}", reason="ssm") from exc
    result.parameter_version = int(current.get("Version", 0)) or None
    try:
        in_force: RemoteConfig | None = RemoteConfig.from_json(str(current["Value"]))
    except ValidationError:
        in_force = None  # a bad value in the parameter: any good config replaces it
    if new is None or new == in_force:
        return in_force
    if in_force is not None and new.version == in_force.version:
        log.warning(
            "the manager changed the remote config but not its version",
            extra={"config_version": new.version},
        )
    try:
        answer = deps.ssm.put_parameter(
            Name=deps.parameter_name, Value=new.to_json(), Type="String", Overwrite=True
        )
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(f"cannot write {deps.parameter_name}: {exc}", reason="ssm") from exc
    result.parameter_written = True
    result.parameter_version = int(answer.get("Version", 0)) or None
    result.tally.add(telemetry.CONFIG_UPDATED)
    log.info(
        "remote config updated",
        extra={
            "parameter": deps.parameter_name,
            "from_version": in_force.version if in_force else None,
            "config_version": new.version,
            "parameter_version": result.parameter_version,
        },
    )
    return new


def _retune(result: SyncResult, deps: ConfigSyncDeps, config: RemoteConfig) -> None:
    wanted = mapping_tuning(config)
    try:
        mapping = deps.lambda_client.get_event_source_mapping(UUID=deps.mapping_id)
        current = {
            "batch_size": int(mapping.get("BatchSize") or 0),
            "batching_window_seconds": int(mapping.get("MaximumBatchingWindowInSeconds") or 0),
        }
        if current != wanted:
            deps.lambda_client.update_event_source_mapping(
                UUID=deps.mapping_id,
                BatchSize=wanted["batch_size"],
                MaximumBatchingWindowInSeconds=wanted["batching_window_seconds"],
            )
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(
            f"cannot retune event source mapping {deps.mapping_id}: {exc}", reason="lambda"
        ) from exc
    result.mapping = wanted
    if current != wanted:
        result.mapping_updated = True
        result.tally.add(telemetry.ESM_UPDATED)
        log.info(
            "deliveries event source mapping retuned",
            extra={
                "mapping": deps.mapping_id,
                "from": current,
                "to": wanted,
                "config_version": config.version,
            },
        )


def _heartbeats(
    result: SyncResult,
    registry: ClusterRegistry,
    cluster_ids: Sequence[str],
    now: datetime,
    silent_after: int,
) -> None:
    seen = registry.clusters()
    at = now.timestamp()
    for cluster in dict.fromkeys([*cluster_ids, *sorted(seen)]):
        last = seen.get(cluster)
        age = None if not last else max(0.0, at - last)
        if cluster in cluster_ids:
            result.heartbeat_age[cluster] = age
        if (age is None and cluster in cluster_ids) or (age is not None and age > silent_after):
            result.silent.append(cluster)
    if result.silent:
        log.warning("clusters not heard of", extra={"silent": result.silent, "after_s": silent_after})
