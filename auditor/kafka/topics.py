"""Topic creation and bulk production of workload records. Pure asyncio + aiokafka.

Broker-neutral: nothing here assumes Tansu. Producers are plain (no idempotence,
no transactions: Tansu cannot do either, and nothing in the auditor relies on
them) with `acks="all"`.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Iterable, Mapping

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

__all__ = ["TopicMismatch", "create_topics", "existing_topics", "produce_workload"]


class TopicMismatch(RuntimeError):
    """A topic exists with another partition count than the one asked for."""


async def existing_topics(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """{topic: partition count} of every topic in the cluster.

    Asks for *all* topics (a null topic list): naming a missing topic in a
    Metadata request may auto-create it (Tansu does, and so does Kafka with
    auto.create.topics.enable), which would defeat the check.
    """
    return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if t["error_code"] == 0}


async def create_topics(bootstrap: str, topics: Mapping[str, int], config: Mapping[str, str] | None = None, *,
                        replication_factor: int = 1, request_timeout_ms: int = 30_000,
                        **admin_kwargs: Any) -> list[str]:
    """Create `topics` ({name: partitions}) unless they exist; return the names created.

    Idempotent: a topic that already exists with the requested partition count
    is left alone (its configuration is not compared or changed). One that exists
    with another count raises `TopicMismatch`: co-partitioning (partition p of
    every topic holds the same chats) depends on the counts. `config` is applied
    to every topic created (e.g. {"retention.ms": "604800000"}). `admin_kwargs`
    go to AIOKafkaAdminClient (security settings and the like).
    """
    if not topics:
        return []
    for name, partitions in topics.items():
        if not isinstance(partitions, int) or partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be a positive integer, not {partitions!r}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms,
                                **admin_kwargs)
    await admin.start()
    try:
        present = await existing_topics(admin)
        _check_counts(topics, present)
        missing = [name for name in topics if name not in present]
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(name, topics[name], replication_factor, topic_configs=dict(config or {}))
             for name in missing], timeout_ms=request_timeout_ms)
        created, raced = [], []
        for entry in response.to_object()["topic_errors"]:
            code, name = entry["error_code"], entry["topic"]
            if code == 0:
                created.append(name)
            elif code == TopicAlreadyExistsError.errno:
                raced.append(name)  # created concurrently by someone else: check its count below
            else:
                error = for_code(code)
                message = entry.get("error_message") or error.description
                raise error(f"creating topic {name!r} on {bootstrap}: {message}")
        if raced:
            _check_counts({name: topics[name] for name in raced}, await existing_topics(admin))
        return [name for name in missing if name in created]
    finally:
        await admin.close()


def _check_counts(wanted: Mapping[str, int], present: Mapping[str, int]) -> None:
    wrong = {name: (n, present[name]) for name, n in wanted.items() if name in present and present[name] != n}
    if wrong:
        detail = "; ".join(f"{name!r} has {have} partitions, {want} requested"
                           for name, (want, have) in sorted(wrong.items()))
        raise TopicMismatch(f"existing topics disagree with the requested partition counts: {detail}. "
                            "Partition counts cannot be changed in place without breaking key -> partition "
                            "routing; use new topic names or recreate them.")


async def produce_workload(bootstrap: str, records: Iterable, batch: int = 5_000, *,
                           linger_ms: int = 5, max_batch_size: int = 512 * 1024,
                           **producer_kwargs: Any) -> int:
    """Produce records to their own topic and partition, with key and headers; return the count.

    `records` are `auditor.workload.Record`s or any (topic, partition, offset,
    key, headers, payload) tuples; the offset is ignored (the broker assigns
    it, and matches the workload's when the topic starts empty and this is its
    only producer). Records are sent `batch` at a time with `send()` and the
    chunk's delivery futures gathered before the next chunk, so the producer's
    accumulator stays full without unbounded memory. Order within a partition is
    the iteration order (aiokafka keeps one produce request in flight per
    broker, so a retry cannot overtake). Any delivery error is raised.
    `max_batch_size` (bytes per partition batch) stays under Kafka's default
    1 MB message.max.bytes.
    """
    if batch < 1:
        raise ValueError("batch must be >= 1")
    kwargs = dict(acks="all", enable_idempotence=False, linger_ms=linger_ms, max_batch_size=max_batch_size,
                  request_timeout_ms=30_000) | producer_kwargs
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kwargs)
    await producer.start()
    count = 0
    try:
        iterator = iter(records)
        while chunk := list(itertools.islice(iterator, batch)):
            send = producer.send
            futures = [await send(topic, payload, key=key, partition=partition, headers=list(headers) or None)
                       for topic, partition, _offset, key, headers, payload in chunk]
            await asyncio.gather(*futures)
            count += len(chunk)
        await producer.flush()
    finally:
        await producer.stop()
    return count
