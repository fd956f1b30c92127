"""Reading and writing the pod-events envelope, with a clear, typed error for every bad input.

`loads` is the one JSON reader for input podwatch did not write itself (queue bodies, watch lines in
the local report, the manager's answers): whatever the input does wrong — invalid UTF-8, a lone
surrogate escape, nesting past the recursion limit, NaN/Infinity, a number out of range — is a
`MalformedMessage` naming it, never an exception a batch or a run dies of.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import ValidationError

from podwatch.errors import MalformedMessage, OversizeMessage, UnknownKind, UnsupportedSchemaVersion
from podwatch.models import (
    ENVELOPE_KINDS,
    MAX_MESSAGE_BYTES,
    OVERSIZE_KIND,
    SUPPORTED_SCHEMA_VERSIONS,
    AnyEnvelope,
    EnvelopeAdapter,
)

__all__ = ["AnyEnvelope", "encode_envelope", "loads", "may_hold_surrogates", "parse_envelope"]


#: Deepest nesting `loads` accepts: envelopes and answers nest < 20 levels; deeper input would make
#: later recursive steps (validation, hashing, logging) fail far from here.
MAX_DEPTH = 100


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests deeper than `limit` (iterative: a deep value must not exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def loads(body: str | bytes) -> Any:
    """Strict JSON (RFC 8259): MalformedMessage with the reason for anything else."""
    if isinstance(body, bytes):
        try:
            body = body.decode()
        except UnicodeDecodeError as exc:
            raise MalformedMessage(f"body is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        raw = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise MalformedMessage(f"body is nested too deeply (more than {MAX_DEPTH} levels)") from exc
    except ValueError as exc:  # JSONDecodeError, the checks above, ints past 4300 digits
        raise MalformedMessage(f"body is not JSON: {exc}") from exc
    if isinstance(raw, (dict, list)) and _too_deep(raw):
        raise MalformedMessage(f"body is nested too deeply (more than {MAX_DEPTH} levels)")
    if may_hold_surrogates(body):
        try:
            json.dumps(raw, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise MalformedMessage(
                f"body is not valid Unicode: a lone UTF-16 surrogate escape in a string ({exc.reason})"
            ) from exc
    return raw


def encode_envelope(envelope: AnyEnvelope) -> str:
    """The SQS message body for an envelope (compact JSON, aliases, no None noise)."""
    return envelope.model_dump_json(by_alias=True, exclude_none=True)


def may_hold_surrogates(body: str | bytes) -> bool:
    """Whether `body` has a `\\uD...` escape: JSON lets one stand alone (not valid Unicode; it
    could be neither hashed nor sent on), so such a body is checked by `parse_envelope`."""
    if isinstance(body, bytes):
        return b"\\ud" in body or b"\\uD" in body
    return "\\ud" in body or "\\uD" in body


def parse_envelope(body: str | bytes) -> AnyEnvelope:
    """Parse an SQS body into an envelope, or raise a PermanentError saying exactly what is wrong.

    Checks run from the cheapest to the most specific, so the error names the first real problem:
    size, JSON, object shape, schema version, kind, then the payload's fields.
    """
    size = len(body.encode() if isinstance(body, str) else body)
    if size > MAX_MESSAGE_BYTES:
        raise OversizeMessage(f"message is {size} bytes, the limit is {MAX_MESSAGE_BYTES}")
    raw = loads(body)
    if not isinstance(raw, dict):
        raise MalformedMessage(f"body is a JSON {type(raw).__name__}, expected an object")
    version = raw.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise UnsupportedSchemaVersion(
            f"schema_version {version!r} is not supported (supported: {sorted(SUPPORTED_SCHEMA_VERSIONS)})"
        )
    kind = raw.get("kind")
    if kind == OVERSIZE_KIND:
        raise OversizeMessage(_oversize_detail(raw.get("payload")))
    if kind not in ENVELOPE_KINDS:
        raise UnknownKind(f"kind {kind!r} is unknown (known: {sorted(ENVELOPE_KINDS)})")
    try:
        return EnvelopeAdapter.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise MalformedMessage(f"{kind} envelope does not match the contract: {problems}") from exc


def _oversize_detail(payload: Any) -> str:
    """What an `OversizeEnvelope` says, as an error message (the quarantine's `error`)."""
    stub = payload if isinstance(payload, dict) else {}
    subject = f"{stub.get('namespace') or '?'}/{stub.get('name') or '?'}"
    return (
        f"the relay could not fit the {stub.get('kind') or '?'} envelope of {subject} "
        f"(uid {stub.get('uid') or '?'}, resourceVersion {stub.get('resource_version') or '?'}) in "
        f"{stub.get('limit') or '?'} bytes: it was {stub.get('bytes') or '?'} bytes even trimmed"
    )
