"""The Kafka consume benchmark runs end to end against Tansu and reports what it promises.

Shape only: keys, counts, positive rates. Never timing thresholds, which depend
on the machine (run the benchmark itself for those).
"""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_consume


pytestmark = pytest.mark.integration



def test_quick_run_reports_produce_and_raw_consume_rates(capsys, tmp_path):
    result = bench_consume.main(["--quick", "--records", "3000", "--chats", "200", "--partitions", "4",
                                 "--workdir", str(tmp_path)])

    assert {"records", "topics", "partitions", "broker", "produce", "raw_consume", "machine"} <= set(result)
    assert result["records"] >= 2_900
    assert result["topics"] == ["messages.persisted", "messages.acked", "messages.delivered"]
    broker = result["broker"]
    assert broker["kind"] == "tansu" and broker["bootstrap"].startswith("127.0.0.1:")
    assert broker["start_seconds"] > 0

    produce = result["produce"]
    assert produce["records"] == result["records"]
    assert produce["seconds"] > 0 and produce["records_per_s"] > 0

    consume = result["raw_consume"]
    assert {"records", "seconds", "join_seconds", "events_per_s", "chats", "unparsed"} <= set(consume)
    assert consume["records"] == result["records"]  # every produced record read back, none extra
    assert consume["events_per_s"] > 0 and consume["join_seconds"] >= 0
    assert 0 < consume["chats"] <= 200

    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last_line) == json.loads(json.dumps(result))
    assert list(tmp_path.iterdir()) == []  # broker log directory cleaned up
