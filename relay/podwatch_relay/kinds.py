"""What the relay watches besides pods, and what it forwards of each kind: safe by construction.

A `KindSpec` names a watched collection (group, version, plural, scope) and its projection: an
allow-list of field paths (`Field`). `project_object` copies exactly those paths and nothing else,
so a field nobody listed (env values, volumes, command lines, annotations, managedFields, a
ConfigMap's values, a custom resource's spec) cannot leave the cluster however the object looks:

* metadata: name, namespace, uid, creation/deletion time, owner references, labels by the relay's
  allow-list (`redact.LabelAllowlist`); never annotations (the last-applied-configuration one
  alone holds the whole object), generation or managedFields;
* `status.conditions`, typed (`conditions`), without their heartbeat and probe times;
* a `snapshot` of the spec/status fields that tell what changed (replicas, images, selectors,
  phases, counts), flat under their dotted paths; every string goes through `redact` and is capped
  at `MAX_TEXT`;
* a ConfigMap's `data`/`binaryData`: the key names, each with a hash of its value (`HASHED`);
* custom resources: metadata, conditions, `status.phase`, `status.observedGeneration` (their spec
  is anybody's, never read);
* khook `Hook`s (`project_hook`): the rule (apiVersion, kind, name, namespace, spec), redacted;
* Secrets: never. `Secret` is not a kind this module knows, and `check_kinds` refuses it by name.

The table of built-in kinds (`BUILTIN`) is also what the chart's ClusterRole is generated from
(relay/chart/templates/_kinds.tpl mirrors it; tests/unit/test_relay_kinds.py compares the two).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from podwatch.classify import NODE_TROUBLED_STATUS
from podwatch.models import MAX_TEXT, truncate
from podwatch_relay.redact import DEFAULT_ALLOWLIST, LabelAllowlist, redact

Json = dict[str, Any]
Transform = Callable[[Any], Any]
#: A field to copy: a dotted path (its value must be a scalar), or (path, transform of the value)
Field = str | tuple[str, Transform]

#: Kinds the pod path (`pipeline.Relay`) forwards itself: accepted in the list, watched there
POD_PATH_KINDS = frozenset({"Pod", "Event"})
#: Kinds refused by name, whatever the configuration says
NEVER = frozenset({"Secret"})


# --------------------------------------------------------------------------- transforms


def scalar(value: Any) -> Any:
    """A number or boolean as is; a string redacted and capped; anything else dropped."""
    if isinstance(value, str):
        return truncate(redact(value), MAX_TEXT)
    if isinstance(value, bool | int | float):
        return value
    return None


def timestamp(value: Any) -> str | None:
    """An RFC 3339 time with its offset, as the API server wrote it; anything else dropped."""
    if not isinstance(value, str) or not value or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return value if parsed.tzinfo is not None else None


#: Nesting kept of a tree copied whole (a Hook's spec); deeper is cut
TREE_DEPTH = 12


def tree(value: Any, depth: int = TREE_DEPTH) -> Any:
    """A whole JSON tree, every string leaf redacted and capped like `scalar`'s (a Hook's spec)."""
    if isinstance(value, dict):
        if depth <= 0:
            return None
        return {k: v for k, v in ((k, tree(v, depth - 1)) for k, v in value.items()) if v is not None}
    if isinstance(value, list):
        if depth <= 0:
            return None
        return [v for v in (tree(v, depth - 1) for v in value) if v is not None]
    return scalar(value)


def scalars(value: Any) -> list[Any] | None:
    """A list of scalars (access modes, hosts)."""
    if not isinstance(value, list):
        return None
    return [v for v in map(scalar, value) if v is not None]


def scalar_map(value: Any) -> Json | None:
    """A map of scalars (matchLabels, capacities), its keys as they are."""
    if not isinstance(value, dict):
        return None
    out = {k: scalar(v) for k, v in value.items() if isinstance(k, str)}
    return {k: v for k, v in out.items() if v is not None}


def hashed(value: Any) -> Json | None:
    """A ConfigMap's `data`/`binaryData`: each key with the first 16 hex digits of the SHA-256 of
    its value, never the value (enough to see which keys changed)."""
    if not isinstance(value, dict):
        return None
    return {
        k: hashlib.sha256(v.encode(errors="surrogatepass")).hexdigest()[:16]
        for k, v in value.items()
        if isinstance(k, str) and isinstance(v, str)
    }


def items(*fields: Field) -> Transform:
    """A list of objects, each projected by `fields` (ports, conditions, containers)."""
    compiled = compile_fields(fields)

    def each(value: Any) -> list[Json] | None:
        if not isinstance(value, list):
            return None
        return [p for v in value if isinstance(v, dict) and (p := project_fields(v, compiled))]

    return each


def nested(*fields: Field) -> Transform:
    """One object projected by `fields`."""
    compiled = compile_fields(fields)
    return lambda value: project_fields(value, compiled) if isinstance(value, dict) else None


# --------------------------------------------------------------------------- the picker

_Compiled = tuple[tuple[tuple[str, ...], Transform], ...]


def compile_fields(fields: Iterable[Field]) -> _Compiled:
    out = []
    for field in fields:
        path, transform = (field, scalar) if isinstance(field, str) else field
        out.append((tuple(path.split(".")), transform))
    return tuple(out)


def _picked(source: Mapping[str, Any], fields: _Compiled) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, transformed value) of each listed path of `source` that holds something."""
    for path, transform in fields:
        value: Any = source
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                break
        if value is None:
            continue
        value = transform(value)
        if value is None or value == [] or value == {}:
            continue
        yield path, value


def project_fields(source: Mapping[str, Any], fields: _Compiled) -> Json:
    """Exactly the listed paths of `source`, nested as they were; empty values left out."""
    out: Json = {}
    for path, value in _picked(source, fields):
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return out


# --------------------------------------------------------------------------- shared shapes

SELECTOR = nested(
    ("matchLabels", scalar_map), ("matchExpressions", items("key", "operator", ("values", scalars)))
)
#: Of a pod template: which containers run which image. Never env, command, args, volumes.
CONTAINERS = items("name", "image")
TEMPLATE = nested(("containers", CONTAINERS), ("initContainers", CONTAINERS), "nodeName")
LOAD_BALANCER = nested(("ingress", items("ip", "hostname")))


@dataclass(frozen=True, slots=True)
class KindSpec:
    """A watched collection and what is forwarded of its objects."""

    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    fields: _Compiled
    #: the envelope its records travel in: `object` (history only) or `hook` (hook rules)
    envelope: Literal["object", "hook"] = "object"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """`<plural>.<group>` (`deployments.apps`; `nodes` in the core group): the kind whatever
        its version, as RBAC and CRDs name it (the checkpoint's key)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _kind(kind: str, group: str, version: str, plural: str, namespaced: bool, *fields: Field) -> KindSpec:
    return KindSpec(kind, group, version, plural, namespaced, compile_fields(fields))


_WORKLOAD_STATUS = ("status.observedGeneration",)

BUILTIN: dict[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        _kind(
            "Node", "", "v1", "nodes", False,
            "spec.unschedulable", ("spec.taints", items("key", "effect", "value")),
            ("status.capacity", scalar_map), ("status.allocatable", scalar_map),
            ("status.nodeInfo", nested(
                "kubeletVersion", "containerRuntimeVersion", "osImage", "kernelVersion", "architecture"
            )),
        ),
        _kind("Namespace", "", "v1", "namespaces", False, "status.phase"),
        _kind(
            "Deployment", "apps", "v1", "deployments", True,
            "spec.replicas", "spec.paused", "spec.minReadySeconds", "spec.strategy.type",
            ("spec.selector", SELECTOR), ("spec.template.spec", TEMPLATE),
            "status.replicas", "status.updatedReplicas", "status.readyReplicas",
            "status.availableReplicas", "status.unavailableReplicas", *_WORKLOAD_STATUS,
        ),
        _kind(
            "ReplicaSet", "apps", "v1", "replicasets", True,
            "spec.replicas", "spec.minReadySeconds", ("spec.selector", SELECTOR),
            ("spec.template.spec", TEMPLATE),
            "status.replicas", "status.fullyLabeledReplicas", "status.readyReplicas",
            "status.availableReplicas", *_WORKLOAD_STATUS,
        ),
        _kind(
            "StatefulSet", "apps", "v1", "statefulsets", True,
            "spec.replicas", "spec.serviceName", "spec.podManagementPolicy", "spec.updateStrategy.type",
            ("spec.selector", SELECTOR), ("spec.template.spec", TEMPLATE),
            "status.replicas", "status.readyReplicas", "status.currentReplicas", "status.updatedReplicas",
            "status.availableReplicas", "status.currentRevision", "status.updateRevision",
            *_WORKLOAD_STATUS,
        ),
        _kind(
            "DaemonSet", "apps", "v1", "daemonsets", True,
            "spec.updateStrategy.type", ("spec.selector", SELECTOR), ("spec.template.spec", TEMPLATE),
            "status.desiredNumberScheduled", "status.currentNumberScheduled", "status.numberReady",
            "status.numberAvailable", "status.numberUnavailable", "status.numberMisscheduled",
            "status.updatedNumberScheduled", *_WORKLOAD_STATUS,
        ),
        _kind(
            "Job", "batch", "v1", "jobs", True,
            "spec.parallelism", "spec.completions", "spec.backoffLimit", "spec.activeDeadlineSeconds",
            "spec.suspend", ("spec.template.spec", TEMPLATE),
            "status.active", "status.succeeded", "status.failed", "status.ready", "status.startTime",
            "status.completionTime",
        ),
        _kind(
            "CronJob", "batch", "v1", "cronjobs", True,
            "spec.schedule", "spec.timeZone", "spec.suspend", "spec.concurrencyPolicy",
            ("spec.jobTemplate.spec.template.spec", TEMPLATE),
            "status.lastScheduleTime", "status.lastSuccessfulTime",
            ("status.active", items("name", "uid")),
        ),
        _kind(
            "Service", "", "v1", "services", True,
            "spec.type", "spec.clusterIP", "spec.externalName", ("spec.selector", scalar_map),
            ("spec.ports", items("name", "protocol", "port", "targetPort", "nodePort")),
            ("status.loadBalancer", LOAD_BALANCER),
        ),
        _kind(
            "Ingress", "networking.k8s.io", "v1", "ingresses", True,
            "spec.ingressClassName",
            ("spec.rules", items("host", ("http.paths", items(
                "path", "pathType", "backend.service.name", "backend.service.port.name",
                "backend.service.port.number",
            )))),
            ("spec.tls", items(("hosts", scalars))),
            ("status.loadBalancer", LOAD_BALANCER),
        ),
        _kind(
            "ConfigMap", "", "v1", "configmaps", True,
            "immutable", ("data", hashed), ("binaryData", hashed),
        ),
        _kind(
            "PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", True,
            "spec.storageClassName", "spec.volumeName", "spec.volumeMode", ("spec.accessModes", scalars),
            ("spec.resources.requests", scalar_map),
            "status.phase", ("status.capacity", scalar_map),
        ),
        _kind(
            "PersistentVolume", "", "v1", "persistentvolumes", False,
            "spec.storageClassName", "spec.persistentVolumeReclaimPolicy", "spec.volumeMode",
            ("spec.capacity", scalar_map), ("spec.accessModes", scalars),
            ("spec.claimRef", nested("namespace", "name", "uid")),
            "status.phase", "status.reason", "status.message",
        ),
        _kind(
            "HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", True,
            "spec.minReplicas", "spec.maxReplicas",
            ("spec.scaleTargetRef", nested("apiVersion", "kind", "name")),
            # not status.currentMetrics: it changes at every sync (15 s) and would defeat suppression
            "status.currentReplicas", "status.desiredReplicas", "status.lastScaleTime",
        ),
        _kind(
            "PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets", True,
            "spec.minAvailable", "spec.maxUnavailable", ("spec.selector", SELECTOR),
            "status.currentHealthy", "status.desiredHealthy", "status.disruptionsAllowed",
            "status.expectedPods", *_WORKLOAD_STATUS,
        ),
    )
}  # fmt: skip

#: What is forwarded of a custom resource: its status in general terms (and its conditions, as
#: every kind's), never its spec.
CUSTOM_FIELDS = compile_fields(("status.phase", "status.observedGeneration"))
#: A khook `Hook` (kagent.dev): its spec is the hook rule itself, validated by the cloud side.
HOOK_GROUP, HOOK_PLURAL, HOOK_KIND = "kagent.dev", "hooks", "Hook"
HOOK_CRD = f"{HOOK_PLURAL}.{HOOK_GROUP}"


HOOK_API_VERSION = f"{HOOK_GROUP}/v1alpha2"


def custom_kind(
    group: str, version: str, plural: str, kind: str, *, namespaced: bool, hook: bool = False
) -> KindSpec:
    """A custom resource found through its CRD: `hook` (khook's Hook, forwarded as hook rules when
    the relay is told to), or any other (`CUSTOM_FIELDS`, history only)."""
    if hook:
        return KindSpec(kind, group, version, plural, namespaced, (), envelope="hook")
    return KindSpec(kind, group, version, plural, namespaced, CUSTOM_FIELDS)


class KindError(ValueError):
    """A configured kind the relay refuses (a Secret) or does not know."""


def check_kinds(names: Iterable[str]) -> tuple[str, ...]:
    """The configured kinds, deduplicated, in order; `KindError` naming the first refused one."""
    out: list[str] = []
    for name in names:
        if name in NEVER or name.lower() in {n.lower() for n in NEVER}:
            raise KindError(
                f"kind {name!r} is never watched: the relay does not read Secrets, whatever is "
                "configured (remove it from PODWATCH_KINDS / relay.kinds)"
            )
        if name not in BUILTIN and name not in POD_PATH_KINDS:
            known = ", ".join(sorted(BUILTIN.keys() | POD_PATH_KINDS))
            raise KindError(
                f"unknown kind {name!r} (known: {known}; custom resources are chosen by API group "
                "with PODWATCH_CUSTOM_RESOURCE_GROUPS)"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


# --------------------------------------------------------------------------- one object


def _owner(raw: Any) -> Json | None:
    if not isinstance(raw, dict):
        return None
    kind, name = raw.get("kind"), raw.get("name")
    if not (isinstance(kind, str) and kind and isinstance(name, str) and name):
        return None
    out: Json = {"kind": redact(kind), "name": redact(name)}  # names cannot hold secrets: belt and braces
    if isinstance(raw.get("uid"), str):
        out["uid"] = redact(raw["uid"])
    out["controller"] = raw.get("controller") is True
    return out


def project_meta(meta: Mapping[str, Any], allowlist: LabelAllowlist = DEFAULT_ALLOWLIST) -> Json:
    """The metadata that may leave the cluster (see the module docstring); identity not included."""
    out: Json = {}
    labels = meta.get("labels")
    if isinstance(labels, dict) and labels:
        kept, omitted = allowlist.apply({k: v for k, v in labels.items() if isinstance(v, str)})
        if kept:
            out["labels"] = kept
        if omitted:
            out["labels_omitted"] = omitted
    owners = meta.get("ownerReferences")
    if isinstance(owners, list):
        refs = [o for o in map(_owner, owners) if o is not None]
        if refs:
            out["owner_references"] = refs
    for key, name in (("creationTimestamp", "created_at"), ("deletionTimestamp", "deleted_at")):
        value = timestamp(meta.get(key))
        if value is not None:
            out[name] = value
    return out


def _condition(raw: Any) -> Json | None:
    """One of `status.conditions` as `models.PodCondition` has it; never the heartbeat or probe
    times, which change without news."""
    if not isinstance(raw, dict):
        return None
    kind, status = raw.get("type"), raw.get("status")
    if not (isinstance(kind, str) and kind and isinstance(status, str) and status):
        return None
    out: Json = {"type": redact(kind)[:MAX_TEXT], "status": redact(status)[:MAX_TEXT]}
    for key, name in (("reason", "reason"), ("message", "message")):
        value = scalar(raw.get(key))
        if isinstance(value, str) and value:
            out[name] = value
    changed = timestamp(raw.get("lastTransitionTime"))
    if changed is not None:
        out["last_transition_time"] = changed
    return out


def project_conditions(obj: Mapping[str, Any]) -> list[Json]:
    status = obj.get("status")
    raw = status.get("conditions") if isinstance(status, dict) else None
    if not isinstance(raw, list):
        return []
    return [c for c in map(_condition, raw) if c is not None]


def project_snapshot(source: Mapping[str, Any], fields: _Compiled) -> Json:
    """The allow-listed fields of `source`, flat: each under its dotted path (`spec.replicas`,
    `status.readyReplicas`), so the cloud side can trim the largest entries one by one."""
    return {".".join(path): value for path, value in _picked(source, fields)}


def project_object(
    obj: Mapping[str, Any], spec: KindSpec, allowlist: LabelAllowlist = DEFAULT_ALLOWLIST
) -> Json:
    """The forwarded form of one object of `spec`'s kind (`models.KubeObject`'s fields), identity
    and version aside: metadata (`project_meta`), typed `conditions`, the allow-listed `snapshot`.
    What the relay diffs."""
    meta = obj.get("metadata")
    out = project_meta(meta if isinstance(meta, dict) else {}, allowlist)
    conditions = project_conditions(obj)
    if conditions:
        out["conditions"] = conditions
    snapshot = project_snapshot(obj, spec.fields)
    if snapshot:
        out["snapshot"] = snapshot
    return out


#: Condition statuses that are trouble, by condition type whatever the kind: a Node's as the
#: processor classifies them (Ready False/Unknown, a pressure True; also a custom resource's
#: Ready), and the controllers' own failure signals. Read only by `INITIAL_SYNC_MODE=troubled`.
TROUBLED_CONDITIONS: Mapping[str, frozenset[str]] = {
    **NODE_TROUBLED_STATUS,
    "Available": frozenset({"False"}),  # Deployment below its minimum availability
    "Progressing": frozenset({"False"}),  # Deployment past its progress deadline
    "ReplicaFailure": frozenset({"True"}),  # Deployment, ReplicaSet: pods cannot be created
    "Failed": frozenset({"True"}),  # Job: backoff limit or deadline reached
    "AbleToScale": frozenset({"False"}),  # HorizontalPodAutoscaler cannot scale its target
    "ScalingActive": frozenset({"False"}),  # HorizontalPodAutoscaler without usable metrics
}
#: `status.phase` values that are trouble, by kind (a claim not bound, a volume whose reclaim failed)
TROUBLED_PHASES: Mapping[str, frozenset[str]] = {
    "PersistentVolumeClaim": frozenset({"Pending", "Lost"}),
    "PersistentVolume": frozenset({"Failed"}),
}


def object_troubled(kind: str, projection: Mapping[str, Any]) -> bool:
    """Whether an object (its `project_object` projection) is in trouble: a condition status of
    `TROUBLED_CONDITIONS`, or a phase of `TROUBLED_PHASES`. What a first list forwards of a kind
    with `INITIAL_SYNC_MODE=troubled`, as `state.payload_troubled` is for a pod."""
    for condition in projection.get("conditions", ()):
        if condition["status"] in TROUBLED_CONDITIONS.get(condition["type"], ()):
            return True
    phase = projection.get("snapshot", {}).get("status.phase")
    return phase in TROUBLED_PHASES.get(kind, ())


def project_hook(
    obj: Mapping[str, Any], namespace: str, name: str, api_version: str = HOOK_API_VERSION
) -> Json:
    """A khook `Hook` as `models.HookObject.hook` has it: apiVersion (the one watched), kind,
    metadata (its name and namespace only) and the spec, the rule itself, which the cloud side
    validates. Its strings are
    redacted like every other (a credential has no business in a prompt; a target's token comes
    from SSM or Secrets Manager): khook's own examples pass unchanged."""
    out: Json = {
        "apiVersion": api_version,  # the version watched, not what the object says: read nothing else
        "kind": HOOK_KIND,
        "metadata": {"name": name, "namespace": namespace},
    }
    spec = tree(obj.get("spec"))
    if spec is not None:
        out["spec"] = spec
    return out
