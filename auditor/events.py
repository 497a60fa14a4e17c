"""Event records: validation of Kafka record values (contract section 2).

`parse_event` turns a record value into a `dict` the engine can trust, or
raises `RecordRejected` with a low-cardinality reason and a message naming the
field. It is on the hot path of every mode, so checks are plain type tests on
the orjson output rather than a schema library.
"""

from __future__ import annotations

import re
from datetime import datetime

import orjson

from .errors import RecordRejected

PERSISTED = "message_persisted"
ACKED = "message_acked"
DELIVERED = "message_delivered"
EVENT_TYPES = (PERSISTED, ACKED, DELIVERED)

# Fields beyond the common ones, per type: (name, is_timestamp).
_EXTRA_FIELDS = {
    PERSISTED: (("created_at", True), ("sender_id", False)),
    ACKED: (("acked_at", True),),
    DELIVERED: (("recipient_id", False), ("created_at", True), ("delivered_at", True)),
}

# RFC 3339 date-time: fromisoformat alone also takes dates, basic format and
# naive times, none of which a producer on this platform may send.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})\Z"
)
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\Z")
_ZERO_TRACE = "0" * 32


def parse_timestamp(value: object, field: str) -> datetime:
    if type(value) is not str or not _RFC3339.match(value):
        raise RecordRejected("invalid_field", f"{field} must be an RFC 3339 timestamp, got {value!r}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # well-shaped but impossible, e.g. month 13
        raise RecordRejected("invalid_field", f"{field} is not a valid date-time: {value!r}") from None


def parse_event(value: bytes | str | None) -> dict:
    """Validate one record value; return the event object.

    For `message_delivered` the parsed `created_at` / `delivered_at` are put
    back into the dict as datetimes, since the engine needs them for latency.
    """
    if value is None:
        raise RecordRejected("invalid_json", "payload is null")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordRejected("invalid_json", f"payload is not JSON: {exc}") from None
    if type(event) is not dict:
        raise RecordRejected("not_an_object", f"payload is a JSON {type(event).__name__}, not an object")

    event_type = event.get("event_type")
    if event_type is None:
        raise RecordRejected("missing_field", "event_type is missing")
    extra = _EXTRA_FIELDS.get(event_type) if type(event_type) is str else None
    if extra is None:
        if type(event_type) is not str:
            raise RecordRejected("invalid_field", f"event_type must be a string, got {event_type!r}")
        raise RecordRejected("unknown_event_type", f"unknown event_type {event_type[:64]!r}")

    for field in ("chat_id", "message_id"):
        v = event.get(field)
        if v is None:
            raise RecordRejected("missing_field", f"{field} is missing")
        if type(v) is not str or not v:
            raise RecordRejected("invalid_field", f"{field} must be a non-empty string, got {v!r}")
    seq = event.get("sequence")
    if seq is None:
        raise RecordRejected("missing_field", "sequence is missing")
    if type(seq) is not int or seq < 1:  # `type is int` also refuses True/False
        raise RecordRejected("invalid_field", f"sequence must be a JSON integer >= 1, got {seq!r}")
    trace = event.get("trace_id")
    if trace is not None and type(trace) is not str:
        raise RecordRejected("invalid_field", f"trace_id must be a string, got {trace!r}")

    for field, is_timestamp in extra:
        v = event.get(field)
        if v is None:
            raise RecordRejected("missing_field", f"{field} is missing")
        if is_timestamp:
            parsed = parse_timestamp(v, field)
            if event_type == DELIVERED:
                event[field] = parsed
        elif type(v) is not str:
            raise RecordRejected("invalid_field", f"{field} must be a string, got {v!r}")
    return event


def trace_id_from_header(traceparent: str | None) -> str | None:
    """The trace id of a well-formed W3C traceparent, else None (header ignored)."""
    if traceparent is None:
        return None
    m = _TRACEPARENT.match(traceparent)
    if m is None or m.group(1) == _ZERO_TRACE:
        return None
    return m.group(1)
