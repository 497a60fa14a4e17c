"""The benchmark suite's quick mode runs end to end and writes everything it promises.

Shape only: files, JSON keys, PNG signatures, every scenario present or
explicitly skipped. Never timing thresholds, which depend on the machine
(run `make bench` for those). Starts Tansu and DynamoDB Local: integration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("engine", "replay", "live", "authority", "memory", "scaling")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("bench") / "results"
    proc = subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    return proc, out


def test_the_command_succeeds_and_writes_every_file(quick):
    proc, out = quick
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "memory.png", "results.json", "results.md",
                                                     "scaling.png"]
    for name in ("memory.png", "scaling.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    assert "benchmarks/run.py --quick --out" in (out / "README.md").read_text()


def test_results_json_describes_the_machine_and_the_run(quick):
    _, out = quick
    results = json.loads((out / "results.json").read_text())
    assert {"suite", "machine", "scenarios", "headline", "plots"} <= set(results)
    suite = results["suite"]
    assert suite["mode"] == "quick" and suite["seconds"] > 0 and suite["command"].startswith(".venv/bin/python")
    machine = results["machine"]
    assert {"cpu_model", "cpu_count", "memory_bytes", "python", "packages", "git"} <= set(machine)
    assert machine["cpu_count"] >= 1 and machine["memory_bytes"] > 0
    assert machine["packages"]["auditor"] and machine["packages"]["matplotlib"]
    assert len(machine["git"]["commit"]) == 40
    assert results["plots"] == {"scaling": "scaling.png", "memory": "memory.png"}


def test_every_scenario_has_parameters_and_figures_or_says_why_not(quick):
    _, out = quick
    scenarios = json.loads((out / "results.json").read_text())["scenarios"]
    assert tuple(scenarios) == SCENARIOS
    for name, entry in scenarios.items():
        assert "error" not in entry, f"{name}: {entry.get('error')}"
        assert "skipped" in entry or {"params", "results", "seconds"} <= set(entry), name

    engine = scenarios["engine"]["results"]
    assert engine["ratio"] == engine["engine"]["events_per_s"] / engine["floor"]["events_per_s"]
    assert engine["counts_match_expected"] is True

    replay = scenarios["replay"]["results"]
    assert {"floor", "replay", "ratio", "rss"} <= set(replay) and replay["replay"]["counts_match_expected"] is True

    live = scenarios["live"]["results"]
    assert live["raw_consume"]["events_per_s"] > 0 and live["raw_consume"]["records"] == live["records"]
    for variant, got in live["live"].items():  # measured, or skipped because auditor.live is not there
        assert "error" not in got, f"live {variant}: {got.get('error')}"
        if "skipped" in got:
            assert got["skipped"] == "auditor.live not available"
        else:
            assert got["records"] >= live["records"] and got["ratio_to_raw"] > 0

    authority = scenarios["authority"]["results"]
    assert [run["policy"] for run in authority["live"]] == ["all", "sample", "anomalies"]
    for run in authority["live"]:
        assert {"requests_per_1k_messages", "keys_per_request", "rcu_per_1k_messages"} <= set(run)

    memory = scenarios["memory"]["results"]
    assert [p["chats"] for p in memory["points"]] == [p["chats"] for p in scenarios["memory"]["params"]["points"]]
    for point in memory["points"]:
        assert point["findings"] == 0 and point["state_bytes"] > 0  # benign noise only
        assert point["bytes_per_tracked_chat"] == point["state_bytes"] / point["tracked_chats"]
    assert memory["fit"]["bytes_per_tracked_chat"] > 0
    assert memory["tracemalloc_check"]["tracemalloc_state_bytes"] > 0

    scaling = scenarios["scaling"]
    assert set(scaling["results"]) == {"chats", "partitions", "density"}
    for axis, points in scaling["results"].items():
        assert [p["value"] for p in points] == scaling["params"]["axes"][axis]
        assert all(p["counts_match_expected"] for p in points)


def test_results_md_has_a_table_per_scenario(quick):
    _, out = quick
    text = (out / "results.md").read_text()
    for title in ("## Headline", "## Engine only", "## Replay", "## Live consumer", "## Authority verification",
                  "## Memory", "## Scaling", "![scaling](scaling.png)", "![memory](memory.png)"):
        assert title in text
    assert text.count("|---|") >= 8
