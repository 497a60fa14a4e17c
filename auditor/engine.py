"""The audit engine: a pure state machine from records to findings.

History in, data out. The engine imports no Kafka, boto, asyncio or Prometheus;
replay, the live consumer and the benchmarks all feed it the same `Record`s and
read the same `Tallies` and `Finding`s. The finding definitions are in
`auditor.findings`; what the engine keeps, and why, in `auditor.state`.

`process` is the hot path of every mode: it is written for CPython's sake (locals,
one attribute load per field, no per-record allocation when nothing is wrong).
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import timedelta
from dataclasses import dataclass
from itertools import chain
from typing import Callable, Iterable, Mapping, NamedTuple

from .authority import Authority
from .errors import RecordRejected
from .events import DECODE_ERRORS, EVENT_TYPE, Delivered, Event, Persisted, decode_event, parse_event
from .findings import (
    CLOCK_SKEW, COUNTER_CORRUPTION, DUPLICATE_DELIVERY, DUPLICATE_SEQUENCE, EVIDENCE_LIMIT,
    MESSAGE_LOSS, OUT_OF_ORDER, PUBLISH_GAP, REDELIVERED, SEQUENCE_GAP, SEQUENCE_HOLE,
    UNVERIFIED, Finding,
)
from .records import Record
from .state import LATENCY_BUCKETS, NOT_FETCHED, ChatState, DuplicateDelivery, IdState, SequenceAnomaly, Tallies

_LATENCY_BOUNDS = tuple(timedelta(seconds=b) for b in LATENCY_BUCKETS)


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


class AuditEngine:
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
        # (recipient, message_id) -> the first delivery's Record, or a DuplicateDelivery
        self._deliveries: dict[tuple[str, str], Record | DuplicateDelivery] = {}
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
        self._admit(records, self._accept)  # admit and apply fused: no (event, record) pairs
        return self._end_batch()

    def admit(self, records: Iterable[Record]) -> list[tuple[Event, Record]]:
        """Step 1: skip replayed reads, decode and validate, reject the bad.

        An adapter whose authority must fetch facts first (a live table) calls
        this, fetches what the admitted events name, then calls `apply`.
        """
        admitted: list[tuple[Event, Record]] = []
        append = admitted.append
        self._admit(records, lambda event, record: append((event, record)))
        return admitted

    def _admit(self, records: Iterable[Record], accept: Callable[[Event, Record], None]) -> None:
        """Hand every record that is not a replayed read and decodes to `accept`."""
        offsets = self._offsets
        decode = decode_event
        replayed = 0
        for record in records:
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
            accept(event, record)
        self.tallies.replayed_records += replayed

    def apply(self, admitted: Iterable[tuple[Event, Record]]) -> tuple[list[Finding], list[Rejection]]:
        """Step 2: run admitted events through the audit, in order."""
        accept = self._accept
        for event, record in admitted:
            accept(event, record)
        return self._end_batch()

    def _end_batch(self) -> tuple[list[Finding], list[Rejection]]:
        """Bring the per-batch tallies up to date; hand over findings and rejections."""
        tallies = self.tallies
        for event_class, count in self._type_counts.items():  # per batch, not per record
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

    def _accept(self, event: Event, record: Record) -> None:
        event_class = type(event)
        chat_id = event.chat_id
        seq = event.sequence
        mid = event.message_id
        self._type_counts[event_class] += 1

        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.chats[chat_id] = self._new_chat(chat_id, seq)
        elif seq < chat.lo:
            chat.lo = seq
        if seq > chat.hi:
            chat.hi = seq
            if seq > chat.counter:  # only where a counter finding will want it
                chat.hi_evidence = record

        verified = self._has_messages
        if verified:
            reference = chat.items.get(seq, NOT_FETCHED) if self._partial else chat.items.get(seq)
            if reference is NOT_FETCHED:  # not read (sampling): the first id stands in
                verified = False
                reference = chat.first_ids.setdefault(seq, mid)
        else:
            reference = chat.first_ids.setdefault(seq, mid)

        if mid == reference:
            id_state = None
            anomaly = chat.anomalies.get(seq) if chat.anomalies else None
        else:
            id_state, anomaly = self._non_reference(chat, seq, mid, reference)
            if len(id_state.evidence) < EVIDENCE_LIMIT:
                id_state.evidence.append(record)

        if event_class is Delivered:
            self._delivered(chat, chat_id, seq, mid, event, record)
            return
        if event_class is Persisted:
            if anomaly is None and seq > chat.max_persisted and chat.persisted.add(seq):
                chat.max_persisted = seq  # in order, first time: nothing to report
            else:
                self._persisted(chat, chat_id, seq, mid, id_state, anomaly, record)
        if not self._has_messages:
            return
        # A claim (persisted or acked). Verified: decided now; otherwise it waits
        # for `settle` to bring the item.
        if id_state is None:
            if not verified:
                claims = chat.first_claims.setdefault(seq, [])
                if len(claims) < EVIDENCE_LIMIT:
                    claims.append(record)
            elif chat.claimed.add(seq):
                self.tallies.ack_persisted["true"] += 1
        else:
            if verified and not id_state.claims:
                self.tallies.ack_persisted["false"] += 1
                self.tallies.counts[MESSAGE_LOSS] += 1
            if len(id_state.claims) < EVIDENCE_LIMIT:
                id_state.claims.append(record)

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

    def _non_reference(self, chat: ChatState, seq: int, mid: str,
                       reference: str | None) -> tuple[IdState, SequenceAnomaly]:
        anomaly = chat.anomalies.get(seq)
        if anomaly is None:
            anomaly = chat.anomalies[seq] = SequenceAnomaly(seq in chat.persisted)
        id_state = anomaly.ids.get(mid)
        if id_state is None:
            id_state = anomaly.ids[mid] = IdState()
            # distinct ids at seq = this one + the others + the authority item, if any
            if reference is not None or len(anomaly.ids) >= 2:
                self.tallies.counts[DUPLICATE_SEQUENCE] += 1
        return id_state, anomaly

    def _persisted(self, chat: ChatState, chat_id: str, seq: int, mid: str,
                   id_state: IdState | None, anomaly: SequenceAnomaly | None,
                   record: Record) -> None:
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
                (record,)))
        else:
            chat.max_persisted = seq

    def _delivered(self, chat: ChatState, chat_id: str, seq: int, mid: str,
                   event: Delivered, record: Record) -> None:
        tallies = self.tallies
        created, delivered = event.created_at, event.delivered_at
        if delivered < created:
            tallies.counts[CLOCK_SKEW] += 1
            self._findings.append(Finding(
                CLOCK_SKEW, chat_id, seq, (mid,),
                f"delivered_at {delivered.isoformat()} is before created_at {created.isoformat()}",
                (record,)))
        else:
            latency = delivered - created  # a timedelta: compared with the buckets as is
            tallies.latency_bucket_counts[bisect_left(_LATENCY_BOUNDS, latency)] += 1
            self._latency_sum += latency

        key = (event.recipient_id, mid)
        deliveries = self._deliveries
        first = deliveries.setdefault(key, record)  # one lookup; kept if it is the first
        if first is record:  # the common case: keep just the first delivery's evidence
            queue = chat.deliveries
            queue.append((seq, key))
            if seq > chat.max_delivered:
                chat.max_delivered = seq
            # Every queued sequence is >= chat.lo: until the window reaches past
            # it nothing can age out, and the queue's head need not be read.
            horizon = chat.max_delivered - self._window
            if horizon > chat.lo and queue[0][0] < horizon:
                self._forget_old_deliveries(chat)
            return
        # First deliveries are not counted here: all delivered events minus
        # these, per batch in _end_batch().
        tallies.delivery_by_status["duplicate"] += 1
        tallies.counts[DUPLICATE_DELIVERY] += 1
        if type(first) is Record:
            first = deliveries[key] = DuplicateDelivery(key[0], mid, chat_id, seq, first)
        first.count += 1
        if len(first.evidence) < EVIDENCE_LIMIT:
            first.evidence.append(record)

    def _forget_old_deliveries(self, chat: ChatState) -> None:
        horizon = chat.max_delivered - self._window
        queue = chat.deliveries
        while queue and queue[0][0] < horizon:
            _, key = queue.popleft()
            state = self._deliveries.pop(key)
            if type(state) is DuplicateDelivery:
                self._closed_duplicates.append(state)

    # -- verification of sampled-out sequences ---------------------------------

    def unverified(self, chat_id: str, seq: int, mid: str) -> bool | None:
        """None if (chat, seq) is verified or never seen; else whether `mid`
        differs from the id seen there first (a conflict: an anomaly to verify)."""
        chat = self.chats.get(chat_id)
        first = chat.first_ids.get(seq) if chat is not None and self._has_messages else None
        return None if first is None else first != mid

    def unverified_keys(self) -> list[tuple[str, int]]:
        """Every (chat, seq) still audited without its item (empty without the table)."""
        if not self._has_messages:
            return []
        return [(chat_id, seq) for chat_id, chat in self.chats.items() for seq in chat.first_ids]

    def settle(self, keys: Iterable[tuple[str, int]]) -> None:
        """The authority now knows these (chat, seq): decide what waited for it.

        For each sequence audited with its first-seen id standing in for the
        item: 1. if the item has that id, the id's claims are now verified;
        2. otherwise that id joins the non-reference ids (its claims become
        losses) and the item's id, if an event carried it, becomes the
        reference; 3. every other id's claims are losses; 4. an item id no
        event carried adds one distinct id to the duplicate count.
        """
        if not self._has_messages:  # first ids are the only reference there is
            return
        tallies = self.tallies
        for chat_id, seq in keys:
            chat = self.chats.get(chat_id)
            if chat is None or seq not in chat.first_ids:
                continue
            first = chat.first_ids.pop(seq)
            first_claims = chat.first_claims.pop(seq, None)
            item = chat.items.get(seq)
            anomaly = chat.anomalies.get(seq)
            if item == first:  # 1.
                if first_claims is not None and chat.claimed.add(seq):
                    tallies.ack_persisted["true"] += 1
            else:  # 2.
                if anomaly is None:
                    anomaly = chat.anomalies[seq] = SequenceAnomaly(seq in chat.persisted)
                demoted = IdState()
                demoted.persisted = anomaly.reference_persisted
                # Records of an id taken for the item were not kept: its claims were.
                demoted.claims = first_claims or []
                demoted.evidence = list(demoted.claims)
                promoted = anomaly.ids.pop(item, None) if item is not None else None
                if item is not None and promoted is None:  # 4.
                    tallies.counts[DUPLICATE_SEQUENCE] += 1
                anomaly.ids[first] = demoted
                anomaly.reference_persisted = promoted is not None and promoted.persisted
                if promoted is not None and promoted.claimed and chat.claimed.add(seq):
                    tallies.ack_persisted["true"] += 1
            if anomaly is not None:  # 3.
                for state in anomaly.ids.values():
                    if state.claimed:
                        tallies.ack_persisted["false"] += 1
                        tallies.counts[MESSAGE_LOSS] += 1

    # -- end of history ------------------------------------------------------

    def close(self, through: Mapping[str, int]) -> list[Finding]:
        """Report and forget each chat's history up to a sequence: `through` maps
        chat_id -> the highest sequence to close (clipped to the chat's hi).

        For the closed sequences: losses and duplicate sequences, gaps, and
        duplicate deliveries are reported now, and their state is dropped, so a
        long run's memory stays bounded. The caller picks the horizon (a grace
        period behind the chat's hi, in sequences and time) and reads, before
        calling, every item the closed range needs (`closing_keys`). An event
        that arrives later for a closed sequence is audited as new.
        Closing everything, then `finish`, reports exactly what `finish` alone
        would.
        """
        findings, self._findings = self._findings, []
        for chat_id, upto in through.items():
            chat = self.chats.get(chat_id)
            if chat is None:
                continue
            upto = min(upto, chat.hi)
            if upto >= chat.closed_through:  # equal: what arrived late, below the horizon
                findings.extend(self._close_chat(chat_id, chat, upto))
        # Deliveries the window already forgot are final: report them now, not at the end.
        findings.extend(map(_duplicate_delivery, self._closed_duplicates))
        self._closed_duplicates.clear()
        return findings

    def closing_keys(self, through: Mapping[str, int], unverified: bool = True) -> list[tuple[str, int]]:
        """The (chat, seq) items `close(through)` will consult: gaps, anomalies and,
        with `unverified`, the sequences audited without their item, in the range
        to close (read them, then `settle`). Without `unverified` (a policy that
        does not read every claim), those are forgotten at close without a verdict."""
        keys = []
        for chat_id, upto in through.items():
            chat = self.chats.get(chat_id)
            if chat is None:
                continue
            upto = min(upto, chat.hi)
            start = self._open_from(chat_id, chat)
            keys.extend((chat_id, seq) for seq in chat.persisted.missing(start, upto))
            keys.extend((chat_id, seq) for seq in chat.anomalies if seq <= upto)
            if unverified:
                keys.extend((chat_id, seq) for seq in chat.first_ids if seq <= upto)
        return keys

    def check_counters(self, chat_ids: Iterable[str]) -> list[Finding]:
        """counter_corruption for these chats, decided now against the highest
        sequence seen so far: once per chat (`finish` skips a chat reported here).

        Live, the caller reads each counter afresh first: a sequence is
        allocated from the counter before its message is written, so a counter
        read after an event was seen must be at least that event's sequence."""
        if not self.authority.has_counters:
            return []
        findings = []
        for chat_id in chat_ids:
            chat = self.chats.get(chat_id)
            if chat is None or not chat.hi:
                continue
            counter = self.authority.last_sequence(chat_id)
            if counter is not None and counter >= chat.hi:
                # Healthy: evidence is needed again only for a sequence above this counter.
                chat.counter, chat.hi_evidence = counter, None
            elif not chat.counter_reported:
                findings.append(self._counter_finding(chat_id, chat, counter, chat.hi))
        return findings

    def retire(self) -> list[str]:
        """Replace the state of every quiet chat (`ChatState.quiet`: closed
        through its highest sequence, nothing open) with its few retired
        fields; an event for it later revives it. Returns the retired chat ids."""
        quiet = [chat_id for chat_id, chat in self.chats.items() if chat.quiet]
        for chat_id in quiet:
            self._retired[chat_id] = self.chats.pop(chat_id).retired()
        return quiet

    @property
    def retired_chats(self) -> int:
        return len(self._retired)

    def chat_ids(self) -> set[str]:
        """Every chat with events so far: tracked or retired."""
        return set(self.chats) | self._retired.keys()

    @property
    def position(self) -> int:
        """How far this engine has read: the sum of its next offsets, one more per record."""
        return sum(sum(partitions.values()) + len(partitions) for partitions in self._offsets.values())

    def _close_chat(self, chat_id: str, chat: ChatState, upto: int) -> list[Finding]:
        closing = sorted(seq for seq in chat.anomalies if seq <= upto)
        findings = list(self._sequence_findings(chat_id, chat, closing))
        for seq in closing:
            del chat.anomalies[seq]
        findings.extend(self._gap(chat_id, seq)
                        for seq in chat.persisted.missing(self._open_from(chat_id, chat), upto))
        queue = chat.deliveries
        while queue and queue[0][0] <= upto:
            _, key = queue.popleft()
            state = self._deliveries.pop(key)
            if type(state) is DuplicateDelivery:
                findings.append(_duplicate_delivery(state))
        for unverified in (chat.first_ids, chat.first_claims):
            for seq in [seq for seq in unverified if seq <= upto]:
                del unverified[seq]
        chat.persisted.discard_below(upto + 1)
        chat.claimed.discard_below(upto + 1)
        chat.closed_through = upto
        return findings

    def _open_from(self, chat_id: str, chat: ChatState) -> int:
        """The lowest sequence of the chat not closed yet: the observed lo at first."""
        if chat.closed_through:
            return chat.closed_through + 1
        bounds = self.authority.sequence_bounds(chat_id)
        if bounds is None:
            return chat.lo
        return min(chat.lo, bounds[0]) if chat.lo else bounds[0]

    def finish(self) -> list[Finding]:
        """Findings that need the whole history; call once, after the last record."""
        findings, self._findings = self._findings, []
        chat_ids = set(self.chats)
        chat_ids.update(self._retired)
        chat_ids.update(self.authority.chat_ids())
        for chat_id in sorted(chat_ids):
            chat = self.chats.get(chat_id)
            if chat is None:
                retired = self._retired.get(chat_id)
                chat = ChatState.revived(retired) if retired is not None else ChatState()
            if chat.anomalies:  # most chats have none: no generator to run
                findings.extend(self._sequence_findings(chat_id, chat, sorted(chat.anomalies)))
            findings.extend(self._range_findings(chat_id, chat))
        for state in chain(self._closed_duplicates, self._deliveries.values()):
            if type(state) is DuplicateDelivery:
                findings.append(_duplicate_delivery(state))
        self._closed_duplicates.clear()
        findings.sort(key=lambda f: f.sort_key)
        return findings

    def _sequence_findings(self, chat_id: str, chat: ChatState, seqs: Iterable[int]) -> Iterable[Finding]:
        """message_loss and duplicate_sequence, from these anomalous sequences."""
        for seq in seqs:
            anomaly = chat.anomalies[seq]
            if self._has_messages and seq not in chat.first_ids:
                reference = self._message_id(chat_id, seq)
                where = (f"the item there holds {reference}" if reference is not None
                         else "there is no item there")
                for mid, state in sorted(anomaly.ids.items()):
                    if state.claimed:
                        yield Finding(MESSAGE_LOSS, chat_id, seq, (mid,),
                                      f"{mid} claimed at sequence {seq} but {where}",
                                      tuple(state.claims))
            else:
                reference = chat.first_ids[seq]
            ids = set(anomaly.ids)
            if reference is not None:
                ids.add(reference)
            if len(ids) >= 2:
                evidence = sorted((e for s in anomaly.ids.values() for e in s.evidence),
                                  key=lambda r: (r.topic, r.partition, r.offset))
                yield Finding(DUPLICATE_SEQUENCE, chat_id, seq, tuple(sorted(ids)),
                              f"{len(ids)} distinct message ids at sequence {seq}",
                              tuple(evidence[:EVIDENCE_LIMIT]))

    def _range_findings(self, chat_id: str, chat: ChatState) -> Iterable[Finding]:
        """counter_corruption and sequence_gap, from the observed range."""
        authority = self.authority
        lo, hi = self._open_from(chat_id, chat), chat.hi
        bounds = authority.sequence_bounds(chat_id)
        if bounds is not None:
            hi = max(hi, bounds[1])
        if not hi:
            return
        if authority.has_counters:
            counter = authority.last_sequence(chat_id)
            if counter is not None and counter >= hi:
                hi = counter
            elif not chat.counter_reported:
                yield self._counter_finding(chat_id, chat, counter, hi)
        for seq in chat.persisted.missing(lo, hi):
            yield self._gap(chat_id, seq)

    def _counter_finding(self, chat_id: str, chat: ChatState, counter: int | None, hi: int) -> Finding:
        """The chat's counter is missing (None) or below `hi`: report it, once."""
        if counter is None:
            reason, detail = "missing", "counter item is missing"
        else:
            reason, detail = "behind", f"last_sequence {counter} is below highest sequence seen {hi}"
        chat.counter_reported = True
        self.tallies.counts[COUNTER_CORRUPTION] += 1
        self.tallies.counter_by_reason[reason] += 1
        evidence = (chat.hi_evidence,) if chat.hi_evidence is not None else ()
        return Finding(COUNTER_CORRUPTION, chat_id, None, (), detail, evidence, reason=reason)

    def _gap(self, chat_id: str, seq: int) -> Finding:
        if self._has_messages:
            item = self._message_id(chat_id, seq)
            classification = PUBLISH_GAP if item is not None else SEQUENCE_HOLE
            ids = (item,) if item is not None else ()
        else:
            classification, ids = UNVERIFIED, ()
        self.tallies.counts[SEQUENCE_GAP] += 1
        self.tallies.gaps_by_classification[classification] += 1
        return Finding(SEQUENCE_GAP, chat_id, seq, ids,
                       f"no message_persisted event for sequence {seq} ({GAP_MEANING[classification]})",
                       classification=classification)


GAP_MEANING = {
    PUBLISH_GAP: "publish_gap: the item exists, its event was never published",
    SEQUENCE_HOLE: "sequence_hole: no item, the sequence was allocated but never written",
    UNVERIFIED: "unverified: no messages table to tell",
}


def _duplicate_delivery(state: DuplicateDelivery) -> Finding:
    return Finding(
        DUPLICATE_DELIVERY, state.chat_id, state.sequence, (state.message_id,),
        f"{state.message_id} delivered {state.count} times to {state.recipient_id}",
        tuple(state.evidence), recipient_id=state.recipient_id)
