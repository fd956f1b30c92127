"""The relay's disk spool when several processes share one volume (replicas on a ReadWriteMany
PVC): each writes its own locked directory, and what a gone process left is adopted by a live one,
in order, exactly once."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from podwatch_relay.outbox import Outbox, Spool
from podwatch_relay.sink import SendResult

MAX = 64 * 1024 * 1024


def drain(spool: Spool) -> list[str]:
    """Everything the spool holds, oldest first, committed as the outbox would."""
    out: list[str] = []
    while len(spool):
        bodies, size = spool.peek(3)
        if not bodies:
            break
        spool.commit(len(bodies), size)
        out += bodies
    return out


def spooled(base: Path, owner: str | None, bodies: Sequence[str]) -> None:
    """A process that spooled `bodies` and is gone."""
    spool = Spool(base, max_bytes=MAX, owner=owner)
    for body in bodies:
        assert spool.append(body)
    spool.close()


def test_owners_sharing_a_volume_write_their_own_directories(tmp_path: Path) -> None:
    a = Spool(tmp_path, max_bytes=MAX, owner="relay-a")
    b = Spool(tmp_path, max_bytes=MAX, owner="relay-b")
    a.append('{"a":1}')
    b.append('{"b":1}')
    a.append('{"a":2}')
    # both alive: neither takes the other's
    assert (a.adopt_orphans(), b.adopt_orphans()) == (0, 0)
    assert (a.dir, b.dir) == (tmp_path / "relay-a", tmp_path / "relay-b")
    assert drain(a) == ['{"a":1}', '{"a":2}']
    assert drain(b) == ['{"b":1}']


def test_a_gone_owners_spool_is_adopted_after_ones_own_and_its_directory_removed(tmp_path: Path) -> None:
    # this pod's previous container and a replica, both gone (alive together: neither adopted)
    previous = Spool(tmp_path, max_bytes=MAX, owner="relay-c")
    replica = Spool(tmp_path, max_bytes=MAX, owner="relay-a")
    previous.append('{"c":0}')
    replica.append('{"a":1}')
    replica.append('{"a":2}')
    previous.close()
    replica.close()
    c = Spool(tmp_path, max_bytes=MAX, owner="relay-c")
    assert (len(c), c.adopted) == (3, 2)
    assert drain(c) == ['{"c":0}', '{"a":1}', '{"a":2}']
    assert not (tmp_path / "relay-a").exists()
    assert list(c.dir.glob("*.jsonl")) == []


def test_a_live_owner_is_left_alone_until_it_is_gone(tmp_path: Path) -> None:
    a = Spool(tmp_path, max_bytes=MAX, owner="relay-a")
    a.append('{"a":1}')
    c = Spool(tmp_path, max_bytes=MAX, owner="relay-c")
    assert c.adopted == 0
    c.append('{"c":1}')  # c's writer is open on its newest segment
    a.append('{"a":2}')
    a.close()
    assert c.adopt_orphans() == 2
    c.append('{"c":2}')  # after what was adopted
    assert drain(c) == ['{"c":1}', '{"a":1}', '{"a":2}', '{"c":2}']
    assert c.adopt_orphans() == 0  # once


def test_two_adopters_take_a_gone_spool_once(tmp_path: Path) -> None:
    spooled(tmp_path, "gone", [f'{{"n":{i}}}' for i in range(5)])
    x = Spool(tmp_path, max_bytes=MAX, owner="x")
    y = Spool(tmp_path, max_bytes=MAX, owner="y")
    assert drain(x) + drain(y) == [f'{{"n":{i}}}' for i in range(5)]


def test_an_ownerless_spool_at_the_top_level_is_adopted(tmp_path: Path) -> None:
    spooled(tmp_path, None, ['{"old":1}', '{"old":2}'])  # a relay that wrote the volume's root
    c = Spool(tmp_path, max_bytes=MAX, owner="relay-c")
    assert drain(c) == ['{"old":1}', '{"old":2}']
    assert list(tmp_path.glob("*.jsonl")) == []


def test_the_same_owner_twice_gets_a_directory_of_its_own(tmp_path: Path) -> None:
    a = Spool(tmp_path, max_bytes=MAX, owner="relay-a")
    again = Spool(tmp_path, max_bytes=MAX, owner="relay-a")
    assert again.dir == tmp_path / f"relay-a.{os.getpid()}"
    a.append('{"a":1}')
    again.append('{"again":1}')
    assert (drain(a), drain(again)) == (['{"a":1}'], ['{"again":1}'])


def test_a_directory_that_is_not_a_spool_is_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "lost+found"
    other.mkdir()
    (other / "000000000000.jsonl").write_text('{"not":"ours"}\n')
    c = Spool(tmp_path, max_bytes=MAX, owner="relay-c")
    assert (len(c), c.adopt_orphans()) == (0, 0)
    assert (other / "000000000000.jsonl").read_text() == '{"not":"ours"}\n'


class Collecting:
    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.lock = threading.Lock()

    def send(self, bodies: Sequence[str]) -> SendResult:
        with self.lock:
            self.bodies += bodies
        return SendResult(sent=len(bodies))


def test_a_running_outbox_replays_what_a_replica_left_when_it_went(tmp_path: Path) -> None:
    sink = Collecting()
    outbox = Outbox(sink=sink, spool_dir=tmp_path, spool_owner="leader", adopt_interval=0.1).start()
    try:
        # a replica that spooled during an SQS outage and then went away (its lock released)
        spooled(tmp_path, "old-leader", ['{"left":1}', '{"left":2}'])
        outbox.send(['{"live":1}'])
        deadline = time.monotonic() + 10
        while len(sink.bodies) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(sink.bodies) == ['{"left":1}', '{"left":2}', '{"live":1}']
        assert sink.bodies.index('{"left":1}') < sink.bodies.index('{"left":2}')
        assert outbox.stats.replayed_from_spool == 2
        assert not (tmp_path / "old-leader").exists()
    finally:
        outbox.close(timeout=2)


def test_a_replayed_spool_leaves_no_file_to_send_again(tmp_path: Path) -> None:
    # a crashed writer's segment: two whole lines and a torn one
    (tmp_path / "000000000000.jsonl").write_text('{"a":1}\n{"a":2}\n{"tor')
    spool = Spool(tmp_path, max_bytes=MAX)
    assert len(spool) == 2
    assert drain(spool) == ['{"a":1}', '{"a":2}']
    # nothing is left for the next start to count and send again
    assert list(tmp_path.glob("*.jsonl")) == []
    assert len(Spool(tmp_path, max_bytes=MAX)) == 0
