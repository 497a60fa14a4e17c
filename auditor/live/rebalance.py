"""Partition handover: what a member does when the group gives it partitions or takes them away.

aiokafka calls `RebalanceListener` from its coordinator task, concurrently
with the consume loop; both take the auditor's lock, so a handover never
interleaves with a batch (auditor.live.consumer, "Concurrency").

Revoke: checkpoint and commit the partitions given up (auditor.live.checkpoint,
"Commit", steps 1-6), then drop their engines; a revoked state that was saved is
parked, and kept if the same partition comes back before anyone wrote a newer
checkpoint. Assign: read the latest checkpoint of each new partition
(R1), restore its engine (R2) or start empty (R3), and seek every topic of the
partition to the offsets the state reflects: the checkpoint wins over the
group's committed offsets.

`PartitionHandover` is a part of `LiveAuditor` (as `HistoryVerdicts` is of the
engine), kept apart so each file reads in one sitting; it uses the auditor's
lock, owned and parked states, checkpointer, consumer and metrics.
"""

from __future__ import annotations

import logging
import time

from aiokafka import ConsumerRebalanceListener, TopicPartition

from ..engine import AuditEngine
from ..logs import log_event
from ..snapshot import restore
from .checkpoint import PartitionState
from .partitions import PartitionAuthority

log = logging.getLogger("auditor.live.consumer")  # one logger per member: its events read as one stream


class RebalanceListener(ConsumerRebalanceListener):
    def __init__(self, auditor: "PartitionHandover") -> None:
        self.auditor = auditor

    async def on_partitions_revoked(self, revoked) -> None:
        await self.auditor._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        await self.auditor._on_assigned(set(assigned))


class PartitionHandover:
    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Checkpoint and commit the revoked partitions, then drop their engines."""
        self.readiness.set_not_ready("rebalancing")
        self._epoch += 1
        self.metrics.rebalances.labels(phase="revoked").inc()
        async with self._lock:
            partitions = sorted({tp.partition for tp in revoked} & set(self._owned))
            if not partitions:
                return
            saved = False
            if not self._poisoned and self._fatal is None:
                try:
                    await self._checkpoint("revoke", partitions)
                    saved = True
                except Exception as exc:
                    self._fail(exc)
            for p in partitions:
                state = self._owned.pop(p)
                self.process_tallies.retire(p, state.engine.tallies)
                self.metrics.forget_partition(p, self.config.topics.events)
                if saved:
                    self._parked[p] = state
            self.metrics.assigned.set(len(self._owned))
            log_event(log, "partitions_revoked", operation="rebalance", partitions=partitions, checkpointed=saved)

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Restore every newly assigned partition from its latest checkpoint and seek to its offsets."""
        self.metrics.rebalances.labels(phase="assigned").inc()
        async with self._lock:
            try:
                await self._restore(assigned)
            except Exception as exc:
                self._fail(exc)
                return
            finally:
                self._parked.clear()
                self._epoch += 1
            self.readiness.set_ready()

    async def _restore(self, assigned: set[TopicPartition]) -> None:
        cfg = self.config
        by_partition: dict[int, set[str]] = {}
        for tp in assigned:
            by_partition.setdefault(tp.partition, set()).add(tp.topic)
        incomplete = {p: sorted(set(cfg.topics.events) - topics) for p, topics in by_partition.items()
                      if topics != set(cfg.topics.events)}
        if incomplete:  # another assignor in the group, or topics that disagree
            log_event(log, "assignment_not_co_partitioned", level=logging.ERROR, operation="rebalance",
                      missing={str(p): t for p, t in incomplete.items()})
        new = sorted(p for p in by_partition if p not in self._owned)
        started = time.perf_counter()
        checkpoints = await self._checkpointer.read_latest(new)  # R1
        sources = {}
        for p in new:
            checkpoint, parked = checkpoints.get(p), self._parked.pop(p, None)
            view = PartitionAuthority(self.authority, p, self._partition_count, self._partition_of)
            if checkpoint is not None and parked is not None and parked.checkpoint_id == checkpoint.checkpoint_id:
                state, source = parked, "kept"  # our own last checkpoint is still the latest
            elif checkpoint is not None:  # R2
                engine = restore(checkpoint.snapshot, view, cfg.engine)
                state = PartitionState(p, engine, dict(checkpoint.offsets), dict(checkpoint.offsets),
                                       checkpoint_id=checkpoint.checkpoint_id)
                source = "checkpoint"
            else:  # R3
                state, source = PartitionState(p, AuditEngine(view, cfg.engine)), "empty"
            for topic, offset in state.offsets.items():  # the checkpoint wins over committed offsets
                tp = TopicPartition(topic, p)
                if tp in assigned:
                    self._consumer.seek(tp, offset)
            self._owned[p] = state
            self.process_tallies.adopt(p, state.engine.tallies)
            self.metrics.restores.labels(source=source).inc()
            sources[str(p)] = {"source": source, "offsets": dict(state.offsets)}
        self.metrics.assigned.set(len(self._owned))
        log_event(log, "partitions_assigned", operation="rebalance", partitions=sorted(by_partition),
                  restored=sources, latency_ms=round((time.perf_counter() - started) * 1000, 3))
