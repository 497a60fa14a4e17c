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

from auditor.authority import InMemoryAuthority
from auditor.dynamo import AuthorityReader, DynamoConfig, TableNames, create_tables, load_export
from auditor.dynamo.authority import TableAuthority
from auditor.export import load_export_authority
from auditor.config import AttributeNames
from auditor.metrics import DynamoMetrics
from auditor.replay import Patience, replay, replay_live
from auditor.report import build_report
from auditor.workload import Workload, WorkloadSpec, write_export, write_kcat_dump

from .conftest import DynamoDBLocal, free_port

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


async def live_report(cfg, session, dump, **replay_kw):
    async with AuthorityReader(cfg, session=session) as reader:
        authority = TableAuthority(reader)
        result = await replay_live([dump], authority, **replay_kw)
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
