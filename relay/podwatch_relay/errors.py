"""Errors of the relay, in the shared hierarchy (`podwatch.errors`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from podwatch.errors import PermanentError, TransientError


class BadWatchEvent(PermanentError):
    """A watch line or object the relay cannot use (not JSON, unknown type, pod without uid, ...).

    `reason` is the short label that ends up in the outcome (`malformed:<reason>`) and the stats.
    """

    reason = "bad-watch-event"


class WatchExpired(TransientError):
    """`410 Gone`: the resourceVersion the watch asked for is compacted away. The cure is a relist."""

    reason = "gone"


class SinkUnavailable(TransientError):
    """The sink gave up on transient failures. `pending` holds every body not yet accepted, in
    order, so the caller can keep, spool or re-send them; nothing is dropped by raising this."""

    reason = "sink_unavailable"

    def __init__(
        self, message: str, *, pending: Sequence[str], result: Any = None, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.pending: list[str] = list(pending)
        #: the sink's `SendResult` for what it did settle before giving up (sent, dropped)
        self.result = result


class SinkRejected(PermanentError):
    """The queue refused the whole request for a reason retrying cannot fix (no such queue, access
    denied, ...). `pending` holds the bodies not yet accepted, like `SinkUnavailable`."""

    reason = "sink_rejected"

    def __init__(
        self, message: str, *, pending: Sequence[str], result: Any = None, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.pending: list[str] = list(pending)
        #: the sink's `SendResult` for what it did settle before giving up (sent, dropped)
        self.result = result
