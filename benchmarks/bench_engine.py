"""Engine-only benchmark: `AuditEngine.process` on pre-read records against the floor loop.

    .venv/bin/python benchmarks/bench_engine.py [--records 500000] [--quick]
    .venv/bin/python benchmarks/bench_engine.py --scaling [--quick]   # the scaling grid

One measurement (`measure`):

1. generates a workload (`auditor.workload`, seeded, `FAULT_MIX` times
   `--density`) and turns every record into an `auditor.records.Record` as the
   live consumer hands them over (bytes payload, `common.as_record`), in batches
   of `--batch`, all held in memory before any clock starts; the authority is
   the workload's table as an in-memory export (`InMemoryAuthority`);
2. times, `--repeats` times and alternately, the *floor* (`common.floor_records`:
   `orjson.loads` of each payload and a per-chat highest-sequence dict update,
   nothing else) and the *engine* (a fresh `AuditEngine`, `process` on every
   batch; `finish` timed apart), both under replay's collector settings;
3. reports the median rate of each (records/s), `ratio` = engine / floor, and
   checks the engine's finding counts against what the workload injected
   (`counts_match_expected`): a fast but wrong engine is not a result.

No file, no broker, no DynamoDB: this is the engine's own cost, the upper
bound of every mode (replay adds reading and decoding dump lines, live adds
Kafka and the authority).

`--scaling` repeats the measurement over a one-factor-at-a-time grid around a
base point (chats, partitions, fault density), the same number of records at
every point. The last stdout line is the result as JSON; `main(argv)` returns
the same dict.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from auditor.authority import InMemoryAuthority  # noqa: E402
from auditor.engine import AuditEngine  # noqa: E402
from auditor.workload import Workload, WorkloadSpec  # noqa: E402
from benchmarks.common import floor_records, record_batches, replay_gc, scaled_mix  # noqa: E402

BATCH = 1_000
RECIPIENTS, ACK_RATIO = 2, 0.95

FULL = dict(records=500_000, chats=10_000, partitions=12, density=1.0, repeats=5)
QUICK = dict(records=20_000, chats=2_000, partitions=12, density=1.0, repeats=3)
SCALING_FULL = dict(records=200_000, repeats=5, base=dict(chats=10_000, partitions=12, density=1.0),
                    axes=dict(chats=[1_000, 10_000, 100_000, 1_000_000], partitions=[1, 12, 64, 256],
                              density=[0.0, 1.0, 10.0, 50.0]))
SCALING_QUICK = dict(records=10_000, repeats=3, base=dict(chats=2_000, partitions=12, density=1.0),
                     axes=dict(chats=[200, 2_000, 20_000], partitions=[1, 12, 96], density=[0.0, 1.0, 10.0]))


def make_spec(records: int, chats: int, partitions: int, density: float, seed: int) -> WorkloadSpec:
    """About `records` records: Zipf activity (the workload's default s), 2 recipients,
    95 % acknowledged, FAULT_MIX x density."""
    spec = WorkloadSpec(chats=chats, messages=1, partitions=partitions, recipients_per_message=RECIPIENTS,
                        ack_ratio=ACK_RATIO, seed=seed, **scaled_mix(density))
    return dataclasses.replace(spec, messages=max(1, round(records / spec.records_per_message)))


def _timed_floor(batches) -> float:
    with replay_gc():
        started = time.perf_counter()
        floor_records(batches)
        return time.perf_counter() - started


def _timed_engine(batches, authority) -> tuple[float, float, AuditEngine, int]:
    with replay_gc():
        engine = AuditEngine(authority)
        process = engine.process
        findings = 0
        started = time.perf_counter()
        for batch in batches:
            findings += len(process(batch)[0])
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        findings += len(engine.finish())
        return seconds, time.perf_counter() - started, engine, findings


def measure(spec: WorkloadSpec, *, repeats: int = 3, batch: int = BATCH) -> dict:
    """Floor and engine over the same pre-read records of `spec` (see the module doc)."""
    started = time.perf_counter()
    workload = Workload(spec)
    batches = list(record_batches(workload.records(), batch))
    authority = InMemoryAuthority(*workload.truth())
    generated = time.perf_counter() - started
    records = sum(len(b) for b in batches)

    floor_s, engine_s, finish_s = [], [], []
    for _ in range(max(1, repeats)):
        floor_s.append(_timed_floor(batches))
        seconds, finish, engine, findings = _timed_engine(batches, authority)
        engine_s.append(seconds)
        finish_s.append(finish)
    tallies = engine.tallies
    got = {**tallies.counts, "rejected": tallies.rejected}
    expected = workload.expected
    floor_rate = records / statistics.median(floor_s)
    engine_rate = records / statistics.median(engine_s)
    with_finish = records / statistics.median(s + f for s, f in zip(engine_s, finish_s))
    return {
        "records": records, "messages": spec.messages, "chats": spec.chats,
        "tracked_chats": len(engine.chats), "partitions": spec.partitions,
        "fault_density": round(spec.gap / scaled_mix(1.0)["gap"], 9),  # the FAULT_MIX multiplier
        "faults_injected": sum(workload.injected.values()),
        "generate_seconds": generated, "batch": batch, "repeats": len(floor_s),
        "floor": {"seconds": floor_s, "events_per_s": floor_rate},
        "engine": {"seconds": engine_s, "finish_seconds": finish_s, "events_per_s": engine_rate,
                   "events_per_s_with_finish": with_finish, "findings": findings},
        "ratio": engine_rate / floor_rate,
        "counts": got, "expected_counts": expected,
        "counts_match_expected": all(got.get(k) == v for k, v in expected.items()),
    }


def engine_only(records: int, chats: int, partitions: int, density: float, repeats: int, seed: int,
                batch: int = BATCH) -> dict:
    spec = make_spec(records, chats, partitions, density, seed)
    params = {"records": records, "chats": chats, "partitions": partitions, "fault_density": density,
              "fault_mix": scaled_mix(density), "zipf_s": spec.zipf_s, "recipients_per_message": RECIPIENTS,
              "ack_ratio": ACK_RATIO, "repeats": repeats, "batch": batch, "seed": seed,
              "authority": "InMemoryAuthority (the workload's table, as an export)",
              "payload": "bytes (as a Kafka client returns it)", "statistic": "median of repeats"}
    return {"params": params, "results": measure(spec, repeats=repeats, batch=batch)}


def scaling(records: int, repeats: int, base: dict, axes: dict, seed: int, batch: int = BATCH,
            log=print) -> dict:
    """events/s of floor and engine as one of chats, partitions, fault density moves
    away from `base`, the others held; the same number of records at every point."""
    params = {"records": records, "repeats": repeats, "base": base, "axes": axes, "batch": batch, "seed": seed,
              "fault_mix_at_density_1": scaled_mix(1.0), "statistic": "median of repeats",
              "authority": "InMemoryAuthority"}
    cache: dict[tuple, dict] = {}
    results: dict[str, list] = {}
    for axis, values in axes.items():
        results[axis] = []
        for value in values:
            point = {**base, axis: value}
            key = (point["chats"], point["partitions"], point["density"])
            if key not in cache:
                spec = make_spec(records, point["chats"], point["partitions"], point["density"], seed)
                cache[key] = measure(spec, repeats=repeats, batch=batch)
                m = cache[key]
                log(f"  scaling chats={key[0]:>9,} partitions={key[1]:>4} density={key[2]:>5g}: "
                    f"engine {m['engine']['events_per_s']:>9,.0f}/s, floor {m['floor']['events_per_s']:>9,.0f}/s, "
                    f"ratio {m['ratio']:.2f}, counts match: {m['counts_match_expected']}")
            results[axis].append({"value": value, **cache[key]})
    return {"params": params, "results": results}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--scaling", action="store_true", help="run the scaling grid instead")
    p.add_argument("--records", type=int)
    p.add_argument("--chats", type=int)
    p.add_argument("--partitions", type=int)
    p.add_argument("--density", type=float, help="fault density: multiplier of FAULT_MIX (default 1)")
    p.add_argument("--repeats", type=int)
    p.add_argument("--batch", type=int, default=BATCH, help="records per engine.process call")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.scaling:
        cfg = dict(SCALING_QUICK if args.quick else SCALING_FULL)
        result = scaling(args.records or cfg["records"], args.repeats or cfg["repeats"], cfg["base"],
                         cfg["axes"], args.seed, args.batch)
    else:
        cfg = dict(QUICK if args.quick else FULL)
        cfg.update({k: v for k in cfg if (v := getattr(args, k, None)) is not None})
        result = engine_only(cfg["records"], cfg["chats"], cfg["partitions"], cfg["density"], cfg["repeats"],
                             args.seed, args.batch)
        r = result["results"]
        print(f"{r['records']} records, {r['chats']} chats ({r['tracked_chats']} active), generated in "
              f"{r['generate_seconds']:.1f}s")
        print(f"floor : {r['floor']['events_per_s']:>10,.0f} events/s")
        print(f"engine: {r['engine']['events_per_s']:>10,.0f} events/s (finish {min(r['engine']['finish_seconds']):.3f}s), "
              f"counts match the workload: {r['counts_match_expected']}")
        print(f"ratio engine/floor: {r['ratio']:.2f}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
