"""Typed errors. Every adapter translates what its library raises into one of these, with `from`.

* TransientError: worth retrying (SQS returns the record, the breaker counts it).
* PermanentError: retrying cannot help; the input is quarantined with `reason` and never retried.
"""

from __future__ import annotations


class PodwatchError(Exception):
    """Base of every error podwatch raises on purpose."""

    #: Short, stable, low-cardinality code: used as a metric dimension and a DLQ attribute.
    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TransientError(PodwatchError):
    """Temporary failure (throttling, network, 5xx): the same input may succeed later."""

    reason = "transient"


class PermanentError(PodwatchError):
    """The input itself is at fault: quarantine it with the reason, never retry it."""

    reason = "permanent"


class MalformedMessage(PermanentError):
    """The body is not JSON, or does not match the contract."""

    reason = "malformed"


class UnsupportedSchemaVersion(PermanentError):
    """The envelope's schema_version is not one this code understands."""

    reason = "unsupported_schema_version"


class UnknownKind(PermanentError):
    """The envelope's kind is not one of the known kinds."""

    reason = "unknown_kind"


class OversizeMessage(PermanentError):
    """The body is larger than the contract allows."""

    reason = "oversize"


class ConfigError(PermanentError):
    """A configuration value (remote config, settings) failed validation."""

    reason = "invalid_config"


class DeliveryRejected(PermanentError):
    """The manager answered 4xx: the request itself is wrong and will not succeed on retry."""

    reason = "rejected"

    def __init__(self, message: str, *, status_code: int, body: str = "", reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.status_code = status_code
        self.body = body


class DeliveryFailed(TransientError):
    """The manager could not be reached or answered 5xx/429; `status_code` and `body` are of its
    last answer (None and "" when there was none)."""

    reason = "delivery_failed"

    def __init__(
        self, message: str, *, status_code: int | None = None, body: str = "", reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.status_code = status_code
        self.body = body


class CircuitOpen(TransientError):
    """The circuit breaker to the manager is open: no call was made."""

    reason = "circuit_open"


#: Quarantine reasons where the message's own bytes are at fault: sent again unchanged, it fails
#: again (`podwatch dlq redrive --all` leaves these alone unless asked). A manager's rejection
#: (`rejected`) is not one: it can succeed once the manager is fixed.
PERMANENT_REASONS = frozenset(
    {MalformedMessage.reason, UnsupportedSchemaVersion.reason, UnknownKind.reason, OversizeMessage.reason}
)
