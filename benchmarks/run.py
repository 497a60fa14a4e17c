"""The benchmark suite: every scenario beside its baseline, in one run, into one folder.

    .venv/bin/python benchmarks/run.py --quick [--out DIR]   # CI: well under a minute
    .venv/bin/python benchmarks/run.py --full  [--out DIR]   # ~10-15 minutes (make bench)

Scenarios, in order (benchmarks/README.md says how to read each):

  engine     AuditEngine.process on pre-read records vs the floor loop (bench_engine)
  replay     replay of a generated kcat dump vs the floor loop, and peak RSS (bench_replay)
  live       LiveAuditor through a Tansu broker vs a raw aiokafka loop (bench_live; the
             live part is skipped when auditor.live has no LiveAuditor, the raw loop always runs)
  authority  DynamoDB Local reads per verification policy vs the export path (bench_authority)
  memory     engine state per tracked chat and per message, fresh interpreter per point (bench_memory)
  scaling    engine and floor events/s as chats, partitions, fault density grow (bench_engine)

On request only (`--only soak`; minutes of a long run, not part of the default suite):

  soak       engine memory over a long stream, retention horizon on vs off (bench_soak)

Output in --out (default benchmarks/results for --full, benchmarks/results-quick
for --quick): results.json (machine, versions, commit, every scenario's exact
parameters and figures), results.md (a table per scenario, the ratios),
scaling.png and memory.png, and README.md (the command that produced them).

A scenario that fails is recorded as {"error": ...} and the others still run;
the exit status is then 1. `--skip NAME` records {"skipped": "--skip"}.
Loopback only: the broker and DynamoDB Local are started on free local ports.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_engine, bench_memory  # noqa: E402
from benchmarks.common import FAULT_MIX, machine_info, stdout_to_stderr  # noqa: E402
from benchmarks.report import _v  # noqa: E402

SCENARIOS = ("engine", "replay", "live", "authority", "memory", "scaling")
# Run only when named with --only: the soak takes minutes at full size, and the
# question it answers (does memory level off?) need not be asked at every suite run.
ON_REQUEST = ("soak",)

MODES = {
    "quick": {
        "engine": dict(bench_engine.QUICK),
        "replay": {"argv": ["--quick", "--records", "20000"]},
        "live": dict(records=20_000, chats=2_000, partitions=4, variants=["none"], repeats=1, drain=True),
        "authority": {"argv": ["--quick"]},
        "memory": dict(points=bench_memory.QUICK_POINTS, check=True),
        "scaling": dict(bench_engine.SCALING_QUICK),
        "soak": {"argv": ["--quick"]},
    },
    "full": {
        "engine": dict(bench_engine.FULL),
        "replay": {"argv": []},  # bench_replay's defaults: 500k records; RSS at 500k and 2M
        "live": dict(records=200_000, chats=10_000, partitions=12, variants=["none", "dynamodb"], repeats=3,
                     drain=True),
        "authority": {"argv": []},  # bench_authority's default: 100k records
        "memory": dict(points=bench_memory.FULL_POINTS, check=True),
        "scaling": dict(bench_engine.SCALING_FULL),
        "soak": {"argv": []},  # bench_soak's defaults: 5M records, horizon on and off
    },
}
DEFAULT_OUT = {"quick": ROOT / "benchmarks" / "results-quick", "full": ROOT / "benchmarks" / "results"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- one runner per scenario: (mode parameters, seed) -> {"params", "results"} --------------


def run_engine(cfg: dict, seed: int) -> dict:
    out = bench_engine.engine_only(cfg["records"], cfg["chats"], cfg["partitions"], cfg["density"],
                                   cfg["repeats"], seed)
    r = out["results"]
    log(f"  engine {r['engine']['events_per_s']:,.0f} events/s, floor {r['floor']['events_per_s']:,.0f} events/s, "
        f"ratio {r['ratio']:.2f}, counts match: {r['counts_match_expected']}")
    return out


def run_replay(cfg: dict, seed: int) -> dict:
    from benchmarks import bench_replay

    argv = [*cfg["argv"], "--seed", str(seed)]
    with stdout_to_stderr():
        result = bench_replay.main(argv)
    params = {"argv": argv, "records": result["records"], "chats": result["chats"], "partitions": 12,
              "fault_mix": bench_replay.FAULT_MIX, "benign_mix_for_rss": bench_replay.BENIGN_MIX,
              "authority": "InMemoryAuthority (throughput); WorkloadAuthority (RSS)",
              "dump": "kcat -J, plain JSON lines (not gzip)", "target_ratio": bench_replay.TARGET_RATIO}
    return {"params": params, "results": result}


def run_live(cfg: dict, seed: int) -> dict:
    from benchmarks import bench_live

    return bench_live.scenario(cfg["records"], cfg["chats"], cfg["partitions"], seed, tuple(cfg["variants"]),
                               repeats=cfg["repeats"], drain=cfg["drain"], log=log)


def run_authority(cfg: dict, seed: int) -> dict:
    from benchmarks import bench_authority

    argv = [*cfg["argv"], "--seed", str(seed + 6)]  # bench_authority's default seed is 7
    with stdout_to_stderr():
        result = bench_authority.main(argv)
    params = {"argv": argv, "records": result["records"], "messages": result["messages"], "chats": result["chats"],
              "fault_mix": bench_authority.FAULTS,
              "policies": [{"mode": p.mode, "sample_rate": p.sample_rate if p.mode == "sample" else None}
                           for p in bench_authority.POLICIES],
              "reads": "strongly consistent BatchGetItem, 1 RCU per item under 4 KB",
              "server": "DynamoDB Local (in memory), loopback"}
    return {"params": params, "results": result}


def run_memory(cfg: dict, seed: int) -> dict:
    return bench_memory.memory([tuple(p) for p in cfg["points"]], seed, cfg["check"], log=log)


def run_scaling(cfg: dict, seed: int) -> dict:
    return bench_engine.scaling(cfg["records"], cfg["repeats"], cfg["base"], cfg["axes"], seed, log=log)


def run_soak(cfg: dict, seed: int) -> dict:
    from benchmarks import bench_soak

    argv = [*cfg["argv"], "--seed", str(seed)]
    with stdout_to_stderr():
        result = bench_soak.main(argv)
    return {"params": {"argv": argv, **result["params"]}, "results": result["results"]}


RUNNERS = {"engine": run_engine, "replay": run_replay, "live": run_live, "authority": run_authority,
           "memory": run_memory, "scaling": run_scaling, "soak": run_soak}


# -- the headline --------------------------------------------------------------------------


def headline(scenarios: dict) -> dict:
    """The figures benchmarks/README.md quotes, as strings (a missing one says why)."""
    out: dict[str, str] = {}

    def ok(name: str) -> dict | None:
        entry = scenarios.get(name, {})
        return entry.get("results") if "results" in entry else None

    if r := ok("engine"):
        out["engine / floor"] = f"{r['ratio']:.2f} ({r['engine']['events_per_s']:,.0f} vs {r['floor']['events_per_s']:,.0f} events/s)"
    if r := ok("replay"):
        out["replay / floor"] = (f"{r['ratio']:.2f} ({r['replay']['records_per_s']:,.0f} vs "
                                 f"{r['floor']['records_per_s']:,.0f} records/s)")
    if r := ok("live"):
        out["raw aiokafka consume"] = f"{r['raw_consume']['events_per_s']:,.0f} events/s"
        for variant, got in r["live"].items():
            key = f"live ({variant}) / raw"
            if "ratio_to_raw" in got:
                steady = got.get("ratio_to_raw_after_first_batch")
                out[key] = (f"{got['ratio_to_raw']:.2f} from assignment ({got['events_per_s']:,.0f} events/s)"
                            + (f"; {steady:.2f} after the first batch" if steady else ""))
            else:
                out[key] = f"skipped: {got['skipped']}" if "skipped" in got else f"error: {got.get('error', '?')[:120]}"
    if r := ok("authority"):
        for run in r["live"]:
            name = run["policy"] + (f" {run['sample_rate']:g}" if run.get("sample_rate") else "")
            out[f"authority `{name}`: keys/request, RCU per 1k messages"] = (
                f"{run['keys_per_request']:.1f}, {run['rcu_per_1k_messages']:.1f}")
    if r := ok("memory"):
        fit = r.get("fit")
        if fit:
            out["memory: bytes per tracked chat + per message (fit)"] = (
                f"{fit['bytes_per_tracked_chat']:,.0f} + {fit['bytes_per_message']:,.0f}")
        largest = max(r["points"], key=lambda x: (x["chats"], x["messages"]))
        out[f"memory at {largest['chats']:,} chats x {largest['messages_per_chat']:g} msg: bytes per tracked chat"] = (
            f"{largest['bytes_per_tracked_chat']:,.0f} (state {largest['state_bytes'] / 1e6:,.0f} MB)")
    if r := ok("soak"):
        for variant, run in r.items():
            first, last, half = run["samples"][0], run["samples"][-1], run["second_half"]
            out[f"soak, horizon {variant}: RSS and snapshot, first -> last sample (second half growth)"] = (
                f"{first['rss_kb'] / 1024:,.0f} -> {last['rss_kb'] / 1024:,.0f} MB (x{half['rss_kb']['ratio']:.2f}), "
                f"{first['snapshot_bytes'] / 1e6:,.2f} -> {last['snapshot_bytes'] / 1e6:,.2f} MB "
                f"(x{half['snapshot_bytes']['ratio']:.2f}) over {last['records']:,} records")
    if r := ok("scaling"):
        for axis, points in r.items():
            lo, hi = points[0], points[-1]
            out[f"scaling: engine events/s, {axis} {_v(lo['value'])} -> {_v(hi['value'])}"] = (
                f"{lo['engine']['events_per_s']:,.0f} -> {hi['engine']['events_per_s']:,.0f} "
                f"(ratio {lo['ratio']:.2f} -> {hi['ratio']:.2f})")
    return out


def _errors(scenarios: dict) -> list[str]:
    errors = [f"{name}: {entry['error']}" for name, entry in scenarios.items() if "error" in entry]
    live = scenarios.get("live", {}).get("results", {}).get("live", {})
    errors += [f"live ({variant}): {got['error']}" for variant, got in live.items() if "error" in got]
    return errors


def _readme(results: dict) -> str:
    suite, git = results["suite"], results["machine"]["git"]
    return "\n".join([
        f"# Benchmark results ({suite['mode']} mode)", "",
        "Produced by:", "", "```sh", suite["command"], "```", "",
        f"from the repository root, on {suite['started_at']} ({suite['seconds']:.0f} s), at commit "
        f"`{git.get('commit')}`" + (" with uncommitted changes in: "
                                     + ", ".join(git.get("modified", []) + git.get("untracked", []))
                                     if git.get("dirty") else "") + ".", "",
        "- `results.json`: everything: machine, package versions, each scenario's exact parameters and figures",
        "- `results.md`: one table per scenario, with the ratios",
        *[f"- `{file}`: the {name} plot" for name, file in results.get("plots", {}).items()], "",
        "How to read them: [benchmarks/README.md](../README.md).", ""])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, under a minute (CI)")
    mode.add_argument("--full", action="store_true", help="the full sizes (default)")
    p.add_argument("--out", type=Path, help="output folder (default benchmarks/results, quick: benchmarks/results-quick)")
    p.add_argument("--only", action="append", choices=SCENARIOS + ON_REQUEST,
                   help=f"run only these scenarios ({', '.join(ON_REQUEST)}: only when named here)")
    p.add_argument("--skip", action="append", choices=SCENARIOS, default=[], help="skip these scenarios")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    mode_name = "quick" if args.quick else "full"
    out = (args.out or DEFAULT_OUT[mode_name]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = MODES[mode_name]

    started_at = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    started = time.perf_counter()
    command = " ".join([".venv/bin/python", "benchmarks/run.py", *map(shlex.quote, argv)])
    log(f"benchmark suite, {mode_name} mode -> {out}")
    results: dict = {"suite": {"mode": mode_name, "command": command, "argv": argv, "seed": args.seed,
                               "started_at": started_at, "fault_mix": FAULT_MIX},
                     "machine": machine_info(), "scenarios": {}}
    for name in SCENARIOS + tuple(n for n in ON_REQUEST if n in (args.only or ())):
        if name in args.skip or (args.only and name not in args.only):
            results["scenarios"][name] = {"skipped": "--skip" if name in args.skip else "not in --only"}
            log(f"[{name}] skipped")
            continue
        log(f"[{name}]")
        t0 = time.perf_counter()
        try:
            entry = RUNNERS[name](config[name], args.seed)
        except Exception as exc:  # noqa: BLE001 (recorded; the other scenarios still run)
            entry = {"params": config[name], "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()}
            log(f"  error: {entry['error']}")
        entry["seconds"] = time.perf_counter() - t0
        results["scenarios"][name] = entry
        log(f"  ({entry['seconds']:.1f}s)")

    results["headline"] = headline(results["scenarios"])
    results["suite"]["seconds"] = time.perf_counter() - started
    from benchmarks.report import write_report

    write_report(results, out)  # results.md and the plots; sets results["plots"]
    results["suite"]["seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "README.md").write_text(_readme(results))

    print(f"\n{mode_name} suite: {results['suite']['seconds']:.0f}s -> {out}")
    for key, value in results["headline"].items():
        print(f"  {key}: {value}")
    errors = _errors(results["scenarios"])
    for error in errors:
        print(f"  ERROR {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
