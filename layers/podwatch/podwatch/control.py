"""The relay's control messages: enroll and heartbeat (processor side), and the enroll command the
deliver function turns into a Restate `Enroll` call.

    processor                                          deliver
    enroll ──▶ ClusterRegistry.touch (last seen) ──▶ version already enrolled? ── yes: done
                                                        │ no
                                                        ▼
                         EnrollCommand ──▶ deliveries queue ──▶ RestateClient.enroll (key = cluster +
                         then mark the version enrolled         relay version; breaker, retries, DLQ)
    heartbeat ─▶ ClusterRegistry.touch (last seen, sequence, pods tracked)

Why through the deliveries queue and not a Restate call from the processor: one function talks to
the manager, with one breaker, one token, one retry policy and one DLQ; the processor needs no
Restate settings; an outage of the manager never holds pod events back.

Why the registry: a relay enrolls at every start (rollouts, evictions, crash loops of the relay
itself). The cluster's item in the clusters table (`pk` = cluster id) lists the relay versions
already forwarded (`enrolled_versions`), so `Enroll` is called once per cluster and relay version
however often the relay restarts. The version is marked *after* SQS took the command: a crash in
between forwards it again, which Restate's idempotency key (cluster + version) and the manager
(idempotent per version) absorb. The item also carries `last_seen_at` (epoch s of the newest
enroll or heartbeat, by the relay's `sent_at`), so config-sync can tell a cluster whose heartbeats
stopped (metric `ClustersSilent`, `HeartbeatAgeSeconds`). Items expire `ttl_seconds` after the
last message (TTL attribute `expires_at`); an expired cluster simply enrolls again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from podwatch import wire
from podwatch.errors import MalformedMessage, TransientError
from podwatch.models import EnrollEnvelope, EnrollRequest, HeartbeatEnvelope

log = logging.getLogger(__name__)

#: A cluster item lives this long after its last enroll or heartbeat.
DEFAULT_TTL_SECONDS = 30 * 24 * 3600
#: SQS message attribute that marks a control command on the deliveries queue.
KIND_ATTRIBUTE = "kind"


class EnrollCommand(BaseModel):
    """Deliveries-queue body asking the deliver function to call `Enroll` (next to `Notification`s)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # built on first use

    kind: Literal["enroll"] = "enroll"
    request: EnrollRequest


def parse_command(body: str) -> EnrollCommand | None:
    """The control command in a deliveries-queue body, None for anything else (a Notification);
    MalformedMessage for a body that is not JSON, or says it is a command but is not a valid one."""
    if '"kind"' not in body:  # a Notification has no `kind`: skip the JSON parse
        return None
    raw = wire.loads(body)
    if not isinstance(raw, dict) or "kind" not in raw:
        return None
    try:
        return EnrollCommand.model_validate(raw)
    except ValidationError as exc:
        raise MalformedMessage(f"not a valid control command: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ClusterSeen:
    """What the registry knew of a cluster before this message."""

    enrolled_versions: frozenset[str]
    last_seen_at: float | None


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


@dataclass(frozen=True, slots=True)
class ClusterRegistry:
    """The clusters table (`pk` = cluster id, TTL `expires_at`)."""

    table_name: str
    #: boto3 DynamoDB client
    client: Any
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    def touch(
        self,
        cluster_id: str,
        seen_at: datetime,
        *,
        kind: str,
        relay_version: str,
        fields: dict[str, Any] | None = None,
    ) -> ClusterSeen:
        """Record a message of the cluster's relay sent at `seen_at`; what was known before.

        Only a message newer than the newest one recorded moves `last_seen_at` (messages arrive out
        of order); an older one changes nothing and still answers what is known."""
        at = _epoch(seen_at)
        names = {"#seen": "last_seen_at", "#kind": "last_kind", "#ver": "relay_version", "#exp": "expires_at"}
        values: dict[str, Any] = {
            ":at": {"N": str(at)},
            ":kind": {"S": kind},
            ":ver": {"S": relay_version},
            ":exp": {"N": str(at + self.ttl_seconds)},
        }
        sets = ["#seen = :at", "#kind = :kind", "#ver = :ver", "#exp = :exp"]
        for i, (name, value) in enumerate(sorted((fields or {}).items())):
            if value is None:
                continue
            names[f"#f{i}"] = name
            values[f":f{i}"] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)}
            sets.append(f"#f{i} = :f{i}")
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": cluster_id}},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_not_exists(#seen) OR #seen <= :at",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise TransientError(f"cannot record cluster {cluster_id}: {exc}", reason="registry") from exc
            return _seen(exc.response.get("Item"))
        except BotoCoreError as exc:
            raise TransientError(f"cannot record cluster {cluster_id}: {exc}", reason="registry") from exc
        return _seen(answer.get("Attributes"))

    def mark_enrolled(self, cluster_id: str, relay_version: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": cluster_id}},
                UpdateExpression="ADD enrolled_versions :v",
                ExpressionAttributeValues={":v": {"SS": [relay_version]}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                f"cannot mark cluster {cluster_id} enrolled: {exc}", reason="registry"
            ) from exc

    def clusters(self) -> dict[str, float]:
        """Every cluster in the table → last_seen_at (epoch s). One item per cluster: a small scan."""
        out: dict[str, float] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "ProjectionExpression": "pk, last_seen_at",
        }
        try:
            while True:
                page = self.client.scan(**kwargs)
                for item in page.get("Items", []):
                    seen = item.get("last_seen_at", {}).get("N")
                    out[item["pk"]["S"]] = float(seen) if seen is not None else 0.0
                if "LastEvaluatedKey" not in page:
                    return out
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"cannot list clusters: {exc}", reason="registry") from exc


def _seen(item: dict[str, Any] | None) -> ClusterSeen:
    if not item:
        return ClusterSeen(frozenset(), None)
    versions = frozenset(item.get("enrolled_versions", {}).get("SS", []))
    seen = item.get("last_seen_at", {}).get("N")
    return ClusterSeen(versions, float(seen) if seen is not None else None)


@dataclass(frozen=True, slots=True)
class ControlHandler:
    """The processor's side of enroll and heartbeat messages."""

    registry: ClusterRegistry
    #: boto3 SQS client
    sqs: Any
    deliveries_queue_url: str

    def handle(self, envelope: EnrollEnvelope | HeartbeatEnvelope, now: datetime) -> str:
        """Record the message; forward an enroll the manager has not had. Returns what was done
        (`enroll_forwarded`, `enroll_known`, `heartbeat`). TransientError when AWS fails (retried)."""
        seen_at = min(envelope.sent_at, now)
        if isinstance(envelope, HeartbeatEnvelope):
            self.registry.touch(
                envelope.cluster_id,
                seen_at,
                kind="heartbeat",
                relay_version=envelope.relay_version,
                fields={
                    "heartbeat_sequence": envelope.payload.sequence,
                    "pods_tracked": envelope.payload.pods_tracked,
                },
            )
            return "heartbeat"
        payload = envelope.payload
        before = self.registry.touch(
            envelope.cluster_id,
            seen_at,
            kind="enroll",
            relay_version=payload.relay_version,
            fields={"relay_started_at": payload.started_at.isoformat()},
        )
        if payload.relay_version in before.enrolled_versions:
            log.info(
                "relay restarted; its version is already enrolled",
                extra={"cluster_id": envelope.cluster_id, "relay_version": payload.relay_version},
            )
            return "enroll_known"
        command = EnrollCommand(
            request=EnrollRequest(
                cluster_id=envelope.cluster_id,
                relay_version=payload.relay_version,
                namespaces=payload.namespaces,
                started_at=payload.started_at,
                kubernetes_version=payload.kubernetes_version,
            )
        )
        try:
            self.sqs.send_message(
                QueueUrl=self.deliveries_queue_url,
                MessageBody=command.model_dump_json(),
                MessageAttributes={KIND_ATTRIBUTE: {"DataType": "String", "StringValue": "enroll"}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                f"cannot forward the enrollment of {envelope.cluster_id}: {exc}", reason="forward_failed"
            ) from exc
        self.registry.mark_enrolled(envelope.cluster_id, payload.relay_version)
        log.info(
            "enrollment forwarded",
            extra={"cluster_id": envelope.cluster_id, "relay_version": payload.relay_version},
        )
        return "enroll_forwarded"
