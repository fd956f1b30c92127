"""Times as the wire writes them: `time_text` (a datetime as pydantic serializes it), `now_text`
(the clock, formatted once per second) and `canonical_time` (an RFC 3339 time from the API
server in that form, cached). The snapshot, the projection and the pipeline share them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def time_text(value: datetime) -> str:
    """A datetime as pydantic serializes it (ISO 8601, `Z` for UTC)."""
    if value.tzinfo is UTC:  # the clock's: formatting it naive is cheaper than trimming `+00:00`
        return value.replace(tzinfo=None).isoformat() + "Z"
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


#: The last second `now_text` formatted: (seconds since the epoch, `YYYY-MM-DDTHH:MM:SS`).
_SECOND: tuple[int, str] = (0, "1970-01-01T00:00:00")


def now_text() -> str:
    """`time_text(utcnow())`, formatting the date and time of day once per second (the same
    clock and the same microseconds: `datetime.now` truncates the clock's nanoseconds)."""
    global _SECOND
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    known, text = _SECOND
    if second != known:
        text = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()
        _SECOND = (second, text)
    micros = nanos // 1000
    return "%s.%06dZ" % (text, micros) if micros else text + "Z"  # noqa: UP031  # the fastest


#: Times seen recently, raw text → `canonical_time` of it (a pod's creation and transition times
#: repeat in every update). Bounded. Hot loops may read it inline (`KNOWN_TIMES.get(raw, KNOWN_TIMES)`
#: is `KNOWN_TIMES` when unknown); only `canonical_time` writes it.
KNOWN_TIMES: dict[str, str | None] = {}
_KNOWN_TIMES_MAX = 4096


def canonical_time(value: Any) -> str | None:
    """An RFC 3339 time from the API server as `time_text` writes it; None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    known = KNOWN_TIMES.get(value, KNOWN_TIMES)
    if known is not KNOWN_TIMES:
        return known  # type: ignore[return-value]
    try:
        parsed: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None:
        text = None
    elif len(value) == 20 and value[19] == "Z":  # `2026-11-20T09:00:00Z`: already canonical
        text = value
    else:
        text = time_text(parsed)
    if len(KNOWN_TIMES) >= _KNOWN_TIMES_MAX:
        KNOWN_TIMES.clear()
    KNOWN_TIMES[value] = text
    return text
