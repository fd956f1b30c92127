"""process_record without AWS: fakes for the dedup store and SQS, to pin the decision logic."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from podwatch import ids
from podwatch.dedup import Claim, Outcome
from podwatch.errors import TransientError
from podwatch.models import (
    MAX_MESSAGE_BYTES,
    ContainerStatus,
    EventType,
    Notification,
    PodEnvelope,
    PodEvent,
    RemoteConfig,
)
from podwatch.processing import ProcessorDeps, process_record
from podwatch.quarantine import MAX_BODY_BYTES
from podwatch.wire import encode_envelope

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


class FakeDedup:
    def __init__(self, answer: Claim = Claim.OPENED) -> None:
        self.answer = answer
        self.claims: list[tuple[str, str, int]] = []
        self.resolves: list[tuple[str, str, str, bool]] = []

    def claim(
        self,
        key: str,
        event_id: str,
        cooldown_s: int,
        now: datetime,
        *,
        pod: str | None = None,
        received_at: datetime | None = None,
    ) -> Outcome:
        self.claims.append((key, event_id, cooldown_s))
        return Outcome(self.answer, 1, (pod,) if pod else (), 0, int(now.timestamp()))

    def resolve(self, key: str, event_id: str, now: datetime, *, pod: str, workload: bool = False) -> Outcome:
        self.resolves.append((key, event_id, pod, workload))
        return Outcome(self.answer, 7, (pod,), 0, int(now.timestamp()) - 60)


class FakeSQS:
    """send_message (quarantine) and send_message_batch (forwarding), as boto3 answers them."""

    def __init__(self, fail: bool = False, refuse: set[int] | None = None) -> None:
        self.fail = fail
        self.refuse = refuse or set()  # batch entry positions (over all calls) SQS refuses
        self.sent: list[dict[str, Any]] = []
        self.batches = 0

    def send_message(self, **kwargs: Any) -> dict[str, str]:
        if self.fail:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "x"}}, "SendMessage")
        self.sent.append(kwargs)
        return {"MessageId": "m"}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.fail:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "x"}}, "SendMessageBatch")
        assert 1 <= len(Entries) <= 10
        assert len({e["Id"] for e in Entries}) == len(Entries)
        self.batches += 1
        failed = []
        for entry in Entries:
            position = len(self.sent) + len(failed)
            if position in self.refuse:
                failed.append(
                    {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "x"}
                )
                self.refuse.discard(position)
                continue
            self.sent.append({"QueueUrl": QueueUrl, **entry})
        ok = [{"Id": e["Id"], "MessageId": "m"} for e in Entries if e["Id"] not in {f["Id"] for f in failed}]
        return {"Successful": ok, "Failed": failed}


def deps(dedup: FakeDedup | None = None, sqs: FakeSQS | None = None) -> ProcessorDeps:
    return ProcessorDeps(
        dedup=dedup or FakeDedup(),  # type: ignore[arg-type]
        sqs=sqs or FakeSQS(),
        deliveries_queue_url="https://sqs/deliveries",
        quarantine_queue_url="https://sqs/quarantine",
    )


def two_troubled_containers() -> str:
    payload = PodEvent(
        namespace="shop",
        name="web-1",
        uid="uid-web-1",
        containers=[
            ContainerStatus(name="web", state="waiting", reason="CrashLoopBackOff"),
            ContainerStatus(name="log-shipper", state="waiting", reason="CrashLoopBackOff"),
        ],
        resource_version="9",
        observed_at=NOW,
    )
    return encode_envelope(PodEnvelope(event_id="evt-web-1-9", cluster_id="c1", payload=payload))


def test_each_finding_is_claimed_enriched_and_forwarded() -> None:
    d = deps()
    decisions = process_record(two_troubled_containers(), deps=d, config=RemoteConfig(version="v3"), now=NOW)
    assert [(x.action, x.reason, x.record.event_type) for x in decisions] == [
        ("forwarded", "opened", "crash-loop"),
        ("forwarded", "opened", "crash-loop"),
    ]
    sent = [Notification.model_validate_json(m["MessageBody"]) for m in d.sqs.sent]
    assert [(n.container, n.config_version, n.processed_at) for n in sent] == [
        ("web", "v3", NOW),
        ("log-shipper", "v3", NOW),
    ]
    assert sent[0].notification_id == ids.notification_id("evt-web-1-9", EventType.CRASH_LOOP, "web")
    assert d.sqs.sent[0]["MessageAttributes"]["event_type"]["StringValue"] == "crash-loop"
    assert [c[2] for c in d.dedup.claims] == [900, 900]  # type: ignore[attr-defined]


def test_a_notification_links_to_its_pods_view_when_the_page_url_is_known() -> None:
    linked = dataclasses.replace(deps(), history_page_url="https://history.example/")
    process_record(two_troubled_containers(), deps=linked, config=RemoteConfig(), now=NOW)
    url = Notification.model_validate_json(linked.sqs.sent[0]["MessageBody"]).history_url
    assert url == (
        "https://history.example/#c=c1&ns=shop&w=range"
        "&from=2026-11-20T09%3A15%3A00&to=2026-11-20T10%3A15%3A00&pod=web-1"
    )
    unlinked = deps()
    process_record(two_troubled_containers(), deps=unlinked, config=RemoteConfig(), now=NOW)
    assert Notification.model_validate_json(unlinked.sqs.sent[0]["MessageBody"]).history_url is None


def test_pod_scope_makes_one_alert_of_two_containers() -> None:
    d = deps()
    decisions = process_record(
        two_troubled_containers(), deps=d, config=RemoteConfig(dedup_scope="pod"), now=NOW
    )
    assert [(x.action, x.reason) for x in decisions] == [
        ("forwarded", "opened"),
        ("deduplicated", "same_event_key"),
    ]
    assert len(d.dedup.claims) == 1  # type: ignore[attr-defined]


def test_duplicate_claim_is_not_forwarded() -> None:
    d = deps(FakeDedup(Claim.DUPLICATE))
    decisions = process_record(two_troubled_containers(), deps=d, config=RemoteConfig(), now=NOW)
    assert {x.action for x in decisions} == {"deduplicated"}
    assert d.sqs.sent == []  # type: ignore[attr-defined]


def test_send_failure_is_transient() -> None:
    with pytest.raises(TransientError) as raised:
        process_record(
            two_troubled_containers(), deps=deps(sqs=FakeSQS(fail=True)), config=RemoteConfig(), now=NOW
        )
    assert raised.value.reason == "forward_failed"
    assert isinstance(raised.value.__cause__, ClientError)


def test_quarantine_failure_is_transient() -> None:
    with pytest.raises(TransientError):
        process_record("{", deps=deps(sqs=FakeSQS(fail=True)), config=RemoteConfig(), now=NOW)


def test_oversize_body_is_quarantined_cut_to_fit_with_its_hash() -> None:
    d = deps()
    body = json.dumps({"schema_version": 1, "kind": "pod", "pad": "x" * MAX_MESSAGE_BYTES})
    [decision] = process_record(body, deps=d, config=RemoteConfig(), now=NOW, message_id="msg-1")
    assert (decision.action, decision.reason) == ("quarantined", "oversize")
    [sent] = d.sqs.sent  # type: ignore[attr-defined]
    assert sent["QueueUrl"] == "https://sqs/quarantine"
    assert len(sent["MessageBody"].encode()) <= MAX_BODY_BYTES
    attributes = {k: v["StringValue"] for k, v in sent["MessageAttributes"].items()}
    assert attributes["body_truncated"] == "true"
    assert attributes["source_message_id"] == "msg-1"
    assert len(attributes["body_sha256"]) == 64


def test_payload_sha256_ignores_label_order_and_sees_content() -> None:
    from podwatch import audit

    def pod(labels: dict[str, str]) -> PodEvent:
        return PodEvent(namespace="shop", name="web-1", uid="u1", labels=labels, observed_at=NOW)

    first, reordered = pod({"b": "1", "a": "2"}), pod({"a": "2", "b": "1"})
    assert audit.payload_sha256(first) == audit.payload_sha256(reordered)
    assert audit.payload_sha256(first) != audit.payload_sha256(pod({"a": "2", "b": "3"}))
    assert first.labels == {"b": "1", "a": "2"}  # the payload itself is left as it was


def test_fast_parse_path_gives_the_same_envelopes_and_errors_as_parse_envelope() -> None:
    from pathlib import Path

    from podwatch.errors import PermanentError
    from podwatch.processing import _parse
    from podwatch.wire import parse_envelope

    root = Path(__file__).resolve().parents[2] / "events" / "processor"
    bodies = [r["body"] for f in sorted(root.glob("*.json")) for r in json.loads(f.read_text())["Records"]]
    bodies.append(json.dumps({**json.loads(two_troubled_containers()), "schema_version": 2}))
    lax = json.loads(two_troubled_containers())
    lax["payload"]["restart_count"] = "3"  # lax JSON: a number as a string; not strict, still valid
    bodies.append(json.dumps(lax))
    for body in bodies:
        try:
            expected: Any = parse_envelope(body)
        except PermanentError as exc:
            expected = (type(exc), str(exc))
        try:
            got: Any = _parse(body)
        except PermanentError as exc:
            got = (type(exc), str(exc))
        assert got == expected, body[:120]


def _control_handler(sqs: FakeSQS) -> Any:
    from podwatch.control import ControlHandler

    class _Registry:
        def touch(self, *args: Any, **kwargs: Any) -> None:
            return None

    return ControlHandler(registry=_Registry(), sqs=sqs, deliveries_queue_url="https://sqs/deliveries")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(
            two_troubled_containers().replace('"name":"web"', '"name":"web \\ud800"'),
            "lone UTF-16 surrogate",
            id="lone surrogate escape",
        ),
        pytest.param(
            json.dumps(
                {
                    "schema_version": 1,
                    "event_id": "evt-pending-1",
                    "cluster_id": "c1",
                    "kind": "pod",
                    "payload": {
                        "namespace": "shop",
                        "name": "web-1",
                        "uid": "u1",
                        "phase": "Pending",
                        "created_at": "2026-11-20T09:00:00",  # no offset
                        "observed_at": "2026-11-20T10:00:00Z",
                    },
                }
            ),
            "timezone",
            id="pod time without offset",
        ),
        pytest.param(
            json.dumps(
                {
                    "schema_version": 1,
                    "event_id": "evt-heartbeat-3",
                    "cluster_id": "c1",
                    "kind": "heartbeat",
                    "sent_at": "2026-11-20T10:00:00",  # no offset
                    "payload": {"sequence": 3},
                }
            ),
            "timezone",
            id="heartbeat sent_at without offset",
        ),
    ],
)
def test_input_the_processor_could_not_use_later_is_quarantined_not_retried(body: str, says: str) -> None:
    # Given a body that parses as JSON but could not be hashed, sent on, or compared with the clock
    sqs = FakeSQS()
    d = ProcessorDeps(
        dedup=FakeDedup(),  # type: ignore[arg-type]
        sqs=sqs,
        deliveries_queue_url="https://sqs/deliveries",
        quarantine_queue_url="https://sqs/quarantine",
        control=_control_handler(sqs),
    )

    # When it is processed, then it is quarantined as malformed with a reason that says why
    [decision] = process_record(body, deps=d, config=RemoteConfig(), now=NOW, message_id="msg-1")
    assert (decision.action, decision.reason) == ("quarantined", "malformed")
    assert decision.detail is not None
    assert says in decision.detail
    [sent] = sqs.sent
    assert sent["QueueUrl"] == "https://sqs/quarantine"


def test_an_escaped_surrogate_pair_is_a_character_like_any_other() -> None:
    # "\ud83d\ude80" is one character (a rocket), written as JSON may write it
    body = two_troubled_containers().replace('"name":"web-1"', '"name":"web-1-\\ud83d\\ude80"')
    d = deps()
    decisions = process_record(body, deps=d, config=RemoteConfig(), now=NOW, message_id="msg-1")
    assert {x.action for x in decisions} == {"forwarded"}
    assert {x.notification.pod for x in decisions if x.notification} == {"web-1-\U0001f680"}
