"""SQS sink: SendMessageBatch with SQS's limits, retrying only what failed, never dropping silently.

`SqsSink.send(bodies)` packs bodies into batches of at most `max_batch` entries and
`max_batch_bytes` bytes, and sends each batch until every entry is accepted or settled:

* an entry SQS accepted (`Successful`) is done;
* a body over the message limit is first fitted (`fit.fit`: trimmed, else an `oversize` stub);
* an entry that failed with `SenderFault: true` is the message's own fault (invalid characters,
  ...): retrying cannot help, so it is dropped *and counted with the SQS code*;
* an entry that failed with `SenderFault: false`, and every entry of a call that failed as a whole
  on throttling, a 5xx or the network, is retried alone, with jittered exponential backoff, at
  most `max_attempts` times; then `SinkUnavailable` is raised carrying every unsent body;
* a call refused as a whole for a reason retrying cannot fix (no such queue, access denied) raises
  `SinkRejected`, also carrying every unsent body.

`send` is synchronous and holds nothing between calls, so a bounded buffer and a disk spool can be
wrapped around it later (they catch the two errors and keep `pending`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from podwatch.models import MAX_MESSAGE_BYTES
from podwatch_relay.errors import SinkRejected, SinkUnavailable
from podwatch_relay.fit import fit, size_of
from podwatch_relay.settings import DEFAULT_MAX_BATCH_BYTES

log = logging.getLogger("podwatch_relay.sink")

#: SQS allows at most 10 entries per SendMessageBatch.
SQS_MAX_BATCH = 10
#: Error codes of a whole call that a later attempt may not get (throttling, server side trouble).
TRANSIENT_CODES = frozenset(
    {
        "RequestThrottled",
        "ThrottlingException",
        "Throttling",
        "AWS.SimpleQueueService.ThrottledException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "KmsThrottled",
        "KMS.ThrottlingException",
    }
)


class SqsClient(Protocol):
    """The one boto3 SQS call the sink makes (a real client, or a fake in tests)."""

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> Any: ...


class Sink(Protocol):
    """Anything the relay can hand message bodies to."""

    def send(self, bodies: Sequence[str]) -> SendResult: ...


class Progress(Protocol):
    """A sink that tells when what it was handed has left memory (the outbox; the standby gate):
    `covered(mark())` becomes True once everything handed over before `mark()` was sent, spooled
    or settled otherwise; None when it never will (the mark is void: take a new one)."""

    def mark(self) -> Any: ...

    def covered(self, mark: Any) -> bool | None: ...


@dataclass(slots=True)
class SendResult:
    """What one `send` did. Every body given ends in `sent` or in `dropped` (with a reason)."""

    sent: int = 0
    dropped: int = 0
    dropped_reasons: dict[str, int] = field(default_factory=dict)
    #: SendMessageBatch calls made, and entries sent again after a failure
    calls: int = 0
    retried_entries: int = 0
    #: bodies a buffering sink accepted to send later (`Outbox`): neither sent nor dropped yet
    queued: int = 0

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped += count
        self.dropped_reasons[reason] = self.dropped_reasons.get(reason, 0) + count

    def merge(self, other: SendResult) -> None:
        self.sent += other.sent
        self.queued += other.queued
        self.calls += other.calls
        self.retried_entries += other.retried_entries
        for reason, count in other.dropped_reasons.items():
            self.drop(reason, count)


def pack_batches(
    bodies: Sequence[str], *, max_batch: int = SQS_MAX_BATCH, max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
) -> list[list[str]]:
    """Bodies in order, grouped into batches within both limits. A body over the limit alone
    gets a batch of its own (the caller drops it before sending)."""
    batches: list[list[str]] = []
    current: list[str] = []
    current_bytes = 0
    for body in bodies:
        size = size_of(body)
        if current and (len(current) >= max_batch or current_bytes + size > max_batch_bytes):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(body)
        current_bytes += size
    if current:
        batches.append(current)
    return batches


@dataclass(slots=True)
class SinkStats:
    """Cumulative, for /metrics: SendMessageBatch calls, and those that did not get every entry
    accepted (the whole call failed, or some entries did)."""

    calls: int = 0
    failed_calls: int = 0


class SqsSink:
    """Sends message bodies to one SQS queue. Thread-compatible, not thread-safe: one caller."""

    def __init__(
        self,
        *,
        client: SqsClient,
        queue_url: str,
        max_batch: int = SQS_MAX_BATCH,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_attempts: int = 5,
        backoff_seconds: float = 0.2,
        backoff_max_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not 1 <= max_batch <= SQS_MAX_BATCH:
            raise ValueError(f"max_batch must be 1..{SQS_MAX_BATCH}, got {max_batch}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._client = client
        self.queue_url = queue_url
        self._max_batch = max_batch
        self._max_batch_bytes = min(max_batch_bytes, MAX_MESSAGE_BYTES)
        self._max_message_bytes = min(max_message_bytes, self._max_batch_bytes)
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._backoff_max = backoff_max_seconds
        self._sleep = sleep
        self._jitter = jitter
        self.stats = SinkStats()

    def send(self, bodies: Sequence[str]) -> SendResult:
        """Send every body; see the module docstring for what happens to failures."""
        result = SendResult()
        limit = self._max_message_bytes
        sendable = [fit(body, limit).body for body in bodies]  # trimmed or a stub: never dropped
        batches = pack_batches(sendable, max_batch=self._max_batch, max_batch_bytes=self._max_batch_bytes)
        for index, batch in enumerate(batches):
            try:
                self._send_batch(batch, result)
            except (SinkUnavailable, SinkRejected) as exc:
                # Hand back this batch's unsent bodies and every later batch, in order.
                exc.pending.extend(body for later in batches[index + 1 :] for body in later)
                exc.result = result
                raise
        return result

    def _delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff: uniform in [0.5, 1] x min(cap, base x 2^attempt)."""
        return min(self._backoff_max, self._backoff * 2.0**attempt) * (0.5 + self._jitter() / 2)

    def _send_batch(self, batch: list[str], result: SendResult) -> None:
        pending: dict[str, str] = {str(i): body for i, body in enumerate(batch)}
        last_problem = ""
        for attempt in range(self._max_attempts):
            if attempt:
                result.retried_entries += len(pending)
                self._sleep(self._delay(attempt - 1))
            entries = [{"Id": entry_id, "MessageBody": body} for entry_id, body in pending.items()]
            result.calls += 1
            self.stats.calls += 1
            try:
                response = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except ClientError as exc:
                self.stats.failed_calls += 1
                code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
                if code in TRANSIENT_CODES or status >= 500 or status == 429:
                    last_problem = f"{code} (HTTP {status})"
                    log.warning(
                        "SendMessageBatch failed transiently, will retry",
                        extra={"code": code, "attempt": attempt + 1, "entries": len(pending)},
                    )
                    continue
                raise SinkRejected(
                    f"SQS refused SendMessageBatch to {self.queue_url}: {code}: {exc}",
                    pending=list(pending.values()),
                    reason=code,
                ) from exc
            except ParamValidationError as exc:  # our request is wrong: a bug, not the network
                raise SinkRejected(
                    f"SendMessageBatch request is invalid: {exc}",
                    pending=list(pending.values()),
                    reason="invalid",
                ) from exc
            except BotoCoreError as exc:  # connection refused or reset, timeouts, ...
                self.stats.failed_calls += 1
                last_problem = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "SendMessageBatch could not reach SQS, will retry",
                    extra={"error": last_problem, "attempt": attempt + 1, "entries": len(pending)},
                )
                continue
            for ok in response.get("Successful", []):
                if pending.pop(str(ok.get("Id")), None) is not None:
                    result.sent += 1
            for failed in response.get("Failed", []):
                entry_id = str(failed.get("Id"))
                code = str(failed.get("Code", "Unknown"))
                if failed.get("SenderFault") and entry_id in pending:
                    body = pending.pop(entry_id)
                    result.drop(code)
                    log.error(
                        "message dropped: SQS says it is at fault",
                        extra={"reason": code, "detail": failed.get("Message"), "body_prefix": body[:200]},
                    )
                else:
                    last_problem = f"{code}: {failed.get('Message', '')}"
            if not pending:
                return
            self.stats.failed_calls += 1
            log.warning(
                "SendMessageBatch partly failed, retrying the failed entries only",
                extra={"failed": len(pending), "attempt": attempt + 1, "problem": last_problem},
            )
        raise SinkUnavailable(
            f"SQS did not accept {len(pending)} message(s) after {self._max_attempts} attempts: "
            f"{last_problem}",
            pending=list(pending.values()),
        )


class FileSink:
    """Writes each body as one line to a file: replay without a queue (`--output`), and tests."""

    def __init__(self, *, path: str) -> None:
        self.path = path

    def send(self, bodies: Sequence[str]) -> SendResult:
        with open(self.path, "a", encoding="utf-8") as out:
            for body in bodies:
                out.write(fit(body).body + "\n")  # the limit SQS would apply, so a file replays alike
        return SendResult(sent=len(bodies), calls=1 if bodies else 0)


def make_sqs_client(*, connect_timeout: float, read_timeout: float, region: str | None = None) -> Any:
    """A boto3 SQS client with explicit timeouts and botocore's own retries off (the sink retries,
    entry by entry). boto3 reads AWS_ENDPOINT_URL itself, which is how the local stack's moto
    server is reached."""
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    return boto3.client("sqs", region_name=region, config=config)
