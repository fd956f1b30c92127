"""The audit trail's record and line: what `audit.emit` hands to the handlers of `podwatch.audit`
(a LogRecord with `audit`, as `logger.info(action, extra={"audit": ...})` would), and the JSON line
of `AuditJsonFormatter`, whose per-record template must write exactly what its general path writes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from podwatch import audit

RECORD = audit.AuditRecord(
    action="forwarded",
    reason="opened",
    event_id="6249b41dc5379cee80272dbbb151ba13",
    kind="pod",
    namespace="payments",
    pod="api-7d9f8b6c5d-tq5vn",
    event_type="crash-loop",
    notification_id=None,
    dedup_key="c/payments/api-7d9f8b6c5d-tq5vn/api/crash-loop",
    payload_sha256="a" * 64,
    config_version="v 100% é",
)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    logger = logging.getLogger(audit.AUDIT_LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_emit_hands_handlers_a_log_record_with_the_audit_keys(captured: Capture) -> None:
    audit.emit(RECORD)
    [record] = captured.records
    assert record.audit == dict(zip(audit.AUDIT_KEYS, RECORD, strict=True))  # type: ignore[attr-defined]
    assert tuple(record.audit) == audit.AUDIT_KEYS  # type: ignore[attr-defined]
    assert (record.name, record.levelno, record.levelname) == (audit.AUDIT_LOGGER, logging.INFO, "INFO")
    assert record.getMessage() == "forwarded"
    assert (record.funcName, record.module) == ("emit", "audit")
    assert record.created > 0
    assert 0 <= record.msecs < 1000
    # every attribute a LogRecord made by Logger.info has (formatters read them from __dict__)
    reference = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None, "f")
    assert set(vars(reference)) <= set(vars(record))


def test_emit_respects_the_logger_level_and_logging_disable(captured: Capture) -> None:
    logging.disable(logging.INFO)
    try:
        audit.emit(RECORD)
    finally:
        logging.disable(logging.NOTSET)
    assert captured.records == []


@pytest.mark.parametrize("trace", [None, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"])
def test_the_line_template_writes_what_the_general_path_writes(
    monkeypatch: pytest.MonkeyPatch, captured: Capture, trace: str | None
) -> None:
    if trace is None:
        monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    else:
        monkeypatch.setenv("_X_AMZN_TRACE_ID", trace)
    source = LambdaPowertoolsFormatter()  # what the processor's Logger installs
    source.append_keys(service="podwatch-processor", name="%(name)s")
    source.append_keys(function_request_id="req-1", cold_start=False, odd="50% off", nested={"a": [1, None]})
    formatter = audit.AuditJsonFormatter(source)
    stream = io.StringIO()
    handler = audit.AuditStreamHandler(stream)
    handler.setFormatter(formatter)
    audit.emit(RECORD)
    [record] = captured.records
    handler.handle(record)
    line = stream.getvalue()
    assert line.endswith("\n")
    assert line[:-1] == formatter._format_any(record)  # the template (fast) path == the general path
    parsed = json.loads(line)
    assert parsed["audit"] == record.audit  # type: ignore[attr-defined]
    assert parsed["message"] == "forwarded"
    assert parsed["level"] == "INFO"
    assert parsed["timestamp"] == source.formatTime(record)
    assert parsed.get("xray_trace_id") == (trace.split(";")[0].removeprefix("Root=") if trace else None)
    # keys changed (the next invocation): the template follows them
    source.append_keys(function_request_id="req-2")
    assert json.loads(formatter.format(record))["function_request_id"] == "req-2"


def test_records_logged_directly_on_the_audit_logger_take_the_general_path() -> None:
    source = LambdaPowertoolsFormatter()
    formatter = audit.AuditJsonFormatter(source)
    record = logging.LogRecord(audit.AUDIT_LOGGER, logging.INFO, __file__, 7, "%s", ("filtered",), None, "f")
    record.audit = {"action": "filtered"}
    parsed = json.loads(formatter.format(record))
    assert parsed["location"] == "f:7"
    assert parsed["audit"] == {"action": "filtered"}


# --------------------------------------------------------------------------- the decision fast path
# `emit` writes the line itself (no LogRecord) when the logger is as `install` leaves it in Lambda:
# one AuditStreamHandler with an AuditJsonFormatter, no filters. Its line must be byte for byte what
# the general path writes for the AuditLogRecord of the same decision at the same instant.

NOW_NS = 1_795_000_000_123_456_789


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[io.StringIO, LambdaPowertoolsFormatter]]:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8")
    monkeypatch.setattr(audit.time, "time_ns", lambda: NOW_NS)
    logger = logging.getLogger(audit.AUDIT_LOGGER)
    saved = (list(logger.handlers), logger.propagate, list(audit._installed))
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    source = LambdaPowertoolsFormatter()
    source.append_keys(service="podwatch-processor", function_request_id="req-1", cold_start=False)
    stream = io.StringIO()
    audit.install(source, stream)
    yield stream, source
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for handler in saved[0]:
        logger.addHandler(handler)
    logger.propagate = saved[1]
    audit._installed[:] = saved[2]


def _general_line(source: LambdaPowertoolsFormatter, record: audit.AuditRecord) -> str:
    return audit.AuditJsonFormatter(source)._format_any(
        audit.AuditLogRecord(record.action, record.as_dict(), NOW_NS)
    )


@pytest.mark.parametrize(
    "record",
    [
        RECORD,
        RECORD._replace(action="filtered", reason="healthy", event_type=None, dedup_key=None, namespace=None),
        RECORD._replace(action="quarantined", reason="malformed", pod='quote " back\\slash \n é 100%'),
    ],
    ids=["forwarded", "filtered", "odd-text"],
)
def test_the_fast_path_writes_the_general_paths_line(
    installed: tuple[io.StringIO, LambdaPowertoolsFormatter], record: audit.AuditRecord
) -> None:
    stream, source = installed
    audit.emit(record)
    audit.emit(record)  # the second from the cached template
    lines = stream.getvalue().splitlines()
    assert lines == [_general_line(source, record)] * 2
    parsed = json.loads(lines[0])
    assert parsed["audit"] == record.as_dict()
    assert parsed["function_request_id"] == "req-1"
    # the next invocation's keys are followed
    source.append_keys(function_request_id="req-2")
    audit.emit(record)
    assert json.loads(stream.getvalue().splitlines()[-1])["function_request_id"] == "req-2"


def test_a_handler_filter_is_applied(installed: tuple[io.StringIO, LambdaPowertoolsFormatter]) -> None:
    stream, _ = installed
    [handler] = audit._installed
    handler.addFilter(lambda r: r.getMessage() != "filtered")
    audit.emit(RECORD._replace(action="filtered"))
    audit.emit(RECORD)
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["forwarded"]


def test_another_time_format_takes_the_general_path(
    installed: tuple[io.StringIO, LambdaPowertoolsFormatter],
) -> None:
    stream, source = installed
    source.datefmt = "%Y-%m-%dT%H:%M:%S"
    audit.emit(RECORD)
    [line] = stream.getvalue().splitlines()
    assert line == _general_line(source, RECORD)
    assert json.loads(line)["timestamp"] == source.formatTime(audit.AuditLogRecord("x", {}, NOW_NS))


def test_a_second_handler_gets_the_log_record(
    installed: tuple[io.StringIO, LambdaPowertoolsFormatter], captured: Capture
) -> None:
    stream, source = installed
    audit.emit(RECORD)
    assert stream.getvalue().splitlines() == [_general_line(source, RECORD)]
    [record] = captured.records
    assert record.audit == RECORD.as_dict()  # type: ignore[attr-defined]


def test_the_record_fields_are_the_audit_keys_in_order() -> None:
    # `_record_json` fills a template of AUDIT_KEYS with the record's values in field order
    assert audit.AuditRecord._fields == audit.AUDIT_KEYS
    assert json.loads(audit._record_json(RECORD)) == dict(zip(audit.AUDIT_KEYS, RECORD, strict=True))


def test_summary_mode_counts_filtered_decisions_and_keeps_every_other_line(captured: Capture) -> None:
    # Given the cheaper audit mode (AUDIT_FILTERED=summary)
    healthy = RECORD._replace(action="filtered", reason="healthy", event_type=None)
    deleted = RECORD._replace(action="filtered", reason="deleted", event_type=None)
    audit.summarize_filtered(True)
    try:
        # When an invocation decides three filtered events and one forwarded
        for record in (healthy, healthy, deleted, RECORD):
            audit.emit(record)
        # Then only the forwarded one has its line (with the payload's SHA-256) so far
        assert [r.audit["action"] for r in captured.records] == ["forwarded"]  # type: ignore[attr-defined]
        assert captured.records[0].audit["payload_sha256"] == "a" * 64  # type: ignore[attr-defined]
        # and the flush at the end of the invocation writes one line with the counts, once
        audit.flush_filtered()
        audit.flush_filtered()
    finally:
        audit.summarize_filtered(False)
    summary = captured.records[1].audit  # type: ignore[attr-defined]
    assert summary == {"action": "filtered", "summary": {"deleted": 1, "healthy": 2}, "count": 3}
    assert len(captured.records) == 2
    # and back in the default mode, a filtered decision has its own line again
    audit.emit(healthy)
    assert captured.records[-1].audit["reason"] == "healthy"  # type: ignore[attr-defined]
