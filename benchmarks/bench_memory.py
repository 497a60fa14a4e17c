"""Memory benchmark: bytes of engine state per tracked chat and per message.

    .venv/bin/python benchmarks/bench_memory.py [--quick] [--point CHATS:MESSAGES_PER_CHAT ...]

Each point (a chat population and a number of messages) runs in a fresh
interpreter (`--child`), which:

1. plans a workload with uniform activity (`zipf_s=0`, every chat equally
   likely), 2 recipients, 95 % acknowledged, and benign noise only (producer
   retries and malformed records: no finding piles up), and builds the
   workload's *formula* authority (`WorkloadAuthority`: O(chats), message ids
   computed), so that the engine's state is the only thing that grows;
2. feeds every record to one `AuditEngine` (records as the live consumer
   hands them over, `common.as_record`; generated lazily, batches of 1,000,
   under replay's collector settings);
3. measures, after a full collection, the live heap (`common.heap_in_use`:
   pymalloc's allocated blocks plus glibc malloc's in-use bytes) with the engine
   alive and again once it is dropped: the difference is the engine's state,
   `state_bytes`. It also reports RSS before and after and the peak (VmHWM,
   reset just before the engine starts): these include what the allocators
   keep after the generator's garbage is freed, so they are upper bounds.
   `--check` repeats one point under `tracemalloc` (exact Python allocations,
   about 3-5 times slower) to cross-check `state_bytes`.

Per point: `bytes_per_tracked_chat` = state / chats that received at least one
event, `bytes_per_message` = state / messages. Both include everything the
engine keeps; the fit over all points (`state ~ a x tracked chats + b x
messages`) separates the two: `a` is what a chat costs by itself, `b` what
one message adds while it is inside the chat's delivery window
(`EngineConfig.delivery_window`: after that many later messages its delivery
records are dropped, so `b` applies to a chat's latest 1,024 messages only;
bench_replay's RSS measurement shows that steady state).

The last stdout line is the result as JSON; `main(argv)` returns the same dict.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from auditor.workload import Workload, WorkloadSpec  # noqa: E402
from benchmarks.common import (BENIGN_MIX, heap_in_use, proc_status_kb, record_batches,  # noqa: E402
                               replay_gc, reset_peak_rss)

BATCH = 1_000
FULL_POINTS = [(10_000, 1.0), (10_000, 4.0), (100_000, 1.0), (100_000, 4.0), (1_000_000, 1.0)]
QUICK_POINTS = [(10_000, 0.5), (10_000, 2.0), (100_000, 0.25)]


def make_spec(chats: int, messages_per_chat: float, seed: int) -> WorkloadSpec:
    return WorkloadSpec(chats=chats, messages=max(1, round(chats * messages_per_chat)), partitions=12,
                        recipients_per_message=2, ack_ratio=0.95, zipf_s=0.0, seed=seed, **BENIGN_MIX)


def child(spec_json: str, batch: int, method: str) -> dict:
    """Runs in a fresh interpreter: one engine over one workload, its state measured."""
    import tracemalloc

    from auditor.engine import AuditEngine

    spec = WorkloadSpec(**json.loads(spec_json))
    workload = Workload(spec)
    authority = workload.authority()
    gc.collect()
    tracing = method == "tracemalloc"
    if tracing:
        tracemalloc.start()
    measure = (lambda: tracemalloc.get_traced_memory()[0]) if tracing else heap_in_use
    rss_before = proc_status_kb("VmRSS")
    reset_peak_rss()
    before = measure()
    records = findings = 0
    started = time.perf_counter()
    with replay_gc():
        engine = AuditEngine(authority)
        for records_batch in record_batches(workload.records(), batch):
            records += len(records_batch)
            findings += len(engine.process(records_batch)[0])
        seconds = time.perf_counter() - started
        records_batch = None
        gc.collect()
        alive = measure()
        rss_after, peak = proc_status_kb("VmRSS"), proc_status_kb("VmHWM")
        tracked, open_deliveries = len(engine.chats), len(engine._deliveries)
        del engine
        gc.collect()
        dropped = measure()
    state = None if alive is None or dropped is None else alive - dropped
    return {"method": method, "records": records, "seconds": seconds, "findings": findings,
            "tracked_chats": tracked, "open_deliveries": open_deliveries,
            "state_bytes": state, "heap_growth_bytes": None if alive is None or before is None else alive - before,
            "rss_before_kb": rss_before, "rss_after_kb": rss_after, "peak_rss_kb": peak}


def run_point(chats: int, messages_per_chat: float, seed: int, batch: int = BATCH,
              method: str = "heap") -> dict:
    spec = make_spec(chats, messages_per_chat, seed)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    spec_json = json.dumps({k: getattr(spec, k) for k in spec.__dataclass_fields__})
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", spec_json, str(batch), method],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    state = got["state_bytes"]
    rss_growth = (got["rss_after_kb"] - got["rss_before_kb"]) * 1024 if got["rss_after_kb"] else None
    peak_growth = (got["peak_rss_kb"] - got["rss_before_kb"]) * 1024 if got["peak_rss_kb"] else None
    return {"chats": chats, "messages_per_chat": messages_per_chat, "messages": spec.messages, **got,
            "bytes_per_tracked_chat": state / got["tracked_chats"] if state is not None else None,
            "bytes_per_message": state / spec.messages if state is not None else None,
            "rss_growth_bytes": rss_growth, "peak_rss_growth_bytes": peak_growth,
            "peak_rss_bytes_per_tracked_chat": peak_growth / got["tracked_chats"] if peak_growth else None}


def fit(points: list[dict]) -> dict | None:
    """Least squares, no intercept: state_bytes ~ a * tracked_chats + b * messages."""
    rows = [(p["tracked_chats"], p["messages"], p["state_bytes"]) for p in points if p.get("state_bytes")]
    sxx = sum(x * x for x, _, _ in rows)
    syy = sum(y * y for _, y, _ in rows)
    sxy = sum(x * y for x, y, _ in rows)
    sxz = sum(x * z for x, _, z in rows)
    syz = sum(y * z for _, y, z in rows)
    det = sxx * syy - sxy * sxy
    if len(rows) < 2 or det <= 0 or det < 1e-9 * sxx * syy:
        return None
    a = (sxz * syy - syz * sxy) / det
    b = (syz * sxx - sxz * sxy) / det
    worst = max(abs(a * x + b * y - z) / z for x, y, z in rows)
    return {"bytes_per_tracked_chat": a, "bytes_per_message": b, "max_relative_error": worst,
            "model": "state_bytes ~ a * tracked_chats + b * messages (least squares, no intercept)"}


def memory(points: list[tuple[int, float]], seed: int, check: bool = True, batch: int = BATCH,
           log=print) -> dict:
    params = {"points": [{"chats": c, "messages_per_chat": m} for c, m in points], "seed": seed, "batch": batch,
              "activity": "uniform (zipf_s=0)", "noise": BENIGN_MIX, "recipients_per_message": 2,
              "ack_ratio": 0.95, "partitions": 12, "authority": "WorkloadAuthority (formula, O(chats))",
              "method": "heap_in_use (pymalloc allocated blocks + malloc in use) with the engine alive minus "
                        "after it is dropped; fresh interpreter per point; VmHWM reset before the engine starts",
              "tracemalloc_check": check}
    results = []
    for chats, per in points:
        point = run_point(chats, per, seed, batch)
        results.append(point)
        log(f"  memory {chats:>9,} chats x {per:g} msg: {point['tracked_chats']:>9,} tracked, "
            f"state {point['state_bytes'] / 1e6:8.1f} MB = {point['bytes_per_tracked_chat']:7,.0f} B/chat, "
            f"{point['bytes_per_message']:7,.0f} B/message; peak RSS +{point['peak_rss_growth_bytes'] / 1e6:.0f} MB "
            f"({point['seconds']:.1f}s)")
    out = {"params": params, "results": {"points": results, "fit": fit(results)}}
    if check and points:
        chats, per = points[0]
        traced = run_point(chats, per, seed, batch, method="tracemalloc")
        heap = results[0]["state_bytes"]
        out["results"]["tracemalloc_check"] = {
            "chats": chats, "messages_per_chat": per, "tracemalloc_state_bytes": traced["state_bytes"],
            "heap_state_bytes": heap, "heap_over_tracemalloc": heap / traced["state_bytes"]}
        log(f"  memory check at {chats:,} chats: tracemalloc {traced['state_bytes'] / 1e6:.1f} MB, "
            f"allocators {heap / 1e6:.1f} MB")
    return out


def _point(text: str) -> tuple[int, float]:
    chats, _, per = text.partition(":")
    return int(chats), float(per or 1)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"points {QUICK_POINTS} instead of {FULL_POINTS}")
    p.add_argument("--point", type=_point, action="append", metavar="CHATS:MESSAGES_PER_CHAT")
    p.add_argument("--no-check", action="store_true", help="skip the tracemalloc cross-check")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--child", nargs=3, metavar=("SPEC_JSON", "BATCH", "METHOD"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        result = child(args.child[0], int(args.child[1]), args.child[2])
    else:
        points = args.point or (QUICK_POINTS if args.quick else FULL_POINTS)
        result = memory(points, args.seed, not args.no_check, args.batch)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
