"""Hook rules in khook's format (`apiVersion: kagent.dev/v1alpha2`, `kind: Hook`), validated when
applied: every error names the field (`spec.eventConfigurations[1].prompt: ...`).

A khook Hook file applies unchanged; podwatch's additions are optional fields (docs/operations.md):
`spec.clusterWide`, `spec.dedupWindowSeconds`, `spec.agent` (where and how to reach the agents) and
a per-configuration `webhook` target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from podwatch.errors import PermanentError
from podwatch.hooks import prompt
from podwatch.models import EventType

API_VERSION = "kagent.dev/v1alpha2"
MAX_CONFIGURATIONS = 50
MAX_PROMPT = 10_000
DEFAULT_WINDOW_SECONDS = 600

#: khook's event types, and the podwatch types each one stands for (one table, docs/operations.md).
KHOOK_ALIASES: Mapping[str, frozenset[EventType]] = {
    "pod-restart": frozenset({EventType.POD_RESTART, EventType.CRASH_LOOP}),
    "pod-pending": frozenset(
        {
            EventType.PENDING_TOO_LONG,
            EventType.UNSCHEDULABLE,
            EventType.IMAGE_PULL,
            EventType.CONFIG_ERROR,
            EventType.VOLUME_MOUNT,
        }
    ),
    "oom-kill": frozenset({EventType.OOM_KILL}),
    "probe-failed": frozenset({EventType.PROBE_FAILED}),
}
#: podwatch types a hook may name directly (`recovered` is not trouble: it resolves a hook's events)
PODWATCH_TYPES = frozenset(t.value for t in EventType if t is not EventType.RECOVERED)
HOOK_EVENT_TYPES = frozenset(KHOOK_ALIASES) | PODWATCH_TYPES

#: khook's agent name charset; a Kubernetes namespace or name (DNS-1123 label or subdomain)
_AGENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
#: `ssm:/name` (SecureString) or `secretsmanager:<name or arn>`
_SECRET_REF = re.compile(r"^(ssm:/[A-Za-z0-9_.\-/]+|secretsmanager:[A-Za-z0-9_.\-/+=@:]+)$")


class HookInvalid(PermanentError):
    """A Hook that cannot be applied; `problems` lists `field: what is wrong`, one per problem."""

    reason = "invalid_hook"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid Hook: " + "; ".join(problems))
        self.problems = problems


def event_types_for(hook_event_type: str) -> frozenset[EventType]:
    """The podwatch types a hook's `eventType` matches (a khook alias, or the type itself)."""
    aliased = KHOOK_ALIASES.get(hook_event_type)
    return aliased if aliased is not None else frozenset({EventType(hook_event_type)})


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentRef(_Spec):
    name: str
    #: defaults to the Hook's namespace (khook)
    namespace: str | None = None


class Agent(_Spec):
    """podwatch: how this hook's agents are reached (unset: the stack's defaults)."""

    #: kagent's controller, e.g. http://kagent-controller.kagent:8083 (A2A at {base}/api/a2a/{ns}/{name}/)
    baseUrl: str | None = None
    protocol: Literal["0.3", "1.0"] | None = None
    #: wait for the agent's whole task (default: the agent answers as soon as it accepted the message)
    blocking: bool = False
    tokenFrom: str | None = None

    _url = field_validator("baseUrl")(classmethod(lambda cls, v: _http_url(v)))
    _secret = field_validator("tokenFrom")(classmethod(lambda cls, v: _secret_ref(v)))


class Webhook(_Spec):
    """podwatch: a JSON POST instead of an agent, signed with HMAC-SHA256 if a secret is named."""

    url: str
    signingSecretFrom: str | None = None
    tokenFrom: str | None = None

    _url = field_validator("url")(classmethod(lambda cls, v: _http_url(v)))
    _secret = field_validator("signingSecretFrom", "tokenFrom")(classmethod(lambda cls, v: _secret_ref(v)))


class EventConfiguration(_Spec):
    eventType: str
    agentRef: AgentRef | None = None
    #: khook's other spelling: `name` or `namespace/name`
    agentId: str | None = None
    prompt: str
    webhook: Webhook | None = None


class HookSpec(_Spec):
    eventConfigurations: list[EventConfiguration]
    #: podwatch: see the events of every namespace, not only the Hook's own
    clusterWide: bool = False
    #: podwatch: a repeat within this many seconds after a successful call is not called again
    dedupWindowSeconds: int = Field(default=DEFAULT_WINDOW_SECONDS, ge=0, le=7 * 24 * 3600)
    agent: Agent | None = None


class Metadata(BaseModel):
    """A Kubernetes object's metadata; fields other than these (uid, labels, ...) are kept, unused."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str
    namespace: str = "default"


class Hook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    apiVersion: Literal["kagent.dev/v1alpha2"]
    kind: Literal["Hook"]
    metadata: Metadata
    spec: HookSpec
    #: khook's status, as `kubectl get -o yaml` shows it: accepted and ignored
    status: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """`namespace/name`: what `podwatch hooks delete|status` and the state items name."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def agent_of(self, config: EventConfiguration) -> tuple[str, str]:
        """(namespace, name) of the agent a configuration calls (khook: the Hook's namespace)."""
        if config.agentRef is not None:
            return config.agentRef.namespace or self.metadata.namespace, config.agentRef.name
        assert config.agentId is not None
        namespace, _, name = config.agentId.rpartition("/")
        return namespace or self.metadata.namespace, name


def _http_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        raise ValueError("must be an http(s) URL")
    return value


def _secret_ref(value: str | None) -> str | None:
    if value is not None and not _SECRET_REF.match(value):
        raise ValueError("must be ssm:/<SecureString name> or secretsmanager:<secret name or ARN>")
    return value


def parse_hook(raw: Mapping[str, Any]) -> Hook:
    """Validate one Hook document (as YAML or JSON loads it); HookInvalid lists every problem."""
    try:
        hook = Hook.model_validate(raw)
    except ValidationError as exc:
        raise HookInvalid([_pydantic_problem(e) for e in exc.errors()]) from exc
    problems = [*_metadata_problems(hook), *_configuration_problems(hook)]
    if problems:
        raise HookInvalid(problems)
    return hook


def _pydantic_problem(error: Mapping[str, Any]) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "literal_error" and where in ("apiVersion", "kind"):
        message = f"must be {API_VERSION!r}" if where == "apiVersion" else "must be 'Hook'"
    return f"{where or '(document)'}: {message}"


def _metadata_problems(hook: Hook) -> list[str]:
    problems = []
    if not _K8S_NAME.match(hook.metadata.name):
        problems.append("metadata.name: must be a Kubernetes name (lower case, digits, '-', '.')")
    if not _K8S_NAME.match(hook.metadata.namespace):
        problems.append("metadata.namespace: must be a Kubernetes namespace name")
    return problems


def _configuration_problems(hook: Hook) -> list[str]:
    configs = hook.spec.eventConfigurations
    if not 1 <= len(configs) <= MAX_CONFIGURATIONS:
        return [f"spec.eventConfigurations: {len(configs)} configurations, must be 1 to {MAX_CONFIGURATIONS}"]
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for i, config in enumerate(configs):
        where = f"spec.eventConfigurations[{i}]"
        if config.eventType in first_index:
            problems.append(
                f"{where}.eventType: {config.eventType!r} is already configured at "
                f"spec.eventConfigurations[{first_index[config.eventType]}] (one configuration per eventType)"
            )
        first_index.setdefault(config.eventType, i)
        if config.eventType not in HOOK_EVENT_TYPES:
            problems.append(
                f"{where}.eventType: unknown event type {config.eventType!r} "
                f"(known: {', '.join(sorted(HOOK_EVENT_TYPES))})"
            )
        problems.extend(_target_problems(where, config))
        problems.extend(f"{where}.prompt: {p}" for p in _prompt_problems(config.prompt))
    return problems


def _target_problems(where: str, config: EventConfiguration) -> list[str]:
    given = [name for name in ("agentRef", "agentId", "webhook") if getattr(config, name) is not None]
    if len(given) != 1:
        return [f"{where}: name exactly one target: agentRef, agentId or webhook (given: {given or 'none'})"]
    if config.agentRef is not None:
        ref = config.agentRef
        problems = [] if _AGENT_NAME.match(ref.name) else [f"{where}.agentRef.name: {_AGENT_RULE}"]
        if ref.namespace is not None and not _K8S_NAME.match(ref.namespace):
            problems.append(f"{where}.agentRef.namespace: must be a Kubernetes namespace name")
        return problems
    if config.agentId is not None:
        namespace, _, name = config.agentId.rpartition("/")
        if not _AGENT_NAME.match(name) or (namespace and not _K8S_NAME.match(namespace)):
            return [f"{where}.agentId: must be <name> or <namespace>/<name>; {_AGENT_RULE}"]
    return []


_AGENT_RULE = "an agent name is 1 to 100 letters, digits, '-' or '_'"


def _prompt_problems(text: str) -> list[str]:
    if not text.strip():
        return ["must not be empty"]
    if len(text) > MAX_PROMPT:
        return [f"{len(text)} characters, at most {MAX_PROMPT}"]
    return prompt.template_problems(text)
