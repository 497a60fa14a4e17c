"""Kafka plumbing shared by tests, benchmarks and the live consumer: a local Tansu
broker process, topic creation, and bulk production of workload records.

Nothing here is broker-specific except `TansuBroker` itself; everything else
talks plain Kafka protocol through aiokafka, so it works against real Kafka too.
"""

from .broker import TansuBroker, free_port, metadata_brokers, resolve_tansu_binary
from .topics import TopicMismatch, create_topics, existing_topics, produce_workload

__all__ = ["TansuBroker", "TopicMismatch", "create_topics", "existing_topics", "free_port",
           "metadata_brokers", "produce_workload", "resolve_tansu_binary"]
