"""`auditor replay` against the oracle, on generated histories.

Each property writes a history to a temporary directory, runs the CLI in
process (`auditor.cli.main`), and compares what it wrote (report, dead-letter
file, metrics text, exit code) with `tests/property/oracle.py`, which is
computed from the contract and docs/semantics.md alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import example, given, note

from tests.property import oracle
from tests.property.histories import (
    BASE_US, PERSISTED, DumpFile, Event, History, Line, histories, write_history,
)

cli = pytest.importorskip("auditor.cli", reason="the replay CLI is not written yet")

EVIDENCE_CAP = oracle.EVIDENCE_CAP


@dataclass
class Run:
    rc: int
    report: dict
    dead_letter: list[dict]
    metrics_text: str
    expected: oracle.Expected
    history: History


def replay(h: History) -> Run:
    root = Path(tempfile.mkdtemp(prefix="auditor-prop-"))
    try:
        lay = write_history(h, root)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(lay.argv)
        note(f"exit code {rc}; stderr: {err.getvalue()[-2000:]}")
        assert rc != 2, f"I/O or usage error: {err.getvalue()[-2000:]}"
        report = json.loads(Path(lay.report).read_text(encoding="utf-8"))
        dead = [json.loads(line) for line in Path(lay.dead_letter).read_text(encoding="utf-8").splitlines()
                if line.strip()]
        metrics_text = Path(lay.metrics).read_text(encoding="utf-8")
        expected = oracle.run(h, lay.dump_paths)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return Run(rc, report, dead, metrics_text, expected, h)


def _persisted_line(seq: int, mid: str, created_at: str = "2026-01-31T10:00:00Z") -> str:
    return json.dumps({"event_type": PERSISTED, "chat_id": "c1", "sequence": seq, "message_id": mid,
                       "created_at": created_at, "sender_id": "u1"})


def _good_plain(seq: int, mid: str) -> Line:
    return Line(_persisted_line(seq, mid), "good", event=Event(PERSISTED, "c1", seq, mid, created_at=BASE_US))


# Regressions, always tried first (found by these properties; minimal by hand).
# A timestamp offset without a colon (+0200) is accepted (semantics.md, "Timestamps").
OFFSET_WITHOUT_COLON = History(
    files=[DumpFile("events.jsonl", "plain", False, [
        _good_plain(1, "m1"),
        Line(_persisted_line(2, "m2", "2026-01-31T10:00:00+0200"), "good",
             event=Event(PERSISTED, "c1", 2, "m2", created_at=BASE_US - 2 * 3600 * 10**6)),
    ])],
    order=[0], messages=None, counters=None,
)
# A plain file's kind is decided looking ahead: a garbage first line is a plain
# record (invalid_json at line 1), not an envelope.
GARBAGE_BEFORE_FIRST_OBJECT = History(
    files=[DumpFile("events.jsonl", "plain", False, [
        Line("not json", "bad", reason="invalid_json"),
        _good_plain(1, "m1"),
    ])],
    order=[0], messages=None, counters=None,
)


def _nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


def finding_key(f: dict) -> tuple:
    return (f["kind"], f["chat_id"], f["sequence"], tuple(sorted(f["message_ids"])),
            f.get("classification"), f.get("reason"), f.get("recipient_id"))


def coords(f: dict) -> list[tuple]:
    return [(r["topic"], r["partition"], r["offset"]) for r in f["records"]]


# --------------------------------------------------------------------------- 1


@given(histories())
@example(OFFSET_WITHOUT_COLON)
@example(GARBAGE_BEFORE_FIRST_OBJECT)
def test_counts_and_events_match_oracle(h):
    note(h.summary())
    run = replay(h)
    ev, exp = run.report["events"], run.expected.events
    assert ev["total"] == exp["total"]
    assert _nonzero(ev["by_type"]) == exp["by_type"]
    assert ev["rejected"] == exp["rejected"]
    assert _nonzero(ev["rejected_by_reason"]) == exp["rejected_by_reason"]
    assert ev["replayed_records"] == exp["replayed_records"]
    assert run.report["counts"] == run.expected.counts


# --------------------------------------------------------------------------- 2


@given(histories())
@example(OFFSET_WITHOUT_COLON)
@example(GARBAGE_BEFORE_FIRST_OBJECT)
def test_findings_match_oracle_as_multiset(h):
    note(h.summary())
    run = replay(h)
    actual = Counter(finding_key(f) for f in run.report["findings"])
    expected = Counter(f.key() for f in run.expected.findings)
    assert actual - expected == Counter(), "reported but not expected"
    assert expected - actual == Counter(), "expected but not reported"
    for f in run.report["findings"]:
        assert f["message_ids"] == sorted(f["message_ids"])
        assert (f["classification"] is None) == (f["kind"] != "sequence_gap")
    # "sorted most severe kind first (the order of the table above), then by
    # chat and sequence" (docs/semantics.md)
    order = [(oracle.KINDS.index(f["kind"]), f["chat_id"], -1 if f["sequence"] is None else f["sequence"])
             for f in run.report["findings"]]
    assert order == sorted(order)


# --------------------------------------------------------------------------- 3


@given(histories())
def test_evidence_is_sound(h):
    note(h.summary())
    run = replay(h)
    accepted = {r.coord: r for r in run.expected.accepted}
    for f in run.report["findings"]:
        cs = coords(f)
        assert len(cs) == len(set(cs)) <= EVIDENCE_CAP, f
        if f["kind"] == "sequence_gap":
            assert cs == [] and f["trace_ids"] == [], f
            continue
        if f["kind"] != "counter_corruption":  # "the record ..., if any"
            assert cs, f"no evidence: {f}"
        for c in cs:
            assert c in accepted, f"{c} is not an accepted record: {f}"
            r = accepted[c]
            assert r.chat_id == f["chat_id"], f
            if f["kind"] == "counter_corruption":
                top = max(a.sequence for a in run.expected.accepted if a.chat_id == f["chat_id"])
                assert r.sequence == top, f
            else:
                assert r.message_id in f["message_ids"], f
                assert r.sequence == f["sequence"], f
            if f["kind"] == "duplicate_delivery":
                assert r.event_type == "message_delivered" and r.recipient_id == f["recipient_id"], f
        traces: list[str] = []
        for c in cs:
            t = accepted[c].trace_id
            if t is not None and t not in traces:
                traces.append(t)
        assert f["trace_ids"] == traces, f


@given(histories())
def test_evidence_is_what_the_docs_prescribe(h):
    """Stronger than soundness: the exact records semantics.md names (the
    first 8 claiming / non-reference / delivering records, the record itself,
    the first record at the highest event sequence). The order they are listed
    in is not prescribed, so they are compared as sets. Skipped only where the
    docs leave the choice open (duplicate_sequence with the messages table
    present but no item at that sequence)."""
    note(h.summary())
    run = replay(h)
    open_keys = {f.key() for f in run.expected.findings if f.expected_records is None}
    expected = Counter(
        (f.key(), None if f.key() in open_keys else tuple(sorted(r.coord for r in f.expected_records)))
        for f in run.expected.findings
    )
    actual = Counter(
        (finding_key(f), None if finding_key(f) in open_keys else tuple(sorted(coords(f))))
        for f in run.report["findings"]
    )
    assert actual - expected == Counter(), "reported evidence not expected"
    assert expected - actual == Counter(), "expected evidence not reported"


# --------------------------------------------------------------------------- 4

def _expected_entry(rej: oracle.Rejected) -> dict:
    """What docs/semantics.md says the dead-letter line for `rej` holds: the
    Kafka record's value exactly as it was, with coordinates, key and headers;
    a line that was not even an envelope whole, with its line number and null
    coordinates."""
    out = {"source": rej.source, "reason": rej.reason}
    if rej.coord is None:
        out.update(topic=None, partition=None, offset=None, line=rej.line, record=rej.text)
    else:
        out.update(topic=rej.coord[0], partition=rej.coord[1], offset=rej.coord[2])
        if rej.plain:
            out.update(record=rej.text)
        else:
            env = json.loads(rej.text)
            out.update(record=env["payload"], key=env.get("key"), headers=env.get("headers"))
    return out


@given(histories())
@example(OFFSET_WITHOUT_COLON)
@example(GARBAGE_BEFORE_FIRST_OBJECT)
def test_dead_letter_holds_exactly_the_rejected_records(h):
    """One dead-letter line per rejected record, holding (at least) exactly
    the fields `_expected_entry` names: reason, coordinates, verbatim record."""
    note(h.summary())
    run = replay(h)
    pending = list(run.dead_letter)
    for want in (_expected_entry(r) for r in run.expected.rejected):
        match = next((i for i, got in enumerate(pending)
                      if all(k in got and got[k] == v for k, v in want.items())), None)
        assert match is not None, f"no dead-letter line {want}; unmatched: {pending}"
        pending.pop(match)
    assert pending == [], "dead-lettered but not rejected"


# --------------------------------------------------------------------------- 5


@given(histories())
def test_exit_code_is_one_iff_findings(h):
    note(h.summary())
    run = replay(h)
    assert run.rc == (1 if run.expected.findings else 0)


# --------------------------------------------------------------------------- 6

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict:
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparseable metrics line {line!r}"
        name, labels, value = m.groups()
        key = (name, frozenset(_LABEL.findall(labels or "")))
        assert key not in samples, f"sample twice: {line!r}"
        samples[key] = float(value)
    return samples


@given(histories())
@example(OFFSET_WITHOUT_COLON)
@example(GARBAGE_BEFORE_FIRST_OBJECT)
def test_metrics_agree_with_counts(h):
    note(h.summary())
    run = replay(h)
    samples = parse_metrics(run.metrics_text)
    for (name, labels), value in run.expected.metrics.items():
        got = samples.get((name, labels), 0.0)
        if name.endswith("_sum"):
            assert math.isclose(got, value, abs_tol=1e-6), (name, dict(labels), got, value)
        else:
            assert got == value, (name, dict(labels), got, value)
    # and with the report itself
    counts, events = run.report["counts"], run.report["events"]
    assert samples.get(("auditor_out_of_order_total", frozenset()), 0) == counts["out_of_order"]
    assert samples.get(("durability_duplicate_sequence_total", frozenset()), 0) == counts["duplicate_sequence"]
    for reason, n in events["rejected_by_reason"].items():
        assert samples.get(("auditor_events_rejected_total", frozenset({("reason", reason)})), 0) == n
    gaps = Counter(f["classification"] for f in run.report["findings"] if f["kind"] == "sequence_gap")
    for cls, n in gaps.items():
        assert samples.get(("auditor_sequence_gaps_total", frozenset({("classification", cls)})), 0) == n
    # never an id on a label
    ids = {r.chat_id for r in run.expected.accepted} | {r.message_id for r in run.expected.accepted}
    for (_, labels) in samples:
        assert not ({v for _, v in labels} & ids), labels
