"""StartStop: the one way a thing that runs between `start()` and `stop()` is also a `with` block
(the loopback servers here, and the local stack and its child processes in local/).

    with LoopbackServer(Handler) as server:   # start() on entry, stop() on exit, errors included
        ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class StartStop(ABC):
    """`start()` returns the started thing; `stop()` frees what it holds."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
