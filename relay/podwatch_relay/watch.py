"""List-then-watch over the official `kubernetes` client's raw API calls.

One `ListWatcher` per (resource, namespace scope). Its loop, in the manner of kopf's:

1. **list** (paged, `limit`/`continue`), each item fed to the relay as an initial-sync ADDED;
   remember the list's `metadata.resourceVersion`;
2. **watch** from that version with `allowWatchBookmarks`, `timeoutSeconds` (the server ends the
   stream cleanly) and `_request_timeout=(connect, inactivity)` (a silent, dead stream is noticed);
   every event, bookmarks included, advances the version; the stream's lines are parsed here as raw
   JSON (`_preload_content=False`), never deserialized into model objects;
3. stream ended → watch again from the last version; **410 Gone** (an ERROR event or an HTTP
   status, during list or watch) → list again; connection errors and 5xx/429 → reconnect after a
   jittered exponential backoff; any other error (a bug) → logged, counted (`restarts`) and the
   watch restarted with a list after the same backoff: a watcher thread never dies of one. A bad
   line never gets this far: the relay counts it (`malformed:<why>`) and the stream goes on. A
   `threading.Event` stops the loop.

The official `Watch.stream` is not used: it retries a 410 once and then raises, and turns its own
retries off when `timeout_seconds` is given.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import urllib3
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi, VersionApi
from kubernetes.client.exceptions import ApiException

from podwatch_relay._json import loads
from podwatch_relay.errors import BadWatchEvent, SinkRejected, SinkUnavailable, WatchExpired
from podwatch_relay.pipeline import Relay
from podwatch_relay.watchline import LineResult, consume_line, log_malformed, stream_outcome

log = logging.getLogger("podwatch_relay.watch")

#: Errors after which the same request may succeed later: reconnect with backoff.
RETRYABLE = (urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True, slots=True)
class Resource:
    """A watched collection: of the core/v1 API (`group` ""), or of any API group."""

    plural: str
    kind: str
    field_selector: str | None = None
    label_selector: str | None = None
    group: str = ""
    version: str = "v1"
    #: cluster-scoped (nodes, persistentvolumes): never listed per namespace
    cluster_scoped: bool = False
    #: after each list, the consumer learns which uids exist (`Consumer.reconcile`): what it knew
    #: and the list no longer has went while nobody watched
    reconciles: bool = False


PODS = Resource("pods", "Pod", reconciles=True)
#: Only Events about pods: the API server filters, so the relay never sees the rest.
POD_EVENTS = Resource("events", "Event", field_selector="involvedObject.kind=Pod")
#: Events about everything else, for the history of the other watched kinds (the relay keeps
#: those about its kinds: `Relay.event_kinds`); the two selectors never see the same Event.
OTHER_EVENTS = Resource("events", "Event", field_selector="involvedObject.kind!=Pod")


def namespaces_matching(label_selector: str) -> Resource:
    """Namespaces (cluster-scoped) selected by a label selector. The API server sends ADDED when a
    namespace starts matching (created, or labelled) and DELETED when it stops (deleted, or the
    label removed), so one watch drives the per-namespace watchers."""
    return Resource(
        "namespaces", "Namespace", label_selector=label_selector, cluster_scoped=True, reconciles=True
    )


#: List/watch calls of the core/v1 collections the relay may watch, (all namespaces, one
#: namespace) by plural. Secrets are not here: no configuration can make the relay read them.
_CORE_CALLS: dict[str, tuple[str, str | None]] = {
    "pods": ("list_pod_for_all_namespaces", "list_namespaced_pod"),
    "events": ("list_event_for_all_namespaces", "list_namespaced_event"),
    "namespaces": ("list_namespace", None),
    "nodes": ("list_node", None),
    "persistentvolumes": ("list_persistent_volume", None),
    "services": ("list_service_for_all_namespaces", "list_namespaced_service"),
    "configmaps": ("list_config_map_for_all_namespaces", "list_namespaced_config_map"),
    "persistentvolumeclaims": (
        "list_persistent_volume_claim_for_all_namespaces",
        "list_namespaced_persistent_volume_claim",
    ),
}


def list_call(api: CoreV1Api, resource: Resource, namespace: str | None, **kwargs: Any) -> Any:
    """The raw list/watch call of `resource` in `namespace` (None: all, or cluster-scoped):
    CoreV1Api's for the core group, CustomObjectsApi's (`/apis/{group}/{version}/{plural}`) for
    the others."""
    if resource.group:
        custom = CustomObjectsApi(api.api_client)
        if namespace is None or resource.cluster_scoped:
            return custom.list_cluster_custom_object(
                resource.group, resource.version, resource.plural, **kwargs
            )
        return custom.list_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, **kwargs
        )
    every, one = _CORE_CALLS[resource.plural]
    if namespace is None or one is None:
        return getattr(api, every)(**kwargs)
    return getattr(api, one)(namespace, **kwargs)


class Consumer(Protocol):
    """What a `ListWatcher` feeds: the `Relay`, an `objects.ObjectRelay`, or a `ControlWatch`;
    each reads its lines through `watchline.consume_line`."""

    def handle(self, watch_event: Any, *, initial_sync: bool = False) -> str: ...

    def process_line(self, line: str | bytes, *, initial_sync: bool = False) -> LineResult: ...

    def flush(self) -> Any: ...

    def reconcile(self, namespace: str | None, seen: Iterable[str], resource_version: str) -> int: ...


@dataclass(slots=True)
class WatchStats:
    lists: int = 0
    relists: int = 0
    reconnects: int = 0
    streams: int = 0
    lines: int = 0
    #: lists answered 410 Gone (an expired continue token, or a fault)
    lists_gone: int = 0
    #: envelopes the lists forwarded: items new or changed since what the relay knew (nothing, at a
    #: start without a checkpoint), and DELETED for pods gone meanwhile
    initial_forwarded: int = 0
    #: time.monotonic() of the last line or list (/healthz bounds the time since)
    last_progress: float = field(default_factory=time.monotonic)
    #: unexpected errors in the loop (a bug, not the API server): each restarted the watch (relist)
    restarts: int = 0
    #: of those, how many in a row without a line handled well since (/healthz)
    restarts_in_a_row: int = 0
    #: the last one, `Type: message`
    last_error: str | None = None
    #: the API server's last answer refused the call (403: RBAC does not grant it); cleared by a list
    forbidden: bool = False


def iter_lines(response: Any) -> Iterator[bytes]:
    """The lines of a streamed (chunked) response as they arrive; the last one even without `\\n`."""
    buffer = bytearray()
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) != -1:
            if end > start:
                yield bytes(buffer[start:end])
            start = end + 1
        del buffer[:start]
    if buffer.strip():
        yield bytes(buffer)


def _status(exc: ApiException) -> int:
    return int(exc.status or 0)


class ListWatcher:
    """Lists, then watches, one resource in one namespace scope (None: all namespaces)."""

    def __init__(
        self,
        *,
        api: CoreV1Api,
        relay: Consumer,
        resource: Resource,
        namespace: str | None,
        stop: threading.Event,
        request_timeout: float = 10.0,
        watch_timeout: int = 300,
        inactivity_timeout: float = 120.0,
        page_size: int = 500,
        backoff_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        on_line: Callable[[str], None] | None = None,
        after: threading.Event | None = None,
    ) -> None:
        self.api = api
        self.relay = relay
        self.resource = resource
        self.namespace = namespace
        self.stop = stop
        self.request_timeout = request_timeout
        self.watch_timeout = watch_timeout
        self.inactivity_timeout = inactivity_timeout
        self.page_size = page_size
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        #: called with each outcome label: a hook for tests and metrics
        self.on_line = on_line
        #: the first list waits until this is set (the namespace watch knows the selection)
        self.after = after
        #: set by `relist`: list again before watching on
        self._relist_wanted = threading.Event()
        #: the version the next watch starts from; None means "list first"
        self.resource_version: str | None = None
        self.stats = WatchStats()
        #: set once the first list is complete (/readyz)
        self.synced = threading.Event()
        self._response: Any = None
        self._response_lock = threading.Lock()

    @property
    def scope(self) -> str:
        return f"{self.resource.plural}@{self.namespace or '*'}"

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Loop until `stop` is set. Never returns on errors the API server may recover from."""
        failures = 0
        while self.after is not None and not self.after.wait(0.1):
            if self.stop.is_set():
                return
        while not self.stop.is_set():
            if self._relist_wanted.is_set():
                self._relist_wanted.clear()
                self.resource_version = None
            listing = self.resource_version is None
            try:
                if listing:
                    self.resource_version = self.list()
                    listing = False
                progressed = self.watch_once()
            except WatchExpired as exc:
                self.resource_version = None
                if listing:
                    # The list itself was answered 410: relisting at once could spin; back off.
                    self.stats.lists_gone += 1
                    failures += 1
                    log.warning("list expired (410), relisting after a backoff", extra={"scope": self.scope})
                else:
                    self.stats.relists += 1
                    log.info("watch expired, relisting", extra={"scope": self.scope, "detail": str(exc)})
                    continue
            except ApiException as exc:
                failures += 1
                self.stats.forbidden = _status(exc) == 403
                log.warning(
                    "API server answered with an error, reconnecting",
                    extra={
                        "scope": self.scope,
                        "status": exc.status,
                        "reason": exc.reason,
                        "failures": failures,
                    },
                )
            except RETRYABLE as exc:
                if self.stop.is_set():
                    break  # interrupt() cut the stream on purpose
                if self._relist_wanted.is_set():
                    continue  # relist() cut it: list again at once
                failures += 1
                log.warning(
                    "watch connection failed, reconnecting",
                    extra={
                        "scope": self.scope,
                        "error": f"{type(exc).__name__}: {exc}",
                        "failures": failures,
                    },
                )
            except Exception as exc:  # noqa: BLE001  # a bug restarts this watch, never ends it
                if self.stop.is_set():
                    break
                failures += 1
                self._restart(exc)
            else:
                self.stats.restarts_in_a_row = 0
                failures = 0 if progressed or self._relist_wanted.is_set() else failures + 1
                if failures == 0:
                    continue
            self.stats.reconnects += 1
            self.stop.wait(self._backoff(failures))

    def _restart(self, exc: Exception) -> None:
        """After an unexpected error: count it, log it with its traceback, and list again (the
        stream's position is not trusted, and a line that keeps failing is not read again)."""
        self.resource_version = None
        stats = self.stats
        stats.restarts += 1
        stats.restarts_in_a_row += 1
        stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.error(
            "watch failed unexpectedly, restarting it with a relist after a backoff",
            exc_info=exc,
            extra={"scope": self.scope, "error": stats.last_error, "restarts": stats.restarts},
        )

    def _backoff(self, failures: int) -> float:
        base = min(self.backoff_max_seconds, self.backoff_seconds * 2.0 ** max(0, failures - 1))
        return base * (0.5 + random.random() / 2)

    def relist(self) -> None:
        """List again soon (the stream is cut, the next loop lists): what the consumer takes from
        the collection changed (`NamespaceScopes`: a namespace joined the selection). Requests
        before the list starts count once."""
        self._relist_wanted.set()
        self.interrupt()

    def interrupt(self) -> None:
        """Unblock a thread waiting on the stream (used on shutdown, after setting `stop`)."""
        with self._response_lock:
            if self._response is not None:
                try:
                    self._response.shutdown()
                except OSError:
                    # Its socket is closed already (the server ended the stream, urllib3 closed
                    # it): nothing is blocked on it, and shutting down must not fail for that.
                    log.debug("watch stream already closed", extra={"scope": self.scope})

    # ------------------------------------------------------------------ list

    def _call(self, **kwargs: Any) -> Any:
        """The list/watch call of this resource and scope, raw (`_preload_content=False`).
        `410 Gone` becomes `WatchExpired`; other API errors propagate as `ApiException`."""
        if self.resource.field_selector:
            kwargs["field_selector"] = self.resource.field_selector
        if self.resource.label_selector:
            kwargs["label_selector"] = self.resource.label_selector
        kwargs["_preload_content"] = False
        try:
            return list_call(self.api, self.resource, self.namespace, **kwargs)
        except ApiException as exc:
            if _status(exc) == 410:
                raise WatchExpired(f"{self.scope}: {exc.reason}") from exc
            raise

    def list(self) -> str:
        """List every page; feed each item to the relay as an initial-sync ADDED; flush; return
        the list's resourceVersion (the first page's: all pages are one snapshot)."""
        version: str | None = None
        token: str | None = None
        items = forwarded = 0
        seen: list[str] = []
        while True:
            kwargs: dict[str, Any] = {"limit": self.page_size, "_request_timeout": self.request_timeout}
            if token:
                kwargs["_continue"] = token
            response = self._call(**kwargs)
            try:
                body = loads(response.data)
            except ValueError as exc:
                raise urllib3.exceptions.ProtocolError(f"{self.scope}: list response is not JSON") from exc
            finally:
                response.release_conn()
            meta = body.get("metadata") or {}
            version = version or meta.get("resourceVersion")
            for item in body.get("items") or []:
                if isinstance(item, dict):
                    item.setdefault("kind", self.resource.kind)  # list items carry no kind
                    uid = (item.get("metadata") or {}).get("uid")
                    if isinstance(uid, str):
                        seen.append(uid)
                forwarded += self._feed({"type": "ADDED", "object": item}, initial_sync=True) == "forwarded"
                items += 1
            token = meta.get("continue") or None
            if not token:
                break
        if not version:
            raise urllib3.exceptions.ProtocolError(f"{self.scope}: list response without a resourceVersion")
        self.stats.lists += 1
        self.stats.last_progress = time.monotonic()
        self.stats.forbidden = False
        if self.resource.reconciles:
            # What the relay knew here and the list no longer has is gone: say so (synthetic DELETED).
            gone = self.relay.reconcile(self.namespace, seen, version)
            forwarded += gone if self.resource.plural != "namespaces" else 0
        self.stats.initial_forwarded += forwarded
        self._flush()
        self.synced.set()
        log.info(
            "listed",
            extra={"scope": self.scope, "items": items, "forwarded": forwarded, "resource_version": version},
        )
        return version

    # ------------------------------------------------------------------ watch

    def watch_once(self) -> bool:
        """One watch request, read to its end. True if it delivered at least one line."""
        response = self._call(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout,
            _request_timeout=(self.request_timeout, self.inactivity_timeout),
        )
        self.stats.streams += 1
        lines = 0
        with self._response_lock:
            self._response = response
        try:
            if self._relist_wanted.is_set():
                return False  # asked before the stream was there to cut: `run` lists again
            for line in iter_lines(response):
                if self.stop.is_set():
                    break
                lines += 1
                self.stats.lines += 1
                self.stats.last_progress = time.monotonic()
                result = self._feed_line(line)
                self.stats.restarts_in_a_row = 0  # a line went well: whatever failed healed
                if result.outcome == "relist":
                    raise WatchExpired(f"{self.scope}: 410 Gone in the watch stream")
                if result.resource_version is not None:
                    self.resource_version = result.resource_version
        finally:
            with self._response_lock:
                self._response = None
            # Close, not just release: a half-read stream must not go back to the pool.
            response.close()
            response.release_conn()
        self._flush()
        return lines > 0

    def _feed(self, event: dict[str, Any], *, initial_sync: bool = False) -> str:
        outcome = "forwarded"  # what it was when the sink fails flushing the batch it completed
        with sink_failures_logged():
            outcome = self.relay.handle(event, initial_sync=initial_sync)
        self._report(outcome)
        return outcome

    def _feed_line(self, line: bytes) -> LineResult:
        result = LineResult("forwarded", None)  # as `_feed`
        with sink_failures_logged():
            result = self.relay.process_line(line)
        self._report(result.outcome)
        return result

    def _report(self, outcome: str) -> None:
        if self.on_line is not None:
            self.on_line(outcome)

    def _flush(self) -> None:
        with sink_failures_logged():
            self.relay.flush()


@contextlib.contextmanager
def sink_failures_logged() -> Iterator[None]:
    """Log a failing sink (`SinkUnavailable`, `SinkRejected`) and go on: the envelopes it did not
    take stay queued in the relay, and the next flush retries them."""
    try:
        yield
    except (SinkUnavailable, SinkRejected) as exc:
        log.exception(
            "sink failed; envelopes kept for the next flush", extra={"error": str(exc), "reason": exc.reason}
        )


def flush_periodically(relay: Consumer, stop: threading.Event, interval: float) -> None:
    """Flush the relay every `interval` until `stop`: a forwarded event never waits longer than
    that for its batch to fill. Sink failures are logged; the envelopes stay queued."""
    while not stop.wait(interval):
        try:
            with sink_failures_logged():
                relay.flush()
        except Exception:  # the flusher must outlive a bug: the next tick retries
            log.exception("flush failed unexpectedly; envelopes kept for the next flush")


# --------------------------------------------------------------------------- cluster facts


def kube_system_uid(api: CoreV1Api, *, request_timeout: float) -> str:
    """The uid of the kube-system namespace: a stable id of the cluster when none is configured."""
    # raw (`_preload_content=False`): an HTTP response, not the V1Namespace the client's hints say
    response: Any = api.read_namespace(
        "kube-system", _preload_content=False, _request_timeout=request_timeout
    )
    try:
        uid = loads(response.data).get("metadata", {}).get("uid")
    finally:
        response.release_conn()
    if not isinstance(uid, str) or not uid:
        raise urllib3.exceptions.ProtocolError("kube-system namespace has no metadata.uid")
    return uid


def server_version(api_client: ApiClient, *, request_timeout: float) -> str | None:
    """`gitVersion` of the API server (for the enroll message), None if it cannot be read."""
    try:
        response: Any = VersionApi(api_client).get_code(
            _preload_content=False, _request_timeout=request_timeout
        )
    except (ApiException, *RETRYABLE) as exc:
        log.warning("could not read the API server version", extra={"error": f"{type(exc).__name__}: {exc}"})
        return None
    try:
        version = loads(response.data).get("gitVersion")
    except ValueError:
        return None
    finally:
        response.release_conn()
    return version if isinstance(version, str) else None


# --------------------------------------------------------------------------- scopes


class WatchGroup:
    """The running watchers: pods and pod Events for each namespace scope (None: all), each pair
    on its own threads with its own stop switch, so scopes start and stop independently."""

    def __init__(
        self, *, api: CoreV1Api, relay: Relay, stop: threading.Event, factory: Callable[..., ListWatcher]
    ) -> None:
        self.api = api
        self.relay = relay
        self.stop = stop
        self._factory = factory
        self._scopes: dict[str | None, tuple[threading.Event, list[ListWatcher], list[threading.Thread]]] = {}
        self._extra: list[ListWatcher] = []
        self._lock = threading.Lock()

    def watchers(self) -> list[ListWatcher]:
        with self._lock:
            return [*self._extra, *(w for _, ws, _ in self._scopes.values() for w in ws)]

    @property
    def namespaces(self) -> list[str | None]:
        with self._lock:
            return list(self._scopes)

    def add_watcher(self, watcher: ListWatcher) -> threading.Thread:
        """Run a watcher that is not a namespace scope (the namespace watcher of the label mode)."""
        with self._lock:
            self._extra.append(watcher)
        thread = threading.Thread(target=watcher.run, name=watcher.scope, daemon=True)
        thread.start()
        return thread

    def start_scope(self, namespace: str | None) -> bool:
        with self._lock:
            if self.stop.is_set() or namespace in self._scopes:
                return False
            scope_stop = threading.Event()
            watchers = [
                self._factory(
                    api=self.api, relay=self.relay, resource=r, namespace=namespace, stop=scope_stop
                )
                for r in (PODS, POD_EVENTS)
            ]
            threads = [threading.Thread(target=w.run, name=w.scope, daemon=True) for w in watchers]
            self._scopes[namespace] = (scope_stop, watchers, threads)
        for thread in threads:
            thread.start()
        log.info("watching namespace scope", extra={"namespace": namespace or "*"})
        return True

    def stop_scope(self, namespace: str | None, *, join: float = 0.0) -> bool:
        with self._lock:
            entry = self._scopes.pop(namespace, None)
        if entry is None:
            return False
        scope_stop, watchers, threads = entry
        scope_stop.set()
        for watcher in watchers:
            watcher.interrupt()
        for thread in threads:
            thread.join(timeout=join)
        log.info("stopped watching namespace scope", extra={"namespace": namespace or "*"})
        return True

    def stop_all(self, *, join: float) -> None:
        self.stop.set()
        with self._lock:
            extra = list(self._extra)
        for watcher in extra:
            watcher.interrupt()
        for namespace in self.namespaces:
            self.stop_scope(namespace, join=join)

    def alive(self) -> bool:
        with self._lock:
            return any(t.is_alive() for _, _, ts in self._scopes.values() for t in ts) or not self._scopes


class ControlWatch(abc.ABC):
    """What the consumers of a watch that starts and stops other watchers share (`NamespaceScopes`,
    `objectwatch.CustomResources`): lines read the one way (`watchline.consume_line`), nothing to
    send. A line whose handling fails unexpectedly restarts the watch with a relist
    (`ListWatcher.run`): skipped, it would leave a scope unwatched until the next relist."""

    @abc.abstractmethod
    def handle(self, watch_event: Any, *, initial_sync: bool = False) -> str: ...

    def process_line(self, line: str | bytes, *, initial_sync: bool = False) -> LineResult:
        return consume_line(self, line, initial_sync=initial_sync)

    def note_malformed(self, exc: BadWatchEvent, raw: object) -> str:
        return log_malformed(exc, raw)

    def note_unexpected(self, exc: Exception, raw: object) -> str:
        raise exc

    def flush(self) -> None:
        return None


class NamespaceFollower(Protocol):
    """What else follows the selected namespaces (`objectwatch.ObjectGroup`: the other kinds)."""

    def namespace_selected(self, namespace: str) -> None: ...

    def forget_namespaces_except(self, namespaces: set[str]) -> None: ...


class NamespaceScopes(ControlWatch):
    """Consumer of the namespace watch (label selector mode): a namespace that appears in the
    selection gets its scope started, one that leaves it (deleted, or label removed: the API
    server sends DELETED) gets it stopped and its pods forgotten (nothing is sent for them).
    `follows` (set before the watch starts) hears of both, and forgets with the pods."""

    def __init__(self, group: WatchGroup) -> None:
        self.group = group
        self.follows: NamespaceFollower | None = None
        self._names: dict[str, str] = {}  # uid -> name

    def handle(self, watch_event: Any, *, initial_sync: bool = False) -> str:
        if not isinstance(watch_event, dict):
            return "malformed:not-an-object"
        kind = watch_event.get("type")
        obj = watch_event.get("object")
        if (outcome := stream_outcome(kind, obj)) is not None:
            return outcome
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        uid = meta.get("uid") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not isinstance(uid, str):
            return "malformed:namespace"
        if kind in {"ADDED", "MODIFIED"}:
            self._names[uid] = name
            if self.group.start_scope(name) and self.follows is not None:
                self.follows.namespace_selected(name)
            return "namespace:watched"
        if kind == "DELETED":
            self._forget(uid, name)
            return "namespace:unwatched"
        return "malformed:unknown-type"

    def _forget(self, uid: str, name: str) -> None:
        self._names.pop(uid, None)
        self.group.stop_scope(name)
        self.group.relay.forget_namespace(name)
        if self.follows is not None:
            self.follows.forget_namespaces_except(set(self._names.values()))

    def reconcile(self, namespace: str | None, seen: Iterable[str], resource_version: str) -> int:
        present = set(seen)
        gone = [(uid, name) for uid, name in self._names.items() if uid not in present]
        for uid, name in gone:
            self._forget(uid, name)
        # Pods known from a checkpoint in namespaces no longer selected: not ours to report.
        self.group.relay.forget_namespaces_except(set(self._names.values()))
        if self.follows is not None:
            self.follows.forget_namespaces_except(set(self._names.values()))
        return len(gone)
