"""The loopback server base (cli/podwatch_cli/loopback.py) over real HTTP on 127.0.0.1: whole
answers with their length, one thread a request, a free port by default, and a stop that frees it."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from podwatch_cli.loopback import LoopbackHandler, LoopbackServer


class Echo(LoopbackHandler):
    def do_GET(self) -> None:
        self.send(200, {"Content-Type": "text/plain", "X-Path": self.path}, f"you asked {self.path}".encode())


def test_it_serves_whole_answers_on_loopback_and_frees_its_port_when_stopped() -> None:
    # Given a server on a free port
    with LoopbackServer(Echo, name="echo") as server:
        host, port = server.url.removeprefix("http://").split(":")

        # When it is asked twice
        answers = [httpx.get(f"{server.url}/a?b=1", timeout=5), httpx.get(f"{server.url}/c", timeout=5)]

        # Then each answer is whole, with its headers and length, on 127.0.0.1 in the named thread
        assert host == "127.0.0.1"
        assert [a.text for a in answers] == ["you asked /a?b=1", "you asked /c"]
        assert answers[0].headers["X-Path"] == "/a?b=1"
        assert answers[0].headers["Content-Length"] == str(len("you asked /a?b=1"))
        assert any(t.name == "echo" and t.daemon for t in threading.enumerate())

    # And once stopped, the port is closed and the thread gone
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", int(port)), timeout=1):
        pass
    assert not any(t.name == "echo" for t in threading.enumerate())


def test_a_server_never_started_stops_without_waiting() -> None:
    server = LoopbackServer(Echo)
    done = threading.Event()
    threading.Thread(target=lambda: (server.stop(), done.set()), daemon=True).start()
    assert done.wait(5), "stop() of a server that never started hangs"
