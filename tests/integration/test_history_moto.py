"""Event history through a real moto server: the table from template.yaml, the history-writer
handler fed the relay's own messages (a replayed watch stream and generated pods), and the history
API's handler answering real HTTP on loopback (local/historyapi.py). The API's clock is injected
(the recording is from 2026-11-20), as `make run` does."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials
from moto.server import ThreadedMotoServer

from local.cfn import AwsClients, Provisioned, load_template, provision
from local.historyapi import HistoryApiServer
from local.lambda_runtime import LambdaContext, load_function_module, sqs_event
from podwatch import history
from podwatch.models import (
    ContainerStatus,
    InvolvedObject,
    KubeEvent,
    KubeEventEnvelope,
    PodEnvelope,
    PodEvent,
)
from podwatch.settings import HistoryApiSettings, HistoryWriterSettings
from podwatch.wire import encode_envelope
from podwatch_cli.app import main
from podwatch_cli.events import HistoryClient

pytestmark = pytest.mark.integration

REGION = "us-east-1"
SAMPLE = Path(__file__).resolve().parents[2] / "events" / "replay" / "sample-stream.jsonl"
CLUSTER = "local"
#: the sample recording happens on 2026-11-20 between 09:00 and ~09:30
RECORDING_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CRASHING_POD = "payments-api-84c6d9f7b8-tq5vn"


@pytest.fixture(scope="module")
def clients() -> Iterator[AwsClients]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield AwsClients.for_endpoint(f"http://{host}:{port}", region=REGION)
    finally:
        server.stop()


@pytest.fixture
def stack(clients: AwsClients) -> Provisioned:
    return provision(load_template(), clients=clients, stack_name=f"pw-{uuid.uuid4().hex[:8]}")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(RECORDING_NOW)


@pytest.fixture
def writer(stack: Provisioned, clients: AwsClients) -> Iterator[ModuleType]:
    module = load_function_module("history_writer", fresh=True)
    settings = HistoryWriterSettings(
        history_table_name=stack.physical("HistoryTable"),
        quarantine_queue_url=stack.physical("HistoryDLQ"),
        history_max_receives=3,
    )
    module.set_dependencies(
        module.build_dependencies(settings, dynamodb=clients.dynamodb, sqs=clients.sqs, sleep=lambda _: None)
    )
    yield module
    module.reset()


@pytest.fixture
def api(stack: Provisioned, clients: AwsClients, clock: Clock) -> Iterator[str]:
    module = load_function_module("history", fresh=True)
    settings = HistoryApiSettings(
        history_table_name=stack.physical("HistoryTable"), history_default_cluster=CLUSTER
    )
    module.set_dependencies(module.build_dependencies(settings, dynamodb=clients.dynamodb, clock=clock))
    with HistoryApiServer(lambda event: module.lambda_handler(event, LambdaContext())) as server:
        yield server.url
    module.reset()


def replayed_bodies(tmp_path: Path) -> list[str]:
    """The relay's messages for the sample stream, on the recording's clock (as `make run`)."""
    from podwatch_relay.pipeline import Relay
    from podwatch_relay.replay import RecordedClock, replay_file
    from podwatch_relay.sink import FileSink

    out = tmp_path / "bodies.jsonl"
    clock = RecordedClock()
    relay = Relay(sink=FileSink(path=str(out)), cluster_id=CLUSTER, relay_version="test", clock=clock)
    replay_file(SAMPLE, relay, clock=clock)
    return out.read_text().splitlines()


def write(writer: ModuleType, bodies: list[str], **record: Any) -> dict[str, Any]:
    answer: dict[str, Any] = writer.lambda_handler(sqs_event(bodies, **record), LambdaContext())
    return answer


def get(url: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, timeout=60)  # a loaded host: moto is slow


def pod_body(namespace: str, name: str, at: datetime, *, rv: int, reason: str | None = None) -> str:
    containers = [ContainerStatus(name="app", state="waiting", reason=reason)] if reason else []
    payload = PodEvent(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        phase="Running",
        containers=containers,
        resource_version=str(rv),
        observed_at=at,
    )
    return encode_envelope(
        PodEnvelope(event_id=f"ev-{namespace}-{name}-{rv}", cluster_id=CLUSTER, payload=payload)
    )


def event_body(namespace: str, pod: str, at: datetime, *, count: int, reason: str = "BackOff") -> str:
    payload = KubeEvent(
        namespace=namespace,
        name=f"{pod}.backoff",
        uid=f"evuid-{pod}",
        reason=reason,
        message=f"Back-off restarting failed container ({count})",
        type="Warning",
        count=count,
        involved_object=InvolvedObject(
            kind="Pod", name=pod, namespace=namespace, uid=f"uid-{namespace}-{pod}"
        ),
        first_timestamp=at - timedelta(minutes=count),
        last_timestamp=at,
        observed_at=at,
    )
    return encode_envelope(
        KubeEventEnvelope(event_id=f"kev-{pod}-{count}", cluster_id=CLUSTER, payload=payload)
    )


def collect_pages(url: str, limit: int, **params: Any) -> tuple[list[str], set[int]]:
    """Every page of a list query; the ids in order and the X-Total-Count values seen."""
    ids: list[str] = []
    totals: set[int] = set()
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = get(url, "/api/v1/events", **query)
        assert answer.status_code == 200, answer.text
        totals.add(int(answer.headers["X-Total-Count"]))
        body = answer.json()
        assert len(body["events"]) <= limit
        ids += [e["id"] for e in body["events"]]
        assert answer.headers["X-Has-More"] == ("true" if body["nextCursor"] else "false")
        cursor = body["nextCursor"]
        if cursor is None:
            return ids, totals


# --------------------------------------------------------------------------- the replayed stream


def test_a_crash_looping_pods_history_with_its_related_events_in_order(
    writer: ModuleType, api: str, tmp_path: Path
) -> None:
    bodies = replayed_bodies(tmp_path)
    assert write(writer, bodies) == {"batchItemFailures": []}

    answer = get(api, f"/api/v1/events/payments/pods/{CRASHING_POD}")
    assert answer.status_code == 200
    view = answer.json()
    watch, related = view["watchEvents"], view["relatedEvents"]
    assert watch
    assert related
    stamps = [r["timestamp"] for r in watch]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert {r["verb"] for r in watch} <= {"create", "update", "delete"}
    assert all(r["user"] == {"username": history.USER} for r in watch + related)
    assert all(r["objectRef"]["name"] == CRASHING_POD and r["objectRef"]["kind"] == "Pod" for r in watch)
    # the BackOff Event, count 1 → 5, newest first, each about this pod
    assert [r["count"] for r in related] == [5, 4, 3, 2, 1]
    assert all(r["involvedObject"]["name"] == CRASHING_POD and r["reason"] == "BackOff" for r in related)
    assert view["object"]["name"] == CRASHING_POD
    assert view["object"]["deleted"] is False
    # the snapshot is the projection: no env, no managedFields, no resourceVersion
    text = json.dumps(view)
    assert "pw-canary" not in text
    assert "managedFields" not in text
    assert "resource_version" not in text
    # the same through every spelling of the kind
    for kind in ("pod", "Pod"):
        assert get(api, f"/api/v1/events/payments/{kind}/{CRASHING_POD}").json() == view


def test_a_deleted_pods_history_is_still_answered_and_an_unknown_object_is_empty(
    writer: ModuleType, api: str, tmp_path: Path
) -> None:
    write(writer, replayed_bodies(tmp_path))
    view = get(api, "/api/v1/events/shop/pod/web-5c8d7f9b44-m4k8z").json()
    assert view["watchEvents"][0]["verb"] == "delete"
    assert view["object"]["deleted"] is True
    assert len(view["watchEvents"]) >= 2
    unknown = get(api, "/api/v1/events/shop/pod/never-was")
    assert unknown.status_code == 200
    # `owners` is the additive relations field (issue 19): an unknown object has none
    assert unknown.json() == {"object": None, "watchEvents": [], "relatedEvents": [], "owners": []}


def test_filters_by_namespace_kind_reason_and_event_type(
    writer: ModuleType, api: str, tmp_path: Path
) -> None:
    write(writer, replayed_bodies(tmp_path))
    window = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T23:59:59Z"}
    everything = get(api, "/api/v1/events", **window, limit=1000).json()["events"]
    shop = get(api, "/api/v1/events", **window, namespace="shop", limit=1000).json()["events"]
    assert shop
    assert {e["objectRef"]["namespace"] for e in shop} == {"shop"}
    assert len(shop) == sum(1 for e in everything if e["objectRef"]["namespace"] == "shop")
    events = get(api, "/api/v1/events", **window, kind="events", limit=1000).json()["events"]
    assert events
    assert {e["objectRef"]["kind"] for e in events} == {"Event"}
    pods = get(api, "/api/v1/events", **window, kind="pod", limit=1000).json()["events"]
    assert len(pods) + len(events) == len(everything)
    backoff = get(api, "/api/v1/events", **window, reason="BackOff", limit=1000).json()["events"]
    assert backoff
    assert {e["reason"] for e in backoff} == {"BackOff"}
    deleted = get(api, "/api/v1/events", **window, eventType="DELETED").json()["events"]
    assert deleted
    assert {e["verb"] for e in deleted} == {"delete"}
    by_name = get(api, "/api/v1/events", **window, name=CRASHING_POD, limit=1000).json()["events"]
    assert {e["objectRef"]["kind"] for e in by_name} == {"Pod", "Event"}  # the pod and Events about it


# --------------------------------------------------------------------------- generated history


def busy_cluster(writer: ModuleType) -> list[str]:
    """30 pods in 6 namespaces, 5 changes each, half before and half after midnight UTC."""
    midnight = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    bodies: list[str] = []
    for n in range(30):
        namespace, name = f"ns-{n % 6}", f"pod-{n}"
        for change in range(5):
            at = midnight + timedelta(minutes=change * 7 - 17, seconds=n)
            bodies.append(pod_body(namespace, name, at, rv=change + 1))
    for start in range(0, len(bodies), 10):
        assert write(writer, bodies[start : start + 10]) == {"batchItemFailures": []}
    return bodies


def test_a_time_range_across_a_day_boundary_and_shards_is_newest_first(
    writer: ModuleType, api: str, clock: Clock
) -> None:
    clock.now = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    busy_cluster(writer)
    answer = get(api, "/api/v1/events", start="2026-11-20T23:00:00Z", end="2026-11-21T01:00:00Z", limit=1000)
    records = answer.json()["events"]
    assert len(records) == 150
    assert answer.headers["X-Total-Count"] == "150"
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps, reverse=True)
    assert {s[:10] for s in stamps} == {"2026-11-20", "2026-11-21"}
    shards = {history.shard_of(CLUSTER, r["objectRef"]["namespace"], r["objectRef"]["name"]) for r in records}
    assert len(shards) > 4  # spread, not one hot partition
    before = get(
        api, "/api/v1/events", start="2026-11-20T23:00:00Z", end="2026-11-20T23:59:59.999Z", limit=1000
    )
    assert len(before.json()["events"]) == 30 * 3  # changes 0, 1, 2 fall before midnight


@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_paging_visits_every_item_exactly_once(
    writer: ModuleType, api: str, clock: Clock, limit: int
) -> None:
    clock.now = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    busy_cluster(writer)
    window = {"start": "2026-11-20T23:00:00Z", "end": "2026-11-21T01:00:00Z"}
    if limit > 1:  # at limit 1 the whole cluster is 150 pages: one namespace (25) is enough
        ids, totals = collect_pages(api, limit, **window)
        assert len(ids) == len(set(ids)) == 150
        assert totals == {150}
    ns_ids, ns_totals = collect_pages(api, limit, namespace="ns-2", **window)
    assert len(ns_ids) == len(set(ns_ids)) == 25
    assert ns_totals == {25}


def test_a_cursor_replayed_with_other_parameters_is_refused(
    writer: ModuleType, api: str, clock: Clock
) -> None:
    clock.now = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    busy_cluster(writer)
    window = {"start": "2026-11-20T23:00:00Z", "end": "2026-11-21T01:00:00Z"}
    cursor = get(api, "/api/v1/events", **window, limit=5).json()["nextCursor"]
    assert cursor
    refused = get(api, "/api/v1/events", **window, namespace="ns-1", limit=5, cursor=cursor)
    assert refused.status_code == 400
    assert refused.json()["parameter"] == "cursor"
    # the page size may change between pages
    assert get(api, "/api/v1/events", **window, limit=9, cursor=cursor).status_code == 200


def test_an_expired_item_is_never_returned(writer: ModuleType, api: str, clock: Clock) -> None:
    old = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    write(
        writer,
        [pod_body("shop", "old-pod", old, rv=1), pod_body("shop", "old-pod", old + timedelta(days=10), rv=2)],
    )
    clock.now = old + timedelta(days=14, hours=1)  # the first expired an hour ago; TTL has not deleted it
    listed = get(api, "/api/v1/events", start="2026-11-01T08:00:00Z", end="2026-11-11T10:00:00Z").json()
    assert [e["id"] for e in listed["events"]] == ["ev-shop-old-pod-2"]
    assert listed["total"] == 1
    view = get(api, "/api/v1/events/shop/pod/old-pod").json()
    assert [e["id"] for e in view["watchEvents"]] == ["ev-shop-old-pod-2"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-11-20T10:00:00"}, "end"),  # no offset
        ({"start": "2026-11-20T10:00:00Z", "end": "2026-11-20T09:00:00Z"}, "start"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"cursor": "%%%"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"namespce": "shop"}, "namespce"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    api: str, params: dict[str, str], parameter: str
) -> None:
    answer = get(api, "/api/v1/events", **params)
    assert answer.status_code == 400
    assert answer.json()["parameter"] == parameter
    assert parameter in answer.json()["error"]


def test_limit_above_1000_is_1000_and_health_answers(api: str) -> None:
    assert get(api, "/api/v1/events", limit=5000).status_code == 200
    assert get(api, "/api/v1/health").json()["status"] == "ok"
    assert get(api, "/api/v1/events/shop/pod/x", since="1h").status_code == 400


def test_other_clusters_are_under_their_own_path(writer: ModuleType, api: str, clock: Clock) -> None:
    at = RECORDING_NOW - timedelta(minutes=5)
    other = pod_body("shop", "web-0", at, rv=1).replace(f'"cluster_id":"{CLUSTER}"', '"cluster_id":"eu-2"')
    write(writer, [other, pod_body("shop", "web-0", at, rv=2)])
    here = get(api, "/api/v1/events/shop/pod/web-0").json()["watchEvents"]
    there = get(api, "/clusters/eu-2/api/v1/events/shop/pod/web-0").json()["watchEvents"]
    assert [r["objectRef"]["cluster"] for r in here] == [CLUSTER]
    assert [r["objectRef"]["cluster"] for r in there] == ["eu-2"]


def test_bad_input_goes_to_the_history_dlq_with_its_reason(
    writer: ModuleType, stack: Provisioned, clients: AwsClients
) -> None:
    good = pod_body("shop", "web-1", RECORDING_NOW, rv=1)
    assert write(writer, ["{not json", good]) == {"batchItemFailures": []}
    dlq = clients.sqs.receive_message(
        QueueUrl=stack.physical("HistoryDLQ"), MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    assert [m["MessageAttributes"]["reason"]["StringValue"] for m in dlq] == ["malformed"]


def items_of(clients: AwsClients, stack: Provisioned) -> list[dict[str, Any]]:
    return clients.dynamodb.scan(TableName=stack.physical("HistoryTable"))["Items"]  # type: ignore[no-any-return]


def test_a_retried_record_is_written_once(
    writer: ModuleType, stack: Provisioned, clients: AwsClients
) -> None:
    body = pod_body("shop", "web-2", RECORDING_NOW, rv=1)
    write(writer, [body, body])
    write(writer, [body])
    assert len(items_of(clients, stack)) == 1


# --------------------------------------------------------------------------- podwatch events (CLI)


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_lists_a_namespace_as_a_table_and_as_json(writer: ModuleType, api: str, tmp_path: Path) -> None:
    write(writer, replayed_bodies(tmp_path))
    code, out, err = cli("events", "--api-url", api, "--namespace", "payments", "--limit", "3", "--all")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["TIME", "VERB", "KIND", "OBJECT", "REASON"]
    total = int(lines[-1].split()[2])
    assert lines[-1] == f"{total} of {total} events"
    assert len(lines) == total + 2
    assert all("payments/" in line for line in lines[1:-1])
    code, out, _ = cli("events", "--api-url", api, "--namespace", "payments", "--kind", "event", "--json")
    answer = json.loads(out)
    assert code == 0
    assert {e["objectRef"]["kind"] for e in answer["events"]} == {"Event"}
    assert answer["total"] == len(answer["events"])


def test_cli_shows_one_object_with_its_related_events(writer: ModuleType, api: str, tmp_path: Path) -> None:
    write(writer, replayed_bodies(tmp_path))
    code, out, err = cli("events", "--api-url", api, "pod", f"payments/{CRASHING_POD}")
    assert (code, err) == (0, "")
    assert out.startswith(f"Pod payments/{CRASHING_POD} (uid ")
    assert "related Events (5):" in out
    assert "BackOff" in out
    code, _, err = cli("events", "--api-url", api, "pod", "no-slash")
    assert code == 1
    assert "NAMESPACE/NAME" in err
    code, _, err = cli("events", "--api-url", api, "--since", "yesterday")
    assert code == 1
    assert "--since" in err


def test_cli_signs_with_sigv4_for_a_deployed_api(
    stack: Provisioned, clients: AwsClients, clock: Clock
) -> None:
    seen: list[dict[str, str]] = []
    module = load_function_module("history", fresh=True)
    settings = HistoryApiSettings(
        history_table_name=stack.physical("HistoryTable"), history_default_cluster=CLUSTER
    )
    module.set_dependencies(module.build_dependencies(settings, dynamodb=clients.dynamodb, clock=clock))

    def invoke(event: dict[str, Any]) -> Any:
        seen.append(event["headers"])
        return module.lambda_handler(event, LambdaContext())

    with HistoryApiServer(invoke) as server:
        credentials = Credentials("AKIDEXAMPLE", "secret")
        client = HistoryClient(server.url, credentials=credentials, region="eu-west-1")
        assert client.get("/api/v1/health", {}).json()["status"] == "ok"
        client.close()
    authorization = seen[0]["authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert "x-amz-date" in seen[0]
    module.reset()
