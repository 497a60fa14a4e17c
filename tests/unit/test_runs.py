from hypothesis import given, strategies as st

from auditor.runs import SequenceRuns


def test_in_order_traffic_is_one_run():
    runs = SequenceRuns()
    assert all(runs.add(s) for s in range(1, 1001))
    assert runs.run_count == 1 and (runs.min, runs.max) == (1, 1000)
    assert not runs.add(500)


def test_holes_are_runs_and_close_when_filled():
    runs = SequenceRuns()
    for s in (1, 2, 5, 6, 9):
        runs.add(s)
    assert list(runs.runs()) == [(1, 2), (5, 6), (9, 9)]
    assert list(runs.missing(1, 10)) == [3, 4, 7, 8, 10]
    runs.add(3), runs.add(4), runs.add(7), runs.add(8)
    assert list(runs.runs()) == [(1, 9)]


def test_empty():
    runs = SequenceRuns()
    assert not runs and runs.max == 0 and runs.min == 0 and 1 not in runs
    assert list(runs.missing(2, 4)) == [2, 3, 4]


@given(st.lists(st.integers(min_value=1, max_value=60), max_size=80))
def test_behaves_like_a_set(seqs):
    runs, model = SequenceRuns(), set()
    for s in seqs:
        assert runs.add(s) == (s not in model)
        model.add(s)
    assert all((s in runs) == (s in model) for s in range(0, 62))
    assert list(runs.missing(1, 61)) == [s for s in range(1, 62) if s not in model]
    pairs = list(runs.runs())
    assert all(a <= b for a, b in pairs)
    assert all(b1 + 1 < a2 for (_, b1), (a2, _) in zip(pairs, pairs[1:]))  # disjoint, not adjacent
    assert runs.max == max(model, default=0) and runs.min == min(model, default=0)


@given(st.lists(st.integers(min_value=1, max_value=60), max_size=80), st.integers(0, 62))
def test_discard_below_forgets_exactly_the_lower_members(seqs, floor):
    runs = SequenceRuns()
    for s in seqs:
        runs.add(s)
    runs.discard_below(floor)
    kept = {s for s in seqs if s >= floor}
    assert [s for s in range(0, 62) if s in runs] == sorted(kept)
    assert runs.max == max(kept, default=0) and runs.min == min(kept, default=0)
    for s in range(1, 70):  # still a working set afterwards
        assert runs.add(s) == (s not in kept)
        kept.add(s)
