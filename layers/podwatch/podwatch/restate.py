"""Client of the manager's Restate ingress (virtual object `PodwatchManager`, keyed by cluster id).

Every call is one POST to `base_url + path.format(cluster_id=...)`:

* httpx with explicit connect/read/write/pool timeouts on every request;
* `idempotency-key`: derived from the content (`ids.idempotency_key` of the notification ids; for
  enroll, of cluster + relay version), so a retried request takes effect once at Restate. Restate
  keeps a *failed* answer under its key too, so a failed answer spends the key: the next attempt
  uses an attempt-scoped one (`IdempotencyKeys`; docs/internals.md, "Restate idempotency");
* a cached failed answer (Restate marks a stored answer with `idempotency-expires`) is an old
  answer, not the manager's state now: it is skipped at once for the next key, and neither waits
  nor counts against the breaker;
* retries (the `backoff` library): network errors, 5xx and 429 are retried with exponential backoff
  and full jitter, or after `Retry-After` when the server sends one (capped); exhausted →
  `DeliveryFailed` carrying the last status and body. Any other 4xx is not retried →
  `DeliveryRejected(status_code, body)`;
* a pybreaker circuit breaker around every attempt: network errors, fresh 5xx and 429 count, 4xx do
  not (`DeliveryRejected` is excluded). While it is open, calls raise `CircuitOpen` without a request;
* `stats`: requests made, total and by status code ("error" for no response), and how often the
  breaker opened (a listener on the client's breaker, given or not), for metrics and the local
  stack's report.

The bearer token (Restate Cloud) is sent as `Authorization: Bearer ...` and is never logged.
"""

from __future__ import annotations

import email.utils
import logging
import random
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import backoff
import httpx
import pybreaker
from pydantic import ValidationError

from podwatch import ids, wire
from podwatch.errors import (
    CircuitOpen,
    ConfigError,
    DeliveryFailed,
    DeliveryRejected,
    MalformedMessage,
    TransientError,
)
from podwatch.models import EnrollRequest, Notification, NotifyPodEventsRequest, RemoteConfig
from podwatch.settings import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_ENROLL_PATH,
    DEFAULT_NOTIFY_ONE_PATH,
    DEFAULT_NOTIFY_PATH,
)

log = logging.getLogger(__name__)

NO_RESPONSE = "error"
MAX_ERROR_BODY = 8 * 1024
#: Header Restate puts on an answer it stored earlier under the request's idempotency key.
CACHED_ANSWER_HEADER = "idempotency-expires"
#: Spent keys one call walks past at most (each costs one quick request Restate answers itself).
MAX_SPENT_KEYS = 16


@dataclass
class RestateStats:
    """Requests made (every attempt counts), total and by status code; "error" = no response.
    `breaker_opened`: how often the client's breaker went to open (not part of `as_dict`)."""

    requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    breaker_opened: int = 0
    #: failed answers Restate replayed from an earlier attempt (skipped; never counted by the breaker)
    cached_failures: int = 0

    def record(self, status: int | str) -> None:
        self.requests += 1
        self.by_status[str(status)] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "by_status": dict(self.by_status)}


@dataclass
class IdempotencyKeys:
    """The idempotency keys of one logical call, in the order they are used.

    The first is the content's key (scoped by the SQS receive when it is a later one); once an
    answer under a key failed, Restate would replay that failure for 24 h, so the next attempt
    uses `<first>-a<n>`. A request without an answer (timeout, reset) keeps its key: its
    invocation may still be running, and the same key latches onto it.
    """

    first: str | None
    spent: int = 0

    @classmethod
    def for_content(cls, key: str | None, *, receive: int = 1) -> IdempotencyKeys:
        return cls(key if key is None or receive <= 1 else f"{key}-r{receive}")

    @property
    def current(self) -> str | None:
        if self.first is None or self.spent == 0:
            return self.first
        return f"{self.first}-a{self.spent}"

    def spend(self) -> None:
        self.spent += 1


class _RetryableResponse(Exception):
    """A 5xx or 429, worth another attempt (after `retry_after` seconds if the server said so).
    An internal signal: it never leaves this module."""

    def __init__(self, status_code: int, body: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _wait_gen(*, base: float, cap: float, max_retry_after: float) -> Generator[float, Any]:
    """backoff wait generator: backoff sends each exception in, so Retry-After can be honoured.

    Without Retry-After: full jitter, uniform(0, min(cap, base * 2**attempt)). With it: that many
    seconds (capped by `max_retry_after`), not jittered away.
    """
    attempt = 0
    exc = yield 0.0  # primed by backoff with send(None); the value is unused
    while True:
        retry_after = exc.retry_after if isinstance(exc, _RetryableResponse) else None
        if retry_after is not None:
            wait = min(retry_after, max_retry_after)
        else:
            wait = random.uniform(0, min(cap, base * 2**attempt))
        attempt += 1
        exc = yield wait


class _BreakerLog(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        log.warning(
            "restate circuit breaker changed state",
            extra={
                "breaker": cb.name,
                "from": getattr(old_state, "name", str(old_state)),
                "to": new_state.name,
            },
        )


class _BreakerStats(pybreaker.CircuitBreakerListener):
    """Counts the breaker's trips into a client's stats (the deliver function emits them)."""

    def __init__(self, stats: RestateStats) -> None:
        self.stats = stats

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        if getattr(new_state, "name", None) == pybreaker.STATE_OPEN:
            self.stats.breaker_opened += 1


def new_breaker(*, fail_max: int = 5, reset_timeout: float = 30.0) -> pybreaker.CircuitBreaker:
    """A breaker that counts network errors, 5xx and 429, never 4xx."""
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout,
        exclude=[DeliveryRejected],
        listeners=[_BreakerLog()],
        name="restate",
        throw_new_error_on_trip=False,
    )


TokenSource = str | Callable[[], str | None] | None

#: Cache age of a bearer token read from SSM, so a rotated token is picked up without a redeploy.
TOKEN_MAX_AGE_SECONDS = 300


def ssm_token_source(parameters: Any, name: str, *, max_age: int = TOKEN_MAX_AGE_SECONDS) -> TokenSource:
    """A token callable reading SSM SecureString `name` through a Powertools `SSMProvider` (cached
    `max_age` seconds). An unreadable parameter is a TransientError whose message names the
    parameter, never the value."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    def token() -> str | None:
        try:
            value = parameters.get(name, decrypt=True, max_age=max_age)
        except GetParameterError as exc:
            raise TransientError(
                f"restate token parameter {name} cannot be read", reason="token_unavailable"
            ) from exc
        return value if isinstance(value, str) else None

    return token


class RestateClient:
    def __init__(
        self,
        *,
        base_url: str,
        notify_path: str = DEFAULT_NOTIFY_PATH,
        enroll_path: str = DEFAULT_ENROLL_PATH,
        config_path: str = DEFAULT_CONFIG_PATH,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        token: TokenSource = None,
        http: httpx.Client | None = None,
        notify_one_path: str = DEFAULT_NOTIFY_ONE_PATH,
        max_tries: int = 4,
        max_time: float = 10.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        max_retry_after: float = 10.0,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.notify_path = notify_path
        self.notify_one_path = notify_one_path
        self.enroll_path = enroll_path
        self.config_path = config_path
        self.timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        #: the longest one call can take, retries included: backoff starts no retry after
        #: `max_time`, but the attempt under way then runs to its own timeouts
        self.worst_call_seconds = max_time + connect_timeout + read_timeout
        self._token = token
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=self.timeout)
        self.breaker = breaker if breaker is not None else new_breaker()
        self.stats = RestateStats()
        self._breaker_stats = _BreakerStats(self.stats)
        self.breaker.add_listener(self._breaker_stats)
        self._attempt_with_retries = backoff.on_exception(
            _wait_gen,
            (_RetryableResponse, httpx.TransportError),
            max_tries=max_tries,
            max_time=max_time,
            jitter=None,  # _wait_gen jitters itself, so a Retry-After is not jittered away
            on_backoff=self._log_backoff,
            logger=None,
            base=backoff_base,
            cap=backoff_cap,
            max_retry_after=max_retry_after,
        )(self._attempt)

    def __repr__(self) -> str:  # never shows the token
        return f"RestateClient(base_url={self.base_url!r})"

    def close(self) -> None:
        if self._breaker_stats in self.breaker.listeners:  # a breaker may outlive its client
            self.breaker.remove_listener(self._breaker_stats)
        if self._owns_http:
            self._http.close()

    @property
    def breaker_open(self) -> bool:
        """The breaker is open now: calls fail with CircuitOpen, unmade (until its reset timeout
        lets one trial call through)."""
        return bool(self.breaker.current_state == pybreaker.STATE_OPEN)

    # ----------------------------------------------------------------- the manager's handlers

    def notify_pod_events(
        self, cluster_id: str, notifications: Sequence[Notification], *, redrive: int = 0, receive: int = 1
    ) -> dict[str, Any]:
        """One NotifyPodEvents call for a chunk of one cluster's notifications.

        `redrive` > 0 when the chunk holds records an operator redrove from a DLQ: Restate keeps the
        answer to a key for 24 h, rejections included, so a redrive after the manager is fixed needs
        a key of its own (the manager still records each notification once, by notification_id).
        `receive`: the highest SQS receive count of the chunk's records; a later receive starts
        from a key of its own (`IdempotencyKeys`)."""
        if not notifications:
            return {"received": 0, "new": 0}
        strays = {n.cluster_id for n in notifications} - {cluster_id}
        if strays:
            raise ValueError(f"notifications of clusters {sorted(strays)} in a call for {cluster_id!r}")
        body = NotifyPodEventsRequest(events=list(notifications)).model_dump_json()
        key = ids.idempotency_key(
            (n.notification_id for n in notifications), prefix=f"pw-r{redrive}" if redrive else "pw"
        )
        return self._post(
            self.notify_path, cluster_id, body, IdempotencyKeys.for_content(key, receive=receive)
        )

    def notify_pod_event(self, notification: Notification) -> dict[str, Any]:
        keys = IdempotencyKeys.for_content(ids.idempotency_key([notification.notification_id]))
        return self._post(self.notify_one_path, notification.cluster_id, notification.model_dump_json(), keys)

    def enroll(self, request: EnrollRequest, *, redrive: int = 0, receive: int = 1) -> dict[str, Any]:
        """Idempotent per cluster and relay version; a redriven command (`redrive` > 0, see
        `notify_pod_events`) gets a key of its own, so a rejection Restate keeps is not answered again."""
        key = ids.idempotency_key(
            [ids.control_event_id("enroll", request.cluster_id, request.relay_version)],
            prefix=f"pw-enroll-r{redrive}" if redrive else "pw-enroll",
        )
        keys = IdempotencyKeys.for_content(key, receive=receive)
        return self._post(self.enroll_path, request.cluster_id, request.model_dump_json(), keys)

    def get_remote_config(self, cluster_id: str) -> RemoteConfig:
        answer = self._post(self.config_path, cluster_id, None, IdempotencyKeys(None))
        if "unreadable" in answer:
            raise ConfigError(f"remote config from the manager for {cluster_id!r}: {answer['unreadable']}")
        try:
            return RemoteConfig.model_validate(answer)
        except ValidationError as exc:
            raise ConfigError(f"remote config from the manager for {cluster_id!r} is invalid: {exc}") from exc

    # ----------------------------------------------------------------- plumbing

    def url(self, path: str, cluster_id: str) -> str:
        return self.base_url + path.format(cluster_id=quote(cluster_id, safe=""))

    def _post(self, path: str, cluster_id: str, body: str | None, keys: IdempotencyKeys) -> dict[str, Any]:
        url = self.url(path, cluster_id)
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        token = self._token() if callable(self._token) else self._token
        if token:
            headers["authorization"] = f"Bearer {token}"
        try:
            result: dict[str, Any] = self._attempt_with_retries(url, body, headers, keys)
        except pybreaker.CircuitBreakerError as exc:
            raise CircuitOpen(f"circuit to the manager is open; no call to {path} made") from exc
        except _RetryableResponse as exc:
            raise DeliveryFailed(
                f"manager answered {exc.status_code} to {path} until retries ran out",
                status_code=exc.status_code,
                body=exc.body,
            ) from exc
        except httpx.HTTPError as exc:  # transport errors, and the rest (an undecodable answer, ...)
            raise DeliveryFailed(
                f"manager unreachable at {self.base_url} ({type(exc).__name__}: {exc})"
            ) from exc
        return result

    def _attempt(
        self, url: str, body: str | None, headers: dict[str, str], keys: IdempotencyKeys
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.breaker.call(self._request, url, body, headers, keys)
        return result

    def _request(
        self, url: str, body: str | None, headers: dict[str, str], keys: IdempotencyKeys
    ) -> dict[str, Any]:
        """One attempt: a request under the current key, plus one more per cached failed answer."""
        for _ in range(MAX_SPENT_KEYS):
            response = self._send(url, body, headers, keys.current)
            if 200 <= response.status_code < 300:
                return json_object(response)
            keys.spend()
            if CACHED_ANSWER_HEADER not in response.headers:
                raise _failure(response)
            self.stats.cached_failures += 1
        raise _failure(response)

    def _send(self, url: str, body: str | None, headers: dict[str, str], key: str | None) -> httpx.Response:
        if key is not None:
            headers = {**headers, "idempotency-key": key}
        try:
            response = self._http.post(url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError:  # no usable response
            self.stats.record(NO_RESPONSE)
            raise
        self.stats.record(response.status_code)
        return response

    @staticmethod
    def _log_backoff(details: Any) -> None:
        exc = details.get("exception")
        log.warning(
            "retrying the manager",
            extra={
                "attempt": details.get("tries"),
                "wait_s": round(details.get("wait", 0.0), 3),
                "error": str(exc),
            },
        )


def _failure(response: httpx.Response) -> Exception:
    """A failed answer as the exception the retry loop and the breaker act on."""
    status, text = response.status_code, response.text[:MAX_ERROR_BODY]
    if status == 429 or status >= 500:
        return _RetryableResponse(status, text, parse_retry_after(response.headers.get("retry-after")))
    return DeliveryRejected(f"manager rejected the request with {status}", status_code=status, body=text)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer as a JSON object; an unreadable one is kept as `raw` with the reason (`unreadable`).
    Shared with the hook targets (podwatch.hooks.targets)."""
    if not response.content:
        return {}
    try:
        value = wire.loads(response.content)
    except MalformedMessage as exc:
        return {"raw": response.text[:MAX_ERROR_BODY], "unreadable": str(exc)}
    return value if isinstance(value, dict) else {"value": value}
