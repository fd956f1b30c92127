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
   jittered exponential backoff. A `threading.Event` stops the loop.

The official `Watch.stream` is not used: it retries a 410 once and then raises, and turns its own
retries off when `timeout_seconds` is given.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client import ApiClient, CoreV1Api, VersionApi
from kubernetes.client.exceptions import ApiException

from podwatch_relay.errors import BadWatchEvent, SinkRejected, SinkUnavailable, WatchExpired
from podwatch_relay.pipeline import Relay, parse_watch_line, resource_version_of

log = logging.getLogger("podwatch_relay.watch")

#: Errors after which the same request may succeed later: reconnect with backoff.
RETRYABLE = (urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True, slots=True)
class Resource:
    """A watched collection of the core/v1 API."""

    plural: str
    kind: str
    field_selector: str | None = None


PODS = Resource("pods", "Pod")
#: Only Events about pods: the API server filters, so the relay never sees the rest.
POD_EVENTS = Resource("events", "Event", field_selector="involvedObject.kind=Pod")


@dataclass(slots=True)
class WatchStats:
    lists: int = 0
    relists: int = 0
    reconnects: int = 0
    streams: int = 0
    lines: int = 0
    #: time.monotonic() of the last line or list (issue: /healthz bounds the time since)
    last_progress: float = 0.0


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
        relay: Relay,
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
        #: the version the next watch starts from; None means "list first"
        self.resource_version: str | None = None
        self.stats = WatchStats()
        self._response: Any = None
        self._response_lock = threading.Lock()

    @property
    def scope(self) -> str:
        return f"{self.resource.plural}@{self.namespace or '*'}"

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Loop until `stop` is set. Never returns on errors the API server may recover from."""
        failures = 0
        while not self.stop.is_set():
            try:
                if self.resource_version is None:
                    self.resource_version = self.list()
                progressed = self.watch_once()
            except WatchExpired as exc:
                self.resource_version = None
                self.stats.relists += 1
                log.info("watch expired, relisting", extra={"scope": self.scope, "detail": str(exc)})
                continue
            except ApiException as exc:
                failures += 1
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
                failures += 1
                log.warning(
                    "watch connection failed, reconnecting",
                    extra={
                        "scope": self.scope,
                        "error": f"{type(exc).__name__}: {exc}",
                        "failures": failures,
                    },
                )
            else:
                failures = 0 if progressed else failures + 1
                if failures == 0:
                    continue
            self.stats.reconnects += 1
            self.stop.wait(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        base = min(self.backoff_max_seconds, self.backoff_seconds * 2.0 ** max(0, failures - 1))
        return base * (0.5 + random.random() / 2)

    def interrupt(self) -> None:
        """Unblock a thread waiting on the stream (used on shutdown, after setting `stop`)."""
        with self._response_lock:
            if self._response is not None:
                self._response.shutdown()

    # ------------------------------------------------------------------ list

    def _call(self, **kwargs: Any) -> Any:
        """The list/watch call of this resource and scope, raw (`_preload_content=False`).
        `410 Gone` becomes `WatchExpired`; other API errors propagate as `ApiException`."""
        if self.resource.field_selector:
            kwargs["field_selector"] = self.resource.field_selector
        kwargs["_preload_content"] = False
        try:
            if self.resource.plural == "pods":
                if self.namespace is None:
                    return self.api.list_pod_for_all_namespaces(**kwargs)
                return self.api.list_namespaced_pod(self.namespace, **kwargs)
            if self.namespace is None:
                return self.api.list_event_for_all_namespaces(**kwargs)
            return self.api.list_namespaced_event(self.namespace, **kwargs)
        except ApiException as exc:
            if _status(exc) == 410:
                raise WatchExpired(f"{self.scope}: {exc.reason}") from exc
            raise

    def list(self) -> str:
        """List every page; feed each item to the relay as an initial-sync ADDED; flush; return
        the list's resourceVersion (the first page's: all pages are one snapshot)."""
        version: str | None = None
        token: str | None = None
        items = 0
        while True:
            kwargs: dict[str, Any] = {"limit": self.page_size, "_request_timeout": self.request_timeout}
            if token:
                kwargs["_continue"] = token
            response = self._call(**kwargs)
            try:
                body = json.loads(response.data)
            except ValueError as exc:
                raise urllib3.exceptions.ProtocolError(f"{self.scope}: list response is not JSON") from exc
            finally:
                response.release_conn()
            meta = body.get("metadata") or {}
            version = version or meta.get("resourceVersion")
            for item in body.get("items") or []:
                if isinstance(item, dict):
                    item.setdefault("kind", self.resource.kind)  # list items carry no kind
                self._feed({"type": "ADDED", "object": item}, initial_sync=True)
                items += 1
            token = meta.get("continue") or None
            if not token:
                break
        if not version:
            raise urllib3.exceptions.ProtocolError(f"{self.scope}: list response without a resourceVersion")
        self.stats.lists += 1
        self.stats.last_progress = time.monotonic()
        self._flush()
        log.info("listed", extra={"scope": self.scope, "items": items, "resource_version": version})
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
            for line in iter_lines(response):
                if self.stop.is_set():
                    break
                lines += 1
                self.stats.lines += 1
                self.stats.last_progress = time.monotonic()
                try:
                    event = parse_watch_line(line)
                except BadWatchEvent as exc:
                    self._report(self.relay.note_malformed(exc, line))
                    continue
                outcome = self._feed(event)
                if outcome == "relist":
                    raise WatchExpired(f"{self.scope}: 410 Gone in the watch stream")
                version = resource_version_of(event)
                if version is not None and event.get("type") != "ERROR":
                    self.resource_version = version
        finally:
            with self._response_lock:
                self._response = None
            # Close, not just release: a half-read stream must not go back to the pool.
            response.close()
            response.release_conn()
        self._flush()
        return lines > 0

    def _feed(self, event: dict[str, Any], *, initial_sync: bool = False) -> str:
        try:
            outcome = self.relay.handle(event, initial_sync=initial_sync)
        except (SinkUnavailable, SinkRejected) as exc:
            # The envelopes stay queued in the relay; the watch goes on and the next flush retries.
            log.exception(
                "sink failed; envelopes kept for the next flush",
                extra={"error": str(exc), "reason": exc.reason},
            )
            outcome = "forwarded"
        self._report(outcome)
        return outcome

    def _report(self, outcome: str) -> None:
        if self.on_line is not None:
            self.on_line(outcome)

    def _flush(self) -> None:
        try:
            self.relay.flush()
        except (SinkUnavailable, SinkRejected) as exc:
            log.exception(
                "sink failed; envelopes kept for the next flush",
                extra={"error": str(exc), "reason": exc.reason},
            )


def flush_periodically(relay: Relay, stop: threading.Event, interval: float) -> None:
    """Flush the relay every `interval` until `stop`: a forwarded event never waits longer than
    that for its batch to fill. Sink failures are logged; the envelopes stay queued."""
    while not stop.wait(interval):
        try:
            relay.flush()
        except (SinkUnavailable, SinkRejected):
            log.exception("sink failed; envelopes kept for the next flush")


# --------------------------------------------------------------------------- cluster facts


def kube_system_uid(api: CoreV1Api, *, request_timeout: float) -> str:
    """The uid of the kube-system namespace: a stable id of the cluster when none is configured."""
    response = api.read_namespace("kube-system", _preload_content=False, _request_timeout=request_timeout)
    try:
        uid = json.loads(response.data).get("metadata", {}).get("uid")
    finally:
        response.release_conn()
    if not isinstance(uid, str) or not uid:
        raise urllib3.exceptions.ProtocolError("kube-system namespace has no metadata.uid")
    return uid


def server_version(api_client: ApiClient, *, request_timeout: float) -> str | None:
    """`gitVersion` of the API server (for the enroll message), None if it cannot be read."""
    try:
        response = VersionApi(api_client).get_code(_preload_content=False, _request_timeout=request_timeout)
    except (ApiException, *RETRYABLE) as exc:
        log.warning("could not read the API server version", extra={"error": f"{type(exc).__name__}: {exc}"})
        return None
    try:
        version = json.loads(response.data).get("gitVersion")
    except ValueError:
        return None
    finally:
        response.release_conn()
    return version if isinstance(version, str) else None
