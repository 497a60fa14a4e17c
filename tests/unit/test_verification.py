"""Verification policies: reading fewer items changes when verdicts are taken,
never what they are. Driven without DynamoDB by an authority that reveals the
truth only for the keys the policy reads (as `TableAuthority` does)."""

import pytest

from auditor.authority import InMemoryAuthority
from auditor.engine import AuditEngine
from auditor.verification import ALL, ANOMALIES, SAMPLE, VerificationPolicy
from auditor.workload import Workload, WorkloadSpec

from .history import History, acked, persisted

EVERY_FAULT = dict(loss=0.02, duplicate_sequence=0.02, gap=0.02, out_of_order=0.02, clock_skew=0.02,
                   duplicate_delivery=0.02, counter_behind=0.1, counter_missing=0.1,
                   producer_retry=0.02, bad_record=0.02)


class RevealingAuthority:
    """The truth, but only for keys read so far; everything at `reveal_all`."""

    def __init__(self, messages: dict, counters: dict) -> None:
        self.truth = InMemoryAuthority(messages, counters)
        self.has_messages = self.has_counters = True
        self.complete = False
        self._items: dict[str, dict] = {}
        self.reads = 0

    def read(self, keys) -> None:
        for chat, seq in keys:
            self._items.setdefault(chat, {})[seq] = self.truth.message_id(chat, seq)
        self.reads += len(keys)

    def reveal_all(self, chats) -> None:
        for chat in set(chats) | set(self.truth.chat_ids()):
            self._items.setdefault(chat, {}).update(self.truth.items_of(chat))

    def items_of(self, chat):
        return self._items.setdefault(chat, {})

    def message_id(self, chat, seq):
        return self._items.get(chat, {}).get(seq)

    def sequence_bounds(self, chat):
        return self.truth.sequence_bounds(chat)

    def last_sequence(self, chat):
        return self.truth.last_sequence(chat)

    def chat_ids(self):
        return self.truth.chat_ids()


def audit(records, messages, counters, policy: VerificationPolicy | None):
    """Findings and tallies, as `replay_live` runs a batch loop (policy None: an export)."""
    if policy is None:
        authority = InMemoryAuthority(messages, counters)
    else:
        authority = RevealingAuthority(messages, counters)
    engine = AuditEngine(authority)
    findings = []
    for start in range(0, len(records), 97):  # batches that split chats and sequences
        admitted = engine.admit(records[start:start + 97])
        if policy is not None:
            keys = policy.keys_to_read(admitted, engine)
            authority.read(keys)
            engine.settle(keys)
        findings += engine.apply(admitted)[0]
    if policy is not None:
        authority.reveal_all(engine.chats)
        engine.settle(engine.unverified_keys())
    findings += engine.finish()
    findings.sort(key=lambda f: f.sort_key)
    reads = authority.reads if policy is not None else None
    return [f.to_dict() for f in findings], engine.tallies, reads


def workload_case(seed: int):
    workload = Workload(WorkloadSpec(chats=12, messages=800, partitions=3, seed=seed, **EVERY_FAULT))
    records = [History().add(r.payload, topic=r.topic, partition=r.partition, offset=r.offset)
               for r in workload.records()]
    return records, *workload.truth()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("policy", [VerificationPolicy(SAMPLE, 0.05), VerificationPolicy(SAMPLE, 0.5),
                                    VerificationPolicy(ANOMALIES)], ids=lambda p: f"{p.mode}-{p.sample_rate}")
def test_every_policy_ends_with_the_exported_verdicts(seed, policy):
    records, messages, counters = workload_case(seed)
    expected, expected_tallies, _ = audit(records, messages, counters, None)
    got, tallies, _ = audit(records, messages, counters, policy)
    assert tallies == expected_tallies
    assert without_duplicate_evidence(got) == without_duplicate_evidence(expected)
    # A duplicate's evidence may lack records of the id first taken for the item
    # (they were not kept), never hold others.
    for g, e in zip(got, expected):
        if g["kind"] == "duplicate_sequence":
            assert set(map(str, g["records"])) <= set(map(str, e["records"])) or len(e["records"]) == 8


def without_duplicate_evidence(findings):
    return [f | {"records": [], "trace_ids": []} if f["kind"] == "duplicate_sequence" else f
            for f in findings]


def test_reads_shrink_with_the_policy():
    records, messages, counters = workload_case(5)
    reads = {p.mode: audit(records, messages, counters, p)[2]
             for p in (VerificationPolicy(ALL), VerificationPolicy(SAMPLE, 0.1), VerificationPolicy(ANOMALIES))}
    assert reads[ALL] > reads[SAMPLE] > reads[ANOMALIES] > 0


def test_the_first_id_is_not_the_item():
    # a then b at sequence 1, the item says c: both claims are losses, 3 distinct ids.
    h = History().extend(persisted("c1", 1, "a"), acked("c1", 1, "a"), acked("c1", 1, "b"))
    truth = ({"c1": {1: "c"}}, {"c1": 1})
    authority = RevealingAuthority(*truth)
    engine = AuditEngine(authority)
    engine.apply(engine.admit(h.records[:2]))  # nothing read: a stands in for the item
    assert engine.tallies.ack_persisted == {"true": 0, "false": 0}
    admitted = engine.admit(h.records[2:])
    keys = VerificationPolicy(ANOMALIES).keys_to_read(admitted, engine)
    assert keys == {("c1", 1)}  # b conflicts with a: read it
    authority.read(keys)
    engine.settle(keys)
    engine.apply(admitted)
    findings = engine.finish()
    assert sorted(f.message_ids for f in findings if f.kind == "message_loss") == [("a",), ("b",)]
    [dup] = [f for f in findings if f.kind == "duplicate_sequence"]
    assert dup.message_ids == ("a", "b", "c")
    assert engine.tallies.counts["duplicate_sequence"] == 2
    assert engine.tallies.ack_persisted == {"true": 0, "false": 2}
