"""Engine snapshots: the audit state as bytes, for checkpoints, and back.

A snapshot holds everything the engine needs to go on exactly where it
stopped: per-chat state, the highest offset per (topic, partition), pending
deliveries and the tallies. It is taken between batches (no findings or
rejections in hand) and restored against the same kind of authority; the
authority's own data is not in it and is linked again on restore.

The engine keeps no records, only what findings cite of them (`Evidence`,
`FirstDelivery`: coordinates and the names of a trace); a snapshot writes
those with the trace id worked out, as a traceparent is longer and does not
compress.

Format: one version byte, then zlib-compressed pickle. Version 1 (before
`Evidence`) kept records (coordinates and a payload of just the trace id) and
queued deliveries as (sequence, key); it is read and upgraded. Pickle runs code on
load, so a snapshot must come only from the auditor itself: the checkpoint
topic it lives in must be writable by the auditor's principal alone (Kafka
ACLs), like any state store.
"""

from __future__ import annotations

import io
import pickle
import zlib
from collections import deque

import orjson

from .authority import Authority
from .engine import AuditEngine, EngineConfig
from .errors import AuditorError
from .events import trace_id_of
from .records import Evidence
from .state import FirstDelivery

VERSION = 2
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
        kind = type(obj)
        if kind is FirstDelivery:
            return FirstDelivery, (obj.seq, obj.key, obj.topic, obj.partition, obj.offset, None, trace_id_of(obj))
        if kind is Evidence:
            return Evidence, (obj.topic, obj.partition, obj.offset, None, trace_id_of(obj))
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("auditor.records", "Record"):  # version 1: a slim record
            return _evidence_of_slim_record
        return super().find_class(module, name)


def _evidence_of_slim_record(topic: str, partition: int, offset: int, payload: str | None = None) -> Evidence:
    trace = orjson.loads(payload).get("trace_id") if payload is not None else None
    return Evidence(topic, partition, offset, None, trace)


def _upgrade_v1_deliveries(engine: AuditEngine) -> None:
    """Version 1 queued (sequence, key) per chat and kept the first delivery's
    evidence in `_deliveries`: make the `FirstDelivery`s of version 2."""
    for chat in engine.chats.values():
        queue = deque()
        for seq, key in chat.deliveries:
            state = engine._deliveries[key]
            cited = state if type(state) is Evidence else state.evidence[0]
            first = FirstDelivery(seq, key, cited.topic, cited.partition, cited.offset, None, cited.payload_trace_id)
            if type(state) is Evidence:
                engine._deliveries[key] = first
            queue.append(first)
        chat.deliveries = queue
    # Version 2 keeps passed duplicates remembered, for later repeats. Where
    # version 1 already took the key again, the duplicate stays listed only
    # (`HistoryVerdicts._unreported_duplicates` reports it).
    for state in engine._closed_duplicates:
        engine._deliveries.setdefault((state.recipient_id, state.message_id), state)


def restore(blob: bytes, authority: Authority, config: EngineConfig = EngineConfig()) -> AuditEngine:
    if not blob or blob[0] not in (1, VERSION):
        raise SnapshotError(f"unknown snapshot version {blob[0] if blob else None!r}; expected {VERSION}")
    try:
        state = _Unpickler(io.BytesIO(zlib.decompress(blob[1:]))).load()
    except (zlib.error, pickle.UnpicklingError, EOFError, AttributeError, orjson.JSONDecodeError) as exc:
        raise SnapshotError(f"corrupt snapshot: {exc}") from None
    engine = AuditEngine(authority, config)
    for name in _FIELDS:
        if name in state:  # a field newer than the snapshot keeps the engine's default
            setattr(engine, name, state[name])
    if blob[0] == 1:
        _upgrade_v1_deliveries(engine)
    engine._offsets = {}
    for (topic, partition), offset in state["_offsets"].items():
        engine._offsets.setdefault(topic, {})[partition] = offset
    if authority.has_messages:
        for chat_id, chat in engine.chats.items():
            chat.items = authority.items_of(chat_id)
    return engine
