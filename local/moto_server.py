"""`python -m local.moto_server -H 127.0.0.1 -p <port>`: moto's server (as `python -m moto.server`)
with the cost of its SQS queues made independent of how many messages they hold.

moto 5's SQS reads the clock through a datetime round trip for every message it looks at, and on
every message sent or received recomputes all of a queue's attributes (three passes over every
message, for the approximate counts) or checks retention that way: a SendMessageBatch costs ~0.3 s
with 1,000 messages queued and a ReceiveMessage ~2 s on this machine, so a 20,000-line replay crawls
(issue 14: 13 lines/s). `patch_sqs()` keeps moto's behaviour and removes that cost:

* the clock moto's SQS reads is `time.time()` (the instant its utcnow arithmetic computes);
* the retention check of each received message reads the queue's retention period directly;
* the approximate counts read the clock once per count, not once per message.

Hand-written because no SQS-compatible server installs here from PyPI, npm or apt (ElasticMQ is a
JVM jar, goaws a Go binary); moto stays the one AWS fake, so every other service is unchanged.

It also imports moto's CloudFormation in the background as it starts (local/cfn.py creates the stack
with it; the import takes seconds the first CreateStack would otherwise wait for).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any


def _now_ms(dt: Any = None) -> float:
    return time.time() * 1000.0 if dt is None else _utc_ms(dt)


def _now_s(dt: Any = None) -> float:
    return time.time() if dt is None else _utc_ms(dt) / 1000.0


def _utc_ms(dt: Any) -> float:
    from moto.core.utils import unix_time_millis

    return float(unix_time_millis(dt))


def patch_sqs() -> None:
    """Apply the patches to the imported moto SQS backend (idempotent)."""
    from moto.sqs import models

    if getattr(models, "_podwatch_patched", False):
        return
    models.unix_time = _now_s  # type: ignore[attr-defined]
    models.unix_time_millis = _now_ms  # type: ignore[attr-defined]

    def retention_ok(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        return bool(int(queue.message_retention_period) + message.sent_timestamp / 1000 > time.time())

    models.SQSBackend.is_message_valid_based_on_retention_period = retention_ok  # type: ignore[method-assign]
    _count_with_one_clock_read(models.Queue)
    models._podwatch_patched = True  # type: ignore[attr-defined]


def _count_with_one_clock_read(queue: Any) -> None:
    """The approximate counts as moto defines them (Message.visible / .delayed), the clock read once
    per count instead of once per message."""

    def delayed(self: Any) -> int:
        now = time.time() * 1000.0
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self: Any) -> int:
        now = time.time() * 1000.0
        return sum(1 for m in self._messages if not now > m.visible_at)

    def visible(self: Any) -> int:
        now = time.time() * 1000.0
        return sum(1 for m in self._messages if now > m.visible_at and not now < m.delayed_until)

    queue.approximate_number_of_messages_delayed = property(delayed)
    queue.approximate_number_of_messages_not_visible = property(not_visible)
    queue.approximate_number_of_messages = property(visible)


def _import_cloudformation() -> None:
    """moto's CloudFormation imports every service's models (seconds); done while the server starts,
    the local stack's CreateStack does not wait for it."""
    from moto.cloudformation import parsing

    parsing.get_model_list()


def main() -> None:
    patch_sqs()
    threading.Thread(target=_import_cloudformation, name="moto-cfn-import", daemon=True).start()
    from moto.server import main as moto_main

    sys.argv[0] = "moto_server"
    moto_main()


if __name__ == "__main__":
    main()
