"""The history table's calls: batched writes with retries (the history writer function) and the
queries the history API makes. Items are plain dicts (str, int, bytes, set of str), converted to
and from DynamoDB's typed attribute values here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from podwatch.errors import TransientError
from podwatch.history import TIME_INDEX

#: BatchWriteItem takes at most 25 puts per call, BatchGetItem 100 keys
MAX_BATCH = 25
MAX_GET = 100
#: BatchGetItem calls for keys left unprocessed (throttling), with backoff from this delay (s)
GET_ATTEMPTS = 4
GET_RETRY_DELAY = 0.02
Item = dict[str, Any]


def to_attributes(item: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in item.items():
        if isinstance(value, bool | int):
            out[name] = {"N": str(int(value))}
        elif isinstance(value, bytes):
            out[name] = {"B": value}
        elif isinstance(value, set | frozenset):
            out[name] = {"SS": sorted(str(v) for v in value)}
        else:
            out[name] = {"S": str(value)}
    return out


def from_attributes(raw: Mapping[str, Mapping[str, Any]]) -> Item:
    out: Item = {}
    for name, typed in raw.items():
        ((kind, value),) = typed.items()
        if kind == "N":
            out[name] = int(value)
        elif kind == "SS":
            out[name] = set(value)
        else:  # S, B
            out[name] = value
    return out


@dataclass
class WriteResult:
    """What one `HistoryWriter.write` did: items written, retries after throttling, and the records
    (by id) whose item could not be written, each with its error."""

    written: int = 0
    throttled: int = 0
    failed: dict[str, TransientError] = field(default_factory=dict)


class HistoryWriter:
    """BatchWriteItem in chunks of 25; unprocessed items (throttling) are retried with backoff, a
    bounded number of times, inside the invocation. A put overwrites an item of the same key, so a
    retried record takes effect once."""

    def __init__(
        self,
        *,
        table_name: str,
        client: Any,
        attempts: int = 4,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.attempts = attempts
        self.base_delay = base_delay
        self.sleep = sleep

    def write(self, items: Sequence[tuple[str, Item]]) -> WriteResult:
        """Write `(record id, item)` pairs; records sharing an item key share its fate."""
        owners: dict[tuple[str, str], list[str]] = {}
        by_key: dict[tuple[str, str], Item] = {}
        for record_id, item in items:
            key = (str(item["pk"]), str(item["sk"]))
            owners.setdefault(key, []).append(record_id)
            by_key[key] = item  # the same key twice in one call is refused by DynamoDB
        result = WriteResult()
        keys = list(by_key)
        for start in range(0, len(keys), MAX_BATCH):
            chunk = keys[start : start + MAX_BATCH]
            self._write_chunk({k: by_key[k] for k in chunk}, owners, result)
        return result

    def _write_chunk(
        self,
        pending: dict[tuple[str, str], Item],
        owners: dict[tuple[str, str], list[str]],
        result: WriteResult,
    ) -> None:
        error: str = ""
        for attempt in range(self.attempts):
            if attempt:
                result.throttled += len(pending)
                self.sleep(self.base_delay * 2 ** (attempt - 1))
            requests = [{"PutRequest": {"Item": to_attributes(item)}} for item in pending.values()]
            try:
                answer = self.client.batch_write_item(RequestItems={self.table_name: requests})
            except (ClientError, BotoCoreError) as exc:
                error = str(exc)
                continue
            left = answer.get("UnprocessedItems", {}).get(self.table_name, [])
            unprocessed = {
                (r["PutRequest"]["Item"]["pk"]["S"], r["PutRequest"]["Item"]["sk"]["S"]) for r in left
            }
            result.written += len(pending) - len(unprocessed)
            pending = {k: v for k, v in pending.items() if k in unprocessed}
            if not pending:
                return
            error = f"{len(pending)} items unprocessed (throttled)"
        for key in pending:
            for record_id in owners[key]:
                result.failed[record_id] = TransientError(
                    f"history write failed after {self.attempts} attempts: {error}", reason="write_failed"
                )


@dataclass(frozen=True, slots=True)
class Filter:
    """A FilterExpression with its names and values (empty: none)."""

    expression: str = ""
    names: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.expression:
            request["FilterExpression"] = self.expression
        names = {**request.get("ExpressionAttributeNames", {}), **self.names}
        if names:
            request["ExpressionAttributeNames"] = names
        request["ExpressionAttributeValues"] = {
            **request.get("ExpressionAttributeValues", {}),
            **to_attributes(self.values),
        }
        return request


class HistoryReader:
    """Queries: one object's partition, one time-index partition (lazily, page by page), counts,
    and items by key (the time index holds only keys and filter attributes). Every answer is newest
    first; expired items are left out by the caller's filter."""

    def __init__(self, *, table_name: str, client: Any, sleep: Callable[[float], None] = time.sleep) -> None:
        self.table_name = table_name
        self.client = client
        self.sleep = sleep
        #: Query and BatchGetItem calls made (the bench and the tests read them); counts run in threads
        self.calls = 0
        self._lock = threading.Lock()

    def _query(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._call("query", TableName=self.table_name, **request)

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        try:
            answer: dict[str, Any] = getattr(self.client, operation)(**request)
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"history query failed: {exc}", reason="query_failed") from exc
        return answer

    def partition(
        self,
        *,
        index: str | None,
        key_name: str,
        key: str,
        low: str,
        high: str,
        where: Filter,
        page_size: int,
    ) -> Iterator[Item]:
        """Items of one partition with `low <= sk <= high`, newest first, fetched `page_size` at a time."""
        request: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#pk": key_name, "#sk": "sk"},
            "ExpressionAttributeValues": to_attributes({":pk": key, ":lo": low, ":hi": high}),
            "ScanIndexForward": False,
            "Limit": page_size,
        }
        if index:
            request["IndexName"] = index
        where.apply(request)
        while True:
            answer = self._query(request)
            for raw in answer.get("Items", []):
                yield from_attributes(raw)
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def items(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """The table's items of `(pk, sk)` keys (BatchGetItem, 100 a call; keys DynamoDB leaves
        unprocessed are asked again, a bounded number of times). A key without an item is absent."""
        found: dict[tuple[str, str], Item] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), MAX_GET):
            pending = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in unique[start : start + MAX_GET]]
            for attempt in range(GET_ATTEMPTS):
                if attempt:
                    self.sleep(GET_RETRY_DELAY * 2 ** (attempt - 1))
                answer = self._call("batch_get_item", RequestItems={self.table_name: {"Keys": pending}})
                for raw in answer.get("Responses", {}).get(self.table_name, []):
                    item = from_attributes(raw)
                    found[(str(item["pk"]), str(item["sk"]))] = item
                pending = answer.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if not pending:
                    break
            else:
                raise TransientError(
                    f"history read failed: {len(pending)} items unprocessed after {GET_ATTEMPTS} attempts",
                    reason="query_failed",
                )
        return found

    def time_partition(self, key: str, low: str, high: str, where: Filter, page_size: int) -> Iterator[Item]:
        return self.partition(
            index=TIME_INDEX, key_name="tk", key=key, low=low, high=high, where=where, page_size=page_size
        )

    def count(self, key: str, low: str, high: str, where: Filter) -> int:
        """How many items of one time-index partition match (Select COUNT, every page)."""
        request: dict[str, Any] = {
            "IndexName": TIME_INDEX,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#pk": "tk", "#sk": "sk"},
            "ExpressionAttributeValues": to_attributes({":pk": key, ":lo": low, ":hi": high}),
            "Select": "COUNT",
        }
        where.apply(request)
        total = 0
        while True:
            answer = self._query(request)
            total += int(answer.get("Count", 0))
            last = answer.get("LastEvaluatedKey")
            if not last:
                return total
            request["ExclusiveStartKey"] = last
