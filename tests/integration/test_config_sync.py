"""Config sync against the REAL Restate server and reference manager, through the local stack: the
manager changes a cluster's remote config → one config-sync run → the SSM parameter and the deliveries
event source mapping (moto's Lambda API) hold the new values → the next processor invocation filters
by the new reasons; an invalid config from the manager leaves the old one. Every sample in
events/config_sync/ is invoked here."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.lambda_runtime import load_event
from local.stack import LocalStack
from podwatch.models import EventType, RemoteConfig

pytestmark = pytest.mark.integration

CLUSTER = f"cfg-{uuid.uuid4().hex[:8]}"
SAMPLE = "events/replay/sample-stream.jsonl"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    fast_cache = {"CONFIG_MAX_AGE_SECONDS": "1"}  # the template's 60 s, shortened for the test
    with LocalStack(
        run_dir=tmp_path_factory.mktemp("config-sync"),
        cluster_id=CLUSTER,
        max_batching_window_seconds=0.5,
        function_output=io.StringIO(),
        environment_overrides={"ProcessorFunction": fast_cache, "DeliverFunction": fast_cache},
    ) as local:
        yield local


def parameter(stack: LocalStack) -> tuple[RemoteConfig, int]:
    ssm = stack.moto.client("ssm") if stack.moto else None
    assert ssm is not None
    value = ssm.get_parameter(Name=stack.provisioned.physical("RemoteConfigParameter"))["Parameter"]
    return RemoteConfig.from_json(value["Value"]), int(value["Version"])


def mapping(stack: LocalStack) -> tuple[int, int]:
    uuid_ = stack.provisioned.physical("DeliverFunctionDeliveries")
    answer = stack.lambda_client.get_event_source_mapping(UUID=uuid_)
    return int(answer["BatchSize"]), int(answer["MaximumBatchingWindowInSeconds"])


def set_config(stack: LocalStack, cluster: str, config: RemoteConfig) -> None:
    response = stack.manager_call(cluster, "SetRemoteConfig", json.loads(config.to_json()))
    assert response.status_code == 200, response.text


def sync(stack: LocalStack, event: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = stack.invoke(
        "ConfigSyncFunction", event or load_event("events/config_sync/schedule.json")
    )
    return result


def metric_total(stack: LocalStack, name: str) -> float:
    output = stack.function_output
    assert isinstance(output, io.StringIO)
    total = 0.0
    for line in output.getvalue().splitlines():
        if line.startswith("{") and '"_aws"' in line and f'"{name}"' in line:
            value = json.loads(line).get(name, 0)
            total += sum(value) if isinstance(value, list) else value
    return total


def test_the_template_mapping_exists_in_the_lambda_api(stack: LocalStack) -> None:
    # the local stack created the functions and SAM's generated mapping in moto, as deployed
    assert mapping(stack) == (25, 5)
    poller = stack.pollers["DeliverFunction"][0]
    poller.retune()
    assert poller.batch_size == 25
    assert poller.batching_window_seconds == 0.5  # the template's 5 s, capped for tests


def test_a_manager_change_reaches_the_parameter_the_mapping_and_the_processor(stack: LocalStack) -> None:
    # Given a sync with the manager's defaults changes nothing
    assert parameter(stack)[0] == RemoteConfig()
    before_version = parameter(stack)[1]
    first = sync(stack)
    assert (first["parameter_written"], first["mapping_updated"]) == (False, False)
    assert parameter(stack)[1] == before_version

    # When the manager changes the cluster's config, and config sync runs once
    wanted = RemoteConfig(
        version="v2",
        batch_size=7,
        batch_flush_seconds=0,  # the mapping's window cannot go below 1
        enabled_reasons=frozenset({EventType.OOM_KILL}),
    )
    set_config(stack, CLUSTER, wanted)
    result = sync(stack)

    # Then the parameter holds it (a new SSM version) and the mapping follows it
    assert result["parameter_written"] is True
    assert result["config_version"] == "v2"
    config, version = parameter(stack)
    assert config == wanted
    assert version == before_version + 1 == result["parameter_version"]
    assert mapping(stack) == (7, 1)
    poller = stack.pollers["DeliverFunction"][0]
    poller.retune(fresh=True)
    assert poller.batch_size == 7
    assert metric_total(stack, "ConfigUpdated") == 1

    # And the next processor invocation (past its parameter cache age) filters by the new reasons
    time.sleep(1.1)
    replayed = stack.replay(SAMPLE, cluster_id=CLUSTER)
    stack.pump_until_idle(timeout=60)
    delivered = stack.delivered(CLUSTER)
    assert {n["event_type"] for n in delivered} == {"oom-kill"}
    assert {n["config_version"] for n in delivered} == {"v2"}
    mine = [a for a in stack.audit_records() if a.get("event_id") in replayed.event_ids]
    assert {"disabled:crash-loop", "disabled:image-pull"} <= {a["reason"] for a in mine}

    # A second run with nothing new writes nothing
    again = sync(stack)
    assert (again["parameter_written"], again["mapping_updated"]) == (False, False)
    assert parameter(stack)[1] == version
    # the relay's enroll of the replay made the cluster known: not silent
    assert again["silent"] == []
    assert 0 <= again["heartbeat_age"][CLUSTER] < 120


def test_an_invalid_config_from_the_manager_leaves_the_old_one(stack: LocalStack) -> None:
    good = RemoteConfig(version="good-1", batch_size=9, batch_flush_seconds=3)
    set_config(stack, CLUSTER, good)
    sync(stack)
    assert parameter(stack)[0] == good
    _, version = parameter(stack)
    rejected_before = metric_total(stack, "ConfigRejected")

    # When the manager serves a config the model refuses
    bad = {**json.loads(good.to_json()), "version": "bad-2", "batch_size": 0}
    response = stack.manager_call(CLUSTER, "SetRawRemoteConfig", bad)
    assert response.status_code == 200, response.text
    result = sync(stack)

    # Then it is rejected with the reason and counted; the parameter and the mapping are unchanged
    assert "batch_size" in result["rejected"][CLUSTER]
    assert result["parameter_written"] is False
    assert result["config_version"] == "good-1"
    assert parameter(stack) == (good, version)
    assert mapping(stack) == (9, 3)
    assert metric_total(stack, "ConfigRejected") == rejected_before + 1


def test_sync_now_sample_names_clusters_and_reports_the_silent_ones(stack: LocalStack) -> None:
    """events/config_sync/sync-now.json: a manual run for other clusters (never heard of here)."""
    event = load_event("events/config_sync/sync-now.json")
    result = sync(stack, event)
    assert result["clusters"] == ["prod-eu-1", "staging-us-2"]
    assert {"prod-eu-1", "staging-us-2"} <= set(result["silent"])
    assert result["heartbeat_age"] == {"prod-eu-1": None, "staging-us-2": None}
    assert metric_total(stack, "ClustersSilent") >= 2


def test_no_fetch_starts_that_could_not_finish_and_the_heartbeats_are_still_reported(
    stack: LocalStack,
) -> None:
    # A fetch retries for up to 10 s and its last attempt may then take connect + read (2 + 10 s):
    # with less than that and 5 s for the rest left, no fetch starts; the run still reports.
    event = load_event("events/config_sync/sync-now.json")
    failed_before = metric_total(stack, "ConfigFetchFailed")

    result = stack.invoke("ConfigSyncFunction", event, timeout_ms=26_000)

    assert set(result["fetch_failed"]) == {"prod-eu-1", "staging-us-2"}
    assert all(reason.startswith("no_time_left") for reason in result["fetch_failed"].values())
    assert result["parameter_written"] is False
    assert {"prod-eu-1", "staging-us-2"} <= set(result["silent"])  # ClustersSilent still has data
    assert metric_total(stack, "ConfigFetchFailed") == failed_before + 2
