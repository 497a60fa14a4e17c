"""The authority benchmark's quick mode runs and reports every figure (shape, not timing)."""


import pytest

from benchmarks import bench_authority

pytestmark = pytest.mark.integration


def test_quick_mode_reports_every_policy(capsys):
    result = bench_authority.main(["--quick"])
    assert result["records"] > 0 and result["export"]["records_per_s"] > 0
    assert [run["policy"] for run in result["live"]] == ["all", "sample", "anomalies"]
    for run in result["live"]:
        assert run["records_per_s"] > 0
        assert run["keys_per_1k_messages"] >= 0 and run["rcu_per_1k_messages"] == run["keys_per_1k_messages"]
    everything = result["live"][0]
    assert everything["keys_per_1k_messages"] >= 1000  # `all` reads every claimed sequence
    assert everything["keys_per_request"] > 0
    assert result["live"][2]["keys_read"] < everything["keys_read"]
    assert capsys.readouterr().out.splitlines()[-1].startswith("{")
