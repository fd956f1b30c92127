"""The remote config: validated, cached by Parameters, and a bad value never replaces a good one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from moto import mock_aws

from podwatch import config as config_module
from podwatch import telemetry
from podwatch.config import load_remote_config
from podwatch.errors import TransientError
from podwatch.models import EventType, RemoteConfig

NAME = "/podwatch-test/remote-config"


class RecordingMetrics:
    def __init__(self) -> None:
        self.added: list[tuple[str, float]] = []

    def add_metric(self, *, name: str, unit: Any, value: float) -> None:
        self.added.append((name, value))


class FailingProvider:
    def get(self, name: str, **_: Any) -> str:
        raise GetParameterError(
            f"An error occurred (ThrottlingException) when calling GetParameter on {name}"
        )


@pytest.fixture(autouse=True)
def _fresh_last_good() -> Iterator[None]:
    config_module.reset_last_good()
    yield
    config_module.reset_last_good()


@pytest.fixture
def ssm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def put(ssm: Any, value: str) -> None:
    ssm.put_parameter(Name=NAME, Value=value, Type="String", Overwrite=True)


def test_a_valid_value_is_the_config(ssm: Any) -> None:
    good = RemoteConfig(version="v2", batch_size=10, enabled_reasons=frozenset({EventType.CRASH_LOOP}))
    put(ssm, good.to_json())
    loaded, current = load_remote_config(
        parameter_name=NAME, max_age=60, provider=SSMProvider(boto3_client=ssm)
    )
    assert (loaded, current) == (good, True)


def test_the_value_is_cached_for_max_age(ssm: Any) -> None:
    # Given a config read once through a provider
    provider = SSMProvider(boto3_client=ssm)
    put(ssm, RemoteConfig(version="v1").to_json())
    load_remote_config(parameter_name=NAME, max_age=60, provider=provider)
    # When the parameter changes inside the cache age
    put(ssm, RemoteConfig(version="v2").to_json())
    # Then the cached value stays until the cache expires
    assert load_remote_config(parameter_name=NAME, max_age=60, provider=provider)[0].version == "v1"
    provider.clear_cache()
    assert load_remote_config(parameter_name=NAME, max_age=60, provider=provider)[0].version == "v2"


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        '{"batch_size": 0}',
        '{"enabled_reasons": ["crash-loop", "sneezing"]}',
        '{"dedup_cooldown_seconds": 900, "surprise": true}',
        "[]",
    ],
)
def test_an_invalid_value_keeps_the_last_good_config_and_is_counted(ssm: Any, bad: str) -> None:
    provider = SSMProvider(boto3_client=ssm)
    metrics = RecordingMetrics()
    good = RemoteConfig(version="good-1", batch_size=7)
    put(ssm, good.to_json())
    load_remote_config(parameter_name=NAME, max_age=0, provider=provider, metrics=metrics)  # type: ignore[arg-type]

    put(ssm, bad)
    loaded, current = load_remote_config(parameter_name=NAME, max_age=0, provider=provider, metrics=metrics)  # type: ignore[arg-type]

    assert (loaded, current) == (good, False)
    assert metrics.added == [(telemetry.CONFIG_REJECTED, 1)]


def test_an_invalid_value_without_a_good_one_before_gives_the_defaults(ssm: Any) -> None:
    put(ssm, '{"batch_size": 1000}')
    metrics = RecordingMetrics()
    loaded, current = load_remote_config(
        parameter_name=NAME,
        max_age=0,
        provider=SSMProvider(boto3_client=ssm),
        metrics=metrics,  # type: ignore[arg-type]
    )
    assert (loaded, current) == (RemoteConfig(), False)
    assert metrics.added == [(telemetry.CONFIG_REJECTED, 1)]


def test_an_invalid_value_at_a_cold_start_gives_the_newest_valid_version(ssm: Any) -> None:
    # Given two good versions, then a bad one written by hand
    for version in ("good-1", "good-2"):
        put(ssm, RemoteConfig(version=version, batch_size=7).to_json())
    put(ssm, '{"batch_size": 1000}')

    # When a new execution environment (nothing known yet) reads it
    config_module.reset_last_good()
    metrics = RecordingMetrics()
    loaded, current = load_remote_config(
        parameter_name=NAME,
        max_age=0,
        provider=SSMProvider(boto3_client=ssm),
        metrics=metrics,  # type: ignore[arg-type]
    )

    # Then the last good config is still the one in force, and the rejection is counted
    assert (loaded, current) == (RemoteConfig(version="good-2", batch_size=7), False)
    assert metrics.added == [(telemetry.CONFIG_REJECTED, 1)]
    assert config_module.last_good(NAME) == loaded


def test_an_unreadable_history_at_a_cold_start_gives_the_defaults(ssm: Any) -> None:
    put(ssm, RemoteConfig(version="good-1").to_json())
    put(ssm, "{not json")

    class NoHistory:
        def __init__(self, real: Any) -> None:
            self.real = real

        def get_parameter(self, **kwargs: Any) -> Any:
            return self.real.get_parameter(**kwargs)

        def get_parameter_history(self, **_: Any) -> Any:
            from botocore.exceptions import ClientError

            denied = {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}
            raise ClientError(denied, "GetParameterHistory")  # type: ignore[arg-type]

    loaded, current = load_remote_config(
        parameter_name=NAME, max_age=0, provider=SSMProvider(boto3_client=NoHistory(ssm))
    )
    assert (loaded, current) == (RemoteConfig(), False)


def test_a_good_value_after_a_bad_one_is_taken(ssm: Any) -> None:
    provider = SSMProvider(boto3_client=ssm)
    put(ssm, '{"batch_size": -1}')
    load_remote_config(parameter_name=NAME, max_age=0, provider=provider)
    put(ssm, RemoteConfig(version="fixed").to_json())
    assert load_remote_config(parameter_name=NAME, max_age=0, provider=provider) == (
        RemoteConfig(version="fixed"),
        True,
    )


def test_a_read_failure_keeps_the_last_good_config(ssm: Any) -> None:
    put(ssm, RemoteConfig(version="v5").to_json())
    load_remote_config(parameter_name=NAME, max_age=0, provider=SSMProvider(boto3_client=ssm))
    metrics = RecordingMetrics()
    loaded, current = load_remote_config(
        parameter_name=NAME,
        max_age=0,
        provider=FailingProvider(),
        metrics=metrics,  # type: ignore[arg-type]
    )
    assert (loaded.version, current) == ("v5", False)
    assert metrics.added == [(telemetry.CONFIG_FETCH_FAILED, 1)]


def test_a_read_failure_without_a_good_config_is_transient() -> None:
    with pytest.raises(TransientError) as raised:
        load_remote_config(parameter_name=NAME, max_age=0, provider=FailingProvider())  # type: ignore[arg-type]
    assert raised.value.reason == "config_unavailable"
    assert isinstance(raised.value.__cause__, GetParameterError)


def test_a_missing_parameter_is_a_read_failure(ssm: Any) -> None:
    with pytest.raises(TransientError):
        load_remote_config(
            parameter_name="/does/not/exist", max_age=0, provider=SSMProvider(boto3_client=ssm)
        )
