"""Snapshots: what they keep of evidence, and reading the version-1 format."""

import io
import pickle
import zlib

import orjson

from auditor import snapshot as snap
from auditor.engine import AuditEngine, EngineConfig
from auditor.events import trace_id_of
from auditor.records import Evidence, Record
from auditor.state import FirstDelivery

from tests.unit.history import TRACE, History, delivered, items, authority, persisted

HEADER_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{HEADER_TRACE}-b7ad6b7169203331-01"


def history() -> History:
    h = History()
    h.add(persisted("c", 1))
    h.add(delivered("c", 1, recipient="r1"), traceparent=TRACEPARENT)
    h.add(delivered("c", 1, recipient="r2", trace_id=TRACE))  # no header: the payload names the trace
    h.add(delivered("c", 1, recipient="r1"))  # a duplicate: r1's first delivery becomes evidence
    return h


def engine_after(h: History) -> AuditEngine:
    engine = AuditEngine(authority({"c": items("c", 1)}, {"c": 1}))
    engine.process(h.records)
    return engine


def reports(engine: AuditEngine) -> list[dict]:
    return [f.to_dict() for f in engine.finish()]


def v1_snapshot(engine: AuditEngine) -> bytes:
    """The engine's state as version 1 wrote it: records with a trace-id payload,
    deliveries queued as (sequence, key)."""

    class V1Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if type(obj) in (Evidence, FirstDelivery):
                trace = trace_id_of(obj)
                payload = orjson.dumps({"trace_id": trace}).decode() if trace is not None else None
                return Record, (obj.topic, obj.partition, obj.offset, payload)
            return NotImplemented

    state = {name: getattr(engine, name) for name in snap._FIELDS}
    # Version 1 dropped a duplicate from `_deliveries` when the window passed it.
    state["_deliveries"] = {key: value for key, value in engine._deliveries.items()
                            if not any(value is closed for closed in engine._closed_duplicates)}
    state["_offsets"] = {(t, p): o for t, ps in engine._offsets.items() for p, o in ps.items()}
    queues = {chat_id: chat.deliveries for chat_id, chat in engine.chats.items()}
    try:
        for chat in engine.chats.values():
            chat.deliveries = [(d.seq, d.key) for d in chat.deliveries]
        out = io.BytesIO()
        V1Pickler(out, pickle.HIGHEST_PROTOCOL).dump(state)
    finally:
        for chat_id, queue in queues.items():
            engine.chats[chat_id].deliveries = queue
    return bytes([1]) + zlib.compress(out.getbuffer(), 1)


def test_a_restored_engine_reports_the_same_evidence_and_trace_ids():
    h = history()
    engine = engine_after(h)
    restored = snap.restore(snap.snapshot(engine), engine.authority)
    found = reports(restored)
    assert found == reports(engine_after(h))
    dup = next(f for f in found if f["kind"] == "duplicate_delivery")
    assert dup["trace_ids"] == [HEADER_TRACE] and [r["offset"] for r in dup["records"]] == [1, 3]


def test_snapshots_keep_trace_ids_not_traceparents():
    engine = engine_after(history())
    state = pickle.loads(zlib.decompress(snap.snapshot(engine)[1:]))
    first = state["_deliveries"][("r2", "c-1")]
    assert (first.traceparent, first.payload_trace_id) == (None, TRACE)
    dup = state["_deliveries"][("r1", "c-1")]
    assert [(e.traceparent, e.payload_trace_id) for e in dup.evidence] == [(None, HEADER_TRACE), (None, None)]


def test_a_version_1_snapshot_is_upgraded_and_goes_on_exactly():
    h = history()
    engine = engine_after(h)
    restored = snap.restore(v1_snapshot(engine), engine.authority)
    assert all(type(d) is FirstDelivery for d in restored.chats["c"].deliveries)
    more = h.extend(delivered("c", 1, recipient="r2"))  # repeats a delivery remembered in version 1
    restored.process(more.records[4:])
    expected = engine_after(more)
    assert reports(restored) == reports(expected)
    dup_r2 = next(f for f in reports(engine_after(more)) if f["kind"] == "duplicate_delivery"
                  and f["recipient_id"] == "r2")
    assert dup_r2["trace_ids"] == [TRACE] and [r["offset"] for r in dup_r2["records"]] == [2, 4]


def test_a_version_1_duplicate_the_window_passed_still_takes_later_repeats():
    h = History().extend(persisted("c", 1), delivered("c", 1), delivered("c", 1),
                         *(delivered("c", s, recipient="r9") for s in range(2, 6)))
    config = EngineConfig(delivery_window=2)
    engine = AuditEngine(authority({"c": items("c", 1)}, {"c": 5}), config)
    engine.process(h.records)
    assert engine._closed_duplicates  # the window passed seq 1's repeated delivery
    restored = snap.restore(v1_snapshot(engine), engine.authority, config)
    more = h.extend(delivered("c", 1))
    restored.process(more.records[-1:])
    expected = AuditEngine(engine.authority, config)
    expected.process(more.records)
    assert reports(restored) == reports(expected)
    [dup] = [f for f in reports(expected) if f["kind"] == "duplicate_delivery"]
    assert [r["offset"] for r in dup["records"]] == [1, 2, 7]
