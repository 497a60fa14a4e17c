"""The live consumer's horizon loses nothing a whole-history `finish` reports,
as long as no event arrives later than the grace allows.

Hypothesis draws fault-laden histories and a tick pattern; the test measures
how late the history's latest arrival is (in records read since a higher
sequence of its chat was first seen) and gives `due` exactly one record more
than that as grace. Closing at every tick with that grace, then `finish`, must
report exactly what `finish` alone reports: marks set too early, a closed range
one too high, or a close that forgets an open anomaly would all show here.
"""

from hypothesis import given, settings, strategies as st

from auditor.events import DECODE_ERRORS, decode_event
from auditor.horizon import Grace, close, due

from tests.property.test_close_equals_finish import FAULTS, case as close_case, finish_and_fresh_engine

# Every fault but duplicate deliveries: the workload repeats a delivery up to
# 2 s later, which would make the grace the whole history (closing forgets a
# first delivery; tests/unit/test_horizon.py covers that case).
HORIZON_FAULTS = {**FAULTS, "duplicate_delivery": 0.0}


def case(seed: int):
    """Long enough (1,500 messages, ~6,000 records) that deliveries, up to
    300 ms late, stay within a fraction of the history; 40 chats of Zipf
    weights, so the rarest go quiet for longer than the grace: they are retired
    and revived (a few per history)."""
    return close_case(seed, chats=40, messages=1_500, faults=HORIZON_FAULTS)


def lateness(records) -> int:
    """Max over records of: records read since its chat's hi first reached its sequence."""
    firsts: dict[str, list[tuple[int, int]]] = {}  # chat -> [(hi, position where first seen)]
    worst = 0
    for position, record in enumerate(records):
        try:
            event = decode_event(record.payload)
        except DECODE_ERRORS:
            continue
        seen = firsts.setdefault(event.chat_id, [])
        reached = [at for hi, at in seen if hi >= event.sequence]
        if reached:
            worst = max(worst, position - min(reached))
        if not seen or event.sequence > seen[-1][0]:
            seen.append((event.sequence, position))
    return worst


def comparable(finding) -> dict:
    """The finding as a report shows it, except that a counter_corruption found
    at a close names the highest sequence seen *then* (detail, evidence): one
    per chat, with the same reason, is what must agree."""
    out = finding.to_dict()
    if out["kind"] == "counter_corruption":
        for field in ("detail", "records", "trace_ids"):
            del out[field]
    return out


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), tables=st.sampled_from(["mc", "m", "c", ""]),
       ticks=st.lists(st.integers(1, 400), min_size=1, max_size=30))
def test_closing_at_the_horizon_then_finish_equals_finish(seed, tables, ticks):
    records, truth = case(seed)
    grace = Grace(seconds=0, records=lateness(records) + 1)
    expected, expected_tallies, engine = finish_and_fresh_engine(records, truth, tables)
    got, start, closed, retired = [], 0, 0, 0
    for step in ticks * (len(records) // sum(ticks) + 1):
        if start >= len(records):
            break
        got += engine.process(records[start:start + step])[0]
        start += step
        through = due(engine, 0.0, grace)
        done = close(engine, through, engine.closing_keys(through))  # what the live consumer calls
        got += done.findings
        closed += done.sequences
        retired += len(done.retired)
    got += engine.finish()

    assert sorted(map(comparable, got), key=str) == sorted(map(comparable, expected), key=str)
    assert engine.tallies == expected_tallies
    if grace.records < len(records) // 2:  # almost always; a rare history needs more grace
        assert closed  # the horizon did move: not vacuous
