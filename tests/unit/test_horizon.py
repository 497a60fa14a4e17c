"""The retention horizon (auditor.horizon) and what closing does to the engine."""

from auditor.engine import AuditEngine
from auditor.horizon import Grace, due

from tests.unit.history import History, acked, authority, delivered, items, of_kind, persisted

MINUTE = Grace(seconds=60, records=3)


def engine_with(*events, auth=None) -> tuple[AuditEngine, History]:
    h = History().extend(*events)
    engine = AuditEngine(auth if auth is not None else authority({"c": items("c", *range(1, 11))}, {"c": 10}))
    engine.process(h.records)
    return engine, h


def test_a_chat_closes_only_when_both_time_and_records_have_passed():
    engine, h = engine_with(persisted("c", 1), persisted("c", 2), persisted("c", 4))
    assert due(engine, 0.0, MINUTE) == {}  # sets the mark: hi 4 at t=0, position 3
    assert engine.chats["c"].mark == (4, 0.0, 3)
    engine.process(h.extend(persisted("c", 5), persisted("c", 6), persisted("c", 7)).records[3:])
    assert due(engine, 59.9, MINUTE) == {}  # records passed, time not
    assert due(engine, 60.0, MINUTE) == {"c": 4}  # both
    assert engine.chats["c"].mark == (7, 60.0, 6)  # re-armed at the hi now


def test_records_alone_do_not_close_a_quiet_partition():
    engine, _ = engine_with(persisted("c", 1), persisted("c", 3))
    due(engine, 0.0, MINUTE)
    assert due(engine, 3600.0, MINUTE) == {}  # an hour, but no record read since


def test_a_late_arrival_inside_the_grace_fills_its_gap_and_counts_as_out_of_order():
    engine, h = engine_with(persisted("c", 1), persisted("c", 3), persisted("c", 4))
    due(engine, 0.0, MINUTE)
    late, _ = engine.process(h.extend(persisted("c", 2), persisted("c", 5), persisted("c", 6)).records[3:])
    assert [(f.kind, f.sequence) for f in late] == [("out_of_order", 2)]
    through = due(engine, 60.0, MINUTE)
    assert of_kind(engine.close(through), "sequence_gap") == []
    assert engine.tallies.counts["sequence_gap"] == 0


def test_a_gap_past_the_grace_is_declared_at_close_with_its_classification():
    auth = authority({"c": items("c", 1, 2, 3, 4, 5, 6)}, {"c": 6})
    engine, h = engine_with(persisted("c", 1), persisted("c", 3), persisted("c", 4), auth=auth)
    due(engine, 0.0, MINUTE)
    engine.process(h.extend(persisted("c", 5), persisted("c", 6), acked("c", 6)).records[3:])
    closed = engine.close(due(engine, 61.0, MINUTE))
    assert [(f.kind, f.sequence, f.classification) for f in closed] == [("sequence_gap", 2, "publish_gap")]
    assert engine.chats["c"].closed_through == 4
    assert engine.chats["c"].persisted.run_count == 1  # [5, 6]: the closed runs are forgotten


def test_an_arrival_after_the_close_is_audited_as_new():
    engine, h = engine_with(persisted("c", 1), persisted("c", 2), persisted("c", 3), persisted("c", 4))
    due(engine, 0.0, MINUTE)
    engine.process(h.extend(persisted("c", 5), persisted("c", 6), persisted("c", 7)).records[4:])
    engine.close(due(engine, 60.0, MINUTE))
    out, _ = engine.process(h.extend(persisted("c", 2)).records[7:])  # a producer retry, too late
    assert [(f.kind, f.sequence) for f in out] == [("out_of_order", 2)]
    assert engine.tallies.counts["redelivered"] == 0


def test_duplicate_deliveries_the_window_forgot_are_reported_at_the_next_close():
    from auditor.engine import EngineConfig

    h = History().extend(delivered("c", 1), delivered("c", 1), *(delivered("c", s) for s in range(2, 6)))
    engine = AuditEngine(authority(), EngineConfig(delivery_window=2))
    engine.process(h.records)
    assert engine._closed_duplicates  # the window passed seq 1: final, waiting for a report
    assert ("r1", "c-1") in engine._deliveries  # still remembered: a later repeat would join it
    found = engine.close({})
    assert [(f.kind, f.sequence) for f in found] == [("duplicate_delivery", 1)]
    assert ("r1", "c-1") not in engine._deliveries  # reported, so forgotten
    assert of_kind(engine.finish(), "duplicate_delivery") == []


def test_counter_corruption_is_reported_once_per_chat():
    auth = authority({"c": items("c", 1, 2, 3), "d": items("d", 1)}, {"c": 2})
    engine, _ = engine_with(persisted("c", 1), persisted("c", 2), persisted("c", 3), persisted("d", 1), auth=auth)
    found = engine.check_counters(["c", "d"])
    assert sorted((f.chat_id, f.reason) for f in found) == [("c", "behind"), ("d", "missing")]
    assert engine.check_counters(["c", "d"]) == []
    assert of_kind(engine.finish(), "counter_corruption") == []
    assert engine.tallies.counts["counter_corruption"] == 2
    assert engine.tallies.counter_by_reason == {"missing": 1, "behind": 1}


def test_closing_under_a_partial_policy_can_forget_unverified_sequences_unread():
    class Unread(type(authority())):
        complete = False  # nothing read: every sequence is audited with its first id

        def items_of(self, chat_id):
            return {}

    auth = Unread({"c": items("c", 1, 2, 3)}, {"c": 3})
    engine, _ = engine_with(persisted("c", 1), acked("c", 1), persisted("c", 3), auth=auth)
    through = {"c": 3}
    assert sorted(engine.closing_keys(through)) == [("c", 1), ("c", 2), ("c", 3)]
    assert engine.closing_keys(through, unverified=False) == [("c", 2)]  # the gap only
    engine.close(through)
    assert engine.chats["c"].first_ids == {} and engine.chats["c"].first_claims == {}
    assert engine.tallies.ack_persisted == {"true": 0, "false": 0}  # no verdict without the item


def test_grace_must_not_be_negative():
    import pytest

    with pytest.raises(ValueError):
        Grace(seconds=-1)


def test_a_healthy_counter_at_close_lets_the_chat_drop_its_evidence():
    auth = authority({"c": items("c", 1, 2, 3, 4)}, {"c": 1})
    engine, h = engine_with(persisted("c", 1), persisted("c", 2), auth=auth)
    assert engine.chats["c"].hi_evidence is not None  # 2 is above the counter read at first sight
    auth._counters["c"] = 3  # read afresh at close (live): healthy now
    assert engine.check_counters(["c"]) == []
    assert engine.chats["c"].hi_evidence is None and engine.chats["c"].counter == 3
    engine.process(h.extend(persisted("c", 3), persisted("c", 4)).records[2:])
    [found] = engine.check_counters(["c"])
    assert found.reason == "behind" and [r.offset for r in found.evidence] == [3]  # the record of seq 4


def test_a_quiet_chat_is_retired_and_its_next_event_goes_on_where_it_stopped():
    auth = authority({"c": items("c", *range(1, 9))}, {"c": 8})
    engine, h = engine_with(*(persisted("c", s) for s in (1, 2, 3)), auth=auth)
    engine.close({"c": 3})
    assert engine.retire() == ["c"] and "c" not in engine.chats and engine.chat_ids() == {"c"}
    engine.process(h.extend(persisted("c", 5), persisted("c", 6)).records[3:])  # revived; 4 never comes
    assert engine.chats["c"].closed_through == 3
    found = engine.close({"c": 6})
    assert [(f.kind, f.sequence) for f in found] == [("sequence_gap", 4)]  # not 1-4, not nothing
    assert engine.retire() == ["c"]
    later = engine.finish()
    assert [(f.kind, f.sequence) for f in later] == [("sequence_gap", 7), ("sequence_gap", 8)]  # items past hi


def test_a_chat_with_anything_open_is_not_retired():
    engine, h = engine_with(persisted("c", 1), persisted("c", 2), delivered("c", 2))
    engine.close({"c": 1})
    assert engine.retire() == [] and "c" in engine.chats  # 2 is still open


def test_a_late_event_below_the_horizon_is_closed_by_the_next_tick_without_a_higher_sequence():
    grace = Grace(seconds=60, records=0)
    engine, h = engine_with(persisted("c", 1), persisted("c", 2), persisted("c", 3))
    due(engine, 0.0, grace)
    engine.close(due(engine, 60.0, grace))
    assert engine.retire() == ["c"]
    # A second id at closed sequence 2, after the close: an anomaly below the horizon.
    engine.process(h.extend(persisted("c", 2, "other"), acked("c", 2, "other")).records[3:])
    assert due(engine, 61.0, grace) == {} and engine.chats["c"].mark is not None  # armed though hi did not move
    through = due(engine, 121.0, grace)
    assert through == {"c": 3}
    found = engine.close(through)
    assert sorted(f.kind for f in found) == ["duplicate_sequence", "message_loss"]
    assert engine.retire() == ["c"]
