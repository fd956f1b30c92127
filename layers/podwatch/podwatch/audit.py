"""The audit trail: one record per processor decision on the stdlib logger `podwatch.audit`.

    logger.info(action, extra={"audit": {
        "action":          forwarded | filtered | deduplicated | quarantined | control,
        "reason":          why (see below),
        "event_id":        the envelope's event_id (None when the body could not be read),
        "kind":            pod | k8s_event | enroll | heartbeat (None when unreadable),
        "namespace", "pod": what it is about (None for control messages),
        "event_type":      crash-loop, oom-kill, ... (None when no trouble was found),
        "notification_id": ids.notification_id(event_id, event_type, container), for findings,
        "dedup_key":       the dedup key, when dedup was consulted,
        "payload_sha256":  sha256 of the payload's canonical JSON (see `payload_sha256`),
        "config_version":  RemoteConfig.version that decided it,
    }})

Reasons: forwarded → `opened` (a new dedup window) | `same_event` (a retry of the event that opened
it) | `no_cooldown`; filtered → `healthy` | `deleted` | `ignored_namespace` | `disabled:<type>`;
deduplicated → `cooldown`; quarantined → the PermanentError's reason (`malformed`,
`unsupported_schema_version`, `unknown_kind`, `oversize`); control → `enroll` | `heartbeat`.

In Lambda the handler installs `AuditJsonFormatter` on this logger (`install`): each record is one
JSON line with the keys Powertools' formatter writes (level, location, message, timestamp, service,
the Lambda context keys, xray_trace_id) plus `audit`. The local stack attaches its own handler to
read the records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import typing
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from podwatch import wire
from podwatch.errors import MalformedMessage

if TYPE_CHECKING:
    from pydantic import BaseModel

AUDIT_LOGGER = "podwatch.audit"
audit_log = logging.getLogger(AUDIT_LOGGER)
# Decisions are the point of this logger: they must not depend on the root logger's level.
audit_log.setLevel(logging.INFO)

Action = Literal["forwarded", "filtered", "deduplicated", "quarantined", "control"]
AUDIT_KEYS = (
    "action",
    "reason",
    "event_id",
    "kind",
    "namespace",
    "pod",
    "event_type",
    "notification_id",
    "dedup_key",
    "payload_sha256",
    "config_version",
)

#: compact JSON, UTF-8 as is, anything odd as its str(): what the audit line is written with
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
#: one JSON string (ensure_ascii=False), C-accelerated
_encode_str: typing.Callable[[str], str] = json.encoder.encode_basestring


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: the same content always has the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_mapping_fields: dict[type[BaseModel], tuple[str, ...]] = {}


def _may_hold_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is dict or origin is dict:
        return True
    return any(_may_hold_mapping(arg) for arg in typing.get_args(annotation))


def _fields_with_mappings(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `cls` that can hold a mapping (pod labels), computed once per model."""
    names = _mapping_fields.get(cls)
    if names is None:
        names = tuple(n for n, f in cls.model_fields.items() if _may_hold_mapping(f.annotation))
        _mapping_fields[cls] = names
    return names


def payload_sha256(payload: BaseModel | None, raw_body: str | bytes | None = None) -> str:
    """sha256 of the canonical JSON of the envelope's payload; for a body that never became an
    envelope: of its canonical JSON if it is JSON, else of its raw bytes.

    The canonical JSON of a payload is the model's own compact JSON (wire names, None fields left
    out, as the relay writes them; fields in the model's order, which the shared model fixes) with
    the keys of its mappings (pod labels) sorted: the same content always has the same text, however
    the message was formatted or its labels ordered. Serialised by pydantic-core in one pass, which
    is what keeps this cheap on the per-event path (a sort-keys `json.dumps` of a dumped dict costs
    several times more); only the fields that can hold a mapping are looked at, and the payload is
    copied only when one of them is out of order (rare: the API server writes maps sorted).
    """
    if payload is not None:
        unsorted: dict[str, Any] = {}
        for name in _fields_with_mappings(type(payload)):
            value = getattr(payload, name)
            if isinstance(value, dict) and len(value) > 1:
                keys = list(value)
                if keys != sorted(keys):
                    unsorted[name] = dict(sorted(value.items()))
        if unsorted:
            payload = payload.model_copy(update=unsorted)
        # `payload.model_dump_json(by_alias=True, exclude_none=True)`, as the UTF-8 bytes the
        # serializer makes (model_dump_json decodes them to a str, which would be encoded back)
        model = type(payload)
        if not model.__pydantic_complete__:  # a `defer_build` model not built yet
            model.model_rebuild()
        text = model.__pydantic_serializer__.to_json(payload, by_alias=True, exclude_none=True)
        return hashlib.sha256(text).hexdigest()
    data = raw_body.encode() if isinstance(raw_body, str) else (raw_body or b"")
    with contextlib.suppress(MalformedMessage):  # not JSON podwatch reads: the raw bytes are canonical
        data = canonical_json(wire.loads(data)).encode()
    return hashlib.sha256(data).hexdigest()


class AuditRecord(NamedTuple):
    """One decision's audit keys (a NamedTuple: one is made per event, and a frozen dataclass costs
    several times more to make)."""

    action: Action
    reason: str
    event_id: str | None
    kind: str | None
    namespace: str | None
    pod: str | None
    event_type: str | None
    notification_id: str | None
    dedup_key: str | None
    payload_sha256: str
    config_version: str

    def as_dict(self) -> dict[str, Any]:
        # written out (not a loop over AUDIT_KEYS): this runs once per decision
        return {
            "action": self.action,
            "reason": self.reason,
            "event_id": self.event_id,
            "kind": self.kind,
            "namespace": self.namespace,
            "pod": self.pod,
            "event_type": self.event_type,
            "notification_id": self.notification_id,
            "dedup_key": self.dedup_key,
            "payload_sha256": self.payload_sha256,
            "config_version": self.config_version,
        }


# --------------------------------------------------------------------------- the log record

#: LogRecord attributes that `emit` always sets the same way (where `logger.info` would look them
#: up: the caller's frame, its file name, the level's name); the location is `emit` itself, as it
#: was when `emit` called `audit_log.info`.
_START_NS: int = int(getattr(logging, "_startTime", time.time_ns()))
if _START_NS < 10**12:  # Python < 3.13 keeps logging's start time in float seconds
    _START_NS = int(getattr(logging, "_startTime", 0.0) * 1e9)
_process: list[Any] = [None, None]  # [pid, processName] of the last record


class AuditLogRecord(logging.LogRecord):
    """The LogRecord of one decision: the attributes `LogRecord.__init__` sets, with `audit`
    (the record's keys, as `extra={"audit": ...}` would set it), made without the caller lookup and
    path parsing of `Logger.info` (the caller is always `emit`)."""

    audit: dict[str, Any]

    def __init__(self, action: str, audit: dict[str, Any], ct: int | None = None) -> None:
        # no super().__init__: see the class docstring; `ct`: the creation time in ns (now)
        if ct is None:
            ct = time.time_ns()
        values = self.__dict__
        values.update(_RECORD_CONSTANTS)  # name, msg, levelname, pathname, lineno, funcName, ...
        # "%s" + args renders the same message, but tells Powertools' formatter (if the record gets
        # there) that the message is plain text: it would otherwise try to JSON-decode it.
        values["args"] = (action,)
        values["audit"] = audit
        created, msecs = _created_msecs(ct)
        values["created"] = created
        values["msecs"] = msecs
        values["relativeCreated"] = (ct - _START_NS) / 1e6
        if logging.logThreads:
            values["thread"] = threading.get_ident()
            values["threadName"] = threading.current_thread().name
        else:  # pragma: no cover
            values["thread"] = values["threadName"] = None
        pid = os.getpid()
        if _process[0] != pid:
            _process[:] = [pid, _process_name()]
        values["process"] = pid if logging.logProcesses else None
        values["processName"] = _process[1] if logging.logMultiprocessing else None


def _created_msecs(ct: int) -> tuple[float, float]:
    """`LogRecord.created` and `.msecs` of a record made at `ct` (ns), as `LogRecord.__init__` works
    them out."""
    created = ct / 1e9
    msecs = (ct % 1_000_000_000) // 1_000_000 + 0.0
    if msecs == 999.0 and int(created) != ct // 1_000_000_000:
        msecs = 0.0
    return created, msecs


_FILENAME = os.path.basename(__file__)
_MODULE = os.path.splitext(_FILENAME)[0]


def _process_name() -> str | None:
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        with contextlib.suppress(Exception):
            return str(mp.current_process().name)
    return "MainProcess"


# --------------------------------------------------------------------------- the JSON line

#: LogRecord attributes that are the same in every `AuditLogRecord` (a format key using only these
#: renders once per key set, not once per record)
_CONSTANT_ATTRS = frozenset(
    {
        "name",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "lineno",
        "funcName",
        "process",
        "processName",
    }
)
_TEMPLATE_ATTR = re.compile(r"%\((\w+)\)")


_KEY_JSON = {key: f"{_encode_str(key)}:" for key in AUDIT_KEYS}


def _audit_json(audit: dict[str, Any]) -> str:
    """`_encode(audit)`, faster for what `AuditRecord.as_dict` makes (the audit keys, in order)."""
    if type(audit) is dict and tuple(audit) == AUDIT_KEYS:
        return _record_json(audit.values())
    return _encode(audit)


def _record_json(values: Iterable[Any]) -> str:
    """The audit object of a record's values in AUDIT_KEYS order (an AuditRecord, or the values of
    its `as_dict`): a JSON string per value into a template of the keys, instead of a general
    encoder per object."""
    return _RECORD_TEMPLATE % tuple(
        [
            _encode_str(value) if type(value) is str else "null" if value is None else _encode(value)
            for value in values
        ]
    )


#: the audit object with a `%s` slot per value, in AuditRecord's field order (= AUDIT_KEYS)
_RECORD_TEMPLATE = "{" + ",".join(f"{_KEY_JSON[key].replace('%', '%%')}%s" for key in AUDIT_KEYS) + "}"
#: the message of each action (the action), as a JSON string
_MESSAGE_JSON = {action: _encode_str(action) for action in typing.get_args(Action)}


class AuditJsonFormatter(logging.Formatter):
    """Powertools' JSON line for an audit record, at a fraction of its cost.

    Powertools' formatter is general (any extra, exceptions, stack traces, JSON-decoding messages)
    and costs several times what a decision costs to make; an audit record is always the same
    shape. This one reads the live keys of the Powertools formatter it is given (service, cold
    start, function name and request id, appended keys) and renders the same top-level keys.

    For an `AuditLogRecord` (what `emit` makes) the line is a template built once per set of keys
    (they change per invocation, not per record): only the message, the timestamp (formatted once
    per millisecond) and the `audit` object are rendered per record. Any other record on the logger
    takes the general path, with the same result.
    """

    def __init__(self, source: Any) -> None:
        super().__init__()
        self._source = source  # a LambdaPowertoolsFormatter
        #: the keys (a copy) and trace header the template was built for; the template
        self._keys: dict[str, Any] | None = None
        self._trace: str | None = None
        self._template: str | None = None
        #: the second of the last timestamp, and its JSON text before and after the milliseconds
        self._second = -1
        self._second_parts: tuple[str, str] | None = None
        #: the last timestamp of another time format: its milliseconds and JSON string
        self._stamp_ms = -1.0
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        if type(record) is not AuditLogRecord:
            return self._format_any(record)
        keys = self._source.get_current_keys()
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if keys != self._keys or trace != self._trace:
            self._template = self._build(keys, trace, record)
            self._keys, self._trace = dict(keys), trace
        if self._template is None:  # a key renders differently per record: the general path
            return self._format_any(record)
        return self._template % {
            "m": _encode_str(record.getMessage()),
            "t": self._timestamp(record),
            "a": _audit_json(record.audit),
        }

    def format_decision(self, record: AuditRecord) -> str | None:
        """The line of the decision `record` made now: what `format` writes for the
        `AuditLogRecord` `emit` would make of it, without making one (the template, the
        timestamp's second and the message of each action are worked out once). None when the
        template or the time format needs a LogRecord: the caller takes the general path."""
        ct = time.time_ns()
        keys = self._source.get_current_keys()
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if keys != self._keys or trace != self._trace:
            self._template = self._build(keys, trace, AuditLogRecord(record.action, {}, ct))
            self._keys, self._trace = dict(keys), trace
        template = self._template
        if template is None:
            return None
        created, msecs = _created_msecs(ct)
        if int(created) != self._second:
            self._new_second(created)
        parts = self._second_parts
        if parts is None:
            return None
        action = record.action
        message = _MESSAGE_JSON.get(action) or _encode_str(action)
        return template % {
            "m": message,
            "t": f"{parts[0]}{int(msecs):03d}{parts[1]}",
            "a": _record_json(record),
        }

    def _new_second(self, created: float) -> None:
        """Work out the timestamp text of the second of `created` (see `_timestamp`)."""
        self._second = int(created)
        source = self._source
        fmt = source.default_time_format
        if not source.use_rfc3339_iso8601 and not source.datefmt and fmt.count("%F") == 1 and "%%" not in fmt:
            converted = source.converter(created)
            head, tail = fmt.split("%F")
            self._second_parts = (
                _encode_str(time.strftime(head, converted))[:-1],
                _encode_str(time.strftime(tail, converted))[1:],
            )
        else:
            self._second_parts = None
        self._stamp_ms = -1.0

    def _timestamp(self, record: logging.LogRecord) -> str:
        """`formatTime(record)` as a JSON string. Powertools' default format puts the milliseconds
        (`%F`) into a strftime format, so the text of one second is worked out once, and each
        record only adds its milliseconds; other time formats are formatted once per millisecond."""
        if int(record.created) != self._second:
            self._new_second(record.created)
        if self._second_parts is not None:
            head, tail = self._second_parts
            return f"{head}{int(record.msecs):03d}{tail}"
        if record.msecs != self._stamp_ms:
            self._stamp_ms = record.msecs
            self._stamp = _encode_str(self._source.formatTime(record))
        return self._stamp

    def _line(self, record: logging.LogRecord) -> dict[str, Any]:
        """The line as a dict (the general path; `_build` follows it key by key)."""
        values = record.__dict__
        line: dict[str, Any] = {}
        for key, value in self._source.get_current_keys().items():
            if key == "message":
                line[key] = record.getMessage()
            elif key == "timestamp":
                line[key] = self._source.formatTime(record)
            elif isinstance(value, str) and "%(" in value:
                line[key] = value % values
            elif value is not None:
                line[key] = value
        line["audit"] = getattr(record, "audit", None)
        trace_id = os.environ.get("_X_AMZN_TRACE_ID")
        if trace_id:
            line["xray_trace_id"] = trace_id.split(";")[0].replace("Root=", "")
        return line

    def _format_any(self, record: logging.LogRecord) -> str:
        return _encode(self._line(record))

    def _build(self, keys: dict[str, Any], trace: str | None, record: logging.LogRecord) -> str | None:
        """The %-template of the line for these keys: constants rendered, slots for the message
        (`m`), the timestamp (`t`) and the audit object (`a`); None if a key cannot be constant."""
        values = record.__dict__
        slots = {"message": "%(m)s", "timestamp": "%(t)s", "audit": "%(a)s"}
        line: dict[str, str] = {}
        for key, value in keys.items():
            if key in ("message", "timestamp"):
                line[key] = slots[key]
            elif isinstance(value, str) and "%(" in value:
                if not set(_TEMPLATE_ATTR.findall(value)) <= _CONSTANT_ATTRS:
                    return None
                line[key] = _encode(value % values).replace("%", "%%")
            elif value is not None:
                line[key] = _encode(value).replace("%", "%%")
        line["audit"] = slots["audit"]
        if trace:
            line["xray_trace_id"] = _encode(trace.split(";")[0].replace("Root=", "")).replace("%", "%%")
        body = ",".join(f"{_encode_str(k).replace('%', '%%')}:{v}" for k, v in line.items())
        return "{" + body + "}"


class AuditStreamHandler(logging.StreamHandler[Any]):
    """A StreamHandler that writes a record in one step: format, then write and flush under the
    handler's lock (what `Handler.handle` + `StreamHandler.emit` + `flush` do in three calls, each
    taking the lock). Filters added to it still apply (the general path)."""

    def handle(self, record: logging.LogRecord) -> bool:
        lock = self.lock
        if self.filters or lock is None:
            return super().handle(record)
        try:
            line = self.format(record) + self.terminator
            with lock:
                self.stream.write(line)
                self.stream.flush()
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: logging never raises to its caller
            self.handleError(record)
        return True

    def write_decision(self, record: AuditRecord) -> bool:
        """Write the line of the decision `record` (`AuditJsonFormatter.format_decision`) as
        `handle` would write its `AuditLogRecord`; False, writing nothing, when that needs the
        record (filters, another formatter, a template that is not constant): the caller makes one
        and takes the general path."""
        lock = self.lock
        formatter = self.formatter
        if (
            self.filters
            or lock is None
            or type(formatter) is not AuditJsonFormatter
            or self.level > logging.INFO
        ):
            return False
        try:
            line = formatter.format_decision(record)
            if line is None:
                return False
            with lock:
                self.stream.write(line + self.terminator)
                self.stream.flush()
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: logging never raises to its caller
            self.handleError(AuditLogRecord(record.action, record.as_dict()))
        return True


_installed: list[logging.Handler] = []


def install(source_formatter: Any, stream: Any) -> None:
    """Write audit records to `stream` (the function's log stream) with `AuditJsonFormatter`,
    replacing a handler installed before (a reloaded handler module); they no longer propagate to
    the `podwatch` logger's Powertools handler, so each is written once. Other handlers on this
    logger (the local stack's) are left alone."""
    handler = AuditStreamHandler(stream or sys.stdout)
    handler.setFormatter(AuditJsonFormatter(source_formatter))
    for old in _installed:
        audit_log.removeHandler(old)
    _installed[:] = [handler]
    audit_log.addHandler(handler)
    audit_log.propagate = False


class _FilteredSummary:
    """AUDIT_FILTERED=summary (the cheaper audit mode, docs/operations.md): filtered decisions are
    counted by reason, not written one line each; `flush_filtered` writes the counts as one line.
    Every other decision (forwarded with its payload's SHA-256, deduplicated, quarantined, control)
    keeps its own line."""

    counts: Counter[str] | None = None


_filtered = _FilteredSummary()


def summarize_filtered(on: bool) -> None:
    """Count filtered decisions instead of writing each (True), or write each again (False)."""
    _filtered.counts = Counter() if on else None


def flush_filtered() -> None:
    """Write the filtered decisions counted since the last flush as one audit line (none: nothing)."""
    counts = _filtered.counts
    if not counts:
        return
    summary = dict(sorted(counts.items()))
    counts.clear()
    audit_log.info(
        "filtered",
        extra={"audit": {"action": "filtered", "summary": summary, "count": sum(summary.values())}},
    )


def emit(record: AuditRecord) -> None:
    """Log one decision: an INFO `AuditLogRecord` on `podwatch.audit`, handled as `audit_log.info`
    would (level, `logging.disable`, filters, handlers), without its per-call caller lookup."""
    if _filtered.counts is not None and record.action == "filtered":
        _filtered.counts[record.reason] += 1
        return
    logger = audit_log
    if not logger.isEnabledFor(logging.INFO):
        return
    if not (logger.disabled or logger.filters or logger.propagate):
        # As `install` leaves it in Lambda: one AuditStreamHandler writes the line, no LogRecord.
        handlers = logger.handlers
        if (
            len(handlers) == 1
            and type(handlers[0]) is AuditStreamHandler
            and handlers[0].write_decision(record)
        ):
            return
    log_record = AuditLogRecord(record.action, record.as_dict())
    if logger.disabled or logger.filters or logger.propagate or not logger.handlers:
        logger.handle(log_record)  # the general path
        return
    # What Logger.handle and callHandlers do for an enabled logger without filters that does not
    # propagate (as `install` leaves it): each of its handlers, by level.
    for handler in logger.handlers:
        if log_record.levelno >= handler.level:
            handler.handle(log_record)


_EMIT_LINE = emit.__code__.co_firstlineno
#: the attributes every AuditLogRecord has the same (set in one step)
_RECORD_CONSTANTS: dict[str, Any] = {
    "name": AUDIT_LOGGER,
    "msg": "%s",
    "levelname": "INFO",
    "levelno": logging.INFO,
    "pathname": __file__,
    "filename": _FILENAME,
    "module": _MODULE,
    "exc_info": None,
    "exc_text": None,
    "stack_info": None,
    "lineno": _EMIT_LINE,
    "funcName": "emit",
    "taskName": None,  # decisions are made in plain (not asyncio) code
}
