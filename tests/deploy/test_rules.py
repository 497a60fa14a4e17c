"""The Prometheus rules in deploy/prometheus pass promtool, and do what they say.

`promtool check` validates syntax and PromQL; `promtool test rules` runs
deploy/prometheus/rules/tests/auditor.rules.test.yml: input series in, expected
alerts and recording-rule values out (message loss fires on an increase and
resolves after its window, survives a restart; the durability SLI ratio).
promtool comes from scripts/prometheus (Debian's `prometheus` package).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "rules"
RULE_FILES = [RULES / "adr-012.rules.yml", RULES / "auditor.rules.yml"]
ADR = ROOT.parent / "shared" / "adr-012-observability-and-slos.md"


@pytest.fixture(scope="module")
def promtool() -> str:
    run = subprocess.run([str(ROOT / "scripts" / "prometheus")], capture_output=True, text=True)
    if run.returncode != 0:
        pytest.fail(f"scripts/prometheus failed: {run.stderr.strip()}", pytrace=False)
    return run.stdout.split()[-1]


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("rules", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool, rules):
    run = _promtool(promtool, "check", "rules", str(rules))
    assert run.returncode == 0, f"promtool check rules {rules.name}:\n{run.stdout}{run.stderr}"
    assert "SUCCESS" in run.stdout


def test_promtool_check_config_loads_both_rule_files(promtool):
    run = _promtool(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert run.returncode == 0, f"promtool check config:\n{run.stdout}{run.stderr}"
    assert "SUCCESS: 2 rule files found" in run.stdout


def test_promtool_unit_tests(promtool):
    tests = RULES / "tests" / "auditor.rules.test.yml"
    run = _promtool(promtool, "test", "rules", str(tests))
    assert run.returncode == 0, f"promtool test rules {tests.name}:\n{run.stdout}{run.stderr}"


def _adr_yaml_block(text: str, heading: str) -> str:
    start = text.index("```yaml\n", text.index(heading)) + len("```yaml\n")
    return text[start:text.index("```", start)]


@pytest.mark.skipif(not ADR.exists(), reason=f"ADR-012 not found at {ADR}")
def test_adr_rules_are_verbatim():
    """adr-012.rules.yml holds Appendix B then Appendix D, character for character."""
    adr = ADR.read_text()
    b = _adr_yaml_block(adr, "## Appendix B: Alert Rule Definitions")
    d = _adr_yaml_block(adr, "## Appendix D: SLO Recording Rules")
    assert b.startswith("groups:\n") and d.startswith("groups:\n")
    ours = (RULES / "adr-012.rules.yml").read_text()
    body = ours[ours.index("groups:\n"):]
    appendix_d = "\n  # --- Appendix D: SLO Recording Rules ---\n"
    assert body == b + appendix_d + d[len("groups:\n"):]


AUDITOR_RULES = (RULES / "auditor.rules.yml").read_text()
RULE_START = re.compile(r"^\s*- (record|alert): (\S+)$")


def test_every_auditor_rule_has_a_comment_line_above():
    lines = AUDITOR_RULES.splitlines()
    starts = [(i, m.group(2)) for i, line in enumerate(lines) if (m := RULE_START.match(line))]
    assert len(starts) >= 8
    for i, name in starts:
        assert lines[i - 1].strip().startswith("# "), f"{name}: no one-line comment above it"


def test_auditor_rules_select_job_auditor_and_no_high_cardinality_label():
    selectors = re.findall(r"\b([a-z_]+)\{([^}]*)\}", AUDITOR_RULES)
    assert selectors
    for metric, matchers in selectors:
        if metric.startswith(("durability_", "auditor_", "messaging_", "fanout_")) or metric == "up":
            assert 'job="auditor"' in matchers, f"{metric}{{{matchers}}} lacks job=\"auditor\""
    # Labels a rule can name: in matchers, by/without/on/ignoring clauses and $labels templates.
    used = {name for _, matchers in selectors for name in re.findall(r"(\w+)\s*[!=]~?", matchers)}
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", AUDITOR_RULES):
        used.update(n.strip() for n in clause.split(",") if n.strip())
    used.update(re.findall(r"\$labels\.(\w+)", AUDITOR_RULES))
    assert used <= {"job", "instance", "persisted", "reason"}, used
    for label in ("chat_id", "user_id", "message_id", "connection_id", "recipient_id", "sender_id"):
        assert label not in used, f"{label} must never be a label (ADR-012 Appendix F)"
