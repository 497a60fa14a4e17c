"""A snapshot taken anywhere and restored resumes the audit exactly."""

import pytest
from hypothesis import given, settings, strategies as st

from auditor.authority import InMemoryAuthority
from auditor.engine import AuditEngine
from auditor.snapshot import SnapshotError, restore, snapshot
from auditor.workload import Workload, WorkloadSpec

from tests.unit.history import History

FAULTS = dict(loss=0.03, duplicate_sequence=0.03, gap=0.03, out_of_order=0.03, clock_skew=0.03,
              duplicate_delivery=0.03, counter_behind=0.2, counter_missing=0.2, producer_retry=0.03,
              bad_record=0.03)


def case(seed: int, tables: str):
    w = Workload(WorkloadSpec(chats=6, messages=150, partitions=2, seed=seed, **FAULTS))
    records = [History().add(r.payload, topic=r.topic, partition=r.partition, offset=r.offset)
               for r in w.records()]
    messages, counters = w.truth()
    return records, (messages if "m" in tables else None), (counters if "c" in tables else None)


def run(engine, batches):
    findings = []
    for batch in batches:
        findings += engine.process(batch)[0]
    return findings


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), tables=st.sampled_from(["mc", "m", "c", ""]),
       cuts=st.lists(st.integers(0, 10_000), min_size=1, max_size=4), rewind=st.integers(0, 20))
def test_restore_anywhere_resumes_exactly(seed, tables, cuts, rewind):
    records, messages, counters = case(seed, tables)
    points = sorted({c % (len(records) + 1) for c in cuts} | {0, len(records)})
    # Each batch re-reads the last `rewind` records before it, as a consumer that
    # resumed from older committed offsets would: they must be skipped.
    batches = [records[max(0, a - rewind):b] for a, b in zip(points, points[1:])]

    straight = AuditEngine(InMemoryAuthority(messages, counters))
    expected = run(straight, batches) + straight.finish()

    engine = AuditEngine(InMemoryAuthority(messages, counters))
    got = []
    for batch in batches:  # a crash after every batch: only the snapshot survives
        got += engine.process(batch)[0]
        engine = restore(snapshot(engine), InMemoryAuthority(messages, counters))
    got += engine.finish()
    assert [f.to_dict() for f in got] == [f.to_dict() for f in expected]
    assert engine.tallies == straight.tallies


def test_bad_snapshots_are_refused():
    auth = InMemoryAuthority({}, {})
    with pytest.raises(SnapshotError, match="version"):
        restore(b"\x09whatever", auth)
    with pytest.raises(SnapshotError, match="corrupt"):
        restore(b"\x01not zlib", auth)
