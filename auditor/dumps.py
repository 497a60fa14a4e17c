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

from .errors import InputError
from .records import RECORD_ERRORS, Record, decode_record, decode_records

INVALID_ENVELOPE = "invalid_envelope"

# Bytes of lines per batch (~600 records): measured fastest here, because a
# batch's records are still in the CPU caches when the engine audits them
# (1 MB batches ran ~15% slower, 16 KB ones paid per-batch costs too often).
BATCH_BYTES = 256 << 10
# The file's read buffer: with the default 8 KB, ~30 read calls per batch
# doubled the time spent reading lines.
READ_BUFFER = 256 << 10


class BadLine(NamedTuple):
    line: int
    raw: bytes
    error: str


class Batch(NamedTuple):
    records: list[Record]
    bad_lines: list[BadLine]
    bytes_read: int  # position in the file as stored (compressed bytes for .gz)


class DumpFile:
    """One dump file, read as batches of records."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.kind: str | None = None  # "kcat" or "plain", known after the first object line
        try:
            self.size = Path(path).stat().st_size
        except OSError as exc:
            raise InputError(self.path, f"cannot read: {exc.strerror or exc}") from None
        self._line_no = 0

    def _open(self) -> tuple[BinaryIO, BinaryIO]:
        try:
            raw = open(self.path, "rb", buffering=READ_BUFFER)
        except OSError as exc:
            raise InputError(self.path, f"cannot read: {exc.strerror or exc}") from None
        if self.path.endswith(".gz"):
            return raw, gzip.GzipFile(fileobj=raw, mode="rb")
        return raw, raw

    def batches(self, batch_bytes: int = BATCH_BYTES) -> Iterator[Batch]:
        raw, stream = self._open()
        with raw, stream:
            for lines, error in _line_chunks(stream, batch_bytes):
                if lines:
                    first_line = self._line_no + 1
                    self._line_no += len(lines)
                    records, bad = self._parse(lines, first_line)
                    yield Batch(records, bad, raw.tell())
                if error is not None:
                    raise InputError(self.path, _describe(error), self._line_no + 1) from None

    def _parse(self, lines: list[bytes], first_line: int) -> tuple[list[Record], list[BadLine]]:
        if self.kind is None:  # from the first batch; no JSON object in it at all: kcat
            self.kind = _decide_kind(lines) or "kcat"
        if self.kind == "plain":
            path = self.path
            return [Record(path, 0, n, line) for n, line in enumerate(lines, first_line)
                    if not line.isspace()], []
        # One C call for the whole batch, as one JSON array built by a single
        # join (copying a 256 KB batch three times cost as much as decoding it).
        # A blank line makes that array invalid, so the first try needs no
        # filtering; a bad line sends us line by line.
        try:
            return decode_records(_json_array(lines)), []
        except RECORD_ERRORS:
            pass
        body = [line for line in lines if not line.isspace()]
        try:
            return decode_records(_json_array(body)) if body else [], []
        except RECORD_ERRORS:
            return self._parse_lines(lines, first_line)

    @staticmethod
    def _parse_lines(lines: list[bytes], first_line: int) -> tuple[list[Record], list[BadLine]]:
        records, bad = [], []
        for n, line in enumerate(lines, first_line):
            if line.isspace():
                continue
            try:
                records.append(decode_record(line))
            except RECORD_ERRORS as exc:
                bad.append(BadLine(n, line.rstrip(b"\r\n"), f"not a kcat envelope: {exc}"))
        return records, bad


def _line_chunks(stream: BinaryIO, batch_bytes: int) -> Iterator[tuple[list[bytes], BaseException | None]]:
    """Lists of lines of about `batch_bytes`; a read error comes after the lines
    read before it, so nothing that was readable is lost."""
    if not isinstance(stream, gzip.GzipFile):  # a plain file cannot end early: read in bulk
        try:
            while lines := stream.readlines(batch_bytes):
                yield lines, None
        except OSError as exc:
            yield [], exc
        return
    lines: list[bytes] = []
    size = 0
    try:
        for line in stream:
            lines.append(line)
            size += len(line)
            if size >= batch_bytes:
                yield lines, None
                lines, size = [], 0
    except (OSError, EOFError, zlib.error) as exc:
        yield lines, exc
        return
    yield lines, None


def _json_array(lines: list[bytes]) -> bytes:
    """`[line,line,...]` with one copy of the lines."""
    parts = list(lines)
    parts[0] = b"[" + parts[0]
    parts[-1] = parts[-1] + b"]"
    return b",".join(parts)


def _decide_kind(lines: list[bytes]) -> str | None:
    """kcat if the first line that is a JSON object looks like an envelope, else plain."""
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if type(obj) is dict:
            return "kcat" if ("payload" in obj or "topic" in obj) else "plain"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "truncated gzip (compressed stream ended early)"
    if isinstance(exc, gzip.BadGzipFile):
        return f"not a valid gzip file ({exc})"
    if isinstance(exc, zlib.error):
        return f"corrupt gzip data ({exc})"
    return f"read failed: {getattr(exc, 'strerror', None) or exc}"
