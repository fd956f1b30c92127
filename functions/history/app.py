"""History API: API Gateway HTTP API → Powertools' event handler → the history table (reads only).

Thin on purpose: the logic is `podwatch.historyapi`. Routes (also under `/clusters/<cluster>` for a
cluster other than HISTORY_DEFAULT_CLUSTER):

    GET /api/v1/events?start=&end=&namespace=&kind=&name=&reason=&eventType=&limit=&cursor=
    GET /api/v1/events/<namespace>/<kind>/<name>   (a pod's also lists `hookCalls` with HOOKS_TABLE_NAME)
    GET /api/v1/health
    GET /  and  GET /ui/<file>     the timeline page (functions/history/ui/: HTML, JS, CSS)

A bad parameter answers 400 with {"error", "parameter"}; a table failure 503. The local stack
serves this same handler on loopback (local/historyapi.py). Import and Tracer: the kit's policies
(podwatch.kit).

For tests and the local stack:
    build_dependencies(settings=None, *, dynamodb=None, clock=None) -> HistoryApiDependencies
    set_dependencies(deps) / dependencies() / reset()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic_core import to_json

# historyapi at import: its BadRequest is an exception handler's key (it creates no client)
from podwatch import historyapi, kit, telemetry, webui
from podwatch.errors import TransientError
from podwatch.history import canonical_kind, iso

if TYPE_CHECKING:
    from podwatch.historystore import HistoryReader
    from podwatch.hooks.state import HookStore
    from podwatch.settings import HistoryApiSettings

logger, tracer, metrics = kit.tools()
app = APIGatewayHttpResolver()
#: the page's files ship in this function's code (CodeUri functions/history), read on first request
UI_FOLDER = Path(__file__).resolve().parent / "ui"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class HistoryApiDependencies:
    settings: HistoryApiSettings
    reader: HistoryReader
    #: "now" of a query (defaults and what has expired); `make run` uses the recording's clock
    clock: Callable[[], datetime] = field(default=_utcnow)
    #: the hooks table (HOOKS_TABLE_NAME): a pod's view lists the hook calls about it; None: no list
    hooks: HookStore | None = None


def build_dependencies(
    settings: HistoryApiSettings | None = None,
    *,
    dynamodb: Any = None,
    clock: Callable[[], datetime] | None = None,
) -> HistoryApiDependencies:
    """Settings from the environment and the boto3 client, unless given."""
    from podwatch import aws
    from podwatch.historystore import HistoryReader
    from podwatch.settings import HistoryApiSettings

    settings = settings or HistoryApiSettings.from_env()
    client = dynamodb or aws.client("dynamodb")
    reader = HistoryReader(table_name=settings.history_table_name, client=client)
    hooks = None
    if settings.hooks_table_name:
        from podwatch.hooks.state import HookStore

        hooks = HookStore(table_name=settings.hooks_table_name, client=client)
    return HistoryApiDependencies(settings, reader, clock or _utcnow, hooks)


_deps: kit.Environment[HistoryApiDependencies] = kit.Environment(lambda: build_dependencies(), tracer=tracer)
#: the dependencies of this execution environment, built on first use
dependencies = _deps.get
set_dependencies = _deps.set
reset = _deps.reset


@cache
def _assets() -> webui.Assets:
    """The page's files, read on the first request for one (not at import: the kit's policy)."""
    return webui.Assets(UI_FOLDER)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    # pydantic's serializer (Rust): a page of 1000 records is a few hundred KB of JSON
    return Response(status, content_types.APPLICATION_JSON, to_json(body).decode(), headers=headers)


def _params() -> dict[str, str]:
    return dict(app.current_event.query_string_parameters or {})


def _cluster(cluster: str | None) -> str:
    chosen = cluster or dependencies().settings.history_default_cluster
    if not chosen:
        raise historyapi.BadRequest(
            "cluster", "this stack has no default cluster: use /clusters/<id>/api/v1/..."
        )
    return chosen


@app.get("/api/v1/events")
@app.get("/clusters/<cluster>/api/v1/events")
def list_events(cluster: str | None = None) -> Response[str]:
    deps = dependencies()
    page = historyapi.list_events(
        deps.reader,
        _params(),
        cluster=_cluster(cluster),
        now=deps.clock(),
        retention_days=deps.settings.retention_days,
    )
    telemetry.count(metrics, telemetry.HISTORY_QUERIES)
    return _json(200, page.body(), page.headers())


@app.get("/api/v1/events/<namespace>/<kind>/<name>")
@app.get("/clusters/<cluster>/api/v1/events/<namespace>/<kind>/<name>")
def object_view(namespace: str, kind: str, name: str, cluster: str | None = None) -> Response[str]:
    deps = dependencies()
    view = historyapi.object_view(
        deps.reader,
        namespace,
        kind,
        name,
        _params(),
        cluster=_cluster(cluster),
        now=deps.clock(),
        retention_days=deps.settings.retention_days,
    )
    if deps.hooks is not None and canonical_kind(kind) == "pod":  # additive: the timeline's side panel
        view["hookCalls"] = deps.hooks.calls_about(
            cluster=_cluster(cluster), namespace=namespace, resource=name, now_s=int(deps.clock().timestamp())
        )
    telemetry.count(metrics, telemetry.HISTORY_QUERIES)
    return _json(200, view)


@app.get("/api/v1/health")
@app.get("/clusters/<cluster>/api/v1/health")
def health(cluster: str | None = None) -> Response[str]:
    deps = dependencies()
    # `now`: the API's clock, the end of the page's "last 1 h ..." windows (`make run`: the recording's)
    return _json(
        200, {"status": "ok", "retentionDays": deps.settings.retention_days, "now": iso(deps.clock())}
    )


@app.get("/", compress=True)
@app.get("/ui/<name>", compress=True)
def page(name: str = webui.INDEX) -> Response[bytes]:
    asset = _assets().get(name)
    if asset is None:
        return Response(404, content_types.APPLICATION_JSON, to_json({"error": f"no such file: {name}"}))
    if app.current_event.headers.get("if-none-match") == asset.etag:
        return Response(304, headers=asset.headers())
    return Response(200, asset.content_type, asset.body, headers=asset.headers())


@app.exception_handler(historyapi.BadRequest)  # type: ignore[untyped-decorator]  # Powertools' is untyped
def bad_request(exc: historyapi.BadRequest) -> Response[str]:
    telemetry.count(metrics, telemetry.HISTORY_BAD_REQUESTS)
    return _json(400, {"error": str(exc), "parameter": exc.parameter})


@app.exception_handler(TransientError)  # type: ignore[untyped-decorator]
def unavailable(exc: TransientError) -> Response[str]:
    logger.warning("history query failed", extra={"error": str(exc)})
    telemetry.count(metrics, telemetry.HISTORY_QUERY_FAILED)
    return _json(503, {"error": "the history table did not answer; retry"}, {"Retry-After": "1"})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
