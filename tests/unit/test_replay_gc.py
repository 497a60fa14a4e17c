"""Replay freezes what outlives each batch (auditor.replay._batch_gc): sound
only because a replay leaves no cyclic garbage for the collector to find."""

import gc

from auditor.authority import InMemoryAuthority
from auditor.engine import EngineConfig
from auditor.replay import replay
from auditor.workload import Workload, WorkloadSpec, write_kcat_dump


def test_a_replay_creates_no_cyclic_garbage(tmp_path):
    # Every finding path and rejected records; a short delivery window so that
    # deliveries are also forgotten (and closed duplicates kept) on the way.
    spec = WorkloadSpec(chats=40, messages=600, partitions=4, recipients_per_message=2, seed=3,
                        loss=0.01, duplicate_sequence=0.01, gap=0.01, out_of_order=0.01,
                        clock_skew=0.01, duplicate_delivery=0.01, counter_behind=0.05,
                        counter_missing=0.05, producer_retry=0.01, bad_record=0.01)
    workload = Workload(spec)
    dump = tmp_path / "dump.jsonl"
    write_kcat_dump(workload.records(), dump)
    authority = InMemoryAuthority(*workload.truth())
    gc.collect()
    gc.disable()
    try:
        result = replay([dump], authority, EngineConfig(delivery_window=8))
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert result.findings and result.tallies.rejected
