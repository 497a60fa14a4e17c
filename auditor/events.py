"""Event records: decoding and validation of Kafka record values (contract section 2).

msgspec decodes a record value straight into one of three typed structs and
validates it in C (types, `sequence >= 1`, non-empty ids, RFC 3339 timestamps
with an offset, `event_type` as the tag). That is the acceptance rule, and it
is cheaper than `orjson.loads` into a dict. When msgspec refuses a record,
`_rejection_reason` re-reads it with plain Python to name the reason label
(docs/semantics.md), so the labels do not depend on msgspec's message wording.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Union

import msgspec
import orjson
from msgspec import Meta, Struct

from .errors import RecordRejected
from .records import Evidence

PERSISTED = "message_persisted"
ACKED = "message_acked"
DELIVERED = "message_delivered"
EVENT_TYPES = (PERSISTED, ACKED, DELIVERED)

NonEmpty = Annotated[str, Meta(min_length=1)]
Sequence = Annotated[int, Meta(ge=1)]  # msgspec refuses "7", 7.0 and true for int
Timestamp = Annotated[datetime, Meta(tz=True)]  # RFC 3339 with Z or an offset


class Persisted(Struct, tag_field="event_type", tag=PERSISTED, frozen=True, gc=False):
    chat_id: NonEmpty
    sequence: Sequence
    message_id: NonEmpty
    created_at: Timestamp
    sender_id: str
    trace_id: str | None = None


class Acked(Struct, tag_field="event_type", tag=ACKED, frozen=True, gc=False):
    chat_id: NonEmpty
    sequence: Sequence
    message_id: NonEmpty
    acked_at: Timestamp
    trace_id: str | None = None


class Delivered(Struct, tag_field="event_type", tag=DELIVERED, frozen=True, gc=False):
    chat_id: NonEmpty
    sequence: Sequence
    message_id: NonEmpty
    recipient_id: str
    created_at: Timestamp
    delivered_at: Timestamp
    trace_id: str | None = None


Event = Union[Persisted, Acked, Delivered]
EVENT_TYPE = {Persisted: PERSISTED, Acked: ACKED, Delivered: DELIVERED}
_REQUIRED = {
    PERSISTED: ("chat_id", "sequence", "message_id", "created_at", "sender_id"),
    ACKED: ("chat_id", "sequence", "message_id", "acked_at"),
    DELIVERED: ("chat_id", "sequence", "message_id", "recipient_id", "created_at", "delivered_at"),
}
decode_event = msgspec.json.Decoder(Event).decode  # the hot path; errors: DECODE_ERRORS
DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, TypeError)
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}\Z")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def parse_event(value: bytes | str | None) -> Event:
    """Decode and validate one record value, or raise `RecordRejected`."""
    try:
        return decode_event(value)
    except DECODE_ERRORS as exc:
        reason, message = _rejection_reason(value)
        raise RecordRejected(reason, message or str(exc) or "invalid value") from None


def _rejection_reason(value: bytes | str | None) -> tuple[str, str | None]:
    """The reason label for a value msgspec refused (and a message, where ours is better)."""
    if value is None:
        return "invalid_json", "payload is null"
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return "invalid_json", f"payload is not JSON: {exc}"
    if type(obj) is not dict:
        return "not_an_object", f"payload is a JSON {type(obj).__name__}, not an object"
    if "event_type" not in obj:
        return "missing_field", "event_type is missing"
    event_type = obj["event_type"]
    if type(event_type) is not str:
        return "invalid_field", f"event_type must be a string, got {event_type!r}"
    if event_type not in _REQUIRED:
        return "unknown_event_type", f"unknown event_type {event_type[:64]!r}"
    for field in _REQUIRED[event_type]:
        if field not in obj:
            return "missing_field", f"{field} is missing"
    return "invalid_field", None  # present but of the wrong type or value: msgspec says which


def trace_id_of(evidence: Evidence) -> str | None:
    """The correlation id of a cited record: its traceparent's trace id, else
    the payload's trace_id."""
    trace = trace_id_from_header(evidence.traceparent)
    return evidence.payload_trace_id if trace is None else trace


def parse_traceparent(value: str | bytes | None) -> tuple[str | None, str | None]:
    """(trace_id, span_id) of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`,
    lowercase, neither id all zeros), else (None, None): the header is ignored."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    m = _TRACEPARENT.match(value) if value is not None else None
    if m is None or m.group(1) == _ZERO_TRACE or m.group(2) == _ZERO_SPAN:
        return None, None
    return m.group(1), m.group(2)


def trace_id_from_header(traceparent: str | None) -> str | None:
    """The trace id of a well-formed traceparent, else None."""
    return parse_traceparent(traceparent)[0]
