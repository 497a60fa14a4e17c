"""Closing history early (the live consumer's retention horizon) reports exactly
what one `finish` at the end reports, as long as nothing arrives later for a
closed sequence (the grace period's job).

The test knows the future, so it closes each chat only through the sequence
below the lowest one any later record of that chat still carries.
"""

from hypothesis import given, settings, strategies as st

from auditor.authority import InMemoryAuthority
from auditor.engine import AuditEngine, EngineConfig
from auditor.events import decode_event, DECODE_ERRORS
from auditor.state import Tallies
from auditor.workload import Workload, WorkloadSpec

from tests.unit.history import History

FAULTS = dict(loss=0.03, duplicate_sequence=0.03, gap=0.03, out_of_order=0.03, clock_skew=0.03,
              duplicate_delivery=0.03, counter_behind=0.2, counter_missing=0.2, producer_retry=0.03,
              bad_record=0.03)


def case(seed: int, chats: int = 5, messages: int = 160, faults: dict = FAULTS):
    """(records as the consumer builds them, the workload's (messages, counters) tables)."""
    w = Workload(WorkloadSpec(chats=chats, messages=messages, partitions=2, seed=seed, **faults))
    records = [History().add(r.payload, topic=r.topic, partition=r.partition, offset=r.offset)
               for r in w.records()]
    return records, w.truth()


def safe_horizons(later) -> dict[str, int]:
    """chat -> the highest sequence no later record of the chat reaches down to."""
    lowest: dict[str, int] = {}
    for record in later:
        try:
            event = decode_event(record.payload)
        except DECODE_ERRORS:
            continue
        lowest[event.chat_id] = min(lowest.get(event.chat_id, event.sequence), event.sequence)
    return lowest


def finish_and_fresh_engine(records, truth, tables: str) -> tuple[list, Tallies, AuditEngine]:
    """The findings and tallies of one engine fed the whole history and finished,
    and a fresh engine over the same tables ("m": messages, "c": counters) to
    close as it goes."""
    messages, counters = truth
    authority = InMemoryAuthority(messages if "m" in tables else None, counters if "c" in tables else None)
    config = EngineConfig(delivery_window=10_000)  # the horizon, not the window, forgets here
    whole = AuditEngine(authority, config)
    expected = whole.process(records)[0] + whole.finish()
    return expected, whole.tallies, AuditEngine(authority, config)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), tables=st.sampled_from(["mc", "m", "c", ""]),
       cuts=st.lists(st.integers(0, 10_000), min_size=1, max_size=6))
def test_close_then_finish_equals_finish(seed, tables, cuts):
    records, truth = case(seed)
    points = sorted({c % (len(records) + 1) for c in cuts} | {0, len(records)})
    expected, expected_tallies, engine = finish_and_fresh_engine(records, truth, tables)
    got = []
    for a, b in zip(points, points[1:]):
        got += engine.process(records[a:b])[0]
        lowest_later = safe_horizons(records[b:])
        through = {chat: lowest_later.get(chat, 10**9) - 1 for chat in engine.chats}
        got += engine.close(through)
    got += engine.finish()

    assert sorted((f.to_dict() for f in got), key=str) == sorted((f.to_dict() for f in expected), key=str)
    assert engine.tallies == expected_tallies


def test_closing_forgets_the_closed_history():
    h = History().extend(*[{"event_type": "message_persisted", "chat_id": "c", "sequence": s,
                            "message_id": f"m{s}", "created_at": "2026-01-31T10:00:00Z", "sender_id": "u"}
                           for s in (1, 2, 4, 5, 7)])
    engine = AuditEngine(InMemoryAuthority({"c": {s: f"m{s}" for s in range(1, 8)}}, {"c": 7}))
    engine.process(h.records)
    assert engine.chats["c"].persisted.run_count == 3
    gaps = engine.close({"c": 5})
    assert [(f.kind, f.sequence) for f in gaps] == [("sequence_gap", 3)]
    assert engine.chats["c"].persisted.run_count == 1  # only [7, 7] is left
    assert [(f.kind, f.sequence) for f in engine.finish()] == [("sequence_gap", 6)]
