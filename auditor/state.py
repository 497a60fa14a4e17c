"""What the engine keeps, per chat, per anomalous sequence and per delivery.

Memory grows with chats and open anomalies, not with records:

per chat        `ChatState`: lo/hi of accepted sequences and, where hi passes the
                counter, the record that first carried it (evidence); the persisted
                set and, with the messages table, the set of sequences whose
                reference message was already claimed, both as `SequenceRuns`
                (one run per hole); the highest persisted sequence.
per anomalous   `SequenceAnomaly`, only where an event carried a message_id that
sequence        is not the reference id: which ids, whether each was persisted or
                claimed, and up to EVIDENCE_LIMIT records each. A sequence whose
                only id is the authority's needs no entry: the authority keeps
                the id, and the runs say whether it was persisted or claimed.
without the     `first_ids`, the first message_id at every sequence, since nothing
messages table  else can tell a producer retry from a duplicate sequence later.
(or before the  Memory then grows with messages: said in the docs, not hidden.
item is read)   Under a sampling policy the same stands in for sequences whose
                item was not read yet, with `first_claims` (the claiming records)
                until `AuditEngine.settle` decides them against the item.
per delivery    (recipient, message_id) -> a `FirstDelivery` (sequence, key, coordinates
                and trace names), kept until the chat's highest delivered sequence passes
                it by `delivery_window`; a second delivery turns it into a
                `DuplicateDelivery` (a finding), kept until reported.

Live, the retention horizon (auditor.horizon) closes each chat's history a
grace period behind its highest sequence: the per-sequence and per-delivery
state above is reported and dropped up to `closed_through`, so a long run keeps
chats and the open window. The chat's `mark` is where the grace is measured from.
A chat closed through its highest sequence with nothing open is *retired*: its
`ChatState` (about a kilobyte) is replaced by five numbers (`RETIRED_FIELDS`,
about 200 bytes with its id), and revived from them by its next event.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Mapping

import msgspec

from .events import EVENT_TYPES
from .findings import COUNT_KINDS, PUBLISH_GAP, SEQUENCE_HOLE, UNVERIFIED
from .records import Evidence
from .runs import SequenceRuns


_NO_ITEMS: Mapping[int, str] = {}
# ADR-012 Appendix A buckets for fanout_delivery_latency_seconds.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
NOT_FETCHED = object()  # an item not read (yet): neither present nor absent


class IdState:
    """One non-reference message_id at an anomalous sequence."""

    __slots__ = ("persisted", "claims", "evidence")

    def __init__(self) -> None:
        self.persisted = False
        self.claims: list[Evidence] = []  # the acked/persisted records claiming it (loss evidence)
        self.evidence: list[Evidence] = []  # every record carrying it (duplicate evidence)

    @property
    def claimed(self) -> bool:
        return bool(self.claims)


class SequenceAnomaly:
    __slots__ = ("reference_persisted", "ids")

    def __init__(self, reference_persisted: bool) -> None:
        self.reference_persisted = reference_persisted
        self.ids: dict[str, IdState] = {}


class ChatState:
    __slots__ = ("lo", "hi", "counter", "hi_evidence", "persisted", "claimed", "max_persisted",
                 "anomalies", "items", "first_ids", "first_claims", "deliveries", "max_delivered",
                 "closed_through", "mark", "counter_reported")

    def __init__(self, seq: int = 0) -> None:
        self.lo = seq
        self.hi = 0
        # The counter item as of chat creation (replay's snapshot); no table: +inf,
        # as no counter finding can exist. hi_evidence is only kept above it.
        self.counter: float = float("inf")
        self.hi_evidence: Evidence | None = None
        self.persisted = SequenceRuns()
        self.claimed = SequenceRuns()
        self.max_persisted = 0
        self.anomalies: dict[int, SequenceAnomaly] = {}
        self.items: Mapping[int, str] = _NO_ITEMS  # the authority's items for the chat
        self.first_ids: dict[int, str] = {}  # unverified sequences -> the id seen first
        self.first_claims: dict[int, list] = {}  # ... whose first id was claimed -> records
        self.deliveries: deque[FirstDelivery] = deque()  # arrival order
        # The window is measured on delivered events alone: Kafka orders records
        # within a partition, not across topics, so the persisted topic may be
        # read far ahead of the delivered one and must not age deliveries out.
        self.max_delivered = 0
        self.closed_through = 0  # sequences up to here are reported and forgotten (`close`)
        self.mark: tuple | None = None  # (hi, time, position) the grace is measured from (auditor.horizon)
        self.counter_reported = False  # counter_corruption already reported (live, `check_counters`)

    # A closed, quiet chat is kept as these fields alone (`AuditEngine.retire`):
    # enough to go on where it stopped if it comes back.
    RETIRED_FIELDS = ("closed_through", "max_persisted", "max_delivered", "counter", "counter_reported")

    @property
    def quiet(self) -> bool:
        """Closed through its highest sequence, with nothing open or waiting."""
        return (self.closed_through == self.hi and self.mark is None and not self.anomalies
                and not self.first_ids and not self.first_claims and not self.deliveries
                and (self.hi_evidence is None or self.counter_reported))

    def retired(self) -> tuple:
        return tuple(getattr(self, name) for name in self.RETIRED_FIELDS)

    @classmethod
    def revived(cls, retired: tuple, seq: int = 0) -> "ChatState":
        chat = cls(seq)
        for name, value in zip(cls.RETIRED_FIELDS, retired):
            setattr(chat, name, value)
        chat.hi = chat.closed_through
        return chat

    # Snapshots leave out `items`: it is the authority's own map for the chat,
    # shared by reference, and is linked again on restore.
    def __getstate__(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__ if name != "items"}

    def __setstate__(self, state: dict) -> None:
        self.__init__()  # defaults for fields an older snapshot lacks
        for name, value in state.items():
            setattr(self, name, value)
        self.items = _NO_ITEMS


class FirstDelivery(msgspec.Struct, gc=False):
    """A delivery remembered for the delivery window, in case it is repeated:
    its sequence (to age it out), its key, and what a finding would cite of it.

    One flat object per delivery. The engine keeps one for every delivery of
    the last `delivery_window` sequences of every chat; a whole record and a
    queue entry per delivery kept a dozen objects alive, scattered among each
    batch's freed ones, and that cost about a fifth of a replay.
    """

    seq: int
    key: tuple[str, str]  # (recipient_id, message_id)
    topic: str
    partition: int
    offset: int
    traceparent: str | bytes | None
    payload_trace_id: str | None

    @property
    def evidence(self) -> Evidence:
        return Evidence(self.topic, self.partition, self.offset, self.traceparent, self.payload_trace_id)


class DuplicateDelivery:
    """A (recipient, message) delivered more than once."""

    __slots__ = ("count", "recipient_id", "message_id", "chat_id", "sequence", "evidence")

    def __init__(self, recipient_id: str, message_id: str, chat_id: str, sequence: int,
                 first: Evidence) -> None:
        self.count = 1
        self.recipient_id = recipient_id
        self.message_id = message_id
        self.chat_id = chat_id
        self.sequence = sequence
        self.evidence = [first]


@dataclass
class Tallies:
    """Every count the report and the metrics need, as plain ints."""

    events_by_type: dict = field(default_factory=lambda: dict.fromkeys(EVENT_TYPES, 0))
    rejected_by_reason: dict = field(default_factory=dict)
    replayed_records: int = 0
    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNT_KINDS, 0))
    ack_persisted: dict = field(default_factory=lambda: {"true": 0, "false": 0})
    counter_by_reason: dict = field(default_factory=lambda: {"missing": 0, "behind": 0})
    gaps_by_classification: dict = field(
        default_factory=lambda: {PUBLISH_GAP: 0, SEQUENCE_HOLE: 0, UNVERIFIED: 0})
    delivery_by_status: dict = field(default_factory=lambda: {"delivered": 0, "duplicate": 0})
    # per bucket of LATENCY_BUCKETS, then +Inf
    latency_bucket_counts: list = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    @property
    def events_total(self) -> int:
        return sum(self.events_by_type.values())

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())
