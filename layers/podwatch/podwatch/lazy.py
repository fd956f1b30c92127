"""One value per Lambda execution environment, built on first use — never at import, so moto (or a
test's injected clients) is in place before any boto3 client exists. The handlers keep their
`dependencies()` / `set_dependencies()` / `reset()` functions; this is what they delegate to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Lazy[T]:
    """A thread-safe, replaceable, lazily built value. `close` runs on a value that is replaced."""

    def __init__(self, build: Callable[[], T], *, close: Callable[[T], None] | None = None) -> None:
        self._build = build
        self._close = close
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    def set(self, value: T | None) -> None:
        """Inject a value (tests, the local stack), or forget it with None; the old one is closed."""
        with self._lock:
            previous, self._value = self._value, value
        if previous is not None and previous is not value and self._close is not None:
            self._close(previous)
