"""One chat's engine state, driven step by step against a plain model.

Hypothesis picks the authority for the chat (items, counter, or no tables) and
then a sequence of persisted / acked / delivered events, retries, and replays;
after every step the engine's counts and per-chat state must equal the model's,
and at the end its findings must too.
"""

import orjson
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from auditor.authority import InMemoryAuthority
from auditor.engine import AuditEngine
from auditor.records import Record

CHAT = "c"
SEQS = st.integers(min_value=1, max_value=12)
IDS = st.sampled_from(["a", "b", "c"])  # few ids per sequence: collisions are the point
TS, LATER, EARLIER = "2026-01-31T10:00:00Z", "2026-01-31T10:00:01Z", "2026-01-31T09:59:59Z"


def mid(seq: int, tag: str) -> str:
    return f"{seq}{tag}"


class ChatMachine(RuleBasedStateMachine):
    @initialize(items=st.dictionaries(SEQS, IDS, max_size=12),
                counter=st.one_of(st.none(), st.integers(min_value=0, max_value=14)),
                tables=st.sampled_from(["both", "messages", "counters", "none"]))
    def setup(self, items, counter, tables):
        self.items = {s: mid(s, t) for s, t in items.items()} if tables in ("both", "messages") else None
        self.counter = counter if tables in ("both", "counters") else None
        self.has_counters = tables in ("both", "counters")
        counters = ({CHAT: counter} if counter is not None else {}) if self.has_counters else None
        self.engine = AuditEngine(InMemoryAuthority(
            {CHAT: dict(self.items)} if self.items is not None else None, counters))
        self.offset = 0
        self.log: list[tuple[str, int, str, str]] = []  # accepted events, in order
        self.findings = []

    def _feed(self, event: dict, offset: int | None = None):
        if offset is None:
            offset = self.offset
            self.offset += 1
        record = Record("t", 0, offset, orjson.dumps(event).decode())
        findings, _ = self.engine.process([record])
        self.findings += findings
        return findings

    def _event(self, kind: str, seq: int, message_id: str, **extra) -> dict:
        base = {"event_type": f"message_{kind}", "chat_id": CHAT, "sequence": seq, "message_id": message_id}
        if kind == "persisted":
            return base | {"created_at": TS, "sender_id": "u"}
        if kind == "acked":
            return base | {"acked_at": TS}
        return base | {"recipient_id": extra["recipient"], "created_at": TS,
                       "delivered_at": EARLIER if extra["skew"] else LATER}

    @rule(kind=st.sampled_from(["persisted", "acked"]), seq=SEQS, tag=IDS)
    def claim(self, kind, seq, tag):
        self._feed(self._event(kind, seq, mid(seq, tag)))
        self.log.append((kind, seq, mid(seq, tag), ""))

    @rule(seq=SEQS, tag=IDS, recipient=st.sampled_from(["r1", "r2"]), skew=st.booleans())
    def deliver(self, seq, tag, recipient, skew):
        self._feed(self._event("delivered", seq, mid(seq, tag), recipient=recipient, skew=skew))
        self.log.append(("delivered", seq, mid(seq, tag), recipient))

    @rule(seq=SEQS, tag=IDS)
    def replayed_read(self, seq, tag):
        if self.offset:  # an old offset again: skipped, whatever it carries
            self._feed(self._event("persisted", seq, mid(seq, tag)), offset=self.offset - 1)

    # -- the model -----------------------------------------------------------

    def model_counts(self):
        persisted_seen, max_persisted = set(), 0
        redelivered = out_of_order = 0
        ids_at: dict[int, set] = {}
        claimed, deliveries = set(), {}
        for kind, seq, m, recipient in self.log:
            ids_at.setdefault(seq, set()).add(m)
            if kind == "persisted":
                if (seq, m) in persisted_seen:
                    redelivered += 1
                else:
                    if seq < max_persisted:
                        out_of_order += 1
                    max_persisted = max(max_persisted, seq)
                    persisted_seen.add((seq, m))
            if kind in ("persisted", "acked"):
                claimed.add((seq, m))
            if kind == "delivered":
                deliveries[(recipient, m)] = deliveries.get((recipient, m), 0) + 1
        if self.items is not None:
            for seq, item in self.items.items():
                if seq in ids_at:
                    ids_at[seq].add(item)
        lost = {c for c in claimed if self.items is not None and self.items.get(c[0]) != c[1]}
        return {
            "redelivered": redelivered, "out_of_order": out_of_order,
            "duplicate_sequence": sum(len(ids) - 1 for ids in ids_at.values()),
            "message_loss": len(lost),
            "duplicate_delivery": sum(n - 1 for n in deliveries.values()),
            "clock_skew": sum(1 for f in self.findings if f.kind == "clock_skew"),
        }, {s for s, _ in persisted_seen}, lost

    @invariant()
    def counts_agree(self):
        if not hasattr(self, "engine"):
            return
        expected, persisted, lost = self.model_counts()
        counts = self.engine.tallies.counts
        assert {k: counts[k] for k in expected} == expected
        chat = self.engine.chats.get(CHAT)
        if chat is not None:
            assert [s for s in range(1, 15) if s in chat.persisted] == sorted(persisted)
            assert chat.max_persisted == max(persisted, default=0)
        if self.items is not None:
            assert self.engine.tallies.ack_persisted["false"] == len(lost)

    def teardown(self):
        if not hasattr(self, "engine"):
            return
        findings = self.engine.finish()
        _, persisted, lost = self.model_counts()
        seen = [seq for _, seq, _, _ in self.log] + list(self.items or {})
        gaps, counter_findings = set(), 0
        if seen:
            lo, hi = min(seen), max(seen)
            if self.has_counters:
                if self.counter is None or self.counter < hi:
                    counter_findings = 1
                else:
                    hi = self.counter
            gaps = {s for s in range(lo, hi + 1) if s not in persisted}
        assert {f.sequence for f in findings if f.kind == "sequence_gap"} == gaps
        assert sum(f.kind == "counter_corruption" for f in findings) == counter_findings
        assert {(f.sequence, f.message_ids[0]) for f in findings if f.kind == "message_loss"} == lost


ChatMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
TestChatMachine = ChatMachine.TestCase
