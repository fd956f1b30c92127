"""Function settings: the environment variables of docs/internals.md, read once (first invocation)
into frozen pydantic models. A field's name is its variable's name in lower case; an empty value
counts as unset (SAM writes "" for an optional parameter left empty)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal, Self, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podwatch.errors import ConfigError

DEFAULT_NOTIFY_PATH = "/PodwatchManager/{cluster_id}/NotifyPodEvents"
DEFAULT_NOTIFY_ONE_PATH = "/PodwatchManager/{cluster_id}/NotifyPodEvent"
DEFAULT_ENROLL_PATH = "/PodwatchManager/{cluster_id}/Enroll"
DEFAULT_CONFIG_PATH = "/PodwatchManager/{cluster_id}/GetRemoteConfig"


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Validate the settings from `environ` (default: os.environ); ConfigError names every problem."""
        env = os.environ if environ is None else environ
        values = {name: env[name.upper()] for name in cls.model_fields if env.get(name.upper(), "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"{cls.__name__} from the environment is invalid: {problems}") from exc


class ProcessorSettings(_Settings):
    config_parameter_name: str = Field(min_length=1)
    #: Powertools Parameters cache age of the remote config.
    config_max_age_seconds: int = Field(default=60, ge=0, le=3600)
    dedup_table_name: str = Field(min_length=1)
    #: pod metadata table (GetMetadata(pod)); unset: no rows are written or read
    metadata_table_name: str | None = None
    #: clusters table (enroll/heartbeat last-seen, enrolled relay versions); unset: control is only audited
    clusters_table_name: str | None = None
    #: hooks table, for Hooks watched in the cluster (`hook` envelopes); unset: they are quarantined
    hooks_table_name: str | None = None
    deliveries_queue_url: str = Field(min_length=1)
    quarantine_queue_url: str = Field(min_length=1)
    #: fan-out queue (podwatch.fanout): every forwarded notification, for the EventBridge bus; unset: none
    fanout_queue_url: str | None = None
    #: audit of filtered decisions: a line each, or one summary line per invocation (podwatch.audit)
    audit_filtered: Literal["each", "summary"] = "each"
    #: the history queue (podwatch.historyfeed); unset: no history is written
    history_queue_url: str | None = None
    #: the timeline page (the history API's `/`): notifications link to it (`history_url`); unset: none
    history_page_url: str | None = None


class RestatePaths(TypedDict, total=False):
    """The path arguments of `podwatch.restate.RestateClient` a function's settings configure."""

    config_path: str
    notify_path: str
    enroll_path: str


class RestateSettings(_Settings):
    """What a function that calls the Restate ingress needs of it (`podwatch.kit.restate_client`)."""

    restate_ingress_url: str = Field(min_length=1)
    restate_config_path: str = DEFAULT_CONFIG_PATH
    restate_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    restate_read_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: Optional SSM SecureString holding a bearer token (Restate Cloud); its value is never logged.
    restate_token_parameter_name: str | None = None

    def restate_paths(self) -> RestatePaths:
        return {"config_path": self.restate_config_path}


class DeliverSettings(RestateSettings):
    config_parameter_name: str = Field(min_length=1)
    config_max_age_seconds: int = Field(default=60, ge=0, le=3600)
    restate_notify_path: str = DEFAULT_NOTIFY_PATH
    restate_enroll_path: str = DEFAULT_ENROLL_PATH
    quarantine_queue_url: str = Field(min_length=1)
    #: the deliveries queue's maxReceiveCount: a record still failing at that receive is quarantined
    #: with its reason and the manager's last answer; unset: SQS moves it to the DLQ bare
    max_receive_count: int | None = Field(default=None, ge=1, le=1000)

    def restate_paths(self) -> RestatePaths:
        return {
            **super().restate_paths(),
            "notify_path": self.restate_notify_path,
            "enroll_path": self.restate_enroll_path,
        }


class FanoutSettings(_Settings):
    """The fan-out function: fan-out queue → the stack's EventBridge bus."""

    event_bus_name: str = Field(min_length=1)
    quarantine_queue_url: str = Field(min_length=1)
    #: the fan-out queue's maxReceiveCount: a record still failing at that receive is quarantined
    #: with its reason; unset: SQS moves it to the DLQ bare
    max_receive_count: int | None = Field(default=None, ge=1, le=1000)


class ConfigSyncSettings(RestateSettings):
    """The config-sync function (scheduled): the manager's remote config → SSM parameter → the
    deliveries event source mapping; how long ago each cluster was heard of."""

    config_parameter_name: str = Field(min_length=1)
    #: the stack's clusters, comma-separated; the first one's remote config is the stack's
    cluster_ids: str = ""
    #: clusters table (podwatch.control); unset: no heartbeat ages
    clusters_table_name: str | None = None
    #: UUID of the deliver function's SQS event source mapping; unset: nothing to retune
    deliveries_event_source_mapping_id: str | None = None
    #: a cluster not heard of (enroll/heartbeat) for longer than this counts as silent
    silent_after_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)

    @property
    def clusters(self) -> list[str]:
        """`cluster_ids` as a list, in order, without blanks or repeats."""
        return list(dict.fromkeys(c.strip() for c in self.cluster_ids.split(",") if c.strip()))


class HooksSettings(_Settings):
    """The hooks function: notifications fanned out to the hooks queue → khook-format rules → agent
    (A2A) and webhook calls (podwatch.hooks)."""

    #: rules and per-hook event items (podwatch.hooks.state)
    hooks_table_name: str = Field(min_length=1)
    #: the hooks DLQ: rejected calls (4xx) and malformed records, with the reason
    quarantine_queue_url: str = Field(min_length=1)
    #: kagent's controller, for hooks that do not name `spec.agent.baseUrl` (empty: they must)
    kagent_base_url: str = ""
    #: tokens and signing secrets may only be read from names under this prefix (the role's grant)
    hook_secrets_prefix: str = "/podwatch/hooks/"
    #: A2A wire version for hooks that do not name `spec.agent.protocol`
    a2a_protocol: Literal["0.3", "1.0"] = "0.3"
    hook_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    hook_read_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: how long the applied rules are cached per execution environment
    rules_max_age_seconds: int = Field(default=30, ge=0, le=3600)
    #: the hooks queue's maxReceiveCount: a record still failing at that receive is quarantined with
    #: its reason; unset: SQS moves it to the DLQ bare
    max_receive_count: int | None = Field(default=None, ge=1, le=1000)


class HistoryWriterSettings(_Settings):
    """The history writer (history queue → history table)."""

    history_table_name: str = Field(min_length=1)
    #: the history DLQ: bad input and records still failing on their last receive, with the reason
    quarantine_queue_url: str = Field(min_length=1)
    #: items expire this many days after the event's own time (TTL attribute `x`)
    retention_days: int = Field(default=14, ge=1, le=365)
    #: the history queue's maxReceiveCount (template: keep equal)
    history_max_receives: int = Field(default=10, ge=1, le=1000)


class HistoryApiSettings(_Settings):
    """The history API function (reads only)."""

    history_table_name: str = Field(min_length=1)
    retention_days: int = Field(default=14, ge=1, le=365)
    #: the cluster of `/api/v1/...` (other clusters: `/clusters/<id>/api/v1/...`); unset: required in the path
    history_default_cluster: str | None = None
    #: the hooks table: a pod's view lists the hook calls about it (`hookCalls`); unset: no such list
    hooks_table_name: str | None = None
