"""The audit engine: a pure state machine from records to findings.

History in, data out. The engine imports no Kafka, boto, asyncio or Prometheus;
replay, the live consumer and the benchmarks all feed it the same `Record`s and
read the same `Tallies` and `Finding`s. The finding definitions live in
`auditor.findings`.

What it keeps, and why (memory grows with chats and open anomalies, not with
records):

per partition   the highest offset processed: replayed reads are skipped.
per chat        `ChatState`: lo/hi of accepted sequences and the record that
                first carried hi (counter evidence); the persisted set and, with
                the messages table, the set of sequences whose reference message
                was already claimed, both as `SequenceRuns` (one run per hole);
                the highest persisted sequence (out-of-order test).
per anomalous   `SequenceAnomaly`, only where an event carried a message_id that
sequence        is not the reference id: which ids, whether each was persisted or
                claimed, and up to EVIDENCE_LIMIT records. A sequence whose only
                id is the authority's needs no entry: the authority remembers
                the id for us, and the runs say whether it was persisted/claimed.
without the     the first message_id at every sequence (`first_ids`), since no
messages table  one else can tell a producer retry from a duplicate sequence
                later. Memory then grows with messages: documented, not hidden.
per delivery    (recipient, message_id) -> count and evidence, forgotten once the
                chat's hi passes the delivery's sequence by `delivery_window`,
                unless it is already a duplicate (then it is a finding).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from .authority import Authority
from .errors import RecordRejected
from .events import ACKED, DELIVERED, EVENT_TYPES, PERSISTED, parse_event, trace_id_from_header
from .findings import (
    CLOCK_SKEW, COUNT_KINDS, COUNTER_CORRUPTION, DUPLICATE_DELIVERY, DUPLICATE_SEQUENCE,
    EVIDENCE_LIMIT, MESSAGE_LOSS, OUT_OF_ORDER, PUBLISH_GAP, REDELIVERED, SEQUENCE_GAP,
    SEQUENCE_HOLE, UNVERIFIED, Evidence, Finding,
)
from .runs import SequenceRuns

# ADR-012 Appendix A buckets for fanout_delivery_latency_seconds.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class Record(NamedTuple):
    """One Kafka record as every adapter hands it to the engine."""

    topic: str
    partition: int
    offset: int
    value: bytes | str | None
    traceparent: str | None = None
    raw: bytes | str | None = None  # verbatim input for the dead-letter output


class Rejection(NamedTuple):
    reason: str
    error: str
    record: Record


@dataclass(frozen=True, slots=True)
class EngineConfig:
    # Gateway retries land within seconds; 1,024 later messages in the same
    # chat is far beyond any retry, and bounds what a busy chat holds.
    delivery_window: int = 1024


@dataclass
class Tallies:
    """Every count the report and the metrics need, kept as plain ints."""

    events_by_type: dict = field(default_factory=lambda: dict.fromkeys(EVENT_TYPES, 0))
    rejected_by_reason: dict = field(default_factory=dict)
    replayed_records: int = 0
    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNT_KINDS, 0))
    ack_persisted: dict = field(default_factory=lambda: {"true": 0, "false": 0})
    counter_by_reason: dict = field(default_factory=lambda: {"missing": 0, "behind": 0})
    gaps_by_classification: dict = field(
        default_factory=lambda: {PUBLISH_GAP: 0, SEQUENCE_HOLE: 0, UNVERIFIED: 0})
    delivery_by_status: dict = field(default_factory=lambda: {"delivered": 0, "duplicate": 0})
    latency_bucket_counts: list = field(default_factory=list)  # per bucket, last is +Inf
    latency_sum: float = 0.0

    @property
    def events_total(self) -> int:
        return sum(self.events_by_type.values())

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


class IdState:
    __slots__ = ("persisted", "claimed", "evidence")

    def __init__(self) -> None:
        self.persisted = False
        self.claimed = False
        self.evidence: list[Evidence] = []


class SequenceAnomaly:
    """A sequence where some event carried a non-reference message_id."""

    __slots__ = ("reference_persisted", "ids")

    def __init__(self, reference_persisted: bool) -> None:
        self.reference_persisted = reference_persisted
        self.ids: dict[str, IdState] = {}


class ChatState:
    __slots__ = ("lo", "hi", "hi_evidence", "persisted", "claimed", "max_persisted",
                 "anomalies", "first_ids", "deliveries")

    def __init__(self) -> None:
        self.lo = 0
        self.hi = 0
        self.hi_evidence: Evidence | None = None
        self.persisted = SequenceRuns()
        self.claimed = SequenceRuns()
        self.max_persisted = 0
        self.anomalies: dict[int, SequenceAnomaly] = {}
        self.first_ids: dict[int, str] = {}
        self.deliveries: deque = deque()  # (sequence, delivery key) in arrival order


class DeliveryState:
    __slots__ = ("count", "recipient_id", "message_id", "chat_id", "sequence", "evidence")

    def __init__(self, recipient_id: str, message_id: str, chat_id: str, sequence: int) -> None:
        self.count = 0
        self.recipient_id = recipient_id
        self.message_id = message_id
        self.chat_id = chat_id
        self.sequence = sequence
        self.evidence: list[Evidence] = []


class AuditEngine:
    def __init__(self, authority: Authority, config: EngineConfig = EngineConfig()) -> None:
        self.authority = authority
        self.config = config
        self.tallies = Tallies()
        self.tallies.latency_bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.chats: dict[str, ChatState] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        self._deliveries: dict[tuple[str, str], DeliveryState] = {}
        self._closed_duplicates: list[DeliveryState] = []
        self._findings: list[Finding] = []
        self._rejections: list[Rejection] = []

    # -- input ---------------------------------------------------------------

    def process(self, records: Iterable[Record]) -> tuple[list[Finding], list[Rejection]]:
        """Feed records in order; return the findings and rejections they produced.

        Record-level findings (out_of_order, clock_skew) come out here; findings
        that need the whole history (loss, duplicates, gaps, counters) come out
        of `finish`.
        """
        offsets = self._offsets
        tallies = self.tallies
        for record in records:
            key = (record.topic, record.partition)
            last = offsets.get(key)
            if last is not None and record.offset <= last:
                tallies.replayed_records += 1
                continue
            offsets[key] = record.offset
            try:
                event = parse_event(record.value)
            except RecordRejected as exc:
                self.reject(exc.reason, str(exc), record)
                continue
            self._accept(event, record)
        findings, self._findings = self._findings, []
        rejections, self._rejections = self._rejections, []
        return findings, rejections

    def reject(self, reason: str, error: str, record: Record) -> None:
        self.count_rejected(reason)
        self._rejections.append(Rejection(reason, error, record))

    def count_rejected(self, reason: str) -> None:
        """Count a rejection; adapters call this for input they rejected themselves."""
        by_reason = self.tallies.rejected_by_reason
        by_reason[reason] = by_reason.get(reason, 0) + 1

    def _accept(self, event: dict, record: Record) -> None:
        event_type = event["event_type"]
        chat_id = event["chat_id"]
        seq = event["sequence"]
        mid = event["message_id"]
        tallies = self.tallies
        tallies.events_by_type[event_type] += 1
        trace = trace_id_from_header(record.traceparent) or event.get("trace_id")
        evidence = ((record.topic, record.partition, record.offset), trace)

        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.chats[chat_id] = ChatState()
            chat.lo = seq
        elif seq < chat.lo:
            chat.lo = seq
        if seq > chat.hi:
            chat.hi = seq
            chat.hi_evidence = evidence

        authority = self.authority
        if authority.has_messages:
            reference = authority.message_id(chat_id, seq)
        else:
            reference = chat.first_ids.setdefault(seq, mid)

        anomaly = chat.anomalies.get(seq)
        if mid == reference:
            id_state = None
        else:
            if anomaly is None:
                anomaly = chat.anomalies[seq] = SequenceAnomaly(seq in chat.persisted)
            id_state = anomaly.ids.get(mid)
            if id_state is None:
                id_state = anomaly.ids[mid] = IdState()
                if reference is not None or len(anomaly.ids) >= 2:
                    tallies.counts[DUPLICATE_SEQUENCE] += 1
            if len(id_state.evidence) < EVIDENCE_LIMIT:
                id_state.evidence.append(evidence)

        if event_type == PERSISTED:
            self._persisted(chat, chat_id, seq, mid, id_state, anomaly, evidence)
        if event_type == DELIVERED:
            self._delivered(chat, chat_id, seq, mid, event, evidence)
        elif authority.has_messages:  # a claim: persisted or acked
            if id_state is None:
                if chat.claimed.add(seq):
                    tallies.ack_persisted["true"] += 1
            elif not id_state.claimed:
                id_state.claimed = True
                tallies.ack_persisted["false"] += 1
                tallies.counts[MESSAGE_LOSS] += 1

    def _persisted(self, chat: ChatState, chat_id: str, seq: int, mid: str,
                   id_state: IdState | None, anomaly: SequenceAnomaly | None,
                   evidence: Evidence) -> None:
        if id_state is None:
            if anomaly is not None:
                seen_before = anomaly.reference_persisted
                anomaly.reference_persisted = True
            else:
                seen_before = seq in chat.persisted
        else:
            seen_before = id_state.persisted
            id_state.persisted = True
        chat.persisted.add(seq)
        if seen_before:
            self.tallies.counts[REDELIVERED] += 1
            return
        if seq < chat.max_persisted:
            self.tallies.counts[OUT_OF_ORDER] += 1
            self._findings.append(Finding(
                OUT_OF_ORDER, chat_id, seq, (mid,),
                f"persisted sequence {seq} arrived after sequence {chat.max_persisted}",
                (evidence,)))
        else:
            chat.max_persisted = seq

    def _delivered(self, chat: ChatState, chat_id: str, seq: int, mid: str,
                   event: dict, evidence: Evidence) -> None:
        tallies = self.tallies
        created, delivered = event["created_at"], event["delivered_at"]
        if delivered < created:
            tallies.counts[CLOCK_SKEW] += 1
            self._findings.append(Finding(
                CLOCK_SKEW, chat_id, seq, (mid,),
                f"delivered_at {delivered.isoformat()} is before created_at {created.isoformat()}",
                (evidence,)))
        else:
            latency = (delivered - created).total_seconds()
            tallies.latency_bucket_counts[bisect_left(LATENCY_BUCKETS, latency)] += 1
            tallies.latency_sum += latency

        recipient = event["recipient_id"]
        key = (recipient, mid)
        state = self._deliveries.get(key)
        if state is None:
            state = self._deliveries[key] = DeliveryState(recipient, mid, chat_id, seq)
            chat.deliveries.append((seq, key))
            tallies.delivery_by_status["delivered"] += 1
        else:
            tallies.delivery_by_status["duplicate"] += 1
            tallies.counts[DUPLICATE_DELIVERY] += 1
        state.count += 1
        if len(state.evidence) < EVIDENCE_LIMIT:
            state.evidence.append(evidence)
        self._forget_old_deliveries(chat)

    def _forget_old_deliveries(self, chat: ChatState) -> None:
        horizon = chat.hi - self.config.delivery_window
        queue = chat.deliveries
        while queue and queue[0][0] < horizon:
            _, key = queue.popleft()
            state = self._deliveries.pop(key)
            if state.count > 1:
                self._closed_duplicates.append(state)

    # -- end of history ------------------------------------------------------

    def finish(self) -> list[Finding]:
        """Findings that need the whole history; call once, after the last record."""
        findings, self._findings = self._findings, []
        authority = self.authority
        chat_ids = set(self.chats)
        chat_ids.update(authority.chat_ids())
        for chat_id in sorted(chat_ids):
            chat = self.chats.get(chat_id) or ChatState()
            findings.extend(self._sequence_findings(chat_id, chat))
            findings.extend(self._range_findings(chat_id, chat))
        for state in self._closed_duplicates + list(self._deliveries.values()):
            if state.count > 1:
                findings.append(self._duplicate_delivery(state))
        self._closed_duplicates.clear()
        findings.sort(key=lambda f: f.sort_key)
        return findings

    def _sequence_findings(self, chat_id: str, chat: ChatState) -> Iterable[Finding]:
        authority = self.authority
        for seq in sorted(chat.anomalies):
            anomaly = chat.anomalies[seq]
            if authority.has_messages:
                reference = authority.message_id(chat_id, seq)
                for mid, state in sorted(anomaly.ids.items()):
                    if state.claimed:
                        where = (f"the item there holds {reference}" if reference is not None
                                 else "there is no item there")
                        yield Finding(MESSAGE_LOSS, chat_id, seq, (mid,),
                                      f"{mid} claimed at sequence {seq} but {where}",
                                      tuple(state.evidence))
            else:
                reference = chat.first_ids[seq]
            ids = set(anomaly.ids)
            if reference is not None:
                ids.add(reference)
            if len(ids) >= 2:
                evidence = [e for _, s in sorted(anomaly.ids.items()) for e in s.evidence]
                evidence.sort(key=lambda e: (e[0][0], e[0][1], e[0][2]))
                yield Finding(DUPLICATE_SEQUENCE, chat_id, seq, tuple(sorted(ids)),
                              f"{len(ids)} distinct message ids at sequence {seq}",
                              tuple(evidence[:EVIDENCE_LIMIT]))

    def _range_findings(self, chat_id: str, chat: ChatState) -> Iterable[Finding]:
        authority = self.authority
        tallies = self.tallies
        lo, hi = chat.lo, chat.hi
        bounds = authority.sequence_bounds(chat_id)
        if bounds is not None:
            lo = bounds[0] if not lo else min(lo, bounds[0])
            hi = max(hi, bounds[1])
        if not hi:
            return
        if authority.has_counters:
            counter = authority.last_sequence(chat_id)
            reason = None
            if counter is None:
                reason, detail = "missing", "counter item is missing"
            elif counter < hi:
                reason, detail = "behind", f"last_sequence {counter} is below highest sequence seen {hi}"
            else:
                hi = counter
            if reason is not None:
                tallies.counts[COUNTER_CORRUPTION] += 1
                tallies.counter_by_reason[reason] += 1
                evidence = (chat.hi_evidence,) if chat.hi_evidence is not None else ()
                yield Finding(COUNTER_CORRUPTION, chat_id, None, (), detail, evidence, reason=reason)
        for seq in chat.persisted.missing(lo, hi):
            if authority.has_messages:
                item = authority.message_id(chat_id, seq)
                classification = PUBLISH_GAP if item is not None else SEQUENCE_HOLE
                ids = (item,) if item is not None else ()
            else:
                classification, ids = UNVERIFIED, ()
            tallies.counts[SEQUENCE_GAP] += 1
            tallies.gaps_by_classification[classification] += 1
            yield Finding(SEQUENCE_GAP, chat_id, seq, ids,
                          f"no message_persisted event for sequence {seq} in [{lo}, {hi}] ({classification})",
                          classification=classification)

    @staticmethod
    def _duplicate_delivery(state: DeliveryState) -> Finding:
        return Finding(
            DUPLICATE_DELIVERY, state.chat_id, state.sequence, (state.message_id,),
            f"{state.message_id} delivered {state.count} times to {state.recipient_id}",
            tuple(state.evidence), recipient_id=state.recipient_id)
