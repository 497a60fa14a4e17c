"""AuthorityReader and the table tools against a real DynamoDB Local.

Faults are injected in front of the real service (a wrapped client method),
never instead of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time

import pytest
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from auditor.dynamo import AuthorityReader, DynamoConfig, TableNames, create_tables, load_export
from auditor.errors import AuthorityUnavailable
from auditor.metrics import DynamoMetrics
from auditor.workload import Workload, WorkloadSpec, chat_id, write_export

from auditor.dynamo.local import DynamoDBLocal, free_port

pytestmark = pytest.mark.integration
_names = itertools.count()

SPEC = WorkloadSpec(chats=30, messages=2000, loss=0.02, counter_behind=0.1, counter_missing=0.1, seed=7)


def config(endpoint: str, **overrides) -> DynamoConfig:
    """Fresh table names per test (one DynamoDB Local serves the session); fast backoff."""
    n = next(_names)
    base = dict(endpoint_url=endpoint, tables=TableNames(f"messages_{n}", f"chat_counters_{n}"),
                backoff_base=0.01, backoff_cap=0.1, request_timeout=3.0)
    return DynamoConfig(**(base | overrides))


async def loaded(cfg, session, tmp_path, spec=SPEC):
    """Creates the tables and loads the spec's authority through an export; returns the truth."""
    messages, counters = Workload(spec).truth()
    write_export(messages, counters, tmp_path / "messages", tmp_path / "counters")
    assert sorted(await create_tables(cfg, session=session)) == sorted([cfg.tables.messages, cfg.tables.chat_counters])
    assert await create_tables(cfg, session=session) == []  # idempotent
    counts = await load_export(cfg, tmp_path / "messages", tmp_path / "counters", session=session)
    assert counts == {cfg.tables.messages: sum(map(len, messages.values())),
                      cfg.tables.chat_counters: len(counters)}
    return messages, counters


def all_keys(spec, messages):
    """Every (chat, seq) the workload allocated (lost ones absent) plus keys that never existed."""
    w = Workload(spec)
    keys = [(chat_id(c), s) for c in range(spec.chats) for s in range(1, w.counts[c] + 2)]
    keys += [("chat_nobody", 1), (chat_id(0), 10**9)]
    expected = {k: messages.get(k[0], {}).get(k[1]) for k in keys}
    assert None in expected.values()
    return keys, expected


def sample(metrics: DynamoMetrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_round_trip_matches_truth(dynamodb_local, aws_session, tmp_path):
    async def run():
        cfg = config(dynamodb_local)
        messages, counters = await loaded(cfg, aws_session, tmp_path)
        keys, expected = all_keys(SPEC, messages)
        assert len(keys) > 2000
        metrics = DynamoMetrics(CollectorRegistry())
        async with AuthorityReader(cfg, session=aws_session, metrics=metrics) as reader:
            start = time.perf_counter()
            got = await reader.get_messages(keys)
            elapsed = time.perf_counter() - start
            print(f"\nBatchGetItem: {len(keys)} keys in {elapsed:.3f} s = {len(keys) / elapsed:,.0f} keys/s")
            assert got == expected

            chats = [chat_id(c) for c in range(SPEC.chats)] + ["chat_nobody"]
            assert await reader.get_counters(chats) == {c: counters.get(c) for c in chats}
            assert None in (await reader.get_counters(chats)).values()  # counter_missing chats

            for c in chats:
                assert await reader.query_chat(c) == messages.get(c, {})
            assert await reader.scan_chat_ids() == set(messages)
        assert sample(metrics, "auditor_dynamo_requests_total", operation="BatchGetItem", outcome="ok") > 0
        assert sample(metrics, "auditor_dynamo_retries_total", reason="throttled") == 0

    asyncio.run(run())


def test_more_than_100_keys_are_split_and_duplicates_read_once(dynamodb_local, aws_session, tmp_path):
    async def run():
        cfg = config(dynamodb_local)
        messages, _ = await loaded(cfg, aws_session, tmp_path)
        keys, expected = all_keys(SPEC, messages)
        keys = keys[:250]
        metrics = DynamoMetrics(CollectorRegistry())
        async with AuthorityReader(cfg, session=aws_session, metrics=metrics) as reader:
            got = await reader.get_messages(keys + keys[::-1])  # every key twice in one call
        assert got == {k: expected[k] for k in keys}
        h = "auditor_dynamo_keys_per_request"
        assert sample(metrics, f"{h}_count", operation="BatchGetItem") == 3   # 100 + 100 + 50
        assert sample(metrics, f"{h}_sum", operation="BatchGetItem") == 250   # each key once
        assert sample(metrics, f"{h}_bucket", operation="BatchGetItem", le="100.0") == 3
        assert sample(metrics, f"{h}_bucket", operation="BatchGetItem", le="75.0") == 1

    asyncio.run(run())


def test_concurrent_callers_share_in_flight_keys(dynamodb_local, aws_session, tmp_path):
    async def run():
        cfg = config(dynamodb_local)
        messages, _ = await loaded(cfg, aws_session, tmp_path)
        keys, expected = all_keys(SPEC, messages)
        a, b = keys[:150], keys[100:250]  # 50 keys overlap
        sent: list = []
        async with AuthorityReader(cfg, session=aws_session) as reader:
            real = reader.client.batch_get_item

            async def recording(**kwargs):
                for table in kwargs["RequestItems"].values():
                    sent.extend((k["chat_id"]["S"], int(k["sequence"]["N"])) for k in table["Keys"])
                return await real(**kwargs)

            reader.client.batch_get_item = recording
            got_a, got_b = await asyncio.gather(reader.get_messages(a), reader.get_messages(b))
        assert got_a == {k: expected[k] for k in a} and got_b == {k: expected[k] for k in b}
        assert sorted(sent) == sorted(set(a) | set(b))  # each key requested exactly once

    asyncio.run(run())


def throttle_code_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, "BatchGetItem")


def test_unprocessed_keys_and_throttling_are_retried_until_complete(dynamodb_local, aws_session, tmp_path):
    async def run():
        cfg = config(dynamodb_local)
        messages, _ = await loaded(cfg, aws_session, tmp_path)
        keys, expected = all_keys(SPEC, messages)
        keys = keys[:300]
        metrics = DynamoMetrics(CollectorRegistry())
        calls = itertools.count()
        async with AuthorityReader(cfg, session=aws_session, metrics=metrics) as reader:
            real = reader.client.batch_get_item

            async def faulty(**kwargs):
                n = next(calls)
                if n in (1, 4):
                    raise throttle_code_error("ProvisionedThroughputExceededException")
                if n == 2:
                    raise throttle_code_error("ThrottlingException")
                if n in (0, 3):  # the service processed only half of the keys
                    (table, req), = kwargs["RequestItems"].items()
                    half = len(req["Keys"]) // 2
                    response = await real(RequestItems={table: dict(req, Keys=req["Keys"][:half])})
                    response["UnprocessedKeys"] = {table: dict(req, Keys=req["Keys"][half:])}
                    return response
                return await real(**kwargs)

            reader.client.batch_get_item = faulty
            assert await reader.get_messages(keys) == {k: expected[k] for k in keys}
        assert sample(metrics, "auditor_dynamo_retries_total", reason="unprocessed") == 2
        assert sample(metrics, "auditor_dynamo_retries_total", reason="throttled") == 3
        assert sample(metrics, "auditor_dynamo_throttles_total") == 3
        assert sample(metrics, "auditor_dynamo_requests_total", operation="BatchGetItem", outcome="partial") == 2

    asyncio.run(run())


def test_a_hung_request_times_out_and_is_retried(dynamodb_local, aws_session, tmp_path):
    async def run():
        cfg = config(dynamodb_local)
        messages, _ = await loaded(cfg, aws_session, tmp_path)
        keys, expected = all_keys(SPEC, messages)
        metrics = DynamoMetrics(CollectorRegistry())
        calls = itertools.count()
        short = dataclasses.replace(cfg, request_timeout=0.5)
        async with AuthorityReader(short, session=aws_session, metrics=metrics) as reader:
            real = reader.client.batch_get_item

            async def hangs_once(**kwargs):
                if next(calls) == 0:
                    await asyncio.sleep(30)
                return await real(**kwargs)

            reader.client.batch_get_item = hangs_once
            start = time.monotonic()
            assert await reader.get_messages(keys[:50]) == {k: expected[k] for k in keys[:50]}
            assert time.monotonic() - start < 5
        assert sample(metrics, "auditor_dynamo_retries_total", reason="timeout") == 1

    asyncio.run(run())


@pytest.mark.parametrize("fault", ["throttled", "unprocessed"])
def test_persistent_throttling_raises_instead_of_answering_absent(dynamodb_local, aws_session, tmp_path, fault):
    async def run():
        cfg = config(dynamodb_local, max_attempts=4)
        messages, _ = await loaded(cfg, aws_session, tmp_path)
        keys, _ = all_keys(SPEC, messages)
        async with AuthorityReader(cfg, session=aws_session) as reader:
            async def always(**kwargs):
                if fault == "throttled":
                    raise throttle_code_error("RequestLimitExceeded")
                return {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]}

            reader.client.batch_get_item = always
            with pytest.raises(AuthorityUnavailable):
                await reader.get_messages(keys[:10])

    asyncio.run(run())


def test_stopped_service_raises_then_recovers_after_restart(dynamodb_local_jar, aws_session, tmp_path):
    server = DynamoDBLocal(dynamodb_local_jar, free_port(), tmp_path / "dynamodb-local.log")
    server.start()
    try:
        asyncio.run(_stop_and_restart(server, aws_session, tmp_path))
    finally:
        server.stop()


async def _stop_and_restart(server, session, tmp_path):
    spec = WorkloadSpec(chats=5, messages=200, seed=3)
    cfg = config(server.endpoint, max_attempts=3, breaker_failures=3, breaker_open_seconds=0.5,
                 request_timeout=2.0)
    messages, counters = await loaded(cfg, session, tmp_path / "before", spec)
    keys, expected = all_keys(spec, messages)
    metrics = DynamoMetrics(CollectorRegistry())
    async with AuthorityReader(cfg, session=session, metrics=metrics) as reader:
        assert await reader.get_messages(keys) == expected

        server.stop()
        start = time.monotonic()
        with pytest.raises(AuthorityUnavailable):
            await reader.get_messages(keys)
        assert time.monotonic() - start < 10  # bounded: 3 attempts with sub-second backoff
        assert sample(metrics, "auditor_dynamo_retries_total", reason="connection") >= 2
        assert sample(metrics, "auditor_dynamo_breaker_state") == 1  # open
        with pytest.raises(AuthorityUnavailable, match="circuit breaker open"):
            await reader.get_counters(list(counters))  # fails fast, nothing sent

        server.start()  # same port; in memory, so the tables are loaded again
        await loaded(cfg, session, tmp_path / "after", spec)
        deadline = time.monotonic() + 30
        while True:  # what a caller does: wait and retry
            try:
                got = await reader.get_messages(keys)
                break
            except AuthorityUnavailable:
                assert time.monotonic() < deadline, "reads did not recover after the restart"
                await asyncio.sleep(0.2)
        assert got == expected
        assert await reader.get_counters(list(counters)) == counters
        assert sample(metrics, "auditor_dynamo_breaker_state") == 0  # closed again


def test_table_authority_reads_once_refreshes_on_demand_and_forgets_closed_items(dynamodb_local, aws_session,
                                                                                 tmp_path):
    from auditor.dynamo.authority import TableAuthority

    async def run():
        cfg = config(dynamodb_local)
        messages, counters = await loaded(cfg, aws_session, tmp_path)
        chat = chat_id(0)
        keys = {(chat, s) for s in range(1, 6)} | {(chat, 10**6)}
        metrics = DynamoMetrics(CollectorRegistry())
        async with AuthorityReader(cfg, session=aws_session, metrics=metrics) as reader:
            authority = TableAuthority(reader)
            items = authority.items_of(chat)  # the engine holds this dict
            await authority.prefetch(keys)
            assert {s: items[s] for s in range(1, 6)} == {s: messages[chat].get(s) for s in range(1, 6)}
            assert items[10**6] is None  # absent, and known to be
            assert authority.last_sequence(chat) is None  # counters are read at verdicts only
            requests = sample(metrics, "auditor_dynamo_requests_total", operation="BatchGetItem", outcome="ok")
            await authority.prefetch(keys)
            assert sample(metrics, "auditor_dynamo_requests_total", operation="BatchGetItem",
                          outcome="ok") == requests, "known keys are not read again"

            # The table changes: a refresh sees it, known or not.
            async with aws_session.client("dynamodb", endpoint_url=dynamodb_local) as client:
                await client.put_item(TableName=cfg.tables.chat_counters,
                                      Item={"chat_id": {"S": chat}, "last_sequence": {"N": "123456"}})
                await client.put_item(TableName=cfg.tables.messages, Item={
                    "chat_id": {"S": chat}, "sequence": {"N": str(10**6)}, "message_id": {"S": "late"}})
            await authority.refresh({(chat, 10**6)}, {chat})
            assert authority.last_sequence(chat) == 123456
            assert authority.message_id(chat, 10**6) == "late"

            authority.forget({chat: 3})
            assert sorted(authority.items_of(chat)) == [4, 5, 10**6]
            assert authority.items_of(chat) is items  # in place
            await authority.prefetch({(chat, 2)})  # a later event for a closed sequence reads again
            assert authority.message_id(chat, 2) == messages[chat].get(2)

            authority.release([chat])  # the engine retired the chat: nothing of it stays cached
            assert authority.items_of(chat) == {} and authority.items_of(chat) is not items
            assert authority.last_sequence(chat) is None

    asyncio.run(run())
