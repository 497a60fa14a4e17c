"""Kafka records as every adapter hands them to the engine.

`Record` doubles as the kcat `-J` envelope: msgspec decodes dump lines straight
into it (a whole batch per call), so replay builds no intermediate dicts. The
live consumer builds the same struct from an aiokafka message. Fields kcat
writes that the auditor does not need (tstype, ts, broker) are ignored.
"""

from __future__ import annotations

import msgspec


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
    def traceparent(self) -> str | None:
        headers = self.headers
        if headers:
            for i in range(0, len(headers) - 1, 2):
                if headers[i] == "traceparent":
                    return headers[i + 1]
        return None

    @property
    def coordinates(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


decode_records = msgspec.json.Decoder(list[Record]).decode
decode_record = msgspec.json.Decoder(Record).decode
RECORD_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)
