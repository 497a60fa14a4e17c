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

from .engine import LATENCY_BUCKETS, Tallies
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
