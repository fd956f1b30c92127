"""The Restate client against scripted httpx transports: retries, Retry-After, 4xx, breaker, stats."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from podwatch import ids
from podwatch.errors import CircuitOpen, ConfigError, DeliveryFailed, DeliveryRejected
from podwatch.models import EnrollRequest, EventType, Notification, RemoteConfig
from podwatch.restate import RestateClient, new_breaker, parse_retry_after

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def notification(n: int, cluster: str = "prod") -> Notification:
    event_id = f"evt-{n:08d}"
    return Notification(
        notification_id=ids.notification_id(event_id, EventType.CRASH_LOOP, "api"),
        event_id=event_id,
        cluster_id=cluster,
        event_type=EventType.CRASH_LOOP,
        reason="CrashLoopBackOff",
        source="pod",
        dedup_key=f"{cluster}/ns/pod-{n}/api/crash-loop",
        namespace="ns",
        pod=f"pod-{n}",
        observed_at=T0,
    )


class Script:
    """Answers requests from a list of (status, headers, body); records what it was asked."""

    def __init__(self, *answers: tuple[int, dict[str, str], str]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, headers, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if status == 0:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(status, headers=headers, text=body)


def client(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> RestateClient:
    options: dict[str, object] = {"max_tries": 3, "backoff_base": 0.001, "backoff_cap": 0.01}
    options.update(kw)
    return RestateClient(
        base_url="http://restate.test:8080/",
        connect_timeout=1.0,
        read_timeout=2.0,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        **options,  # type: ignore[arg-type]
    )


OK = (200, {"content-type": "application/json"}, '{"received": 2, "new": 2}')


def test_notify_pod_events_posts_the_batch_with_a_content_idempotency_key() -> None:
    script = Script(OK)
    c = client(script)
    batch = [notification(1), notification(2)]

    answer = c.notify_pod_events("prod", batch)

    assert answer == {"received": 2, "new": 2}
    [request] = script.requests
    assert request.method == "POST"
    assert request.url == "http://restate.test:8080/PodwatchManager/prod/NotifyPodEvents"
    assert request.headers["idempotency-key"] == ids.idempotency_key(n.notification_id for n in batch)
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    body = json.loads(request.content)
    assert [e["notification_id"] for e in body["events"]] == [n.notification_id for n in batch]
    assert c.stats.requests == 1
    assert c.stats.by_status == {"200": 1}


def test_same_content_same_key_in_any_order_and_different_content_different_key() -> None:
    script = Script(OK)
    c = client(script)
    c.notify_pod_events("prod", [notification(1), notification(2)])
    c.notify_pod_events("prod", [notification(2), notification(1)])
    c.notify_pod_events("prod", [notification(1), notification(3)])
    keys = [r.headers["idempotency-key"] for r in script.requests]
    assert keys[0] == keys[1] != keys[2]


def test_cluster_id_is_url_encoded_into_the_path_template() -> None:
    script = Script(OK)
    client(script).notify_pod_events("a b/c", [notification(1, cluster="a b/c")])
    assert script.requests[0].url.raw_path == b"/PodwatchManager/a%20b%2Fc/NotifyPodEvents"


def test_notifications_of_another_cluster_are_refused() -> None:
    with pytest.raises(ValueError, match="other"):
        client(Script(OK)).notify_pod_events("prod", [notification(1, cluster="other")])


def test_5xx_is_retried_then_succeeds_each_failed_answer_spending_its_key() -> None:
    # Restate keeps a failed invocation's answer under its key: the retry needs a key of its own
    script = Script((503, {}, "busy"), (502, {}, "bad gateway"), OK)
    c = client(script)
    assert c.notify_pod_events("prod", [notification(1)])["new"] == 2
    base = ids.idempotency_key([notification(1).notification_id])
    assert [r.headers["idempotency-key"] for r in script.requests] == [base, f"{base}-a1", f"{base}-a2"]
    assert c.stats.by_status == {"503": 1, "502": 1, "200": 1}


def test_a_request_without_an_answer_is_retried_under_the_same_key() -> None:
    # its invocation may still run at Restate: the same key latches onto it instead of starting another
    script = Script((0, {}, ""), (0, {}, ""), OK)
    c = client(script)
    c.notify_pod_events("prod", [notification(1)])
    assert len({r.headers["idempotency-key"] for r in script.requests}) == 1


CACHED = {"idempotency-expires": "2026-11-21T10:00:00.000+00:00"}


def test_a_cached_failed_answer_is_skipped_at_once_and_not_counted_by_the_breaker() -> None:
    # Given Restate replays a 503 stored under the first two keys (earlier attempts), then the
    # manager (recovered) answers the next key
    script = Script((503, CACHED, '{"code":503}'), (503, CACHED, '{"code":503}'), OK)
    c = client(script, max_tries=1, breaker=new_breaker(fail_max=1, reset_timeout=60))

    # When one call is made with one try
    answer = c.notify_pod_events("prod", [notification(1)])

    # Then it walked past both cached answers, without a wait or a breaker failure, to the manager
    assert answer["new"] == 2
    base = ids.idempotency_key([notification(1).notification_id])
    assert [r.headers["idempotency-key"] for r in script.requests] == [base, f"{base}-a1", f"{base}-a2"]
    assert c.breaker.fail_counter == 0
    assert c.breaker.current_state == "closed"
    assert c.stats.cached_failures == 2


def test_a_later_receive_starts_from_a_key_of_its_own() -> None:
    script = Script(OK)
    c = client(script)
    c.notify_pod_events("prod", [notification(1)], receive=1)
    c.notify_pod_events("prod", [notification(1)], receive=3)
    base = ids.idempotency_key([notification(1).notification_id])
    assert [r.headers["idempotency-key"] for r in script.requests] == [base, f"{base}-r3"]


def test_exhaustion_carries_the_last_status_and_body() -> None:
    script = Script((500, {}, "first"), (503, {}, '{"code":503,"message":"manager down"}'))
    with pytest.raises(DeliveryFailed) as raised:
        client(script, max_tries=2).notify_pod_events("prod", [notification(1)])
    assert (raised.value.status_code, raised.value.body) == (503, '{"code":503,"message":"manager down"}')


def test_network_errors_are_retried_and_exhaustion_is_delivery_failed() -> None:
    script = Script((0, {}, ""))
    c = client(script)
    with pytest.raises(DeliveryFailed) as raised:
        c.notify_pod_events("prod", [notification(1)])
    assert isinstance(raised.value.__cause__, httpx.ConnectError)
    assert len(script.requests) == 3
    assert c.stats.as_dict() == {"requests": 3, "by_status": {"error": 3}}


def test_429_honours_retry_after() -> None:
    script = Script((429, {"retry-after": "1"}, "slow down"), OK)
    c = client(script)
    started = time.monotonic()
    c.notify_pod_events("prod", [notification(1)])
    assert time.monotonic() - started >= 0.9  # jitter would have made it ~0.001 s
    assert len(script.requests) == 2


def test_retry_after_is_capped() -> None:
    script = Script((503, {"retry-after": "3600"}, ""), OK)
    started = time.monotonic()
    client(script, max_retry_after=0.05).notify_pod_events("prod", [notification(1)])
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_is_rejected_without_retry(status: int) -> None:
    script = Script((status, {}, '{"message": "events[0].event_type: unknown"}'))
    c = client(script)
    with pytest.raises(DeliveryRejected) as raised:
        c.notify_pod_events("prod", [notification(1)])
    assert (raised.value.status_code, raised.value.body) == (
        status,
        '{"message": "events[0].event_type: unknown"}',
    )
    assert len(script.requests) == 1


def test_breaker_opens_after_repeated_failures_then_makes_no_call() -> None:
    script = Script((500, {}, "boom"))
    c = client(script, max_tries=1, breaker=new_breaker(fail_max=3, reset_timeout=60))
    for _ in range(3):
        with pytest.raises(DeliveryFailed):
            c.notify_pod_events("prod", [notification(1)])
    assert len(script.requests) == 3

    with pytest.raises(CircuitOpen):
        c.notify_pod_events("prod", [notification(1)])
    assert len(script.requests) == 3  # no call made
    assert c.stats.requests == 3


def test_4xx_does_not_trip_the_breaker() -> None:
    script = Script((400, {}, "bad"))
    c = client(script, breaker=new_breaker(fail_max=2, reset_timeout=60))
    for _ in range(5):
        with pytest.raises(DeliveryRejected):
            c.notify_pod_events("prod", [notification(1)])
    assert len(script.requests) == 5
    assert c.breaker.current_state == "closed"


def test_breaker_half_opens_after_the_reset_timeout() -> None:
    script = Script((500, {}, "boom"), OK)
    c = client(script, max_tries=1, breaker=new_breaker(fail_max=1, reset_timeout=0.05))
    with pytest.raises(DeliveryFailed):
        c.notify_pod_events("prod", [notification(1)])
    with pytest.raises(CircuitOpen):
        c.notify_pod_events("prod", [notification(1)])
    time.sleep(0.06)
    assert c.notify_pod_events("prod", [notification(1)])["new"] == 2
    assert c.breaker.current_state == "closed"


def test_token_is_sent_as_bearer_and_never_shown() -> None:
    script = Script(OK)
    c = RestateClient(
        base_url="http://restate.test:8080",
        token=lambda: "s3cr3t-token",
        http=httpx.Client(transport=httpx.MockTransport(script)),
    )
    c.notify_pod_event(notification(1))
    assert script.requests[0].headers["authorization"] == "Bearer s3cr3t-token"
    assert script.requests[0].url.path == "/PodwatchManager/prod/NotifyPodEvent"
    assert "s3cr3t" not in repr(c)


def test_enroll_key_depends_on_cluster_and_relay_version_only() -> None:
    script = Script((200, {}, '{"enrolled": true, "new": true}'))
    c = client(script)
    c.enroll(EnrollRequest(cluster_id="prod", relay_version="0.1.0", started_at=T0))
    c.enroll(EnrollRequest(cluster_id="prod", relay_version="0.1.0", started_at=T0 + timedelta(hours=1)))
    c.enroll(EnrollRequest(cluster_id="prod", relay_version="0.2.0", started_at=T0))
    keys = [r.headers["idempotency-key"] for r in script.requests]
    assert keys[0] == keys[1] != keys[2]
    assert script.requests[0].url.path == "/PodwatchManager/prod/Enroll"


def test_get_remote_config_validates_the_answer() -> None:
    good = RemoteConfig(version="m-3", batch_size=5)
    assert client(Script((200, {}, good.to_json()))).get_remote_config("prod") == good
    with pytest.raises(ConfigError):
        client(Script((200, {}, '{"batch_size": 0}'))).get_remote_config("prod")


def test_every_request_has_explicit_timeouts() -> None:
    c = client(Script(OK))
    assert (c.timeout.connect, c.timeout.read, c.timeout.write, c.timeout.pool) == (1.0, 2.0, 2.0, 1.0)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), (" 0 ", 0.0), ("Fri, 20 Nov 2026 10:00:30 GMT", 30.0), ("soon", None), (None, None)],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=T0) == seconds


def test_a_redriven_enroll_command_gets_a_key_of_its_own() -> None:
    # Restate answers a key it has seen with the stored answer for 24 h, a rejection included:
    # `podwatch dlq redrive` stamps redrive_count, and the retry must reach the manager itself.
    from podwatch.control import EnrollCommand
    from podwatch.delivery import DeliverDeps, deliver_records

    script = Script((200, {}, '{"enrolled": true, "new": true}'))
    deps = DeliverDeps(restate=client(script), sqs=None, quarantine_queue_url="https://sqs/q")
    body = EnrollCommand(request=EnrollRequest(cluster_id="prod", relay_version="0.1.0", started_at=T0))
    record = {"messageId": "m1", "body": body.model_dump_json(), "messageAttributes": {}}
    redriven = {**record, "messageAttributes": {"redrive_count": {"stringValue": "1", "dataType": "Number"}}}

    for each in (record, record, redriven):
        result = deliver_records([each], deps=deps, config=RemoteConfig())
        assert result.delivered == ["m1"]

    first, again, after_redrive = (r.headers["idempotency-key"] for r in script.requests)
    assert first == again  # the same command twice: one effect
    assert after_redrive != first
    assert after_redrive.startswith("pw-enroll-r1-")


def test_an_answer_that_cannot_be_decoded_is_a_delivery_failure_not_a_crash() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=b"not gzip at all")

    c = client(broken)
    with pytest.raises(DeliveryFailed, match="DecodingError"):
        c.notify_pod_events("prod", [notification(1)])
