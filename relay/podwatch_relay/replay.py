"""Replay a file of recorded watch events through the relay, line by line.

The file is JSON lines, each one watch event exactly as the API server streams it
(`{"type": ..., "object": {...}}`). From the parsed watch event on, this is the live path:
`Relay.handle_line` → projection → tracker → envelopes → sink.
"""

from __future__ import annotations

import logging
from pathlib import Path

from podwatch_relay.pipeline import Relay, RelayStats

log = logging.getLogger("podwatch_relay.replay")


def replay_file(path: str | Path, relay: Relay) -> RelayStats:
    """Feed every line of `path` to `relay`, flush, and return the relay's stats.

    Bad lines are counted and skipped (see `Relay.handle_line`); a sink that gives up raises
    (`SinkUnavailable` / `SinkRejected`) with the unsent envelopes still queued in the relay."""
    path = Path(path)
    log.info("replay started", extra={"file": str(path)})
    with path.open("rb") as stream:
        for line in stream:
            relay.handle_line(line)
    relay.flush()
    log.info("replay finished", extra={"file": str(path), "stats": relay.stats.to_dict()})
    return relay.stats
