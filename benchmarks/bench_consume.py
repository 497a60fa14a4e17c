"""Kafka consume baseline: a raw aiokafka consume-and-parse loop against a local broker.

    .venv/bin/python benchmarks/bench_consume.py [--records 200000] [--quick]
    .venv/bin/python benchmarks/bench_consume.py --bootstrap HOST:PORT   # an existing broker

One run:

1. starts a Tansu broker on a free loopback port (`auditor.kafka.TansuBroker`,
   in memory; or uses `--bootstrap`, then with topic names unique to the run)
   and creates the three topics with `--partitions` partitions each;
2. generates `--records` records (default 200,000; `--quick` 20,000) with
   `auditor.workload` (seeded, a light fault mix including malformed records),
   holds them in memory, and times `auditor.kafka.produce_workload` over them
   (plain producer, acks=all): the *produce* rate;
3. times `raw_consume_rate`: one consumer-group member subscribed to the three
   topics, `getmany` with a large `max_records`, `orjson.loads` of every value
   and a per-chat highest-sequence dict update. Nothing else: no auditing, no
   commits. This is the *baseline* that a live-consumer benchmark (run against
   the same broker, in the same run) is to be compared with, as a ratio.

Clocks. Produce: first `send` to the last acknowledgement (record generation
excluded). Consume: `seconds` runs from the moment the member holds its
assignment to the moment the last expected record is parsed;
`join_seconds` (start() until the assignment) is reported apart, because group
joins cost broker-specific seconds (Tansu: about half the session timeout)
that say nothing about throughput. Tansu shares the machine's cores with the
benchmark: figures are for comparing loops in one run, not brokers.

The last line of stdout is the whole result as one JSON object; `main(argv)`
returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer  # noqa: E402
from aiokafka.coordinator.assignors.range import RangePartitionAssignor  # noqa: E402

from auditor.kafka import TansuBroker, create_topics, produce_workload  # noqa: E402
from auditor.workload import Workload, WorkloadSpec  # noqa: E402
from benchmarks.common import FAULT_MIX  # noqa: E402

DEFAULT_RECORDS, QUICK_RECORDS = 200_000, 20_000
MAX_RECORDS = 10_000  # per getmany


def make_spec(records: int, chats: int, partitions: int, seed: int, prefix: str = "") -> WorkloadSpec:
    spec = WorkloadSpec(chats=chats, messages=1, partitions=partitions, recipients_per_message=2,
                        ack_ratio=0.95, seed=seed, persisted_topic=f"{prefix}messages.persisted",
                        acked_topic=f"{prefix}messages.acked", delivered_topic=f"{prefix}messages.delivered",
                        **FAULT_MIX)
    return dataclasses.replace(spec, messages=max(1, round(records / spec.records_per_message)))


def consumer_options(group_id: str, **overrides: Any) -> dict:
    """The consumer settings of the baseline (a live consumer should start from the same)."""
    return dict(group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest",
                partition_assignment_strategy=(RangePartitionAssignor,)) | overrides


async def raw_consume(bootstrap: str, topics: Iterable[str], group_id: str, expected: int, *,
                      max_records: int = MAX_RECORDS, timeout: float | None = None,
                      **consumer_kwargs: Any) -> dict:
    """Consume `expected` records as one group member; parse each value; per-chat max sequence.

    Returns {"records", "seconds", "join_seconds", "events_per_s", "chats", "unparsed",
    "first_batch_seconds", "events_per_s_after_first_batch"}. `seconds` starts once the
    member holds an assignment (see the module doc); the last two separate the first
    fetch (assignment to the first parsed `getmany` result) from the steady rate after it.
    Raises TimeoutError when `expected` records do not arrive within `timeout`
    (default: 60 s plus 1 s per 5,000 records). `group_id` should be fresh:
    a group with committed offsets resumes from them.
    """
    topics = list(topics)
    timeout = 60.0 + expected / 5_000 if timeout is None else timeout
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap,
                                **consumer_options(group_id, **consumer_kwargs))
    loads = orjson.loads
    high: dict = {}
    n = unparsed = 0
    joining = time.perf_counter()
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while not consumer.assignment():  # start() normally returns joined; be sure
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partitions assigned to group {group_id!r} in {timeout:.0f}s")
            await consumer.getmany(timeout_ms=100, max_records=1)  # returns nothing while unassigned
        started = time.perf_counter()
        first_at, first_n = None, 0
        getmany = consumer.getmany
        while n < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumed {n} of {expected} records in {timeout:.0f}s")
            for batch in (await getmany(timeout_ms=500, max_records=max_records)).values():
                for message in batch:
                    try:
                        event = loads(message.value)
                        chat, seq = event["chat_id"], event["sequence"]
                        if seq > high.get(chat, 0):
                            high[chat] = seq
                    except (ValueError, KeyError, TypeError):
                        unparsed += 1
                n += len(batch)
            if first_at is None and n:
                first_at, first_n = time.perf_counter(), n
        ended = time.perf_counter()
        seconds = ended - started
    finally:
        await consumer.stop()
    after_first = ended - first_at if first_at is not None else 0.0
    return {"records": n, "seconds": seconds, "join_seconds": started - joining,
            "events_per_s": n / seconds if seconds > 0 else float("inf"), "chats": len(high),
            "unparsed": unparsed, "max_records": max_records,
            "first_batch_seconds": first_at - started if first_at is not None else None,
            "events_per_s_after_first_batch": (n - first_n) / after_first if after_first > 0 else None}


def raw_consume_rate(bootstrap: str, topics: Iterable[str], group_id: str, expected: int, **kwargs: Any) -> float:
    """Events/s of the raw consume-and-parse loop (`raw_consume`); from async code await that instead."""
    return asyncio.run(raw_consume(bootstrap, topics, group_id, expected, **kwargs))["events_per_s"]


async def produce(bootstrap: str, spec: WorkloadSpec, batch: int) -> tuple[dict, int]:
    started = time.perf_counter()
    records = list(Workload(spec).records())
    generated = time.perf_counter() - started
    await create_topics(bootstrap, {t: spec.partitions for t in (spec.persisted_topic, spec.acked_topic,
                                                                   spec.delivered_topic)})
    started = time.perf_counter()
    count = await produce_workload(bootstrap, records, batch=batch)
    seconds = time.perf_counter() - started
    return {"records": count, "seconds": seconds, "records_per_s": count / seconds,
            "generate_seconds": generated, "batch": batch}, count


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, help=f"records to produce (default {DEFAULT_RECORDS}, quick {QUICK_RECORDS})")
    p.add_argument("--quick", action="store_true", help="small size: the whole run in a few seconds")
    p.add_argument("--chats", type=int, default=10_000)
    p.add_argument("--partitions", type=int, default=12, help="partitions per topic")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=5_000, help="records per produce chunk")
    p.add_argument("--max-records", type=int, default=MAX_RECORDS, help="getmany max_records")
    p.add_argument("--bootstrap", help="use this broker instead of starting Tansu (topics get a unique prefix)")
    p.add_argument("--workdir", type=Path, help="where the broker log goes (default: a temporary directory)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    records = args.records or (QUICK_RECORDS if args.quick else DEFAULT_RECORDS)
    run_id = f"bench{os.getpid()}_{time.time_ns() % 10**9}"
    prefix = f"{run_id}." if args.bootstrap else ""
    spec = make_spec(records, args.chats, args.partitions, args.seed, prefix)
    topics = [spec.persisted_topic, spec.acked_topic, spec.delivered_topic]
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench_consume_", dir=args.workdir))
    broker = None
    try:
        if args.bootstrap:
            bootstrap, broker_info = args.bootstrap, {"kind": "external", "bootstrap": args.bootstrap}
        else:
            broker = TansuBroker(log_path=workdir / "tansu.log").start()
            bootstrap = broker.bootstrap
            broker_info = {"kind": "tansu", "bootstrap": bootstrap, "start_seconds": broker.start_seconds}
            print(f"broker: Tansu on {bootstrap}, ready in {broker.start_seconds:.3f}s", file=sys.stderr)
        produced, count = asyncio.run(produce(bootstrap, spec, args.batch))
        print(f"produce: {count} records in {produced['seconds']:.2f}s = {produced['records_per_s']:,.0f}/s "
              f"(generated in {produced['generate_seconds']:.2f}s)", file=sys.stderr)
        consumed = asyncio.run(raw_consume(bootstrap, topics, f"{run_id}.raw", count,
                                           max_records=args.max_records))
        print(f"raw consume: {consumed['records']} records in {consumed['seconds']:.2f}s = "
              f"{consumed['events_per_s']:,.0f} events/s (group join {consumed['join_seconds']:.2f}s, "
              f"{consumed['chats']} chats, {consumed['unparsed']} unparsed)", file=sys.stderr)
    except BaseException:
        if broker is not None:
            print(f"broker log tail: {broker.log_tail(20)}", file=sys.stderr)
        raise
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result = {"records": count, "topics": topics, "partitions": args.partitions, "chats": args.chats,
              "seed": args.seed, "broker": broker_info, "produce": produced, "raw_consume": consumed,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
