"""The envelopes a relay has queued and not yet handed to its sink: one `Batch` per relay (the
pods' `pipeline.Relay`, each kind's `objects.ObjectRelay`). Each body is fitted under the SQS
message limit as it is queued (`fit`); `flush` hands them over, keeps what a failing sink did not
accept (in order) and counts what the sink did (`account`), the same way for every relay."""

from __future__ import annotations

from typing import Protocol

from podwatch_relay.errors import SinkRejected, SinkUnavailable
from podwatch_relay.fit import FITS_CHARS, fit
from podwatch_relay.sink import SendResult, Sink


class SendCounts(Protocol):
    """The counters a `Batch` keeps (fields of `pipeline.RelayStats` and `objects.ObjectStats`)."""

    sent: int
    queued: int
    dropped: int
    dropped_reasons: dict[str, int]
    #: bodies trimmed to fit, and replaced by an oversize stub
    trimmed: int
    oversize: int


def account(counts: SendCounts, result: SendResult) -> None:
    """Count what the sink did with one batch."""
    counts.sent += result.sent
    counts.queued += result.queued
    counts.dropped += result.dropped
    for reason, count in result.dropped_reasons.items():
        counts.dropped_reasons[reason] = counts.dropped_reasons.get(reason, 0) + count


class Batch:
    """Bodies queued, oldest first; not thread-safe (the relay's lock guards it)."""

    __slots__ = ("bodies", "counts")

    def __init__(self, counts: SendCounts) -> None:
        self.counts = counts
        self.bodies: list[str] = []

    def __len__(self) -> int:
        return len(self.bodies)

    def add(self, body: str) -> None:
        """Queue one envelope body, trimmed or stubbed first if it would not fit (`fit`)."""
        if len(body) > FITS_CHARS:  # shorter always fits: one comparison for nearly every envelope
            body, change = fit(body)
            if change == "trimmed":
                self.counts.trimmed += 1
            elif change == "stub":
                self.counts.oversize += 1
        self.bodies.append(body)

    def flush(self, sink: Sink) -> SendResult:
        """Hand everything queued to `sink` (the relay's: it may be replaced). On `SinkUnavailable`
        or `SinkRejected` the bodies it did not accept stay queued, in order, for the next flush,
        and the error propagates."""
        if not self.bodies:
            return SendResult()
        batch, self.bodies = self.bodies, []
        try:
            result = sink.send(batch)
        except (SinkUnavailable, SinkRejected) as exc:
            if exc.result is not None:
                account(self.counts, exc.result)
            self.bodies = list(exc.pending) + self.bodies
            raise
        account(self.counts, result)
        return result
