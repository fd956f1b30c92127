"""The remote config (SSM parameter, JSON `RemoteConfig`) through Powertools Parameters.

A bad value never replaces the last good config: `load_remote_config` validates every value it gets
(Parameters caches the raw string for `max_age` seconds, so SSM is asked at most that often) and
keeps the last good config of this process when a value is invalid (metric ConfigRejected) or cannot
be read (metric ConfigFetchFailed). Before any good value, the defaults `RemoteConfig()` stand in for
an invalid value; a parameter that cannot be read at all before any good value is a TransientError
(the records go back to SQS), since then there is nothing trustworthy to filter by.
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
        fallback = last_good(parameter_name) or RemoteConfig()
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


def _validate(raw: Any) -> tuple[RemoteConfig | None, str]:
    """The config, or None and what is wrong with it."""
    try:
        return RemoteConfig.from_json(raw if isinstance(raw, (str, bytes, dict)) else str(raw)), ""
    except ValidationError as exc:
        return None, "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
