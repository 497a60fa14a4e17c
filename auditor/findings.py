"""Findings: what the auditor reports, defined once.

Terms
    accepted event   a record that passed validation (`auditor.events`) and was
                     not a replayed read. Rejected records are never "seen".
    claim            an accepted `message_acked` or `message_persisted` event:
                     it asserts (chat, sequence, message_id) is durable.
    reference id     at (chat, sequence): the authority item's message_id when
                     the messages table is present; without it, the first
                     message_id seen there in any accepted event.
    persisted set    per chat, the sequences of accepted persisted records.
    observed range   [lo, hi]: lo/hi are the lowest/highest sequence of any
                     accepted event or authority item; hi is raised to the
                     counter's last_sequence when the counter is not behind.

Kinds (one finding per ...; condition; what it is NOT; evidence)

message_loss  per distinct (chat, sequence, message_id).
    A claim whose message_id differs from the authority item at (chat,
    sequence), or with no item there. Decided only with the messages table.
    NOT lag: the verdict is taken against a snapshot after the dump (replay) or
    a strongly consistent read of an item that was written before its event
    was published (live). NOT a delivered event: delivery claims nothing.
    Evidence: the claiming records, their trace ids.

duplicate_sequence  per (chat, sequence).
    Two or more distinct message_ids among accepted events of any type at
    (chat, sequence) plus the authority item. Counted as distinct ids - 1.
    NOT a producer retry or Kafka redelivery (same id again: `redelivered`),
    NOT a replayed offset (skipped before it is seen).
    Evidence: all distinct ids; the records that carried a non-reference id.

counter_corruption  per chat (`reason` missing | behind).
    The chat has events or items, and its counter item is missing or its
    last_sequence is below the highest sequence seen. Needs the counters table.
    NOT a counter ahead of what was seen: that is lag, and it raises hi.
    Evidence: the record that first carried the chat's highest event sequence.

sequence_gap  per (chat, sequence).
    A sequence in [lo, hi] with no accepted persisted record.
    classification: publish_gap (the item exists: written, never published),
    sequence_hole (no item: allocated, never written), unverified (no table).
    NOT a sequence above hi (not allocated as far as anyone knows).
    Evidence: the item's message_id for publish_gap; no records exist.

out_of_order  per persisted record.
    Its sequence is below the highest persisted sequence already processed for
    the chat, and its (sequence, message_id) was not processed before as a
    persisted record. NOT a redelivery of an earlier persisted record.
    Evidence: the record.

clock_skew  per delivered record.
    delivered_at < created_at. The sample is left out of the delivery latency
    histogram. NOT equal timestamps. Evidence: the record.

duplicate_delivery  per (recipient_id, message_id).
    Delivered more than once; counted as extra deliveries. NOT the same record
    replayed, NOT one message delivered to two recipients, NOT a repeat after
    the delivery window has forgotten a delivery never repeated before
    (`delivery_window`; a delivery found repeated is remembered until reported).
    Evidence: the delivering records.

Counts without findings: `redelivered` (a persisted record whose (chat,
sequence, message_id) was already processed as a persisted record),
`replayed_records`, `rejected` by reason.

When. Replay decides everything after the whole history. Live, out_of_order
and clock_skew come out as their record is audited; the others when the
chat's history is closed past its grace period (auditor.horizon), after the
authority is read again; counter_corruption at the first close that sees it.
An event arriving after its sequence closed is audited as new (so a
sequence_gap declared then stays declared: the grace is what makes that rare).
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import trace_id_of
from .records import Evidence

MESSAGE_LOSS = "message_loss"
DUPLICATE_SEQUENCE = "duplicate_sequence"
COUNTER_CORRUPTION = "counter_corruption"
SEQUENCE_GAP = "sequence_gap"
OUT_OF_ORDER = "out_of_order"
CLOCK_SKEW = "clock_skew"
DUPLICATE_DELIVERY = "duplicate_delivery"
REDELIVERED = "redelivered"

# In order of severity: what an operator should read first.
FINDING_KINDS = (
    MESSAGE_LOSS, DUPLICATE_SEQUENCE, COUNTER_CORRUPTION, SEQUENCE_GAP,
    OUT_OF_ORDER, CLOCK_SKEW, DUPLICATE_DELIVERY,
)
COUNT_KINDS = FINDING_KINDS + (REDELIVERED,)
SEVERITY = {kind: rank for rank, kind in enumerate(FINDING_KINDS)}

PUBLISH_GAP = "publish_gap"
SEQUENCE_HOLE = "sequence_hole"
UNVERIFIED = "unverified"

# Records cited per finding (`Evidence`): enough to find them in Kafka, bounded
# so that one hot anomaly cannot grow memory without limit.
EVIDENCE_LIMIT = 8


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    chat_id: str
    sequence: int | None
    message_ids: tuple[str, ...]
    detail: str
    evidence: tuple[Evidence, ...] = ()
    classification: str | None = None
    reason: str | None = None
    recipient_id: str | None = None

    @property
    def sort_key(self) -> tuple:
        """Most severe kind first (FINDING_KINDS order), then chat and sequence."""
        return (SEVERITY[self.kind], self.chat_id, self.sequence or 0, self.message_ids,
                self.recipient_id or "")

    def to_dict(self) -> dict:
        trace_ids: list[str] = []
        for evidence in self.evidence:
            trace = trace_id_of(evidence)
            if trace is not None and trace not in trace_ids:
                trace_ids.append(trace)
        out = {
            "kind": self.kind,
            "chat_id": self.chat_id,
            "sequence": self.sequence,
            "message_ids": list(self.message_ids),
            "classification": self.classification,
            "records": [
                {"topic": r.topic, "partition": r.partition, "offset": r.offset} for r in self.evidence
            ],
            "trace_ids": trace_ids,
            "detail": self.detail,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.recipient_id is not None:
            out["recipient_id"] = self.recipient_id
        return out
