"""One watch line, read the same way by every consumer of a watch: `consume_line`, its `LineResult`,
and the outcome counters (`OutcomeCounts`) every relay keeps.

The consumers of a `watch.ListWatcher` (the pods' `pipeline.Relay`, each kind's
`objects.ObjectRelay`, the namespace and CRD watches that start other watchers) each turn a line
into an outcome label (listed in `pipeline`'s docstring) and the resourceVersion it carried; how,
is written here once: a consumer's fast path may answer first; else a blank line is ignored, a line
that is not a JSON object is the consumer's `note_malformed`, any other its `handle`. A failing sink
propagates (its envelopes stay queued); any other error is the consumer's `note_unexpected`.
A BOOKMARK's or ERROR's outcome, whoever handles it, is `stream_outcome`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple, Protocol

from podwatch_relay._json import error_reason, loads
from podwatch_relay.errors import BadWatchEvent, SinkRejected, SinkUnavailable

log = logging.getLogger("podwatch_relay.watchline")


class LineResult(NamedTuple):
    """What one watch line did: its outcome label, and the resourceVersion it carried (if any)."""

    outcome: str
    resource_version: str | None


@dataclass(slots=True)
class OutcomeCounts:
    """Counters by outcome. Every input event lands in exactly one of forwarded / suppressed /
    bookmarks / skipped / malformed / errors."""

    input_events: int = 0
    forwarded: int = 0
    suppressed: int = 0
    bookmarks: int = 0
    skipped: int = 0
    malformed: int = 0
    errors: int = 0
    #: ERROR events with 410 Gone (a subset of `errors`): the watch relisted
    relists_requested: int = 0
    #: every outcome label with its count (`skipped:kind-ConfigMap`, `malformed:json`, ...)
    outcomes: dict[str, int] = field(default_factory=dict)
    #: inputs counted as `malformed:unexpected`, by the type of the error their handling raised
    unexpected_errors: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> str:
        """Count one outcome (its label, and its group's counter); returns it."""
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        group = outcome.split(":", 1)[0]
        if group == "forwarded":
            self.forwarded += 1
        elif group == "suppressed":
            self.suppressed += 1
        elif group == "bookmark":
            self.bookmarks += 1
        elif group == "skipped":
            self.skipped += 1
        elif group == "malformed":
            self.malformed += 1
        elif group in {"error", "relist"}:
            self.errors += 1
            if group == "relist":
                self.relists_requested += 1
        return outcome

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prefix(raw: object, text: Callable[[object], str]) -> str:
    return (raw.decode(errors="replace") if isinstance(raw, bytes) else text(raw))[:200]


def log_malformed(exc: BadWatchEvent, raw: object) -> str:
    """Log one bad input; returns its outcome, `malformed:<why>`."""
    outcome = f"malformed:{exc.reason}"
    extra = {"outcome": outcome, "input_prefix": _prefix(raw, str)}
    log.warning("skipped malformed watch input: %s", exc, extra=extra)
    return outcome


def count_malformed(counts: OutcomeCounts, exc: BadWatchEvent, raw: object) -> str:
    """Count and log one bad input; returns its outcome, `malformed:<why>`."""
    return counts.count(log_malformed(exc, raw))


def count_unexpected(counts: OutcomeCounts, exc: Exception, raw: object) -> str:
    """Count (by error type) and log with its traceback one input whose handling failed in a way
    nothing expected: `malformed:unexpected`."""
    name = type(exc).__name__
    counts.unexpected_errors[name] = counts.unexpected_errors.get(name, 0) + 1
    outcome = counts.count("malformed:unexpected")
    log.error(
        "watch input skipped: handling it failed unexpectedly",
        exc_info=exc,
        extra={"outcome": outcome, "error": f"{name}: {exc}", "input_prefix": _prefix(raw, repr)},
    )
    return outcome


def parse_watch_line(line: str | bytes) -> dict[str, Any]:
    """One line of a watch stream → the watch event dict, or `BadWatchEvent`."""
    try:
        event = loads(line)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = error_reason(exc, line)
        raise BadWatchEvent(f"line is not JSON ({reason}): {exc}", reason=reason) from exc
    if not isinstance(event, dict):
        raise BadWatchEvent(f"line is a JSON {type(event).__name__}, not an object", reason="not-an-object")
    return event


def stream_outcome(watch_type: object, obj: object) -> str | None:
    """The outcome of a watch event about the stream rather than an object: `bookmark` for a
    BOOKMARK; for an ERROR (its object a Status) `relist` if its code is 410 Gone, else
    `error:<code>` (`error:unknown` when the Status has no integer code). None for any other type."""
    if watch_type == "BOOKMARK":
        return "bookmark"
    if watch_type != "ERROR":
        return None
    code = obj.get("code") if isinstance(obj, dict) else None
    return "relist" if code == 410 else f"error:{code if isinstance(code, int) else 'unknown'}"


def resource_version_of(watch_event: dict[str, Any]) -> str | None:
    """The resourceVersion a watch event carries (ADDED/MODIFIED/DELETED/BOOKMARK), if any."""
    obj = watch_event.get("object")
    if not isinstance(obj, dict):
        return None
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return rv if isinstance(rv, str) and rv else None


class LineConsumer(Protocol):
    """What `consume_line` needs of a consumer."""

    def handle(self, watch_event: Any, *, initial_sync: bool = False) -> str: ...

    def note_malformed(self, exc: BadWatchEvent, raw: object) -> str: ...

    def note_unexpected(self, exc: Exception, raw: object) -> str: ...


#: A consumer's fast path: the line (bytes) and `initial_sync` → its result, or None (the plain path).
FastPath = Callable[[bytes, bool], LineResult | None]


def consume_line(
    consumer: LineConsumer, line: str | bytes, *, initial_sync: bool = False, fast: FastPath | None = None
) -> LineResult:
    """One watch line through `consumer` (see the module docstring). Raises only what the sink
    raised (`SinkUnavailable`, `SinkRejected`) and what `note_unexpected` raises."""
    raw = line.encode(errors="surrogatepass") if isinstance(line, str) else line
    try:
        result = fast(raw, initial_sync) if fast is not None else None
        return result if result is not None else _plain_line(consumer, raw, initial_sync)
    except (SinkUnavailable, SinkRejected):
        raise
    except Exception as exc:  # noqa: BLE001  # a bug must cost one line, never the watch
        return LineResult(consumer.note_unexpected(exc, raw), None)


def _plain_line(consumer: LineConsumer, raw: bytes, initial_sync: bool) -> LineResult:
    if not raw.strip():
        return LineResult("ignored:blank", None)
    try:
        event = parse_watch_line(raw)
    except BadWatchEvent as exc:
        return LineResult(consumer.note_malformed(exc, raw), None)
    outcome = consumer.handle(event, initial_sync=initial_sync)
    # An ERROR's object is a Status: whatever version it names is not the stream's.
    return LineResult(outcome, resource_version_of(event) if event.get("type") != "ERROR" else None)
