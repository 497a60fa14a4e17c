"""Replay against live tables in DynamoDB Local equals replay against the export.

Also: an outage in the middle of a replay (DynamoDB Local stopped, then
started again) only delays verdicts; it never becomes a loss or counter finding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid

import pytest
from prometheus_client import CollectorRegistry

from auditor.authority import InMemoryAuthority
from auditor.dynamo import AuthorityReader, DynamoConfig, TableNames, create_tables, load_export
from auditor.dynamo.authority import TableAuthority
from auditor.export import load_export_authority
from auditor.config import AttributeNames
from auditor.metrics import DynamoMetrics
from auditor.replay import Patience, replay, replay_live
from auditor.report import build_report
from auditor.verification import ALL, ANOMALIES, SAMPLE, VerificationPolicy
from auditor.workload import Workload, WorkloadSpec, write_export, write_kcat_dump

from auditor.dynamo.local import DynamoDBLocal, free_port

pytestmark = pytest.mark.integration

EVERY_FAULT = dict(loss=0.01, duplicate_sequence=0.01, gap=0.01, out_of_order=0.01, clock_skew=0.01,
                   duplicate_delivery=0.01, counter_behind=0.1, counter_missing=0.1,
                   producer_retry=0.01, bad_record=0.01)


def write_case(tmp_path, seed: int, messages: int = 600):
    workload = Workload(WorkloadSpec(chats=25, messages=messages, partitions=3, seed=seed, **EVERY_FAULT))
    dump = tmp_path / f"dump-{seed}.kcat.json.gz"
    write_kcat_dump(workload.records(), dump)
    truth = workload.truth()
    write_export(*truth, tmp_path / "messages", tmp_path / "counters")
    return workload, dump


def report_of(result, authority) -> dict:
    report = build_report(result.findings, result.tallies, authority, result.sources, result.errors)
    return report


def config(endpoint: str, **kw) -> DynamoConfig:
    suffix = uuid.uuid4().hex[:8]
    return DynamoConfig(endpoint_url=endpoint, tables=TableNames(f"messages_{suffix}", f"counters_{suffix}"),
                        **kw)


async def load_tables(cfg, session, tmp_path):
    await create_tables(cfg, session=session)
    await load_export(cfg, tmp_path / "messages", tmp_path / "counters", session=session)


async def live_report(cfg, session, dump, policy=VerificationPolicy(), metrics=None, **replay_kw):
    async with AuthorityReader(cfg, session=session, metrics=metrics) as reader:
        authority = TableAuthority(reader, complete=policy.reads_everything)
        result = await replay_live([dump], authority, policy=policy, **replay_kw)
    return report_of(result, authority)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_live_tables_give_the_export_report(dynamodb_local, aws_session, tmp_path, seed):
    workload, dump = write_case(tmp_path, seed)
    exported = load_export_authority(tmp_path / "messages", tmp_path / "counters", AttributeNames())
    expected = report_of(replay([dump], exported), exported)
    assert all(expected["counts"][k] == v for k, v in workload.expected.items() if k in expected["counts"])
    cfg = config(dynamodb_local)

    async def go():
        await load_tables(cfg, aws_session, tmp_path)
        return await live_report(cfg, aws_session, dump)

    assert asyncio.run(go()) == expected


def without_duplicate_evidence(report: dict) -> dict:
    return report | {"findings": [f | {"records": [], "trace_ids": []} if f["kind"] == "duplicate_sequence"
                                  else f for f in report["findings"]]}


def keys_read(metrics: DynamoMetrics) -> float:
    return sum(s.value for m in metrics.keys_per_request.collect() for s in m.samples
               if s.name.endswith("_sum") and s.labels.get("operation") == "BatchGetItem")


def test_every_policy_gives_the_same_report_and_reads_less(dynamodb_local, aws_session, tmp_path):
    workload, dump = write_case(tmp_path, seed=11, messages=1500)
    exported = load_export_authority(tmp_path / "messages", tmp_path / "counters", AttributeNames())
    expected = report_of(replay([dump], exported), exported)
    cfg = config(dynamodb_local)
    reads = {}

    async def go():
        await load_tables(cfg, aws_session, tmp_path)
        reports = {}
        for policy in (VerificationPolicy(ALL), VerificationPolicy(SAMPLE, 0.1), VerificationPolicy(ANOMALIES)):
            metrics = DynamoMetrics(CollectorRegistry())
            reports[policy.mode] = await live_report(cfg, aws_session, dump, policy=policy, metrics=metrics)
            reads[policy.mode] = keys_read(metrics)
        return reports

    reports = asyncio.run(go())
    assert reports[ALL] == expected
    for mode in (SAMPLE, ANOMALIES):  # a duplicate's evidence may be thinner: see test_verification
        assert without_duplicate_evidence(reports[mode]) == without_duplicate_evidence(expected), mode
    # Point reads while streaming (the end-of-run Query is the same for all policies).
    assert reads[ALL] > reads[SAMPLE] > reads[ANOMALIES] > 0


def test_an_outage_mid_replay_delays_verdicts_and_changes_nothing(dynamodb_local_jar, aws_session, tmp_path):
    workload, dump = write_case(tmp_path, seed=7, messages=2000)
    exported = load_export_authority(tmp_path / "messages", tmp_path / "counters", AttributeNames())
    expected = report_of(replay([dump], exported), exported)

    server = DynamoDBLocal(dynamodb_local_jar, free_port(), tmp_path / "ddb.log", db_path=tmp_path)
    server.start()
    outage = {"stopped": 0.0, "pending_seen": 0}
    try:
        cfg = config(server.endpoint)
        asyncio.run(load_tables(cfg, aws_session, tmp_path))
        # Give up on a request quickly, so that the outage reaches the replay's own wait.
        cfg = dataclasses.replace(cfg, max_attempts=2, request_timeout=1.0, breaker_open_seconds=0.5)

        def restart_later():
            time.sleep(3)
            server.start()

        def on_batch(dump_file, batch):
            if not outage["stopped"]:  # after the first batch: pull the plug for ~3 s
                server.stop()
                outage["stopped"] = time.monotonic()
                threading.Thread(target=restart_later, daemon=True).start()

        def pending(n):
            outage["pending_seen"] = max(outage["pending_seen"], n)

        started = time.monotonic()
        got = asyncio.run(live_report(cfg, aws_session, dump, on_batch=on_batch, pending=pending,
                                      patience=Patience(max_wait=60, first_delay=0.2, max_delay=1.0)))
    finally:
        server.stop()
    assert outage["stopped"] and outage["pending_seen"] > 0
    assert time.monotonic() - started >= 3  # it really waited for the restart
    assert got == expected
