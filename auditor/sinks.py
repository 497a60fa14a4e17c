"""Where rejected records and findings go: files of JSON lines.

Each sink writes one object per line and flushes per batch, so a crash loses
at most the batch in hand and the file is always valid up to its last line.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Iterable

import orjson

from .engine import Rejection
from .findings import Finding


def _text(value: bytes | str | None) -> str | None:
    """The record as text, verbatim but for the line ending (invalid UTF-8 escaped)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    return value.rstrip("\r\n")


class JsonLinesSink:
    """`append`: keep what the file holds (a long-running service); otherwise
    start it afresh (one replay, one file)."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self._file: IO[bytes] = open(self.path, "ab" if append else "wb")

    def write_objects(self, objects: Iterable[dict]) -> None:
        write = self._file.write
        for obj in objects:
            write(orjson.dumps(obj) + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class DeadLetterSink(JsonLinesSink):
    """Rejected records, verbatim, with their coordinates and why.

    `record` is the Kafka record's value exactly as it was (the payload, for a
    kcat dump), with its key and headers beside it; a dump line that was not
    even an envelope is kept whole, with its line number.
    """

    def write(self, source: str, rejections: Iterable[Rejection]) -> None:
        self.write_objects(
            {
                "source": source,
                "topic": r.record.topic,
                "partition": r.record.partition,
                "offset": r.record.offset,
                "reason": r.reason,
                "error": r.error,
                "key": r.record.key,
                "headers": r.record.headers,
                "record": _text(r.record.payload),
            }
            for r in rejections
        )

    def write_bad_line(self, source: str, line: int, raw: bytes, error: str) -> None:
        self.write_objects([{"source": source, "line": line, "topic": None, "partition": None,
                             "offset": None, "reason": "invalid_envelope", "error": error,
                             "record": _text(raw)}])


class FindingSink(JsonLinesSink):
    """Findings, one JSON object each, as they are confirmed."""

    def write(self, findings: Iterable[Finding]) -> None:
        self.write_objects(f.to_dict() for f in findings)
