"""Dedup: what counts as a repeat of the same trouble inside the cooldown (DynamoDB, TTL).

A dedup key names *what* the trouble is; the event_id names *which* observation of it. One item per
key holds the event_id that opened the current window:

    pk          S   the dedup key
    event_id    S   the event that opened the window
    expires_at  N   epoch seconds when the window closes (also the table's TTL attribute)
    opened_at   N   epoch seconds when the window opened
    count       N   1 when opened (repeats are not counted yet)

A claim is one conditional PutItem:

    attribute_not_exists(pk) OR expires_at < :now OR event_id = :eid

* no item, or an expired one (TTL deletes up to days late, so the condition compares the expiry
  itself): the window opens → `Claim.OPENED`;
* an open window whose event_id is this event's (a Lambda/SQS retry of the same message): passes
  → `Claim.SAME_EVENT`, so a retry is never mistaken for a duplicate of itself;
* an open window opened by another event: ConditionalCheckFailed → `Claim.DUPLICATE`.

DynamoDB serialises conditional writes on one key, so concurrent invocations racing on a key let
exactly one event through.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from podwatch.classify import Finding
from podwatch.enrich import subject_of, workload_name_for
from podwatch.errors import TransientError
from podwatch.models import KubeEventEnvelope, PodEnvelope

DedupScope = Literal["container", "pod", "workload"]

CONDITION = "attribute_not_exists(pk) OR expires_at < :now OR event_id = :eid"
#: placeholder for "no container" in container-scoped keys (cannot be a container name: no dash-only names)
NO_CONTAINER = "-"


class Claim(StrEnum):
    OPENED = "opened"
    SAME_EVENT = "same_event"
    DUPLICATE = "duplicate"


def dedup_key(
    finding: Finding, envelope: PodEnvelope | KubeEventEnvelope, scope: DedupScope = "container"
) -> str:
    """`cluster/namespace/pod/container/type` (container scope, the default), `cluster/namespace/pod/type`
    (pod scope) or `cluster/namespace/workload:<name>/type` (workload scope: all replicas are one).

    Kubernetes names cannot contain "/", so the parts cannot run into each other. A Kubernetes Event
    about a container yields the same key as the pod status showing the same trouble.
    """
    namespace, pod = subject_of(envelope)
    prefix = f"{envelope.cluster_id}/{namespace}"
    if scope == "workload":
        return f"{prefix}/workload:{workload_name_for(envelope)}/{finding.event_type}"
    if scope == "pod":
        return f"{prefix}/{pod}/{finding.event_type}"
    return f"{prefix}/{pod}/{finding.container or NO_CONTAINER}/{finding.event_type}"


class DedupStore:
    """Conditional writes on the dedup table. `client` is a boto3 DynamoDB client."""

    def __init__(self, *, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self._client = client

    def claim(self, key: str, event_id: str, cooldown_s: int, now: datetime) -> Claim:
        """Open (or re-enter, for the same event) the window of `key`, or report a duplicate.

        Raises TransientError when DynamoDB cannot answer (throttling, network, service errors).
        """
        now_s = int(now.timestamp())
        try:
            answer = self._client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": key},
                    "event_id": {"S": event_id},
                    "expires_at": {"N": str(now_s + cooldown_s)},
                    "opened_at": {"N": str(now_s)},
                    "count": {"N": "1"},
                },
                ConditionExpression=CONDITION,
                ExpressionAttributeValues={":now": {"N": str(now_s)}, ":eid": {"S": event_id}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                return Claim.DUPLICATE
            raise TransientError(
                f"dedup claim of {key!r} failed: {code or exc}", reason="dedup_unavailable"
            ) from exc
        except BotoCoreError as exc:
            raise TransientError(f"dedup claim of {key!r} failed: {exc}", reason="dedup_unavailable") from exc
        old = answer.get("Attributes") or {}
        old_event = old.get("event_id", {}).get("S")
        old_expiry = int(old.get("expires_at", {}).get("N", "0"))
        if old_event == event_id and old_expiry >= now_s:
            return Claim.SAME_EVENT
        return Claim.OPENED
