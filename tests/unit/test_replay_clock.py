"""`RecordedClock`: a replayed recording keeps the recording's time (`observed_at`), so a pod that
was Pending for seconds when it was recorded is not `pending-too-long` when it is replayed days later."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from podwatch.classify import classify
from podwatch.models import EventType, PodEnvelope
from podwatch.wire import parse_envelope
from podwatch_relay.pipeline import Relay
from podwatch_relay.replay import RecordedClock, replay_file
from podwatch_relay.sink import SendResult

SAMPLE = Path(__file__).resolve().parents[2] / "events" / "replay" / "sample-stream.jsonl"
#: the first and the last timestamp written in the sample recording
RECORDED_FROM = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
RECORDED_TO = datetime(2026, 11, 20, 9, 5, 0, tzinfo=UTC)
WALL = datetime(2030, 1, 1, tzinfo=UTC)


class _Sink:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        self.bodies += bodies
        return SendResult(sent=len(bodies), calls=1)


def test_the_clock_is_the_latest_timestamp_seen_and_never_goes_back() -> None:
    clock = RecordedClock(fallback=lambda: WALL)
    assert clock() == WALL  # nothing recorded seen yet

    clock.advance(b'{"metadata":{"creationTimestamp":"2026-11-20T09:00:00Z"},"x":"2026-11-20T09:01:00.25Z"}')
    assert clock() == datetime(2026, 11, 20, 9, 1, 0, 250000, tzinfo=UTC)

    clock.advance(b'{"lastTimestamp":"2026-11-20T08:00:00Z"}')  # an older line: the clock stays
    assert clock() == datetime(2026, 11, 20, 9, 1, 0, 250000, tzinfo=UTC)

    # a time inside an escaped JSON string (last-applied-configuration) is not a time of the line
    clock.advance(b'{"a":"{\\"t\\": \\"2027-01-01T00:00:00Z\\"}","b":"2026-11-20T09:02:00.123456789Z"}')
    assert clock() == datetime(2026, 11, 20, 9, 2, 0, 123456, tzinfo=UTC)

    clock.advance(b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"7"}}}')  # no time
    assert clock() == datetime(2026, 11, 20, 9, 2, 0, 123456, tzinfo=UTC)


def _replay(clock: RecordedClock | None) -> list[PodEnvelope]:
    sink = _Sink()
    relay = Relay(sink=sink, cluster_id="c1", relay_version="test", clock=clock or (lambda: WALL))
    replay_file(SAMPLE, relay, clock=clock)
    envelopes = [parse_envelope(b) for b in sink.bodies]
    return [e for e in envelopes if isinstance(e, PodEnvelope)]


def test_a_replay_on_the_recorded_clock_observes_each_change_when_it_happened() -> None:
    pods = _replay(RecordedClock(fallback=lambda: WALL))

    assert pods
    for envelope in pods:
        observed = envelope.payload.observed_at
        assert RECORDED_FROM <= observed <= RECORDED_TO, envelope.payload.name
        assert envelope.payload.created_at is None or envelope.payload.created_at <= observed
    # the classification of the recording is the recording's: nothing Pending for days
    found = {f.event_type for e in pods for f in classify(e, pending_too_long_s=600)}
    assert EventType.PENDING_TOO_LONG not in found
    assert {EventType.CRASH_LOOP, EventType.OOM_KILL, EventType.EVICTED, EventType.IMAGE_PULL} <= found


def test_a_replay_on_the_wall_clock_makes_recorded_pending_pods_look_pending_for_days() -> None:
    # what the recorded clock is for: the same stream stamped with the wall clock, years later
    pods = _replay(None)

    assert all(e.payload.observed_at == WALL for e in pods)
    late = [
        e.payload.name
        for e in pods
        if any(f.event_type is EventType.PENDING_TOO_LONG for f in classify(e, pending_too_long_s=600))
    ]
    assert late
    assert all(WALL - e.payload.created_at > timedelta(days=365) for e in pods if e.payload.created_at)


def test_the_replay_command_keeps_the_recorded_time_when_asked(tmp_path: Path) -> None:
    from podwatch_relay import app

    out = tmp_path / "envelopes.jsonl"
    assert app.main(["replay", str(SAMPLE), "--output", str(out), "--no-enroll", "--recorded-time"]) == 0

    pods = [e for e in map(parse_envelope, out.read_text().splitlines()) if isinstance(e, PodEnvelope)]
    assert pods
    assert all(RECORDED_FROM <= e.payload.observed_at <= RECORDED_TO for e in pods)
