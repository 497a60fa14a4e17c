"""The synthetic workload: deterministic, well-formed, and faulty exactly as asked."""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import zlib

import pytest

from auditor.workload import (
    BAD_KINDS,
    CHAT_FAULTS,
    MESSAGE_FAULTS,
    Workload,
    WorkloadSpec,
    write_export,
    write_kcat_dump,
)

FAULTY = WorkloadSpec(
    chats=60, messages=6_000, partitions=5, recipients_per_message=2, ack_ratio=0.8,
    loss=0.01, duplicate_sequence=0.01, gap=0.01, out_of_order=0.01, clock_skew=0.01,
    duplicate_delivery=0.01, counter_behind=0.1, counter_missing=0.1, producer_retry=0.01,
    bad_record=0.01, seed=42,
)


@pytest.fixture(scope="module")
def workload() -> Workload:
    return Workload(FAULTY)


@pytest.fixture(scope="module")
def records(workload):
    return list(workload.records())


def test_same_seed_same_records_and_truth(workload, records):
    again = Workload(FAULTY)
    assert list(again.records()) == records
    assert list(workload.records()) == records  # regenerated, not consumed
    assert again.truth() == workload.truth()


def test_other_seed_other_records(records):
    other = Workload(dataclasses.replace(FAULTY, seed=43))
    assert list(other.records())[:50] != records[:50]


def test_offsets_increase_per_partition_and_chats_keep_their_partition(records):
    offsets: dict = collections.defaultdict(list)
    for topic, partition, offset, key, headers, payload in records:
        offsets[topic, partition].append(offset)
        assert partition == zlib.crc32(key) % FAULTY.partitions
        assert 0 <= partition < FAULTY.partitions
        name, value = headers[0]
        assert name == "traceparent"
        version, trace, span, flags = value.decode().split("-")
        assert (version, len(trace), len(span), flags) == ("00", 32, 16, "01")
    assert {t for t, _ in offsets} == {FAULTY.persisted_topic, FAULTY.acked_topic, FAULTY.delivered_topic}
    for offs in offsets.values():
        assert offs == list(range(len(offs)))


def test_topics_are_interleaved(records):
    first_topics = {r.topic for r in records[:200]}
    assert len(first_topics) == 3


def test_injected_counts_are_what_the_spec_asked(workload):
    for fault in MESSAGE_FAULTS + ("bad_record",):
        assert workload.injected[fault] == round(getattr(FAULTY, fault) * FAULTY.messages) > 0
    active = sum(1 for n in workload.counts if n >= 2)
    for fault in CHAT_FAULTS:
        assert workload.injected[fault] == round(getattr(FAULTY, fault) * active) > 0
    assert sum(workload.counts) == FAULTY.messages
    assert max(workload.counts) > 5 * (FAULTY.messages / FAULTY.chats)  # Zipf: a few hot chats


def _audit(records, messages, counters) -> collections.Counter:
    """A minimal reference reading of docs/semantics.md, enough to see each fault."""
    found: collections.Counter = collections.Counter()
    persisted_seen, max_persisted, ids = set(), {}, collections.defaultdict(set)
    claims, deliveries, seen_hi, persisted_seqs = set(), collections.Counter(), {}, set()
    for rec in records:
        try:
            event = json.loads(rec.payload)
            assert isinstance(event, dict) and event["event_type"] in ("message_persisted", "message_acked",
                                                                      "message_delivered")
            chat, seq, mid = event["chat_id"], event["sequence"], event["message_id"]
            assert type(seq) is int and seq >= 1
        except (ValueError, AssertionError, KeyError):
            found["rejected"] += 1
            continue
        kind, triple = event["event_type"], (chat, seq, mid)
        ids[chat, seq].add(mid)
        seen_hi[chat] = max(seen_hi.get(chat, 0), seq)
        if kind != "message_delivered":
            claims.add(triple)
        if kind == "message_persisted":
            if triple in persisted_seen:
                found["redelivered"] += 1
            elif seq < max_persisted.get(chat, 0):
                found["out_of_order"] += 1
            persisted_seen.add(triple)
            persisted_seqs.add((chat, seq))
            max_persisted[chat] = max(max_persisted.get(chat, 0), seq)
        if kind == "message_delivered":
            deliveries[event["recipient_id"], mid] += 1
            found["clock_skew"] += event["delivered_at"] < event["created_at"]
    for chat, items in messages.items():
        for seq, mid in items.items():
            ids[chat, seq].add(mid)
            seen_hi[chat] = max(seen_hi.get(chat, 0), seq)
    found["message_loss"] = sum(1 for c, s, m in claims if messages.get(c, {}).get(s) != m)
    found["duplicate_sequence"] = sum(len(v) - 1 for v in ids.values())
    found["duplicate_delivery"] = sum(n - 1 for n in deliveries.values())
    for chat, hi in seen_hi.items():
        last = counters.get(chat)
        found["counter_corruption"] += last is None or last < hi
        top = max(hi, last or 0)
        lo = min(s for c, s in ids if c == chat)
        found["sequence_gap"] += sum(1 for s in range(lo, top + 1) if (chat, s) not in persisted_seqs)
    return found


def test_records_and_truth_carry_exactly_the_expected_findings(workload, records):
    messages, counters = workload.truth()
    found = _audit(records, messages, counters)
    assert {k: found[k] for k in workload.expected} == workload.expected


def test_clean_workload_has_no_findings():
    w = Workload(WorkloadSpec(chats=30, messages=2_000, seed=1))
    found = _audit(list(w.records()), *w.truth())
    assert +found == collections.Counter()
    assert all(v == 0 for v in w.expected.values())


def _rejection(payload: bytes) -> str | None:
    try:
        event = json.loads(payload)
    except ValueError:
        return "invalid_json"
    if not isinstance(event, dict):
        return "not_an_object"
    if not {"event_type", "chat_id", "sequence", "message_id"} <= set(event):
        return "missing_field"
    if type(event["sequence"]) is not int:
        return "invalid_field"
    if event["event_type"] not in ("message_persisted", "message_acked", "message_delivered"):
        return "unknown_event_type"
    return None


def test_bad_records_cover_every_rejection_kind(records):
    reasons = collections.Counter(_rejection(r.payload) for r in records)
    del reasons[None]
    assert set(reasons) == set(BAD_KINDS)
    assert sum(reasons.values()) == round(FAULTY.bad_record * FAULTY.messages)


def test_formula_authority_matches_materialised_truth(workload):
    messages, counters = workload.truth()
    auth = workload.authority()
    assert auth.has_messages and auth.has_counters
    assert set(auth.chat_ids()) == set(messages)
    for c, n in enumerate(workload.counts):
        chat = f"chat_{c:06d}"
        items = messages.get(chat, {})
        for seq in range(0, n + 2):
            assert auth.message_id(chat, seq) == items.get(seq)
        assert auth.sequence_bounds(chat) == ((min(items), max(items)) if items else None)
        assert auth.last_sequence(chat) == counters.get(chat)
    assert auth.message_id("no_such_chat", 1) is None
    bare = workload.authority(messages=False, counters=False)
    assert not bare.has_messages and not bare.has_counters
    assert bare.message_id("chat_000000", 1) is None and bare.last_sequence("chat_000000") is None
    assert list(bare.chat_ids()) == []


def test_export_round_trips(workload, tmp_path):
    messages, counters = workload.truth()
    write_export(messages, counters, tmp_path / "messages", tmp_path / "chat_counters")
    read_messages: dict = {}
    with gzip.open(tmp_path / "messages" / "data" / "export.json.gz", "rt") as f:
        for line in f:
            item = json.loads(line)["Item"]
            assert set(item) == {"chat_id", "sequence", "message_id", "sender_id", "created_at"}
            read_messages.setdefault(item["chat_id"]["S"], {})[int(item["sequence"]["N"])] = item["message_id"]["S"]
    read_counters = {}
    with gzip.open(tmp_path / "chat_counters" / "data" / "export.json.gz", "rt") as f:
        for line in f:
            item = json.loads(line)["Item"]
            assert isinstance(item["last_sequence"]["N"], str)
            read_counters[item["chat_id"]["S"]] = int(item["last_sequence"]["N"])
    assert read_messages == messages
    assert read_counters == counters


@pytest.mark.parametrize("name", ["dump.jsonl", "dump.jsonl.gz"])
def test_kcat_dump_round_trips(records, tmp_path, name):
    path = tmp_path / name
    assert write_kcat_dump(records[:500], path) == 500
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as f:
        lines = [json.loads(line) for line in f]
    for env, rec in zip(lines, records[:500], strict=True):
        assert (env["topic"], env["partition"], env["offset"]) == (rec.topic, rec.partition, rec.offset)
        assert env["key"].encode() == rec.key and env["payload"].encode() == rec.payload
        assert env["headers"] == [x for h, v in rec.headers for x in (h, v.decode())]
        assert isinstance(env["ts"], int) and env["tstype"] == "create"


def test_too_many_faults_is_an_error():
    with pytest.raises(ValueError):
        Workload(WorkloadSpec(chats=2, messages=10, out_of_order=0.6, loss=0.5))
