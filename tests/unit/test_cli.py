"""The replay command end to end, in-process: files in, report/dead letters/metrics out."""

import gzip
import json
import shutil
from pathlib import Path

import pytest

from auditor.cli import main

DATA = Path(__file__).parent.parent / "data" / "incident-small"
ARGS = ["dump-1.kcat.json.gz", "dump-2.kcat.json",
        "--messages-export", "export/messages", "--counters-export", "export/chat_counters"]


@pytest.fixture
def incident(tmp_path, monkeypatch):
    work = tmp_path / "incident"
    shutil.copytree(DATA, work)
    monkeypatch.chdir(work)
    return work


def test_recorded_incident_gives_the_recorded_report(incident, capsys):
    rc = main(["replay", *ARGS, "--report", "r.json", "--dead-letter", "dl.jsonl",
               "--metrics-out", "m.prom"])
    assert rc == 1
    assert json.loads(Path("r.json").read_text()) == json.loads(Path("expected-report.json").read_text())
    assert Path("dl.jsonl").read_text() == Path("expected-dead-letter.jsonl").read_text()
    out = capsys.readouterr().out
    assert "message_loss=2" in out and "trace=" in out


def test_metrics_file_agrees_with_the_report(incident):
    main(["replay", *ARGS, "--report", "r.json", "--metrics-out", "m.prom"])
    report = json.loads(Path("r.json").read_text())
    metrics = {}
    for line in Path("m.prom").read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            metrics[name] = float(value)
    counts = report["counts"]
    assert metrics['durability_ack_sent_total{persisted="false"}'] == counts["message_loss"]
    assert metrics["durability_duplicate_sequence_total"] == counts["duplicate_sequence"]
    assert metrics["auditor_out_of_order_total"] == counts["out_of_order"]
    assert metrics['durability_counter_missing_total{reason="behind"}'] == counts["counter_corruption"]
    assert metrics['auditor_sequence_gaps_total{classification="publish_gap"}'] == 1
    assert metrics['auditor_sequence_gaps_total{classification="sequence_hole"}'] == 1
    assert metrics['messaging_clock_skew_samples_total{dest_plane="connection",source_plane="durability"}'] == 1
    assert metrics['fanout_delivery_total{status="duplicate"}'] == counts["duplicate_delivery"]
    assert metrics['auditor_events_total{event_type="message_persisted"}'] == 13
    assert metrics['auditor_events_rejected_total{reason="invalid_envelope"}'] == 1
    assert metrics["fanout_delivery_latency_seconds_count"] == 2  # 3 deliveries, 1 skewed


def test_clean_history_exits_zero(tmp_path, capsys):
    dump = tmp_path / "events.jsonl"
    dump.write_text(json.dumps({"event_type": "message_acked", "chat_id": "c", "sequence": 1,
                                "message_id": "m", "acked_at": "2026-01-31T10:00:00Z"}) + "\n"
                    + json.dumps({"event_type": "message_persisted", "chat_id": "c", "sequence": 1,
                                  "message_id": "m", "created_at": "2026-01-31T10:00:00Z",
                                  "sender_id": "u"}) + "\n")
    assert main(["replay", str(dump)]) == 0
    assert "no findings" in capsys.readouterr().out


def test_missing_dump_is_exit_2_naming_the_file_and_still_reports_the_rest(incident, capsys):
    rc = main(["replay", "dump-1.kcat.json.gz", "nope.json", "--report", "r.json"])
    assert rc == 2
    assert "nope.json: cannot read" in capsys.readouterr().err
    report = json.loads(Path("r.json").read_text())
    assert report["events"]["total"] > 0 and report["errors"][0].startswith("nope.json")


def test_truncated_gzip_is_exit_2_and_what_was_read_is_reported(tmp_path, capsys):
    lines = [json.dumps({"topic": "t", "partition": 0, "offset": i, "payload": json.dumps(
        {"event_type": "message_persisted", "chat_id": "c", "sequence": i + 1, "message_id": f"m{i}",
         "created_at": "2026-01-31T10:00:00Z", "sender_id": "u"})}) for i in range(5000)]
    blob = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    rc = main(["replay", str(cut), "--report", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "cut.json.gz" in err and "truncated gzip" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert 0 < report["events"]["total"] < 5000


def test_malformed_export_is_exit_2_naming_file_and_line(incident, capsys):
    bad = Path("export/messages/data/part-1.json.gz")
    bad.write_bytes(gzip.compress(b'{"Item": {"chat_id": {"S": "x"}}}\n'))
    assert main(["replay", *ARGS]) == 2
    assert "part-1.json.gz:1" in capsys.readouterr().err


def test_usage_error_is_exit_2(capsys):
    assert main(["replay"]) == 2
    assert main(["frobnicate"]) == 2
