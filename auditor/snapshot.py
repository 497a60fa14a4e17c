"""Engine snapshots: the audit state as bytes, for checkpoints, and back.

A snapshot holds everything the engine needs to go on exactly where it
stopped: per-chat state, the highest offset per (topic, partition), pending
deliveries and the tallies. It is taken between batches (no findings or
rejections in hand) and restored against the same kind of authority; the
authority's own data is not in it and is linked again on restore.

Evidence records are written slim: a finding needs a record's coordinates and
trace id, not its payload, so a snapshot keeps (topic, partition, offset) and
the trace id alone (a fifth of the bytes of a whole record).

Format: one version byte, then zlib-compressed pickle. Pickle runs code on
load, so a snapshot must come only from the auditor itself: the checkpoint
topic it lives in must be writable by the auditor's principal alone (Kafka
ACLs), like any state store.
"""

from __future__ import annotations

import io
import pickle
import zlib

import orjson

from .authority import Authority
from .engine import AuditEngine, EngineConfig
from .errors import AuditorError
from .events import trace_id_of
from .records import Record

VERSION = 1
_FIELDS = ("chats", "tallies", "_offsets", "_deliveries", "_closed_duplicates", "_type_counts",
           "_latency_sum", "_retired")


class SnapshotError(AuditorError):
    """A snapshot that cannot be read: wrong version or corrupt bytes."""


def snapshot(engine: AuditEngine) -> bytes:
    if engine._findings or engine._rejections:
        raise ValueError("snapshot between batches only: findings or rejections are in hand")
    state = {name: getattr(engine, name) for name in _FIELDS}
    # The engine nests offsets by topic; a snapshot keeps (topic, partition) -> offset.
    state["_offsets"] = {(topic, partition): offset for topic, partitions in engine._offsets.items()
                         for partition, offset in partitions.items()}
    out = io.BytesIO()
    _SlimPickler(out, pickle.HIGHEST_PROTOCOL).dump(state)
    # Level 1: state is mostly ids and small ints; higher levels cost time for little.
    return bytes([VERSION]) + zlib.compress(out.getbuffer(), 1)


class _SlimPickler(pickle.Pickler):
    def reducer_override(self, obj):
        if type(obj) is Record:
            trace = trace_id_of(obj)
            payload = orjson.dumps({"trace_id": trace}).decode() if trace is not None else None
            return Record, (obj.topic, obj.partition, obj.offset, payload)
        return NotImplemented


def restore(blob: bytes, authority: Authority, config: EngineConfig = EngineConfig()) -> AuditEngine:
    if not blob or blob[0] != VERSION:
        raise SnapshotError(f"unknown snapshot version {blob[0] if blob else None!r}; expected {VERSION}")
    try:
        state = pickle.loads(zlib.decompress(blob[1:]))
    except (zlib.error, pickle.UnpicklingError, EOFError, AttributeError) as exc:
        raise SnapshotError(f"corrupt snapshot: {exc}") from None
    engine = AuditEngine(authority, config)
    for name in _FIELDS:
        if name in state:  # a field newer than the snapshot keeps the engine's default
            setattr(engine, name, state[name])
    engine._offsets = {}
    for (topic, partition), offset in state["_offsets"].items():
        engine._offsets.setdefault(topic, {})[partition] = offset
    if authority.has_messages:
        for chat_id, chat in engine.chats.items():
            chat.items = authority.items_of(chat_id)
    return engine
