"""Relay settings, read once at start from `PODWATCH_*` environment variables (or passed in)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from podwatch.models import MAX_MESSAGE_BYTES
from podwatch_relay.kinds import BUILTIN, KindError, KindSpec, check_kinds

#: The chart's default list of kinds (relay.kinds): close to what the watch event service watched.
CHART_KINDS = (
    "Pod,Event,Node,Namespace,Deployment,ReplicaSet,StatefulSet,DaemonSet,Job,CronJob,Service,Ingress,"
    "ConfigMap,PersistentVolumeClaim,PersistentVolume,HorizontalPodAutoscaler,PodDisruptionBudget"
)

#: SendMessageBatch accepts at most 256 KiB for the whole request. The margin covers what SQS
#: counts besides our bodies (entry ids, attributes we may add) so a full batch is never refused.
DEFAULT_MAX_BATCH_BYTES = MAX_MESSAGE_BYTES - 8 * 1024


class RelaySettings(BaseSettings):
    """Everything the relay can be told. Frozen: validated once, then read everywhere."""

    model_config = SettingsConfigDict(
        env_prefix="PODWATCH_", frozen=True, extra="ignore", use_attribute_docstrings=True
    )

    queue_url: str | None = None
    """The pod-events queue. Required to send; replay can write to a file instead (`--output`)."""

    cluster_id: str | None = Field(default=None, min_length=1, max_length=128)
    """Names this cluster in every envelope. Unset: the kube-system namespace uid in watch mode
    (stable for the cluster's life, survives relay restarts), `local` in replay mode."""

    namespaces: str = "*"
    """`*` for all namespaces (one cluster-wide stream per resource), or a comma list of namespaces
    (one stream each). Narrow it when RBAC only grants some namespaces."""

    namespace_selector: str | None = Field(default=None, min_length=1, max_length=1024)
    """A label selector (`team=shop,tier!=dev`): watch only namespaces carrying these labels,
    discovered dynamically: watchers start and stop as namespaces are created, deleted, labelled
    or unlabelled. Needs list/watch on namespaces. Exclusive with a fixed `namespaces` list."""

    label_keys: str = Field(default="project-id,workload-id", max_length=4096)
    """Pod label keys forwarded besides the well-known ones (`app`, `k8s-app`, `app.kubernetes.io/*`,
    `pod-template-hash`, ...: relay/README.md): name the keys the remote config takes the project and
    workload ids from (`project_label_key`, `workload_label_key`). A comma list; every other label
    stays in the cluster and is only counted (`labels_omitted`)."""

    kinds: str = Field(default="Pod,Event", max_length=4096)
    """Kinds watched for the history (a comma list; `Pod` and `Event`, the pod path, are always
    watched): each other kind forwarded as history-only `object` records, projected by its
    allow-list (relay/README.md). `Secret` is refused, whatever else is listed; an unknown kind
    too. The chart sets the full list (`CHART_KINDS`); unset, a bare relay forwards pods and
    their Events only, as before the cloud side took other kinds."""

    custom_resource_groups: str = Field(default="", max_length=4096)
    """API groups of custom resources to watch for the history (a comma list, `fnmatch` wildcards:
    `*.example.com`); none by default. The relay watches CustomResourceDefinitions and starts and
    stops a watcher per matching CRD as they come and go. Of a custom resource only its metadata
    and status conditions/phase are forwarded, never its spec."""

    watch_hooks: bool = False
    """Watch khook `Hook` objects (hooks.kagent.dev) and forward them as hook rules (`hook`
    envelopes), so `kubectl apply -f hook.yaml` works as with khook. Started only when the CRD
    exists (and when it appears). Needs read access to hooks.kagent.dev and CRDs."""

    initial_sync_mode: Literal["all", "troubled"] = "all"
    """What the list at start (and every relist) forwards for pods and objects of other kinds the
    relay has not seen: `all`, or only those already in trouble (a pod: `state.payload_troubled`;
    an object: `kinds.object_troubled`), so restarting the relay on a big cluster does not flood.
    Hook rules always go out; a later change of anything held back goes out as usual."""

    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """Client-side timeout of every non-streaming API call (list, read) and of connecting. The
    server's own timeouts do not protect against a dead connection."""

    watch_timeout_seconds: int = Field(default=300, ge=1, le=3600)
    """`timeoutSeconds` asked of the API server for each watch: it ends the stream cleanly, and the
    relay resumes from the last resourceVersion. Shorter spreads reconnects; longer costs less."""

    inactivity_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    """A watch stream silent this long is presumed dead and reconnected (client-side read timeout).
    Bookmarks arrive about once a minute, so this must stay well above 60 s on a real cluster."""

    reconnect_backoff_seconds: float = Field(default=0.5, gt=0, le=60)
    """First delay before reconnecting after an error; doubles per consecutive failure, jittered."""

    reconnect_backoff_max_seconds: float = Field(default=30.0, gt=0, le=600)
    """Cap of the reconnect delay: a long API outage is retried at this pace, not given up on."""

    list_page_size: int = Field(default=500, ge=1, le=10_000)
    """`limit` of each list page: bounds the memory of one list response on a big cluster."""

    flush_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """Watch mode: how long a forwarded envelope may wait for its batch to fill before it is sent.
    Latency of a notification vs. number of SendMessageBatch calls."""

    sqs_batch_size: int = Field(default=10, ge=1, le=10)
    """Envelopes per SendMessageBatch (SQS allows at most 10)."""

    sqs_max_batch_bytes: int = Field(default=DEFAULT_MAX_BATCH_BYTES, ge=1024, le=MAX_MESSAGE_BYTES)
    """Bytes of bodies per SendMessageBatch; SQS refuses requests over 256 KiB in total."""

    sqs_max_attempts: int = Field(default=5, ge=1, le=20)
    """SendMessageBatch attempts for entries that failed transiently, before the sink gives up
    and hands the rest back (`SinkUnavailable`)."""

    sqs_backoff_seconds: float = Field(default=0.2, gt=0, le=10)
    """First delay between SQS attempts; doubles per attempt, jittered (throttling needs room)."""

    sqs_backoff_max_seconds: float = Field(default=5.0, gt=0, le=60)
    """Cap of the SQS retry delay."""

    sqs_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    """Connecting to the SQS endpoint; short, because a retry is cheap."""

    sqs_read_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Waiting for SQS's answer to one SendMessageBatch."""

    buffer_size: int = Field(default=10_000, ge=10, le=1_000_000)
    """Envelopes held in memory waiting for SQS. When full, the watch threads wait
    (backpressure) for `backpressure_timeout_seconds`, then spill to the spool."""

    backpressure_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    """How long a watch waits for room in the full buffer before the envelope goes to the spool
    (SQS is presumed down rather than slow)."""

    spool_dir: str | None = None
    """Directory of the disk spool (a volume that survives restarts, ideally). Unset: no spool,
    a full buffer blocks the watch until SQS takes envelopes again (the API server's stream waits,
    and may eventually expire into a relist)."""

    spool_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024)
    """Cap of the spool on disk; beyond it envelopes are dropped (counted, reason `spool_full`)."""

    checkpoint_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    """With a spool: how often the checkpoint (what was last forwarded: pod states, Event counts, in
    `<spool_dir>/checkpoints`) is rewritten when something changed; also at a clean stop. A
    restarted relay diffs its first list against it, so it reports what changed and vanished while
    it was down. Older means more duplicates after a crash, never a loss: it is written only once
    what it describes was sent or spooled."""

    shutdown_grace_seconds: float = Field(default=20.0, gt=0, le=600)
    """On SIGTERM: time to send what is buffered before exiting (what is left is spooled). Keep it
    below the pod's terminationGracePeriodSeconds (30 s by default)."""

    pending_too_long_seconds: int = Field(default=600, ge=0, le=7 * 24 * 3600)
    """A pod still Pending this long after its creation is forwarded again even if nothing about it
    changes, so the processor can call it `pending-too-long` (0: never). Keep it equal to the remote
    config's `pending_too_long_seconds`: the relay decides when to look again, the processor whether
    it is trouble."""

    not_ready_too_long_seconds: int = Field(default=900, ge=0, le=7 * 24 * 3600)
    """A Running pod whose Ready condition has been False this long is forwarded again (for
    `not-ready-too-long`; 0: never). Keep it equal to the remote config's value."""

    look_again_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    """How often the relay looks for waiting pods whose threshold passed (the timer's period)."""

    heartbeat_interval_seconds: float = Field(default=60.0, gt=0, le=3600)
    """Period of the HeartbeatEnvelope that tells the cloud side this relay is alive."""

    http_port: int = Field(default=8080, ge=0, le=65535)
    """Port of `/metrics`, `/healthz` and `/readyz` (0: any free port, for tests)."""

    health_stall_seconds: float = Field(default=300.0, gt=0, le=86_400)
    """`/healthz` fails when a watcher has received nothing (no event, no bookmark, no list) for
    this long. Must exceed `inactivity_timeout_seconds` plus a reconnect backoff."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Level of the JSON logs on stderr."""

    leader_election: bool = False
    """Elect one forwarding replica on a `coordination.k8s.io/v1` Lease. The others are warm
    standbys: they list and watch too, but forward nothing until they take the lease over. Off by
    default (one process, no Lease RBAC needed); the chart turns it on for its replicas."""

    lease_name: str = Field(
        default="podwatch-relay", min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    """Name of the election Lease; every replica of one relay must use the same."""

    lease_namespace: str | None = Field(default=None, min_length=1, max_length=63)
    """Namespace of the Lease. Unset: the pod's own namespace (service account), else the
    kubeconfig context's namespace, else `default`."""

    lease_identity: str | None = Field(default=None, min_length=1, max_length=240)
    """This candidate's name (the pod name, from the downward API; unset: the hostname). Its
    `holderIdentity` adds a random suffix per process (`<name>_<random>`), so a container restarted
    in its pod never takes its dead predecessor's lease for its own."""

    lease_duration_seconds: int = Field(default=15, gt=0)
    """How long a lease stays valid without renewal: after a leader dies, a standby takes over
    within about this long. Must exceed `renew_deadline_seconds`."""

    renew_deadline_seconds: float = Field(default=10.0, gt=0)
    """A leader that could not renew its lease for this long stops forwarding and exits (so it
    stops before any standby may take over). Must exceed 1.2 x `retry_period_seconds`."""

    retry_period_seconds: float = Field(default=2.0, gt=0)
    """Interval between renewals (leader) and acquisition attempts (standby, jittered up to
    1.2 x): a released lease is taken over within about this long."""

    @field_validator("namespaces")
    @classmethod
    def _clean_namespaces(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        if not names:
            raise ValueError("namespaces must be '*' or a comma-separated list of namespaces")
        if "*" in names:
            if len(names) > 1:
                raise ValueError("namespaces '*' cannot be combined with named namespaces")
            return "*"
        return ",".join(dict.fromkeys(names))

    @field_validator("kinds")
    @classmethod
    def _check_kinds(cls, value: str) -> str:
        try:
            return ",".join(check_kinds(k.strip() for k in value.split(",") if k.strip()))
        except KindError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _check_backoff(self) -> RelaySettings:
        if self.reconnect_backoff_max_seconds < self.reconnect_backoff_seconds:
            raise ValueError("reconnect_backoff_max_seconds must be >= reconnect_backoff_seconds")
        if self.sqs_backoff_max_seconds < self.sqs_backoff_seconds:
            raise ValueError("sqs_backoff_max_seconds must be >= sqs_backoff_seconds")
        if self.namespace_selector is not None and self.namespaces != "*":
            raise ValueError("namespace_selector and a fixed namespaces list cannot be combined")
        if not self.lease_duration_seconds > self.renew_deadline_seconds > 1.2 * self.retry_period_seconds:
            raise ValueError(
                "leader election needs lease_duration_seconds > renew_deadline_seconds > "
                "1.2 x retry_period_seconds (a leader stops before a standby may take over, and "
                "gets at least one retry before its deadline)"
            )
        return self

    @property
    def checkpoint_path(self) -> str | None:
        """The checkpoint's directory (see `checkpoint_interval_seconds`), None without a spool."""
        return f"{self.spool_dir.rstrip('/')}/checkpoints" if self.spool_dir else None

    @property
    def label_key_list(self) -> tuple[str, ...]:
        """The configured label keys, without blanks and repeats."""
        return tuple(dict.fromkeys(k.strip() for k in self.label_keys.split(",") if k.strip()))

    @property
    def kind_specs(self) -> tuple[KindSpec, ...]:
        """The configured kinds the object watchers handle (not `Pod`/`Event`: the pod path's)."""
        return tuple(BUILTIN[k] for k in self.kinds.split(",") if k in BUILTIN)

    @property
    def event_kinds(self) -> tuple[str, ...]:
        """Kinds whose Events are forwarded: Pod, and with `Event` listed the other listed kinds."""
        kinds = self.kinds.split(",")
        return ("Pod", *(k for k in kinds if k in BUILTIN)) if "Event" in kinds else ("Pod",)

    @property
    def group_patterns(self) -> tuple[str, ...]:
        """The configured custom resource group patterns, without blanks and repeats."""
        return tuple(dict.fromkeys(g.strip() for g in self.custom_resource_groups.split(",") if g.strip()))

    @property
    def namespace_list(self) -> tuple[str, ...] | None:
        """None for all namespaces, else the namespaces to watch (deduplicated, in order)."""
        if self.namespaces == "*":
            return None
        return tuple(self.namespaces.split(","))
