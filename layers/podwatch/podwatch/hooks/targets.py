"""The calls a hook makes: an A2A agent (kagent, wire 0.3 or 1.0) or a generic webhook.

* A2A: `POST {base}/api/a2a/{namespace}/{agent}/`, JSON-RPC. Wire 0.3: method `message/send`;
  wire 1.0: method `SendMessage` with header `A2A-Version: 1.0`. The bodies are a2a-sdk's own
  models (`a2a.compat.v0_3.types` and the 1.0 protobuf `SendMessageRequest`); the POST is ours
  because a2a-sdk's clients are async-only and fold the HTTP status into one error, and the hook
  needs the status to tell a retry (5xx/429/timeout) from a rejection (other 4xx → DLQ).
  Non-blocking unless the hook says `blocking: true` (the call then waits for the agent's task).
  The message id is the caller's (stable per hook, dedup key and window), so a retry is one message.
* Webhook: `POST url` with the JSON payload, `X-Podwatch-Signature-256: sha256=<hex>` (HMAC-SHA256
  of the body with the hook's signing secret) and `X-Podwatch-Delivery: <message id>`.
* Both: explicit timeouts, a bearer token read from SSM SecureString or Secrets Manager (cached,
  never logged), one pybreaker circuit breaker per target URL (5xx/429/network count, 4xx do not).
  One attempt per delivery: the backoff between attempts is the hooks queue's (SQS redelivery),
  so one slow agent never delays another hook of the batch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pybreaker

from podwatch.errors import CircuitOpen, DeliveryFailed, DeliveryRejected, TransientError
from podwatch.restate import MAX_ERROR_BODY, json_object

log = logging.getLogger(__name__)

#: JSON-RPC error codes worth a retry (internal error; the agent may recover)
_TRANSIENT_RPC_CODES = frozenset({-32603})
SIGNATURE_HEADER = "X-Podwatch-Signature-256"
DELIVERY_HEADER = "X-Podwatch-Delivery"


def a2a_url(base_url: str, namespace: str, agent: str) -> str:
    """kagent's A2A endpoint of an agent (khook builds the same)."""
    return f"{base_url.rstrip('/')}/api/a2a/{quote(namespace, safe='')}/{quote(agent, safe='')}/"


def a2a_body(
    protocol: str, *, text: str, message_id: str, blocking: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON-RPC body and extra headers of one A2A message, in wire `protocol` ("0.3" or "1.0")."""
    if protocol == "1.0":
        from a2a.types import a2a_pb2
        from a2a.utils.constants import PROTOCOL_VERSION_1_0, VERSION_HEADER
        from google.protobuf import json_format

        request = a2a_pb2.SendMessageRequest(
            message=a2a_pb2.Message(
                message_id=message_id, role=a2a_pb2.Role.ROLE_USER, parts=[a2a_pb2.Part(text=text)]
            ),
            configuration=a2a_pb2.SendMessageConfiguration(return_immediately=not blocking),
        )
        params = json_format.MessageToDict(request)
        body = {"jsonrpc": "2.0", "id": message_id, "method": "SendMessage", "params": params}
        return body, {VERSION_HEADER: PROTOCOL_VERSION_1_0}
    from a2a.compat.v0_3 import types as v03

    legacy = v03.SendMessageRequest(
        id=message_id,
        params=v03.MessageSendParams(
            message=v03.Message(
                message_id=message_id, role=v03.Role.user, parts=[v03.Part(root=v03.TextPart(text=text))]
            ),
            configuration=v03.MessageSendConfiguration(blocking=blocking),
        ),
    )
    return legacy.model_dump(mode="json", by_alias=True, exclude_none=True), {}


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class CallStats:
    """Requests made, by target kind and status ("error" = no response), for metrics and reports."""

    by_status: Counter[str] = field(default_factory=Counter)
    breaker_opened: int = 0


class _TripCounter(pybreaker.CircuitBreakerListener):
    def __init__(self, stats: CallStats) -> None:
        self.stats = stats

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        if getattr(new_state, "name", None) == pybreaker.STATE_OPEN:
            self.stats.breaker_opened += 1
            log.warning("hook target breaker opened", extra={"target": cb.name})


SecretReader = Callable[[str], str]


class TargetClient:
    """POSTs to agents and webhooks with timeouts, tokens, signatures and a breaker per target."""

    def __init__(
        self,
        *,
        secrets: SecretReader | None = None,
        http: httpx.Client | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        breaker_fail_max: int = 3,
        breaker_reset_seconds: float = 60.0,
    ) -> None:
        self.timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        self._secrets = secrets
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=self.timeout)
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._fail_max = breaker_fail_max
        self._reset = breaker_reset_seconds
        self.stats = CallStats()
        self._trips = _TripCounter(self.stats)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def breaker(self, url: str) -> pybreaker.CircuitBreaker:
        breaker = self._breakers.get(url)
        if breaker is None:
            breaker = self._breakers[url] = pybreaker.CircuitBreaker(
                fail_max=self._fail_max,
                reset_timeout=self._reset,
                exclude=[DeliveryRejected],
                listeners=[self._trips],
                name=url,
                throw_new_error_on_trip=False,
            )
        return breaker

    def call_a2a(
        self, url: str, *, protocol: str, text: str, message_id: str, blocking: bool, token_from: str | None
    ) -> dict[str, Any]:
        body, headers = a2a_body(protocol, text=text, message_id=message_id, blocking=blocking)
        answer = self._post(url, json.dumps(body).encode(), headers, token_from)
        error = answer.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            text_error = json.dumps(error)[:MAX_ERROR_BODY]
            if code in _TRANSIENT_RPC_CODES:
                raise DeliveryFailed(f"agent at {url} answered JSON-RPC error {code}", reason="agent_error")
            raise DeliveryRejected(
                f"agent at {url} refused the message: JSON-RPC error {code}", status_code=200, body=text_error
            )
        return answer

    def call_webhook(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        message_id: str,
        signing_secret_from: str | None,
        token_from: str | None,
    ) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {DELIVERY_HEADER: message_id}
        if signing_secret_from is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret(signing_secret_from), body)
        return self._post(url, body, headers, token_from)

    # ------------------------------------------------------------------ plumbing

    def _secret(self, ref: str) -> str:
        if self._secrets is None:
            raise TransientError(f"no secret reader configured for {ref}", reason="secret_unavailable")
        return self._secrets(ref)

    def _post(self, url: str, body: bytes, headers: dict[str, str], token_from: str | None) -> dict[str, Any]:
        headers = {"content-type": "application/json", "accept": "application/json", **headers}
        if token_from is not None:
            headers["authorization"] = f"Bearer {self._secret(token_from)}"
        try:
            result: dict[str, Any] = self.breaker(url).call(self._request, url, body, headers)
        except pybreaker.CircuitBreakerError as exc:
            raise CircuitOpen(f"circuit to {url} is open; no call made") from exc
        return result

    def _request(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        try:
            response = self._http.post(url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            self.stats.by_status["error"] += 1
            raise DeliveryFailed(
                f"{url} unreachable ({type(exc).__name__}: {exc})", reason="unreachable"
            ) from exc
        status = response.status_code
        self.stats.by_status[str(status)] += 1
        text = response.text[:MAX_ERROR_BODY]
        if 200 <= status < 300:
            return json_object(response)
        if status == 429 or status >= 500:
            raise DeliveryFailed(  # the status and answer travel to the DLQ at the last receive
                f"{url} answered {status}",
                status_code=status,
                body=text,
                reason="http_429" if status == 429 else "http_5xx",
            )
        raise DeliveryRejected(f"{url} rejected the call with {status}", status_code=status, body=text)


def secret_reader(
    ssm_provider: Any, secrets_provider: Any, *, prefix: str = "/", max_age: int = 300
) -> SecretReader:
    """Read `ssm:/name` (SecureString, decrypted) or `secretsmanager:name` through Powertools
    providers (cached `max_age` s, so a rotation is picked up); errors name the reference only.
    A name outside `prefix` (what the function's role may read) is refused: the hook is wrong."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    def read(ref: str) -> str:
        kind, _, name = ref.partition(":")
        plain = name.split(":secret:", 1)[-1]  # a Secrets Manager ARN names the secret after ":secret:"
        if not plain.startswith(prefix):
            raise DeliveryRejected(
                f"secret {ref} is outside the stack's HookSecretsPrefix {prefix}",
                status_code=0,
                reason="secret_not_allowed",
            )
        try:
            if kind == "ssm":
                value = ssm_provider.get(name, decrypt=True, max_age=max_age)
            else:
                value = secrets_provider.get(name, max_age=max_age)
        except GetParameterError as exc:
            raise TransientError(f"secret {ref} cannot be read", reason="secret_unavailable") from exc
        if isinstance(value, bytes):
            value = value.decode()
        if not isinstance(value, str) or not value:
            raise TransientError(f"secret {ref} is empty", reason="secret_unavailable")
        return value

    return read
