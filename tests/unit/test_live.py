"""The live consumer's parts that need no broker: the checkpoint protocol's order
and format, finding ids, per-process tallies, a partition's authority view, and
`auditor run`'s configuration."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from auditor.authority import InMemoryAuthority
from auditor.cli import _parser
from auditor.cli_run import live_config
from auditor.engine import AuditEngine
from auditor.errors import ConfigError
from auditor.findings import Finding
from auditor.horizon import Grace
from auditor.live.checkpoint import (Checkpointer, CheckpointError, CheckpointTooLarge, PartitionState,
                                     checkpoint_key, decode, encode)
from auditor.live.config import CheckpointSettings, KafkaSettings
from auditor.live.metrics import ProcessTallies, combine, total
from auditor.live.partitions import PARTITIONERS, PartitionAuthority
from auditor.live.sinks import finding_id
from auditor.records import Record
from auditor.snapshot import restore
from auditor.state import Tallies


def persisted(chat: str, seq: int, offset: int, mid: str | None = None) -> Record:
    payload = (f'{{"event_type":"message_persisted","chat_id":"{chat}","sequence":{seq},'
               f'"message_id":"{mid or f"{chat}-{seq}"}","created_at":"2026-01-31T10:00:00Z","sender_id":"u"}}')
    return Record("messages.persisted", 0, offset, payload.encode())


# -- checkpoint records ---------------------------------------------------------------------

def test_a_checkpoint_record_round_trips_and_restores_the_engine():
    engine = AuditEngine(InMemoryAuthority())
    engine.process([persisted("c1", 1, 0), persisted("c1", 3, 1), persisted("c1", 2, 2)])
    from auditor.snapshot import snapshot
    value = encode({"partition": 2, "offsets": {"messages.persisted": 3}, "checkpoint_id": "x"}, snapshot(engine))
    checkpoint = decode(value, log_offset=7)
    assert (checkpoint.partition, checkpoint.offsets, checkpoint.checkpoint_id, checkpoint.log_offset) == \
        (2, {"messages.persisted": 3}, "x", 7)
    twin = restore(checkpoint.snapshot, InMemoryAuthority())
    assert twin.tallies == engine.tallies and set(twin.chats) == {"c1"}
    assert checkpoint_key("g", 2) == b"g/2"


@pytest.mark.parametrize("value", [b"", b"AUCK", b"XXXX\x01\x00\x00\x00\x02{}", b"AUCK\x09\x00\x00\x00\x02{}",
                                   b"AUCK\x01\x00\x00\x00\x02{}", b"AUCK\x01\x00\x00\x00\x03{x}"])
def test_an_unreadable_checkpoint_is_an_error_not_an_empty_state(value):
    with pytest.raises(CheckpointError):
        decode(value)


class FakeProducer:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    async def send(self, topic, value, key=None, partition=None):
        self.calls.append(("produce", key.decode(), partition))
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(lambda: (self.calls.append(("acked", key.decode())),
                                                      future.set_result(None)))
        return future


class FakeConsumer:
    def __init__(self, calls: list, refuse: bool = False) -> None:
        self.calls, self.refuse = calls, refuse

    async def commit(self, offsets):
        self.calls.append(("commit", dict(offsets)))
        if self.refuse:
            raise CommitFailedError("rebalancing")


def checkpointer(calls: list, max_bytes: int = 1_000_000, partitions: int = 2) -> Checkpointer:
    return Checkpointer(CheckpointSettings(topic="ck", max_bytes=max_bytes), "g", KafkaSettings(),
                        FakeProducer(calls), partitions, "test")


def state(p: int, offsets: dict[str, int], checkpointed: dict[str, int] | None = None) -> PartitionState:
    engine = AuditEngine(InMemoryAuthority())
    engine.process([persisted(f"c{p}", 1, 0)])
    return PartitionState(p, engine, dict(offsets), dict(checkpointed or {}))


def test_commit_flushes_findings_then_produces_then_commits_the_same_offsets():
    calls: list = []

    async def flush():
        calls.append(("flush",))

    states = [state(0, {"a": 5, "b": 2}), state(1, {"a": 9}, checkpointed={"a": 9}), state(3, {"a": 4})]
    written = asyncio.run(checkpointer(calls).commit(states, FakeConsumer(calls), flush, "test"))
    assert written == 2  # partition 1 has not moved since its checkpoint
    assert calls[0] == ("flush",)
    produced = [c for c in calls if c[0] == "produce"]
    assert produced == [("produce", "g/0", 0), ("produce", "g/3", 1)]  # checkpoint partition = p mod 2
    commit_at = next(i for i, c in enumerate(calls) if c[0] == "commit")
    assert all(calls.index(("acked", k)) < commit_at for k in ("g/0", "g/3")), "committed before acknowledged"
    assert calls[commit_at][1] == {TopicPartition("a", 0): 5, TopicPartition("b", 0): 2,
                                   TopicPartition("a", 1): 9, TopicPartition("a", 3): 4}
    assert [s.checkpointed for s in states] == [{"a": 5, "b": 2}, {"a": 9}, {"a": 4}]
    assert all(s.committed == s.checkpointed and s.checkpoint_id for s in (states[0], states[2]))

    calls.clear()  # nothing moved: nothing written, nothing committed
    assert asyncio.run(checkpointer(calls).commit(states, FakeConsumer(calls), flush, "test")) == 0
    assert calls == [("flush",)]


def test_a_refused_commit_keeps_the_checkpoint_and_commits_next_time():
    calls: list = []

    async def flush():
        pass

    states = [state(0, {"a": 5})]
    asyncio.run(checkpointer(calls).commit(states, FakeConsumer(calls, refuse=True), flush, "test"))
    assert states[0].checkpointed == {"a": 5} and states[0].committed == {}
    calls.clear()
    asyncio.run(checkpointer(calls).commit(states, FakeConsumer(calls), flush, "test"))
    assert calls == [("commit", {TopicPartition("a", 0): 5})]  # no new record, the commit is retried


def test_a_checkpoint_above_the_limit_fails_loudly_and_writes_nothing():
    calls: list = []

    async def flush():
        pass

    big = state(0, {"a": 5})
    big.engine.process([persisted(f"chat-{i}", 1, i + 1, mid=f"{i:040d}") for i in range(3000)])
    with pytest.raises(CheckpointTooLarge, match="max.message.bytes"):
        asyncio.run(checkpointer(calls, max_bytes=4096).commit([big], FakeConsumer(calls), flush, "test"))
    assert not [c for c in calls if c[0] in ("produce", "commit")]


# -- findings ------------------------------------------------------------------------------------

def test_finding_ids_name_the_finding_not_its_evidence():
    r1, r2 = persisted("c", 3, 10), persisted("c", 3, 11)
    gap = Finding("sequence_gap", "c", 4, ("m4",), "x", classification="publish_gap")
    assert finding_id(gap) == finding_id(dataclasses.replace(gap, detail="other", message_ids=()))
    assert finding_id(gap) != finding_id(dataclasses.replace(gap, sequence=5))
    loss = Finding("message_loss", "c", 3, ("m",), "x", (r1,))
    assert finding_id(loss) == finding_id(dataclasses.replace(loss, evidence=(r1, r2)))
    assert finding_id(loss) != finding_id(dataclasses.replace(loss, message_ids=("n",)))
    ooo = Finding("out_of_order", "c", 3, ("m",), "x", (r1,))
    assert finding_id(ooo) != finding_id(dataclasses.replace(ooo, evidence=(r2,)))  # one per record
    assert len(finding_id(ooo)) == 32


# -- tallies ------------------------------------------------------------------------------------

def tallies(events: int, loss: int, latency: float) -> Tallies:
    t = Tallies()
    t.events_by_type["message_persisted"] = events
    t.counts["message_loss"] = loss
    t.latency_bucket_counts[0] = events
    t.latency_sum = latency
    t.rejected_by_reason["invalid_json"] = loss
    return t


def test_tallies_add_and_subtract_field_by_field():
    a, b = tallies(5, 1, 0.5), tallies(7, 2, 1.0)
    s = total([a, b])
    assert (s.events_by_type["message_persisted"], s.counts["message_loss"], s.latency_bucket_counts[0],
            s.latency_sum, s.rejected_by_reason) == (12, 3, 12, 1.5, {"invalid_json": 3})
    assert combine(s, b, -1) == a


def test_process_tallies_count_what_this_process_audited_and_never_fall():
    owned: dict[int, Tallies] = {}
    counted = ProcessTallies(lambda: owned.items())
    owned[0] = tallies(10, 0, 0.0)  # restored with 10 events from a checkpoint
    counted.adopt(0, owned[0])
    assert counted().events_total == 0
    owned[0] = tallies(14, 0, 0.0)  # audited 4 more
    assert counted().events_total == 4
    counted.retire(0, owned.pop(0))  # given up: what we audited stays counted
    assert counted().events_total == 4
    owned[1] = tallies(3, 0, 0.0)  # a fresh partition
    counted.adopt(1, Tallies())
    assert counted().events_total == 7


# -- a partition's view of the authority ---------------------------------------------------

def test_each_partition_reports_its_own_authority_only_chats():
    messages = {f"chat_{i:06d}": {1: "m"} for i in range(50)}
    authority = InMemoryAuthority(messages, {})
    crc32 = PARTITIONERS["crc32"]
    views = [PartitionAuthority(authority, p, 4, crc32) for p in range(4)]
    seen = [set(v.chat_ids()) for v in views]
    assert set().union(*seen) == set(messages) and sum(map(len, seen)) == len(messages)
    assert all(crc32(c, 4) == p for p, chats in enumerate(seen) for c in chats)
    assert views[0].message_id("chat_000001", 1) == "m" and views[0].has_messages and views[0].complete
    assert not list(PartitionAuthority(authority, 0, 4, PARTITIONERS["none"]).chat_ids())
    # murmur2 is Kafka's default partitioner (the Java client's; aiokafka's)
    from aiokafka.partitioner import DefaultPartitioner
    assert all(PARTITIONERS["murmur2"](c, 4) == DefaultPartitioner()(c.encode(), [0, 1, 2, 3], [0, 1, 2, 3])
               for c in messages)


# -- auditor run: configuration -----------------------------------------------------------------

def parse(*argv: str):
    return _parser().parse_args(["run", *argv])


def test_run_flags_become_one_frozen_config(monkeypatch):
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    config = live_config(parse("--bootstrap-servers", "k1:9093,k2:9093", "--group-id", "g1",
                               "--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", "SCRAM-SHA-512",
                               "--sasl-username", "auditor", "--dynamodb-endpoint", "http://127.0.0.1:8000",
                               "--verify", "anomalies", "--checkpoint-interval", "5", "--findings-topic", "",
                               "--persisted-topic", "p", "--http-port", "0"))
    assert config.kafka.client_kwargs() == {
        "bootstrap_servers": "k1:9093,k2:9093", "client_id": "auditor", "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "auditor", "sasl_plain_password": "s3cret"}
    assert "s3cret" not in repr(config.kafka)
    assert (config.group_id, config.topics.persisted, config.findings_topic, config.http_port) == ("g1", "p", None, 0)
    assert config.verification.mode == "anomalies" and config.checkpoint.interval_seconds == 5
    assert config.dynamo.endpoint_url == "http://127.0.0.1:8000"
    assert (config.grace.seconds, config.grace.records) == (60.0, 10_000)
    monkeypatch.setenv("AUDITOR_GRACE_SECONDS", "30")
    assert live_config(parse("--no-dynamodb", "--grace-records", "500")).grace == Grace(30.0, 500)
    assert live_config(parse("--no-dynamodb", "--no-horizon")).grace is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.group_id = "other"


def test_run_configuration_errors_are_clear(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="--no-dynamodb"):
        live_config(parse())
    with pytest.raises(ConfigError, match="password"):
        live_config(parse("--no-dynamodb", "--security-protocol", "SASL_SSL", "--sasl-mechanism", "PLAIN",
                          "--sasl-username", "u"))
    with pytest.raises(ConfigError, match="distinct"):
        live_config(parse("--no-dynamodb", "--checkpoint-topic", "messages.acked"))
    assert live_config(parse("--no-dynamodb")).dynamo is None
    with pytest.raises(ConfigError, match="grace"):
        live_config(parse("--no-dynamodb", "--grace-seconds", "-1"))


# -- a known divergence, kept visible ------------------------------------------------------------

def delivered(chat: str, seq: int, offset: int) -> Record:
    payload = (f'{{"event_type":"message_delivered","chat_id":"{chat}","sequence":{seq},'
               f'"message_id":"{chat}-{seq}","recipient_id":"r","created_at":"2026-01-31T10:00:00Z",'
               f'"delivered_at":"2026-01-31T10:00:01Z"}}')
    return Record("messages.delivered", 0, offset, payload.encode())


def test_duplicate_delivery_does_not_depend_on_how_topics_interleave():
    window = 100
    persisted_records = [persisted("c", s, s) for s in range(1, window + 20)]
    deliveries = [delivered("c", 1, 0), delivered("c", 1, 1)]  # delivered twice, soon after sequence 1

    def duplicates(records) -> int:
        from auditor.engine import EngineConfig
        engine = AuditEngine(InMemoryAuthority(), EngineConfig(delivery_window=window))
        engine.process(records)
        engine.finish()
        return engine.tallies.counts["duplicate_delivery"]

    as_emitted = duplicates(persisted_records[:1] + deliveries + persisted_records[1:])
    topic_by_topic = duplicates(persisted_records + deliveries)  # a live fetch of the persisted topic ran ahead
    assert as_emitted == 1
    assert topic_by_topic == as_emitted
