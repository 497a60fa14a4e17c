"""The live consumer's metrics: the audit counters of every owned partition, plus
the consumer's own (lag, rate, checkpoints, rebalances).

Audit counters. Each partition's engine carries its tallies since the
beginning of the partition's history (they are in its checkpoint). Exported
as they are, a worker's counters would jump when it takes a partition over
and fall when it gives one up, and Prometheus would read each fall as a
counter reset. So a worker exports what *it* audited: for each owned
partition, its tallies minus the tallies it was restored with, plus what the
partitions it gave up had added while it owned them. Counters are then
monotonic per process, and `sum(increase(...))` over the workers is the
group's. (Records audited again after a crash are counted again: the
counters, like the findings, are at-least-once; the engines' own tallies, in
`drain()`, are exact.)

Labels stay low-cardinality: topic and partition number at most.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from dataclasses import fields
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..state import Tallies

CHECKPOINT_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def combine(a: Tallies, b: Tallies, sign: int = 1) -> Tallies:
    """a + b (sign 1) or a - b (sign -1), field by field; a new object."""
    out = Tallies()
    for f in fields(Tallies):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, dict):
            value = dict(x)
            for k, v in y.items():
                value[k] = value.get(k, 0) + sign * v
        elif isinstance(x, list):
            value = [p + sign * q for p, q in zip(x, y)]
        else:
            value = x + sign * y
        setattr(out, f.name, value)
    return out


def total(tallies: Iterable[Tallies]) -> Tallies:
    out = Tallies()
    for t in tallies:
        out = combine(out, t)
    return out


class ProcessTallies:
    """What this process audited (see the module doc): `owned()` yields
    (partition, engine tallies) of the partitions held now."""

    def __init__(self, owned: Callable[[], Iterable[tuple[int, Tallies]]]) -> None:
        self._owned = owned
        self._baselines: dict[int, Tallies] = {}
        self._retired = Tallies()

    def adopt(self, partition: int, tallies: Tallies) -> None:
        self._baselines[partition] = copy.deepcopy(tallies)

    def retire(self, partition: int, tallies: Tallies) -> None:
        baseline = self._baselines.pop(partition, None)
        self._retired = combine(self._retired, tallies if baseline is None else combine(tallies, baseline, -1))

    def __call__(self) -> Tallies:
        out = self._retired
        for partition, tallies in self._owned():
            baseline = self._baselines.get(partition)
            out = combine(out, tallies if baseline is None else combine(tallies, baseline, -1))
        return out


class Rate:
    """Events per second over the last `window` seconds."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self._clock = window, clock
        self._samples: deque[tuple[float, int]] = deque()
        self._sum = 0

    def add(self, n: int) -> float:
        now = self._clock()
        self._samples.append((now, n))
        self._sum += n
        while self._samples and self._samples[0][0] < now - self.window:
            self._sum -= self._samples.popleft()[1]
        span = max(now - self._samples[0][0], 1.0) if self._samples else self.window
        return self._sum / span


class LiveMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = self.registry = registry
        self.lag = Gauge("auditor_consumer_lag", "Records not yet audited: high-water mark minus the "
                         "next offset to audit, per owned event topic partition", ["topic", "partition"],
                         registry=r)
        self.records = Counter("auditor_records_consumed", "Kafka records audited by this process "
                               "(accepted, rejected and replayed reads)", registry=r)
        self.rate = Gauge("auditor_events_per_second", "Records audited per second over the last 10 s",
                          registry=r)
        self.assigned = Gauge("auditor_assigned_partitions", "Partition numbers this member owns "
                              "(each covers that partition of every event topic)", registry=r)
        self.rebalances = Counter("auditor_rebalances", "Partition assignments received and revoked",
                                  ["phase"], registry=r)
        self.restores = Counter("auditor_partition_restores", "Partitions taken over, by where their state "
                                "came from (checkpoint, kept = our own last checkpoint, empty)", ["source"],
                                registry=r)
        self.checkpoints = Counter("auditor_checkpoints", "Checkpoint records written", ["outcome"], registry=r)
        self.commits = Counter("auditor_offset_commits", "Offset commits after a checkpoint, by outcome "
                               "(ok, refused = group rebalancing, failed)", ["outcome"], registry=r)
        self.checkpoint_bytes = Gauge("auditor_checkpoint_bytes", "Size of the partition's last checkpoint "
                                      "record", ["partition"], registry=r)
        self.checkpoint_seconds = Histogram("auditor_checkpoint_duration_seconds", "One checkpoint commit: "
                                            "findings flush, snapshots, produce, offset commit",
                                            buckets=CHECKPOINT_SECONDS_BUCKETS, registry=r)
        self.findings = Counter("auditor_findings_emitted", "Findings written to the sinks (re-emissions "
                                "after a crash included)", ["kind"], registry=r)
        self.chats = Gauge("auditor_tracked_chats", "Chats with open state in this process's engines "
                           "(memory grows with these and the open window)", registry=r)
        self.retired_chats = Gauge("auditor_retired_chats", "Quiet chats kept as a few numbers each "
                                   "until their next event (auditor.horizon)", registry=r)
        self.closed = Counter("auditor_sequences_closed", "Sequences closed past the grace period "
                              "(auditor.horizon): reported and forgotten", registry=r)
        self.discarded = Counter("auditor_batches_discarded", "Fetched batches dropped because the "
                                 "assignment changed meanwhile (read again from the checkpoint)", registry=r)

    def forget_partition(self, partition: int, topics: Iterable[str]) -> None:
        for topic in topics:
            try:
                self.lag.remove(topic, str(partition))
            except KeyError:
                pass
        try:
            self.checkpoint_bytes.remove(str(partition))
        except KeyError:
            pass
