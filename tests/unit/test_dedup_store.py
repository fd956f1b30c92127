"""DedupStore on moto (in-process): the answers and the number of DynamoDB calls per claim, with the
per-process hint right, stale and absent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from podwatch.dedup import Claim, DedupStore

TABLE = "dedup"
KEY = "c1/ns/pod-a/api/crash-loop"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


class Counting:
    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, Counter[str]()

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            return getattr(self.real, name)(**kwargs)

        return call


@pytest.fixture
def client() -> Iterator[Counting]:
    with mock_aws():
        real = boto3.client("dynamodb", region_name="us-east-1")
        real.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Counting(real)


def calls_of(client: Counting, action: Any) -> tuple[Any, int]:
    before = sum(client.calls.values())
    result = action()
    return result, sum(client.calls.values()) - before


def test_one_call_per_event_in_the_common_cases(client: Counting) -> None:
    store = DedupStore(table_name=TABLE, client=client)
    opened, n_open = calls_of(client, lambda: store.claim(KEY, "e1", 900, T0, pod="pod-a"))
    repeat, n_repeat = calls_of(
        client, lambda: store.claim(KEY, "e2", 900, T0 + timedelta(seconds=5), pod="pod-a")
    )
    retry, n_retry = calls_of(
        client, lambda: store.claim(KEY, "e1", 900, T0 + timedelta(seconds=6), pod="pod-a")
    )
    assert (opened.claim, repeat.claim, retry.claim) == (Claim.OPENED, Claim.DUPLICATE, Claim.SAME_EVENT)
    assert (n_open, n_repeat, n_retry) == (1, 1, 1)
    assert retry.count == 2  # the incident as stored


def test_another_process_pays_one_extra_call_once(client: Counting) -> None:
    DedupStore(table_name=TABLE, client=client).claim(KEY, "e1", 900, T0, pod="pod-a")
    other = DedupStore(table_name=TABLE, client=client)  # cold: no hint for KEY
    first, n_first = calls_of(client, lambda: other.claim(KEY, "e2", 900, T0, pod="pod-b"))
    second, n_second = calls_of(client, lambda: other.claim(KEY, "e3", 900, T0, pod="pod-b"))
    assert (first.claim, second.claim) == (Claim.DUPLICATE, Claim.DUPLICATE)
    assert (n_first, n_second) == (2, 1)


def test_a_hint_of_an_expired_window_still_opens_a_new_one(client: Counting) -> None:
    store = DedupStore(table_name=TABLE, client=client)
    store.claim(KEY, "e1", 60, T0, pod="pod-a")
    store._hints[KEY] = ("e1", int((T0 + timedelta(hours=1)).timestamp()))  # stale: says still open
    later = T0 + timedelta(seconds=61)
    outcome, n = calls_of(client, lambda: store.claim(KEY, "e2", 60, later, pod="pod-a"))
    assert (outcome.claim, outcome.count, n) == (Claim.OPENED, 1, 2)


def test_resolve_then_retry_then_nothing_open(client: Counting) -> None:
    store = DedupStore(table_name=TABLE, client=client)
    store.claim(KEY, "e1", 900, T0, pod="pod-a")
    store.claim(KEY, "e2", 900, T0, pod="pod-a")
    resolved = store.resolve(KEY, "r1", T0 + timedelta(seconds=30), pod="pod-a")
    assert (resolved.claim, resolved.count, resolved.pods) == (Claim.RESOLVED, 2, ("pod-a",))
    assert store.resolve(KEY, "r1", T0 + timedelta(seconds=31), pod="pod-a").claim is Claim.SAME_EVENT
    assert store.resolve(KEY, "r2", T0 + timedelta(seconds=32), pod="pod-a").claim is Claim.NO_INCIDENT
    assert store.resolve("c1/ns/other/api/crash-loop", "r3", T0, pod="other").claim is Claim.NO_INCIDENT
    # trouble again after the resolution is a new incident
    assert store.claim(KEY, "e3", 900, T0 + timedelta(seconds=40), pod="pod-a").claim is Claim.OPENED


def test_a_replica_in_trouble_again_keeps_the_workload_incident_firing(client: Counting) -> None:
    key = "c1/ns/workload:api/crash-loop"
    store = DedupStore(table_name=TABLE, client=client)
    store.claim(key, "e1", 900, T0, pod="pod-a")
    store.claim(key, "e2", 900, T0, pod="pod-b")
    assert store.resolve(key, "r1", T0, pod="pod-a", workload=True).claim is Claim.PARTIAL_RECOVERY
    store.claim(key, "e3", 900, T0, pod="pod-a")  # pod-a crash-loops again: no longer recovered
    assert store.resolve(key, "r2", T0, pod="pod-b", workload=True).claim is Claim.PARTIAL_RECOVERY
    assert store.resolve(key, "r3", T0, pod="pod-unknown", workload=True).claim is Claim.NO_INCIDENT
    final = store.resolve(key, "r4", T0, pod="pod-a", workload=True)
    assert (final.claim, final.count, final.pods) == (Claim.RESOLVED, 3, ("pod-a", "pod-b"))


def test_a_retry_of_the_opener_after_the_resolution_is_itself_not_news(client: Counting) -> None:
    store = DedupStore(table_name=TABLE, client=client)
    assert store.claim(KEY, "t1", 900, T0, pod="pod-a").claim is Claim.OPENED
    assert store.resolve(KEY, "r1", T0 + timedelta(seconds=30), pod="pod-a").claim is Claim.RESOLVED

    # t1's record comes back (its notification was not taken): the same observation, not new trouble
    again = store.claim(KEY, "t1", 900, T0 + timedelta(seconds=200), pod="pod-a")
    assert again.claim is Claim.SAME_EVENT
    # and the incident stays resolved: a later recovery has nothing to resolve, new trouble opens
    assert store.resolve(KEY, "r2", T0 + timedelta(seconds=210), pod="pod-a").claim is Claim.NO_INCIDENT
    assert store.claim(KEY, "t2", 900, T0 + timedelta(seconds=220), pod="pod-a").claim is Claim.OPENED


def test_a_retry_of_the_opener_after_its_window_closed_is_itself_not_news(client: Counting) -> None:
    store = DedupStore(table_name=TABLE, client=client)
    assert store.claim(KEY, "t1", 60, T0, pod="pod-a").claim is Claim.OPENED
    later = T0 + timedelta(seconds=61)
    assert store.claim(KEY, "t1", 60, later, pod="pod-a").claim is Claim.SAME_EVENT
    assert store.claim(KEY, "t2", 60, later, pod="pod-a").claim is Claim.OPENED  # new trouble is news


def test_a_retried_recovery_never_resolves_an_incident_that_opened_after_it(client: Counting) -> None:
    store = DedupStore(table_name=TABLE, client=client)
    assert store.claim(KEY, "t1", 900, T0, pod="pod-a").claim is Claim.OPENED
    assert store.resolve(KEY, "r1", T0 + timedelta(seconds=60), pod="pod-a").claim is Claim.RESOLVED
    # the container crash-loops again before r1's record is retried
    assert store.claim(KEY, "t2", 900, T0 + timedelta(seconds=120), pod="pod-a").claim is Claim.OPENED

    again = store.resolve(KEY, "r1", T0 + timedelta(seconds=240), pod="pod-a")
    assert again.claim is Claim.SAME_EVENT  # its notification goes again; incident 2 is untouched
    assert store.claim(KEY, "t3", 900, T0 + timedelta(seconds=250), pod="pod-a").claim is Claim.DUPLICATE
    # the recovery that really ends incident 2 resolves it
    final = store.resolve(KEY, "r2", T0 + timedelta(seconds=300), pod="pod-a")
    assert (final.claim, final.count) == (Claim.RESOLVED, 2)


def test_a_retried_recovery_never_resolves_a_later_workload_incident(client: Counting) -> None:
    key = "c1/ns/workload:api/crash-loop"
    store = DedupStore(table_name=TABLE, client=client)
    store.claim(key, "t1", 900, T0, pod="pod-a")
    assert store.resolve(key, "r1", T0, pod="pod-a", workload=True).claim is Claim.RESOLVED
    store.claim(key, "t2", 900, T0 + timedelta(seconds=10), pod="pod-a")  # incident 2

    assert store.resolve(key, "r1", T0 + timedelta(seconds=20), pod="pod-a", workload=True).claim is (
        Claim.SAME_EVENT
    )
    final = store.resolve(key, "r2", T0 + timedelta(seconds=30), pod="pod-a", workload=True)
    assert (final.claim, final.pods) == (Claim.RESOLVED, ("pod-a",))
