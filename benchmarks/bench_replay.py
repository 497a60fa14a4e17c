"""Replay benchmark: throughput against a parsing floor, and peak memory vs dump size.

    .venv/bin/python benchmarks/bench_replay.py [--records 500000] [--quick]

One run does three things (benchmarks/README.md explains how to read them):

1. generates a kcat `-J` dump of `--records` records (auditor.workload, seeded,
   a light realistic fault mix) into a temporary directory;
2. times a *floor* loop over that file (read lines, orjson-parse the envelope and
   the payload, keep the max sequence per chat: nothing else) and then
   `auditor.replay.replay` over the same file, and prints both rates and their
   ratio (target: replay >= 0.5 x floor);
3. replays two benign-noise dumps 4x apart in size, for the same chat
   population, each in a fresh subprocess with the formula authority (no
   O(messages) authority in memory), and prints both peak RSS values and
   their ratio (it should stay near 1: state must not grow with records).

The last line of stdout is the whole result as one JSON object. `main(argv)`
returns the same dict, so tests can run it (`--quick`) and check its shape.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from auditor.workload import Workload, WorkloadSpec, write_kcat_dump  # noqa: E402
# The light fault mix every benchmark uses, and the benign noise (producer
# retries, malformed records) of the RSS runs: findings would grow memory.
from benchmarks.common import BENIGN_MIX, FAULT_MIX, proc_status_kb, reset_peak_rss  # noqa: E402

TARGET_RATIO = 0.5


def make_spec(records: int, chats: int, seed: int, mix: dict, **kw) -> WorkloadSpec:
    spec = WorkloadSpec(chats=chats, messages=1, partitions=12, recipients_per_message=2,
                        ack_ratio=0.95, seed=seed, **mix, **kw)
    return dataclasses.replace(spec, messages=max(1, round(records / spec.records_per_message)))


def floor_loop(path: Path) -> tuple[int, int]:
    """The cheapest honest reading of the dump: parse both layers, update a dict."""
    loads = orjson.loads
    high: dict = {}
    n = 0
    with open(path, "rb") as f:
        for line in f:
            envelope = loads(line)
            n += 1
            try:
                event = loads(envelope["payload"])
                chat, seq = event["chat_id"], event["sequence"]
                if seq > high.get(chat, 0):
                    high[chat] = seq
            except (ValueError, KeyError, TypeError):
                pass
    return n, len(high)


def replay_run(path: Path, authority) -> dict:
    from auditor.replay import replay

    started = time.perf_counter()
    result = replay([path], authority)  # default engine config, as the CLI
    seconds = time.perf_counter() - started
    t = result.tallies
    return {"seconds": seconds, "events_total": t.events_total, "rejected": t.rejected,
            "replayed_records": t.replayed_records, "findings": len(result.findings),
            "counts": dict(t.counts), "errors": list(result.errors)}


def rss_child(spec_json: str, dump: str) -> None:
    """Runs in a fresh interpreter: replay one dump, report this process's peak RSS.

    Linux: the peak is VmHWM, reset (clear_refs 5) just before the replay, so it
    is the replay's high-water mark including what was resident before it.
    getrusage's ru_maxrss is not used: across fork+exec it inherits the
    parent's peak. Elsewhere ru_maxrss is the (cruder) fallback.
    """
    workload = Workload(WorkloadSpec(**json.loads(spec_json)))
    authority = workload.authority()
    import auditor.replay  # noqa: F401  (imported before the baseline is taken)

    reset_peak_rss()
    baseline = proc_status_kb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = replay_run(Path(dump), authority)
    peak = proc_status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"baseline_kb": baseline, "peak_kb": peak, "seconds": run["seconds"],
                      "events_total": run["events_total"], "findings": run["findings"],
                      "active_chats": sum(1 for n in workload.counts if n)}))


def measure_rss(records: int, chats: int, seed: int, workdir: Path) -> dict:
    # Uniform activity, so that every chat is past the delivery window at both
    # sizes: the steady state of a long run, where state must stay flat.
    spec = make_spec(records, chats, seed, BENIGN_MIX, zipf_s=0.0)
    dump = workdir / f"rss-{records}.jsonl.gz"
    written = write_kcat_dump(Workload(spec).records(), dump)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, __file__, "--rss-child", json.dumps(dataclasses.asdict(spec)), str(dump)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"RSS child failed ({proc.returncode}):\n{proc.stderr}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    dump.unlink()
    return {"records": written, "messages": spec.messages, **child}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, help="records in the throughput dump (default 500000, quick 50000)")
    p.add_argument("--quick", action="store_true", help="small sizes: the whole run in well under a minute")
    p.add_argument("--chats", type=int, default=10_000, help="chat population of the throughput dump")
    p.add_argument("--rss-records", type=int, help="smaller RSS dump (default 500000, quick 25000)")
    p.add_argument("--rss-factor", type=int, default=4, help="larger RSS dump = factor x smaller")
    p.add_argument("--rss-chats", type=int, default=50, help="chat population of both RSS dumps")
    p.add_argument("--no-rss", action="store_true", help="skip the memory measurement")
    p.add_argument("--repeats", type=int, help="floor and replay timings, alternately; the medians "
                   "are reported (default 3, quick 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path, help="where dumps go (default: a temporary directory, removed)")
    p.add_argument("--rss-child", nargs=2, metavar=("SPEC_JSON", "DUMP"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.records is None:
        args.records = 50_000 if args.quick else 500_000
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.rss_records is None:
        args.rss_records = min(25_000, args.records) if args.quick else 500_000
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.rss_child:
        rss_child(*args.rss_child)
        return {}
    from auditor.authority import InMemoryAuthority

    workdir = Path(tempfile.mkdtemp(prefix="bench_replay_", dir=args.workdir))
    try:
        spec = make_spec(args.records, args.chats, args.seed, FAULT_MIX)
        workload = Workload(spec)
        dump = workdir / "dump.kcat.jsonl"
        started = time.perf_counter()
        records = write_kcat_dump(workload.records(), dump)
        generated = time.perf_counter() - started
        print(f"dump: {records} records, {dump.stat().st_size / 1e6:.0f} MB, {spec.chats} chats, "
              f"generated in {generated:.1f}s")

        # The authority the CLI builds from an export: an in-memory table.
        authority = InMemoryAuthority(*workload.truth())
        floor_s, runs = [], []
        for _ in range(args.repeats):  # alternately, so that a noisy spell hits both
            started = time.perf_counter()
            floor_records, floor_chats = floor_loop(dump)
            floor_s.append(time.perf_counter() - started)
            runs.append(replay_run(dump, authority))
            print(f"  floor {floor_s[-1]:.2f}s, replay {runs[-1]['seconds']:.2f}s", flush=True)
        floor = {"seconds": statistics.median(floor_s), "samples": floor_s, "chats": floor_chats}
        floor["records_per_s"] = floor_records / floor["seconds"]
        print(f"floor : {floor['records_per_s']:>10,.0f} records/s (median {floor['seconds']:.2f}s)")

        run = runs[-1]
        run["samples"] = [r["seconds"] for r in runs]
        run["seconds"] = statistics.median(run["samples"])
        run["records_per_s"] = records / run["seconds"]
        expected = workload.expected
        # Every repeat must find what was injected, not just the last.
        run["counts_match_expected"] = all(
            all({**r["counts"], "rejected": r["rejected"]}.get(k) == v for k, v in expected.items()) for r in runs)
        ratio = run["records_per_s"] / floor["records_per_s"]
        print(f"replay: {run['records_per_s']:>10,.0f} records/s (median {run['seconds']:.2f}s), "
              f"{run['findings']} findings, counts match the workload: {run['counts_match_expected']}")
        print(f"ratio replay/floor: {ratio:.2f} (target >= {TARGET_RATIO})")
        del authority

        result = {
            "records": records, "chats": spec.chats, "dump_bytes": dump.stat().st_size,
            "generate_seconds": generated, "floor": floor, "replay": run,
            "expected_counts": expected, "repeats": args.repeats, "statistic": "median of repeats",
            "ratio": ratio, "target_ratio": TARGET_RATIO,
            "ratio_ok": ratio >= TARGET_RATIO,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        }
        dump.unlink()
        if not args.no_rss:
            sizes = [measure_rss(n, args.rss_chats, args.seed, workdir)
                     for n in (args.rss_records, args.rss_records * args.rss_factor)]
            small, large = sizes
            rss = {"chats": args.rss_chats, "sizes": sizes, "ratio": large["peak_kb"] / small["peak_kb"],
                   "replay_growth_ratio": (large["peak_kb"] - large["baseline_kb"])
                   / max(1, small["peak_kb"] - small["baseline_kb"])}
            for s in sizes:
                print(f"peak RSS: {s['records']:>9} records -> {s['peak_kb'] / 1024:7.1f} MB "
                      f"(before replay {s['baseline_kb'] / 1024:.1f} MB, {s['active_chats']} active chats)")
            print(f"peak RSS ratio {large['records'] / small['records']:.1f}x records: {rss['ratio']:.2f} "
                  f"(replay's own growth: {rss['replay_growth_ratio']:.2f})")
            result["rss"] = rss
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
