"""The replay report (contract section 6) and the short human summary."""

from __future__ import annotations

from .authority import Authority
from .engine import Tallies
from .findings import COUNT_KINDS, COUNTER_CORRUPTION, MESSAGE_LOSS, Finding


def authority_section(authority: Authority) -> dict:
    undecided = []
    if not authority.has_messages:
        undecided.append(f"{MESSAGE_LOSS}: no messages table; sequence gaps are unverified")
    if not authority.has_counters:
        undecided.append(f"{COUNTER_CORRUPTION}: no counters table; hi is not raised to the counter")
    return {"messages_table": authority.has_messages, "counters_table": authority.has_counters,
            "undecided": undecided}


def build_report(findings: list[Finding], tallies: Tallies, authority: Authority,
                 sources: list[str], errors: list[str]) -> dict:
    return {
        "events": {
            "total": tallies.events_total,
            "by_type": dict(tallies.events_by_type),
            "rejected": tallies.rejected,
            "rejected_by_reason": dict(sorted(tallies.rejected_by_reason.items())),
            "replayed_records": tallies.replayed_records,
        },
        "counts": {kind: tallies.counts[kind] for kind in COUNT_KINDS},
        "findings": [f.to_dict() for f in findings],
        "authority": authority_section(authority),
        "sources": sources,
        "errors": errors,
    }


def summary_lines(report: dict, first: int = 5) -> list[str]:
    ev = report["events"]
    lines = [
        f"events: {ev['total']} accepted, {ev['rejected']} rejected, "
        f"{ev['replayed_records']} replayed reads skipped",
    ]
    counts = report["counts"]
    lines.append("counts: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for note in report["authority"]["undecided"]:
        lines.append(f"undecided: {note}")
    for error in report["errors"]:
        lines.append(f"error: {error}")
    findings = report["findings"]
    if findings:
        lines.append(f"first {min(first, len(findings))} of {len(findings)} findings:")
        for f in findings[:first]:
            traces = ",".join(f["trace_ids"]) or "-"
            seq = "" if f["sequence"] is None else f" seq={f['sequence']}"
            lines.append(f"  {f['kind']} chat={f['chat_id']}{seq} trace={traces}: {f['detail']}")
    else:
        lines.append("no findings")
    return lines
