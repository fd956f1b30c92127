"""Shutdown of a watcher whose stream socket is already closed (a race seen in CI: the server ended
the stream, urllib3 closed the socket, then SIGTERM's `interrupt` shut it down → EBADF, exit 1)."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

from kubernetes.client import ApiClient, CoreV1Api

from podwatch_relay.pipeline import Relay
from podwatch_relay.sink import FileSink
from podwatch_relay.watch import PODS, ListWatcher


class ClosedStream:
    """What `urllib3.HTTPResponse.shutdown` does once its socket is closed."""

    def __init__(self) -> None:
        self.calls = 0

    def shutdown(self) -> None:
        self.calls += 1
        raise OSError(errno.EBADF, "Bad file descriptor")


def test_interrupting_a_watch_whose_socket_is_closed_does_not_raise(tmp_path: Path) -> None:
    relay = Relay(sink=FileSink(path=str(tmp_path / "out.jsonl")), cluster_id="c", relay_version="t")
    watcher = ListWatcher(
        api=CoreV1Api(ApiClient()), relay=relay, resource=PODS, namespace=None, stop=threading.Event()
    )
    stream = ClosedStream()
    watcher._response = stream  # type: ignore[assignment]
    watcher.interrupt()
    assert stream.calls == 1
    watcher._response = None
    watcher.interrupt()  # nothing open: nothing to do
