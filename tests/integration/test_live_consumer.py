"""The live consumer group on Tansu + DynamoDB Local ends where a replay of the same records ends.

- Two workers in one process, with two rebalances in the middle (B joins
  while A is auditing; later A leaves and B takes everything over): after
  `drain()`, the findings (from the findings topic, de-duplicated by
  finding_id) and every counter equal `auditor.replay.replay` of the same
  records against the table export.
- A worker run as `python -m auditor run` and killed with SIGKILL resumes, in a
  new process, from its last checkpoint: same end result, no finding lost,
  findings re-emitted only with the same finding_id.
- SIGTERM: the batch in hand is finished, a final checkpoint written and the
  group's committed offsets equal the checkpoint's.

Every test uses its own topics, group, and tables.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from auditor.config import AttributeNames
from auditor.dynamo import DynamoConfig, TableNames, create_tables, load_export
from auditor.export import load_export_authority
from auditor.kafka import create_topics, produce_workload
from auditor.live import (CheckpointSettings, ConsumerSettings, KafkaSettings, LiveAuditor, LiveConfig,
                          PartitionVerdicts, Topics)
from auditor.live.checkpoint import checkpoint_key, decode
from auditor.live.metrics import total
from auditor.processes import free_port
from auditor.replay import replay
from auditor.state import Tallies
from auditor.workload import Workload, WorkloadSpec, write_export, write_kcat_dump

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
EVERY_FAULT = dict(loss=0.01, duplicate_sequence=0.01, gap=0.01, out_of_order=0.01, clock_skew=0.01,
                   duplicate_delivery=0.01, counter_behind=0.1, counter_missing=0.1,
                   producer_retry=0.01, bad_record=0.01)
# Tansu completes a join after about half the session timeout.
FAST_GROUP = ConsumerSettings(session_timeout_ms=6_000, heartbeat_interval_ms=1_000, rebalance_timeout_ms=6_000,
                              max_records=250)
_count = itertools.count()


@dataclasses.dataclass
class Case:
    prefix: str
    spec: WorkloadSpec
    workload: Workload
    records: list
    dump: Path
    tmp: Path

    @property
    def payloads(self) -> dict[tuple[str, int, int], bytes]:
        return {(r.topic, r.partition, r.offset): r.payload for r in self.records}

    @property
    def topics(self) -> Topics:
        return Topics(self.spec.persisted_topic, self.spec.acked_topic, self.spec.delivered_topic)

    def ends(self, records=None) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for r in self.records if records is None else records:
            out[(r.topic, r.partition)] = r.offset + 1
        return out


def make_case(tmp_path: Path, seed: int, messages: int = 1500, **spec_kw) -> Case:
    prefix = f"live{next(_count)}_{uuid.uuid4().hex[:8]}"
    spec = WorkloadSpec(chats=25, messages=messages, partitions=PARTITIONS, seed=seed,
                        persisted_topic=f"{prefix}.persisted", acked_topic=f"{prefix}.acked",
                        delivered_topic=f"{prefix}.delivered", **EVERY_FAULT, **spec_kw)
    workload = Workload(spec)
    records = list(workload.records())
    dump = tmp_path / "dump.kcat.json.gz"
    write_kcat_dump(records, dump)
    write_export(*workload.truth(), tmp_path / "messages", tmp_path / "counters")
    return Case(prefix, spec, workload, records, dump, tmp_path)


def dynamo_config(endpoint: str) -> DynamoConfig:
    suffix = uuid.uuid4().hex[:8]
    return DynamoConfig(endpoint_url=endpoint, tables=TableNames(f"messages_{suffix}", f"counters_{suffix}"))


async def setup_services(case: Case, bootstrap: str, dynamo: DynamoConfig, session) -> None:
    await create_topics(bootstrap, {t: PARTITIONS for t in case.topics.events})
    await create_tables(dynamo, session=session)
    await load_export(dynamo, case.tmp / "messages", case.tmp / "counters", session=session)


def live_config(case: Case, bootstrap: str, dynamo: DynamoConfig | None, group: str, **kw) -> LiveConfig:
    return LiveConfig(kafka=KafkaSettings(bootstrap), group_id=group, topics=case.topics,
                      checkpoint=kw.pop("checkpoint", CheckpointSettings(topic=f"{case.prefix}.checkpoints",
                                                                         interval_seconds=1.0)),
                      consumer=FAST_GROUP, findings_topic=f"{case.prefix}.findings", dynamo=dynamo,
                      chat_partitioner="crc32", http_host="127.0.0.1", http_port=0, topic_replication_factor=1,
                      **kw)


def expected_result(case: Case):
    authority = load_export_authority(case.tmp / "messages", case.tmp / "counters", AttributeNames())
    result = replay([case.dump], authority)
    # the workload's faults are all there (the comparison is not vacuous)
    assert all(result.tallies.counts[k] == v for k, v in case.workload.expected.items() if k in result.tallies.counts)
    return result


async def wait_for(condition, timeout: float, what: str, tasks=()) -> float:
    started = time.monotonic()
    while not condition():
        for task in tasks:
            if task.done():
                await task  # a worker that died: raise its error here
                raise AssertionError(f"{what}: a worker stopped")
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.05)
    took = time.monotonic() - started
    print(f"{what}: {took:.2f}s")
    return took


async def read_topic(bootstrap: str, topic: str) -> list:
    """Every record of `topic`, read to the high-water marks (not end_offsets: Tansu)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert tps, f"topic {topic} has no partitions"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out, pending, deadline = [], set(tps), time.monotonic() + 30
        while pending:
            assert time.monotonic() < deadline, f"reading {topic}: {pending} not at the end"
            for batch in (await consumer.getmany(*pending, timeout_ms=200)).values():
                out.extend(batch)
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None and await consumer.position(tp) >= hw:
                    pending.discard(tp)
        return out
    finally:
        await consumer.stop()


async def latest_checkpoints(bootstrap: str, topic: str, group: str) -> tuple[dict, dict]:
    """({p: latest Checkpoint}, {p: number of checkpoint records}) of `group`."""
    keys = {checkpoint_key(group, p): p for p in range(PARTITIONS)}
    latest, counts = {}, collections.Counter()
    for m in await read_topic(bootstrap, topic):
        if m.key in keys:
            latest[keys[m.key]] = decode(m.value, m.offset)
            counts[keys[m.key]] += 1
    return latest, dict(counts)


async def committed_offsets(bootstrap: str, group: str, topics: Topics) -> dict[tuple[str, int], int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {(t, p): await consumer.committed(TopicPartition(t, p)) for t in topics.events for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


def checkpoint_offsets(checkpoints: dict) -> dict[tuple[str, int], int]:
    return {(t, p): o for p, c in checkpoints.items() for t, o in c.offsets.items()}


# -- comparing with the replay ------------------------------------------------------------

def key_of(f: dict) -> tuple:
    return (f["kind"], f["chat_id"], f["sequence"], tuple(f["message_ids"]), f["classification"])


def unique_findings(documents: list[dict]) -> list[dict]:
    """De-duplicate by finding_id; a repeated id must repeat the same finding."""
    by_id: dict[str, dict] = {}
    for d in documents:
        first = by_id.setdefault(d["finding_id"], d)
        assert key_of(first) == key_of(d), f"finding_id {d['finding_id']} names two findings: {first} / {d}"
    return list(by_id.values())


def carried(case: Case, record: dict) -> tuple:
    """(chat_id, sequence) of the event at these coordinates."""
    event = orjson.loads(case.payloads[(record["topic"], record["partition"], record["offset"])])
    return event["chat_id"], event["sequence"]


def assert_same_findings(live: list[dict], result, case: Case) -> None:
    expected = [f.to_dict() for f in result.findings]
    live_keys = collections.Counter(map(key_of, live))
    expected_keys = collections.Counter(map(key_of, expected))
    assert live_keys == expected_keys, (f"false positives: {sorted((live_keys - expected_keys).elements())}; "
                                        f"misses: {sorted((expected_keys - live_keys).elements())}")
    # Evidence: the same records, except where the replay kept more.
    # Also where the evidence is "the record that FIRST carried the chat's highest
    # sequence" (counter_corruption): Kafka orders records within a partition,
    # not across topics, so the persisted, acked or delivered record of that
    # sequence may come first; it must be one of them. With the retention horizon,
    # the corruption is reported when first seen, with the record that then
    # carried the chat's highest sequence: any record of the chat above its
    # counter is right evidence.
    counters = case.workload.truth()[1]
    replay_records = {key_of(f): f["records"] for f in expected}
    differ = []
    for f in live:
        mine = {tuple(r.values()) for r in f["records"]}
        theirs = {tuple(r.values()) for r in replay_records[key_of(f)]}
        if mine == theirs or mine < theirs:
            continue
        if f["kind"] == "counter_corruption" and len(f["records"]) == len(replay_records[key_of(f)]) == 1 \
                and carried(case, f["records"][0]) == carried(case, replay_records[key_of(f)][0]):
            continue
        if f["kind"] == "counter_corruption" and len(f["records"]) == 1:
            chat, seq = carried(case, f["records"][0])
            if chat == f["chat_id"] and seq > counters.get(chat, 0):
                continue
        differ.append((key_of(f), sorted(mine), sorted(theirs)))
    assert not differ, f"evidence differs: {differ[:5]}"
    for f in live:
        assert f["trace_ids"] or not f["records"], f"no trace id on {f}"


def assert_same_tallies(live: Tallies, expected: Tallies) -> None:
    for field in dataclasses.fields(Tallies):
        got, want = getattr(live, field.name), getattr(expected, field.name)
        if field.name == "latency_sum":
            assert got == pytest.approx(want, rel=1e-9), field.name
        elif isinstance(want, dict):
            assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}, field.name
        else:
            assert got == want, field.name


def drained_tallies(*verdicts: dict[int, PartitionVerdicts]) -> Tallies:
    partitions = [p for v in verdicts for p in v]
    assert sorted(partitions) == list(range(PARTITIONS)), f"drained partitions {partitions}"
    return total(pv.tallies for v in verdicts for pv in v.values())


# -- two workers, two rebalances --------------------------------------------------------------

@pytest.mark.timeout(240)
def test_two_workers_with_rebalances_end_identical_to_replay(tansu, dynamodb_local, aws_session, tmp_path):
    case = make_case(tmp_path, seed=21)
    result = expected_result(case)
    dynamo = dynamo_config(dynamodb_local)
    group = f"{case.prefix}.group"
    thirds = [case.records[i * len(case.records) // 3:(i + 1) * len(case.records) // 3] for i in range(3)]
    every = set(range(PARTITIONS))

    async def scenario():
        await setup_services(case, tansu.bootstrap, dynamo, aws_session)
        config = live_config(case, tansu.bootstrap, dynamo, group)
        a = LiveAuditor(config, session=aws_session)
        b = LiveAuditor(dataclasses.replace(config, instance="worker-b"), session=aws_session)
        try:
            return await with_workers(a, b, config)
        finally:  # a failed assertion must not leave members behind
            a.stop()
            b.stop()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)

    tasks: list[asyncio.Task] = []

    async def with_workers(a: LiveAuditor, b: LiveAuditor, config: LiveConfig):
        await produce_workload(tansu.bootstrap, thirds[0])
        task_a = asyncio.create_task(a.run())
        tasks.append(task_a)
        first_end = case.ends(thirds[0])
        await wait_for(lambda: a.positions() == first_end, 60, "A audits the first third", [task_a])
        assert a.assigned_partitions == sorted(every) and a.ready

        task_b = asyncio.create_task(b.run())  # rebalance 1: B joins, A keeps half
        tasks.append(task_b)

        def split() -> bool:
            x, y = set(a.assigned_partitions), set(b.assigned_partitions)
            return bool(x and y) and not x & y and x | y == every and a.ready and b.ready
        await wait_for(split, 60, "A and B split the partitions", [task_a, task_b])
        restored = b.metrics.restores.labels(source="checkpoint")._value.get()
        assert restored == len(b.assigned_partitions), "B took over A's checkpoints"
        await produce_workload(tansu.bootstrap, thirds[1])
        second_end = case.ends(thirds[0] + thirds[1])
        await wait_for(lambda: {**a.positions(), **b.positions()} == second_end, 60,
                       "A and B audit the second third", [task_a, task_b])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{b.http.url}/readyz") as response:
                assert response.status == 200
            deadline = time.monotonic() + 10
            while True:  # the lag gauges follow within a poll or two
                async with http.get(f"{b.http.url}/metrics") as response:
                    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
                lags = families["auditor_consumer_lag"].samples
                if len(lags) == 3 * len(b.assigned_partitions) and not any(s.value for s in lags):
                    break
                assert time.monotonic() < deadline, f"lag gauges: {lags}"
                await asyncio.sleep(0.2)
        assert {"auditor_events", "auditor_consumer_lag", "auditor_checkpoints", "auditor_pending_verdicts",
                "durability_ack_sent", "auditor_events_per_second"} <= set(families)

        a.stop()  # rebalance 2: A checkpoints, commits and leaves; B takes everything
        await task_a
        await wait_for(lambda: b.assigned_partitions == sorted(every) and b.ready, 60,
                       "B owns every partition", [task_b])
        await produce_workload(tansu.bootstrap, thirds[2])
        await wait_for(lambda: b.positions() == case.ends(), 60, "B audits the last third", [task_b])
        verdicts = await b.drain()
        b.stop()
        await task_b
        messages = await read_topic(tansu.bootstrap, config.findings_topic)
        return verdicts, [orjson.loads(m.value) for m in messages], {m.key for m in messages}

    verdicts, documents, keys = asyncio.run(scenario())
    live = unique_findings(documents)
    assert_same_findings(live, result, case)
    assert_same_tallies(drained_tallies(verdicts), result.tallies)
    assert keys == {f["chat_id"].encode() for f in live}  # keyed by chat id
    print(f"{len(case.records)} records, {len(live)} findings ({len(documents)} emitted), "
          f"counts {dict(result.tallies.counts)}")


# -- a worker process: SIGKILL, restart, SIGTERM -------------------------------------------------

def run_command(case: Case, bootstrap: str, group: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "auditor", "run", "--bootstrap-servers", bootstrap, "--group-id", group,
            "--persisted-topic", case.spec.persisted_topic, "--acked-topic", case.spec.acked_topic,
            "--delivered-topic", case.spec.delivered_topic,
            "--checkpoint-topic", f"{case.prefix}.checkpoints", "--findings-topic", f"{case.prefix}.findings",
            "--http-host", "127.0.0.1", "--http-port", str(port), "--chat-partitioner", "crc32",
            "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000", "--rebalance-timeout-ms", "6000",
            "--max-poll-records", "250", "--topic-replication-factor", "1", *extra]


class Worker:
    """`python -m auditor run ...` with its JSON logs in a file."""

    def __init__(self, command: list[str], log: Path, port: int) -> None:
        self.log, self.port = log, port
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env |= {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "PYTHONPATH": str(ROOT)}
        self._out = open(log, "ab")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def scrape(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def caught_up(self, ends: dict[tuple[str, int], int]) -> bool:
        """Every (topic, p) has a lag gauge at 0 against a high-water mark at the end."""
        metrics = self.scrape()
        if metrics is None:
            return False
        lags = {(dict(labels)["topic"], int(dict(labels)["partition"])): v
                for (name, labels), v in metrics.items() if name == "auditor_consumer_lag"}
        return set(lags) == set(ends) and not any(lags.values())

    def wait(self, condition, timeout: float, what: str) -> float:
        started = time.monotonic()
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"{what}: worker exited {self.process.returncode}; log: {self.tail()}")
            assert time.monotonic() - started < timeout, f"{what}: not within {timeout}s; log: {self.tail()}"
            time.sleep(0.1)
        took = time.monotonic() - started
        print(f"{what}: {took:.2f}s")
        return took

    def events(self) -> list[dict]:
        out = []
        for line in self.log.read_bytes().splitlines():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                pass
        return out

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._out.close()


@pytest.mark.timeout(240)
def test_a_killed_worker_resumes_from_its_checkpoint(tansu, dynamodb_local, aws_session, tmp_path):
    case = make_case(tmp_path, seed=22, messages=2000)
    result = expected_result(case)
    dynamo = dynamo_config(dynamodb_local)
    group = f"{case.prefix}.group"
    half = len(case.records) // 2
    first, second = case.records[:half], case.records[half:]
    findings_file = tmp_path / "findings.jsonl"
    extra = ["--dynamodb-endpoint", dynamodb_local, "--messages-table", dynamo.tables.messages,
             "--counters-table", dynamo.tables.chat_counters, "--findings-file", str(findings_file),
             # Checkpoints by record count only, once in the first half (about 4,000 records): the
             # kill then falls on records audited after the last checkpoint, which are audited again.
             "--checkpoint-interval", "3600", "--checkpoint-records", "2500"]
    ck_topic = f"{case.prefix}.checkpoints"

    asyncio.run(setup_services(case, tansu.bootstrap, dynamo, aws_session))
    asyncio.run(produce_workload(tansu.bootstrap, first))
    port = free_port()
    worker = Worker(run_command(case, tansu.bootstrap, group, port, *extra), tmp_path / "worker1.log", port)
    try:
        worker.wait(lambda: worker.caught_up(case.ends(first)), 90, "worker 1 audits the first half")
        killed_at, _ = asyncio.run(latest_checkpoints(tansu.bootstrap, ck_topic, group))
        assert sorted(killed_at) == list(range(PARTITIONS)), "worker 1 checkpointed every partition"
        worker.process.send_signal(signal.SIGKILL)
        assert worker.process.wait(10) == -signal.SIGKILL
    finally:
        worker.stop()
    behind = {tp: o for tp, o in checkpoint_offsets(killed_at).items() if o < case.ends(first)[tp]}
    print(f"at the kill, the checkpoints were behind the audit on {len(behind)} of 12 topic partitions")
    assert behind, "the kill must interrupt something audited but not checkpointed"
    # Exactly what the killed worker committed is no newer than its checkpoints.
    committed = asyncio.run(committed_offsets(tansu.bootstrap, group, case.topics))
    assert all(committed[tp] is None or committed[tp] <= o for tp, o in checkpoint_offsets(killed_at).items())

    asyncio.run(produce_workload(tansu.bootstrap, second))
    port = free_port()
    worker = Worker(run_command(case, tansu.bootstrap, group, port, *extra), tmp_path / "worker2.log", port)
    try:
        restarted = worker.wait(lambda: worker.caught_up(case.ends()), 120, "worker 2 restores and audits the rest")
        assert worker.status("/readyz") == 200 and worker.status("/healthz") == 200
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(30) == 0, worker.tail()
    finally:
        worker.stop()
    restores = [e for e in worker.events() if e["event"] == "partitions_assigned"]
    assert restores, worker.tail()
    first_restore = restores[0]["metadata"]["restored"]
    assert {int(p): r["source"] for p, r in first_restore.items()} == {p: "checkpoint" for p in range(PARTITIONS)}
    assert {(t, int(p)): o for p, r in first_restore.items() for t, o in r["offsets"].items()} == \
        checkpoint_offsets(killed_at), "worker 2 resumed exactly at worker 1's last checkpoints"

    async def finish():
        checkpoints, _ = await latest_checkpoints(tansu.bootstrap, ck_topic, group)
        assert checkpoint_offsets(checkpoints) == case.ends()
        assert await committed_offsets(tansu.bootstrap, group, case.topics) == case.ends()
        # The whole-history verdicts, from the checkpoints the workers left.
        config = live_config(case, tansu.bootstrap, dynamo, group,
                             checkpoint=CheckpointSettings(topic=ck_topic))
        auditor = LiveAuditor(config, session=aws_session)
        task = asyncio.create_task(auditor.run())
        await wait_for(lambda: auditor.ready and auditor.assigned_partitions == list(range(PARTITIONS)), 60,
                       "a third member restores every partition", [task])
        assert auditor.positions() == case.ends()
        verdicts = await auditor.drain()
        auditor.stop()
        await task
        return verdicts, [orjson.loads(m.value) for m in await read_topic(tansu.bootstrap, config.findings_topic)]

    verdicts, documents = asyncio.run(finish())
    live = unique_findings(documents)
    assert_same_findings(live, result, case)
    assert_same_tallies(drained_tallies(verdicts), result.tallies)
    # The file has what the topic has (the drain wrote to the topic only: a third process).
    in_file = unique_findings([orjson.loads(line) for line in findings_file.read_bytes().splitlines()])
    assert {f["finding_id"] for f in in_file} <= {f["finding_id"] for f in live}
    record_level = {f["finding_id"] for f in live if f["kind"] in ("out_of_order", "clock_skew")}
    assert record_level <= {f["finding_id"] for f in in_file}
    print(f"{len(documents)} findings emitted, {len(live)} distinct; worker 2 took {restarted:.1f}s; "
          f"{len(behind)} topic partitions audited again after the kill")


def test_sigterm_writes_a_final_checkpoint_and_commits_its_offsets(tansu, tmp_path):
    case = make_case(tmp_path, seed=23, messages=1000)
    group = f"{case.prefix}.group"
    ck_topic = f"{case.prefix}.checkpoints"

    async def setup():
        await create_topics(tansu.bootstrap, {t: PARTITIONS for t in case.topics.events})
        await produce_workload(tansu.bootstrap, case.records)

    asyncio.run(setup())
    port = free_port()
    # No periodic checkpoint: the only one is the one SIGTERM causes.
    command = run_command(case, tansu.bootstrap, group, port, "--no-dynamodb", "--checkpoint-interval", "3600",
                          "--checkpoint-records", "1000000000")
    worker = Worker(command, tmp_path / "worker.log", port)
    try:
        worker.wait(lambda: worker.caught_up(case.ends()), 90, "the worker audits everything")
        assert worker.status("/readyz") == 200 and worker.status("/healthz") == 200
        metrics = worker.scrape()
        events = sum(v for (name, _), v in metrics.items() if name == "auditor_events_total")
        rejected = sum(v for (name, _), v in metrics.items() if name == "auditor_events_rejected_total")
        assert events + rejected == len(case.records)
        before, _ = asyncio.run(latest_checkpoints(tansu.bootstrap, ck_topic, group))
        assert not before, "no checkpoint before the signal"
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(30) == 0, worker.tail()
        stopping = time.monotonic() - started
    finally:
        worker.stop()
    checkpoints, counts = asyncio.run(latest_checkpoints(tansu.bootstrap, ck_topic, group))
    assert counts == {p: 1 for p in range(PARTITIONS)}
    assert checkpoint_offsets(checkpoints) == case.ends()
    assert asyncio.run(committed_offsets(tansu.bootstrap, group, case.topics)) == case.ends()
    names = [e["event"] for e in worker.events()]
    assert names.index("shutdown_requested") < names.index("checkpoint_committed") < names.index("auditor_stopped")
    final = [e for e in worker.events() if e["event"] == "checkpoint_committed"][-1]["metadata"]
    assert final["reason"] == "shutdown" and final["commit"] == "ok"
    print(f"SIGTERM to exit: {stopping:.2f}s")
