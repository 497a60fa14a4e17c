"""The live consumer's configuration: one frozen object, built at the edge.

`auditor run` (auditor/cli_run.py) turns flags and environment into a
`LiveConfig`; everything below it receives this object and never reads
`os.environ`. Defaults are production defaults; tests shorten the timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine import EngineConfig
from ..horizon import Grace
from ..verification import VerificationPolicy

# Kafka's default for a topic's max.message.bytes (and the producer's
# max.request.size) is 1 MB; a checkpoint record must fit under the topic's limit.
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
CHAT_PARTITIONERS = ("murmur2", "crc32", "none")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach the cluster. `security` holds the aiokafka client keyword
    arguments for security (security_protocol, sasl_mechanism,
    sasl_plain_username, sasl_plain_password, ssl_context, ...), passed through
    unchanged to every client the auditor opens (consumer, producer, admin)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security: tuple[tuple[str, Any], ...] = ()
    client_id: str = "auditor"

    def client_kwargs(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap_servers, "client_id": self.client_id, **dict(self.security)}

    def __repr__(self) -> str:  # never print a password
        names = [k for k, _ in self.security]
        return f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, security keys={names})"


@dataclass(frozen=True, slots=True)
class Topics:
    persisted: str = "messages.persisted"
    acked: str = "messages.acked"
    delivered: str = "messages.delivered"

    @property
    def events(self) -> tuple[str, str, str]:
        return (self.persisted, self.acked, self.delivered)


@dataclass(frozen=True, slots=True)
class CheckpointSettings:
    """When and where per-partition state is checkpointed (auditor.live.checkpoint)."""

    topic: str = "auditor.checkpoints"
    interval_seconds: float = 10.0   # checkpoint at least this often while records arrive
    # ... and after this many records, whichever comes first. A checkpoint costs
    # a snapshot of each changed partition (tens of ms for a large state), so
    # not too often: the interval bounds what a crash makes the group audit again.
    every_records: int = 1_000_000
    # Upper bound of one checkpoint record (header + compressed snapshot). Kafka's
    # default max.message.bytes is 1 MB; a larger state needs the topic's limit
    # raised as well (the auditor does that only for a topic it creates).
    max_bytes: int = 1_000_000
    partitions: int | None = None    # when creating the topic; None = as many as the event topics
    read_timeout_seconds: float = 60.0  # reading the latest checkpoints on assignment

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0 or self.every_records < 1 or self.max_bytes < 1024:
            raise ValueError("checkpoint interval must be > 0, every_records >= 1, max_bytes >= 1024")


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # How long the group waits for members to finish their revoke (batch in
    # hand, checkpoint, commit) during a rebalance.
    rebalance_timeout_ms: int = 60_000
    max_poll_interval_ms: int = 300_000
    max_records: int = 10_000        # per getmany
    poll_timeout_ms: int = 500
    auto_offset_reset: str = "earliest"  # no checkpoint, no committed offset: audit from the start


@dataclass(frozen=True, slots=True)
class LiveConfig:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    group_id: str = "auditor"
    topics: Topics = field(default_factory=Topics)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    consumer: ConsumerSettings = field(default_factory=ConsumerSettings)
    findings_topic: str | None = "auditor.findings"  # None: no findings topic
    findings_file: str | None = None                 # JSON lines, appended
    dead_letter_file: str | None = None              # rejected records, JSON lines, appended
    create_topics: bool = True       # create the checkpoint and findings topics when absent
    topic_replication_factor: int = 3  # for the topics the auditor creates (1 on a single-broker dev cluster)
    # DynamoDB: None = no authority (loss undecided, gaps unverified).
    dynamo: Any = None               # auditor.dynamo.DynamoConfig | None
    has_messages_table: bool = True
    has_counters_table: bool = True
    verification: VerificationPolicy = field(default_factory=VerificationPolicy)
    authority_wait: float = 600.0    # seconds a verdict waits for an unavailable table
    engine: EngineConfig = field(default_factory=EngineConfig)
    # How long a sequence stays open before its history is closed: gaps, losses and
    # duplicates reported, state forgotten (auditor.horizon). None: never closed
    # (memory then grows with messages; whole-history verdicts come from `drain`).
    grace: Grace | None = field(default_factory=Grace)
    horizon_tick_seconds: float = 1.0  # how often the horizon is checked (one pass over the chats)
    # Which partition an authority-only chat (items, no events) belongs to, for
    # whole-history verdicts: the producers' partitioner. murmur2 = Kafka's Java
    # client default (and aiokafka's); crc32 = librdkafka's consistent(_random)
    # default and auditor.workload; none = such chats are not reported live.
    chat_partitioner: str = "murmur2"
    http_host: str | None = "0.0.0.0"  # None: no HTTP server
    http_port: int = 9102
    liveness_silence_seconds: float = 60.0
    instance: str | None = None

    def __post_init__(self) -> None:
        if self.chat_partitioner not in CHAT_PARTITIONERS:
            raise ValueError(f"chat partitioner must be one of {', '.join(CHAT_PARTITIONERS)}")
        if not self.group_id:
            raise ValueError("group id must not be empty")
        if len(set(self.topics.events)) != 3:
            raise ValueError("the three event topics must be distinct")
        others = {self.checkpoint.topic, self.findings_topic} - {None}
        if others & set(self.topics.events) or self.checkpoint.topic == self.findings_topic:
            raise ValueError("checkpoint, findings and event topics must all be distinct")
