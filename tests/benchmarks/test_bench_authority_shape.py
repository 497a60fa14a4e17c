"""The authority benchmark's quick mode runs and reports every figure (shape, not timing)."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_authority.py"


def test_quick_mode_reports_every_policy(capsys):
    spec = importlib.util.spec_from_file_location("bench_authority", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick"])
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
