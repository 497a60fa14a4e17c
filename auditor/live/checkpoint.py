"""Per-partition audit state, checkpointed together with the offsets it reflects.

The live consumer keeps one `AuditEngine` per partition number p (covering
(topic, p) of every event topic). Its state must follow p when the group moves
p to another member, and survive a crash, without ever being ahead of or
behind the records it has audited. Kafka transactions would make "state +
offsets" atomic, but the auditor cannot rely on them (Tansu has none, and a
plain producer is all it needs), so state and offsets travel as ONE record:

    checkpoint topic (compacted, default `auditor.checkpoints`)
    key    = "<group_id>/<p>"                      (UTF-8)
    value  = b"AUCK" | version (1 byte) | header length (4 bytes, big endian)
             | header (JSON) | engine snapshot (auditor.snapshot: zlib-compressed)
    header = {"group_id", "partition", "offsets": {topic: next offset to read},
              "checkpoint_id", "written_at", "instance", "snapshot_bytes"}
    partition of the checkpoint topic = p mod its partition count (explicit:
              every member computes the same, and compaction keeps the latest
              record per key within it)

The group's committed offsets are only a hint that is never ahead of the
checkpoint: they are committed after it, with the same values.

Commit (`Checkpointer.commit`; quix-streams' `Checkpoint.commit` in spirit):

1. Stop taking new records: the caller holds the consumer's processing lock,
   so the batch in hand is finished and no new one starts.
2. Findings first: wait until every finding emitted so far is acknowledged by
   its sinks, so that no checkpoint covers records whose findings could still
   be lost (a crash after this point re-emits them at most: at-least-once,
   de-duplicated downstream by `finding_id`).
3. Snapshot the engine of every partition whose offsets moved since its last
   checkpoint, and encode header + snapshot. A record larger than
   `max_bytes` fails loudly (`CheckpointTooLarge`): the auditor stops rather
   than audit on with state it cannot save.
4. Produce all checkpoint records (acks="all") and await every
   acknowledgement. A failure here stops the commit: nothing is committed.
5. Only then commit the consumer offsets: for each (topic, p), exactly the
   checkpoint's next offset (the last processed offset + 1). A commit refused
   because the group is rebalancing is logged and left: the checkpoint is
   already durable and wins on the next assignment.
6. Resume: the caller releases the lock and the consume loop goes on.

Restore, on assignment of partitions P (`on_partitions_assigned`):

R1. Read the checkpoint topic's partitions that hold P from the beginning to
    their high-water marks with a dedicated, group-less consumer (the
    high-water mark from fetch responses, `consumer.highwater()`: Tansu's
    ListOffsets answer is not the log end offset). The last record per key
    wins; an empty value (tombstone) means no checkpoint.
R2. For each p with a checkpoint: restore the engine from its snapshot
    (`auditor.snapshot.restore`) and seek every (topic, p) to the
    checkpoint's offsets. The checkpoint wins over the group's committed
    offsets: it is written first, so it is never older.
R3. For each p without one: a fresh engine, and the consumer starts from the
    committed offset or, without one, from `auto_offset_reset` (earliest).

Revoke (`on_partitions_revoked`): take the processing lock (the batch in
hand finishes), commit (steps 1-6) the revoked partitions, drop their engines.
A rebalance therefore always hands over a checkpoint that matches the
committed offsets exactly.

Size. Kafka's default max.message.bytes is 1 MB (1,048,588 bytes), and the
producer's max.request.size 1 MB. The snapshot is compressed (zlib); state
grows with chats and open anomalies (auditor/state.py), so a partition with
about 100,000 healthy chats is in the hundreds of kilobytes. Above
`max_bytes` (default 1,000,000) the commit fails loudly with the size and the
settings to change: raise `max.message.bytes` on the checkpoint topic and
`--checkpoint-max-bytes` together (the auditor sets max.message.bytes itself
only on a topic it creates), or use more partitions.

Security: a snapshot is a pickle (auditor/snapshot.py): the checkpoint topic
must be writable by the auditor's principal alone (Kafka ACLs).

A zombie (a member the group has already expelled, still finishing a batch)
may append one more checkpoint for a partition it no longer owns. Any
checkpoint is self-consistent (state and offsets in one record), so the worst
case is a later owner resuming from it and auditing some records again:
findings are re-emitted with the same `finding_id`, never lost. Its offset
commit is refused by the group (stale generation).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable, Sequence

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from ..engine import AuditEngine
from ..errors import AuditorError
from ..logs import format_timestamp, log_event
from ..snapshot import snapshot
from .config import CheckpointSettings, KafkaSettings

log = logging.getLogger(__name__)

MAGIC = b"AUCK"
VERSION = 1
_PREFIX = struct.Struct(">4sBI")  # magic, version, header length


class CheckpointError(AuditorError):
    """A checkpoint record that cannot be read, or the checkpoint topic cannot be read."""


class CheckpointTooLarge(AuditorError):
    """A partition's checkpoint does not fit the configured record size."""


@dataclass
class PartitionState:
    """One owned partition number p: its engine and the offsets the engine reflects."""

    partition: int
    engine: AuditEngine
    offsets: dict[str, int] = field(default_factory=dict)      # topic -> next offset to read
    checkpointed: dict[str, int] = field(default_factory=dict)  # offsets of the last checkpoint
    committed: dict[str, int] = field(default_factory=dict)     # offsets last committed
    checkpoint_id: str | None = None
    records_since_checkpoint: int = 0


@dataclass(frozen=True)
class Checkpoint:
    partition: int
    offsets: dict[str, int]
    snapshot: bytes
    checkpoint_id: str
    header: dict
    log_offset: int = -1  # where it sits in the checkpoint topic


def checkpoint_key(group_id: str, partition: int) -> bytes:
    return f"{group_id}/{partition}".encode()


def encode(header: dict, engine_snapshot: bytes) -> bytes:
    head = orjson.dumps(header)
    return _PREFIX.pack(MAGIC, VERSION, len(head)) + head + engine_snapshot


def decode(value: bytes, log_offset: int = -1) -> Checkpoint:
    if len(value) < _PREFIX.size:
        raise CheckpointError(f"checkpoint record of {len(value)} bytes is too short")
    magic, version, size = _PREFIX.unpack_from(value)
    if magic != MAGIC or version != VERSION:
        raise CheckpointError(f"not a version {VERSION} auditor checkpoint (magic {magic!r}, version {version})")
    try:
        header = orjson.loads(value[_PREFIX.size:_PREFIX.size + size])
        offsets = {str(t): int(o) for t, o in header["offsets"].items()}
        partition = int(header["partition"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint header unreadable: {exc}") from None
    return Checkpoint(partition, offsets, value[_PREFIX.size + size:], str(header.get("checkpoint_id")),
                      header, log_offset)


class Checkpointer:
    """Writes and reads the checkpoint topic (see the module doc for the protocol)."""

    def __init__(self, settings: CheckpointSettings, group_id: str, kafka: KafkaSettings,
                 producer: AIOKafkaProducer, topic_partitions: int, instance: str,
                 metrics=None) -> None:
        self.settings, self.group_id, self.kafka = settings, group_id, kafka
        self.producer, self.topic_partitions, self.instance = producer, topic_partitions, instance
        self.metrics = metrics
        self._reader: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        fetch = max(1024 * 1024, self.settings.max_bytes + 64 * 1024)
        self._reader = AIOKafkaConsumer(
            **self.kafka.client_kwargs() | {"client_id": f"{self.kafka.client_id}-checkpoints"},
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            max_partition_fetch_bytes=fetch, fetch_max_bytes=max(fetch, 50 * 1024 * 1024))
        await self._reader.start()

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()

    def partition_of(self, p: int) -> int:
        return p % self.topic_partitions

    # -- commit: steps 1-6 ------------------------------------------------------------

    async def commit(self, states: Sequence[PartitionState], consumer: AIOKafkaConsumer,
                     flush_findings: Callable[[], Awaitable[None]], reason: str) -> int:
        """Checkpoint `states` and commit their offsets; return the records written.

        The caller holds the processing lock (step 1) and releases it after (step 6).
        """
        started = time.perf_counter()
        # 2. Findings first: every finding emitted so far is acknowledged.
        await flush_findings()
        # 3. Snapshot every partition whose offsets moved since its last checkpoint.
        records = []
        for state in states:
            if state.offsets == state.checkpointed:
                continue
            checkpoint_id = uuid.uuid4().hex
            blob = snapshot(state.engine)
            header = {"group_id": self.group_id, "partition": state.partition, "offsets": dict(state.offsets),
                      "checkpoint_id": checkpoint_id, "written_at": format_timestamp(time.time()),
                      "instance": self.instance, "snapshot_bytes": len(blob), "reason": reason}
            value = encode(header, blob)
            if len(value) > self.settings.max_bytes:
                raise CheckpointTooLarge(
                    f"the checkpoint of partition {state.partition} is {len(value):,} bytes, above the "
                    f"configured limit of {self.settings.max_bytes:,} (--checkpoint-max-bytes). Kafka's "
                    f"default max.message.bytes is 1 MB: raise max.message.bytes on topic "
                    f"{self.settings.topic!r} and --checkpoint-max-bytes together, or spread the chats "
                    f"over more partitions. Stopping rather than audit on with state that cannot be saved.")
            records.append((state, checkpoint_id, value))
        # 4. Produce all checkpoint records (acks=all) and await every acknowledgement.
        if records:
            futures = [await self.producer.send(self.settings.topic, value,
                                                key=checkpoint_key(self.group_id, state.partition),
                                                partition=self.partition_of(state.partition))
                       for state, _, value in records]
            await asyncio.gather(*futures)
            for state, checkpoint_id, value in records:
                state.checkpointed = dict(state.offsets)
                state.checkpoint_id = checkpoint_id
                state.records_since_checkpoint = 0
                if self.metrics is not None:
                    self.metrics.checkpoint_bytes.labels(partition=str(state.partition)).set(len(value))
        # 5. Only then commit the consumer offsets: the checkpoint's, for the same (topic, p).
        offsets = {TopicPartition(topic, state.partition): offset
                   for state in states for topic, offset in state.checkpointed.items()
                   if state.committed.get(topic) != offset}
        outcome = "ok"
        if offsets:
            try:
                await consumer.commit(offsets)
            except CommitFailedError as exc:  # rebalancing: the checkpoint is durable and wins
                outcome = "refused"
                log_event(log, "offset_commit_refused", level=logging.WARNING, error_code=type(exc).__name__,
                          error_message=str(exc), operation="commit", reason=reason)
            except KafkaError as exc:
                outcome = "failed"
                log_event(log, "offset_commit_failed", level=logging.ERROR, error_code=type(exc).__name__,
                          error_message=str(exc), operation="commit", reason=reason)
            else:
                for state in states:
                    state.committed.update(state.checkpointed)
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.checkpoint_seconds.observe(seconds)
            self.metrics.checkpoints.labels(outcome="written").inc(len(records))
            if offsets:
                self.metrics.commits.labels(outcome=outcome).inc()
        if records or offsets:
            log_event(log, "checkpoint_committed", operation="checkpoint", latency_ms=round(seconds * 1000, 3),
                      reason=reason, partitions=sorted(s.partition for s, _, _ in records),
                      bytes=sum(len(v) for _, _, v in records), commit=outcome,
                      offsets={f"{tp.topic}/{tp.partition}": o for tp, o in sorted(offsets.items())})
        # 6. Resume: the caller releases the processing lock.
        return len(records)

    # -- restore: step R1 -------------------------------------------------------------

    async def read_latest(self, partitions: Iterable[int]) -> dict[int, Checkpoint]:
        """The latest checkpoint of each partition number (absent: none, or a tombstone)."""
        wanted = {checkpoint_key(self.group_id, p): p for p in partitions}
        if not wanted:
            return {}
        reader = self._reader
        if reader is None:
            raise RuntimeError("Checkpointer not started")
        tps = sorted({TopicPartition(self.settings.topic, self.partition_of(p)) for p in wanted.values()})
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        latest: dict[int, tuple[bytes | None, int]] = {}
        pending = set(tps)
        deadline = time.monotonic() + self.settings.read_timeout_seconds
        while pending:
            if time.monotonic() > deadline:
                raise CheckpointError(
                    f"could not read topic {self.settings.topic!r} partitions {sorted(tp.partition for tp in pending)}"
                    f" to their end within {self.settings.read_timeout_seconds:g}s")
            batches = await reader.getmany(*pending, timeout_ms=200)
            for tp, messages in batches.items():
                for message in messages:
                    p = wanted.get(message.key)
                    if p is not None:
                        latest[p] = (message.value, message.offset)
            for tp in list(pending):
                highwater = reader.highwater(tp)  # from fetch responses (not ListOffsets: see above)
                if highwater is not None and await reader.position(tp) >= highwater:
                    pending.discard(tp)
        out = {}
        for p, (value, offset) in latest.items():
            if value:  # a tombstone (None or empty) deletes the checkpoint
                checkpoint = decode(value, offset)
                if checkpoint.partition != p:
                    raise CheckpointError(f"checkpoint under key {self.group_id}/{p} is for partition "
                                          f"{checkpoint.partition}")
                out[p] = checkpoint
        return out
