"""Writes the example shipped with the repo (examples/dump.kcat.jsonl.gz and
examples/export/): a seeded workload of 40 chats with a few of every fault.

    .venv/bin/python examples/make_example.py
"""

from pathlib import Path

from auditor.workload import Workload, WorkloadSpec, write_export, write_kcat_dump

HERE = Path(__file__).parent
SPEC = WorkloadSpec(chats=40, messages=3_000, partitions=4, recipients_per_message=2, ack_ratio=0.9,
                    seed=2026, loss=0.002, duplicate_sequence=0.001, gap=0.002, out_of_order=0.002,
                    clock_skew=0.002, duplicate_delivery=0.002, counter_behind=0.05,
                    counter_missing=0.03, producer_retry=0.003, bad_record=0.002)

if __name__ == "__main__":
    workload = Workload(SPEC)
    n = write_kcat_dump(workload.records(), HERE / "dump.kcat.jsonl.gz")
    messages, counters = workload.truth()
    write_export(messages, counters, HERE / "export" / "messages", HERE / "export" / "chat_counters")
    print(f"{n} records; expected findings: {workload.expected}")
