"""The pod metadata table: who a pod belongs to, for later lookup (GetMetadata(pod) → project, workload).

Kubernetes Events carry no labels or owners; the pod's own events do. The processor writes what it
learnt from a pod event, keyed by pod, and reads it back for an Event about that pod:

    pk             S   cluster/namespace/pod
    pod_uid        S
    project_id     S   from the label RemoteConfig.project_label_key (absent when unlabelled)
    workload_id    S   from the label RemoteConfig.workload_label_key
    workload_kind  S   Deployment, StatefulSet, DaemonSet, CronJob, Job, ... (absent for a bare pod)
    workload_name  S
    node           S
    fingerprint    S   sha256 of the fields above: what "changed" means
    updated_at     N   epoch seconds of the write
    expires_at     N   TTL: updated_at + METADATA_TTL_SECONDS (a pod's row outlives the pod a while)

A write per event would double the processor's AWS calls, so a pod is written only when its
enrichment is news to this process: a pod it has not written yet (an ADDED pod, a cold start), a
fingerprint that changed (labels, owners, node), or a last write older than the refresh interval
(the dedup cooldown, at least a minute). DELETED pods are not
written (the row expires). Writes and reads are best effort: a failure is logged and counted, never
fails the record — the alert matters more than the lookup row.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from podwatch.models import PodEvent, RemoteConfig
from podwatch.workload import workload_of

log = logging.getLogger(__name__)

#: how long a pod's row lives after its last write
METADATA_TTL_SECONDS = 7 * 24 * 3600
#: pods remembered per process; the oldest are forgotten first
CACHE_CAPACITY = 20_000
_FIELDS = ("pod_uid", "project_id", "workload_id", "workload_kind", "workload_name", "node")


def metadata_key(cluster_id: str, namespace: str, pod: str) -> str:
    return f"{cluster_id}/{namespace}/{pod}"


class PodMetadata(NamedTuple):
    """A pod's row (a NamedTuple: one is made per pod event, and compared with the cached one)."""

    cluster_id: str
    namespace: str
    pod: str
    pod_uid: str | None = None
    project_id: str | None = None
    workload_id: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    node: str | None = None

    @classmethod
    def of_pod(cls, cluster_id: str, pod: PodEvent, config: RemoteConfig) -> PodMetadata:
        workload = workload_of(pod)
        return cls(
            cluster_id=cluster_id,
            namespace=pod.namespace,
            pod=pod.name,
            pod_uid=pod.uid,
            project_id=pod.labels.get(config.project_label_key),
            workload_id=pod.labels.get(config.workload_label_key),
            workload_kind=workload.kind if workload else None,
            workload_name=workload.name if workload else None,
            node=pod.node,
        )

    @property
    def key(self) -> str:
        return metadata_key(self.cluster_id, self.namespace, self.pod)

    def fingerprint(self) -> str:
        text = "\x1f".join(getattr(self, f) or "" for f in _FIELDS)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


class MetadataStore:
    """The metadata table. `client` is a boto3 DynamoDB client."""

    def __init__(self, *, table_name: str, client: Any, cache_capacity: int = CACHE_CAPACITY) -> None:
        self.table_name = table_name
        self._client = client
        self._capacity = cache_capacity
        #: key → (metadata, fingerprint written, when written; 0 = read, never written here)
        self._cache: OrderedDict[str, tuple[PodMetadata, str, int]] = OrderedDict()
        #: writes and reads that failed since the last `take_failures` (a metric)
        self.failures = 0

    def remember(self, metadata: PodMetadata, now: datetime, *, refresh_s: int = 900) -> bool:
        """Write the pod's row if it is news (see the module docstring); True if a write was made."""
        now_s = int(now.timestamp())
        cached = self._cache.get(metadata.key)
        if (
            cached is not None
            and cached[2] > 0
            and now_s - cached[2] < max(refresh_s, 60)
            and (cached[0] == metadata or cached[1] == metadata.fingerprint())
        ):
            return False  # the same row, written recently (equal fields: equal fingerprint, unhashed)
        fingerprint = metadata.fingerprint()
        item: dict[str, Any] = {
            "pk": {"S": metadata.key},
            "fingerprint": {"S": fingerprint},
            "updated_at": {"N": str(now_s)},
            "expires_at": {"N": str(now_s + METADATA_TTL_SECONDS)},
        }
        for name in _FIELDS:
            value = getattr(metadata, name)
            if value:
                item[name] = {"S": value}
        try:
            self._client.put_item(TableName=self.table_name, Item=item)
        except (ClientError, BotoCoreError) as exc:
            self.failures += 1
            log.warning("pod metadata write failed", extra={"pod": metadata.key, "error": str(exc)})
            return False
        self._put(metadata, fingerprint, now_s)
        return True

    def get_metadata(self, cluster_id: str, namespace: str, pod: str) -> PodMetadata | None:
        """The pod's row (this process's copy first); None if unknown, expired or unreadable."""
        key = metadata_key(cluster_id, namespace, pod)
        cached = self._cache.get(key)
        if cached is not None:
            return cached[0]
        try:
            answer = self._client.get_item(TableName=self.table_name, Key={"pk": {"S": key}})
        except (ClientError, BotoCoreError) as exc:
            self.failures += 1
            log.warning("pod metadata read failed", extra={"pod": key, "error": str(exc)})
            return None
        item = answer.get("Item")
        if not item or int(item.get("expires_at", {}).get("N", "0")) < _now_s():
            return None
        metadata = PodMetadata(
            cluster_id=cluster_id,
            namespace=namespace,
            pod=pod,
            **{name: item[name]["S"] for name in _FIELDS if name in item},
        )
        self._put(metadata, item.get("fingerprint", {}).get("S", ""), 0)
        return metadata

    def take_failures(self) -> int:
        failures, self.failures = self.failures, 0
        return failures

    def _put(self, metadata: PodMetadata, fingerprint: str, written_at: int) -> None:
        self._cache[metadata.key] = (metadata, fingerprint, written_at)
        self._cache.move_to_end(metadata.key)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)


def _now_s() -> int:
    return int(time.time())
