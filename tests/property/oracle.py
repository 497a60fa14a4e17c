"""A deliberately simple oracle for `auditor replay`, written from the contract
(shared/contract.md) and docs/semantics.md alone. It does not import the
auditor and never parses a dump line: rejections and events come from the
generator's labels (tests/property/histories.py).

Steps: materialise every record in command-line order, then line order; apply
the offset-skip rule; split the rest into rejected and accepted; then compute
every count and finding with sets and dicts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tests.property.histories import ACKED, DELIVERED, PERSISTED, History

EVIDENCE_CAP = 8
DEFAULT_DELIVERY_WINDOW = 1024  # docs/semantics.md: the --delivery-window default
KINDS = (
    "message_loss", "duplicate_sequence", "counter_corruption", "sequence_gap",
    "out_of_order", "clock_skew", "duplicate_delivery",
)


@dataclass(frozen=True)
class Accepted:
    coord: tuple[str, int, int]
    event_type: str
    chat_id: str
    sequence: int
    message_id: str
    trace_id: str | None
    created_at: int | None
    delivered_at: int | None
    recipient_id: str | None


@dataclass(frozen=True)
class Rejected:
    reason: str
    text: str  # the dump line, verbatim
    coord: tuple[str, int, int] | None
    source: str  # the dump path as given
    line: int  # 1-based line number in that file
    plain: bool  # from a plain file (else an envelope file)


@dataclass
class Finding:
    kind: str
    chat_id: str
    sequence: int | None
    message_ids: tuple[str, ...]
    classification: str | None = None
    reason: str | None = None
    recipient_id: str | None = None
    # every accepted record that may be cited as evidence, in processing order
    candidates: list[Accepted] = field(default_factory=list)
    # the exact evidence the docs prescribe, or None where they leave it open
    expected_records: list[Accepted] | None = None

    def key(self) -> tuple:
        return (self.kind, self.chat_id, self.sequence, self.message_ids,
                self.classification, self.reason, self.recipient_id)


@dataclass
class Expected:
    accepted: list[Accepted]
    rejected: list[Rejected]
    replayed: int
    findings: list[Finding]
    counts: dict[str, int]
    events: dict
    metrics: dict  # (name, frozenset(labels.items())) -> value


def run(h: History, dump_paths: list[str]) -> Expected:
    # ------------------------------------------------------------ records
    records = []  # (coord or None, Line, path, lineno, plain)
    for path, index in zip(dump_paths, h.order):
        f = h.files[index]
        for lineno, line in enumerate(f.lines, start=1):
            if line.status == "blank":
                continue
            if f.kind == "plain":
                coord = None if line.coordless else (path, 0, lineno)
            else:
                coord = line.coord
            records.append((coord, line, path, lineno, f.kind == "plain"))

    highest: dict[tuple[str, int], int] = {}
    accepted: list[Accepted] = []
    rejected: list[Rejected] = []
    replayed = 0
    for coord, line, path, lineno, plain in records:
        if coord is not None:
            tp = (coord[0], coord[1])
            if tp in highest and coord[2] <= highest[tp]:
                replayed += 1
                continue
            highest[tp] = coord[2]
        if line.status == "bad":
            rejected.append(Rejected(line.reason, line.text, coord, path, lineno, plain))
            continue
        e = line.event
        accepted.append(Accepted(coord, e.event_type, e.chat_id, e.sequence, e.message_id, line.trace_id,
                                 e.created_at, e.delivered_at, e.recipient_id))

    has_messages = h.messages is not None
    has_counters = h.counters is not None
    items = h.messages or {}
    counters = h.counters or {}

    # ------------------------------------------------------------ per chat
    seen: dict[str, set[int]] = defaultdict(set)
    event_seqs: dict[str, set[int]] = defaultdict(set)
    persisted_seqs: dict[str, set[int]] = defaultdict(set)
    for r in accepted:
        seen[r.chat_id].add(r.sequence)
        event_seqs[r.chat_id].add(r.sequence)
        if r.event_type == PERSISTED:
            persisted_seqs[r.chat_id].add(r.sequence)
    for chat, by_seq in items.items():
        seen[chat].update(by_seq)
    chats = {chat for chat, seqs in seen.items() if seqs}

    findings: list[Finding] = []
    counts = Counter({k: 0 for k in KINDS})
    counts["redelivered"] = 0

    # message_loss
    claims: dict[tuple[str, int, str], list[Accepted]] = defaultdict(list)
    for r in accepted:
        if r.event_type in (ACKED, PERSISTED):
            claims[(r.chat_id, r.sequence, r.message_id)].append(r)
    losses = 0
    if has_messages:
        for (chat, seq, mid), recs in claims.items():
            if items.get(chat, {}).get(seq) != mid:
                losses += 1
                findings.append(Finding("message_loss", chat, seq, (mid,), candidates=recs,
                                        expected_records=recs[:EVIDENCE_CAP]))
        counts["message_loss"] = losses

    # duplicate_sequence
    ids_at: dict[tuple[str, int], list[str]] = defaultdict(list)  # in first-seen order
    recs_at: dict[tuple[str, int], list[Accepted]] = defaultdict(list)
    for r in accepted:
        key = (r.chat_id, r.sequence)
        recs_at[key].append(r)
        if r.message_id not in ids_at[key]:
            ids_at[key].append(r.message_id)
    for chat, by_seq in items.items():
        for seq, mid in by_seq.items():
            if mid not in ids_at[(chat, seq)]:
                ids_at[(chat, seq)].append(mid)
    for (chat, seq), ids in ids_at.items():
        if len(ids) < 2:
            continue
        counts["duplicate_sequence"] += len(ids) - 1
        recs = recs_at[(chat, seq)]
        item = items.get(chat, {}).get(seq)
        if has_messages and item is not None:
            reference = item
        elif not has_messages:
            reference = next(r.message_id for r in recs)
        else:
            reference = None  # table present, no item: the docs leave the reference open
        expected = None if reference is None else [r for r in recs if r.message_id != reference][:EVIDENCE_CAP]
        findings.append(Finding("duplicate_sequence", chat, seq, tuple(sorted(ids)), candidates=recs,
                                expected_records=expected))

    # counter_corruption
    if has_counters:
        for chat in sorted(chats):
            last = counters.get(chat)
            top = max(seen[chat])
            if last is None:
                reason = "missing"
            elif last < top:
                reason = "behind"
            else:
                continue
            # "the record that first carried the chat's highest event sequence,
            # when that sequence is above the counter (none when only an
            # authority item is)"
            recs = []
            if event_seqs[chat]:
                top_event = max(event_seqs[chat])
                recs = [next(r for r in accepted if r.chat_id == chat and r.sequence == top_event)]
            if reason == "behind":
                exact = recs if recs and top_event > last else []
            else:  # missing: no counter to be above; exact only when an event holds the top
                exact = recs if not recs or top_event == top else None
            findings.append(Finding("counter_corruption", chat, None, (), reason=reason,
                                    candidates=recs, expected_records=exact))
            counts["counter_corruption"] += 1

    # sequence_gap
    for chat in sorted(chats):
        lo, hi = min(seen[chat]), max(seen[chat])
        last = counters.get(chat)
        if has_counters and last is not None and last >= hi:
            hi = last
        for seq in range(lo, hi + 1):
            if seq in persisted_seqs[chat]:
                continue
            if not has_messages:
                cls, mids = "unverified", ()
            elif seq in items.get(chat, {}):
                cls, mids = "publish_gap", (items[chat][seq],)
            else:
                cls, mids = "sequence_hole", ()
            findings.append(Finding("sequence_gap", chat, seq, mids, classification=cls,
                                    candidates=[], expected_records=[]))
            counts["sequence_gap"] += 1

    # out_of_order / redelivered
    max_persisted: dict[str, int] = {}
    processed: set[tuple[str, int, str]] = set()
    for r in accepted:
        if r.event_type != PERSISTED:
            continue
        key = (r.chat_id, r.sequence, r.message_id)
        if key in processed:
            counts["redelivered"] += 1
        elif r.chat_id in max_persisted and r.sequence < max_persisted[r.chat_id]:
            findings.append(Finding("out_of_order", r.chat_id, r.sequence, (r.message_id,),
                                    candidates=[r], expected_records=[r]))
            counts["out_of_order"] += 1
        processed.add(key)
        max_persisted[r.chat_id] = max(max_persisted.get(r.chat_id, r.sequence), r.sequence)

    # clock_skew, latency
    latency = []
    delivered = [r for r in accepted if r.event_type == DELIVERED]
    for r in delivered:
        if r.delivered_at < r.created_at:
            findings.append(Finding("clock_skew", r.chat_id, r.sequence, (r.message_id,),
                                    candidates=[r], expected_records=[r]))
            counts["clock_skew"] += 1
        else:
            latency.append((r.delivered_at - r.created_at) / 1e6)

    # duplicate_delivery, within the delivery window (docs/semantics.md): a
    # chat's remembered deliveries queue in arrival order; each new one joins
    # the queue, which is then cut from its front while the front's sequence is
    # below the chat's highest delivered sequence minus the window. A delivery
    # already repeated stays remembered when it leaves the queue (its finding
    # is reported at the end). A repeat of a remembered (recipient, message)
    # joins its group; of a forgotten one, starts a new group.
    window = h.delivery_window if h.delivery_window is not None else DEFAULT_DELIVERY_WINDOW
    groups: list[list[Accepted]] = []
    remembered: dict[tuple[str, str], list[Accepted]] = {}
    queue: dict[str, list[tuple[int, tuple[str, str]]]] = defaultdict(list)
    highest_delivered: dict[str, int] = {}
    for r in delivered:
        key = (r.recipient_id, r.message_id)
        if key in remembered:
            remembered[key].append(r)
            continue
        remembered[key] = [r]
        groups.append(remembered[key])
        chat_queue = queue[r.chat_id]
        chat_queue.append((r.sequence, key))
        highest_delivered[r.chat_id] = max(highest_delivered.get(r.chat_id, 0), r.sequence)
        while chat_queue and chat_queue[0][0] < highest_delivered[r.chat_id] - window:
            gone = chat_queue.pop(0)[1]
            if len(remembered[gone]) == 1:
                del remembered[gone]
    extra_deliveries = 0
    for recs in groups:
        if len(recs) > 1:
            extra_deliveries += len(recs) - 1
            first = recs[0]
            # the generator keeps a message id in one chat at one sequence
            assert all((r.chat_id, r.sequence) == (first.chat_id, first.sequence) for r in recs)
            findings.append(Finding("duplicate_delivery", first.chat_id, first.sequence, (first.message_id,),
                                    recipient_id=first.recipient_id, candidates=recs,
                                    expected_records=recs[:EVIDENCE_CAP]))
    counts["duplicate_delivery"] = extra_deliveries

    # ------------------------------------------------------------ report sections
    by_type = Counter(r.event_type for r in accepted)
    by_reason = Counter(r.reason for r in rejected)
    events = {
        "total": len(accepted),
        "by_type": dict(by_type),
        "rejected": len(rejected),
        "rejected_by_reason": dict(by_reason),
        "replayed_records": replayed,
    }

    gaps_by_cls = Counter(f.classification for f in findings if f.kind == "sequence_gap")
    counter_by_reason = Counter(f.reason for f in findings if f.kind == "counter_corruption")
    m: dict = {}

    def put(name, value, **labels):
        m[(name, frozenset(labels.items()))] = value

    put("auditor_out_of_order_total", counts["out_of_order"])
    put("durability_duplicate_sequence_total", counts["duplicate_sequence"])
    for reason in ("invalid_envelope", "invalid_json", "not_an_object", "missing_field",
                   "invalid_field", "unknown_event_type"):
        put("auditor_events_rejected_total", by_reason.get(reason, 0), reason=reason)
    for cls in ("publish_gap", "sequence_hole", "unverified"):
        put("auditor_sequence_gaps_total", gaps_by_cls.get(cls, 0), classification=cls)
    for et in (PERSISTED, ACKED, DELIVERED):
        put("auditor_events_total", by_type.get(et, 0), event_type=et)
    for reason in ("missing", "behind"):
        put("durability_counter_missing_total", counter_by_reason.get(reason, 0), reason=reason)
    put("messaging_clock_skew_samples_total", counts["clock_skew"],
        source_plane="durability", dest_plane="connection")
    put("fanout_delivery_total", len(groups), status="delivered")
    put("fanout_delivery_total", extra_deliveries, status="duplicate")
    put("durability_ack_sent_total", len(claims) - losses if has_messages else 0, persisted="true")
    put("durability_ack_sent_total", losses if has_messages else 0, persisted="false")
    put("fanout_delivery_latency_seconds_count", len(latency))
    put("fanout_delivery_latency_seconds_sum", sum(latency))

    return Expected(accepted, rejected, replayed, findings, dict(counts), events, m)
