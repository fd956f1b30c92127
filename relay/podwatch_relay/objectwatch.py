"""The watchers of kinds besides pods: built-in kinds from the configuration, custom resources as
their CRDs come and go.

`ObjectGroup` runs one `watch.ListWatcher` (the pod path's engine: list, watch, 410 relist,
bookmarks, timeouts) per kind and namespace scope, each feeding its own `objects.ObjectRelay`,
each kind with its own stop switch so a kind starts and stops on its own.

`CustomResources` consumes the watch of CustomResourceDefinitions: a CRD whose group matches one
of the configured patterns (`fnmatch` wildcards: `*.example.com`) gets its kind watched (the
storage version when it is served, else the first served one); a CRD that goes (DELETED, or
absent from a relist) gets its watcher stopped. khook's `Hook` CRD (`hooks.kagent.dev`) is
watched when `hooks` is on, its objects forwarded as `hook` envelopes, and only once the CRD
exists: the relay never asks for a kind the API server does not serve.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes.client import CoreV1Api

from podwatch_relay.kinds import HOOK_CRD, KindSpec, custom_kind
from podwatch_relay.objects import ObjectRelay
from podwatch_relay.watch import ControlWatch, ListWatcher, Resource
from podwatch_relay.watchline import stream_outcome

log = logging.getLogger("podwatch_relay.objectwatch")

#: The CRDs themselves (cluster-scoped); their list reconciles: a CRD gone meanwhile is stopped.
CRDS = Resource(
    "customresourcedefinitions",
    "CustomResourceDefinition",
    group="apiextensions.k8s.io",
    version="v1",
    cluster_scoped=True,
    reconciles=True,
)


def resource_of(spec: KindSpec) -> Resource:
    """The watch engine's view of a kind: its collection, reconciled after every list."""
    return Resource(
        spec.plural,
        spec.kind,
        group=spec.group,
        version=spec.version,
        cluster_scoped=not spec.namespaced,
        reconciles=True,
    )


class ObjectGroup:
    """The running object watchers, by (group, plural): started and stopped a kind at a time."""

    def __init__(
        self,
        *,
        api: CoreV1Api,
        stop: threading.Event,
        factory: Callable[..., ListWatcher],
        make_relay: Callable[[KindSpec], ObjectRelay],
        namespaces: tuple[str, ...] | None = None,
        after: threading.Event | None = None,
    ) -> None:
        self.api = api
        self.stop = stop
        self._factory = factory
        self._make_relay = make_relay
        #: None: one watch of all namespaces per kind; else one watch per namespace (RBAC may
        #: grant only those)
        self.namespaces = namespaces
        #: namespaced kinds list only once this is set (selector mode: the selection is known)
        self.after = after
        self._kinds: dict[
            tuple[str, str], tuple[KindSpec, threading.Event, ObjectRelay, list[ListWatcher]]
        ] = {}
        self._lock = threading.Lock()

    def start(self, spec: KindSpec) -> bool:
        """Watch `spec`'s kind (a no-op when it is watched in that version already)."""
        key = (spec.group, spec.plural)
        with self._lock:
            running = self._kinds.get(key)
            if self.stop.is_set() or (running is not None and running[0] == spec):
                return False
        if running is not None:
            self.stop_kind(spec.group, spec.plural)  # another version, or hook rules turned on/off
        kind_stop = threading.Event()
        relay = self._make_relay(spec)
        scopes = (None,) if not spec.namespaced or self.namespaces is None else self.namespaces
        after = self.after if spec.namespaced else None
        watchers = [
            self._factory(
                api=self.api,
                relay=relay,
                resource=resource_of(spec),
                namespace=ns,
                stop=kind_stop,
                after=after,
            )
            for ns in scopes
        ]
        with self._lock:
            self._kinds[key] = (spec, kind_stop, relay, watchers)
        for watcher in watchers:
            threading.Thread(target=watcher.run, name=watcher.scope, daemon=True).start()
        log.info("watching kind", extra={"kind": spec.kind, "api_version": spec.api_version})
        return True

    def stop_kind(self, group: str, plural: str, *, gone_at: str | None = None) -> bool:
        """Stop watching a kind. `gone_at`: the kind itself went (its CRD was deleted, at this
        resourceVersion), so did its objects: a DELETED is forwarded for each one still known
        (its own DELETED may be on a stream the relay stops reading). Else they are forgotten."""
        with self._lock:
            entry = self._kinds.pop((group, plural), None)
        if entry is None:
            return False
        spec, kind_stop, relay, watchers = entry
        kind_stop.set()
        for watcher in watchers:
            watcher.interrupt()
        if gone_at is None:
            relay.forget()
        else:
            relay.reconcile(None, (), gone_at)
            relay.flush()
        log.info("stopped watching kind", extra={"kind": spec.kind, "api_version": spec.api_version})
        return True

    def stop_all(self) -> None:
        """Stop every watcher (shutdown). The relays stay, with what they know: the last flush
        and the last checkpoint read them."""
        with self._lock:
            entries = list(self._kinds.values())
        for _, kind_stop, _, watchers in entries:
            kind_stop.set()
            for watcher in watchers:
                watcher.interrupt()

    def spec(self, group: str, plural: str) -> KindSpec | None:
        with self._lock:
            entry = self._kinds.get((group, plural))
            return entry[0] if entry is not None else None

    def watchers(self) -> list[ListWatcher]:
        """The running watchers, of the configured kinds and of custom resources."""
        with self._lock:
            return [w for _, _, _, ws in self._kinds.values() for w in ws]

    def relays(self) -> list[ObjectRelay]:
        with self._lock:
            return [relay for _, _, relay, _ in self._kinds.values()]

    def namespace_selected(self, namespace: str) -> None:
        """A namespace joined the selection (`watch.NamespaceFollower`): each namespaced kind lists
        again, so its objects there go out now (the others' are unchanged: suppressed). A kind
        still waiting for its first list lists once."""
        with self._lock:
            entries = list(self._kinds.values())
        for spec, _, _, watchers in entries:
            for watcher in watchers if spec.namespaced else ():
                watcher.relist()

    def forget_namespaces_except(self, namespaces: set[str]) -> None:
        """Forget the objects of namespaces no longer selected (`watch.NamespaceFollower`)."""
        for relay in self.relays():
            relay.forget_namespaces_except(namespaces)

    def by_resource(self) -> dict[str, ObjectRelay]:
        """The relays by their kind's `KindSpec.resource` (`deployments.apps`): the checkpoint's."""
        with self._lock:
            return {spec.resource: relay for spec, _, relay, _ in self._kinds.values()}

    def flush(self) -> None:
        for relay in self.relays():
            relay.flush()


def _crd_kind(crd: Any) -> tuple[str, str, str, str, bool] | None:
    """(group, version, plural, kind, namespaced) of a CRD, None when it is not one."""
    spec = crd.get("spec") if isinstance(crd, dict) else None
    if not isinstance(spec, dict):
        return None
    group, names = spec.get("group"), spec.get("names")
    plural = names.get("plural") if isinstance(names, dict) else None
    kind = names.get("kind") if isinstance(names, dict) else None
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("served", True)]
    storage = [v for v in versions if v.get("storage")]
    chosen = (storage or versions)[:1]
    version = chosen[0].get("name") if chosen else None
    if not all(isinstance(x, str) and x for x in (group, plural, kind, version)):
        return None
    return group, version, plural, kind, spec.get("scope", "Namespaced") == "Namespaced"  # type: ignore[return-value]


class CustomResources(ControlWatch):
    """Consumer of the CRD watch (see the module docstring)."""

    def __init__(self, group: ObjectGroup, *, patterns: Iterable[str] = (), hooks: bool = False) -> None:
        self.group = group
        self.patterns = tuple(patterns)
        self.hooks = hooks
        self._crds: dict[str, tuple[str, str]] = {}  # CRD uid -> (group, plural) watched

    def selects(self, name: str, group: str) -> tuple[bool, bool]:
        """(watched, as hook rules) for a CRD of this name and group."""
        hook = self.hooks and name == HOOK_CRD
        return hook or any(fnmatch.fnmatchcase(group, p) for p in self.patterns), hook

    def handle(self, watch_event: Any, *, initial_sync: bool = False) -> str:
        if not isinstance(watch_event, dict):
            return "malformed:not-an-object"
        watch_type, obj = watch_event.get("type"), watch_event.get("object")
        if (outcome := stream_outcome(watch_type, obj)) is not None:
            return outcome
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        uid = meta.get("uid") if isinstance(meta, dict) else None
        found = _crd_kind(obj)
        if not isinstance(name, str) or not isinstance(uid, str) or found is None:
            return "malformed:crd"
        group, version, plural, kind, namespaced = found
        if watch_type == "DELETED":
            gone_at = meta.get("resourceVersion") if isinstance(meta, dict) else None
            self._forget(uid, gone_at=gone_at if isinstance(gone_at, str) else "")
            return "crd:unwatched"
        if watch_type not in {"ADDED", "MODIFIED"}:
            return "malformed:unknown-type"
        watched, hook = self.selects(name, group)
        if not watched:
            return "skipped:crd-not-selected"
        self._crds[uid] = (group, plural)
        self.group.start(custom_kind(group, version, plural, kind, namespaced=namespaced, hook=hook))
        return "crd:watched"

    def _forget(self, uid: str, *, gone_at: str) -> None:
        known = self._crds.pop(uid, None)
        if known is not None:
            self.group.stop_kind(*known, gone_at=gone_at)

    def reconcile(self, namespace: str | None, seen: Iterable[str], resource_version: str) -> int:
        present = set(seen)
        gone = [uid for uid in self._crds if uid not in present]
        for uid in gone:
            self._forget(uid, gone_at=resource_version)
        return len(gone)


def start_objects(
    *,
    kinds: Iterable[KindSpec],
    patterns: Iterable[str],
    hooks: bool,
    api: CoreV1Api,
    stop: threading.Event,
    factory: Callable[..., ListWatcher],
    make_relay: Callable[[KindSpec], ObjectRelay],
    namespaces: tuple[str, ...] | None,
    after: threading.Event | None = None,
) -> tuple[ObjectGroup, ListWatcher | None]:
    """Start a watcher per configured kind; return them with the CRD watcher to run (None when no
    custom resource group and no Hook is asked for: the relay then never reads CRDs). `after`:
    namespaced kinds list only once it is set (`ObjectGroup.after`)."""
    group = ObjectGroup(
        api=api, stop=stop, factory=factory, make_relay=make_relay, namespaces=namespaces, after=after
    )
    for spec in kinds:
        group.start(spec)
    patterns = tuple(patterns)
    if not patterns and not hooks:
        return group, None
    crds = CustomResources(group, patterns=patterns, hooks=hooks)
    return group, factory(api=api, relay=crds, resource=CRDS, namespace=None, stop=stop)
