"""Every Prometheus metric the auditor exports, declared once, with help text.

The audit metrics (contract section 7) are not incremented per record: the
engine keeps plain integer `Tallies`, and `AuditCollector` turns them into
metric families when Prometheus scrapes (or when replay writes the text file).
That costs nothing in the hot loop and keeps the metrics and the report from
ever disagreeing. Labels are low-cardinality by construction: never a chat,
user, message or connection id.

Pass a fresh `CollectorRegistry` in tests; production uses one per process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .state import LATENCY_BUCKETS, Tallies
from .findings import CLOCK_SKEW, DUPLICATE_SEQUENCE, OUT_OF_ORDER

# name (without _total), help, label name or None
AUDIT_COUNTERS = {
    "durability_ack_sent": (
        "Distinct messages claimed by an ack or persisted event, once the authority decided them "
        "(persisted=false is a message_loss finding)", "persisted"),
    "durability_duplicate_sequence": (
        "Extra distinct message_ids seen at one (chat, sequence)", None),
    "durability_counter_missing": (
        "counter_corruption findings: counter item missing or behind the highest sequence", "reason"),
    "auditor_sequence_gaps": ("sequence_gap findings by classification", "classification"),
    "auditor_out_of_order": ("message_persisted records below the chat's highest persisted sequence", None),
    "messaging_clock_skew_samples": (
        "Delivery samples excluded from latency SLIs because delivered_at < created_at", None),
    "fanout_delivery": ("message_delivered events (status=duplicate for extra deliveries)", "status"),
    "auditor_events": ("Accepted events by event_type", "event_type"),
    "auditor_events_rejected": ("Rejected records by reason (kept in the dead-letter output)", "reason"),
    "auditor_events_replayed": ("Records skipped as replayed reads (offset already processed)", None),
    "auditor_redelivered": ("message_persisted records repeating an already processed message", None),
}
LATENCY_HELP = "delivered_at - created_at of delivered events, clock-skewed samples excluded"


class AuditCollector(Collector):
    """Exposes the engine's tallies; `tallies` returns the current ones (summed if several)."""

    def __init__(self, tallies: Callable[[], Tallies]) -> None:
        self._tallies = tallies

    def collect(self) -> Iterable:
        t = self._tallies()
        values = {
            "durability_ack_sent": t.ack_persisted,
            "durability_duplicate_sequence": t.counts[DUPLICATE_SEQUENCE],
            "durability_counter_missing": t.counter_by_reason,
            "auditor_sequence_gaps": t.gaps_by_classification,
            "auditor_out_of_order": t.counts[OUT_OF_ORDER],
            "messaging_clock_skew_samples": {("durability", "connection"): t.counts[CLOCK_SKEW]},
            "fanout_delivery": t.delivery_by_status,
            "auditor_events": t.events_by_type,
            "auditor_events_rejected": t.rejected_by_reason,
            "auditor_events_replayed": t.replayed_records,
            "auditor_redelivered": t.counts["redelivered"],
        }
        for name, (help_text, label) in AUDIT_COUNTERS.items():
            value = values[name]
            if name == "messaging_clock_skew_samples":
                family = CounterMetricFamily(name, help_text, labels=["source_plane", "dest_plane"])
                for labels, v in value.items():
                    family.add_metric(list(labels), v)
            elif label is None:
                family = CounterMetricFamily(name, help_text, value=value)
            else:
                family = CounterMetricFamily(name, help_text, labels=[label])
                for label_value, v in sorted(value.items()):
                    family.add_metric([label_value], v)
            yield family
        yield self._latency(t)

    @staticmethod
    def _latency(t: Tallies) -> HistogramMetricFamily:
        buckets, cumulative = [], 0
        bounds = [str(b) for b in LATENCY_BUCKETS] + ["+Inf"]
        for bound, count in zip(bounds, t.latency_bucket_counts):
            cumulative += count
            buckets.append((bound, cumulative))
        return HistogramMetricFamily("fanout_delivery_latency_seconds", LATENCY_HELP,
                                     buckets=buckets, sum_value=t.latency_sum)


def audit_registry(tallies: Callable[[], Tallies],
                   registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """A registry (fresh unless given) exposing the audit metrics."""
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(AuditCollector(tallies))
    return registry


def write_metrics(path: str | Path, registry: CollectorRegistry) -> None:
    Path(path).write_bytes(generate_latest(registry))


# --- Live authority (auditor.dynamo) ---------------------------------------
# Imported here rather than at the top so the audit metrics above stay as they
# were; these are ordinary client-side metrics updated per DynamoDB request
# (at most 100 keys each), which is far from the per-record hot loop.
from prometheus_client import Counter, Gauge, Histogram  # noqa: E402

DYNAMO_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DYNAMO_KEYS_BUCKETS = (1, 2, 5, 10, 25, 50, 75, 100)


class DynamoMetrics:
    """Client-side metrics of the DynamoDB authority reader and loader.

    `operation` is the DynamoDB API name (BatchGetItem, Query, ...); `outcome`
    and `reason` are small fixed sets (see auditor.dynamo.requests). No key,
    table row or chat ever becomes a label.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "auditor_dynamo_requests", "DynamoDB requests sent, by API operation and outcome "
            "(ok, partial = some keys unprocessed, throttled, server_error, connection, timeout, "
            "rejected = non-retriable error, breaker_open = not sent)",
            ["operation", "outcome"], registry=r)
        self.latency = Histogram(
            "auditor_dynamo_request_duration_seconds",
            "Wall time of one DynamoDB request (one attempt), by API operation",
            ["operation"], buckets=DYNAMO_LATENCY_BUCKETS, registry=r)
        self.keys_per_request = Histogram(
            "auditor_dynamo_keys_per_request",
            "Keys (BatchGetItem) or items (BatchWriteItem) carried by one batch request",
            ["operation"], buckets=DYNAMO_KEYS_BUCKETS, registry=r)
        self.retries = Counter(
            "auditor_dynamo_retries", "DynamoDB requests repeated after a backoff, by reason "
            "(unprocessed, throttled, server_error, connection, timeout)", ["reason"], registry=r)
        self.throttles = Counter(
            "auditor_dynamo_throttles", "DynamoDB throttling errors (ProvisionedThroughputExceeded, "
            "Throttling, RequestLimitExceeded)", registry=r)
        self.breaker_state = Gauge(
            "auditor_dynamo_breaker_state",
            "Circuit breaker in front of DynamoDB: 0 closed, 1 open (failing fast), 2 half-open", registry=r)
        self.pending_verdicts = Gauge(
            "auditor_pending_verdicts",
            "Verdicts waiting for an authority answer (never turned into findings while waiting)", registry=r)
