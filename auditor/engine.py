"""The audit engine: a pure state machine from records to findings.

History in, data out. The engine imports no Kafka, boto, asyncio or Prometheus;
replay, the live consumer and the benchmarks all feed it the same `Record`s and
read the same `Tallies` and `Finding`s. The finding definitions are in
`auditor.findings`; what the engine keeps, and why, in `auditor.state`; the
verdicts that need more than one record (verification, closing, the end) in
`auditor.verdicts`.

`_audit` is the hot path of every mode: it is written for CPython's sake (locals,
one attribute load per field, one small object per delivery and none otherwise
when nothing is wrong).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import timedelta
from sys import intern
from typing import Iterable, NamedTuple

from .authority import Authority
from .errors import RecordRejected
from .events import DECODE_ERRORS, EVENT_TYPE, Acked, Delivered, Event, Persisted, decode_event, parse_event
from .findings import (
    CLOCK_SKEW, DUPLICATE_DELIVERY, DUPLICATE_SEQUENCE, EVIDENCE_LIMIT, MESSAGE_LOSS, OUT_OF_ORDER,
    REDELIVERED, Finding,
)
from .records import Evidence, Record, traceparent_of
from .state import (
    LATENCY_BUCKETS, NOT_FETCHED, ChatState, DuplicateDelivery, FirstDelivery, IdState, SequenceAnomaly, Tallies,
)
from .verdicts import HistoryVerdicts

_LATENCY_BOUNDS = tuple(timedelta(seconds=b) for b in LATENCY_BUCKETS)
_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    # A gateway retry lands within minutes; 1,024 later messages in the same
    # chat is beyond that even for busy groups, and caps a chat's delivery
    # memory at 1,024 x recipients remembered deliveries.
    delivery_window: int = 1024


class Rejection(NamedTuple):
    reason: str
    error: str
    record: Record


class AuditEngine(HistoryVerdicts):
    def __init__(self, authority: Authority, config: EngineConfig = EngineConfig()) -> None:
        self.authority = authority
        self.config = config
        self._window = config.delivery_window
        self.tallies = Tallies()
        self.chats: dict[str, ChatState] = {}
        # topic -> partition -> highest offset seen: two plain lookups per
        # record, where a (topic, partition) key cost a tuple, two tuple hashes
        # and two tuple comparisons (snapshots keep the flat form).
        self._offsets: dict[str, dict[int, int]] = {}
        # (recipient, message_id) -> the first delivery, or a DuplicateDelivery once repeated
        self._deliveries: dict[tuple[str, str], FirstDelivery | DuplicateDelivery] = {}
        # Duplicates the window has passed: final but for later repeats, reported at the next close.
        self._closed_duplicates: list[DuplicateDelivery] = []
        self._retired: dict[str, tuple] = {}  # chat_id -> ChatState.retired(), see `retire`
        self._findings: list[Finding] = []
        self._rejections: list[Rejection] = []
        self._has_messages = authority.has_messages
        # An authority that does not fetch every key (a sampling policy) leaves
        # some sequences unverified until `settle`; an export answers them all.
        self._partial = authority.has_messages and not getattr(authority, "complete", True)
        self._message_id = authority.message_id
        self._counter_of = authority.last_sequence if authority.has_counters else None
        self._type_counts = dict.fromkeys(EVENT_TYPE, 0)  # by event class; see process()
        self._latency_sum = timedelta(0)

    # -- input ---------------------------------------------------------------

    def process(self, records: Iterable[Record]) -> tuple[list[Finding], list[Rejection]]:
        """Feed records in order; return the findings and rejections they produced.

        Record-level findings (out_of_order, clock_skew) come out here; findings
        that need the whole history (loss, duplicates, gaps, counters) come out
        of `finish`. Equal to `apply(admit(records))`, in one pass.
        """
        self._audit(records, admitting=True)
        return self._end_batch()

    def admit(self, records: Iterable[Record]) -> list[tuple[Event, Record]]:
        """Step 1: skip replayed reads, decode and validate, reject the bad.

        An adapter whose authority must fetch facts first (a live table) calls
        this, fetches what the admitted events name, then calls `apply`.
        """
        admitted: list[tuple[Event, Record]] = []
        self._audit(records, admitting=True, admitted=admitted)
        return admitted

    def apply(self, admitted: Iterable[tuple[Event, Record]]) -> tuple[list[Finding], list[Rejection]]:
        """Step 2: run admitted events through the audit, in order."""
        self._audit(admitted, admitting=False)
        return self._end_batch()

    def _audit(self, items: Iterable, admitting: bool, admitted: list | None = None) -> None:
        """The one loop behind process, admit and apply.

        `admitting`: items are Records; replayed reads are skipped and payloads
        decoded (bad ones rejected). Then each event is audited, or, when
        `admitted` is given, collected there as (event, record) instead.
        Otherwise items are (event, record) pairs from `admit`.

        One loop with everything common inline, because this is where every
        mode spends its time: a call and a dozen attribute loads per record
        were a tenth of a replay. What is rare (other ids, reordering, skew,
        duplicates) stays in methods.
        """
        offsets = self._offsets
        decode = decode_event
        chats = self.chats
        has_messages, partial = self._has_messages, self._partial
        deliveries = self._deliveries
        window = self._window
        latencies: list[timedelta] = []  # counted into the histogram per batch, in C
        add_latency = latencies.append
        replayed = persisted_n = acked_n = delivered_n = claimed_n = 0
        try:
            for item in items:
                if admitting:
                    record = item
                    partitions = offsets.get(record.topic)
                    if partitions is None:
                        partitions = offsets[record.topic] = {}
                    partition, offset = record.partition, record.offset
                    if offset <= partitions.get(partition, -1):
                        replayed += 1
                        continue
                    partitions[partition] = offset
                    try:
                        event = decode(record.payload)
                    except DECODE_ERRORS:
                        self._reject_payload(record)
                        continue
                    if admitted is not None:
                        admitted.append((event, record))
                        continue
                else:
                    event, record = item

                event_class = type(event)
                chat_id = event.chat_id
                seq = event.sequence
                mid = event.message_id

                chat = chats.get(chat_id)
                if chat is None:
                    chat = chats[chat_id] = self._new_chat(chat_id, seq)
                elif seq < chat.lo:
                    chat.lo = seq
                if seq > chat.hi:
                    chat.hi = seq
                    if seq > chat.counter:  # only where a counter finding will want it
                        chat.hi_evidence = Evidence.of(record, event.trace_id)

                verified = has_messages
                if verified:
                    reference = chat.items.get(seq, NOT_FETCHED) if partial else chat.items.get(seq)
                    if reference is NOT_FETCHED:  # not read (sampling): the first id stands in
                        verified = False
                        reference = chat.first_ids.setdefault(seq, mid)
                else:
                    reference = chat.first_ids.setdefault(seq, mid)

                if mid == reference:
                    id_state = None
                    anomaly = chat.anomalies.get(seq) if chat.anomalies else None
                else:
                    id_state, anomaly = self._non_reference(chat, seq, mid, reference, record, event)

                if event_class is Delivered:
                    delivered_n += 1
                    latency = event.delivered_at - event.created_at
                    if latency < _ZERO:
                        self._clock_skew(chat_id, seq, mid, event, record)
                    else:
                        add_latency(latency)
                    key = (event.recipient_id, mid)
                    # The topic interned: one string for all, not one kept per delivery.
                    delivery = FirstDelivery(seq, key, intern(record.topic), record.partition, record.offset,
                                             traceparent_of(record.headers), event.trace_id)
                    first = deliveries.setdefault(key, delivery)  # one lookup; kept if it is the first
                    if first is not delivery:
                        self._duplicate_delivery(chat_id, seq, key, first, record, event)
                        continue
                    # The common case: remember it for the window.
                    queue = chat.deliveries
                    queue.append(delivery)
                    if seq > chat.max_delivered:
                        chat.max_delivered = seq
                    # Every queued sequence is >= chat.lo: until the window reaches past
                    # it nothing can age out, and the queue's head need not be read.
                    horizon = chat.max_delivered - window
                    if horizon > chat.lo and queue[0].seq < horizon:
                        self._forget_old_deliveries(chat)
                    continue

                if event_class is Persisted:
                    persisted_n += 1
                    if anomaly is None and seq > chat.max_persisted and chat.persisted.add(seq):
                        chat.max_persisted = seq  # in order, first time: nothing to report
                    else:
                        self._persisted(chat, chat_id, seq, mid, id_state, anomaly, record, event)
                else:
                    acked_n += 1
                if not has_messages:
                    continue
                # A claim (persisted or acked). Verified: decided now; otherwise it waits
                # for `settle` to bring the item.
                if id_state is None:
                    if not verified:
                        claims = chat.first_claims.setdefault(seq, [])
                        if len(claims) < EVIDENCE_LIMIT:
                            claims.append(Evidence.of(record, event.trace_id))
                    elif chat.claimed.add(seq):
                        claimed_n += 1
                else:
                    self._claim_other(id_state, verified, record, event)
        finally:  # per batch, not per record
            tallies = self.tallies
            tallies.replayed_records += replayed
            tallies.ack_persisted["true"] += claimed_n
            counts = self._type_counts
            counts[Persisted] += persisted_n
            counts[Acked] += acked_n
            counts[Delivered] += delivered_n
            self._count_latencies(latencies)

    def _count_latencies(self, latencies: list[timedelta]) -> None:
        """Add a batch's delivery latencies to the histogram (`le` buckets) and its sum."""
        if not latencies:
            return
        latencies.sort()
        counts = self.tallies.latency_bucket_counts
        below = 0
        for i, bound in enumerate(_LATENCY_BOUNDS):
            at_most = bisect_right(latencies, bound)
            counts[i] += at_most - below
            below = at_most
        counts[-1] += len(latencies) - below
        self._latency_sum = sum(latencies, self._latency_sum)

    def _end_batch(self) -> tuple[list[Finding], list[Rejection]]:
        """Bring the per-batch tallies up to date; hand over findings and rejections."""
        tallies = self.tallies
        for event_class, count in self._type_counts.items():
            tallies.events_by_type[EVENT_TYPE[event_class]] = count
        by_status = tallies.delivery_by_status
        by_status["delivered"] = self._type_counts[Delivered] - by_status["duplicate"]
        tallies.latency_sum = self._latency_sum.total_seconds()
        findings, self._findings = self._findings, []
        rejections, self._rejections = self._rejections, []
        return findings, rejections

    def _reject_payload(self, record: Record) -> None:
        try:
            parse_event(record.payload)  # the slow path names the reason
        except RecordRejected as exc:
            self.reject(exc.reason, str(exc), record)

    def reject(self, reason: str, error: str, record: Record) -> None:
        self.count_rejected(reason)
        self._rejections.append(Rejection(reason, error, record))

    def count_rejected(self, reason: str) -> None:
        """Count a rejection; adapters call this for input they rejected themselves."""
        by_reason = self.tallies.rejected_by_reason
        by_reason[reason] = by_reason.get(reason, 0) + 1

    def _new_chat(self, chat_id: str, seq: int) -> ChatState:
        retired = self._retired.pop(chat_id, None) if self._retired else None
        if retired is not None:
            chat = ChatState.revived(retired, seq)
        else:
            chat = ChatState(seq)
            if self._counter_of is not None:  # missing counter: 0, so every hi is evidence
                chat.counter = self._counter_of(chat_id) or 0
        if self._has_messages:
            chat.items = self.authority.items_of(chat_id)
        return chat

    def _non_reference(self, chat: ChatState, seq: int, mid: str, reference: str | None,
                       record: Record, event: Event) -> tuple[IdState, SequenceAnomaly]:
        """An event whose id is not the sequence's reference: note the id and its record."""
        anomaly = chat.anomalies.get(seq)
        if anomaly is None:
            anomaly = chat.anomalies[seq] = SequenceAnomaly(seq in chat.persisted)
        id_state = anomaly.ids.get(mid)
        if id_state is None:
            id_state = anomaly.ids[mid] = IdState()
            # distinct ids at seq = this one + the others + the authority item, if any
            if reference is not None or len(anomaly.ids) >= 2:
                self.tallies.counts[DUPLICATE_SEQUENCE] += 1
        if len(id_state.evidence) < EVIDENCE_LIMIT:
            id_state.evidence.append(Evidence.of(record, event.trace_id))
        return id_state, anomaly

    def _claim_other(self, id_state: IdState, verified: bool, record: Record, event: Event) -> None:
        """A claim on a non-reference id: a loss, once per id, if the item is known."""
        if verified and not id_state.claims:
            self.tallies.ack_persisted["false"] += 1
            self.tallies.counts[MESSAGE_LOSS] += 1
        if len(id_state.claims) < EVIDENCE_LIMIT:
            id_state.claims.append(Evidence.of(record, event.trace_id))

    def _persisted(self, chat: ChatState, chat_id: str, seq: int, mid: str,
                   id_state: IdState | None, anomaly: SequenceAnomaly | None,
                   record: Record, event: Event) -> None:
        """Persisted records off the in-order path: retries, reordering, other ids."""
        if anomaly is None:  # the common case: only the reference id at seq
            seen_before = not chat.persisted.add(seq)
        else:
            if id_state is None:
                seen_before = anomaly.reference_persisted
                anomaly.reference_persisted = True
            else:
                seen_before = id_state.persisted
                id_state.persisted = True
            chat.persisted.add(seq)
        if seen_before:
            self.tallies.counts[REDELIVERED] += 1
        elif seq < chat.max_persisted:
            self.tallies.counts[OUT_OF_ORDER] += 1
            self._findings.append(Finding(
                OUT_OF_ORDER, chat_id, seq, (mid,),
                f"persisted sequence {seq} arrived after sequence {chat.max_persisted}",
                (Evidence.of(record, event.trace_id),)))
        else:
            chat.max_persisted = seq

    def _clock_skew(self, chat_id: str, seq: int, mid: str, event: Delivered, record: Record) -> None:
        self.tallies.counts[CLOCK_SKEW] += 1
        self._findings.append(Finding(
            CLOCK_SKEW, chat_id, seq, (mid,),
            f"delivered_at {event.delivered_at.isoformat()} is before created_at {event.created_at.isoformat()}",
            (Evidence.of(record, event.trace_id),)))

    def _duplicate_delivery(self, chat_id: str, seq: int, key: tuple[str, str],
                            first: FirstDelivery | DuplicateDelivery, record: Record, event: Delivered) -> None:
        """A (recipient, message) delivered again while its first delivery is remembered."""
        # First deliveries are not counted one by one: all delivered events
        # minus these, per batch in _end_batch().
        tallies = self.tallies
        tallies.delivery_by_status["duplicate"] += 1
        tallies.counts[DUPLICATE_DELIVERY] += 1
        if type(first) is FirstDelivery:
            first = self._deliveries[key] = DuplicateDelivery(key[0], key[1], chat_id, seq, first.evidence)
        first.count += 1
        if len(first.evidence) < EVIDENCE_LIMIT:
            first.evidence.append(Evidence.of(record, event.trace_id))

    def _forget_old_deliveries(self, chat: ChatState) -> None:
        horizon = chat.max_delivered - self._window
        queue = chat.deliveries
        deliveries = self._deliveries
        while queue and queue[0].seq < horizon:
            key = queue.popleft().key
            state = deliveries.pop(key)
            if type(state) is DuplicateDelivery:  # a finding: remembered until reported, for later repeats
                deliveries[key] = state
                self._closed_duplicates.append(state)
