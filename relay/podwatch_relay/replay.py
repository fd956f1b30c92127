"""Replay a file of recorded watch events through the relay, line by line.

The file is JSON lines, each one watch event exactly as the API server streams it
(`{"type": ..., "object": {...}}`). From the parsed watch event on, this is the live path:
`Relay.handle_line` → projection → tracker → envelopes → sink.

A recording replayed later is not happening now: a relay whose clock says "now" stamps every
pod's `observed_at` days after its `creationTimestamp`, and a pod that was Pending for five
seconds looks Pending for days (`pending-too-long`). `RecordedClock` is the time of the recording
instead: the latest timestamp the lines replayed so far carry. Give it to the `Relay` (its `clock`)
and to `replay_file`, which advances it before each line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from podwatch.models import utcnow
from podwatch_relay.pipeline import Relay, RelayStats

log = logging.getLogger("podwatch_relay.replay")


#: an RFC 3339 time in UTC as the API server writes it (a JSON string of its own, not one inside
#: an escaped string such as last-applied-configuration)
_STAMP = re.compile(rb'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z)"')


class RecordedClock:
    """The time of a recorded watch stream while it is replayed: the latest RFC 3339 UTC timestamp
    found in the lines replayed so far (creation and deletion times, condition transitions,
    container starts and ends, managedFields update times, Event timestamps). It never goes back;
    before the first timestamp it is `fallback` (the wall clock)."""

    def __init__(self, fallback: Callable[[], datetime] = utcnow) -> None:
        self._fallback = fallback
        self.latest: datetime | None = None

    def advance(self, line: bytes) -> None:
        for raw in _STAMP.findall(line):
            text = raw.decode()
            seconds, _, fraction = text[:-1].partition(".")
            stamp = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(
                tzinfo=UTC, microsecond=int(fraction[:6].ljust(6, "0")) if fraction else 0
            )
            if self.latest is None or stamp > self.latest:
                self.latest = stamp

    def __call__(self) -> datetime:
        return self.latest if self.latest is not None else self._fallback()


def replay_file(path: str | Path, relay: Relay, *, clock: RecordedClock | None = None) -> RelayStats:
    """Feed every line of `path` to `relay`, flush, and return the relay's stats. With `clock`
    (the relay's own clock too), each line first advances it: the replay keeps the recording's time.

    Bad lines are counted and skipped (see `Relay.handle_line`); a sink that gives up raises
    (`SinkUnavailable` / `SinkRejected`) with the unsent envelopes still queued in the relay."""
    path = Path(path)
    log.info("replay started", extra={"file": str(path)})
    with path.open("rb") as stream:
        for line in stream:
            if clock is not None:
                clock.advance(line)
            relay.handle_line(line)
    relay.flush()
    log.info("replay finished", extra={"file": str(path), "stats": relay.stats.to_dict()})
    return relay.stats
