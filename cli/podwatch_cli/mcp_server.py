"""`podwatch mcp`: the event history as an MCP server (the official `mcp` SDK), so agents can ask what
happened.

    podwatch mcp                                        # stdio: an MCP client runs it as a command
    podwatch mcp --transport http --port 8000           # streamable HTTP at http://127.0.0.1:8000/mcp
    PODWATCH_MCP_TOKEN=... podwatch mcp --transport http  # only for `Authorization: Bearer ...`

Tools `query_events`, `object_history`, `open_incidents`; one resource per incident,
`podwatch://incidents/{id}` (the open ones are listed). Every answer comes from the history API
through the CLI's `HistoryClient` (SigV4 to a deployed stack, plain HTTP to the local one); an API
error comes back as a tool error carrying the API's message. Incidents are derived from the
records' classification (`podwatch_cli.incidents`).
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import anyio
import anyio.to_thread
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.types import Resource as MCPResource
from pydantic import Field
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from podwatch_cli import __version__
from podwatch_cli.events import EventsError, HistoryClient, since_start
from podwatch_cli.incidents import (
    FIRING,
    URI_PREFIX,
    IncidentId,
    incidents_of,
    is_deletion_of,
    matches,
    summary,
)

log = logging.getLogger(__name__)

#: the API's page size limit (larger `limit`s are cut to it)
MAX_LIMIT = 1000
#: pages `open_incidents` and a workload incident read at most (1000 records each)
MAX_PAGES = 10
INSTRUCTIONS = """\
podwatch's event history of Kubernetes clusters: every pod transition (healthy ones too) and every
Kubernetes Event about a pod, each with podwatch's classification (event type such as crash-loop,
oom-kill, image-pull; decision forwarded/deduplicated/filtered; incident id). Kept 14 days.
Start with open_incidents (what is wrong now), then object_history for one pod (its states and
the Events about it), and query_events to search by time, namespace, reason or event type.
Times are RFC 3339 with an offset (2026-11-20T09:00:00Z); `since` (30m, 6h, 2d) counts back from now.
"""

Cluster = Annotated[
    str | None,
    Field(description="cluster id; default: the server's --cluster, else the API's default cluster"),
]
Start = Annotated[str | None, Field(description="RFC 3339 time with offset, e.g. 2026-11-20T09:00:00Z")]
End = Annotated[str | None, Field(description="RFC 3339 time with offset; default: now")]
Since = Annotated[
    str | None,
    Field(description="instead of start: how far back from now, a number and s/m/h/d (30m, 6h, 2d)"),
]
Full = Annotated[
    bool,
    Field(
        description="true: each record with its whole pod snapshot (labels, conditions, owners): 3.5x longer"
    ),
]


@dataclass
class History:
    """The history API, asked the way the tools need; raises EventsError with the API's message."""

    client: HistoryClient
    cluster: str | None = None

    def _path(self, cluster: str | None, rest: str) -> str:
        chosen = cluster or self.cluster
        return (f"/clusters/{quote(chosen, safe='')}" if chosen else "") + "/api/v1" + rest

    def events_page(self, params: dict[str, str], cluster: str | None) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(self._path(cluster, "/events"), params).json()
        return body

    def object(
        self, namespace: str, kind: str, name: str, params: dict[str, str], cluster: str | None
    ) -> Any:
        path = f"/events/{quote(namespace, safe='')}/{quote(kind, safe='')}/{quote(name, safe='')}"
        return self.client.get(self._path(cluster, path), params).json()

    def all_events(self, params: dict[str, str], cluster: str | None) -> tuple[list[dict[str, Any]], bool]:
        """Every record of a list query, up to MAX_PAGES pages; (records, complete)."""
        params = {**params, "limit": str(MAX_LIMIT)}
        records: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = self.events_page(params, cluster)
            records += page["events"]
            if not page.get("nextCursor"):
                return records, True
            params = {**params, "cursor": page["nextCursor"]}
        return records, False


def window(start: str | None, end: str | None, since: str | None) -> dict[str, str]:
    """The API's start/end parameters; `since` counts back from this machine's clock."""
    if since and start:
        raise EventsError("give start or since, not both")
    params = {"end": end} if end else {}
    if since:
        params["start"] = since_start(since, datetime.now(UTC))
    elif start:
        params["start"] = start
    return params


def _given(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


# --------------------------------------------------------------------------- what each tool does


def query_events(history: History, filters: dict[str, str], *, full: bool, cluster: str | None) -> Any:
    page = history.events_page(filters, cluster)
    if not full:
        page["events"] = [summary(r) for r in page["events"]]
    return page


def object_history(
    history: History,
    namespace: str,
    kind: str,
    name: str,
    params: dict[str, str],
    *,
    full: bool,
    cluster: str | None,
) -> dict[str, Any]:
    view = history.object(namespace, kind, name, params, cluster)
    records = view["watchEvents"] + view["relatedEvents"]
    shown = (lambda r: r) if full else summary
    answer = {
        "object": view["object"],
        "incidents": [i.as_dict() for i in incidents_of(records)],
        "watchEvents": [shown(r) for r in view["watchEvents"]],
        "relatedEvents": [shown(r) for r in view["relatedEvents"]],
    }
    # the relations of a newer API (owner chain, a pod's node), their records summarised too
    if "owners" in view:
        answer["owners"] = [_with_records(owner, shown) for owner in view["owners"]]
    if view.get("node"):
        answer["node"] = _with_records(view["node"], shown)
    return answer


def _with_records(related: dict[str, Any], shown: Any) -> dict[str, Any]:
    return {
        **related,
        "watchEvents": [shown(r) for r in related.get("watchEvents", [])],
        "relatedEvents": [shown(r) for r in related.get("relatedEvents", [])],
    }


def open_incidents(
    history: History,
    params: dict[str, str],
    *,
    namespace: str | None,
    workload: str | None,
    include_resolved: bool,
    cluster: str | None,
) -> dict[str, Any]:
    records, complete = history.all_events({**params, **_given(namespace=namespace)}, cluster)
    found = [
        i.as_dict()
        for i in incidents_of(records)
        if matches(i, namespace=namespace, workload=workload) and (include_resolved or i.state == FIRING)
    ]
    return {
        "incidents": found,
        "recordsRead": len(records),
        "complete": complete,
        "window": {"start": params.get("start"), "end": params.get("end")},
    }


def incident(history: History, incident_id: str) -> dict[str, Any]:
    """One incident and its records (newest first): the pod's (node's) history for a pod, container
    or node incident, the namespace's last 24 h for a workload incident."""
    try:
        key = IncidentId.parse(incident_id)
    except ValueError as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    if key.subject is not None:
        kind, namespace, name = key.subject
        view = history.object(namespace or "_", kind.lower(), name, {"limit": str(MAX_LIMIT)}, key.cluster)
        records = view["watchEvents"] + view["relatedEvents"]
    else:
        records, _ = history.all_events({"namespace": key.namespace or ""}, key.cluster)
    mine = [
        r
        for r in records
        if any(c.get("incidentId") == incident_id for c in r.get("classification") or [])
        or is_deletion_of(r, key)
    ]
    found = [i for i in incidents_of(mine) if i.id == incident_id]
    if not found:
        raise ResourceNotFoundError(
            f"no records of incident {incident_id} (unknown, or older than the 14-day retention)"
        )
    mine.sort(key=lambda r: str(r["timestamp"]), reverse=True)
    return {"incident": found[0].as_dict(), "records": [summary(r) for r in mine]}


# --------------------------------------------------------------------------- the MCP surface

QUERY_EVENTS = """\
Search the event history by time and filters; newest first, one page at a time.
Returns {events, count, total, hasMore, nextCursor}: each event is a pod transition (kind Pod: verb
create/update/delete, phase, node, containers' state/reason/restarts/exit codes) or a Kubernetes
Event about a pod (kind Event: reason, type, count, message), with podwatch's `classification`
(eventType such as crash-loop, decision forwarded/deduplicated/filtered, incidentId).
Limits: `limit` records per page (default 50, at most 1000); `total` counts every match; for the next
page repeat the same arguments with `cursor` = nextCursor. Without start/since the window is the 24 h
before `end` (default now); records are kept 14 days. Times: RFC 3339 with offset."""

OBJECT_HISTORY = """\
Everything recorded about one object (a pod; a node: namespace "_", kind node): its states over time
and the Kubernetes Events about it. Returns {object, incidents, watchEvents, relatedEvents, owners,
node}: `object` is its latest known state (null if unknown or older than the 14-day retention;
`deleted` true once it is gone), `incidents` what podwatch made of it (firing/resolved, occurrences,
reasons), `watchEvents` its transitions and `relatedEvents` the Events, each newest first, at most
`limit` of each (default 100, at most 1000); `owners` its owner chain (ReplicaSet, Deployment, ...)
and, for a pod, `node` its node's condition changes, each with their 10 latest records.
The default window is the whole retention (14 days)."""

OPEN_INCIDENTS = """\
What is wrong now: the incidents podwatch is tracking, optionally in one namespace or one workload
(a Deployment/StatefulSet/DaemonSet/CronJob name, or a pod name).
An incident is one trouble (eventType crash-loop, oom-kill, image-pull, evicted, ...) of one pod's
container (or pod, or workload), derived from the history's classification: firing until a recovery
resolves it. Returns {incidents, recordsRead, complete, window}; each incident has id, uri (read it
as a resource for its timeline), state, eventType, namespace, pod, workload, container, openedAt
(null if opened before the window), lastSeen, occurrences, reasons, lastMessage. Newest first.
Window: default the last 24 h; since/start up to 14 days. Reads at most 10,000 records
(`complete` false beyond: narrow by namespace or time). include_resolved adds resolved incidents
and those whose pod was deleted (state pod-deleted)."""

INCIDENT = """\
One incident: its summary (state, eventType, pod, container, openedAt, lastSeen, occurrences,
reasons) and every history record that belongs to it (the pod's transitions and Events, and the
pod's deletion), newest first. The id is an incident id as open_incidents returns it."""


def _tool_error(exc: EventsError) -> ToolError:
    return ToolError(str(exc))


class PodwatchMCP(MCPServer):
    """The SDK's server, plus the open incidents listed as resources (resources/list)."""

    def __init__(self, history: History) -> None:
        super().__init__(
            name="podwatch",
            title="podwatch event history",
            instructions=INSTRUCTIONS,
            version=__version__,
        )
        self.history = history

    async def list_resources(self) -> list[MCPResource]:
        listed = await super().list_resources()
        try:
            answer = await anyio.to_thread.run_sync(
                lambda: open_incidents(
                    self.history, {}, namespace=None, workload=None, include_resolved=False, cluster=None
                )
            )
        except EventsError as exc:  # listing is discovery: the template still reads any incident
            log.warning("open incidents not listed: %s", exc)
            return listed
        return listed + [
            MCPResource(
                uri=i["uri"],
                name=i["id"],
                title=f"{i['eventType']} of {i['namespace']}/{i['pod'] or i['workload']}",
                description=f"{i['state']} incident, last seen {i['lastSeen']}, {i['occurrences']} times",
                mime_type="application/json",
            )
            for i in answer["incidents"]
        ]


def build(history: History) -> PodwatchMCP:
    """The server with its tools and the incident resource, answering from `history`."""
    server = PodwatchMCP(history)

    @server.tool(name="query_events", description=QUERY_EVENTS)
    def query_events_tool(
        start: Start = None,
        end: End = None,
        since: Since = None,
        namespace: Annotated[str | None, Field(description="only this namespace")] = None,
        kind: Annotated[
            str | None,
            Field(description="the record's kind: pod (transitions) or event (Kubernetes Events)"),
        ] = None,
        name: Annotated[str | None, Field(description="only this object: a pod's name")] = None,
        reason: Annotated[
            str | None, Field(description="a Kubernetes reason: BackOff, CrashLoopBackOff, OOMKilled, ...")
        ] = None,
        event_type: Annotated[
            str | None,
            Field(description="ADDED/MODIFIED/DELETED, or podwatch's: crash-loop, oom-kill, image-pull, ..."),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="records per page")] = 50,
        cursor: Annotated[str | None, Field(description="nextCursor of the previous page")] = None,
        full: Full = False,
        cluster: Cluster = None,
    ) -> dict[str, Any]:
        try:
            filters = {
                **window(start, end, since),
                **_given(namespace=namespace, kind=kind, name=name, reason=reason, eventType=event_type),
                "limit": str(limit),
                **_given(cursor=cursor),
            }
            result: dict[str, Any] = query_events(history, filters, full=full, cluster=cluster)
        except EventsError as exc:
            raise _tool_error(exc) from exc
        return result

    @server.tool(name="object_history", description=OBJECT_HISTORY)
    def object_history_tool(
        namespace: Annotated[str, Field(description="the object's namespace")],
        name: Annotated[str, Field(description="the object's name, e.g. a pod's")],
        kind: Annotated[str, Field(description="pod (the default; pods, Pod)")] = "pod",
        start: Start = None,
        end: End = None,
        since: Since = None,
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="at most this many of each list")] = 100,
        uid: Annotated[str | None, Field(description="one incarnation of the name: the object's uid")] = None,
        full: Full = False,
        cluster: Cluster = None,
    ) -> dict[str, Any]:
        try:
            params = {**window(start, end, since), "limit": str(limit), **_given(uid=uid)}
            return object_history(history, namespace, kind, name, params, full=full, cluster=cluster)
        except EventsError as exc:
            raise _tool_error(exc) from exc

    @server.tool(name="open_incidents", description=OPEN_INCIDENTS)
    def open_incidents_tool(
        namespace: Annotated[str | None, Field(description="only this namespace")] = None,
        workload: Annotated[
            str | None, Field(description="only this workload (Deployment, ... name) or pod name")
        ] = None,
        since: Since = None,
        start: Start = None,
        end: End = None,
        include_resolved: Annotated[bool, Field(description="also resolved and pod-deleted ones")] = False,
        cluster: Cluster = None,
    ) -> dict[str, Any]:
        try:
            return open_incidents(
                history,
                window(start, end, since),
                namespace=namespace,
                workload=workload,
                include_resolved=include_resolved,
                cluster=cluster,
            )
        except EventsError as exc:
            raise _tool_error(exc) from exc

    @server.resource(
        URI_PREFIX + "{+incident_id}",
        name="incident",
        title="one incident and its records",
        description=INCIDENT,
        mime_type="application/json",
    )
    def incident_resource(incident_id: str) -> str:
        try:
            return json.dumps(incident(history, incident_id), indent=1)
        except EventsError as exc:
            raise ResourceError(str(exc)) from exc

    return server


class BearerToken:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>` (kagent's
    RemoteMCPServer sends it from a Secret, `headersFrom`); hand-written, as the SDK's auth is OAuth's."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("authorization", "").encode()
            if not hmac.compare_digest(given, self.expected):
                refused = JSONResponse(
                    {"error": "a bearer token is required (PODWATCH_MCP_TOKEN)"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve(history: History, *, transport: str, host: str, port: int, path: str, token: str | None) -> None:
    """Serve until stopped: on stdin/stdout, or streamable HTTP at http://host:port/path (with
    `token`, only for requests that carry it)."""
    server = build(history)
    if transport == "stdio":
        server.run("stdio")
        return
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    if token:
        app.add_middleware(BearerToken, token=token)
    config = uvicorn.Config(app, host=host, port=port, log_level="info")
    anyio.run(uvicorn.Server(config).serve)
