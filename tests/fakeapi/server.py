"""A small, protocol-faithful fake Kubernetes API server for tests.

No kube-apiserver can be installed here, and the mock libraries ignore resourceVersions, bookmarks
and 410 (see shared/RECIPES.md). This one speaks enough of the real protocol that the official
`kubernetes` client, over real HTTP, cannot tell the difference for what the relay does:

* one global, monotonically increasing **resourceVersion**; every write stamps the object with the
  next one and appends a watch event to the **history**;
* **list** (`GET /api/v1/pods`, `/api/v1/namespaces/{ns}/pods`, same for `events`, and cluster-scoped
  `namespaces`) returns `{"kind": "PodList", "metadata": {"resourceVersion": ...}, "items": [...]}`
  (items without kind/apiVersion, like the real server), paged with `limit` / `continue`;
* **get** of one object (`/api/v1/namespaces/kube-system`, `/api/v1/namespaces/{ns}/pods/{name}`);
* **watch** (`?watch=1&resourceVersion=&allowWatchBookmarks=&timeoutSeconds=`) over HTTP/1.1
  chunked transfer: every history event after `resourceVersion` that matches the path, namespace,
  `fieldSelector` and `labelSelector`, then live events; BOOKMARKs every `bookmark_interval` when
  allowed; the stream ends cleanly after `timeoutSeconds`; no `resourceVersion` (or `0`) starts
  with synthetic ADDED events for what exists, like the real server;
* **410 Gone**: a watch from a version older than the compacted history gets the real server's
  ERROR event (`{"kind": "Status", "reason": "Expired", "code": 410}`) and the stream ends; an
  expired `continue` token answers HTTP 410;
* `GET /version`;
* **writes with optimistic concurrency** (`coordination.k8s.io/v1` Leases, what leader election
  needs): `POST` creates (`409 AlreadyExists` if the name is taken), `PUT` replaces (`404 NotFound`
  if absent, `409 Conflict` when the body's `metadata.resourceVersion` is not the stored one: the
  real server's precondition; no resourceVersion is an unconditional update, as Leases allow).

Fault switches (`FakeKubeApi.faults` and methods): `compact()` (drop history; open watches behind
it get the 410 ERROR), `drop_connections()` (close every open watch stream), `faults.stalled`
(open streams stay connected but send nothing, bookmarks included: a dead connection without FIN),
`faults.list_gone` (the next N list calls answer HTTP 410), `faults.lists_held` (lists of these
plurals wait until the plural is taken out: a slow first list), `faults.forbidden` (every request
for these plurals answers 403 Forbidden, as when RBAC does not grant them).

`faults.before_write` (one shot: called with the method and the body just before the next HTTP
write is applied) lets a test slip another writer in between a client's read and its write.

Extending it (more kinds): add a `ResourceType` to `RESOURCES` (the key is `(group/version prefix,
plural)`); `WRITABLE` lists the plurals `POST`/`PUT` accept. **Custom resources**: `put` of a
`CustomResourceDefinition` serves its kind (each served version) from then on, as the real server
does once the CRD is established; `delete` of the CRD deletes its objects first (a DELETED each),
then stops serving the kind (requests for it answer 404).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    kind: str
    plural: str
    namespaced: bool
    prefix: str = "/api/v1"

    @property
    def group_plural(self) -> tuple[str, str]:
        """The collection whatever the version: every served version shows the same objects."""
        return self.prefix.rsplit("/", 1)[0] if self.prefix != "/api/v1" else "", self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def api_version(self) -> str:
        return "v1" if self.prefix == "/api/v1" else self.prefix.removeprefix("/apis/")


RESOURCES: dict[tuple[str, str], ResourceType] = {
    (r.prefix, r.plural): r
    for r in (
        ResourceType("Pod", "pods", namespaced=True),
        ResourceType("Event", "events", namespaced=True),
        ResourceType("ConfigMap", "configmaps", namespaced=True),
        ResourceType("Secret", "secrets", namespaced=True),
        ResourceType("Service", "services", namespaced=True),
        ResourceType("PersistentVolumeClaim", "persistentvolumeclaims", namespaced=True),
        ResourceType("PersistentVolume", "persistentvolumes", namespaced=False),
        ResourceType("Node", "nodes", namespaced=False),
        ResourceType("Namespace", "namespaces", namespaced=False),
        ResourceType("Lease", "leases", namespaced=True, prefix="/apis/coordination.k8s.io/v1"),
        ResourceType("Deployment", "deployments", namespaced=True, prefix="/apis/apps/v1"),
        ResourceType("ReplicaSet", "replicasets", namespaced=True, prefix="/apis/apps/v1"),
        ResourceType("StatefulSet", "statefulsets", namespaced=True, prefix="/apis/apps/v1"),
        ResourceType("DaemonSet", "daemonsets", namespaced=True, prefix="/apis/apps/v1"),
        ResourceType("Job", "jobs", namespaced=True, prefix="/apis/batch/v1"),
        ResourceType("CronJob", "cronjobs", namespaced=True, prefix="/apis/batch/v1"),
        ResourceType("Ingress", "ingresses", namespaced=True, prefix="/apis/networking.k8s.io/v1"),
        ResourceType(
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            namespaced=True,
            prefix="/apis/autoscaling/v2",
        ),
        ResourceType(
            "PodDisruptionBudget", "poddisruptionbudgets", namespaced=True, prefix="/apis/policy/v1"
        ),
        ResourceType(
            "CustomResourceDefinition",
            "customresourcedefinitions",
            namespaced=False,
            prefix="/apis/apiextensions.k8s.io/v1",
        ),
    )
}
#: plurals that `POST` (create) and `PUT` (replace) accept over HTTP
WRITABLE = frozenset({"leases"})
#: a held list (`Faults.lists_held`) is answered after this at the latest: a test that forgets
#: to release it fails by its assertions, not by a hung server thread
HOLD_SECONDS = 8.0
KINDS: dict[str, ResourceType] = {r.kind: r for r in RESOURCES.values()}

_PATH = re.compile(
    r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)"
    r"(?:/namespaces/(?P<ns>[^/]+))?"
    r"(?:/(?P<plural>[a-z0-9]+))?"
    r"(?:/(?P<name>[^/]+))?/?$"
)


@dataclass
class HistoryEntry:
    rv: int
    type: str
    resource: ResourceType
    obj: Obj
    #: the object before this change (None for ADDED): a selector watch needs it to turn a change
    #: in or out of the selection into ADDED / DELETED, as the real watch cache does
    prev: Obj | None = None
    #: a raw line sent as is to every open watch of `resource` (malformed-input fault)
    raw: bytes | None = None


@dataclass
class Faults:
    """Switches a test flips to make the server misbehave the way real ones do."""

    #: open watch streams send nothing (not even bookmarks) while set; the connection stays open
    stalled: bool = False
    #: the next N list requests answer HTTP 410 Gone
    list_gone: int = 0
    #: the next N watch requests answer HTTP 410 Gone (instead of the ERROR event)
    watch_gone: int = 0
    #: list requests of these plurals wait until the plural is removed (at most `HOLD_SECONDS`)
    lists_held: set[str] = field(default_factory=set)
    #: requests (list, watch, get) of these plurals answer 403 Forbidden, as RBAC refuses them
    forbidden: set[str] = field(default_factory=set)
    #: one shot: called with (method, body) just before the next HTTP write is applied (another
    #: writer slipping in between a client's read and its write: the 409 Conflict case)
    before_write: Callable[[str, Obj], None] | None = None


@dataclass
class RequestLog:
    method: str
    path: str
    query: dict[str, str]
    watch: bool


@dataclass
class WriteLog:
    method: str
    path: str
    code: int


@dataclass
class _Watch:
    sock: socket.socket
    resource: ResourceType
    expired: bool = False
    dropped: bool = False


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _lookup(obj: Obj, dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _selector_matches(obj: Obj, field_selector: str | None, label_selector: str | None) -> bool:
    """Equality selectors (`a.b=c`, `a!=b`, comma-joined), the subset controllers use."""
    for selector, getter in (
        (field_selector, lambda key: _lookup(obj, key)),
        (label_selector, lambda key: (obj.get("metadata", {}).get("labels") or {}).get(key)),
    ):
        if not selector:
            continue
        for term in selector.split(","):
            if "!=" in term:
                key, want = term.split("!=", 1)
                if str(getter(key.strip())) == want.strip():
                    return False
            elif "=" in term:
                key, want = term.replace("==", "=").split("=", 1)
                if str(getter(key.strip())) != want.strip():
                    return False
            elif getter(term.strip()) is None:  # label existence
                return False
    return True


def _selected_type(entry: HistoryEntry, field_selector: str | None, label_selector: str | None) -> str | None:
    """The event type a watch with these selectors sees for `entry`, None if it sees nothing: an
    object changing into the selection is ADDED for it, one changing out of it DELETED."""
    now = entry.type != "DELETED" and _selector_matches(entry.obj, field_selector, label_selector)
    before = entry.prev is not None and _selector_matches(entry.prev, field_selector, label_selector)
    if entry.type == "DELETED":
        return "DELETED" if before else None
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    return "DELETED" if before else None


class FakeKubeApi:
    """The fake API server. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, *, bookmark_interval: float = 1.0, first_resource_version: int = 1000) -> None:
        self.bookmark_interval = bookmark_interval
        self.faults = Faults()
        self.requests: list[RequestLog] = []
        #: every HTTP write (POST/PUT) with the status it was answered
        self.writes: list[WriteLog] = []
        self._rv = first_resource_version
        self._compacted = first_resource_version
        self._objects: dict[tuple[str, str | None, str], Obj] = {}
        self._history: list[HistoryEntry] = []
        self._watches: set[int] = set()
        self._open: dict[int, _Watch] = {}
        self._continues: dict[str, tuple[int, list[Obj]]] = {}
        #: what this server serves: the built-in kinds, and the custom kinds of its CRDs
        self.resources: dict[tuple[str, str], ResourceType] = dict(RESOURCES)
        self.kinds: dict[str, ResourceType] = dict(KINDS)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.kube_system_uid = str(uuid.uuid5(uuid.NAMESPACE_URL, "fakeapi/kube-system"))
        for ns in ("default", "kube-system"):
            self.put({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns}})
        self._objects[("namespaces", None, "kube-system")]["metadata"]["uid"] = self.kube_system_uid

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeKubeApi:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fakeapi", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self.drop_connections()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def write_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig that points the real client at this server (JSON is valid YAML)."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    # ------------------------------------------------------------------ state, for tests

    @property
    def resource_version(self) -> int:
        return self._rv

    @contextmanager
    def atomically(self) -> Iterator[None]:
        """Several writes (and faults) that no watcher can observe in between."""
        with self._changed:
            yield
            self._changed.notify_all()

    def put(self, obj: Obj) -> Obj:
        """Create or replace an object (by kind, namespace, name); ADDED or MODIFIED. Returns the
        stored copy, stamped with uid, creationTimestamp and the new resourceVersion."""
        resource = self.kinds[obj["kind"]]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace") if resource.namespaced else None
        if resource.namespaced and not namespace:
            raise ValueError(f"{resource.kind} needs metadata.namespace")
        key = (resource.plural, namespace, meta["name"])
        with self._changed:
            old = self._objects.get(key)
            if old is not None:
                meta.setdefault("uid", old["metadata"]["uid"])
                meta.setdefault("creationTimestamp", old["metadata"].get("creationTimestamp"))
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            self._record("MODIFIED" if old is not None else "ADDED", resource, key, obj)
            if resource.kind == "CustomResourceDefinition":
                self._serve(obj)
            return copy.deepcopy(obj)

    def update(self, kind: str, namespace: str | None, name: str, change: Callable[[Obj], None]) -> Obj:
        """Apply `change` to the stored object in place and record a MODIFIED."""
        resource = self.kinds[kind]
        key = (resource.plural, namespace if resource.namespaced else None, name)
        with self._changed:
            obj = copy.deepcopy(self._objects[key])
            change(obj)
            self._record("MODIFIED", resource, key, obj)
            return copy.deepcopy(obj)

    def delete(self, kind: str, namespace: str | None, name: str) -> Obj:
        resource = self.kinds[kind]
        key = (resource.plural, namespace if resource.namespaced else None, name)
        with self._changed:
            obj = copy.deepcopy(self._objects[key])
            if resource.kind == "CustomResourceDefinition":
                self._unserve(obj)
            self._record("DELETED", resource, key, obj)
            return copy.deepcopy(obj)

    def _serve(self, crd: Obj) -> None:
        """Serve the custom kind a CRD defines, in each of its served versions."""
        spec = crd["spec"]
        names = spec["names"]
        for version in spec.get("versions") or []:
            if version.get("served", True):
                resource = ResourceType(
                    names["kind"],
                    names["plural"],
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    prefix=f"/apis/{spec['group']}/{version['name']}",
                )
                self.resources[(resource.prefix, resource.plural)] = resource
                self.kinds.setdefault(resource.kind, resource)

    def _unserve(self, crd: Obj) -> None:
        """A CRD going: its objects are deleted first (DELETED each), then the kind is not served."""
        spec = crd["spec"]
        kind = spec["names"]["kind"]
        for (plural, ns, name), _ in list(self._objects.items()):
            if plural == spec["names"]["plural"] and self.kinds.get(kind) is not None:
                self.delete(kind, ns, name)
        prefix = f"/apis/{spec['group']}/"
        for key in [k for k in self.resources if k[0].startswith(prefix) and k[1] == spec["names"]["plural"]]:
            del self.resources[key]
        self.kinds.pop(kind, None)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        resource = self.kinds[kind]
        with self._lock:
            obj = self._objects.get((resource.plural, namespace if resource.namespaced else None, name))
            return copy.deepcopy(obj) if obj is not None else None

    def _record(
        self, watch_type: str, resource: ResourceType, key: tuple[str, str | None, str], obj: Obj
    ) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        prev = self._objects.get(key)
        if watch_type == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        self._history.append(HistoryEntry(self._rv, watch_type, resource, copy.deepcopy(obj), prev=prev))
        self._changed.notify_all()

    def create(self, resource: ResourceType, namespace: str | None, obj: Obj) -> tuple[int, Obj]:
        """HTTP POST: store a new object; 409 AlreadyExists when the name is taken."""
        obj = self._as_stored(resource, namespace, obj)
        name = obj["metadata"].get("name")
        if not name:
            return 422, _status(422, "Invalid", f"{resource.kind}.metadata.name: Required value")
        with self._changed:
            if (resource.plural, namespace, name) in self._objects:
                return 409, _status(409, "AlreadyExists", f'{resource.plural} "{name}" already exists') | {
                    "details": {"name": name, "kind": resource.plural}
                }
            obj["metadata"].pop("resourceVersion", None)
            obj["metadata"].pop("uid", None)
            return 201, self.put(obj)

    def replace(self, resource: ResourceType, namespace: str | None, name: str, obj: Obj) -> tuple[int, Obj]:
        """HTTP PUT: replace an existing object. The body's `metadata.resourceVersion`, when given,
        is a precondition: it must be the stored one (else 409 Conflict, as the real server)."""
        obj = self._as_stored(resource, namespace, obj)
        with self._changed:
            stored = self._objects.get((resource.plural, namespace, name))
            if stored is None:
                return 404, _status(404, "NotFound", f'{resource.plural} "{name}" not found')
            if obj["metadata"].get("name", name) != name:
                return 400, _status(400, "BadRequest", "the name of the object does not match the URL")
            wanted = obj["metadata"].get("resourceVersion")
            if wanted and wanted != stored["metadata"]["resourceVersion"]:
                group = resource.api_version.split("/")[0] if "/" in resource.api_version else ""
                return 409, _status(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {resource.plural}{'.' + group if group else ''} "
                    f'"{name}": the object has been modified; please apply your changes to the latest '
                    "version and try again",
                ) | {"details": {"name": name, "kind": resource.plural}}
            obj["metadata"]["name"] = name
            obj["metadata"]["uid"] = stored["metadata"]["uid"]
            obj["metadata"]["creationTimestamp"] = stored["metadata"].get("creationTimestamp")
            return 200, self.put(obj)

    @staticmethod
    def _as_stored(resource: ResourceType, namespace: str | None, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        obj["kind"] = resource.kind
        obj["apiVersion"] = resource.api_version
        meta = obj.setdefault("metadata", {})
        if resource.namespaced:
            meta["namespace"] = namespace
        return obj

    def inject_raw(self, kind: str, line: bytes) -> None:
        """Send `line` verbatim (e.g. not JSON) to every watch of `kind` from now on (no new
        resourceVersion: the stream merely carries garbage once)."""
        with self._changed:
            resource = self.kinds[kind]
            self._history.append(HistoryEntry(self._rv, "RAW", resource, {}, raw=line))
            self._changed.notify_all()

    # ------------------------------------------------------------------ faults

    def compact(self) -> int:
        """Forget the history up to now, as etcd compaction does. Watches that have not yet sent
        everything up to now get the 410 ERROR event; list/watch from older versions get 410."""
        with self._changed:
            self._compacted = self._rv
            self._history.clear()
            self._continues.clear()
            for watch in self._open.values():
                watch.expired = True
            self._changed.notify_all()
            return self._compacted

    def drop_connections(self) -> int:
        """Close every open watch stream at once (connection reset by the server)."""
        with self._changed:
            watches = list(self._open.values())
            for watch in watches:
                watch.dropped = True
            self._changed.notify_all()
        for watch in watches:
            with contextlib.suppress(OSError):  # already closed by the client
                watch.sock.shutdown(socket.SHUT_RDWR)
        return len(watches)

    @property
    def open_watches(self) -> int:
        with self._lock:
            return len(self._open)

    def watch_requests(self, plural: str | None = None) -> list[RequestLog]:
        return [r for r in self.requests if r.watch and (plural is None or r.path.endswith("/" + plural))]

    def list_requests(self, plural: str | None = None) -> list[RequestLog]:
        return [r for r in self.requests if not r.watch and (plural is None or r.path.endswith("/" + plural))]

    # ------------------------------------------------------------------ queries (under the lock)

    def _matching(self, resource: ResourceType, namespace: str | None, query: dict[str, str]) -> list[Obj]:
        out = [
            obj
            for (plural, ns, _), obj in self._objects.items()
            if plural == resource.plural
            and (namespace is None or ns == namespace)
            and _selector_matches(obj, query.get("fieldSelector"), query.get("labelSelector"))
        ]
        return sorted(out, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))

    def _list(self, resource: ResourceType, namespace: str | None, query: dict[str, str]) -> tuple[int, Obj]:
        with self._lock:
            if self.faults.list_gone > 0:
                self.faults.list_gone -= 1
                return 410, _status(410, "Expired", "The provided resourceVersion is too old (fault switch)")
            token = query.get("continue")
            if token:
                stored = self._continues.pop(token, None)
                if stored is None:
                    return 410, _status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list",
                    )
                rv, remaining = stored
            else:
                rv, remaining = (
                    self._rv,
                    [copy.deepcopy(o) for o in self._matching(resource, namespace, query)],
                )
            limit = int(query.get("limit") or 0)
            page, rest = (remaining[:limit], remaining[limit:]) if limit > 0 else (remaining, [])
            meta: Obj = {"resourceVersion": str(rv)}
            if rest:
                next_token = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
                self._continues[next_token] = (rv, rest)
                meta["continue"] = next_token
                meta["remainingItemCount"] = len(rest)
        items = []
        for obj in page:
            item = dict(obj)
            item.pop("kind", None)
            item.pop("apiVersion", None)
            items.append(item)
        return 200, {
            "kind": resource.list_kind,
            "apiVersion": resource.api_version,
            "metadata": meta,
            "items": items,
        }


# --------------------------------------------------------------------------- HTTP


def _handler_for(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = api

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeKubeApi

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet tests; `FakeKubeApi.requests` records what was asked

    def _send_json(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        watch = query.get("watch", "").lower() in {"1", "true"}
        self.fake.requests.append(RequestLog("GET", parts.path, query, watch))
        if parts.path.rstrip("/") == "/version":
            self._send_json(
                200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-fakeapi", "platform": "linux/amd64"}
            )
            return
        match = _PATH.match(parts.path)
        if match is None:
            self._send_json(404, _status(404, "NotFound", f"the server could not find {parts.path}"))
            return
        prefix, ns, plural, name = match.group("prefix", "ns", "plural", "name")
        if plural is None and ns is not None:  # /api/v1/namespaces/{name}
            plural, name, ns = "namespaces", ns, None
        resource = self.fake.resources.get((prefix, plural or ""))
        if resource is None:
            self._send_json(404, _status(404, "NotFound", f"the server could not find {parts.path}"))
            return
        if resource.plural in self.fake.faults.forbidden:
            self._send_json(403, _status(403, "Forbidden", f"{resource.plural} is forbidden (fault switch)"))
            return
        if name is not None:
            obj = self.fake.get(resource.kind, ns, name)
            if obj is None:
                self._send_json(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
            else:
                self._send_json(200, obj)
            return
        if watch:
            self._watch(resource, ns, query)
        else:
            held_until = time.monotonic() + HOLD_SECONDS
            while resource.plural in self.fake.faults.lists_held and time.monotonic() < held_until:
                time.sleep(0.02)
            code, body = self.fake._list(resource, ns, query)
            self._send_json(code, body)

    # ------------------------------------------------------------------ writes

    def do_POST(self) -> None:
        self._write("POST")

    def do_PUT(self) -> None:
        self._write("PUT")

    def _write(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.fake.requests.append(RequestLog(method, parts.path, query, False))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        match = _PATH.match(parts.path)
        resource = (
            self.fake.resources.get((match.group("prefix"), match.group("plural") or "")) if match else None
        )
        if match is None or resource is None or resource.plural not in WRITABLE:
            code, body = 405, _status(405, "MethodNotAllowed", f"{method} {parts.path} is not supported")
        else:
            ns, name = match.group("ns"), match.group("name")
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                code, body = 400, _status(400, "BadRequest", "the body is not a JSON object")
            elif (method == "POST") != (name is None):
                code, body = 405, _status(405, "MethodNotAllowed", f"{method} {parts.path} is not supported")
            else:
                with self.fake._lock:
                    hook, self.fake.faults.before_write = self.fake.faults.before_write, None
                if hook is not None:
                    hook(method, obj)
                if method == "POST":
                    code, body = self.fake.create(resource, ns, obj)
                else:
                    code, body = self.fake.replace(resource, ns, name, obj)
        self.fake.writes.append(WriteLog(method, parts.path, code))
        self._send_json(code, body)

    # ------------------------------------------------------------------ watch

    def _chunk(self, event: Obj) -> None:
        # Compact, in the Go API server's layout: the relay's fast path recognises exactly that.
        self._raw_chunk(json.dumps(event, separators=(",", ":")).encode())

    def _raw_chunk(self, line: bytes) -> None:
        data = line + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _pending(self, cursor: int, sent_raw: set[int]) -> list[HistoryEntry]:
        return [
            h
            for h in self.fake._history
            if h.rv > cursor or (h.raw is not None and h.rv >= cursor and id(h) not in sent_raw)
        ]

    def _watch(self, resource: ResourceType, namespace: str | None, query: dict[str, str]) -> None:
        fake = self.fake
        bookmarks = query.get("allowWatchBookmarks", "").lower() in {"1", "true"}
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        requested = query.get("resourceVersion") or "0"
        try:
            cursor = int(requested)
        except ValueError:
            self._send_json(400, _status(400, "BadRequest", f"invalid resourceVersion {requested!r}"))
            return
        with fake._lock:
            gone = fake.faults.watch_gone > 0
            if gone:
                fake.faults.watch_gone -= 1
        if gone:
            self._send_json(410, _status(410, "Expired", "too old resource version (fault switch)"))
            return
        sent_raw: set[int] = set()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        watch = _Watch(self.connection, resource)
        with fake._lock:
            fake._open[id(watch)] = watch
            initial: list[Obj] = []
            if cursor == 0:  # "any version": synthetic ADDED for what exists now, then live
                initial = [
                    {"type": "ADDED", "object": copy.deepcopy(o)}
                    for o in fake._matching(resource, namespace, query)
                ]
                cursor = fake._rv
            elif cursor < fake._compacted:
                watch.expired = True
        next_bookmark = time.monotonic() + fake.bookmark_interval
        try:
            for event in initial:
                self._chunk(event)
            while not fake._stopping.is_set():
                with fake._changed:
                    if not watch.expired and not watch.dropped:
                        pending = self._pending(cursor, sent_raw)
                        if not pending or fake.faults.stalled:
                            wait = min(deadline, next_bookmark) - time.monotonic()
                            fake._changed.wait(timeout=max(0.0, min(wait, 0.2)))
                            pending = self._pending(cursor, sent_raw)
                    if watch.expired and cursor >= fake._compacted:
                        watch.expired = False  # it had sent everything the compaction dropped
                    expired, dropped, stalled = watch.expired, watch.dropped, fake.faults.stalled
                    current = fake._rv
                if dropped:
                    return
                if expired:
                    self._chunk(
                        {
                            "type": "ERROR",
                            "object": _status(
                                410, "Expired", f"too old resource version: {cursor} ({fake._compacted})"
                            ),
                        }
                    )
                    break
                if stalled:
                    continue
                for entry in pending:
                    if entry.raw is not None:
                        sent_raw.add(id(entry))
                        if entry.resource.group_plural == resource.group_plural:
                            self._raw_chunk(entry.raw)
                        continue
                    cursor = entry.rv
                    if entry.resource.group_plural != resource.group_plural:
                        continue
                    if namespace is not None and entry.obj["metadata"].get("namespace") != namespace:
                        continue
                    event_type = _selected_type(entry, query.get("fieldSelector"), query.get("labelSelector"))
                    if event_type is not None:
                        self._chunk({"type": event_type, "object": entry.obj})
                now = time.monotonic()
                if now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    cursor = max(cursor, current)
                    self._chunk(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": resource.kind,
                                "apiVersion": "v1",
                                "metadata": {"resourceVersion": str(cursor)},
                            },
                        }
                    )
                    next_bookmark = now + fake.bookmark_interval
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return  # the client went away, or drop_connections() cut the stream
        finally:
            with fake._lock:
                fake._open.pop(id(watch), None)
            self.close_connection = True
