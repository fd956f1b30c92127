"""The relays' one queue of envelope bodies (`batch.Batch`): fitted as queued, kept in order when a
sink fails, and what the sink did counted the same way for the pods' relay and every kind's."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from podwatch_relay.batch import Batch
from podwatch_relay.errors import SinkUnavailable
from podwatch_relay.fit import ENVELOPE_MAX_BYTES
from podwatch_relay.objects import ObjectStats
from podwatch_relay.pipeline import RelayStats
from podwatch_relay.sink import SendResult


class HalfSink:
    """Accepts the first body, drops the second as a duplicate, then gives up on the rest."""

    def __init__(self) -> None:
        self.got: list[str] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        done = SendResult(sent=1)
        done.drop("duplicate")
        self.got += bodies[:1]
        raise SinkUnavailable("down", pending=bodies[2:], result=done)


class Collecting:
    def __init__(self) -> None:
        self.got: list[str] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        self.got += bodies
        return SendResult(sent=len(bodies))


def too_big() -> str:
    """An object envelope over the limit because of one snapshot entry (trimming removes it)."""
    payload = {"kind": "ConfigMap", "name": "big", "uid": "u", "snapshot": {"data": "x" * ENVELOPE_MAX_BYTES}}
    envelope = {
        "schema_version": 1,
        "event_id": "e" * 32,
        "cluster_id": "c",
        "kind": "object",
        "payload": payload,
    }
    return json.dumps(envelope)


@pytest.mark.parametrize("stats", [RelayStats(), ObjectStats()], ids=["pods", "objects"])
def test_a_failing_sink_keeps_the_rest_in_order_and_what_it_did_is_counted(
    stats: RelayStats | ObjectStats,
) -> None:
    batch = Batch(stats)
    for body in ("a", "b", "c", "d"):
        batch.add(body)
    with pytest.raises(SinkUnavailable):
        batch.flush(HalfSink())
    # sent and dropped are counted even though the call failed; the unsent stay first, in order
    assert (stats.sent, stats.dropped, stats.dropped_reasons) == (1, 1, {"duplicate": 1})
    batch.add("e")
    working = Collecting()
    assert batch.flush(working).sent == 3
    assert working.got == ["c", "d", "e"]
    assert (len(batch), stats.sent) == (0, 4)
    assert batch.flush(working) == SendResult()  # nothing queued: the sink is not called


def test_bodies_over_the_limit_are_queued_trimmed_or_as_a_stub_and_counted() -> None:
    stats = ObjectStats()
    batch = Batch(stats)
    batch.add(too_big())
    batch.add("x" * (ENVELOPE_MAX_BYTES + 1))  # not JSON: only a stub can say what it was
    assert (stats.trimmed, stats.oversize) == (1, 1)
    assert all(len(body.encode()) <= ENVELOPE_MAX_BYTES for body in batch.bodies)
    trimmed, stub = (json.loads(body) for body in batch.bodies)
    assert trimmed["payload"]["trimmed"]["fields"] == 1
    assert stub["kind"] == "oversize"
