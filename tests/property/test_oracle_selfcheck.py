"""The oracle checked by hand on small histories, before it judges the auditor.

Each case is a history written out line by line, with the findings a reader of
the contract would list for it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given

from tests.property import oracle
from tests.property.histories import (
    ACKED, BASE_US, DELIVERED, PERSISTED, DumpFile, Event, History, Line, histories, write_history,
)

T = "messages.persisted"


def ev(etype, chat, seq, mid, *, topic=T, partition=0, offset, trace=None, created=BASE_US,
       delivered=None, recipient=None) -> Line:
    e = Event(etype, chat, seq, mid,
              created_at=created if etype != ACKED else None,
              delivered_at=(delivered if delivered is not None else created) if etype == DELIVERED else None,
              recipient_id=recipient if etype == DELIVERED else None)
    payload = json.dumps({"event_type": etype, "chat_id": chat, "sequence": seq, "message_id": mid})
    text = json.dumps({"topic": topic, "partition": partition, "offset": offset, "payload": payload})
    return Line(text, "good", event=e, trace_id=trace, coord=(topic, partition, offset))


def p(chat, seq, mid, offset, **kw) -> Line:
    return ev(PERSISTED, chat, seq, mid, offset=offset, **kw)


def bad(reason, offset=None, topic=T, partition=0, text="x") -> Line:
    coord = None if offset is None else (topic, partition, offset)
    return Line(text, "bad", reason=reason, coord=coord)


def hist(*files_lines, messages=None, counters=None, order=None) -> History:
    files = []
    for i, lines in enumerate(files_lines):
        kind = "plain" if lines and lines[0] == "plain" else "envelope"
        lines = lines[1:] if kind == "plain" else lines
        files.append(DumpFile(f"f{i}", kind, False, list(lines)))
    return History(files, order if order is not None else list(range(len(files))), messages, counters)


def keys(e):
    return sorted(f.key() for f in e.findings)


def run(h, paths=None):
    return oracle.run(h, paths or [f"/d/f{i}" for i in h.order])


def test_clean_history_has_no_findings():
    h = hist([p("c1", 1, "a", 0), p("c1", 2, "b", 1), ev(ACKED, "c1", 2, "b", offset=0, topic="acks")],
             messages={"c1": {1: "a", 2: "b"}}, counters={"c1": 2})
    e = run(h)
    assert e.findings == []
    assert e.events == {"total": 3, "by_type": {PERSISTED: 2, ACKED: 1}, "rejected": 0,
                        "rejected_by_reason": {}, "replayed_records": 0}
    assert e.metrics[("durability_ack_sent_total", frozenset({("persisted", "true")}))] == 2


def test_loss_and_authority_with_another_id():
    h = hist([p("c1", 1, "a", 0), p("c1", 2, "b", 1), p("c1", 3, "c", 2), ev(ACKED, "c1", 3, "c", offset=3)],
             messages={"c1": {1: "a", 3: "other"}}, counters={"c1": 3})
    e = run(h)
    assert keys(e) == sorted([
        ("message_loss", "c1", 2, ("b",), None, None, None),
        ("message_loss", "c1", 3, ("c",), None, None, None),
        ("duplicate_sequence", "c1", 3, ("c", "other"), None, None, None),
    ])
    loss3 = next(f for f in e.findings if f.kind == "message_loss" and f.sequence == 3)
    assert [r.coord[2] for r in loss3.expected_records] == [2, 3]
    assert e.counts["message_loss"] == 2 and e.counts["duplicate_sequence"] == 1


def test_gap_classifications():
    lines = [p("c1", 1, "a", 0), p("c1", 4, "d", 1)]
    both = run(hist(lines, messages={"c1": {1: "a", 2: "b", 4: "d"}}, counters={"c1": 4}))
    assert keys(both) == [
        ("sequence_gap", "c1", 2, ("b",), "publish_gap", None, None),
        ("sequence_gap", "c1", 3, (), "sequence_hole", None, None),
    ]
    none = run(hist(lines))
    assert keys(none) == [
        ("sequence_gap", "c1", 2, (), "unverified", None, None),
        ("sequence_gap", "c1", 3, (), "unverified", None, None),
    ]


def test_counter_missing_behind_ahead():
    lines = [p("c1", 1, "a", 0), ev(DELIVERED, "c1", 2, "b", offset=1, recipient="u")]
    behind = run(hist(lines, counters={"c1": 1}))
    # seq 2 seen (delivered) but never persisted: a gap, unverified (no messages table)
    assert keys(behind) == [
        ("counter_corruption", "c1", None, (), None, "behind", None),
        ("sequence_gap", "c1", 2, (), "unverified", None, None),
    ]
    f = next(f for f in behind.findings if f.kind == "counter_corruption")
    assert [r.coord[2] for r in f.expected_records] == [1]
    missing = run(hist(lines, counters={"other": 3}))
    assert ("counter_corruption", "c1", None, (), None, "missing", None) in keys(missing)
    assert all(f.chat_id != "other" for f in missing.findings)  # a counter without events is not a chat
    ahead = run(hist(lines, messages={"c1": {1: "a", 2: "b"}}, counters={"c1": 4}))
    assert keys(ahead) == [
        ("sequence_gap", "c1", 2, ("b",), "publish_gap", None, None),
        ("sequence_gap", "c1", 3, (), "sequence_hole", None, None),
        ("sequence_gap", "c1", 4, (), "sequence_hole", None, None),
    ]


def test_out_of_order_and_redelivered():
    h = hist([p("c1", 1, "a", 0), p("c1", 3, "c", 1), p("c1", 2, "b", 2), p("c1", 1, "a", 3),
              p("c2", 5, "e", 0, partition=1)])
    e = run(h)
    assert [f.key() for f in e.findings if f.kind == "out_of_order"] == [
        ("out_of_order", "c1", 2, ("b",), None, None, None)]
    assert e.counts["redelivered"] == 1
    assert e.counts["out_of_order"] == 1


def test_offset_skip_rejected_advances_and_coordless_does_not():
    h = hist(
        [p("c1", 1, "a", 10), bad("invalid_json", offset=11), bad("invalid_envelope"), p("c1", 2, "b", 12)],
        [p("c1", 1, "a", 10), p("c1", 9, "z", 11), bad("invalid_envelope"), p("c1", 3, "c", 13)],
    )
    e = run(h)
    assert e.events["replayed_records"] == 2
    assert e.events["rejected_by_reason"] == {"invalid_json": 1, "invalid_envelope": 2}
    assert e.events["total"] == 3
    assert [r.sequence for r in e.accepted] == [1, 2, 3]


def test_plain_file_coordinates_count_blank_lines_and_twice_is_replayed():
    plain = ["plain", p("c1", 1, "a", 0), Line("", "blank"), p("c1", 2, "b", 0), bad("not_an_object")]
    h = hist(plain, order=[0, 0])
    e = run(h, ["/tmp/x/events.jsonl", "/tmp/x/events.jsonl"])
    assert [r.coord for r in e.accepted] == [("/tmp/x/events.jsonl", 0, 1), ("/tmp/x/events.jsonl", 0, 3)]
    assert e.rejected[0].coord == ("/tmp/x/events.jsonl", 0, 4)
    assert e.events["replayed_records"] == 3 and e.events["rejected"] == 1


def test_plain_file_lines_before_the_first_object_are_read_as_envelopes():
    pre = Line("not json", "bad", reason="invalid_envelope", coordless=True)
    h = hist(["plain", pre, p("c1", 1, "a", 0), bad("invalid_json")])
    e = run(h, ["/x/e.jsonl"])
    assert [(r.reason, r.coord, r.line) for r in e.rejected] == [
        ("invalid_envelope", None, 1), ("invalid_json", ("/x/e.jsonl", 0, 3), 3)]
    assert [r.coord for r in e.accepted] == [("/x/e.jsonl", 0, 2)]


def test_counter_evidence_only_when_an_event_is_above_the_counter():
    lines = [p("c1", 1, "a", 0), p("c1", 3, "c", 1)]
    above = run(hist(lines, messages={"c1": {1: "a", 3: "c", 4: "d"}}, counters={"c1": 2}))
    f = next(f for f in above.findings if f.kind == "counter_corruption")
    assert f.reason == "behind" and [r.coord[2] for r in f.expected_records] == [1]
    only_item = run(hist(lines, messages={"c1": {1: "a", 3: "c", 4: "d"}}, counters={"c1": 3}))
    f = next(f for f in only_item.findings if f.kind == "counter_corruption")
    assert f.reason == "behind" and f.expected_records == []


def test_clock_skew_and_duplicate_delivery():
    d = DELIVERED
    h = hist([
        p("c1", 1, "a", 0),
        ev(d, "c1", 1, "a", offset=1, recipient="u1", created=BASE_US, delivered=BASE_US - 1),
        ev(d, "c1", 1, "a", offset=2, recipient="u1", created=BASE_US, delivered=BASE_US),
        ev(d, "c1", 1, "a", offset=3, recipient="u1", created=BASE_US, delivered=BASE_US + 5),
        ev(d, "c1", 1, "a", offset=4, recipient="u2", created=BASE_US, delivered=BASE_US + 5),
    ])
    e = run(h)
    assert keys(e) == [
        ("clock_skew", "c1", 1, ("a",), None, None, None),
        ("duplicate_delivery", "c1", 1, ("a",), None, None, "u1"),
    ]
    assert e.counts["duplicate_delivery"] == 2
    assert e.metrics[("fanout_delivery_total", frozenset({("status", "delivered")}))] == 2
    assert e.metrics[("fanout_delivery_total", frozenset({("status", "duplicate")}))] == 2
    assert e.metrics[("fanout_delivery_latency_seconds_count", frozenset())] == 3


def test_duplicate_sequence_reference_without_table_is_first_seen():
    h = hist([p("c1", 1, "a", 0), ev(ACKED, "c1", 1, "b", offset=1), ev(ACKED, "c1", 1, "a", offset=2),
              ev(DELIVERED, "c1", 1, "c", offset=3, recipient="u")])
    e = run(h)
    f = next(f for f in e.findings if f.kind == "duplicate_sequence")
    assert f.message_ids == ("a", "b", "c")
    assert [r.coord[2] for r in f.expected_records] == [1, 3]
    assert e.counts["duplicate_sequence"] == 2


def test_rejected_records_are_never_seen():
    h = hist([p("c1", 1, "a", 0), bad("invalid_field", offset=1), bad("unknown_event_type", offset=2)],
             messages={"c1": {1: "a"}}, counters={"c1": 1})
    assert run(h).findings == []


@given(histories())
def test_generated_histories_are_self_consistent(h):
    """Cheap invariants of the oracle over generated histories (no auditor)."""
    with tempfile.TemporaryDirectory() as d:
        lay = write_history(h, Path(d))
        e = oracle.run(h, lay.dump_paths)
    assert sum(e.events["by_type"].values()) == e.events["total"]
    assert sum(e.events["rejected_by_reason"].values()) == e.events["rejected"]
    n_lines = sum(1 for i in h.order for ln in h.files[i].lines if ln.status != "blank")
    assert e.events["total"] + e.events["rejected"] + e.events["replayed_records"] == n_lines
    for kind in ("message_loss", "counter_corruption", "sequence_gap", "out_of_order", "clock_skew"):
        assert e.counts[kind] == sum(1 for f in e.findings if f.kind == kind)
    assert GHOST not in {f.chat_id for f in e.findings}
    coords = [r.coord for r in e.accepted]
    assert len(coords) == len(set(coords))


GHOST = "ghost"
