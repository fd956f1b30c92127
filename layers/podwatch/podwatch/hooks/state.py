"""The hooks table (DynamoDB, pk + sk): the applied rules, and one item per hook event.

    rule item    pk "rule", sk "<namespace>/<name>"; `doc` B (the Hook as JSON, zlib: 50 prompts
                 of 10,000 characters exceed DynamoDB's 400 KB item), `applied_at` N, `source` S
    event item   pk "event#<namespace>/<name>", sk "<eventType>#<cluster>#<namespace>#<pod>" (the
                 per-hook dedup key), TTL `purge_at`; see docs/internals.md ("Hooks")
    seen item    pk "seen", sk "<cluster>#<namespace>/<name>": `rv` N, the newest resourceVersion of a
                 Hook watched in the cluster that was applied or deleted (`hooks.cluster`), TTL `purge_at`

A call goes: `claim` (one conditional write: no window open, not this notification's success, no
other invocation's live claim) → the agent → `succeeded` (the window starts now) or `failed` /
`rejected` (no window: the next delivery calls again). So a failed call never blocks a retry, and
a redelivered notification is recognised by `last_ok` whether or not the window is still open.
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from podwatch.errors import PermanentError, TransientError
from podwatch.hooks.rules import Hook, HookInvalid, parse_hook

RULE_PK = "rule"
#: pk of the newest resourceVersion applied per Hook watched in a cluster (sk `<cluster>#<ns>/<name>`)
SEEN_PK = "seen"
#: an event item outlives its last activity this long (status shows resolved events meanwhile)
RETENTION_S = 7 * 24 * 3600
#: DynamoDB's item limit is 400 KB; keep room for the other attributes
MAX_DOC_BYTES = 380 * 1024
_MESSAGE_ID_NAMESPACE = uuid.UUID("9c5f8f1e-4f7a-4f0e-9a57-3f0b2f1d7a11")


class Decision(StrEnum):
    CALL = "call"
    #: a repeat inside the window after a successful call: counted, not called
    DUPLICATE = "duplicate"
    #: this notification was already called successfully (a redelivery): nothing to do
    SAME_NOTIFICATION = "same_notification"
    #: this notification was rejected before (already in the DLQ): nothing to do
    REJECTED_BEFORE = "rejected_before"
    #: another invocation holds a live claim on this event: retry later
    IN_FLIGHT = "in_flight"


@dataclass(frozen=True, slots=True)
class Claim:
    decision: Decision
    key: EventKey | None = None
    #: successful calls before this one: names the window the call would open
    generation: int = 0

    @property
    def message_id(self) -> str:
        """Stable per (hook, dedup key, window): the agent can recognise a retry."""
        return window_message_id(self.key, self.generation) if self.key is not None else ""


@dataclass(frozen=True, slots=True)
class EventKey:
    """The per-hook dedup key: hook, eventType, and the pod (cluster, namespace, name): a stack
    serves several clusters, and the same pod name in two of them is two events."""

    hook: str
    event_type: str
    cluster: str
    namespace: str
    resource: str

    @property
    def pk(self) -> str:
        return f"event#{self.hook}"

    @property
    def sk(self) -> str:
        return f"{self.event_type}#{self.cluster}#{self.namespace}#{self.resource}"


class ItemKey(NamedTuple):
    """The key of an item that is no hook event (a `seen` item)."""

    pk: str
    sk: str


def window_message_id(key: EventKey, generation: int) -> str:
    return str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, f"{key.hook}|{key.sk}|{generation}"))


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _num(item: dict[str, Any], name: str, default: int = 0) -> int:
    value = item.get(name)
    return int(value["N"]) if value else default


def _str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value["S"] if value else None


_CLAIM_CONDITION = (
    "(attribute_not_exists(window_until) OR window_until <= :now)"
    " AND (attribute_not_exists(last_ok) OR last_ok <> :nid)"
    " AND (attribute_not_exists(last_rejected) OR last_rejected <> :nid)"
    " AND (attribute_not_exists(claim_until) OR claim_until <= :now OR claim_by = :nid)"
)
_CLAIM_UPDATE = (
    "SET claim_until = :lease, claim_by = :nid, last_seen = :now, purge_at = :purge,"
    " event_type = :et, cluster_id = :cl, ns = :ns, resource_name = :res, window_s = :win"
)


class HookStore:
    """Rules and hook events in the hooks table. `client` is a boto3 DynamoDB client."""

    def __init__(self, *, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self._client = client

    # ------------------------------------------------------------------ rules

    def put_rule(self, hook: Hook, *, now_s: int, source: str = "cli") -> None:
        doc = zlib.compress(hook.model_dump_json(exclude_none=True, exclude={"status"}).encode())
        if len(doc) > MAX_DOC_BYTES:
            raise HookInvalid([f"spec: {len(doc)} bytes compressed, at most {MAX_DOC_BYTES}"])
        self._call(
            "put_item",
            Item={
                "pk": _s(RULE_PK),
                "sk": _s(hook.key),
                "doc": {"B": doc},
                "applied_at": _n(now_s),
                "source": _s(source),
            },
        )

    def delete_rule(self, key: str) -> bool:
        """Delete a rule and its events; False if there was no such rule."""
        answer = self._call("delete_item", Key={"pk": _s(RULE_PK), "sk": _s(key)}, ReturnValues="ALL_OLD")
        for item in self.events(key):
            self._call("delete_item", Key={"pk": item["pk"], "sk": item["sk"]})
        return bool(answer.get("Attributes"))

    def rules(self) -> list[Hook]:
        """Every applied rule. A stored rule that no longer validates is skipped (PermanentError
        would stop every hook for one bad item): `rule_problems` lists those."""
        hooks, _ = self._rules()
        return hooks

    def rule_problems(self) -> dict[str, str]:
        _, problems = self._rules()
        return problems

    def rule_items(self) -> list[dict[str, Any]]:
        return self._query(RULE_PK)

    def _rules(self) -> tuple[list[Hook], dict[str, str]]:
        hooks, problems = [], {}
        for item in self._query(RULE_PK):
            try:
                hooks.append(parse_hook(json.loads(zlib.decompress(item["doc"]["B"]))))
            except (PermanentError, ValueError, zlib.error) as exc:
                problems[item["sk"]["S"]] = str(exc)
        return hooks, problems

    def advance_seen(self, cluster: str, key: str, resource_version: int, *, now_s: int) -> bool:
        """Record that the cluster's Hook `key` reached `resource_version`; False when a newer change
        was seen already (a stale envelope: SQS reordered or retried it). The same version again is
        True, so a retried change is applied again (idempotent)."""
        ok, _ = self._conditional(
            ItemKey(SEEN_PK, f"{cluster}#{key}"),
            UpdateExpression="SET rv = :rv, purge_at = :purge",
            ConditionExpression="attribute_not_exists(rv) OR rv <= :rv",
            ExpressionAttributeValues={":rv": _n(resource_version), ":purge": _n(now_s + RETENTION_S)},
        )
        return ok

    # ------------------------------------------------------------------ events

    def claim(self, key: EventKey, notification_id: str, *, now_s: int, lease_s: int, window_s: int) -> Claim:
        """Decide whether to call: one conditional write (module docstring)."""
        values = {
            ":now": _n(now_s),
            ":nid": _s(notification_id),
            ":lease": _n(now_s + lease_s),
            ":purge": _n(now_s + window_s + RETENTION_S),
            ":et": _s(key.event_type),
            ":cl": _s(key.cluster),
            ":ns": _s(key.namespace),
            ":res": _s(key.resource),
            ":win": _n(window_s),
        }
        ok, item = self._conditional(
            key,
            UpdateExpression=_CLAIM_UPDATE,
            ConditionExpression=_CLAIM_CONDITION,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        if ok:
            return Claim(Decision.CALL, key, _num(item, "generation"))
        if _str(item, "last_ok") == notification_id:
            return Claim(Decision.SAME_NOTIFICATION)
        if _str(item, "last_rejected") == notification_id:
            return Claim(Decision.REJECTED_BEFORE)
        if _num(item, "window_until") > now_s:
            self._update(
                key,
                "SET last_seen = :now ADD duplicates :one",
                {":now": _n(now_s), ":one": _n(1)},
            )
            return Claim(Decision.DUPLICATE)
        return Claim(Decision.IN_FLIGHT)

    def succeeded(
        self, key: EventKey, claim: Claim, notification_id: str, *, now_s: int, window_s: int
    ) -> None:
        """The call succeeded: the window starts now; the next generation's message id is new."""
        self._update(
            key,
            "SET window_until = :until, first_seen = :now, last_ok = :nid, last_ok_at = :now,"
            " generation = :next, #st = :firing, purge_at = :purge"
            " ADD calls_ok :one REMOVE claim_until, claim_by, last_error",
            {
                ":until": _n(now_s + window_s),
                ":now": _n(now_s),
                ":nid": _s(notification_id),
                ":next": _n(claim.generation + 1),
                ":firing": _s("firing"),
                ":purge": _n(now_s + window_s + RETENTION_S),
                ":one": _n(1),
            },
            names={"#st": "state"},
        )

    def failed(self, key: EventKey, error: str, *, rejected_notification: str | None = None) -> None:
        """The call failed: no window; the claim is released so the retry may call at once."""
        sets = "last_error = :err"
        values: dict[str, Any] = {":err": _s(error[:1000] or "-"), ":one": _n(1)}
        if rejected_notification is not None:
            sets += ", last_rejected = :nid"
            values[":nid"] = _s(rejected_notification)
        self._update(key, f"SET {sets} ADD calls_failed :one REMOVE claim_until, claim_by", values)

    def resolve(self, key: EventKey, *, now_s: int) -> bool:
        """podwatch's incident resolved: the event is resolved and its window closed (trouble after
        this is news). False when there was no firing event."""
        ok, _ = self._conditional(
            key,
            UpdateExpression="SET #st = :resolved, resolved_at = :now, window_until = :now",
            ConditionExpression="attribute_exists(pk) AND #st = :firing",
            ExpressionAttributeValues={
                ":resolved": _s("resolved"),
                ":firing": _s("firing"),
                ":now": _n(now_s),
            },
            ExpressionAttributeNames={"#st": "state"},
        )
        return ok

    def events(self, hook_key: str) -> list[dict[str, Any]]:
        return self._query(f"event#{hook_key}")

    def calls_about(self, *, cluster: str, namespace: str, resource: str, now_s: int) -> list[dict[str, Any]]:
        """Every hook's events about one pod (the timeline page's side panel): `status_of`'s events,
        each with its hook's name. One query per applied hook (a stack has a few)."""
        found: list[dict[str, Any]] = []
        for rule in self.rule_items():
            hook = rule["sk"]["S"]
            mine = [
                item
                for item in self.events(hook)
                if (_str(item, "cluster_id"), _str(item, "ns"), _str(item, "resource_name"))
                == (cluster, namespace, resource)
            ]
            found += [{"hook": hook, **event} for event in status_of(mine, now_s=now_s)["activeEvents"]]
        return found

    # ------------------------------------------------------------------ plumbing

    def _update(
        self, key: EventKey, update: str, values: dict[str, Any], names: dict[str, str] | None = None
    ) -> None:
        extra = {"ExpressionAttributeNames": names} if names else {}
        self._call(
            "update_item",
            Key={"pk": _s(key.pk), "sk": _s(key.sk)},
            UpdateExpression=update,
            ExpressionAttributeValues=values,
            **extra,
        )

    def _conditional(self, key: EventKey | ItemKey, **request: Any) -> tuple[bool, dict[str, Any]]:
        try:
            answer = self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(key.pk), "sk": _s(key.sk)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **request,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False, exc.response.get("Item") or {}
            raise TransientError(
                f"hooks table update of {key.sk!r} failed: {exc}", reason="hooks_table"
            ) from exc
        except BotoCoreError as exc:
            raise TransientError(
                f"hooks table update of {key.sk!r} failed: {exc}", reason="hooks_table"
            ) from exc
        return True, answer.get("Attributes") or {}

    def _query(self, pk: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(pk)},
            "ConsistentRead": True,
        }
        while True:
            answer = self._call("query", **request)
            items.extend(answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return items
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        request.setdefault("TableName", self.table_name)
        try:
            answer: dict[str, Any] = getattr(self._client, operation)(**request)
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"hooks table {operation} failed: {exc}", reason="hooks_table") from exc
        return answer


def _iso(epoch_s: int | None) -> str | None:
    from datetime import UTC, datetime

    return (
        None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")
    )


def status_of(items: list[dict[str, Any]], *, now_s: int) -> dict[str, Any]:
    """A hook's status in khook's shape (`activeEvents` with firstSeen, lastSeen, firing|resolved),
    plus podwatch's counts: calls ok/failed, duplicates ignored, the last error.

    An event is resolved when podwatch resolved its incident, or when its window passed without a
    repeat (the window counted from the later of the last call and the last repeat)."""
    events, ok, failed, duplicates = [], 0, 0, 0
    for item in items:
        ok += _num(item, "calls_ok")
        failed += _num(item, "calls_failed")
        duplicates += _num(item, "duplicates")
        window = _num(item, "window_s")
        last_seen = _num(item, "last_seen")
        quiet_since = max(_num(item, "window_until"), last_seen + window)
        resolved = _str(item, "state") == "resolved" or (_num(item, "calls_ok") > 0 and now_s >= quiet_since)
        events.append(
            {
                "eventType": _str(item, "event_type"),
                "cluster": _str(item, "cluster_id"),
                "namespace": _str(item, "ns"),
                "resourceName": _str(item, "resource_name"),
                "firstSeen": _iso(_num(item, "first_seen", last_seen)),
                "lastSeen": _iso(last_seen),
                "status": "resolved" if resolved else "firing",
                "calls": {"ok": _num(item, "calls_ok"), "failed": _num(item, "calls_failed")},
                **({"lastError": _str(item, "last_error")} if _str(item, "last_error") else {}),
            }
        )
    return {
        "activeEvents": events,
        "calls": {"ok": ok, "failed": failed},
        "duplicatesIgnored": duplicates,
    }
