"""A real Prometheus scrapes the auditor's metrics and evaluates both rule files.

The auditor's /metrics is played by a tiny http.server serving
`generate_latest(audit_registry(lambda: tallies))`. It first serves the tallies
of an auditor that has read nothing yet, then, once Prometheus has scraped
those, the tallies of a real replay of tests/data/incident-small (two losses,
one duplicate sequence, one counter behind, four rejected records): what a live
auditor's counters do when an incident is found. Then ADR-012's MessageLoss
(cumulative), the auditor's increase-based alerts and the durability SLI
recording rule must show it. Prometheus is the Debian package's binary
(scripts/prometheus), on a free loopback port with a temporary config and TSDB.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from auditor.processes import terminate
from auditor.config import AttributeNames
from auditor.export import load_export_authority
from auditor.metrics import audit_registry
from auditor.replay import replay

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "incident-small"
RULES = ROOT / "deploy" / "prometheus" / "rules"
WAIT = 60.0  # seconds, for each stage; with 1s scrapes and evaluations each takes a few

# Expected firing once the incident's tallies are served. Appendix B's are
# cumulative (`> 0`); the Auditor* ones fire on an increase or, for a series
# first seen above zero (rejection reasons are created on first use), on its
# first appearance.
EXPECTED_ALERTS = {
    "MessageLoss", "DuplicateSequence", "CounterCorruption",
    "AuditorMessageLoss", "AuditorDuplicateSequence", "AuditorCounterCorruption",
    "AuditorRejectedRecords", "AuditorClockSkewElevated",
}
SLI = "auditor:durability:ratio_30d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prometheus_binary() -> str:
    run = subprocess.run([str(ROOT / "scripts" / "prometheus")], capture_output=True, text=True)
    if run.returncode != 0:
        pytest.fail(f"scripts/prometheus failed: {run.stderr.strip()}", pytrace=False)
    return run.stdout.split()[0]


class MetricsServer:
    """Serves /metrics from `registry`; counts the scrapes."""

    def __init__(self, registry) -> None:
        owner = self
        self.scrapes = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                owner.scrapes += 1

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


class Prometheus:
    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self.config = workdir / "prometheus.yml"
        # JSON is YAML: no YAML library needed to write the config.
        self.config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES / "adr-012.rules.yml"), str(RULES / "auditor.rules.yml")],
            "scrape_configs": [{"job_name": "auditor", "metrics_path": "/metrics",
                                "static_configs": [{"targets": [target]}]}],
        }, indent=2))
        self.cmd = [binary, f"--config.file={self.config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}"]
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready on {self.url} after {WAIT:.0f}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        terminate(self.process, 15)
        self.process = None

    def api(self, path: str, **params: str) -> object:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            answer = json.load(r)
        assert answer.get("status") == "success", f"{url}: {answer}"
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def firing(self) -> dict[str, list[dict]]:
        alerts: dict[str, list[dict]] = {}
        for alert in self.api("alerts")["alerts"]:
            if alert["state"] == "firing":
                alerts.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return alerts

    def targets(self) -> list[dict]:
        return [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError")}
                for t in self.api("targets")["activeTargets"]]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_until(what: str, probe, prometheus: Prometheus, timeout: float = WAIT):
    """`probe()` returns (done, observed); wait until done or fail with what was seen last."""
    deadline = time.monotonic() + timeout
    observed = None
    while True:
        try:
            done, observed = probe()
        except (urllib.error.URLError, OSError) as e:
            done, observed = False, f"API error: {e}"
        if done:
            return observed
        if time.monotonic() > deadline:
            try:
                targets = prometheus.targets()
            except Exception as e:  # the diagnosis must not hide the failure
                targets = f"(targets unavailable: {e})"
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n"
                        f"last observed: {observed}\ntargets: {targets}\n"
                        f"prometheus log (tail):\n{prometheus.log_tail()}", pytrace=False)
        time.sleep(0.25)


@pytest.fixture
def incident_tallies():
    authority = load_export_authority(DATA / "export" / "messages", DATA / "export" / "chat_counters",
                                      AttributeNames())
    return replay([DATA / "dump-1.kcat.json.gz", DATA / "dump-2.kcat.json"], authority).tallies


@pytest.fixture
def fresh_tallies():
    # The auditor before it has read anything: every counter at 0.
    return replay([], load_export_authority(None, None, AttributeNames())).tallies


@pytest.mark.timeout(300)
def test_prometheus_scrapes_auditor_and_fires_alerts(tmp_path, incident_tallies, fresh_tallies):
    binary = prometheus_binary()
    served = {"tallies": fresh_tallies}
    metrics = MetricsServer(audit_registry(lambda: served["tallies"]))
    prometheus = Prometheus(binary, tmp_path, metrics.address)
    timings = {}
    try:
        t0 = time.monotonic()
        prometheus.start()
        timings["ready"] = time.monotonic() - t0

        # 1. The quiet state is scraped, and nothing correctness-related fires.
        def quiet_scraped():
            series = prometheus.query('durability_ack_sent_total{job="auditor"}')
            return len(series) == 2 and all(float(s["value"][1]) == 0 for s in series), series
        wait_until("the auditor's zero counters in Prometheus", quiet_scraped, prometheus)
        timings["first_scrape"] = time.monotonic() - t0
        assert not (set(prometheus.firing()) & EXPECTED_ALERTS), prometheus.firing()

        # 2. The auditor finds the incident.
        served["tallies"] = incident_tallies
        swapped = time.monotonic()

        def alerts_firing():
            firing = prometheus.firing()
            return EXPECTED_ALERTS <= set(firing), firing
        firing = wait_until(f"alerts {sorted(EXPECTED_ALERTS)} firing", alerts_firing, prometheus)
        timings["alerts_firing"] = time.monotonic() - swapped

        acks = incident_tallies.ack_persisted
        assert acks["false"] == 2 and acks["true"] == 11, acks  # the fixture's story, as the report says
        expected = 1 - acks["false"] / (acks["false"] + acks["true"])

        def sli_value():
            result = prometheus.query(SLI)
            value = float(result[0]["value"][1]) if len(result) == 1 else None
            return value is not None and math.isclose(value, expected, rel_tol=1e-9), result
        sli = wait_until(f"{SLI} == {expected:.6f}", sli_value, prometheus)
        timings["sli"] = time.monotonic() - swapped
        assert sli[0]["metric"] == {"__name__": SLI}

        # The increase itself, as the alert sees it (not only the series' first appearance).
        increase = prometheus.query('increase(durability_ack_sent_total{job="auditor",persisted="false"}[15m])')
        assert len(increase) == 1 and float(increase[0]["value"][1]) > 0, increase

        loss = firing["AuditorMessageLoss"]
        assert [(a["job"], a["persisted"], a["severity"]) for a in loss] == [("auditor", "false", "critical")]
        assert {a["reason"] for a in firing["AuditorRejectedRecords"]} == set(incident_tallies.rejected_by_reason)
        assert {a["reason"] for a in firing["AuditorCounterCorruption"]} == {"behind"}
        assert metrics.scrapes >= 2
        print(f"prometheus timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))
    finally:
        prometheus.stop()
        metrics.stop()
