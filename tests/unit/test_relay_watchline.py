"""One watch line, read the one way (relay/podwatch_relay/watchline.py): outcomes counted by group,
`consume_line`'s order (fast path, blank, malformed, handle, resourceVersion; sink errors raised, bugs
noted), and every consumer reading its lines through it: the object relays and the control watches
of CRDs and namespaces."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from podwatch_relay import objects
from podwatch_relay.errors import BadWatchEvent, SinkUnavailable
from podwatch_relay.kinds import BUILTIN, KindSpec
from podwatch_relay.objects import ObjectRelay
from podwatch_relay.objectwatch import CustomResources, ObjectGroup
from podwatch_relay.sink import SendResult
from podwatch_relay.watchline import LineResult, OutcomeCounts, consume_line, stream_outcome
from tests.fakeapi import objects as fx


class Consumer:
    """Records what `consume_line` asked of it; `handle` fails as told."""

    def __init__(self, fails: Exception | None = None) -> None:
        self.fails = fails
        self.calls: list[tuple[str, Any]] = []

    def handle(self, watch_event: Any, *, initial_sync: bool = False) -> str:
        self.calls.append(("handle", (watch_event["type"], initial_sync)))
        if self.fails is not None:
            raise self.fails
        return "forwarded"

    def note_malformed(self, exc: BadWatchEvent, raw: object) -> str:
        self.calls.append(("malformed", raw))
        return f"malformed:{exc.reason}"

    def note_unexpected(self, exc: Exception, raw: object) -> str:
        self.calls.append(("unexpected", type(exc).__name__))
        return "malformed:unexpected"


def test_outcomes_are_counted_by_group() -> None:
    counts = OutcomeCounts()
    labels = ["forwarded", "suppressed", "bookmark", "skipped:x", "malformed:json", "error:500", "relist"]
    assert [counts.count(label) for label in labels] == labels
    counts.count("forwarded")
    assert (counts.forwarded, counts.suppressed, counts.bookmarks, counts.skipped) == (2, 1, 1, 1)
    assert (counts.malformed, counts.errors, counts.relists_requested) == (1, 2, 1)
    assert counts.outcomes["forwarded"] == 2
    assert counts.to_dict()["outcomes"] == counts.outcomes


@pytest.mark.parametrize(
    ("watch_type", "obj", "outcome"),
    [
        ("BOOKMARK", {"metadata": {"resourceVersion": "7"}}, "bookmark"),
        ("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"}, "relist"),
        ("ERROR", {"kind": "Status", "code": 500}, "error:500"),
        ("ERROR", {"kind": "Status"}, "error:unknown"),
        ("ERROR", {"kind": "Status", "code": "500"}, "error:unknown"),
        ("ERROR", None, "error:unknown"),
        ("ADDED", {"metadata": {"name": "p"}}, None),
        (None, {}, None),
    ],
)
def test_a_stream_event_has_its_outcome_and_an_object_event_none(
    watch_type: Any, obj: Any, outcome: str | None
) -> None:
    assert stream_outcome(watch_type, obj) == outcome


def test_read_line_takes_the_fast_answer_else_the_plain_path() -> None:
    consumer = Consumer()
    fast_answer = LineResult("suppressed", "7")

    def fast(raw: bytes, initial_sync: bool) -> LineResult | None:
        return fast_answer if raw.startswith(b"FAST") else None

    event = '{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"8"}}}'
    results = [
        consume_line(consumer, b"FAST whatever", fast=fast),
        consume_line(consumer, event, initial_sync=True, fast=fast),
        consume_line(consumer, b"  "),
        consume_line(consumer, b"[1]"),
        consume_line(consumer, b"{oops"),
        consume_line(consumer, b'{"type":"ERROR","object":{"code":410,"metadata":{"resourceVersion":"9"}}}'),
    ]
    assert results == [
        fast_answer,
        ("forwarded", "8"),
        ("ignored:blank", None),
        ("malformed:not-an-object", None),
        ("malformed:json", None),
        ("forwarded", None),  # an ERROR's Status names no version of the stream
    ]
    assert [name for name, _ in consumer.calls] == ["handle", "malformed", "malformed", "handle"]
    assert consumer.calls[0] == ("handle", ("MODIFIED", True))


def test_read_line_raises_sink_failures_and_notes_anything_else() -> None:
    down = Consumer(fails=SinkUnavailable("down", pending=["body"]))
    with pytest.raises(SinkUnavailable):
        consume_line(down, b'{"type":"ADDED","object":{}}')

    buggy = Consumer(fails=KeyError("x"))
    assert consume_line(buggy, b'{"type":"ADDED","object":{}}') == ("malformed:unexpected", None)
    assert buggy.calls[-1] == ("unexpected", "KeyError")


class NullSink:
    def send(self, bodies: Sequence[str]) -> SendResult:
        return SendResult(sent=len(bodies))


def test_an_object_relay_counts_a_bug_on_its_fast_path_by_type(monkeypatch: pytest.MonkeyPatch) -> None:
    relay = ObjectRelay(spec=BUILTIN["Node"], sink=NullSink(), cluster_id="c1", relay_version="t")
    node = fx.node("n1")
    node["metadata"]["resourceVersion"] = "3"
    line = json.dumps({"type": "ADDED", "object": node}).encode()

    def broken(raw: bytes, allowlist: Any) -> Any:
        raise ValueError("a bug")

    # When the fast path fails on one line, then works on the next
    monkeypatch.setattr(objects.objectfast, "decode", broken)
    first = relay.process_line(line)
    monkeypatch.undo()
    second = relay.process_line(line)
    relist = relay.process_line(b'{"type":"ERROR","object":{"code":410}}')

    # Then the first is `malformed:unexpected` (counted by type), the stream goes on
    assert (first, second, relist) == (("malformed:unexpected", None), ("forwarded", "3"), ("relist", None))
    s = relay.stats
    assert s.unexpected_errors == {"ValueError": 1}
    assert (s.input_events, s.malformed, s.forwarded, s.errors, s.relists_requested) == (3, 1, 1, 1, 1)


def _crds(make_relay: Any) -> CustomResources:
    group = ObjectGroup(api=None, stop=threading.Event(), factory=lambda **kw: None, make_relay=make_relay)  # type: ignore[arg-type]
    return CustomResources(group, patterns=["*.example.com"])


def _crd_line(group: str) -> bytes:
    crd = fx.crd(group, "widgets", "Widget")
    crd["metadata"] |= {"uid": "u1", "resourceVersion": "41"}
    return json.dumps({"type": "ADDED", "object": crd}).encode()


def test_a_control_watch_reads_lines_the_one_way() -> None:
    crds = _crds(make_relay=lambda spec: None)
    assert [
        crds.process_line(_crd_line("other.org")),
        crds.process_line(b"\xff{"),
        crds.process_line(b"[" * 2000 + b"]" * 2000),
        crds.process_line(b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"42"}}}'),
        crds.process_line(b'{"type":"ERROR","object":{"code":410}}'),
    ] == [
        ("skipped:crd-not-selected", "41"),
        ("malformed:invalid-utf8", None),
        ("malformed:too-deep", None),
        ("bookmark", "42"),
        ("relist", None),
    ]


def test_every_consumer_labels_an_error_without_a_code_the_same() -> None:
    # Given an ERROR whose Status has no integer code (once `error:None` on the control watches)
    lines = [b'{"type":"ERROR","object":{"kind":"Status"}}', b'{"type":"ERROR","object":{"code":"x"}}']
    relay = ObjectRelay(spec=BUILTIN["Node"], sink=NullSink(), cluster_id="c1", relay_version="t")
    crds = _crds(make_relay=lambda spec: None)

    # Then a kind's relay and a control watch both read it as `error:unknown`
    for consumer in (relay, crds):
        assert [consumer.process_line(line) for line in lines] == [("error:unknown", None)] * 2
    assert relay.stats.outcomes == {"error:unknown": 2}
    assert relay.stats.errors == 2


def test_a_bug_in_a_control_watch_restarts_its_watch() -> None:
    # A skipped CRD line would leave its kind unwatched until the next relist: the error reaches
    # the watch loop, which restarts the watch with a list (`ListWatcher.run`).
    def broken(spec: KindSpec) -> ObjectRelay:
        raise RuntimeError("a bug")

    crds = _crds(make_relay=broken)
    with pytest.raises(RuntimeError, match="a bug"):
        crds.process_line(_crd_line("shop.example.com"))
