"""The remote config (SSM parameter, JSON `RemoteConfig`) through Powertools Parameters.

A bad value never replaces the last good config: `load_remote_config` validates every value it gets
(Parameters caches the raw string for `max_age` seconds, so SSM is asked at most that often) and
keeps the last good config of this process when a value is invalid (metric ConfigRejected) or cannot
be read (metric ConfigFetchFailed). A process that has seen no good value yet (a cold start after
someone wrote an invalid value) looks for the newest valid version in the parameter's history
(GetParameterHistory; SSM keeps the last 100), so the config in force is still the last good one;
only if there is none (or the history cannot be read) do the defaults `RemoteConfig()` stand in. A
parameter that cannot be read at all before any good value is a TransientError (the records go back
to SQS), since then there is nothing trustworthy to filter by.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from podwatch import telemetry
from podwatch.errors import TransientError
from podwatch.models import RemoteConfig

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.utilities.parameters import SSMProvider

log = logging.getLogger(__name__)

_lock = threading.Lock()
#: parameter name → last config that validated, for this process (a Lambda execution environment)
_last_good: dict[str, RemoteConfig] = {}


def reset_last_good() -> None:
    """Forget every last good config (tests)."""
    with _lock:
        _last_good.clear()


def last_good(parameter_name: str) -> RemoteConfig | None:
    with _lock:
        return _last_good.get(parameter_name)


def load_remote_config(
    *,
    parameter_name: str,
    max_age: int,
    provider: SSMProvider | None = None,
    metrics: Metrics | None = None,
) -> tuple[RemoteConfig, bool]:
    """The config in force and whether it is the parameter's current value (False: a fallback).

    `provider` is an SSMProvider built with the caller's boto3 client (a default one otherwise);
    its cache is what keeps SSM calls to one per `max_age` seconds.
    """
    # Powertools Parameters imports boto3: imported when first used, not with this module (the
    # processor's cold start); once imported, this is a dictionary lookup.
    from aws_lambda_powertools.utilities.parameters import SSMProvider
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    ssm = provider if provider is not None else SSMProvider()
    try:
        raw: Any = ssm.get(parameter_name, max_age=max_age)
    except GetParameterError as exc:
        fallback = last_good(parameter_name)
        telemetry.count(metrics, telemetry.CONFIG_FETCH_FAILED)
        if fallback is None:
            raise TransientError(
                f"remote config {parameter_name} cannot be read and no good config is known: {exc}",
                reason="config_unavailable",
            ) from exc
        log.warning(
            "remote config cannot be read; keeping the last good config",
            extra={"parameter": parameter_name, "error": str(exc), "config_version": fallback.version},
        )
        return fallback, False
    config, problems = _validate(raw)
    if config is None:
        fallback = last_good(parameter_name) or _newest_good_in_history(ssm, parameter_name) or RemoteConfig()
        log.error(
            "remote config rejected; keeping the last good config",
            extra={"parameter": parameter_name, "problems": problems, "config_version": fallback.version},
        )
        telemetry.count(metrics, telemetry.CONFIG_REJECTED)
        return fallback, False
    with _lock:
        previous = _last_good.get(parameter_name)
        _last_good[parameter_name] = config
    if previous is not None and previous != config:
        log.info(
            "remote config changed",
            extra={
                "parameter": parameter_name,
                "from_version": previous.version,
                "config_version": config.version,
            },
        )
    return config, True


def _newest_good_in_history(provider: SSMProvider, parameter_name: str) -> RemoteConfig | None:
    """The newest version of the parameter that validates (remembered as this process's last good
    config), None if there is none or the history cannot be read (logged)."""
    from botocore.exceptions import BotoCoreError, ClientError

    versions: list[dict[str, Any]] = []
    request: dict[str, Any] = {"Name": parameter_name, "WithDecryption": False, "MaxResults": 50}
    try:
        while True:
            page = provider.client.get_parameter_history(**request)
            versions += page.get("Parameters", [])
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
    except (ClientError, BotoCoreError) as exc:
        log.warning(
            "remote config history cannot be read; the defaults stand in",
            extra={"parameter": parameter_name, "error": str(exc)},
        )
        return None
    for version in sorted(versions, key=lambda v: int(v.get("Version", 0)), reverse=True):
        config, _ = _validate(version.get("Value"))
        if config is not None:
            with _lock:
                _last_good.setdefault(parameter_name, config)
            log.warning(
                "remote config rejected at a cold start; the newest valid version stands in",
                extra={"parameter": parameter_name, "parameter_version": version.get("Version")},
            )
            return config
    return None


def _validate(raw: Any) -> tuple[RemoteConfig | None, str]:
    """The config, or None and what is wrong with it."""
    try:
        return RemoteConfig.from_json(raw if isinstance(raw, (str, bytes, dict)) else str(raw)), ""
    except ValidationError as exc:
        return None, "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
