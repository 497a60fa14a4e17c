"""One test class per finding kind: what it is, and what it is not."""

from auditor.findings import (
    CLOCK_SKEW, COUNTER_CORRUPTION, DUPLICATE_DELIVERY, DUPLICATE_SEQUENCE, MESSAGE_LOSS,
    OUT_OF_ORDER, SEQUENCE_GAP,
)
from auditor.engine import EngineConfig

from .history import TRACE, History, acked, authority, delivered, items, of_kind, persisted, run

CHAT = "c1"


def clean(n: int) -> History:
    return History().extend(*(persisted(CHAT, s) for s in range(1, n + 1)))


class TestMessageLoss:
    def test_ack_for_a_message_the_authority_lacks_is_loss(self):
        h = clean(3).extend(acked(CHAT, 4))
        engine, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2, 3)}, {CHAT: 4}))
        [loss] = of_kind(findings, MESSAGE_LOSS)
        assert (loss.chat_id, loss.sequence, loss.message_ids) == (CHAT, 4, ("c1-4",))
        assert engine.tallies.ack_persisted == {"true": 3, "false": 1}

    def test_persisted_with_another_id_than_the_item_is_loss_of_that_id(self):
        h = clean(2).extend(persisted(CHAT, 3, "other"))
        _, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2, 3)}, {CHAT: 3}))
        assert [f.message_ids for f in of_kind(findings, MESSAGE_LOSS)] == [("other",)]

    def test_one_finding_per_distinct_triple_however_many_claims(self):
        h = History().extend(persisted(CHAT, 1), acked(CHAT, 1), persisted(CHAT, 1), acked(CHAT, 1))
        engine, findings, _ = run(h, authority({}, {CHAT: 1}))
        [loss] = of_kind(findings, MESSAGE_LOSS)
        assert len(loss.evidence) == 4
        assert engine.tallies.counts[MESSAGE_LOSS] == 1
        assert engine.tallies.ack_persisted == {"true": 0, "false": 1}

    def test_a_delivery_claims_nothing(self):
        h = clean(1).extend(delivered(CHAT, 1, "ghost"))
        _, findings, _ = run(h, authority({CHAT: items(CHAT, 1)}, {CHAT: 1}))
        assert of_kind(findings, MESSAGE_LOSS) == []

    def test_lag_is_not_loss_an_item_written_later_than_the_event_still_counts(self):
        # The snapshot is taken after the dump: an item present there is no loss,
        # whenever it was written.
        h = clean(3)
        engine, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2, 3)}, {CHAT: 3}))
        assert findings == []
        assert engine.tallies.ack_persisted == {"true": 3, "false": 0}

    def test_without_messages_table_loss_is_undecided(self):
        h = clean(1).extend(acked(CHAT, 2))
        engine, findings, _ = run(h, authority(None, {CHAT: 2}))
        assert of_kind(findings, MESSAGE_LOSS) == []
        assert engine.tallies.ack_persisted == {"true": 0, "false": 0}


class TestDuplicateSequence:
    def test_two_ids_at_one_sequence(self):
        h = clean(2).extend(persisted(CHAT, 2, "intruder"))
        engine, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2)}, {CHAT: 2}))
        [dup] = of_kind(findings, DUPLICATE_SEQUENCE)
        assert dup.message_ids == ("c1-2", "intruder")
        assert [r.offset for r in dup.evidence] == [2]
        assert engine.tallies.counts[DUPLICATE_SEQUENCE] == 1

    def test_counts_extra_distinct_ids_across_event_types_and_the_item(self):
        h = History().extend(persisted(CHAT, 1, "a"), acked(CHAT, 1, "b"), delivered(CHAT, 1, "c"))
        engine, findings, _ = run(h, authority({CHAT: {1: "d"}}, {CHAT: 1}))
        [dup] = of_kind(findings, DUPLICATE_SEQUENCE)
        assert dup.message_ids == ("a", "b", "c", "d")
        assert engine.tallies.counts[DUPLICATE_SEQUENCE] == 3

    def test_without_authority_the_events_alone_decide(self):
        h = History().extend(persisted(CHAT, 1, "a"), persisted(CHAT, 1, "b"), persisted(CHAT, 1, "a"))
        engine, findings, _ = run(h)
        [dup] = of_kind(findings, DUPLICATE_SEQUENCE)
        assert dup.message_ids == ("a", "b")
        assert engine.tallies.counts[DUPLICATE_SEQUENCE] == 1

    def test_a_producer_retry_is_not_a_duplicate_but_redelivered(self):
        h = clean(3).extend(persisted(CHAT, 2))
        engine, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2, 3)}, {CHAT: 3}))
        assert findings == []
        assert engine.tallies.counts["redelivered"] == 1
        assert engine.tallies.events_by_type["message_persisted"] == 4

    def test_a_replayed_offset_is_skipped_before_it_is_seen(self):
        h = clean(3)
        h.add(persisted(CHAT, 2, "would-be-duplicate"), offset=1)
        engine, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2, 3)}, {CHAT: 3}))
        assert findings == []
        assert engine.tallies.replayed_records == 1
        assert engine.tallies.events_total == 3


class TestCounterCorruption:
    def test_missing_counter(self):
        _, findings, _ = run(clean(2), authority({CHAT: items(CHAT, 1, 2)}, {}))
        [c] = of_kind(findings, COUNTER_CORRUPTION)
        assert (c.reason, c.sequence, [r.offset for r in c.evidence]) == ("missing", None, [1])

    def test_counter_behind_the_highest_sequence_seen(self):
        engine, findings, _ = run(clean(5), authority({CHAT: items(CHAT, 1, 2, 3, 4, 5)}, {CHAT: 3}))
        [c] = of_kind(findings, COUNTER_CORRUPTION)
        assert c.reason == "behind"
        assert [r.offset for r in c.evidence] == [4]  # the record that carried sequence 5
        assert engine.tallies.counter_by_reason == {"missing": 0, "behind": 1}

    def test_counter_ahead_is_lag_and_raises_hi(self):
        _, findings, _ = run(clean(2), authority({CHAT: items(CHAT, 1, 2)}, {CHAT: 4}))
        assert of_kind(findings, COUNTER_CORRUPTION) == []
        assert [(f.sequence, f.classification) for f in of_kind(findings, SEQUENCE_GAP)] == [
            (3, "sequence_hole"), (4, "sequence_hole")]

    def test_a_chat_known_only_to_the_authority_is_checked_too(self):
        _, findings, _ = run(History(), authority({"quiet": {1: "q1"}}, {}))
        assert [(f.kind, f.chat_id) for f in findings] == [
            (COUNTER_CORRUPTION, "quiet"), (SEQUENCE_GAP, "quiet")]

    def test_without_counters_table_undecided_and_hi_not_raised(self):
        _, findings, _ = run(clean(2), authority({CHAT: items(CHAT, 1, 2)}, None))
        assert findings == []


class TestSequenceGap:
    def test_classifications(self):
        h = History().extend(persisted(CHAT, 1), persisted(CHAT, 4))
        _, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2, 4)}, {CHAT: 4}))
        gaps = of_kind(findings, SEQUENCE_GAP)
        assert [(f.sequence, f.classification, f.message_ids) for f in gaps] == [
            (2, "publish_gap", ("c1-2",)), (3, "sequence_hole", ())]

    def test_unverified_without_messages_table(self):
        h = History().extend(persisted(CHAT, 1), persisted(CHAT, 3))
        engine, findings, _ = run(h)
        assert [(f.sequence, f.classification) for f in of_kind(findings, SEQUENCE_GAP)] == [
            (2, "unverified")]
        assert engine.tallies.gaps_by_classification["unverified"] == 1

    def test_an_ack_alone_does_not_fill_a_gap(self):
        h = History().extend(persisted(CHAT, 1), acked(CHAT, 2), persisted(CHAT, 3))
        _, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2, 3)}, {CHAT: 3}))
        assert [(f.sequence, f.classification) for f in of_kind(findings, SEQUENCE_GAP)] == [
            (2, "publish_gap")]

    def test_a_late_arrival_fills_the_gap_and_is_out_of_order(self):
        h = History().extend(persisted(CHAT, 1), persisted(CHAT, 3), persisted(CHAT, 2))
        _, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2, 3)}, {CHAT: 3}))
        assert [(f.kind, f.sequence) for f in findings] == [(OUT_OF_ORDER, 2)]

    def test_authority_items_below_the_events_widen_the_range(self):
        h = History().extend(persisted(CHAT, 3))
        _, findings, _ = run(h, authority({CHAT: items(CHAT, 1, 2, 3)}, {CHAT: 3}))
        assert [f.sequence for f in of_kind(findings, SEQUENCE_GAP)] == [1, 2]


class TestOutOfOrder:
    def test_lower_than_the_highest_persisted_so_far(self):
        h = History().extend(persisted(CHAT, 2), persisted(CHAT, 1))
        engine, findings, _ = run(h)
        [ooo] = of_kind(findings, OUT_OF_ORDER)
        assert (ooo.sequence, [r.offset for r in ooo.evidence]) == (1, [1])
        assert engine.tallies.counts[OUT_OF_ORDER] == 1

    def test_a_redelivery_of_an_old_sequence_is_not_out_of_order(self):
        h = clean(3).extend(persisted(CHAT, 1))
        engine, findings, _ = run(h)
        assert findings == []
        assert engine.tallies.counts["redelivered"] == 1

    def test_only_persisted_records_set_the_order(self):
        h = History().extend(acked(CHAT, 5), delivered(CHAT, 5), persisted(CHAT, 1))
        _, findings, _ = run(h)
        assert of_kind(findings, OUT_OF_ORDER) == []

    def test_a_new_id_at_an_old_sequence_is_out_of_order_and_duplicate(self):
        h = clean(3).extend(persisted(CHAT, 1, "other"))
        _, findings, _ = run(h)
        assert sorted(f.kind for f in findings) == [DUPLICATE_SEQUENCE, OUT_OF_ORDER]


class TestClockSkew:
    def test_delivered_before_created(self):
        h = clean(1).extend(delivered(CHAT, 1, delivered_at="2026-01-31T09:59:59Z"))
        engine, findings, _ = run(h)
        [skew] = of_kind(findings, CLOCK_SKEW)
        assert skew.sequence == 1
        assert sum(engine.tallies.latency_bucket_counts) == 0  # excluded from latency

    def test_equal_timestamps_and_offsets_are_compared_as_instants(self):
        h = clean(1).extend(
            delivered(CHAT, 1, recipient="a", delivered_at="2026-01-31T10:00:00Z"),
            delivered(CHAT, 1, recipient="b", delivered_at="2026-01-31T11:00:00.2+01:00"))
        engine, findings, _ = run(h)
        assert findings == []
        assert engine.tallies.latency_bucket_counts[:3] == [1, 1, 0]  # 0 s <= 0.1, 0.2 s <= 0.25
        assert abs(engine.tallies.latency_sum - 0.2) < 1e-9


class TestDuplicateDelivery:
    def test_extra_deliveries_are_counted(self):
        h = clean(1).extend(*(delivered(CHAT, 1) for _ in range(3)))
        engine, findings, _ = run(h)
        [dup] = of_kind(findings, DUPLICATE_DELIVERY)
        assert (dup.recipient_id, dup.message_ids, len(dup.evidence)) == ("r1", ("c1-1",), 3)
        assert engine.tallies.counts[DUPLICATE_DELIVERY] == 2
        assert engine.tallies.delivery_by_status == {"delivered": 1, "duplicate": 2}

    def test_one_message_to_two_recipients_is_not_a_duplicate(self):
        h = clean(1).extend(delivered(CHAT, 1, recipient="a"), delivered(CHAT, 1, recipient="b"))
        _, findings, _ = run(h)
        assert findings == []

    def test_a_delivery_is_forgotten_beyond_the_window_unless_already_duplicate(self):
        h = clean(1).extend(delivered(CHAT, 1, recipient="a"), delivered(CHAT, 1, recipient="b"),
                            delivered(CHAT, 1, recipient="b"))
        h.extend(*(persisted(CHAT, s) for s in range(2, 10)), delivered(CHAT, 9, recipient="z"))
        h.extend(delivered(CHAT, 1, recipient="a"))  # after the window: not remembered
        engine, findings, _ = run(h, config=EngineConfig(delivery_window=4))
        [dup] = of_kind(findings, DUPLICATE_DELIVERY)
        assert dup.recipient_id == "b"

    def test_a_repeat_after_the_window_joins_a_duplicate_already_found(self):
        h = clean(1).extend(delivered(CHAT, 1, recipient="b"), delivered(CHAT, 1, recipient="b"))
        h.extend(*(persisted(CHAT, s) for s in range(2, 10)), delivered(CHAT, 9, recipient="z"))
        h.extend(delivered(CHAT, 1, recipient="b"))  # after the window, but b's repeat is a finding
        engine, findings, _ = run(h, config=EngineConfig(delivery_window=4))
        [dup] = of_kind(findings, DUPLICATE_DELIVERY)  # one finding per (recipient, message)
        assert (dup.recipient_id, len(dup.evidence)) == ("b", 3)
        assert engine.tallies.counts[DUPLICATE_DELIVERY] == 2
        assert engine.tallies.delivery_by_status == {"delivered": 2, "duplicate": 2}


class TestRejectionsAndEvidence:
    def test_rejected_records_never_count_as_seen(self):
        h = clean(1)
        h.add(b'{"event_type":"message_persisted","chat_id":"c1","sequence":9}')
        h.add(b"not json")
        engine, findings, rejections = run(h, authority({CHAT: items(CHAT, 1)}, {CHAT: 1}))
        assert findings == []
        assert [r.reason for r in rejections] == ["missing_field", "invalid_json"]
        assert engine.tallies.rejected_by_reason == {"missing_field": 1, "invalid_json": 1}

    def test_a_rejected_record_still_advances_its_partition(self):
        h = History()
        h.add(b"[]", offset=5)
        h.add(persisted(CHAT, 1), offset=5)
        engine, _, _ = run(h)
        assert engine.tallies.replayed_records == 1 and engine.tallies.events_total == 0

    def test_trace_id_from_traceparent_else_payload(self):
        h = History()
        h.add(persisted(CHAT, 2), traceparent=f"00-{TRACE}-00f067aa0ba902b7-01")
        h.add(persisted(CHAT, 1, trace_id="from-payload"), traceparent="garbage")
        _, findings, _ = run(h)
        [ooo] = of_kind(findings, OUT_OF_ORDER)
        assert ooo.to_dict()["trace_ids"] == ["from-payload"]
        h2 = History()
        h2.add(persisted(CHAT, 2))
        h2.add(persisted(CHAT, 1, trace_id="ignored"), traceparent=f"00-{TRACE}-00f067aa0ba902b7-01")
        _, findings, _ = run(h2)
        assert of_kind(findings, OUT_OF_ORDER)[0].to_dict()["trace_ids"] == [TRACE]

    def test_evidence_is_capped(self):
        h = History().extend(*(acked(CHAT, 1, "x") for _ in range(20)))
        _, findings, _ = run(h, authority({}, {CHAT: 1}))
        [loss] = of_kind(findings, MESSAGE_LOSS)
        assert len(loss.evidence) == 8


def test_metrics_of_fresh_tallies_are_all_zero():
    from prometheus_client import generate_latest

    from auditor.metrics import audit_registry
    from auditor.state import Tallies

    text = generate_latest(audit_registry(Tallies)).decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line and not line.startswith("#") and "_created" not in line]
    assert values and all(v == 0 for v in values)
