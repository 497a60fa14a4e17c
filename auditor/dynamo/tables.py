"""Creating the authority tables and loading an "Export to S3" export into them.

For development, tests and incident work: put a table export (contract
section 4) into DynamoDB (Local) and audit against the endpoint instead of
holding the export in memory. Export files are read with the same rules as
the offline authority (auditor.export): a malformed line is an `InputError`
naming file and line, because a half-loaded authority means false losses.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Hashable, Iterator

import aioboto3
from botocore.exceptions import ClientError

from ..export import _attr, _items, _number
from ..metrics import DynamoMetrics
from .config import DynamoConfig
from .requests import Requester, open_client

BATCH_WRITE_LIMIT = 25  # items per BatchWriteItem request (AWS limit)


async def create_tables(config: DynamoConfig, *, session: aioboto3.Session | None = None,
                        wait_seconds: float = 120.0) -> list[str]:
    """Creates the messages and chat_counters tables if absent (on-demand billing)
    and waits until both are ACTIVE. Returns the names it created."""
    a, t = config.attributes, config.tables
    schemas = {
        t.messages: ([(a.chat_id, "S", "HASH"), (a.sequence, "N", "RANGE")]),
        t.chat_counters: ([(a.chat_id, "S", "HASH")]),
    }
    created = []
    async with open_client(config, session) as client:
        existing: set[str] = set()
        async for page in client.get_paginator("list_tables").paginate():
            existing.update(page.get("TableNames", ()))
        for name, keys in schemas.items():
            if name in existing:
                continue
            try:
                await client.create_table(
                    TableName=name, BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[{"AttributeName": n, "AttributeType": ty} for n, ty, _ in keys],
                    KeySchema=[{"AttributeName": n, "KeyType": kt} for n, _, kt in keys])
                created.append(name)
            except ClientError as exc:  # created concurrently by someone else: fine
                if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                    raise
        deadline = time.monotonic() + wait_seconds
        for name in schemas:
            while (await client.describe_table(TableName=name))["Table"]["TableStatus"] != "ACTIVE":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"DynamoDB table {name} not ACTIVE after {wait_seconds:.0f} s")
                await asyncio.sleep(0.5)
    return created


def _message_items(directory: Path, config: DynamoConfig) -> Iterator[tuple[Hashable, dict]]:
    a = config.attributes
    for path, n, item in _items(directory):
        chat = _attr(item, a.chat_id, "S", path, n)
        seq = _number(_attr(item, a.sequence, "N", path, n), a.sequence, path, n)
        _attr(item, a.message_id, "S", path, n)  # validated like the offline reader does
        yield (chat, seq), item


def _counter_items(directory: Path, config: DynamoConfig) -> Iterator[tuple[Hashable, dict]]:
    a = config.attributes
    for path, n, item in _items(directory):
        chat = _attr(item, a.chat_id, "S", path, n)
        _number(_attr(item, a.last_sequence, "N", path, n), a.last_sequence, path, n)
        yield chat, item


async def load_export(config: DynamoConfig, messages_dir: str | Path | None,
                      counters_dir: str | Path | None, *, session: aioboto3.Session | None = None,
                      metrics: DynamoMetrics | None = None) -> dict[str, int]:
    """Streams export directories into the tables; returns items written per table.

    Items are written verbatim (all their attributes), 25 per BatchWriteItem,
    up to `max_in_flight` requests at once. A None directory is skipped.
    """
    counts: dict[str, int] = {}
    async with open_client(config, session) as client:
        requester = Requester(client, config, metrics)
        if messages_dir is not None:
            counts[config.tables.messages] = await _write_all(
                requester, config.tables.messages, _message_items(Path(messages_dir), config))
        if counters_dir is not None:
            counts[config.tables.chat_counters] = await _write_all(
                requester, config.tables.chat_counters, _counter_items(Path(counters_dir), config))
    return counts


async def _write_all(requester: Requester, table: str, items: Iterator[tuple[Hashable, dict]]) -> int:
    """BatchWriteItem over a stream of (key, item), a bounded number of requests in flight.

    An export should not repeat a key, but if it does the offline reader keeps
    the last one; so does this: a repeated key first waits for every earlier
    write (BatchWriteItem also rejects a key twice in one request).
    """
    in_flight: dict[asyncio.Task, set] = {}
    window: set = set()  # keys in the current batch or in flight
    batch: list[dict] = []
    written = 0

    async def settle(how: str) -> None:
        done, _ = await asyncio.wait(in_flight, return_when=how)
        for task in done:
            window.difference_update(in_flight.pop(task))
            task.result()  # raises the write's error, if any

    def send(batch_keys: set) -> None:
        request = {table: [{"PutRequest": {"Item": item}} for item in batch]}
        task = asyncio.create_task(requester.batch("BatchWriteItem", "batch_write_item", request,
                                                   "UnprocessedItems", lambda _: None))
        in_flight[task] = batch_keys

    batch_keys: set = set()
    try:
        for key, item in items:
            if key in window:
                if batch:
                    send(batch_keys)
                    batch, batch_keys = [], set()
                if in_flight:
                    await settle(asyncio.ALL_COMPLETED)
                window.clear()
            batch.append(item)
            batch_keys.add(key)
            window.add(key)
            written += 1
            if len(batch) == BATCH_WRITE_LIMIT:
                send(batch_keys)
                batch, batch_keys = [], set()
                if len(in_flight) >= requester.config.max_in_flight:
                    await settle(asyncio.FIRST_COMPLETED)
        if batch:
            send(batch_keys)
        if in_flight:
            await settle(asyncio.ALL_COMPLETED)
    finally:  # on an error, do not leave writes running behind the caller's back
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
    return written
