"""One partition's view of the shared authority.

The consumer keeps one engine per partition number p (covering (topic, p) of
every event topic) and one authority shared by all of them: chats never cross
partitions, so their cached facts never collide. The only question whose
answer depends on the partition is "which chats does the table hold?" (asked by
`AuditEngine.finish` to report chats that have items but no events): each
partition must answer with its own chats, or every partition would report
every other partition's authority-only chats.

Which partition such a chat belongs to is the producers' choice: the
partitioner that maps a chat_id key to a partition. `murmur2` is Kafka's Java
client default (and aiokafka's, kafka-python's); `crc32` is librdkafka's
`consistent`/`consistent_random` default (confluent-kafka, kcat) and the one
`auditor.workload` uses; `none` reports no authority-only chat live (choose it
when the producers partition otherwise: a wrong guess would report a chat seen
by another partition as all gaps).
"""

from __future__ import annotations

import zlib
from typing import Callable, Iterable, Mapping

from aiokafka.partitioner import murmur2

from ..authority import Authority

Partitioner = Callable[[str, int], int | None]


def _murmur2(chat_id: str, partitions: int) -> int:
    return (murmur2(chat_id.encode()) & 0x7FFFFFFF) % partitions


def _crc32(chat_id: str, partitions: int) -> int:
    return zlib.crc32(chat_id.encode()) % partitions


def _none(chat_id: str, partitions: int) -> None:
    return None


PARTITIONERS: dict[str, Partitioner] = {"murmur2": _murmur2, "crc32": _crc32, "none": _none}


class PartitionAuthority:
    """`authority` as partition `partition` of `partitions` sees it: every
    question is passed through, except `chat_ids`, which keeps this partition's."""

    def __init__(self, authority: Authority, partition: int, partitions: int,
                 partitioner: Partitioner) -> None:
        self.inner = authority
        self.partition, self.partitions, self._partition_of = partition, partitions, partitioner
        self.has_messages = authority.has_messages
        self.has_counters = authority.has_counters
        self.complete = getattr(authority, "complete", True)

    def message_id(self, chat_id: str, sequence: int) -> str | None:
        return self.inner.message_id(chat_id, sequence)

    def items_of(self, chat_id: str) -> Mapping[int, str]:
        return self.inner.items_of(chat_id)

    def sequence_bounds(self, chat_id: str) -> tuple[int, int] | None:
        return self.inner.sequence_bounds(chat_id)

    def last_sequence(self, chat_id: str) -> int | None:
        return self.inner.last_sequence(chat_id)

    def chat_ids(self) -> Iterable[str]:
        p, n, of = self.partition, self.partitions, self._partition_of
        return (chat for chat in self.inner.chat_ids() if of(chat, n) == p)
