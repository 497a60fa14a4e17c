"""The replay benchmark runs end to end and reports what it promises.

Shape only: keys, positive rates, computed ratios. Never timing thresholds,
which depend on the machine (run the benchmark itself for those).
"""

from __future__ import annotations

import json

from benchmarks import bench_replay


def test_quick_run_reports_rates_ratio_and_memory(capsys, tmp_path):
    result = bench_replay.main(["--quick", "--records", "20000", "--workdir", str(tmp_path)])

    assert {"records", "floor", "replay", "ratio", "target_ratio", "ratio_ok", "rss"} <= set(result)
    assert result["records"] >= 19_000
    assert result["floor"]["records_per_s"] > 0
    assert result["replay"]["records_per_s"] > 0
    assert result["replay"]["errors"] == []
    assert result["replay"]["counts_match_expected"] is True
    assert result["ratio"] == result["replay"]["records_per_s"] / result["floor"]["records_per_s"]

    rss = result["rss"]
    small, large = rss["sizes"]
    assert large["records"] > 3 * small["records"]
    assert small["peak_kb"] > 0 and large["peak_kb"] > 0
    assert rss["ratio"] == large["peak_kb"] / small["peak_kb"]
    assert small["findings"] == large["findings"] == 0  # benign noise only

    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last_line) == json.loads(json.dumps(result))
    assert list(tmp_path.iterdir()) == []  # dumps cleaned up
