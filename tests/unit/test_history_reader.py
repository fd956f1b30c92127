"""HistoryReader.items: a list page's items read by key (the time index holds only keys and filter
attributes), with DynamoDB's unprocessed keys asked again; through moto in test_history_moto.py."""

from __future__ import annotations

from typing import Any

import pytest

from podwatch.errors import TransientError
from podwatch.historystore import HistoryReader, to_attributes


class PartialDynamoDB:
    """BatchGetItem that leaves the last key of each call unprocessed `stingy` times (throttling)."""

    def __init__(self, items: list[dict[str, Any]], stingy: int) -> None:
        self.items = {(i["pk"], i["sk"]): to_attributes(i) for i in items}
        self.stingy = stingy
        self.calls: list[int] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        keys = [(k["pk"]["S"], k["sk"]["S"]) for k in request["Keys"]]
        assert len(keys) <= 100
        self.calls.append(len(keys))
        left = keys[-1:] if self.stingy > 0 else []
        self.stingy -= 1
        found = [self.items[k] for k in keys if k in self.items and k not in left]
        unprocessed = (
            {table: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in left]}} if left else {}
        )
        return {"Responses": {table: found}, "UnprocessedKeys": unprocessed}


ITEMS = [
    {"pk": f"c#ns#pod#p{i}", "sk": f"2026-11-20T09:00:{i % 60:02d}.000Z##e{i}", "k": "Pod"}
    for i in range(150)
]


def test_items_are_read_100_keys_a_call_and_unprocessed_keys_asked_again() -> None:
    client = PartialDynamoDB(ITEMS, stingy=2)
    reader = HistoryReader(table_name="t", client=client, sleep=lambda _: None)
    keys = [(i["pk"], i["sk"]) for i in ITEMS] + [("c#ns#pod#gone", "x")]
    found = reader.items(keys)
    assert set(found) == {(i["pk"], i["sk"]) for i in ITEMS}  # a key without an item is absent
    assert client.calls == [100, 1, 1, 51]  # the first call's last key asked twice more, then taken


def test_keys_left_unprocessed_every_time_are_a_transient_error() -> None:
    reader = HistoryReader(table_name="t", client=PartialDynamoDB(ITEMS, stingy=100), sleep=lambda _: None)
    with pytest.raises(TransientError) as caught:
        reader.items([(ITEMS[0]["pk"], ITEMS[0]["sk"])])
    assert caught.value.reason == "query_failed"
