"""Issue 14 item 4: an envelope over the SQS limit is trimmed to fit (messages, then containers
beyond a cap, with counts of what was cut), else sent as an `oversize` stub; never dropped, by the
relay or by any sink."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto import mock_aws

from podwatch.errors import OversizeMessage
from podwatch.models import OversizeEnvelope, PodEnvelope
from podwatch.wire import parse_envelope
from podwatch_relay.fit import ENVELOPE_MAX_BYTES, MAX_CONTAINERS, SHORT_MESSAGE, fit, size_of
from podwatch_relay.pipeline import Relay
from podwatch_relay.sink import FileSink, SendResult, SqsSink
from tests.fakeapi.pods import container_status, core_event, pod

LONG = "kubelet says: " + "x" * 1100  # beyond MAX_TEXT: truncated to 1024 characters first


class _Sink:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        self.bodies.extend(bodies)
        return SendResult(sent=len(bodies))


def big_pod(
    containers: int = 250, *, image: str = "registry.example.com/app:1.0.0", rv: str = "7"
) -> dict[str, Any]:
    """A pod with many containers, each with a long waiting message; two of them crash-looping."""
    statuses = [
        container_status(f"c{i:03d}", waiting="ContainerCreating", waiting_message=LONG, image=image)
        for i in range(containers)
    ]
    for i in (containers * 4 // 5, containers - 10):
        statuses[i] = container_status(
            f"c{i:03d}",
            restarts=3,
            waiting="CrashLoopBackOff",
            waiting_message=LONG,
            last_terminated=("Error", 1),
            image=image,
        )
    return pod("shop", "huge-1", rv=rv, containers=statuses)


def _relay_bodies(*objects: dict[str, Any], fast: bool = True) -> tuple[Relay, list[str]]:
    sink = _Sink()
    relay = Relay(sink=sink, cluster_id="c1", relay_version="t")
    if not fast:
        relay._fast_pod = lambda *args: None  # type: ignore[method-assign]
    for i, obj in enumerate(objects):
        relay.handle_line(orjson.dumps({"type": "ADDED" if i == 0 else "MODIFIED", "object": obj}))
    relay.flush()
    return relay, sink.bodies


def test_a_body_that_fits_is_left_as_it_is() -> None:
    body = json.dumps({"kind": "pod", "payload": {"message": "é" * 1000}})
    assert fit(body) == (body, None)
    assert fit(body, limit=size_of(body)).body is body


def test_a_250_container_pod_goes_out_trimmed_of_its_messages() -> None:
    # Given a pod whose envelope would be ~300 KB (250 containers with 1 KB messages)
    relay, bodies = _relay_bodies(big_pod())

    # Then it goes out within the limit, every container kept, the messages cut short, and says so
    [body] = bodies
    assert size_of(body) <= ENVELOPE_MAX_BYTES
    envelope = parse_envelope(body)
    assert isinstance(envelope, PodEnvelope)
    payload = envelope.payload
    assert len(payload.containers) == 250
    assert payload.trimmed is not None
    assert (payload.trimmed.messages, payload.trimmed.containers) == (250, 0)
    assert all(c.message is not None and len(c.message) == SHORT_MESSAGE for c in payload.containers)
    assert {c.name for c in payload.containers if c.reason == "CrashLoopBackOff"} == {"c200", "c240"}
    assert (relay.stats.trimmed, relay.stats.oversize, relay.stats.forwarded) == (1, 0, 1)


def test_containers_beyond_the_cap_are_cut_keeping_those_in_trouble() -> None:
    # Given a pod whose containers alone are too big (very long image references)
    bodies = _relay_bodies(big_pod(image="registry.example.com/" + "i" * 1500 + ":1"))[1]

    # Then messages go, then containers beyond the cap, those in trouble kept
    payload = parse_envelope(bodies[0]).payload
    assert size_of(bodies[0]) <= ENVELOPE_MAX_BYTES
    assert payload.trimmed is not None
    assert (payload.trimmed.messages, payload.trimmed.containers) == (250, 250 - MAX_CONTAINERS)
    names = [c.name for c in payload.containers]  # type: ignore[union-attr]
    assert len(names) == MAX_CONTAINERS
    assert names == sorted(names)
    assert {"c200", "c240"} <= set(names)
    assert all(c.message is None for c in payload.containers)  # type: ignore[union-attr]


def test_fast_and_full_paths_trim_alike() -> None:
    first, changed = big_pod(rv="1"), big_pod(rv="2")
    changed["status"]["containerStatuses"][3]["restartCount"] = 1
    fast, full = _relay_bodies(first, changed)[1], _relay_bodies(first, changed, fast=False)[1]

    def stable(body: str) -> dict[str, Any]:
        envelope = json.loads(body)
        envelope.pop("sent_at")
        envelope["payload"].pop("observed_at")
        return envelope

    assert [stable(b) for b in fast] == [stable(b) for b in full]
    assert len(fast) == 2


def test_what_cannot_fit_goes_out_as_a_stub_the_processor_quarantines_as_oversize() -> None:
    # Given a pod with ten thousand owner references (nothing the trimming cuts)
    obj = big_pod(containers=10)
    owner = obj["metadata"]["ownerReferences"][0]
    obj["metadata"]["ownerReferences"] = [{**owner, "name": f"owner-{i:05d}"} for i in range(10_000)]
    relay, bodies = _relay_bodies(obj)

    # Then a small stub goes out instead, naming the pod and the size
    [body] = bodies
    assert size_of(body) < 1024
    stub = OversizeEnvelope.model_validate_json(body)
    assert (stub.payload.kind, stub.payload.namespace, stub.payload.name) == ("pod", "shop", "huge-1")
    assert stub.payload.bytes > ENVELOPE_MAX_BYTES == stub.payload.limit
    assert (relay.stats.oversize, relay.stats.forwarded) == (1, 1)

    # And the processor's parser refuses it as oversize (it is quarantined with that reason)
    with pytest.raises(OversizeMessage, match="shop/huge-1"):
        parse_envelope(body)


def test_an_oversize_event_goes_out_as_a_stub() -> None:
    # A core/v1 Event with a 300 KB reason (an Event's message is truncated; its reason is not)
    relay, bodies = _relay_bodies(core_event(reason="R" * 300_000))
    stub = OversizeEnvelope.model_validate_json(bodies[0])
    assert stub.payload.kind == "k8s_event"
    assert relay.stats.oversize == 1


def test_the_file_sink_fits_too(tmp_path: Path) -> None:
    body = _relay_bodies(big_pod(containers=10))[1][0]
    oversize = json.loads(body)
    oversize["payload"]["containers"][0]["message"] = "m" * 300_000
    out = tmp_path / "out.jsonl"
    result = FileSink(path=str(out)).send([json.dumps(oversize)])
    written = out.read_text().splitlines()
    assert (result.sent, len(written)) == (1, 1)
    assert size_of(written[0]) <= ENVELOPE_MAX_BYTES
    assert parse_envelope(written[0]).payload.trimmed is not None  # type: ignore[union-attr]


@pytest.fixture
def queue() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        yield client, client.create_queue(QueueName="pod-events")["QueueUrl"]


def test_the_sqs_sink_fits_to_its_own_smaller_limit_instead_of_dropping(queue: tuple[Any, str]) -> None:
    # Given a sink configured with a 64 KiB message limit, and a 120 KB pod envelope that the relay let by
    client, url = queue
    body = _relay_bodies(big_pod(containers=100))[1][0]
    assert 64 * 1024 < size_of(body) <= ENVELOPE_MAX_BYTES

    # When the sink sends it
    result = SqsSink(client=client, queue_url=url, max_message_bytes=64 * 1024).send([body])

    # Then SQS got it, trimmed, and nothing was dropped
    assert (result.sent, result.dropped) == (1, 0)
    [message] = client.receive_message(QueueUrl=url).get("Messages", [])
    assert size_of(message["Body"]) <= 64 * 1024
    assert parse_envelope(message["Body"]).payload.trimmed is not None  # type: ignore[union-attr]
