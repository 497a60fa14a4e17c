"""The retention horizon live: history past the grace is reported and forgotten
as the consumer runs, and the end result still equals a replay.

The workload is produced in chunks, each audited before the next is sent.
The grace in records is worked out from the history itself (how far behind
its chat's highest sequence any event can arrive, counted in the partition's
records), one more than needed, with no time grace: every close the consumer
makes is then safe, and any that loses or invents a finding shows up as a
difference from the replay.
"""

from __future__ import annotations

import asyncio
import dataclasses

import orjson
import pytest

from auditor.events import DECODE_ERRORS, decode_event
from auditor.horizon import Grace
from auditor.kafka import produce_workload
from auditor.live import LiveAuditor

from tests.integration.test_live_consumer import (
    PARTITIONS, assert_same_findings, assert_same_tallies, drained_tallies, dynamo_config, expected_result,
    live_config, make_case, read_topic, setup_services, unique_findings, wait_for,
)

pytestmark = pytest.mark.integration
CHUNKS = 16


def safe_grace(chunks: list[list]) -> int:
    """Records of a partition that can pass between the chunk where a chat's
    highest sequence first reached s and the end of the chunk of any event at s."""
    counts = [[0] * PARTITIONS for _ in chunks]
    for c, chunk in enumerate(chunks):
        for r in chunk:
            counts[c][r.partition] += 1
    reached: dict[str, list[tuple[int, int]]] = {}  # chat -> [(hi, chunk where first reached)]
    worst = 0
    for c, chunk in enumerate(chunks):
        for r in chunk:
            try:
                event = decode_event(r.payload)
            except DECODE_ERRORS:
                continue
            seen = reached.setdefault(event.chat_id, [])
            first = min((at for hi, at in seen if hi >= event.sequence), default=c)
            worst = max(worst, sum(counts[k][r.partition] for k in range(first, c + 1)))
            if not seen or event.sequence > seen[-1][0]:
                seen.append((event.sequence, c))
    return worst + 1


@pytest.mark.timeout(240)
def test_closing_past_the_grace_reports_as_it_goes_and_ends_equal_to_replay(tansu, dynamodb_local, aws_session,
                                                                             tmp_path):
    # Chats equally busy (zipf_s 0): in a rarely written chat, an out-of-order
    # event waits for the chat's next message, and the safe grace would be most
    # of the history.
    case = make_case(tmp_path, seed=31, messages=8000, zipf_s=0.0)
    result = expected_result(case)
    dynamo = dynamo_config(dynamodb_local)
    n = len(case.records)
    chunks = [case.records[i * n // CHUNKS:(i + 1) * n // CHUNKS] for i in range(CHUNKS)]
    grace = Grace(seconds=0, records=safe_grace(chunks))
    per_partition = n // PARTITIONS
    print(f"{n} records, grace {grace.records} records of ~{per_partition} per partition")
    assert grace.records < per_partition // 2, "the horizon must have room to move"

    async def scenario():
        await setup_services(case, tansu.bootstrap, dynamo, aws_session)
        config = dataclasses.replace(live_config(case, tansu.bootstrap, dynamo, f"{case.prefix}.group"),
                                     grace=grace, horizon_tick_seconds=0.05)
        auditor = LiveAuditor(config, session=aws_session)
        task = asyncio.create_task(auditor.run())
        try:
            sent = []
            for chunk in chunks:
                await produce_workload(tansu.bootstrap, chunk)
                sent += chunk
                await wait_for(lambda: auditor.positions() == case.ends(sent), 60, "chunk audited", [task])
                await asyncio.sleep(0.15)  # a few horizon ticks
            closed = auditor.metrics.closed._value.get()
            before_drain = len(await read_topic(tansu.bootstrap, config.findings_topic))
            engines = [auditor._owned[p].engine for p in auditor.assigned_partitions]
            open_runs = sum(chat.persisted.run_count for e in engines for chat in e.chats.values())
            verdicts = await auditor.drain()
        finally:
            auditor.stop()
            await task
        documents = [orjson.loads(m.value) for m in await read_topic(tansu.bootstrap, config.findings_topic)]
        return verdicts, documents, closed, before_drain, open_runs, engines

    verdicts, documents, closed, before_drain, open_runs, engines = asyncio.run(scenario())
    live = unique_findings(documents)
    assert_same_findings(live, result, case)
    assert_same_tallies(drained_tallies({p: v for p, v in verdicts.items()}), result.tallies)
    gaps_live = [d for d in documents[:before_drain] if d["kind"] == "sequence_gap"]
    print(f"{closed} sequences closed while running; {before_drain} findings before the drain, "
          f"{len(gaps_live)} of them gaps; {len(live)} in all; {open_runs} persisted runs left open")
    assert closed > case.spec.messages // 4, "much of the history was closed while running"
    assert gaps_live, "gaps were declared live, not only at the drain"
    assert all(chat.closed_through for e in engines for chat in e.chats.values())
