"""A small progress bar on stderr for long work (redrive), stdlib only.

Drawn only when the stream is a terminal (or when forced), so logs and pipes stay clean; the command
prints its own summary line either way.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Self


class Progress:
    """`with Progress(total, "redrive") as bar: bar.advance()`; total may grow (`bar.total = n`)."""

    WIDTH = 30

    def __init__(
        self, total: int, label: str, *, stream: IO[str] | None = None, enabled: bool | None = None
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last_draw = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.total = max(self.total, self.done)
        now = time.monotonic()
        if now - self._last_draw >= 0.1 or self.done >= self.total:
            self._draw()
            self._last_draw = now

    def _draw(self) -> None:
        if not self.enabled:
            return
        filled = self.WIDTH * self.done // self.total if self.total else self.WIDTH
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
        self.stream.flush()

    def __enter__(self) -> Self:
        self._draw()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
