"""The soak benchmark (engine mode) runs end to end and reports what it promises.

Shape only: keys, sample counts, positive sizes, the counts check. Never a
timing or a memory threshold, which depend on the machine (run the benchmark
itself for those).
"""

from __future__ import annotations

import json

from benchmarks import bench_soak

SAMPLE_KEYS = {"records", "seconds", "rss_kb", "peak_rss_kb", "heap_bytes", "chats", "persisted_runs",
               "open_anomalies", "deliveries", "closed_duplicates", "first_ids", "snapshot_bytes",
               "snapshot_seconds", "sequences_closed", "findings"}


def test_quick_engine_soak_samples_both_variants(capsys):
    result = bench_soak.main(["--quick"])

    assert result["mode"] == "engine" and result["seconds"] > 0
    assert result["params"]["samples"] == bench_soak.SAMPLES
    assert set(result["results"]) == {"on", "off"}
    for variant, run in result["results"].items():
        samples = run["samples"]
        assert len(samples) == bench_soak.SAMPLES, variant
        for sample in samples:
            assert SAMPLE_KEYS <= set(sample), variant
            assert sample["rss_kb"] > 0 and sample["peak_rss_kb"] >= sample["rss_kb"]
            assert sample["snapshot_bytes"] > 0 and sample["chats"] > 0
        records = [s["records"] for s in samples]
        assert records == sorted(records) and records[-1] == run["records"] >= 150_000
        assert run["plan_and_authority_bytes"] is None or run["plan_and_authority_bytes"] > 0
        assert set(run["count_differences"]) <= set(run["expected_counts"])
        half = run["second_half"]
        assert {"rss_kb", "heap_bytes", "snapshot_bytes", "deliveries"} <= set(half)
        assert half["snapshot_bytes"]["to_records"] == run["records"]
        assert half["snapshot_bytes"]["ratio"] == half["snapshot_bytes"]["to"] / half["snapshot_bytes"]["from"]

    on, off = result["results"]["on"], result["results"]["off"]
    # Never closed, the engine finds exactly what the workload injected. (With the
    # horizon, an event later than the grace is audited as new: differences are
    # reported, not asserted.)
    assert off["counts_match_expected"] is True, off["count_differences"]
    assert on["samples"][-1]["sequences_closed"] > 0
    assert off["samples"][-1]["sequences_closed"] == 0

    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last_line) == json.loads(json.dumps(result))
