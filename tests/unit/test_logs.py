"""Structured JSON logs (ADR-012 section 1.4): one object per line, fixed schema, correlation, safety."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import re
import uuid

import pytest

from auditor.logs import (
    SCHEMA_FIELDS,
    JsonFormatter,
    configure_logging,
    log_event,
    parse_traceparent,
    trace_context,
    trace_from_headers,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
RFC3339_US_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


@pytest.fixture
def capture():
    """A private logger wired by configure_logging to a StringIO; returns (logger, lines())."""
    logger = logging.getLogger(f"test_logs.{uuid.uuid4().hex}")
    logger.propagate = False
    stream = io.StringIO()
    configure_logging("DEBUG", instance="auditor-test-0", stream=stream, logger=logger)

    def lines() -> list[dict]:
        text = stream.getvalue()
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]

    yield logger, lines
    for handler in list(logger.handlers):
        logger.removeHandler(handler)


def test_every_line_has_the_full_schema_in_order(capture):
    log, lines = capture
    log_event(log, "partition_assigned", partition=3, topic="messages.persisted")
    log.warning("plain %s", "text")

    first, second = lines()
    for line in (first, second):
        assert list(line) == list(SCHEMA_FIELDS)
        assert line["service"] == "auditor" and line["instance"] == "auditor-test-0"
        assert RFC3339_US_UTC.match(line["timestamp"])
    assert first["level"] == "INFO" and first["event"] == "partition_assigned"
    assert first["metadata"]["partition"] == 3 and first["metadata"]["topic"] == "messages.persisted"
    assert "message" not in first["metadata"]  # the event name is not repeated
    assert first["error_code"] is None and first["trace_id"] is None
    assert second["level"] == "WARNING" and second["event"] == "log"
    assert second["metadata"]["message"] == "plain text"
    assert second["metadata"]["logger"] == log.name


def test_timestamp_is_the_record_time_in_utc(capture):
    log, lines = capture
    before = dt.datetime.now(dt.timezone.utc)
    log_event(log, "tick")
    after = dt.datetime.now(dt.timezone.utc)
    stamp = dt.datetime.strptime(lines()[0]["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    assert before - dt.timedelta(milliseconds=1) <= stamp <= after + dt.timedelta(milliseconds=1)


def test_schema_fields_go_top_level_and_the_rest_to_metadata(capture):
    log, lines = capture
    log_event(log, "verdict_deferred", level=logging.WARNING, message_id="m1", chat_id="chat_000001",
              user_id="u1", request_id="req_1", latency_ms=12.5, operation="BatchGetItem",
              error_code="throttled", metadata={"attempt": 2}, keys=100)
    log.info("via extra", extra={"event": "checkpoint_written", "chat_id": "c9", "offset": 1200})

    first, second = lines()
    assert first["level"] == "WARNING"
    assert (first["message_id"], first["chat_id"], first["user_id"], first["request_id"]) == \
        ("m1", "chat_000001", "u1", "req_1")
    assert first["latency_ms"] == 12.5 and first["operation"] == "BatchGetItem"
    assert first["error_code"] == "throttled" and first["error_message"] is None
    assert first["metadata"]["attempt"] == 2 and first["metadata"]["keys"] == 100
    assert second["event"] == "checkpoint_written" and second["chat_id"] == "c9"
    assert second["metadata"]["offset"] == 1200 and second["metadata"]["message"] == "via extra"


def test_trace_id_is_propagated_from_context_headers_and_extra(capture):
    log, lines = capture
    headers = [("other", b"x"), ("traceparent", TRACEPARENT.encode())]
    with trace_context(*trace_from_headers(headers)):
        log_event(log, "finding", message_id="m1")
        log.info("library line")  # a plain call inside the context is correlated too
        log_event(log, "explicit", trace_id="a" * 32)  # an explicit id wins, span not mixed in
    log_event(log, "after")

    inside, plain, explicit, after = lines()
    assert (inside["trace_id"], inside["span_id"]) == (TRACE_ID, SPAN_ID)
    assert (plain["trace_id"], plain["span_id"]) == (TRACE_ID, SPAN_ID)
    assert (explicit["trace_id"], explicit["span_id"]) == ("a" * 32, None)
    assert (after["trace_id"], after["span_id"]) == (None, None)


def test_trace_context_is_per_asyncio_task(capture):
    log, lines = capture

    async def handle(n: int) -> None:
        trace_id = f"{n:032x}"
        with trace_context(trace_id, f"{n:016x}"):
            await asyncio.sleep(0.01 * (3 - n))  # interleave the tasks
            log_event(log, "handled", n=n)

    async def main() -> None:
        await asyncio.gather(*(handle(n) for n in (1, 2)))

    asyncio.run(main())
    by_n = {line["metadata"]["n"]: line for line in lines()}
    assert by_n[1]["trace_id"] == f"{1:032x}" and by_n[2]["trace_id"] == f"{2:032x}"


@pytest.mark.parametrize("value, expected", [
    (TRACEPARENT, (TRACE_ID, SPAN_ID)),
    (TRACEPARENT.encode(), (TRACE_ID, SPAN_ID)),
    ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", (None, None)),   # all-zero trace id is invalid
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-xyz-01", (None, None)),
    ("garbage", (None, None)),
    (None, (None, None)),
])
def test_parse_traceparent(value, expected):
    assert parse_traceparent(value) == expected


def test_trace_from_headers_accepts_mappings_and_missing_headers():
    assert trace_from_headers({"traceparent": TRACEPARENT}) == (TRACE_ID, SPAN_ID)
    assert trace_from_headers([(b"TraceParent", TRACEPARENT.encode())]) == (TRACE_ID, SPAN_ID)
    assert trace_from_headers(None) == (None, None)
    assert trace_from_headers([("other", b"1")]) == (None, None)


def test_exception_becomes_error_code_and_message_with_its_type(capture):
    log, lines = capture

    class CheckpointFailed(RuntimeError):
        pass

    try:
        raise CheckpointFailed("state store unreachable")
    except CheckpointFailed:
        log.exception("checkpoint failed", extra={"event": "checkpoint_failed", "chat_id": "c1"})
    try:
        raise ValueError("bad offset")
    except ValueError as exc:
        log_event(log, "commit_failed", level=logging.ERROR, exc_info=exc, error_code="COMMIT_FAILED")

    first, second = lines()
    assert first["level"] == "ERROR" and first["event"] == "checkpoint_failed"
    assert first["error_code"] == "CheckpointFailed"
    assert first["error_message"] == "state store unreachable"
    assert first["metadata"]["exception_type"].endswith("CheckpointFailed")
    assert "Traceback" in first["metadata"]["traceback"]
    assert "state store unreachable" in first["metadata"]["traceback"]
    assert first["chat_id"] == "c1"
    # an explicit code is kept; the message and type still come from the exception
    assert second["error_code"] == "COMMIT_FAILED" and second["error_message"] == "bad offset"
    assert second["metadata"]["exception_type"] == "builtins.ValueError"


def test_exception_without_text_gets_its_type_as_message(capture):
    log, lines = capture
    try:
        raise KeyError
    except KeyError:
        log.error("lookup", exc_info=True)
    line = lines()[0]
    assert line["error_code"] == "KeyError" and line["error_message"] == "KeyError"


def test_non_serialisable_values_are_rendered_as_strings(capture):
    log, lines = capture

    class Opaque:
        def __str__(self) -> str:
            return "opaque-thing"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    log_event(log, "odd_values", thing=Opaque(), raw=b"bytes\xff", when=dt.datetime(2026, 1, 31, 10, 0),
              ids={3, 1}, nested={"deep": Opaque(), 7: "int key"}, huge=2 ** 80, broken=Broken(),
              chat_id=Opaque())
    line = lines()[0]
    meta = line["metadata"]
    assert meta["thing"] == "opaque-thing"
    assert meta["raw"].startswith("bytes")
    assert meta["when"].startswith("2026-01-31")
    assert sorted(meta["ids"]) == [1, 3]
    assert meta["nested"] == {"deep": "opaque-thing", "7": "int key"}
    assert meta["huge"] == str(2 ** 80)
    assert meta["broken"] == "<unprintable Broken>"
    assert line["chat_id"] == "opaque-thing"


def test_bad_format_arguments_do_not_lose_the_line():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "two %s %s", ("only-one",), None)
    line = json.loads(JsonFormatter(instance="i").format(record))
    assert line["event"] == "log" and "formatting failed" in line["metadata"]["message"]


def test_secrets_are_redacted(capture):
    log, lines = capture
    log_event(log, "connecting", password="hunter2", sasl_plain_password="p", aws_secret_access_key="s",
              api_key="k", auth_token="t", tokens_per_s=5, authority="dynamodb",
              bootstrap="kafka://svc:hunter2@broker:9092", metadata={"headers": {"Authorization": "Bearer x"}})
    line = lines()[0]
    raw = json.dumps(line)
    assert "hunter2" not in raw and "Bearer x" not in raw
    meta = line["metadata"]
    for key in ("password", "sasl_plain_password", "aws_secret_access_key", "api_key", "auth_token"):
        assert meta[key] == "[REDACTED]"
    assert meta["headers"]["Authorization"] == "[REDACTED]"
    assert meta["bootstrap"] == "kafka://[REDACTED]@broker:9092"
    assert meta["tokens_per_s"] == 5 and meta["authority"] == "dynamodb"  # not secrets


def test_configure_logging_is_idempotent_and_respects_level():
    logger = logging.getLogger(f"test_logs.{uuid.uuid4().hex}")
    logger.propagate = False
    other = logging.NullHandler()
    logger.addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", instance="a", stream=first, logger=logger)
    configure_logging("WARNING", instance="b", stream=second, logger=logger)
    try:
        log_event(logger, "dropped")  # INFO < WARNING
        log_event(logger, "kept", level=logging.WARNING)
        assert first.getvalue() == ""
        lines = second.getvalue().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["instance"] == "b"
        assert other in logger.handlers and len(logger.handlers) == 2
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
    with pytest.raises(ValueError):
        configure_logging("LOUD", stream=io.StringIO(), logger=logger)


def test_formatter_works_with_a_plain_handler():
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "hello %d", (5,), None)
    line = json.loads(JsonFormatter(instance="i").format(record))
    assert line["level"] == "DEBUG" and line["metadata"]["message"] == "hello 5"
    assert "\n" not in JsonFormatter(instance="i").format(
        logging.LogRecord("x", logging.INFO, __file__, 1, "multi\nline", None, None))
