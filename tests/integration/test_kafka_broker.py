"""Kafka plumbing against a real Kafka-wire broker (Tansu) with aiokafka.

What the auditor relies on, proved on the broker rather than assumed: workload
records round-trip (topic, partition, key, headers, payload, offsets); a
consumer group with the range assignor gives every member the *same* partition
numbers of every topic (so all events of a chat meet on one member), also after
a member leaves; committed offsets survive a consumer restart.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from auditor.kafka import TansuBroker, TopicMismatch, create_topics, metadata_brokers, produce_workload
from auditor.workload import Workload, WorkloadSpec

pytestmark = pytest.mark.integration

PARTITIONS = 4
_names = itertools.count()


def spec(prefix: str, **kw) -> WorkloadSpec:
    """5,000 records: 1,250 messages x (persisted + acked + 2 deliveries), own topic names."""
    base = dict(chats=60, messages=1250, partitions=PARTITIONS, recipients_per_message=2, ack_ratio=1.0,
                seed=11, persisted_topic=f"{prefix}.messages.persisted", acked_topic=f"{prefix}.messages.acked",
                delivered_topic=f"{prefix}.messages.delivered")
    return WorkloadSpec(**(base | kw))


def topics_of(s: WorkloadSpec) -> list[str]:
    return [s.persisted_topic, s.acked_topic, s.delivered_topic]


def fresh_prefix() -> str:
    return f"t{next(_names)}_{time.monotonic_ns() % 10**9}"


async def read_all(bootstrap: str, topics: list[str], expected: int, timeout: float = 60.0) -> list:
    """Every record of `topics` (manual assignment of all partitions, from the beginning)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        assert len(parts) == PARTITIONS * len(topics)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out, deadline = [], time.monotonic() + timeout
        while len(out) < expected:
            assert time.monotonic() < deadline, f"read {len(out)} of {expected} records in {timeout}s"
            for batch in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                out.extend(batch)
        # nothing beyond what was produced
        extra = await consumer.getmany(timeout_ms=300)
        assert not any(extra.values())
        return out
    finally:
        await consumer.stop()


def group_consumer(bootstrap: str, topics: list[str], group_id: str, **kw) -> AIOKafkaConsumer:
    options = dict(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
                   auto_offset_reset="earliest", partition_assignment_strategy=(RangePartitionAssignor,),
                   session_timeout_ms=6_000, heartbeat_interval_ms=300, max_poll_interval_ms=60_000) | kw
    return AIOKafkaConsumer(*topics, **options)


async def poll_until(consumers, condition, timeout: float, what: str, sink: list | None = None) -> float:
    """Keep every consumer polling (as a real member would) until `condition()`; return seconds.

    Records fetched meanwhile go to `sink` (when given), else they are dropped.
    """
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not reached in {timeout}s; " + "; ".join(
            f"member {i}: {sorted(c.assignment())}" for i, c in enumerate(consumers))
        for got in await asyncio.gather(*(c.getmany(timeout_ms=100, max_records=1000) for c in consumers)):
            if sink is not None:
                sink.extend(m for batch in got.values() for m in batch)
    took = time.monotonic() - started
    print(f"{what}: {took:.2f}s")
    return took


def log_ends(s: WorkloadSpec) -> dict[TopicPartition, int]:
    """Each partition's log end offset once the workload is produced into empty topics.

    Taken from the workload, not from `end_offsets()`: Tansu 0.6.0 answers
    ListOffsets(latest) with the last record batch's base offset + 1 (see
    test_end_offsets_are_the_log_end_offset).
    """
    ends: dict[TopicPartition, int] = defaultdict(int)
    for r in Workload(s).records():
        ends[TopicPartition(r.topic, r.partition)] = r.offset + 1
    return dict(ends)


async def at_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    return all([await consumer.position(tp) >= ends[tp] for tp in consumer.assignment()])


def by_topic(assignment) -> dict[str, set[int]]:
    out = defaultdict(set)
    for tp in assignment:
        out[tp.topic].add(tp.partition)
    return out


# -- broker lifecycle -------------------------------------------------------------------


def test_broker_answers_metadata_stops_and_loses_data_on_restart(tmp_path):
    log = tmp_path / "tansu.log"
    broker = TansuBroker(log_path=log)
    with broker:
        host, port = broker.bootstrap.split(":")
        assert host == "127.0.0.1" and broker.port == int(port)
        assert broker.running and 0 < broker.start_seconds < 30
        assert [(h, p) for _, h, p in metadata_brokers(host, int(port))] == [(host, int(port))]
        assert asyncio.run(create_topics(broker.bootstrap, {"kept.nowhere": 2})) == ["kept.nowhere"]
    assert not broker.running and broker.process is None
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
    assert log.exists() and log.stat().st_size > 0
    broker.stop()  # idempotent

    broker.start()  # same port, fresh (memory-only) broker
    try:
        assert broker.port == int(port)
        assert asyncio.run(create_topics(broker.bootstrap, {"kept.nowhere": 2})) == ["kept.nowhere"]
    finally:
        broker.stop()


# -- topics and produce/consume round trip ------------------------------------------------


def test_create_topics_is_idempotent_and_rejects_other_partition_counts(tansu):
    s = spec(fresh_prefix())
    wanted = {t: PARTITIONS for t in topics_of(s)}

    async def run():
        assert sorted(await create_topics(tansu.bootstrap, wanted)) == sorted(wanted)
        assert await create_topics(tansu.bootstrap, wanted) == []
        with pytest.raises(TopicMismatch, match=s.acked_topic):
            await create_topics(tansu.bootstrap, {s.acked_topic: PARTITIONS + 1})
        # a mismatch anywhere in the request creates nothing
        with pytest.raises(TopicMismatch):
            await create_topics(tansu.bootstrap, {s.persisted_topic + ".new": 2, s.persisted_topic: 1})
        assert await create_topics(tansu.bootstrap, {s.persisted_topic + ".new": 2}) == [s.persisted_topic + ".new"]

    asyncio.run(run())


def test_workload_round_trips_through_the_broker(tansu):
    s = spec(fresh_prefix(), bad_record=0.01, producer_retry=0.01, duplicate_delivery=0.01, out_of_order=0.01)
    records = list(Workload(s).records())
    assert len(records) >= 5000

    async def run():
        await create_topics(tansu.bootstrap, {t: PARTITIONS for t in topics_of(s)})
        assert await produce_workload(tansu.bootstrap, iter(records), batch=700) == len(records)
        return await read_all(tansu.bootstrap, topics_of(s), len(records))

    consumed = asyncio.run(run())
    assert len(consumed) == len(records)

    sent = defaultdict(list)
    for r in records:
        sent[(r.topic, r.partition)].append(r)
    got = defaultdict(list)
    for m in consumed:
        got[(m.topic, m.partition)].append(m)
    assert set(got) == set(sent)
    for tp, msgs in got.items():
        offsets = [m.offset for m in msgs]
        assert offsets == sorted(set(offsets)), f"{tp}: offsets not strictly increasing"
        assert [(m.key, list(m.headers), m.value) for m in msgs] == \
               [(r.key, list(r.headers), r.payload) for r in sent[tp]], f"{tp}: records differ or reordered"
        # one producer into empty topics: the broker's offsets are the workload's
        assert offsets == [r.offset for r in sent[tp]]
    assert all(m.headers and m.headers[0][0] == "traceparent" for m in consumed)


# -- consumer groups --------------------------------------------------------------------


def test_range_assignor_co_partitions_members_and_survivor_takes_all(tansu):
    s = spec(fresh_prefix())
    topics, group = topics_of(s), f"{s.persisted_topic}.group"
    every = {TopicPartition(t, p) for t in topics for p in range(PARTITIONS)}
    ends = log_ends(s)

    async def run():
        await create_topics(tansu.bootstrap, {t: PARTITIONS for t in topics})
        await produce_workload(tansu.bootstrap, Workload(s).records())
        a, b = group_consumer(tansu.bootstrap, topics, group), group_consumer(tansu.bootstrap, topics, group)
        await a.start()
        try:
            await poll_until([a], lambda: a.assignment() == every, 30, "first member gets everything")
            joining = time.monotonic()
            await b.start()  # returns once b has joined (a rejoins in the background)
            try:
                def split():
                    x, y = a.assignment(), b.assignment()
                    return x and y and not (x & y) and (x | y) == every
                await poll_until([a, b], split, 60, "two members split the partitions")
                joined = time.monotonic() - joining
                for member in (a, b):
                    parts = by_topic(member.assignment())
                    assert set(parts) == set(topics), "every member gets every topic"
                    assert len({frozenset(p) for p in parts.values()}) == 1, \
                        f"not co-partitioned: {dict(parts)}"
                    assert len(next(iter(parts.values()))) == PARTITIONS // 2
                # every chat's events now reach exactly one member
                keys = {}
                for i, member in enumerate((a, b)):
                    for tp in member.assignment():
                        member.seek(tp, 0)
                    for _ in range(30):
                        for batch in (await member.getmany(timeout_ms=200, max_records=5000)).values():
                            for m in batch:
                                assert keys.setdefault(m.key, i) == i, f"chat {m.key!r} on both members"
                        if await at_end(member, ends):
                            break
                assert len(keys) == sum(1 for n in Workload(s).counts if n)
            finally:
                await b.stop()  # leaves the group
            left = await poll_until([a], lambda: a.assignment() == every, 60, "survivor takes all")
            return joined, left
        finally:
            await a.stop()

    joined, left = asyncio.run(run())
    print(f"rebalance on join: {joined:.2f}s, survivor has all partitions {left:.2f}s after the other left")


def test_committed_offsets_survive_a_consumer_restart(tansu):
    s = spec(fresh_prefix())
    topics, group = topics_of(s), f"{s.persisted_topic}.group"

    async def run():
        await create_topics(tansu.bootstrap, {t: PARTITIONS for t in topics})
        await produce_workload(tansu.bootstrap, Workload(s).records())
        first = group_consumer(tansu.bootstrap, topics, group)
        await first.start()
        try:
            await poll_until([first], lambda: len(first.assignment()) == PARTITIONS * 3, 30, "assignment")
            assert all([await first.committed(tp) is None for tp in first.assignment()])
            ends = log_ends(s)
            got = 0
            while got < 500:  # some real consumption first, as a member would do
                got += sum(map(len, (await first.getmany(timeout_ms=200, max_records=100)).values()))
            # "processed up to here" (the next offset to read): mid-partition, different everywhere
            commit = {tp: max(1, end * (1 + i % 3) // 4) for i, (tp, end) in enumerate(sorted(ends.items()))}
            assert all(0 < off < ends[tp] for tp, off in commit.items()), (ends, commit)
            await first.commit(commit)
            assert {tp: await first.committed(tp) for tp in commit} == commit
        finally:
            await first.stop()

        second = group_consumer(tansu.bootstrap, topics, group)
        started = time.monotonic()
        await second.start()
        try:
            early: list = []
            await poll_until([second], lambda: len(second.assignment()) == PARTITIONS * 3, 30, "reassignment",
                             sink=early)
            restart = time.monotonic() - started
            assert {tp: await second.committed(tp) for tp in commit} == commit
            firsts: dict[TopicPartition, int] = {}
            for m in early:
                firsts.setdefault(TopicPartition(m.topic, m.partition), m.offset)
            deadline = time.monotonic() + 30
            while len(firsts) < len(commit):
                assert time.monotonic() < deadline, f"resumed {len(firsts)} of {len(commit)} partitions"
                for tp, batch in (await second.getmany(timeout_ms=200, max_records=5000)).items():
                    firsts.setdefault(tp, batch[0].offset)
            assert firsts == commit, "the restarted member resumes exactly at the committed offsets"
        finally:
            await second.stop()
        return restart

    print(f"restarted member assigned after {asyncio.run(run()):.2f}s")


@pytest.mark.xfail(strict=False, reason="Tansu 0.6.0 answers ListOffsets(latest) with the base offset of the "
                                        "last record batch + 1, not the log end offset")
def test_end_offsets_are_the_log_end_offset(tansu):
    """A broker quirk, kept visible: consumer lag from end_offsets() is wrong on Tansu.

    XPASS here means the broker got fixed; the other tests do not depend on it.
    """
    s = spec(fresh_prefix(), messages=200)
    ends = log_ends(s)

    async def run():
        await create_topics(tansu.bootstrap, {t: PARTITIONS for t in topics_of(s)})
        await produce_workload(tansu.bootstrap, Workload(s).records(), batch=10_000)
        consumer = AIOKafkaConsumer(bootstrap_servers=tansu.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            return await consumer.end_offsets(sorted(ends))
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == ends
