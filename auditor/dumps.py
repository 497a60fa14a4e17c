"""Dump files: kcat `-J` envelopes or plain event JSON lines, plain or gzip.

A file is read lazily in batches of `Record`s. Lines too broken to carry Kafka
coordinates come out beside the batch as `BadLine`s; the caller counts and
dead-letters them. An I/O error (unreadable file, truncated or corrupt gzip)
first hands over every record read before it, then raises `InputError`
naming the file, so a partial read is still reported.

How a file's kind is decided, and plain files' coordinates, are in
docs/semantics.md ("Dump files").
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple

import orjson

from .engine import Record
from .errors import InputError

INVALID_ENVELOPE = "invalid_envelope"

# Large enough to amortise per-batch work (metrics, progress), small enough to
# keep the latency of a live batch and the memory of a partial one low.
BATCH_SIZE = 4096


class BadLine(NamedTuple):
    line: int
    raw: bytes
    error: str


class Batch(NamedTuple):
    records: list[Record]
    bad_lines: list[BadLine]
    bytes_read: int  # position in the file as stored (compressed bytes for .gz)


def _envelope_record(obj: object, raw: bytes) -> Record | str:
    """A Record from a parsed kcat envelope, or the reason it is not one."""
    if type(obj) is not dict:
        return "envelope is not a JSON object"
    topic, partition, offset = obj.get("topic"), obj.get("partition"), obj.get("offset")
    if type(topic) is not str:
        return "envelope topic must be a string"
    if type(partition) is not int or type(offset) is not int:
        return "envelope partition and offset must be integers"
    payload = obj.get("payload")
    if payload is not None and type(payload) is not str:
        return "envelope payload must be a string or null"
    key = obj.get("key")
    if key is not None and type(key) is not str:
        return "envelope key must be a string or null"
    headers = obj.get("headers")
    traceparent = None
    if headers is not None:
        if type(headers) is not list or len(headers) % 2:
            return "envelope headers must be a flat list of name, value pairs"
        for i in range(0, len(headers), 2):
            if headers[i] == "traceparent" and type(headers[i + 1]) is str:
                traceparent = headers[i + 1]
    return Record(topic, partition, offset, payload, traceparent, raw)


def _looks_like_envelope(obj: dict) -> bool:
    return "payload" in obj or "topic" in obj


class DumpFile:
    """One dump file, read as batches of records."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.kind: str | None = None  # "kcat" or "plain", known after the first object line
        try:
            self.size = Path(path).stat().st_size
        except OSError as exc:
            raise InputError(self.path, f"cannot read: {exc.strerror or exc}") from None

    def _open(self) -> tuple[BinaryIO, BinaryIO]:
        try:
            raw = open(self.path, "rb")
        except OSError as exc:
            raise InputError(self.path, f"cannot read: {exc.strerror or exc}") from None
        if self.path.endswith(".gz"):
            return raw, gzip.GzipFile(fileobj=raw, mode="rb")
        return raw, raw

    def batches(self, batch_size: int = BATCH_SIZE) -> Iterator[Batch]:
        raw, stream = self._open()
        records: list[Record] = []
        bad: list[BadLine] = []
        pending: list[tuple[int, bytes]] = []  # lines seen before the kind is known
        line_no = 0
        try:
            with raw, stream:
                try:
                    for line in stream:
                        line_no += 1
                        line = line.rstrip(b"\r\n")
                        if not line.strip():
                            continue
                        if self.kind is None:
                            pending.append((line_no, line))
                            if not self._decide_kind(line):
                                continue
                            for n, held in pending:
                                self._take(n, held, records, bad)
                            pending.clear()
                        else:
                            self._take(line_no, line, records, bad)
                        if len(records) >= batch_size:
                            yield Batch(records, bad, raw.tell())
                            records, bad = [], []
                except (OSError, EOFError, zlib.error) as exc:
                    yield from self._flush_pending(pending, records, bad, raw)
                    raise InputError(self.path, _describe(exc), line_no + 1) from None
                yield from self._flush_pending(pending, records, bad, raw)
        except OSError as exc:  # closing a broken gzip can fail too
            raise InputError(self.path, _describe(exc)) from None

    def _flush_pending(self, pending, records, bad, raw) -> Iterator[Batch]:
        if pending:  # no line was a JSON object: the file is taken as kcat
            self.kind = "kcat"
            for n, held in pending:
                self._take(n, held, records, bad)
            pending.clear()
        if records or bad:
            yield Batch(records, bad, self.size if raw.closed else raw.tell())

    def _decide_kind(self, line: bytes) -> bool:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False
        if type(obj) is not dict:
            return False
        self.kind = "kcat" if _looks_like_envelope(obj) else "plain"
        return True

    def _take(self, line_no: int, line: bytes, records: list, bad: list) -> None:
        if self.kind == "plain":
            records.append(Record(self.path, 0, line_no, line, None, line))
            return
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            bad.append(BadLine(line_no, line, f"envelope is not JSON: {exc}"))
            return
        result = _envelope_record(obj, line)
        if type(result) is str:
            bad.append(BadLine(line_no, line, result))
        else:
            records.append(result)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "truncated gzip (compressed stream ended early)"
    if isinstance(exc, gzip.BadGzipFile):
        return f"not a valid gzip file ({exc})"
    if isinstance(exc, zlib.error):
        return f"corrupt gzip data ({exc})"
    return f"read failed: {getattr(exc, 'strerror', None) or exc}"
