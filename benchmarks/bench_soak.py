"""Soak benchmark: does memory level off in a long run once the retention horizon closes history?

    .venv/bin/python benchmarks/bench_soak.py [--quick] [--records 5000000]      # engine mode (default)
    .venv/bin/python benchmarks/bench_soak.py --mode live [--quick] [--records 1500000]

Two modes (benchmarks/README.md says how to read them):

engine (default). One `AuditEngine` over a long workload stream (auditor.workload:
a fixed population of `--chats` chats over 12 partitions, Zipf activity, 2
recipients, 95 % acknowledged, the light `FAULT_MIX` of every fault kind), with
the workload's *formula* authority (`WorkloadAuthority`: O(chats + faults), so
its own memory is small and measured apart). Records are built as the live
consumer builds them (`common.as_record`) and fed `--batch` at a time. Each
variant runs in a fresh interpreter, so that RSS figures compare:

  on   the horizon driven exactly as `LiveAuditor._close_past_grace` drives it:
       every `--tick` seconds, `horizon.due(engine, now, grace)`, then
       `closing_keys` and `horizon.close` (settle, close, counters, retire). Time is simulated
       (batch number x `--step` seconds), so the time grace is met at a known
       rate and the record grace (`--grace-records`) is the binding one;
  off  the same stream, never closed (the `--no-horizon` consumer, or replay).

About `--samples` times through the run (after a full collection) each child
records: RSS and its peak, the allocators' live heap (`common.heap_in_use`),
tracked chats, persisted runs, open anomalies, remembered deliveries, first
ids, and the checkpoint size (`len(auditor.snapshot.snapshot(engine))`). The
summary compares the second half of the run (the sample at half the records to
the last): with the horizon on, RSS, heap and snapshot should stay about flat;
off, they grow. Findings are counted and dropped, as a sink would ship them.

live. One Tansu broker; the workload produced in rounds of `--round` records
while `python -m auditor`-equivalent processes (`LiveAuditor` through
`auditor.cli_run.serve`, no DynamoDB, HTTP /metrics on a free loopback port)
consume it, one per variant (`on`: `Grace(seconds=1, records=--grace-records)`
and a short horizon tick; `off`: no horizon), each in its own consumer group.
After each round, once every auditor has audited all produced records, the
parent samples each auditor's RSS (/proc/PID/status) and its
`auditor_tracked_chats`, `auditor_sequences_closed_total`, and
`auditor_checkpoint_bytes` (summed over partitions; the last checkpoint, taken
every `--checkpoint-interval` seconds).

The last stdout line is the whole result as JSON; `main(argv)` returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import gc
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from auditor.workload import Workload  # noqa: E402
from benchmarks.bench_replay import make_spec  # noqa: E402
from benchmarks.common import (FAULT_MIX, git_info, heap_in_use, proc_status_kb, record_batches,  # noqa: E402
                               replay_gc, reset_peak_rss)

MODES = ("engine", "live")
VARIANTS = ("on", "off")

# engine mode
ENGINE_RECORDS, ENGINE_QUICK_RECORDS = 5_000_000, 200_000
CHATS, QUICK_CHATS = 2_000, 1_000
BATCH = 1_000
STEP_SECONDS = 0.1   # simulated seconds per batch: 10,000 records/s, so 1 s of grace = 10,000 records
TICK_SECONDS = 1.0   # the live consumer's default horizon_tick_seconds
GRACE_SECONDS = 1.0
GRACE_RECORDS = 20_000
SAMPLES = 10

# live mode
LIVE_RECORDS, LIVE_QUICK_RECORDS = 1_500_000, 120_000
LIVE_ROUND, LIVE_QUICK_ROUND = 100_000, 20_000
LIVE_PARTITIONS = 4
LIVE_GRACE_RECORDS = 5_000  # per partition engine (the live consumer keeps one engine per partition)
LIVE_TICK_SECONDS = 0.25
CHECKPOINT_INTERVAL = 2.0
# Without the horizon and without DynamoDB the state grows with messages (first ids):
# room for it, so that the off variant shows growth instead of failing on the limit.
CHECKPOINT_MAX_BYTES = 256 * 1024 * 1024


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _child_env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


# -- engine mode: one child per variant ----------------------------------------------------


def measure(engine, records: int, started: float, closed: int, findings: int) -> dict:
    """One sample of the engine's state (between batches: nothing in hand)."""
    from auditor.snapshot import snapshot

    gc.collect()
    chats = engine.chats.values()
    t0 = time.perf_counter()
    blob_bytes = len(snapshot(engine))
    snapshot_seconds = time.perf_counter() - t0
    return {"records": records, "seconds": time.perf_counter() - started,
            "rss_kb": proc_status_kb("VmRSS"), "peak_rss_kb": proc_status_kb("VmHWM"),
            "heap_bytes": heap_in_use(),
            "chats": len(engine.chats), "retired_chats": engine.retired_chats,
            "persisted_runs": sum(chat.persisted.run_count for chat in chats),
            "open_anomalies": sum(len(chat.anomalies) for chat in chats),
            "deliveries": len(engine._deliveries),
            "closed_duplicates": len(engine._closed_duplicates),
            "first_ids": sum(len(chat.first_ids) for chat in chats),
            "snapshot_bytes": blob_bytes, "snapshot_seconds": snapshot_seconds,
            "sequences_closed": closed, "findings": findings}


def engine_child(cfg: dict) -> dict:
    """Runs in a fresh interpreter: one engine over the whole stream, sampled as it goes."""
    from auditor.engine import AuditEngine
    from auditor.horizon import Grace, close, due

    horizon = cfg["variant"] == "on"
    gc.collect()
    heap_start = heap_in_use()
    spec = make_spec(cfg["records"], cfg["chats"], cfg["seed"], FAULT_MIX, zipf_s=cfg["zipf_s"])
    workload = Workload(spec)
    authority = workload.authority()
    gc.collect()
    heap_plan = heap_in_use()
    # The plan and the formula authority are O(chats + faults): measured apart, so
    # that nobody mistakes them for the engine's state.
    plan_bytes = heap_plan - heap_start if heap_plan is not None and heap_start is not None else None
    rss_before = proc_status_kb("VmRSS")
    reset_peak_rss()

    grace = Grace(cfg["grace_seconds"], cfg["grace_records"])
    expected_records = round(spec.messages * spec.records_per_message)
    every = max(1, expected_records // cfg["samples"])
    next_sample = every
    samples: list[dict] = []
    records = closed = findings = 0
    next_tick = cfg["tick"]
    started = time.perf_counter()
    with replay_gc():
        engine = AuditEngine(authority)
        for i, batch in enumerate(record_batches(workload.records(), cfg["batch"]), 1):
            records += len(batch)
            findings += len(engine.process(batch)[0])
            now = i * cfg["step"]  # simulated wall clock
            if horizon and now >= next_tick:
                next_tick = now + cfg["tick"]
                # LiveAuditor._close_past_grace, step for step (the authority is
                # complete, so settle has nothing left to decide; it is called as live).
                through = due(engine, now, grace)
                if through:
                    done = close(engine, through, engine.closing_keys(through, unverified=True))
                    closed += done.sequences
                    findings += len(done.findings)
            # The last sample is taken after the stream, whatever its exact length.
            if records >= next_sample and len(samples) < cfg["samples"] - 1:
                batch = None  # not part of the state: let the collection free it before measuring
                samples.append(measure(engine, records, started, closed, findings))
                next_sample += every
                log(f"  [{cfg['variant']}] {records:>10,} records: RSS {samples[-1]['rss_kb'] / 1024:7.1f} MB, "
                    f"snapshot {samples[-1]['snapshot_bytes'] / 1e6:6.2f} MB, "
                    f"deliveries {samples[-1]['deliveries']:>9,}")
        batch = None
        samples.append(measure(engine, records, started, closed, findings))
        seconds = time.perf_counter() - started
        findings += len(engine.finish())
    tallies = engine.tallies
    counts = {**tallies.counts, "rejected": tallies.rejected}
    expected = workload.expected
    return {"variant": cfg["variant"], "records": records, "messages": spec.messages, "seconds": seconds,
            "sample_seconds": sum(s["snapshot_seconds"] for s in samples),
            "rss_before_kb": rss_before, "plan_and_authority_bytes": plan_bytes,
            "findings_total": findings, "counts": counts, "expected_counts": expected,
            "counts_match_expected": all(counts.get(k) == v for k, v in expected.items()),
            "count_differences": {k: counts.get(k, 0) - v for k, v in expected.items() if counts.get(k, 0) != v},
            "samples": samples}


def _growth(samples: list[dict], key: str) -> dict | None:
    """From the sample at half the records to the last: the second half of the run."""
    last = samples[-1]
    half = next((s for s in samples if s["records"] >= last["records"] / 2), samples[0])
    a, b = half.get(key), last.get(key)
    if a is None or b is None:
        return None
    return {"from_records": half["records"], "to_records": last["records"], "from": a, "to": b,
            "growth": b - a, "ratio": b / a if a else None}


def summarize(samples: list[dict]) -> dict:
    return {key: _growth(samples, key) for key in ("rss_kb", "heap_bytes", "snapshot_bytes", "deliveries",
                                                    "open_anomalies", "persisted_runs", "first_ids")}


def run_engine_variant(cfg: dict) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--engine-child", json.dumps(cfg)],
                          stdout=subprocess.PIPE, text=True, env=_child_env(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"soak child ({cfg['variant']}) failed with exit status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def engine_mode(args: argparse.Namespace) -> dict:
    cfg = {"records": args.records, "chats": args.chats, "seed": args.seed, "zipf_s": args.zipf,
           "batch": args.batch, "step": args.step, "tick": args.tick, "grace_seconds": args.grace_seconds,
           "grace_records": args.grace_records, "samples": args.samples}
    params = {**cfg, "mode": "engine", "partitions": 12, "fault_mix": FAULT_MIX, "recipients_per_message": 2,
              "ack_ratio": 0.95, "authority": "WorkloadAuthority (formula, O(chats + faults))",
              "variants": list(args.variant), "jobs": args.jobs,
              "clock": f"simulated: batch number x {args.step} s", "each variant": "a fresh interpreter"}
    log(f"soak (engine): {args.records:,} records, {args.chats:,} chats, grace {args.grace_records:,} records "
        f"/ {args.grace_seconds:g} s, variants {', '.join(args.variant)}")
    # The variants are independent processes: RSS is per process, so they may run side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = dict(zip(args.variant, pool.map(run_engine_variant, [{**cfg, "variant": v} for v in args.variant])))
    results: dict = {}
    for variant, run in runs.items():
        run["second_half"] = summarize(run["samples"])
        results[variant] = run
        first, last = run["samples"][0], run["samples"][-1]
        g = run["second_half"]
        log(f"  horizon {variant:>3}: RSS {first['rss_kb'] / 1024:.1f} -> {last['rss_kb'] / 1024:.1f} MB "
            f"(second half x{g['rss_kb']['ratio']:.2f}), snapshot {first['snapshot_bytes'] / 1e6:.2f} -> "
            f"{last['snapshot_bytes'] / 1e6:.2f} MB (second half x{g['snapshot_bytes']['ratio']:.2f}), "
            f"{run['records'] / run['seconds']:,.0f} records/s, counts match the workload: "
            f"{run['counts_match_expected']}")
    return {"mode": "engine", "params": params, "results": results}


# -- live mode: auditor processes beside a producer ----------------------------------------


def live_child(cfg: dict) -> None:
    """Runs in a fresh interpreter: one LiveAuditor until SIGTERM (auditor.cli_run.serve)."""
    import logging

    from auditor.cli_run import serve
    from auditor.horizon import Grace
    from auditor.live import CheckpointSettings, ConsumerSettings, KafkaSettings, LiveConfig, Topics

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("auditor").setLevel(logging.ERROR)  # rejected-record warnings: not news here
    config = LiveConfig(
        kafka=KafkaSettings(bootstrap_servers=cfg["bootstrap"], client_id=cfg["group"]),
        group_id=cfg["group"], topics=Topics(*cfg["topics"]),
        checkpoint=CheckpointSettings(topic=f"{cfg['group']}.checkpoints", interval_seconds=cfg["checkpoint_interval"],
                                      max_bytes=cfg["checkpoint_max_bytes"]),
        consumer=ConsumerSettings(session_timeout_ms=3_000, heartbeat_interval_ms=750, rebalance_timeout_ms=6_000),
        findings_topic=f"{cfg['group']}.findings", topic_replication_factor=1, dynamo=None,
        grace=Grace(1.0, cfg["grace_records"]) if cfg["variant"] == "on" else None,
        horizon_tick_seconds=cfg["tick"], chat_partitioner="crc32",
        http_host="127.0.0.1", http_port=cfg["port"], instance=cfg["group"])
    sys.exit(asyncio.run(serve(config)))


def _metrics(port: int) -> dict[str, float] | None:
    """name -> value (summed over labels) from the auditor's /metrics; None if it does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


class _Auditor:
    """One auditor process of the live mode."""

    def __init__(self, variant: str, cfg: dict) -> None:
        from auditor.processes import free_port

        self.variant, self.port = variant, free_port()
        self.cfg = {**cfg, "variant": variant, "port": self.port, "group": f"{cfg['run_id']}.{variant}"}
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--live-child",
                                         json.dumps(self.cfg)], env=_child_env())
        self.samples: list[dict] = []

    def metrics(self) -> dict[str, float] | None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the {self.variant} auditor exited with status {self.process.returncode}")
        return _metrics(self.port)

    def stop(self) -> int | None:
        from auditor.processes import terminate

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # a graceful stop: final checkpoint, leave the group
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                terminate(self.process)
        return self.process.returncode


async def _until_audited(auditors: list[_Auditor], produced: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = [(m := a.metrics()) is not None and m.get("auditor_records_consumed_total", 0) >= produced
                for a in auditors]
        if all(done):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"auditors did not audit {produced} records in {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def _live_rounds(bootstrap: str, spec, auditors: list[_Auditor], round_size: int, started: float) -> int:
    from auditor.kafka import produce_workload

    records = Workload(spec).records()
    produced = 0
    while chunk := list(itertools.islice(records, round_size)):
        produced += await produce_workload(bootstrap, chunk, batch=5_000)
        chunk = None
        await _until_audited(auditors, produced, timeout=120 + round_size / 1_000)
        for a in auditors:
            m = a.metrics() or {}
            pid = a.process.pid
            a.samples.append({
                "records": produced, "seconds": time.perf_counter() - started,
                "rss_kb": proc_status_kb("VmRSS", pid), "peak_rss_kb": proc_status_kb("VmHWM", pid),
                "records_audited": m.get("auditor_records_consumed_total"),
                # The gauge is set by the horizon tick: without a horizon it stays 0, which is not a count.
                "tracked_chats": m.get("auditor_tracked_chats") if a.variant == "on" else None,
                "retired_chats": m.get("auditor_retired_chats") if a.variant == "on" else None,
                "sequences_closed": m.get("auditor_sequences_closed_total"),
                "checkpoint_bytes": m.get("auditor_checkpoint_bytes"),
                "checkpoints": m.get("auditor_checkpoints_total")})
        line = ", ".join(f"{a.variant}: RSS {a.samples[-1]['rss_kb'] / 1024:.1f} MB, checkpoints "
                         f"{(a.samples[-1]['checkpoint_bytes'] or 0) / 1e6:.2f} MB, "
                         f"{a.samples[-1]['sequences_closed'] or 0:,.0f} sequences closed" for a in auditors)
        log(f"  {produced:>10,} records: {line}")
    return produced


def live_mode(args: argparse.Namespace) -> dict:
    from auditor.kafka import TansuBroker, create_topics

    spec = make_spec(args.records, args.chats, args.seed, FAULT_MIX, zipf_s=args.zipf)
    spec = dataclasses.replace(spec, partitions=args.partitions)
    topics = [spec.persisted_topic, spec.acked_topic, spec.delivered_topic]
    run_id = f"soak{os.getpid()}_{time.time_ns() % 10**9}"
    cfg = {"run_id": run_id, "topics": topics, "grace_records": args.grace_records, "tick": args.live_tick,
           "checkpoint_interval": args.checkpoint_interval, "checkpoint_max_bytes": CHECKPOINT_MAX_BYTES}
    params = {"mode": "live", "records": args.records, "round": args.round, "chats": args.chats,
              "partitions": args.partitions, "seed": args.seed, "zipf_s": args.zipf, "fault_mix": FAULT_MIX,
              "variants": list(args.variant), "grace": {"seconds": 1.0, "records": args.grace_records},
              "horizon_tick_seconds": args.live_tick, "checkpoint_interval_seconds": args.checkpoint_interval,
              "checkpoint_max_bytes": CHECKPOINT_MAX_BYTES, "authority": "none (no DynamoDB)",
              "broker": "tansu (memory storage), loopback", "auditor": "LiveAuditor via auditor.cli_run.serve, "
              "one process per variant, its own consumer group"}
    log(f"soak (live): {args.records:,} records in rounds of {args.round:,}, {args.chats:,} chats, "
        f"{args.partitions} partitions, variants {', '.join(args.variant)}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_soak_"))
    broker = TansuBroker(log_path=tmp / "tansu.log")
    auditors: list[_Auditor] = []
    exits: dict[str, int | None] = {}
    try:
        broker.start()
        cfg["bootstrap"] = broker.bootstrap
        asyncio.run(create_topics(broker.bootstrap, {t: args.partitions for t in topics}))
        auditors = [_Auditor(v, cfg) for v in args.variant]
        started = time.perf_counter()
        deadline = time.monotonic() + 60
        while any(a.metrics() is None for a in auditors):  # their HTTP servers answer
            if time.monotonic() > deadline:
                raise TimeoutError("the auditors' /metrics did not answer in 60s")
            time.sleep(0.2)
        produced = asyncio.run(_live_rounds(broker.bootstrap, spec, auditors, args.round, started))
    finally:
        for a in auditors:
            exits[a.variant] = a.stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results = {}
    for a in auditors:
        results[a.variant] = {"samples": a.samples, "exit_status": exits[a.variant],
                              "second_half": {k: _growth(a.samples, k) for k in
                                              ("rss_kb", "checkpoint_bytes", "tracked_chats")}}
        first, last = a.samples[0], a.samples[-1]
        log(f"  horizon {a.variant:>3}: RSS {first['rss_kb'] / 1024:.1f} -> {last['rss_kb'] / 1024:.1f} MB, "
            f"checkpoints {(first['checkpoint_bytes'] or 0) / 1e6:.2f} -> "
            f"{(last['checkpoint_bytes'] or 0) / 1e6:.2f} MB, "
            f"{last['sequences_closed'] or 0:,.0f} sequences closed")
    return {"mode": "live", "params": params, "results": {"records": produced, **results}}


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=MODES, default="engine")
    p.add_argument("--quick", action="store_true", help="small sizes: engine mode in about 20 s")
    p.add_argument("--records", type=int, help=f"engine: default {ENGINE_RECORDS:,} (quick {ENGINE_QUICK_RECORDS:,}); "
                   f"live: default {LIVE_RECORDS:,} (quick {LIVE_QUICK_RECORDS:,})")
    p.add_argument("--chats", type=int, help=f"the fixed chat population (default {CHATS:,}, quick {QUICK_CHATS:,})")
    p.add_argument("--zipf", type=float, default=1.1, help="activity skew (0: every chat equally busy)")
    p.add_argument("--variant", action="append", choices=VARIANTS, help="horizon on, off (default: both)")
    p.add_argument("--samples", type=int, default=SAMPLES, help="engine: samples through the run")
    p.add_argument("--batch", type=int, default=BATCH, help="engine: records per process() call")
    p.add_argument("--step", type=float, default=STEP_SECONDS, help="engine: simulated seconds per batch")
    p.add_argument("--tick", type=float, default=TICK_SECONDS, help="engine: simulated seconds between horizon ticks")
    p.add_argument("--grace-seconds", type=float, default=GRACE_SECONDS, help="engine: time grace (simulated)")
    p.add_argument("--grace-records", type=int, help=f"records grace (engine {GRACE_RECORDS:,}; "
                   f"live {LIVE_GRACE_RECORDS:,} per partition engine)")
    p.add_argument("--jobs", type=int, default=2, help="engine: variants run side by side (1: one after the other)")
    p.add_argument("--round", type=int, help=f"live: records per produce round (default {LIVE_ROUND:,}, "
                   f"quick {LIVE_QUICK_ROUND:,})")
    p.add_argument("--partitions", type=int, default=LIVE_PARTITIONS, help="live: partitions per topic")
    p.add_argument("--live-tick", type=float, default=LIVE_TICK_SECONDS, help="live: horizon_tick_seconds")
    p.add_argument("--checkpoint-interval", type=float, default=CHECKPOINT_INTERVAL, help="live: seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--engine-child", metavar="JSON", help=argparse.SUPPRESS)
    p.add_argument("--live-child", metavar="JSON", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    live = args.mode == "live"
    if args.records is None:
        args.records = (LIVE_QUICK_RECORDS if args.quick else LIVE_RECORDS) if live else (
            ENGINE_QUICK_RECORDS if args.quick else ENGINE_RECORDS)
    args.chats = args.chats or (QUICK_CHATS if args.quick else CHATS)
    args.grace_records = args.grace_records or (LIVE_GRACE_RECORDS if live else GRACE_RECORDS)
    args.round = args.round or (LIVE_QUICK_ROUND if args.quick else LIVE_ROUND)
    args.variant = list(dict.fromkeys(args.variant or VARIANTS))
    if args.samples < 2:
        p.error("--samples must be at least 2")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.engine_child:
        result = engine_child(json.loads(args.engine_child))
    elif args.live_child:
        live_child(json.loads(args.live_child))
        return {}
    else:
        started = time.perf_counter()
        result = live_mode(args) if args.mode == "live" else engine_mode(args)
        result["seconds"] = time.perf_counter() - started
        # The commit and any uncommitted source files: what the figures were measured on.
        result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "git": git_info()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
