"""`LiveAuditor`: the production consumer group, on aiokafka (docs/consumer-framework.md).

One member of a consumer group subscribed to the three event topics with the
range assignor, so that partition p of every topic (the same chats: the
producers key by chat_id and the topics have the same partition count, checked
at start) lands on one member. The member keeps ONE `AuditEngine` per partition
number p it owns, and audits each fetched batch with the same protocol as
`auditor.replay.replay_live`:

1. the batch's records are grouped by partition number and turned into
   `Record`s (payload bytes as they are; headers as the flat str list);
2. each partition's engine admits its records (`engine.admit`);
3. the verification policy picks the keys to read; one read through the
   shared `TableAuthority` fetches them for all partitions of the batch,
   waiting out an outage (`Patience`; never a verdict on a missing answer);
4. each engine settles what was just read and audits its records
   (`engine.settle`, `engine.apply`);
5. record-level findings go to the sinks at once (auditor.live.sinks).

Between batches, state is checkpointed with the offsets it reflects, every
`interval_seconds` or `every_records` records (auditor.live.checkpoint has the
protocol as numbered steps); a rebalance checkpoints and commits before giving
partitions up and restores them from their latest checkpoint when they come
(auditor.live.rebalance).

    auditor = LiveAuditor(config)
    task = asyncio.create_task(auditor.run())   # start, consume until stop(), close
    ...
    verdicts = await auditor.drain()            # checkpoint + whole-history verdicts
    auditor.stop(); await task                  # finish the batch, checkpoint, commit, leave

Concurrency. aiokafka runs the rebalance listener in its coordinator task,
concurrently with the consume loop (whenever the loop awaits: a fetch, a
DynamoDB read). One asyncio lock serialises them: the loop holds it for a
whole batch (audit, and a due checkpoint), the listener for a revoke
(checkpoint, commit, drop) or an assignment (read checkpoints, restore, seek).
A batch fetched before an assignment changed is not audited: the consumer is
rewound to the offsets the state reflects and reads it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from prometheus_client import CollectorRegistry

from ..authority import NoAuthority
from ..engine import Rejection
from ..errors import ConfigError
from ..findings import Finding
from ..horizon import close as horizon_close, due as horizon_due
from ..http import HealthServer, Heartbeat, Readiness
from ..kafka.topics import create_topics, existing_topics
from ..logs import log_event
from ..metrics import DynamoMetrics, audit_registry
from ..records import Record
from ..replay import Patience, _patiently
from ..snapshot import restore, snapshot
from ..state import Tallies
from .checkpoint import Checkpointer, PartitionState
from .config import LiveConfig
from .metrics import LiveMetrics, ProcessTallies, Rate
from .partitions import PARTITIONERS
from .rebalance import PartitionHandover, RebalanceListener
from .sinks import DeadLetterFile, FindingEmitter

log = logging.getLogger(__name__)

__all__ = ["LiveAuditor", "PartitionVerdicts"]


@dataclass
class PartitionVerdicts:
    """`drain()`'s answer for one partition: the whole-history findings
    (`engine.finish()` on a copy of the state) and the tallies after them."""

    partition: int
    findings: list[Finding]
    tallies: Tallies
    offsets: dict[str, int] = field(default_factory=dict)


def _flat_headers(headers) -> tuple[str | None, ...]:
    """aiokafka's ((name, bytes), ...) as Record's flat name, value, ... sequence.

    A tuple rather than a list: it reads the same (`Record.traceparent`, the
    dead-letter JSON) and, holding only strings, is not tracked by the garbage
    collector, which at 100,000 records/s matters (see `_gc_for_streaming`)."""
    if len(headers) == 1:  # the common case: just traceparent
        name, value = headers[0]
        return (name, value.decode("utf-8", "replace") if value is not None else None)
    out: list[str | None] = []
    for name, value in headers:
        out.append(name)
        out.append(value.decode("utf-8", "replace") if value is not None else None)
    return tuple(out)


_gc_users = 0
_gc_saved: tuple[int, ...] | None = None


@contextlib.contextmanager
def _gc_for_streaming():
    """Every batch allocates tens of thousands of short-lived objects beside a
    large, long-lived state: collect the young generation less often, and keep
    what exists at start (clients, authority) out of the collector's scans.
    The same policy as replay's; restored when the last auditor of the
    process stops (tests and the demo run two in one process)."""
    global _gc_users, _gc_saved
    if _gc_users == 0:
        _gc_saved = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(50_000, *_gc_saved[1:])
    _gc_users += 1
    try:
        yield
    finally:
        _gc_users -= 1
        if _gc_users == 0:
            gc.set_threshold(*_gc_saved)
            gc.unfreeze()


class LiveAuditor(PartitionHandover):
    def __init__(self, config: LiveConfig, *, registry: CollectorRegistry | None = None,
                 session=None) -> None:
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = LiveMetrics(self.registry)
        self.dynamo_metrics = DynamoMetrics(self.registry)  # auditor_pending_verdicts lives here
        self.process_tallies = ProcessTallies(lambda: ((p, s.engine.tallies) for p, s in self._owned.items()))
        audit_registry(self.process_tallies, self.registry)
        self.heartbeat = Heartbeat(config.liveness_silence_seconds)
        self.readiness = Readiness("starting")
        self.instance = config.instance or f"{socket.gethostname()}-{os.getpid()}"
        self.http: HealthServer | None = None
        self._session = session
        self._owned: dict[int, PartitionState] = {}
        self._parked: dict[int, PartitionState] = {}  # given up in a revoke; kept if they come back
        self._lock = asyncio.Lock()
        self._epoch = 0
        self._stop = asyncio.Event()
        self._fatal: BaseException | None = None
        self._poisoned = False  # an exception mid-batch: the state may be half-applied, never save it
        self._started = self._closed = self._cancelled = False
        self._last_checkpoint = time.monotonic()
        self._last_lag = 0.0
        self._last_horizon = time.monotonic()
        self._rate = Rate()
        self._stack = contextlib.AsyncExitStack()
        self._consumer: AIOKafkaConsumer | None = None
        self._partition_count = 0
        self._policy = config.verification
        self._patience = Patience(max_wait=config.authority_wait)
        self._partition_of = PARTITIONERS[config.chat_partitioner]
        self.authority = NoAuthority()

    # -- public ----------------------------------------------------------------------

    @property
    def assigned_partitions(self) -> list[int]:
        return sorted(self._owned)

    def positions(self) -> dict[tuple[str, int], int]:
        """(topic, p) -> the next offset to audit, for what this member owns and has audited."""
        return {(topic, p): offset for p, state in self._owned.items() for topic, offset in state.offsets.items()}

    @property
    def ready(self) -> bool:
        return self.readiness.ready

    @property
    def failure(self) -> BaseException | None:
        return self._fatal

    def stop(self) -> None:
        """Ask the consume loop to finish its batch and close (signal-handler safe)."""
        self._stop.set()

    async def run(self) -> None:
        """Start (unless started), consume until `stop()` or a fatal error, close. Raises that error."""
        try:
            if not self._started:
                await self.start()
            with _gc_for_streaming():
                await self._consume()
        except asyncio.CancelledError:
            # Cancelled is not stopped: the clients' own tasks are being cancelled
            # too, so no checkpoint is attempted; the last durable one stays the
            # restart point.
            self._cancelled = True
            raise
        finally:
            await self.close()
        if self._fatal is not None:
            raise self._fatal

    async def start(self) -> None:
        cfg = self.config
        self._started = True
        stack = self._stack
        try:
            await self._prepare_topics()
            kafka = cfg.kafka.client_kwargs()
            producer = AIOKafkaProducer(
                **kafka, acks="all", enable_idempotence=False, linger_ms=5, request_timeout_ms=30_000,
                max_request_size=max(1024 * 1024, cfg.checkpoint.max_bytes + 64 * 1024))
            await producer.start()
            stack.push_async_callback(producer.stop)
            self._producer = producer
            self._checkpointer = Checkpointer(cfg.checkpoint, cfg.group_id, cfg.kafka, producer,
                                              self._checkpoint_partitions, self.instance, self.metrics)
            await self._checkpointer.start()
            stack.push_async_callback(self._checkpointer.stop)
            self._emitter = FindingEmitter(producer, cfg.findings_topic, cfg.findings_file, self.metrics)
            stack.callback(self._emitter.close)
            self._dead_letter = DeadLetterFile(cfg.dead_letter_file) if cfg.dead_letter_file else None
            if self._dead_letter is not None:
                stack.callback(self._dead_letter.close)
            if cfg.dynamo is not None:
                from ..dynamo.authority import TableAuthority
                from ..dynamo.reader import AuthorityReader

                reader = await stack.enter_async_context(
                    AuthorityReader(cfg.dynamo, session=self._session, metrics=self.dynamo_metrics))
                await reader.require_tables(messages=cfg.has_messages_table, counters=cfg.has_counters_table)
                self.authority = TableAuthority(reader, cfg.has_messages_table, cfg.has_counters_table,
                                                complete=self._policy.reads_everything)
            if cfg.http_host is not None:
                self.http = HealthServer(self.registry, alive=self.heartbeat, ready=self.readiness,
                                         host=cfg.http_host, port=cfg.http_port)
                await self.http.start()
                stack.push_async_callback(self.http.stop)
            c = cfg.consumer
            consumer = AIOKafkaConsumer(
                **kafka, group_id=cfg.group_id, enable_auto_commit=False,
                auto_offset_reset=c.auto_offset_reset,
                partition_assignment_strategy=(RangePartitionAssignor,),
                session_timeout_ms=c.session_timeout_ms, heartbeat_interval_ms=c.heartbeat_interval_ms,
                rebalance_timeout_ms=c.rebalance_timeout_ms, max_poll_interval_ms=c.max_poll_interval_ms)
            consumer.subscribe(list(cfg.topics.events), listener=RebalanceListener(self))
            self._consumer = consumer
            await consumer.start()
            log_event(log, "auditor_started", operation="start", group_id=cfg.group_id,
                      topics=list(cfg.topics.events), partitions=self._partition_count,
                      checkpoint_topic=cfg.checkpoint.topic, findings_topic=cfg.findings_topic,
                      http=self.http.url if self.http else None, verify=self._policy.mode,
                      authority="dynamodb" if cfg.dynamo is not None else "none")
        except BaseException:
            await self._release()
            raise

    async def drain(self, emit: bool = True) -> dict[int, PartitionVerdicts]:
        """Checkpoint, then the whole-history verdicts of every owned partition.

        The live engines are untouched: each partition's state is copied (through
        its snapshot) and the copy finished, after reading every owned chat whole
        from the authority. `emit` sends these findings to the sinks as well
        (they carry their `finding_id`, so repeating a drain repeats ids only).
        """
        async with self._lock:
            self._raise_if_failed()
            await self._checkpoint("drain")
            owned = dict(sorted(self._owned.items()))
            if hasattr(self.authority, "prepare_finish"):
                chats = set().union(*(state.engine.chat_ids() for state in owned.values()))
                await _patiently(lambda: self.authority.prepare_finish(chats), self._patience,
                                 self._pending, len(chats))
            out: dict[int, PartitionVerdicts] = {}
            for p, state in owned.items():
                twin = restore(snapshot(state.engine), state.engine.authority, self.config.engine)
                twin.settle(twin.unverified_keys())
                findings = twin.finish()
                out[p] = PartitionVerdicts(p, findings, twin.tallies, dict(state.offsets))
            if emit:
                await self._emitter.emit(f for v in out.values() for f in v.findings)
                await self._emitter.flush()
            log_event(log, "drained", operation="drain", partitions=list(out),
                      findings=sum(len(v.findings) for v in out.values()))
            return out

    async def close(self) -> None:
        """Final checkpoint and commit (unless the state is poisoned), leave the group, stop everything."""
        if self._closed:
            return
        self._closed = True
        self.readiness.set_not_ready("stopping")
        try:
            # After any fatal error the last durable checkpoint stays the restart
            # point: the state may be half-applied, or findings undelivered.
            if (self._consumer is not None and self._owned and self._fatal is None
                    and not (self._poisoned or self._cancelled)):
                async with self._lock:
                    try:
                        await self._checkpoint("shutdown")
                    except Exception as exc:
                        self._fail(exc)
        finally:
            await self._release()
            log_event(log, "auditor_stopped", operation="stop", level=logging.ERROR if self._fatal else logging.INFO,
                      error_code=type(self._fatal).__name__ if self._fatal else None,
                      error_message=str(self._fatal) if self._fatal else None)

    # -- startup ---------------------------------------------------------------------

    async def _prepare_topics(self) -> None:
        """Event topics must exist with one partition count; create the checkpoint and
        findings topics when absent (and allowed)."""
        cfg = self.config
        admin = AIOKafkaAdminClient(**cfg.kafka.client_kwargs())
        await admin.start()
        try:
            present = await existing_topics(admin)
        finally:
            await admin.close()
        events = cfg.topics.events
        missing = [t for t in events if t not in present]
        if missing:
            raise ConfigError(f"event topic(s) {', '.join(map(repr, missing))} do not exist on "
                              f"{cfg.kafka.bootstrap_servers}")
        counts = {t: present[t] for t in events}
        if len(set(counts.values())) != 1:
            detail = ", ".join(f"{t!r}: {n}" for t, n in counts.items())
            raise ConfigError(f"the event topics must have the same partition count, so that partition p "
                              f"of every topic holds the same chats; they have {detail}")
        n = self._partition_count = counts[events[0]]
        wanted: dict[str, tuple[int, dict]] = {}
        ck = cfg.checkpoint
        if ck.topic not in present:
            wanted[ck.topic] = (ck.partitions or n, {
                "cleanup.policy": "compact",
                "max.message.bytes": str(ck.max_bytes + 64 * 1024),
                "segment.ms": str(3_600_000),  # let compaction reach old checkpoints within the hour
                "min.cleanable.dirty.ratio": "0.1"})
        if cfg.findings_topic and cfg.findings_topic not in present:
            wanted[cfg.findings_topic] = (n, {})
        if wanted and not cfg.create_topics:
            raise ConfigError(f"topic(s) {', '.join(map(repr, wanted))} do not exist and topic creation is off")
        for topic, (partitions, topic_config) in wanted.items():
            await create_topics(cfg.kafka.bootstrap_servers, {topic: partitions}, topic_config,
                                replication_factor=cfg.topic_replication_factor,
                                client_id=cfg.kafka.client_id, **dict(cfg.kafka.security))
            log_event(log, "topic_created", operation="create_topics", topic=topic, partitions=partitions)
        self._checkpoint_partitions = present.get(ck.topic) or wanted[ck.topic][0]

    async def _release(self) -> None:
        consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None:
                await consumer.stop()  # leaves the group (LeaveGroup) after a final heartbeat
        finally:
            for p in list(self._owned):
                state = self._owned.pop(p)
                self.process_tallies.retire(p, state.engine.tallies)
            await self._stack.aclose()

    # -- the consume loop ------------------------------------------------------------

    async def _consume(self) -> None:
        consumer = self._consumer
        c = self.config.consumer
        while not self._stop.is_set():
            epoch = self._epoch
            batch = await consumer.getmany(timeout_ms=c.poll_timeout_ms, max_records=c.max_records)
            self.heartbeat.beat()
            async with self._lock:
                if self._fatal is not None:
                    break
                if epoch != self._epoch:  # the assignment changed while fetching
                    if batch:
                        self._rewind(batch)
                    continue
                if batch:
                    try:
                        await self._audit(batch)
                    except BaseException as exc:
                        self._poisoned = True
                        self._fail(exc)
                        break
                self._update_lag(force=not batch)
                if self._horizon_due():
                    try:
                        await self._close_past_grace()
                    except BaseException as exc:
                        self._poisoned = True
                        self._fail(exc)
                        break
                if self._checkpoint_due():
                    try:
                        await self._checkpoint("interval")
                    except Exception as exc:
                        self._fail(exc)
                        break

    def _rewind(self, batch) -> None:
        self.metrics.discarded.inc()
        assignment = self._consumer.assignment()
        for tp, messages in batch.items():
            state = self._owned.get(tp.partition)
            if state is not None and tp in assignment:
                self._consumer.seek(tp, state.offsets.get(tp.topic, messages[0].offset))

    async def _audit(self, batch) -> None:
        owned = self._owned
        per_partition: dict[int, list[Record]] = {}
        n = 0
        for tp, messages in batch.items():
            p = tp.partition
            state = owned.get(p)
            if state is None or not messages:  # no longer ours
                continue
            topic = tp.topic
            records = per_partition.get(p)
            if records is None:
                records = per_partition[p] = []
            append = records.append
            for m in messages:
                key, headers = m.key, m.headers
                append(Record(topic, p, m.offset, m.value,
                              key.decode("utf-8", "replace") if key is not None else None,
                              _flat_headers(headers) if headers else None))
            state.offsets[topic] = messages[-1].offset + 1
            state.records_since_checkpoint += len(messages)
            n += len(messages)
        if not per_partition:
            return
        if hasattr(self.authority, "prefetch"):
            policy = self._policy
            admitted = {p: owned[p].engine.admit(records) for p, records in per_partition.items()}
            keys = {p: policy.keys_to_read(events, owned[p].engine) for p, events in admitted.items()}
            wanted = set().union(*keys.values())
            waiting = sum(map(len, admitted.values()))
            await _patiently(lambda: self.authority.prefetch(wanted), self._patience, self._pending, waiting)
            for p, events in admitted.items():
                engine = owned[p].engine
                engine.settle(keys[p])
                await self._emit(engine.apply(events))
        else:
            for p, records in per_partition.items():
                await self._emit(owned[p].engine.process(records))
        self.metrics.records.inc(n)
        self.metrics.rate.set(self._rate.add(n))

    def _horizon_due(self) -> bool:
        if self.config.grace is None:
            return False
        now = time.monotonic()
        if now - self._last_horizon < self.config.horizon_tick_seconds:
            return False
        self._last_horizon = now
        return True

    async def _close_past_grace(self) -> None:
        """Close, in every owned partition, the history past the grace period
        (auditor.horizon): read again what the verdicts need, report, forget."""
        now = time.time()
        owned = self._owned
        due = {p: t for p, state in owned.items() if (t := horizon_due(state.engine, now, self.config.grace))}
        self.metrics.chats.set(sum(len(state.engine.chats) for state in owned.values()))
        self.metrics.retired_chats.set(sum(state.engine.retired_chats for state in owned.values()))
        if not due:
            return
        authority = self.authority
        fetching = hasattr(authority, "refresh")
        # Unverified sequences are read at close only under a policy that reads
        # every claim anyway (none are left then); the others forget them.
        keys = {p: owned[p].engine.closing_keys(t, unverified=self._policy.reads_everything) if fetching else []
                for p, t in due.items()}
        if fetching:
            wanted = set().union(*keys.values())
            chats = set().union(*due.values())
            await _patiently(lambda: authority.refresh(wanted, chats), self._patience, self._pending, len(wanted))
        for p, through in due.items():
            closed = horizon_close(owned[p].engine, through, keys[p])
            await self._emit((closed.findings, []))
            self.metrics.closed.inc(closed.sequences)
            if fetching:
                authority.forget(through)
                authority.release(closed.retired)

    async def _emit(self, output: tuple[list[Finding], list[Rejection]]) -> None:
        findings, rejections = output
        if findings:
            await self._emitter.emit(findings)
        if rejections:
            if self._dead_letter is not None:
                self._dead_letter.write("kafka", rejections)
            log_event(log, "records_rejected", level=logging.WARNING, operation="audit", count=len(rejections),
                      reasons=sorted({r.reason for r in rejections}),
                      records=[list(r.record.coordinates) for r in rejections[:8]])

    def _pending(self, waiting: int) -> None:
        self.dynamo_metrics.pending_verdicts.set(waiting)
        self.heartbeat.beat()  # waiting for DynamoDB is not being stuck

    def _update_lag(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_lag < 0.5:
            return
        self._last_lag = now
        consumer = self._consumer
        assignment = consumer.assignment()
        for p, state in self._owned.items():
            for topic in self.config.topics.events:
                tp = TopicPartition(topic, p)
                if tp not in assignment:
                    continue
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue
                position = state.offsets.get(topic)
                self.metrics.lag.labels(topic=topic, partition=str(p)).set(
                    max(0, highwater - position) if position is not None else highwater)

    def _checkpoint_due(self) -> bool:
        since = sum(state.records_since_checkpoint for state in self._owned.values())
        if not since:
            return False
        ck = self.config.checkpoint
        return since >= ck.every_records or time.monotonic() - self._last_checkpoint >= ck.interval_seconds

    async def _checkpoint(self, reason: str, partitions: Sequence[int] | None = None) -> int:
        """Steps 2-5 of the checkpoint protocol; the caller holds the lock (steps 1 and 6)."""
        chosen = sorted(self._owned) if partitions is None else sorted(partitions)
        states = [self._owned[p] for p in chosen if p in self._owned]
        written = await self._checkpointer.commit(states, self._consumer, self._emitter.flush, reason)
        if partitions is None:
            self._last_checkpoint = time.monotonic()
        return written

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
            log_event(log, "auditor_failed", level=logging.ERROR, exc_info=exc, operation="consume")
        self.readiness.set_not_ready(f"failed: {type(exc).__name__}")
        self._stop.set()

    def _raise_if_failed(self) -> None:
        if self._fatal is not None:
            raise self._fatal
