"""The reference manager: what podwatch delivers to in `make run` and the tests, and the executable
statement of the contract a real fleet manager implements.

It is a Restate virtual object, `PodwatchManager`, keyed by cluster id, served with `restate-sdk`
(`hypercorn local.manager:app`) and registered with the Restate server's admin API. Callers reach
it through the Restate ingress: `POST {ingress}/PodwatchManager/{cluster_id}/{Handler}`.

The contract (docs/internals.md, "Restate"; bodies are the pydantic models of `podwatch.models`):

=====================  ===========================  =================================================
handler                body                         answer
=====================  ===========================  =================================================
NotifyPodEvents        {"events": [Notification]}   {"received": n, "new": m}
NotifyPodEvent         Notification                 {"received": 1, "new": 0|1}
Enroll                 EnrollRequest                {"enrolled": true, "new": bool}
GetRemoteConfig (sh.)  none                         RemoteConfig JSON (default RemoteConfig())
SetRemoteConfig        RemoteConfig JSON            the stored RemoteConfig JSON
GetDelivered (sh.)     none                         {"events": [Notification JSON, ...]}
GetEnrollments (sh.)   none                         {"enrollments": [{relay_version, ...}, ...]}
GetStats (sh.)         none                         {"notify_calls", "events_received", "events_new",
                                                     "received_at": {notification_id: epoch secs}}
SetFault               {"status_code", "message"}   the stored fault, or null (body null: cleared)
=====================  ===========================  =================================================

SetRawRemoteConfig (any JSON object) is another test switch: GetRemoteConfig then answers it
verbatim, standing for a manager with a bug or a newer schema (SetRemoteConfig replaces it).
SetFault is a test switch, not part of the contract: while a fault is set for a cluster, its
NotifyPodEvents / NotifyPodEvent / Enroll fail with that terminal status (400, 401, 403, ...) and
message, as a real manager (or Restate Cloud's ingress, for 401/403) would refuse them.

What a real manager must guarantee, and this one does:

* **Exactly-once effect.** Every delivery carries an ``idempotency-key`` derived from its
  notification ids; Restate answers a repeated key with the first answer without running the
  handler again. A *different* batch that overlaps an earlier one (a Lambda retry after a partial
  failure re-chunks records) has a different key, so the manager itself records each notification
  once by ``notification_id`` and counts the rest as repeats (``new`` < ``received``).
* **Arrival order** of first receipt is kept (GetDelivered), per cluster.
* **Bad requests are terminal.** A body that is not JSON or does not match the model, or names a
  different cluster than the object key, fails with a terminal error and HTTP 400: the deliver
  function treats 4xx as permanent (DLQ with the answer attached) instead of retrying forever.
* **Remote config per cluster.** GetRemoteConfig answers the stored `RemoteConfig` or the safe
  defaults; what it returns always validates against the model (SetRemoteConfig refuses the rest).
* **Enrollment is idempotent per cluster and relay version**: the first Enroll of a version answers
  ``new: true``, every later one ``new: false`` and only refreshes ``last_seen_at``.

Object state (per cluster): ``order`` (notification ids in arrival order), ``n:<notification_id>``
(the notification exactly as received, plus its receipt time), ``enrollments``, ``remote_config``,
``stats``.
"""

from __future__ import annotations

import json
from typing import Any

import restate
from pydantic import BaseModel, ValidationError
from restate.serde import BytesSerde

from podwatch.models import EnrollRequest, Notification, NotifyPodEventsRequest, RemoteConfig

OBJECT_NAME = "PodwatchManager"
BAD_REQUEST = 400

manager = restate.VirtualObject(OBJECT_NAME)

_ORDER = "order"
_ENROLLMENTS = "enrollments"
_REMOTE_CONFIG = "remote_config"
_STATS = "stats"
_FAULT = "fault"
_RAW_REMOTE_CONFIG = "raw_remote_config"


def _notification_key(notification_id: str) -> str:
    return f"n:{notification_id}"


def _parse[M: BaseModel](model: type[M], body: bytes) -> tuple[M, Any]:
    """JSON → (validated model, the raw JSON value); a terminal 400 naming the problem otherwise."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise restate.TerminalError(f"body is not JSON: {exc}", status_code=BAD_REQUEST) from exc
    try:
        return model.model_validate(raw), raw
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise restate.TerminalError(
            f"body is not a valid {model.__name__}: {problems}", status_code=BAD_REQUEST
        ) from exc


def _check_cluster(ctx: restate.ObjectContext, cluster_id: str, what: str) -> None:
    if cluster_id != ctx.key():
        raise restate.TerminalError(
            f"{what} is for cluster {cluster_id!r}, but was sent to object key {ctx.key()!r}",
            status_code=BAD_REQUEST,
        )


async def _record(
    ctx: restate.ObjectContext, notifications: list[Notification], raws: list[dict[str, Any]]
) -> dict[str, int]:
    for notification in notifications:
        _check_cluster(ctx, notification.cluster_id, f"notification {notification.notification_id}")
    order: list[str] = await ctx.get(_ORDER) or []
    known = set(order)
    received_at = await ctx.time()
    new = 0
    for notification, raw in zip(notifications, raws, strict=True):
        nid = notification.notification_id
        if nid in known:
            continue
        known.add(nid)
        order.append(nid)
        ctx.set(_notification_key(nid), {"notification": raw, "received_at": received_at})
        new += 1
    ctx.set(_ORDER, order)
    stats: dict[str, int] = await ctx.get(_STATS) or {}
    stats["notify_calls"] = stats.get("notify_calls", 0) + 1
    stats["events_received"] = stats.get("events_received", 0) + len(notifications)
    stats["events_new"] = stats.get("events_new", 0) + new
    ctx.set(_STATS, stats)
    return {"received": len(notifications), "new": new}


async def _check_fault(ctx: restate.ObjectContext) -> None:
    fault: dict[str, Any] | None = await ctx.get(_FAULT)
    if fault:
        raise restate.TerminalError(str(fault["message"]), status_code=int(fault["status_code"]))


@manager.handler("SetFault", input_serde=BytesSerde())
async def set_fault(ctx: restate.ObjectContext, body: bytes) -> dict[str, Any] | None:
    try:
        fault = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise restate.TerminalError(f"body is not JSON: {exc}", status_code=BAD_REQUEST) from exc
    if fault is None:
        ctx.clear(_FAULT)
        return None
    status = fault.get("status_code") if isinstance(fault, dict) else None
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise restate.TerminalError("a fault is {status_code: 4xx|5xx, message}", status_code=BAD_REQUEST)
    stored = {"status_code": status, "message": str(fault.get("message") or f"injected {status}")}
    ctx.set(_FAULT, stored)
    return stored


@manager.handler("NotifyPodEvents", input_serde=BytesSerde())
async def notify_pod_events(ctx: restate.ObjectContext, body: bytes) -> dict[str, int]:
    await _check_fault(ctx)
    request, raw = _parse(NotifyPodEventsRequest, body)
    return await _record(ctx, list(request.events), list(raw["events"]))


@manager.handler("NotifyPodEvent", input_serde=BytesSerde())
async def notify_pod_event(ctx: restate.ObjectContext, body: bytes) -> dict[str, int]:
    await _check_fault(ctx)
    notification, raw = _parse(Notification, body)
    return await _record(ctx, [notification], [raw])


@manager.handler("Enroll", input_serde=BytesSerde())
async def enroll(ctx: restate.ObjectContext, body: bytes) -> dict[str, bool]:
    await _check_fault(ctx)
    request, raw = _parse(EnrollRequest, body)
    _check_cluster(ctx, request.cluster_id, "enrollment")
    enrollments: dict[str, dict[str, Any]] = await ctx.get(_ENROLLMENTS) or {}
    now = await ctx.time()
    record = enrollments.get(request.relay_version)
    is_new = record is None
    if record is None:
        record = {"relay_version": request.relay_version, "first_seen_at": now, "count": 0}
    record["count"] += 1
    record["last_seen_at"] = now
    record["request"] = raw
    enrollments[request.relay_version] = record
    ctx.set(_ENROLLMENTS, enrollments)
    return {"enrolled": True, "new": is_new}


@manager.handler("GetRemoteConfig", kind="shared")
async def get_remote_config(ctx: restate.ObjectSharedContext) -> dict[str, Any]:
    raw: dict[str, Any] | None = await ctx.get(_RAW_REMOTE_CONFIG)
    if raw is not None:
        return raw
    stored: dict[str, Any] | None = await ctx.get(_REMOTE_CONFIG)
    config = RemoteConfig.from_json(stored) if stored is not None else RemoteConfig()
    answer: dict[str, Any] = json.loads(config.to_json())
    return answer


@manager.handler("SetRemoteConfig", input_serde=BytesSerde())
async def set_remote_config(ctx: restate.ObjectContext, body: bytes) -> dict[str, Any]:
    config, _ = _parse(RemoteConfig, body)
    stored: dict[str, Any] = json.loads(config.to_json())
    ctx.set(_REMOTE_CONFIG, stored)
    ctx.clear(_RAW_REMOTE_CONFIG)
    return stored


@manager.handler("SetRawRemoteConfig", input_serde=BytesSerde())
async def set_raw_remote_config(ctx: restate.ObjectContext, body: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise restate.TerminalError(f"body is not JSON: {exc}", status_code=BAD_REQUEST) from exc
    if not isinstance(raw, dict):
        raise restate.TerminalError("a raw remote config is a JSON object", status_code=BAD_REQUEST)
    ctx.set(_RAW_REMOTE_CONFIG, raw)
    return raw


@manager.handler("GetDelivered", kind="shared")
async def get_delivered(ctx: restate.ObjectSharedContext) -> dict[str, list[dict[str, Any]]]:
    order: list[str] = await ctx.get(_ORDER) or []
    events: list[dict[str, Any]] = []
    for nid in order:
        entry: dict[str, Any] | None = await ctx.get(_notification_key(nid))
        if entry is not None:
            events.append(entry["notification"])
    return {"events": events}


@manager.handler("GetEnrollments", kind="shared")
async def get_enrollments(ctx: restate.ObjectSharedContext) -> dict[str, list[dict[str, Any]]]:
    enrollments: dict[str, dict[str, Any]] = await ctx.get(_ENROLLMENTS) or {}
    return {
        "enrollments": sorted(enrollments.values(), key=lambda r: (r["first_seen_at"], r["relay_version"]))
    }


@manager.handler("GetStats", kind="shared")
async def get_stats(ctx: restate.ObjectSharedContext) -> dict[str, Any]:
    stats: dict[str, Any] = await ctx.get(_STATS) or {}
    order: list[str] = await ctx.get(_ORDER) or []
    received_at: dict[str, float] = {}
    for nid in order:
        entry: dict[str, Any] | None = await ctx.get(_notification_key(nid))
        if entry is not None:
            received_at[nid] = entry["received_at"]
    return {
        "notify_calls": stats.get("notify_calls", 0),
        "events_received": stats.get("events_received", 0),
        "events_new": stats.get("events_new", 0),
        "received_at": received_at,
    }


#: The ASGI app hypercorn serves (`hypercorn --bind 127.0.0.1:<port> local.manager:app`).
app = restate.app([manager])
