"""Kafka records as every adapter hands them to the engine, and what findings cite of them.

`Record` doubles as the kcat `-J` envelope: msgspec decodes dump lines straight
into it (a whole batch per call), so replay builds no intermediate dicts. The
live consumer builds the same struct from an aiokafka message. Fields kcat
writes that the auditor does not need (tstype, ts, broker) are ignored.

`Evidence` is what the engine keeps of a record it may cite in a finding.
"""

from __future__ import annotations

import msgspec


def traceparent_of(headers: list | None) -> str | bytes | None:
    """The first `traceparent` header's value, from kcat's flat name/value list."""
    if headers:
        if len(headers) > 1 and headers[0] == "traceparent":  # where producers put it: no loop
            return headers[1]
        for i in range(2, len(headers) - 1, 2):
            if headers[i] == "traceparent":
                return headers[i + 1]
    return None


class Record(msgspec.Struct, gc=False):  # holds no cycles: skip GC tracking
    topic: str
    partition: int
    offset: int
    # A str from a kcat dump; the live consumer and plain files pass the raw
    # bytes (msgspec checks types when decoding, not in the constructor).
    payload: str | None = None
    key: str | None = None
    headers: list[str | None] | None = None  # flat: name, value, name, value, ...

    @property
    def traceparent(self) -> str | bytes | None:
        return traceparent_of(self.headers)

    @property
    def coordinates(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


class Evidence(msgspec.Struct, frozen=True, gc=False):
    """A record as a finding cites it: where it is in Kafka and what names its trace.

    Findings keep this rather than the record: the payload is most of a
    record's bytes and a finding needs none of it. The trace id is worked out
    only when a finding is written (`auditor.events.trace_id_of`).
    """

    topic: str
    partition: int
    offset: int
    traceparent: str | bytes | None = None  # the record's traceparent header, as received
    payload_trace_id: str | None = None  # the event's own trace_id field

    @classmethod
    def of(cls, record: Record, payload_trace_id: str | None) -> "Evidence":
        return cls(record.topic, record.partition, record.offset, traceparent_of(record.headers), payload_trace_id)

    @property
    def coordinates(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


decode_records = msgspec.json.Decoder(list[Record]).decode
decode_record = msgspec.json.Decoder(Record).decode
RECORD_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)
