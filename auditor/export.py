"""DynamoDB table exports ("Export to S3", DynamoDB JSON) as the authority.

The export directory's `data/` folder is searched recursively for `*.json.gz`
(and `*.json`) files, one `{"Item": {...}}` per line. A malformed line is an
`InputError`: a half-read authority would turn into false losses, so the run
stops and names the file and line instead of guessing.

The export is held in memory (about 150 bytes per message item): fine for
incident-sized exports; for whole tables, load them into DynamoDB (Local) with
`auditor authority load-export` and replay against the endpoint.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator

import orjson

from .authority import InMemoryAuthority
from .config import AttributeNames
from .errors import InputError


def _export_files(directory: Path) -> list[Path]:
    data = directory / "data"
    if not data.is_dir():
        raise InputError(str(directory), "not a DynamoDB export: no data/ folder")
    return sorted(p for p in data.rglob("*") if p.is_file() and p.name.endswith((".json.gz", ".json")))


def _items(directory: Path) -> Iterator[tuple[Path, int, dict]]:
    for path in _export_files(directory):
        opener = gzip.open if path.name.endswith(".gz") else open
        line_no = 0
        try:
            with opener(path, "rb") as stream:
                for line_no, line in enumerate(stream, 1):
                    if not line.strip():
                        continue
                    try:
                        item = orjson.loads(line)["Item"]
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        raise InputError(str(path), 'line is not {"Item": {...}}', line_no) from None
                    if type(item) is not dict:
                        raise InputError(str(path), "Item is not an object", line_no)
                    yield path, line_no, item
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(str(path), f"cannot read export file: {exc}", line_no + 1) from None


def _attr(item: dict, name: str, dynamo_type: str, path: Path, line_no: int) -> str:
    value = item.get(name)
    if type(value) is not dict or type(value.get(dynamo_type)) is not str:
        raise InputError(str(path), f"item lacks {name} of type {dynamo_type}", line_no)
    return value[dynamo_type]


def _number(text: str, name: str, path: Path, line_no: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(str(path), f"{name} is not an integer: {text!r}", line_no) from None


def read_messages(directory: str | Path, names: AttributeNames) -> dict[str, dict[int, str]]:
    messages: dict[str, dict[int, str]] = {}
    for path, n, item in _items(Path(directory)):
        chat = _attr(item, names.chat_id, "S", path, n)
        seq = _number(_attr(item, names.sequence, "N", path, n), names.sequence, path, n)
        messages.setdefault(chat, {})[seq] = _attr(item, names.message_id, "S", path, n)
    return messages


def read_counters(directory: str | Path, names: AttributeNames) -> dict[str, int]:
    counters: dict[str, int] = {}
    for path, n, item in _items(Path(directory)):
        chat = _attr(item, names.chat_id, "S", path, n)
        text = _attr(item, names.last_sequence, "N", path, n)
        counters[chat] = _number(text, names.last_sequence, path, n)
    return counters


def load_export_authority(messages_dir: str | Path | None, counters_dir: str | Path | None,
                          names: AttributeNames) -> InMemoryAuthority:
    """The authority from export directories; a None directory is an absent table."""
    messages = read_messages(messages_dir, names) if messages_dir else None
    counters = read_counters(counters_dir, names) if counters_dir else None
    return InMemoryAuthority(messages, counters)
