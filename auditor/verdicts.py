"""Verdicts that need more than one record: verification, closing, the end.

`HistoryVerdicts` is the half of `AuditEngine` that judges what the records
built up (the other half, in auditor.engine, builds it): `settle` decides
sequences audited before their item was read, `close` reports and forgets a
chat's history up to a sequence (the live consumer's retention horizon,
auditor.horizon), `check_counters` decides counters, `retire` compacts quiet
chats, and `finish` reports whatever is left after the last record. The
finding definitions are in auditor.findings.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .findings import (
    COUNTER_CORRUPTION, DUPLICATE_DELIVERY, DUPLICATE_SEQUENCE, EVIDENCE_LIMIT, MESSAGE_LOSS,
    PUBLISH_GAP, SEQUENCE_GAP, SEQUENCE_HOLE, UNVERIFIED, Finding,
)
from .state import ChatState, DuplicateDelivery, IdState, SequenceAnomaly


class HistoryVerdicts:
    """Mixed into `AuditEngine`; uses its state (chats, authority, tallies, ...)."""

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
        # Duplicates the window has passed: report them now, not at the end, and forget them.
        for state in self._closed_duplicates:
            key = (state.recipient_id, state.message_id)
            if self._deliveries.get(key) is state:
                del self._deliveries[key]
            findings.append(_duplicate_delivery(state))
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
        while queue and queue[0].seq <= upto:
            state = self._deliveries.pop(queue.popleft().key)
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
        findings.extend(map(_duplicate_delivery, self._unreported_duplicates()))
        self._closed_duplicates.clear()
        findings.sort(key=lambda f: f.sort_key)
        return findings

    def _unreported_duplicates(self) -> list[DuplicateDelivery]:
        """Duplicate deliveries inside the window and those it has passed (which
        stay in `_deliveries` too, for later repeats to join)."""
        found = [state for state in self._deliveries.values() if type(state) is DuplicateDelivery]
        listed = set(map(id, found))
        # Only a version-1 snapshot's passed duplicates are missing from `_deliveries`.
        found.extend(state for state in self._closed_duplicates if id(state) not in listed)
        return found

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
