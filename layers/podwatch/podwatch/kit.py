"""The handler kit every Lambda function is built on, so that a handler is its Powertools decorators
and a few lines of delegation:

- `tools()`: the function's Logger, Tracer and Metrics; the layer's `podwatch` loggers write the same
  JSON lines;
- `Environment`: what one execution environment keeps between invocations (settings, clients,
  caches), built on the first invocation, replaceable by tests and the local stack, forgotten by
  `reset`;
- `restate_client()`: the Restate ingress client from a function's settings;
- `failed_items()`: the partial batch response of a function that decides failures itself;
  `item_failures()`: a BatchProcessor's plus the records that failed after their handler returned.

Two policies every function follows (why: docs/internals.md, "Handler kit"): importing a function
builds its tools and nothing an invocation alone needs (settings, boto3, clients and the layer's
logic come with the first build); the Tracer patches no library at import, the kit patches the ones
the function calls just before that first build.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

if TYPE_CHECKING:
    import httpx
    import pybreaker
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from podwatch.restate import RestateClient
    from podwatch.settings import RestateSettings

log = logging.getLogger(__name__)

#: the libraries most functions call: boto3's botocore (X-Ray subsegments for the AWS calls)
AWS_ONLY = ("botocore",)
#: a function that also calls HTTP endpoints with httpx (Restate, hook targets)
AWS_AND_HTTP = ("botocore", "httpx")


class Tools(NamedTuple):
    logger: Logger
    tracer: Tracer
    metrics: Metrics


def tools() -> Tools:
    """A function's Powertools tools (module level: the handler's decorators need them at import)."""
    logger = Logger()
    # auto_patch=False: patching every library X-Ray knows would import requests, sqlite3, ... at import
    tracer = Tracer(auto_patch=False)
    copy_config_to_registered_loggers(source_logger=logger, include={"podwatch"})
    return Tools(logger, tracer, Metrics())


class Environment[R]:
    """What one execution environment keeps: built by `build` on first use, thread-safe.

    `set` injects a value (tests, the local stack) or forgets it with None; `close` runs on a value
    that is replaced; `reset` also runs `forget` (the caches that live outside the value)."""

    def __init__(
        self,
        build: Callable[[], R],
        *,
        tracer: Tracer,
        patch: Sequence[str] = AWS_ONLY,
        close: Callable[[R], None] | None = None,
        forget: Callable[[], None] | None = None,
    ) -> None:
        self._build = build
        self._tracer = tracer
        self._patch = list(patch)
        self._close = close
        self._forget = forget
        self._lock = threading.Lock()
        self._value: R | None = None
        self._patched = False

    def get(self) -> R:
        with self._lock:
            if self._value is None:
                if not self._patched:  # a no-op while tracing is off (tests, the local stack)
                    self._tracer.patch(self._patch)
                    self._patched = True
                self._value = self._build()
            return self._value

    def set(self, value: R | None) -> None:
        with self._lock:
            previous, self._value = self._value, value
        if previous is not None and previous is not value and self._close is not None:
            self._close(previous)

    def reset(self) -> None:
        """Forget the value (closing it) and the caches `forget` names."""
        self.set(None)
        if self._forget is not None:
            self._forget()


def restate_client(
    settings: RestateSettings,
    parameters: SSMProvider,
    *,
    http: httpx.Client | None = None,
    breaker: pybreaker.CircuitBreaker | None = None,
    **options: Any,
) -> RestateClient:
    """The Restate ingress client of `settings` (paths, timeouts, the optional bearer token read
    through `parameters`); `options` go to RestateClient (max_tries, backoff_base, ...)."""
    from podwatch.restate import RestateClient, ssm_token_source

    name = settings.restate_token_parameter_name
    return RestateClient(
        base_url=settings.restate_ingress_url,
        connect_timeout=settings.restate_connect_timeout_seconds,
        read_timeout=settings.restate_read_timeout_seconds,
        token=ssm_token_source(parameters, name) if name else None,
        http=http,
        breaker=breaker,
        **settings.restate_paths(),
        **options,
    )


def failed_items(message_ids: Iterable[str]) -> PartialItemFailureResponse:
    """The SQS partial batch response (ReportBatchItemFailures) that returns `message_ids` to the queue."""
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in message_ids]}


def item_failures(
    processor: BatchProcessor, failed: Mapping[str, BaseException]
) -> PartialItemFailureResponse:
    """The SQS partial batch response: `processor`'s (after its context: the records whose handler
    raised) plus `failed`, the records whose handler returned but whose work failed after (a batched
    send at the end). Every record failed: BatchProcessingError, as Powertools does (Lambda retries)."""
    # SQS: an item identifier is the message id (a str)
    reported = [str(item["itemIdentifier"]) for item in processor.response()["batchItemFailures"]]
    for message_id, error in failed.items():
        if message_id not in reported:
            log.warning("record returned to SQS: %s", error, extra={"message_id": message_id})
            reported.append(message_id)
    if failed and len(reported) == len(processor.records) and processor.raise_on_entire_batch_failure:
        raise BatchProcessingError(
            msg=f"All records failed processing. {len(failed)} failed after their handler.",
            child_exceptions=[(type(e), e, e.__traceback__) for e in failed.values()],
        )
    return failed_items(reported)


def forget_remote_config() -> None:
    """Forget the process's last good remote config (`reset` of a function that reads it)."""
    from podwatch import config

    config.reset_last_good()
