"""An SQS event source mapping, as Lambda runs one, for the local stack and the tests.

For one queue and one handler, `SqsPoller.poll_once()` does what the Lambda poller does:

1. ReceiveMessage (up to 10 per call, `MessageSystemAttributeNames`/`MessageAttributeNames` All)
   until the batch holds `batch_size` records or the batching window has passed;
2. builds the SQS event exactly as Lambda does (`local.lambda_runtime.sqs_record` with the real
   messageId, receiptHandle, attributes, message attributes and the queue's ARN);
3. invokes the handler with a `LambdaContext` (function name, ARN, timeout), inside the function's
   environment variables (each Lambda has its own; here they share a process, so the variables are
   swapped in around each invocation, and invocations are serialised);
4. with ReportBatchItemFailures: deletes every record not listed in `batchItemFailures`; a response
   that names an unknown id, or a handler exception, fails the whole batch (as Lambda does).
   Without it: a normal return deletes the batch, an exception fails it.

Failed records are not deleted: they reappear after the visibility timeout. Locally that timeout is
shortened per message with ChangeMessageVisibility (`retry_delay_seconds`), so retries happen in
seconds; the queue's redrive policy (moto implements it) moves a record to the DLQ once its receive
count exceeds maxReceiveCount.

`drain([pollers], until_idle=...)` runs pollers side by side (one thread each, like concurrent
Lambda pollers) until every source queue stays empty, nothing is in flight and no invocation runs.
`with running([pollers]): ...` runs them in the background while the body fills the queues (a big
replay: moto's SQS slows as a queue grows, so it is drained while it is filled).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from local.lambda_runtime import Handler, LambdaContext, sqs_record

log = logging.getLogger("local.esm")

#: One Lambda "sandbox" at a time: invocations (and the env swap around them) are serialised.
INVOKE_LOCK = threading.RLock()

_MAX_RECEIVE = 10  # SQS's per-call limit
_MAX_DELETE = 10


@dataclass
class BatchOutcome:
    """What one invocation did."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    error: str | None = None
    message_ids: list[str] = field(default_factory=list)
    failed_ids: list[str] = field(default_factory=list)
    duration_ms: float = 0.0


@dataclass
class PollerStats:
    invocations: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0
    handler_errors: int = 0
    invalid_responses: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _to_lambda_message_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """boto3's MessageAttributes → Lambda's `messageAttributes` (lowerCamel keys, base64 binaries)."""
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        binary = value.get("BinaryValue")
        out[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary,
            "stringListValues": list(value.get("StringListValues", [])),
            "binaryListValues": [
                base64.b64encode(b).decode() if isinstance(b, bytes) else b
                for b in value.get("BinaryListValues", [])
            ],
            "dataType": value.get("DataType", "String"),
        }
    return out


@contextlib.contextmanager
def function_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set `env` in os.environ for the duration, then restore exactly what was there."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def _redirect_output(stream: IO[str] | None) -> Iterator[None]:
    if stream is None:
        yield
        return
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        yield


class MappingSource:
    """Batch size and batching window of one event source mapping (Lambda GetEventSourceMapping),
    asked at most every `refresh_seconds`."""

    def __init__(self, lambda_client: Any, uuid: str, *, refresh_seconds: float = 1.0) -> None:
        self.lambda_client = lambda_client
        self.uuid = uuid
        self.refresh_seconds = refresh_seconds
        self._value: tuple[int, int] | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def current(self, *, fresh: bool = False) -> tuple[int, int]:
        """(batch size, batching window seconds); `fresh`: ask now, whatever the cache holds."""
        with self._lock:
            now = time.monotonic()
            if fresh or self._value is None or now - self._read_at >= self.refresh_seconds:
                answer = self.lambda_client.get_event_source_mapping(UUID=self.uuid)
                self._value = (
                    int(answer.get("BatchSize") or 10),
                    int(answer.get("MaximumBatchingWindowInSeconds") or 0),
                )
                self._read_at = now
            return self._value


class SqsPoller:
    """The event source mapping of one queue onto one handler."""

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler | None = None,
        load_handler: Callable[[], Handler] | None = None,
        function_name: str = "podwatch-local",
        batch_size: int = 10,
        batching_window_seconds: float = 0.0,
        report_batch_item_failures: bool = True,
        retry_delay_seconds: int = 1,
        timeout_seconds: int = 30,
        environment: Mapping[str, str] | None = None,
        output: IO[str] | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        mapping: MappingSource | None = None,
        max_batching_window_seconds: float | None = None,
    ) -> None:
        """Give `handler`, or `load_handler` to load it on the first invocation, inside the function's
        environment and output redirection (as Lambda imports the module in its sandbox).

        `mapping`: read batch size and batching window from this event source mapping (moto's
        Lambda API) instead of the fixed values, so UpdateEventSourceMapping retunes the poller;
        `max_batching_window_seconds` caps the window either way."""
        if (handler is None) == (load_handler is None):
            raise ValueError("give exactly one of handler and load_handler")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self._handler = handler
        self._loader = load_handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.batching_window_seconds = batching_window_seconds
        self.report_batch_item_failures = report_batch_item_failures
        self.retry_delay_seconds = retry_delay_seconds
        self.timeout_seconds = timeout_seconds
        self.environment = dict(environment or {})
        self.output = output
        self.region = region
        self.account_id = account_id
        self.stats = PollerStats()
        self.outcomes: list[BatchOutcome] = []
        self._busy = threading.Event()
        self.mapping = mapping
        self.max_batching_window_seconds = max_batching_window_seconds
        if max_batching_window_seconds is not None:
            self.batching_window_seconds = min(self.batching_window_seconds, max_batching_window_seconds)

    def __repr__(self) -> str:
        return f"SqsPoller({self.function_name!r} <- {self.queue_arn.rsplit(':', 1)[-1]!r})"

    @property
    def busy(self) -> bool:
        """A batch is being handled right now (invocation, deletes, releases)."""
        return self._busy.is_set()

    # ------------------------------------------------------------------ receive

    def _receive(self, max_messages: int) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(_MAX_RECEIVE, max_messages)),
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def retune(self, *, fresh: bool = False) -> None:
        """Batch size and window from the event source mapping, when there is one (cached ~1 s)."""
        if self.mapping is None:
            return
        batch_size, window = self.mapping.current(fresh=fresh)
        self.batch_size = batch_size
        cap = self.max_batching_window_seconds
        self.batching_window_seconds = float(window) if cap is None else min(float(window), cap)

    def receive_batch(self, stop: threading.Event | None = None) -> list[dict[str, Any]]:
        """Up to `batch_size` messages, waiting up to the batching window once the first arrived
        (cut short when `stop` is set)."""
        self.retune()
        batch = self._receive(self.batch_size)
        if not batch:
            return batch
        deadline = time.monotonic() + self.batching_window_seconds
        while len(batch) < self.batch_size:
            more = self._receive(self.batch_size - len(batch))
            if more:
                batch.extend(more)
                continue
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                break
            pause = min(0.1, max(0.0, deadline - time.monotonic()))
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
        return batch

    def event_for(self, messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The event Lambda would pass for these received messages."""
        records = []
        for message in messages:
            attributes = {k: str(v) for k, v in message.get("Attributes", {}).items()}
            record = sqs_record(
                message["Body"],
                queue_arn=self.queue_arn,
                message_id=message["MessageId"],
                receipt_handle=message["ReceiptHandle"],
                receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
                attributes=attributes,
                message_attributes=_to_lambda_message_attributes(message.get("MessageAttributes", {})),
            )
            if "MD5OfBody" in message:
                record["md5OfBody"] = message["MD5OfBody"]
            if "MD5OfMessageAttributes" in message:
                record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
            records.append(record)
        return {"Records": records}

    # ------------------------------------------------------------------ invoke

    def _context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.function_name,
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}",
            log_group_name=f"/aws/lambda/{self.function_name}",
            timeout_ms=self.timeout_seconds * 1000,
        )

    def _resolve_handler(self) -> Handler:
        if self._handler is None:
            if self._loader is None:
                raise RuntimeError(f"{self!r} has no handler")
            self._handler = self._loader()
        return self._handler

    def invoke(self, event: dict[str, Any]) -> Any:
        """Call the handler with `event` in the function's environment (raises what it raises)."""
        with INVOKE_LOCK, function_environment(self.environment), _redirect_output(self.output):
            handler = self._resolve_handler()
            return handler(event, self._context())

    def _failed_ids(self, response: Any, ids: list[str], outcome: BatchOutcome) -> set[str]:
        """Lambda's reading of a partial batch response; anything malformed fails the whole batch."""
        if not self.report_batch_item_failures or response is None:
            return set()
        if not isinstance(response, Mapping):
            outcome.error = f"invalid response type {type(response).__name__}: whole batch failed"
            self.stats.invalid_responses += 1
            return set(ids)
        failures = response.get("batchItemFailures")
        if failures is None:
            return set()
        if not isinstance(failures, list):
            outcome.error = "batchItemFailures is not a list: whole batch failed"
            self.stats.invalid_responses += 1
            return set(ids)
        failed: set[str] = set()
        for item in failures:
            ident = item.get("itemIdentifier") if isinstance(item, Mapping) else None
            if not isinstance(ident, str) or ident not in ids:
                outcome.error = f"batchItemFailures names {ident!r}, not in the batch: whole batch failed"
                self.stats.invalid_responses += 1
                return set(ids)
            failed.add(ident)
        return failed

    def handle(self, messages: list[dict[str, Any]]) -> BatchOutcome:
        """Invoke the handler for received `messages`, then delete or release them."""
        ids = [m["MessageId"] for m in messages]
        outcome = BatchOutcome(received=len(messages), message_ids=ids)
        started = time.monotonic()
        failed: set[str]
        try:
            response = self.invoke(self.event_for(messages))
        except Exception as exc:  # Lambda's contract: any error fails the whole batch (logged, counted)
            log.exception(
                "%s: handler raised, the whole batch of %d fails", self.function_name, len(messages)
            )
            outcome.error = f"{type(exc).__name__}: {exc}"
            self.stats.handler_errors += 1
            self.stats.last_error = outcome.error
            failed = set(ids)
        else:
            failed = self._failed_ids(response, ids, outcome)
            if outcome.error:
                log.error("%s: %s", self.function_name, outcome.error)
                self.stats.last_error = outcome.error
        outcome.duration_ms = (time.monotonic() - started) * 1000
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        self._delete(done)
        self._release(retry)
        outcome.succeeded, outcome.failed = len(done), len(retry)
        outcome.failed_ids = [m["MessageId"] for m in retry]
        self.stats.invocations += 1
        self.stats.received += len(messages)
        self.stats.deleted += len(done)
        self.stats.failed += len(retry)
        self.outcomes.append(outcome)
        return outcome

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(messages), _MAX_DELETE):
            chunk = messages[start : start + _MAX_DELETE]
            answer = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            if answer.get("Failed"):
                log.error("%s: delete failed for %s", self.function_name, answer["Failed"])

    def _release(self, messages: Sequence[Mapping[str, Any]], *, delay: int | None = None) -> None:
        """Make failed records visible again after `retry_delay_seconds` (local override of the
        queue's visibility timeout, so a retry takes seconds, not minutes)."""
        seconds = self.retry_delay_seconds if delay is None else delay
        for start in range(0, len(messages), _MAX_DELETE):
            chunk = messages[start : start + _MAX_DELETE]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": seconds,
                    }
                    for i, m in enumerate(chunk)
                ],
            )

    def poll_once(self, stop: threading.Event | None = None) -> BatchOutcome | None:
        """Receive one batch and handle it; None when the queue had nothing visible, or when `stop`
        was set while the batch was being collected (its messages are then made visible again)."""
        messages = self.receive_batch(stop)
        if not messages:
            return None
        if stop is not None and stop.is_set():
            self._release(messages, delay=0)
            return None
        # Messages in hand are also in flight on the queue (NotVisible), so `queue_depth` covers the
        # moment between receive and here; `busy` covers the invocation until the deletes are done.
        self._busy.set()
        try:
            return self.handle(messages)
        finally:
            self._busy.clear()

    # ------------------------------------------------------------------ queue state

    def queue_depth(self) -> int:
        """Visible + in flight + delayed messages on the source queue."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def drain(self, *, until_idle: float = 0.5, timeout: float = 60.0) -> DrainResult:
        return drain([self], until_idle=until_idle, timeout=timeout)


@dataclass
class DrainResult:
    invocations: int
    records: int
    failed_records: int
    handler_errors: int
    seconds: float


class DrainTimeout(TimeoutError):
    """The queues did not become idle before the deadline."""


def _start(
    pollers: Sequence[SqsPoller], stop: threading.Event, crashed: list[BaseException], poll_interval: float
) -> list[threading.Thread]:
    """One thread per poller, polling until `stop`; a poller that raises sets `stop` and is noted."""

    def loop(poller: SqsPoller) -> None:
        try:
            while not stop.is_set():
                if poller.poll_once(stop) is None:
                    stop.wait(poll_interval)
        except BaseException as exc:
            crashed.append(exc)
            stop.set()
            raise

    threads = [
        threading.Thread(target=loop, args=(p,), name=f"esm-{p.function_name}", daemon=True) for p in pollers
    ]
    for thread in threads:
        thread.start()
    return threads


def _stop(pollers: Sequence[SqsPoller], stop: threading.Event, threads: list[threading.Thread]) -> None:
    stop.set()
    for thread in threads:
        thread.join(timeout=max(30.0, max((p.timeout_seconds for p in pollers), default=0)))


@contextlib.contextmanager
def running(pollers: Sequence[SqsPoller], *, poll_interval: float = 0.05) -> Iterator[None]:
    """Run `pollers` in the background while the body runs; stopped when it ends (a batch under way
    is finished first). A poller that crashed meanwhile is raised then."""
    stop = threading.Event()
    crashed: list[BaseException] = []
    threads = _start(pollers, stop, crashed, poll_interval)
    try:
        yield
    finally:
        _stop(pollers, stop, threads)
    if crashed:
        raise RuntimeError(f"a poller crashed: {crashed[0]!r}") from crashed[0]


def drain(
    pollers: Sequence[SqsPoller],
    *,
    until_idle: float = 0.5,
    timeout: float = 60.0,
    poll_interval: float = 0.05,
) -> DrainResult:
    """Run `pollers` side by side until every source queue has stayed empty (nothing visible, in
    flight or delayed) and no poller was busy for `until_idle` seconds. Raises DrainTimeout
    (naming the queues still holding messages) if that does not happen within `timeout` seconds."""
    started = time.monotonic()
    before = [
        (p.stats.invocations, p.stats.received, p.stats.failed, p.stats.handler_errors) for p in pollers
    ]
    stop = threading.Event()
    crashed: list[BaseException] = []
    threads = _start(pollers, stop, crashed, poll_interval)
    try:
        idle_since: float | None = None
        while True:
            if crashed:
                raise RuntimeError(f"a poller crashed: {crashed[0]!r}") from crashed[0]
            now = time.monotonic()
            quiet = not any(p.busy for p in pollers) and all(p.queue_depth() == 0 for p in pollers)
            if quiet and not any(p.busy for p in pollers):  # busy again while we looked: not quiet
                idle_since = idle_since if idle_since is not None else now
                if now - idle_since >= until_idle:
                    break
            else:
                idle_since = None
            if now - started > timeout:
                left = {repr(p): p.queue_depth() for p in pollers}
                raise DrainTimeout(f"queues not idle after {timeout:.0f}s: {left}")
            time.sleep(poll_interval)
    finally:
        _stop(pollers, stop, threads)
    after = [(p.stats.invocations, p.stats.received, p.stats.failed, p.stats.handler_errors) for p in pollers]
    return DrainResult(
        invocations=sum(a[0] - b[0] for a, b in zip(after, before, strict=True)),
        records=sum(a[1] - b[1] for a, b in zip(after, before, strict=True)),
        failed_records=sum(a[2] - b[2] for a, b in zip(after, before, strict=True)),
        handler_errors=sum(a[3] - b[3] for a, b in zip(after, before, strict=True)),
        seconds=time.monotonic() - started,
    )
