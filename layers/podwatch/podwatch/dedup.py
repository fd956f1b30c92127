"""Dedup and incidents: what counts as a repeat of the same trouble inside the cooldown (DynamoDB, TTL).

A dedup key (`dedup_key`) names *what* the trouble is; the event_id names *which* observation of it.
One item per key is the current incident of that trouble. `DedupStore.claim` decides a trouble
finding (opened, duplicate, same event), `DedupStore.resolve` a recovery (resolved, partial, no
incident), each with conditional writes so DynamoDB serialises racing invocations; windows run on the
event's own time (`window_time`). The item's attributes and the state machine (conditions, the
write-order hint, retries, what is not exactly once) are specified in docs/internals.md, "Dedup item".
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from podwatch.classify import Finding
from podwatch.errors import TransientError
from podwatch.models import MAX_AFFECTED_PODS, KubeEventEnvelope, ObjectEnvelope, PodEnvelope
from podwatch.workload import subject_of, workload_name_for

DedupScope = Literal["container", "pod", "workload"]

#: placeholder for "no container" in container-scoped keys (cannot be a container name: no dash-only names)
NO_CONTAINER = "-"
FIRING = "firing"
RESOLVED = "resolved"

OPEN_CONDITION = "attribute_not_exists(pk) OR ((expires_at < :now OR #st = :resolved) AND event_id <> :eid)"
#: an open sets the new incident and drops what belonged to the old one (`resolved_by` stays)
_OPEN_UPDATE = (
    "SET event_id = :eid, expires_at = :exp, purge_at = :purge, opened_at = :now, #st = :firing, "
    "#count = :one{pods} REMOVE unlisted, recovered, resolved_at{no_pods}"
)
_OPEN_WITH_POD = _OPEN_UPDATE.format(pods=", pods = :podset", no_pods="")
_OPEN_WITHOUT_POD = _OPEN_UPDATE.format(pods="", no_pods=", pods")
_IS_FIRING = "(attribute_not_exists(#st) OR #st = :firing)"
REPEAT_CONDITION = f"expires_at >= :now AND event_id <> :eid AND {_IS_FIRING}"
_POD_FITS = "(attribute_not_exists(pods) OR size(pods) < :max OR contains(pods, :pod))"
#: firing, and not past its retention (TTL deletes late; items without `purge_at` predate it)
RESOLVE_CONDITION = (
    f"attribute_exists(pk) AND {_IS_FIRING} AND (attribute_not_exists(purge_at) OR purge_at >= :now)"
    " AND (attribute_not_exists(resolved_by) OR resolved_by <> :eid)"
)

_REPEAT_LISTED_UPDATE = "ADD #count :one, pods :podset DELETE recovered :podset"
_REPEAT_LISTED_CONDITION = f"{REPEAT_CONDITION} AND {_POD_FITS}"
_REPEAT_UNLISTED_UPDATE = "ADD #count :one, unlisted :one"

#: how long after its window an incident can still be resolved before TTL may delete it (7 days)
INCIDENT_RETENTION_S = 7 * 24 * 3600
#: how far an observed time may run ahead of the processor's clock (relay clock skew) and still be used
FUTURE_TOLERANCE_S = 300
#: how old an observed time may be and still be used: backlogs, DLQ redrives (14 days) and replayed
#: recordings are legitimately old, and the TTL counts from the processor's clock anyway; a year off
#: is a broken clock (epoch 0, a reset RTC)
PAST_TOLERANCE_S = 365 * 24 * 3600
#: attempts of the open/repeat dance before a racing key is left to SQS's retry
MAX_ATTEMPTS = 4
#: windows remembered per process (the hint); the oldest are forgotten first
HINT_CAPACITY = 10_000


def window_time(observed_at: datetime, now: datetime) -> tuple[datetime, str | None]:
    """The time an event's dedup windows are measured at, and why it is not `observed_at` if it is
    not: when the relay observed the trouble, unless that is more than FUTURE_TOLERANCE_S ahead of
    `now` ("future") or PAST_TOLERANCE_S behind it ("past"); then `now`."""
    if observed_at.tzinfo is None:  # the relay writes UTC
        observed_at = observed_at.replace(tzinfo=UTC)
    if observed_at > now + timedelta(seconds=FUTURE_TOLERANCE_S):
        return now, "future"
    if observed_at < now - timedelta(seconds=PAST_TOLERANCE_S):
        return now, "past"
    return observed_at, None


# Request values that are the same in every request (botocore only reads the requests it is given).
_FIRING_S = {"S": FIRING}
_RESOLVED_S = {"S": RESOLVED}
_ONE_N = {"N": "1"}
_MAX_PODS_N = {"N": str(MAX_AFFECTED_PODS)}
_COUNT_STATE_NAMES = {"#count": "count", "#st": "state"}


class Claim(StrEnum):
    OPENED = "opened"
    SAME_EVENT = "same_event"
    DUPLICATE = "duplicate"
    RESOLVED = "resolved"
    NO_INCIDENT = "no_incident"
    PARTIAL_RECOVERY = "partial_recovery"


@dataclass(slots=True)
class Outcome:
    """A dedup decision and what the incident looked like when it was made (where known).
    Not frozen only because one is made per claim, and a frozen dataclass costs several times more
    to make: treat it as immutable."""

    claim: Claim
    count: int = 1
    pods: tuple[str, ...] = ()
    unlisted: int = 0
    opened_at: int | None = None

    @property
    def pod_count(self) -> int:
        """Affected pods: exact while every one is listed, an upper bound once `pods` is full."""
        return len(self.pods) + self.unlisted


def dedup_key(
    finding: Finding,
    envelope: PodEnvelope | KubeEventEnvelope | ObjectEnvelope,
    scope: DedupScope = "container",
) -> str:
    """`cluster/namespace/pod/container/type` (container scope, the default), `cluster/namespace/pod/type`
    (pod scope) or `cluster/namespace/workload:<name>/type` (workload scope: all replicas are one);
    a node's condition trouble is `cluster/node:<name>/type` whatever the scope.

    Kubernetes names cannot contain "/", so the parts cannot run into each other. A Kubernetes Event
    about a container yields the same key as the pod status showing the same trouble. A `recovered`
    finding's key is the key of the trouble it ends (`Finding.resolves`).
    """
    event_type = finding.resolves or finding.event_type
    if isinstance(envelope, ObjectEnvelope):  # a node's condition: one incident per node, any scope
        return f"{envelope.cluster_id}/node:{envelope.payload.name}/{event_type}"
    namespace, pod = subject_of(envelope)
    prefix = f"{envelope.cluster_id}/{namespace}"
    if scope == "workload":
        return f"{prefix}/workload:{workload_name_for(envelope)}/{event_type}"
    if scope == "pod":
        return f"{prefix}/{pod}/{event_type}"
    return f"{prefix}/{pod}/{finding.container or NO_CONTAINER}/{event_type}"


# --------------------------------------------------------------------------- stored items


@dataclass(frozen=True, slots=True)
class _StoredIncident:
    """A dedup item as DynamoDB answered it (a failed condition's old item, or the updated one)."""

    event_id: str | None
    expires_at: int
    opened_at: int | None
    state: str
    count: int
    pods: tuple[str, ...]
    unlisted: int
    recovered: frozenset[str]
    resolved_by: str | None

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> _StoredIncident | None:
        if not raw:
            return None
        return cls(
            event_id=raw.get("event_id", {}).get("S"),
            expires_at=int(raw.get("expires_at", {}).get("N", "0")),
            opened_at=int(raw["opened_at"]["N"]) if "opened_at" in raw else None,
            state=raw.get("state", {}).get("S", FIRING),
            count=int(raw.get("count", {}).get("N", "1")),
            pods=tuple(sorted(raw.get("pods", {}).get("SS", ()))),
            unlisted=int(raw.get("unlisted", {}).get("N", "0")),
            recovered=frozenset(raw.get("recovered", {}).get("SS", ())),
            resolved_by=raw.get("resolved_by", {}).get("S"),
        )

    def firing_at(self, now_s: int) -> bool:
        return self.expires_at >= now_s and self.state != RESOLVED

    def outcome(self, claim: Claim) -> Outcome:
        return Outcome(claim, self.count, self.pods, self.unlisted, self.opened_at)


class DedupStore:
    """Conditional writes on the dedup table. `client` is a boto3 DynamoDB client."""

    def __init__(self, *, table_name: str, client: Any, hint_capacity: int = HINT_CAPACITY) -> None:
        self.table_name = table_name
        self._client = client
        self._hint_capacity = hint_capacity
        #: key → (event_id that opened the window, expires_at): which write to try first
        self._hints: OrderedDict[str, tuple[str, int]] = OrderedDict()

    # ------------------------------------------------------------------ trouble

    def claim(
        self,
        key: str,
        event_id: str,
        cooldown_s: int,
        now: datetime,
        *,
        pod: str | None = None,
        received_at: datetime | None = None,
    ) -> Outcome:
        """Open the incident of `key`, fold this event into it, or recognise a retry of its opener.

        `now` is the event's time (`window_time`); `received_at`, the processor's clock: the TTL
        (`purge_at`) counts from the later of the two, so an old observation is not purged early.

        Raises TransientError when DynamoDB cannot answer (throttling, network, service errors) or
        the key stays contended for MAX_ATTEMPTS writes.
        """
        now_s = int(now.timestamp())
        purge_from = max(now_s, int(received_at.timestamp())) if received_at is not None else now_s
        hint = self._hints.get(key)
        repeat_first = hint is not None and hint[1] >= now_s and hint[0] != event_id
        listed = pod is not None
        for _ in range(MAX_ATTEMPTS):
            if repeat_first:
                ok, old = self._repeat(key, event_id, now_s, pod if listed else None)
                if ok:
                    return Outcome(Claim.DUPLICATE)
                if old is not None and old.firing_at(now_s):
                    if old.event_id == event_id:
                        return old.outcome(Claim.SAME_EVENT)
                    # Open and another event's: only the pod list can have refused the write.
                    listed = listed and not (len(old.pods) >= MAX_AFFECTED_PODS and pod not in old.pods)
                    continue
                self._hints.pop(key, None)
                repeat_first = False
                continue
            ok, old = self._open(key, event_id, now_s, cooldown_s, pod, purge_from=purge_from)
            if ok:
                self._remember(key, event_id, now_s + cooldown_s)
                return Outcome(Claim.OPENED, 1, (pod,) if pod else (), 0, now_s)
            if old is not None and old.firing_at(now_s) and old.event_id is not None:
                self._remember(key, old.event_id, old.expires_at)
            if old is not None and old.event_id == event_id:
                return old.outcome(Claim.SAME_EVENT)  # its opener again: in its window or after
            repeat_first = True
        raise TransientError(
            f"dedup claim of {key!r} still contended after {MAX_ATTEMPTS} writes", reason="dedup_contended"
        )

    def _open(
        self, key: str, event_id: str, now_s: int, cooldown_s: int, pod: str | None, *, purge_from: int
    ) -> tuple[bool, _StoredIncident | None]:
        values: dict[str, Any] = {
            ":eid": {"S": event_id},
            ":exp": {"N": str(now_s + cooldown_s)},
            ":purge": {"N": str(purge_from + cooldown_s + INCIDENT_RETENTION_S)},
            ":now": {"N": str(now_s)},
            ":firing": _FIRING_S,
            ":resolved": _RESOLVED_S,
            ":one": _ONE_N,
        }
        if pod:
            values[":podset"] = {"SS": [pod]}
        return self._write(
            "update_item",
            key,
            Key={"pk": {"S": key}},
            UpdateExpression=_OPEN_WITH_POD if pod else _OPEN_WITHOUT_POD,
            ConditionExpression=OPEN_CONDITION,
            ExpressionAttributeNames=_COUNT_STATE_NAMES,
            ExpressionAttributeValues=values,
        )

    def _repeat(
        self, key: str, event_id: str, now_s: int, pod: str | None
    ) -> tuple[bool, _StoredIncident | None]:
        if pod is not None:
            podset = {"SS": [pod]}
            values: dict[str, Any] = {
                ":now": {"N": str(now_s)},
                ":eid": {"S": event_id},
                ":firing": _FIRING_S,
                ":one": _ONE_N,
                ":podset": podset,
                ":pod": {"S": pod},
                ":max": _MAX_PODS_N,
            }
            update, condition = _REPEAT_LISTED_UPDATE, _REPEAT_LISTED_CONDITION
        else:
            values = {
                ":now": {"N": str(now_s)},
                ":eid": {"S": event_id},
                ":firing": _FIRING_S,
                ":one": _ONE_N,
            }
            update, condition = _REPEAT_UNLISTED_UPDATE, REPEAT_CONDITION
        return self._write(
            "update_item",
            key,
            Key={"pk": {"S": key}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=_COUNT_STATE_NAMES,
            ExpressionAttributeValues=values,
        )

    # ------------------------------------------------------------------ recovery

    def resolve(self, key: str, event_id: str, now: datetime, *, pod: str, workload: bool = False) -> Outcome:
        """Resolve the open incident of `key` (a `recovered` event), see the module docstring."""
        now_s = int(now.timestamp())
        names = {"#st": "state"}
        values: dict[str, Any] = {
            ":now": {"N": str(now_s)},
            ":firing": {"S": FIRING},
            ":eid": {"S": event_id},
        }
        if workload:
            values |= {":podset": {"SS": [pod]}, ":pod": {"S": pod}}
            ok, item = self._write(
                "update_item",
                key,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD recovered :podset",
                ConditionExpression=f"{RESOLVE_CONDITION} AND contains(pods, :pod)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
            if not ok:
                return self._not_resolved(item, event_id)
            assert item is not None  # ALL_NEW of a successful update
            if not set(item.pods) <= item.recovered:
                return item.outcome(Claim.PARTIAL_RECOVERY)
            values = {
                ":firing": {"S": FIRING},
                ":n": {"N": str(len(item.pods))},
                ":nr": {"N": str(len(item.recovered))},
            }
            condition = f"{_IS_FIRING} AND size(pods) = :n AND size(recovered) = :nr"
        else:
            condition = RESOLVE_CONDITION
        values |= {":resolved": {"S": RESOLVED}, ":at": {"N": str(now_s)}, ":eid": {"S": event_id}}
        ok, item = self._write(
            "update_item",
            key,
            Key={"pk": {"S": key}},
            UpdateExpression="SET #st = :resolved, resolved_at = :at, resolved_by = :eid",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        if ok:
            assert item is not None
            self._hints.pop(key, None)
            return item.outcome(Claim.RESOLVED)
        if workload and item is not None and item.state != RESOLVED:
            return item.outcome(Claim.PARTIAL_RECOVERY)  # a replica got into trouble meanwhile
        return self._not_resolved(item, event_id)

    @staticmethod
    def _not_resolved(old: _StoredIncident | None, event_id: str) -> Outcome:
        if old is not None and old.resolved_by == event_id:
            # a retry of the event that resolved the incident (or the one before a newer incident:
            # its notification is sent again, as the retry of the record may be for a failed send)
            return old.outcome(Claim.SAME_EVENT)
        return Outcome(Claim.NO_INCIDENT, count=0)

    # ------------------------------------------------------------------ plumbing

    def _write(self, operation: str, key: str, **request: Any) -> tuple[bool, _StoredIncident | None]:
        """(True, new item if asked) or (False, the stored item) when the condition failed."""
        try:
            answer = getattr(self._client, operation)(
                TableName=self.table_name, ReturnValuesOnConditionCheckFailure="ALL_OLD", **request
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                return False, _StoredIncident.of(exc.response.get("Item"))
            raise TransientError(
                f"dedup {operation} of {key!r} failed: {code or exc}", reason="dedup_unavailable"
            ) from exc
        except BotoCoreError as exc:
            raise TransientError(
                f"dedup {operation} of {key!r} failed: {exc}", reason="dedup_unavailable"
            ) from exc
        return True, _StoredIncident.of(answer.get("Attributes"))

    def _remember(self, key: str, event_id: str, expires_at: int) -> None:
        self._hints[key] = (event_id, expires_at)
        self._hints.move_to_end(key)
        while len(self._hints) > self._hint_capacity:
            self._hints.popitem(last=False)
