"""`auditor demo`: the whole system on this machine, with faults injected.

1. start a Tansu broker and DynamoDB Local on free loopback ports;
2. generate a seeded workload with a few of every fault kind, load its
   DynamoDB truth into the tables and create the event topics;
3. start two auditor workers in one consumer group (they share the
   partitions) and serve the first one's /metrics;
4. produce the traffic in bursts, printing findings as the workers confirm them;
5. once every record is audited, take the whole-history verdicts from both
   workers and print a summary beside what was injected;
6. stop everything (also on Ctrl-C). `--keep-running` waits for Ctrl-C first,
   so /metrics can be looked at.

Exit code 0 when the verdicts match the injected faults, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

import aioboto3
import orjson

from .dynamo import DynamoConfig, create_tables, load_export
from .dynamo.local import LOCAL_CREDENTIALS, DynamoDBLocal, dynamodb_local_dir
from .findings import COUNT_KINDS
from .kafka import TansuBroker, create_topics, produce_workload
from .logs import configure_logging
from .live import LiveAuditor
from .live.config import CheckpointSettings, ConsumerSettings, KafkaSettings, LiveConfig
from .processes import free_port
from .workload import Workload, WorkloadSpec, write_export

PARTITIONS = 4
FAULTS = dict(loss=0.004, duplicate_sequence=0.003, gap=0.004, out_of_order=0.004, clock_skew=0.004,
              duplicate_delivery=0.004, counter_behind=0.1, counter_missing=0.05, producer_retry=0.004,
              bad_record=0.003)


async def demo(messages: int, chats: int, seed: int, http_port: int, keep_running: bool) -> int:
    workload = Workload(WorkloadSpec(chats=chats, messages=messages, partitions=PARTITIONS, ack_ratio=0.95,
                                     seed=seed, **FAULTS))
    with tempfile.TemporaryDirectory(prefix="auditor-demo-") as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        log_file = stack.enter_context(open(tmp / "auditor.log", "w"))
        configure_logging("INFO", "demo", log_file)  # JSON logs to a file; the terminal gets a story
        print("starting Tansu (Kafka wire protocol) and DynamoDB Local on loopback ...")
        broker = stack.enter_context(TansuBroker(log_path=tmp / "tansu.log"))
        dynamo = stack.enter_context(DynamoDBLocal(dynamodb_local_dir(), free_port(), tmp / "dynamodb.log"))
        print(f"  kafka    {broker.bootstrap}\n  dynamodb {dynamo.endpoint}")

        dynamo_config = DynamoConfig(endpoint_url=dynamo.endpoint)
        write_export(*workload.truth(), tmp / "messages", tmp / "counters")
        session = aioboto3.Session(**LOCAL_CREDENTIALS)
        await create_tables(dynamo_config, session=session)
        loaded = await load_export(dynamo_config, tmp / "messages", tmp / "counters", session=session)
        print(f"  tables loaded: {loaded}")
        spec = workload.spec
        await create_topics(broker.bootstrap, {t: PARTITIONS for t in
                                               (spec.persisted_topic, spec.acked_topic, spec.delivered_topic)})

        findings_file = tmp / "findings.jsonl"
        workers = [LiveAuditor(_worker_config(broker.bootstrap, dynamo_config, findings_file, n,
                                              http_port if n == 0 else None), session=session)
                   for n in range(2)]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            print(f"two workers in group 'auditor-demo'; metrics on http://127.0.0.1:{http_port}/metrics")
            records = list(workload.records())
            tail = _Tail(findings_file)
            for start in range(0, len(records), 2_000):  # traffic in bursts
                await produce_workload(broker.bootstrap, records[start:start + 2_000])
                tail.print_new()
                await asyncio.sleep(0.2)
            print(f"produced {len(records)} records; waiting for the workers to audit them ...")
            await _until_consumed(workers, records, tasks)
            # The whole-history verdicts (drain waits for the batch in hand);
            # the verdicts that needed all of it are confirmed now.
            verdicts = [await w.drain(emit=True) for w in workers]
            tail.print_new()
            ok = _summary(workload, verdicts)
            if keep_running:
                print("Ctrl-C to stop")
                await asyncio.gather(*tasks)
            return 0 if ok else 1
        finally:
            for w in workers:
                w.stop()
            await asyncio.gather(*tasks, return_exceptions=True)


def _worker_config(bootstrap: str, dynamo: DynamoConfig, findings_file: Path, n: int,
                   http_port: int | None) -> LiveConfig:
    return LiveConfig(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, client_id=f"auditor-demo-{n}"),
        group_id="auditor-demo", findings_file=str(findings_file), topic_replication_factor=1,
        checkpoint=CheckpointSettings(interval_seconds=2.0),
        consumer=ConsumerSettings(session_timeout_ms=6_000, heartbeat_interval_ms=1_000),
        dynamo=dynamo, chat_partitioner="crc32",  # the workload's partitioner
        http_host="127.0.0.1" if http_port is not None else None, http_port=http_port or 0,
        instance=f"demo-{n}")


async def _until_consumed(workers: list[LiveAuditor], records: list, tasks: list[asyncio.Task]) -> None:
    ends: dict[tuple[str, int], int] = {}
    for r in records:
        ends[(r.topic, r.partition)] = max(ends.get((r.topic, r.partition), -1), r.offset + 1)
    while True:
        for task in tasks:
            if task.done():
                task.result()  # a worker that died: say why
        positions: dict = {}
        for w in workers:
            positions.update(w.positions())
        if all(positions.get(tp, 0) >= end for tp, end in ends.items()):
            return
        await asyncio.sleep(0.5)


def _summary(workload: Workload, verdicts: list[dict]) -> bool:
    counts = dict.fromkeys(COUNT_KINDS, 0)
    findings = [f for per_worker in verdicts for v in per_worker.values() for f in v.findings]
    for per_worker in verdicts:
        for v in per_worker.values():
            for kind in COUNT_KINDS:
                counts[kind] += v.tallies.counts[kind]
    expected = workload.expected
    print(f"\n{'kind':<20}{'found':>8}{'injected':>10}")
    ok = True
    for kind in COUNT_KINDS:
        want = expected.get(kind, 0)
        ok &= counts[kind] == want
        print(f"{kind:<20}{counts[kind]:>8}{want:>10}  {'ok' if counts[kind] == want else 'MISMATCH'}")
    print(f"{len(findings)} findings in all; the verdicts {'match' if ok else 'do NOT match'} what was injected")
    return ok


class _Tail:
    """Prints findings appended to the workers' findings file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def print_new(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for line in f:
                if line.endswith(b"\n"):
                    self.offset += len(line)
                    d = orjson.loads(line)
                    seq = "" if d["sequence"] is None else f" seq={d['sequence']}"
                    trace = ",".join(d["trace_ids"]) or "-"
                    print(f"  {d['kind']:<18} chat={d['chat_id']}{seq} trace={trace}: {d['detail']}")


def run_demo(messages: int, chats: int, seed: int, http_port: int, keep_running: bool) -> int:
    started = time.monotonic()
    try:
        rc = asyncio.run(demo(messages, chats, seed, http_port, keep_running))
    except KeyboardInterrupt:
        print("\nstopped")
        return 0
    print(f"demo done in {time.monotonic() - started:.0f}s")
    return rc
