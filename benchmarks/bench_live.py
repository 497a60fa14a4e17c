"""Live consumer benchmark: `auditor.live.LiveAuditor` against the raw aiokafka loop, one broker, one run.

    .venv/bin/python benchmarks/bench_live.py [--records 200000] [--quick]
    .venv/bin/python benchmarks/bench_live.py --variant none --variant dynamodb

One run:

1. starts a Tansu broker on a free loopback port (`auditor.kafka.TansuBroker`,
   in memory), creates the three event topics (`--partitions` each) and
   produces `--records` workload records (`bench_consume.produce`: the
   workload and fault mix of `bench_consume.py`);
2. *raw*: `bench_consume.raw_consume`, one fresh consumer group member:
   `getmany`, `orjson.loads`, a per-chat dict update. The baseline;
3. *live*, once per `--variant`, each with a fresh group id, checkpoint topic
   and findings topic: one `LiveAuditor` (production defaults for checkpoints
   and batches, findings topic on, HTTP server off) runs in this process until
   its `auditor_records_consumed` counter reaches the produced count.
   Variants: `none` (no DynamoDB: the engine, the checkpoints and the sinks)
   and `dynamodb` (DynamoDB Local with the workload's tables loaded,
   verification policy `anomalies`: issue 4's target configuration). With
   `--drain`, the whole-history verdicts are then taken (`drain()`, timed
   apart) and their counts compared with a reference: with DynamoDB, what the
   workload injected; without, one `AuditEngine` with no authority over the
   same records (`counts_match_reference`);
   Steps 2 and 3 are repeated `--repeats` times (fresh groups each round;
   DynamoDB Local is started and loaded once); each loop is reported by its
   median run, with every run's rate beside it. Drain: first round only;
4. reports events/s of each and ratio = live / raw, over the whole run
   (`ratio_to_raw`) and after each loop's first audited batch
   (`ratio_to_raw_after_first_batch`: the steady rate, without the first fetch
   and the live auditor's restore).

The live consumer is optional: when `auditor.live` has no `LiveAuditor`, every
variant is recorded as `{"skipped": "auditor.live not available"}` and the raw
baseline is still measured. Clocks as in bench_consume: `seconds` from the
moment the member holds its partitions to the moment the last record is
audited, so both include fetching the first records and the live one also
its restore (reading the checkpoint topic: empty here); `join_seconds` (start
to assignment; Tansu answers a join after about half the session timeout,
`--session-timeout-ms`), `first_batch_seconds` (assignment to the first
audited batch) and `stop_seconds` (final checkpoint, commit, leave) apart.
At small sizes the start-up dominates: compare rates of 100,000 records or more.

The last stdout line is the result as JSON; `main(argv)` returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from auditor.kafka import TansuBroker  # noqa: E402
from auditor.workload import Workload, write_export  # noqa: E402
from benchmarks.bench_consume import MAX_RECORDS, make_spec, produce, raw_consume  # noqa: E402

NOT_AVAILABLE = "auditor.live not available"
VARIANTS = ("none", "dynamodb")
DEFAULT_RECORDS, QUICK_RECORDS = 200_000, 20_000
SESSION_TIMEOUT_MS = 3_000  # both loops; a shorter group join, nothing else


def live_auditor_class() -> tuple[type | None, str | None]:
    """(LiveAuditor, None) when `auditor.live` provides one, else (None, why not)."""
    try:
        module = importlib.import_module("auditor.live")
    except Exception as exc:  # noqa: BLE001 (absent, or half-written by its author right now)
        return None, f"import auditor.live failed: {type(exc).__name__}: {exc}"
    cls = getattr(module, "LiveAuditor", None)
    return (cls, None) if cls is not None else (None, "auditor.live has no LiveAuditor")


def _build(cls, **fields: Any):
    """`cls(**fields)` with only the fields `cls` has (configuration grows; extra knobs are optional)."""
    known = getattr(cls, "__dataclass_fields__", None)
    return cls(**({k: v for k, v in fields.items() if k in known} if known else fields))


def _records_audited(auditor) -> float:
    value = auditor.registry.get_sample_value("auditor_records_consumed_total")
    if value is None:  # the counter's name moved: fall back on the positions
        value = sum(auditor.positions().values())
    return value


def _has_assignment(auditor) -> bool:
    """The member holds partitions: the clock starts here, as raw_consume's does (its
    consumer's assignment; the auditor's own view, after the restore, otherwise)."""
    consumer = getattr(auditor, "_consumer", None)
    try:
        return bool(consumer.assignment()) if consumer is not None else bool(auditor.assigned_partitions)
    except Exception:  # noqa: BLE001 (not started yet, or the API moved)
        return bool(auditor.assigned_partitions)


def _sample_sum(registry, name: str) -> float:
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == name)


async def live_consume(bootstrap: str, topics: list[str], run_id: str, expected: int, *, partitioner: str = "crc32",
                       session_timeout_ms: int = SESSION_TIMEOUT_MS, max_records: int = MAX_RECORDS,
                       dynamo=None, session=None, verification: str = "anomalies", drain: bool = False,
                       reference: dict | None = None, checkpoint_max_bytes: int | None = None,
                       timeout: float | None = None, auditor_class=None) -> dict:
    """Run one LiveAuditor until it has audited `expected` records; its rates and counts."""
    from prometheus_client import CollectorRegistry

    from auditor.live import CheckpointSettings, ConsumerSettings, KafkaSettings, LiveConfig, Topics
    from auditor.verification import VerificationPolicy

    cls = auditor_class or live_auditor_class()[0]
    timeout = 60.0 + expected / 2_000 if timeout is None else timeout
    config = _build(
        LiveConfig, kafka=KafkaSettings(bootstrap_servers=bootstrap, client_id=f"{run_id}-live"),
        group_id=f"{run_id}.live", topics=Topics(*topics),
        checkpoint=_build(CheckpointSettings, topic=f"{run_id}.checkpoints",
                          **({"max_bytes": checkpoint_max_bytes} if checkpoint_max_bytes else {})),
        consumer=_build(ConsumerSettings, session_timeout_ms=session_timeout_ms,
                        heartbeat_interval_ms=max(100, session_timeout_ms // 4),
                        rebalance_timeout_ms=max(session_timeout_ms, 6_000), max_records=max_records),
        findings_topic=f"{run_id}.findings", http_host=None, dynamo=dynamo,
        verification=VerificationPolicy(verification), chat_partitioner=partitioner, topic_replication_factor=1,
        instance=f"{run_id}-bench")
    registry = CollectorRegistry()
    auditor = cls(config, registry=registry, session=session) if session is not None else cls(config, registry=registry)
    deadline = time.monotonic() + timeout
    starting = time.perf_counter()
    task = asyncio.create_task(auditor.run())

    async def until(predicate, what: str) -> None:
        while not predicate():
            if task.done():
                task.result()  # raises the auditor's error, if any
                raise RuntimeError(f"the live auditor stopped before {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the live auditor did not reach {what} in {timeout:.0f}s "
                                   f"({_records_audited(auditor):.0f} of {expected} records audited)")
            await asyncio.sleep(0.01)

    try:
        await until(lambda: _has_assignment(auditor), "a partition assignment")
        assigned = time.perf_counter()
        await until(lambda: _records_audited(auditor) > 0, "its first record")
        first = time.perf_counter()
        first_count = _records_audited(auditor)
        await until(lambda: _records_audited(auditor) >= expected, f"{expected} records")
        done = time.perf_counter()
        audited = _records_audited(auditor)
        out = {"records": int(audited), "seconds": done - assigned, "join_seconds": assigned - starting,
               "events_per_s": audited / (done - assigned), "first_batch_seconds": first - assigned,
               "events_per_s_after_first_batch": (audited - first_count) / (done - first) if done > first else None,
               "partitions": len(auditor.assigned_partitions),
               "checkpoints": _sample_sum(registry, "auditor_checkpoints_total"),
               "findings_emitted": _sample_sum(registry, "auditor_findings_emitted_total"),
               "verification": verification if dynamo is not None else None,
               "authority": "dynamodb-local" if dynamo is not None else "none"}
        if drain:
            started = time.perf_counter()
            verdicts = await auditor.drain(emit=False)
            out["drain_seconds"] = time.perf_counter() - started
            counts: dict[str, int] = {}
            rejected = 0
            for v in verdicts.values():
                for kind, n in v.tallies.counts.items():
                    counts[kind] = counts.get(kind, 0) + n
                rejected += v.tallies.rejected
            out["counts"] = {**counts, "rejected": rejected}
            if reference is not None:
                out["reference_counts"] = reference
                out["counts_match_reference"] = all(out["counts"].get(k) == v for k, v in reference.items())
    except BaseException:
        auditor.stop()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 30)
        raise
    started = time.perf_counter()
    auditor.stop()
    await asyncio.wait_for(task, 60)
    out["stop_seconds"] = time.perf_counter() - started
    return out


@contextlib.contextmanager
def _quiet_auditor_logs(level: int = logging.ERROR):
    """The live auditor logs each rejected record batch as a warning: keep the benchmark's output readable."""
    logger = logging.getLogger("auditor")
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def _dynamodb_tables(workload: Workload, tmp: Path):
    """DynamoDB Local with the workload's tables loaded: yields (DynamoConfig, session, load seconds)."""
    import aioboto3

    from auditor.dynamo import DynamoConfig, create_tables, load_export
    from auditor.dynamo.local import LOCAL_CREDENTIALS, DynamoDBLocal, dynamodb_local_dir, free_port

    write_export(*workload.truth(), tmp / "messages", tmp / "counters")
    with DynamoDBLocal(dynamodb_local_dir(), free_port(), tmp / "dynamodb-local.log") as server:
        cfg = DynamoConfig(endpoint_url=server.endpoint)
        session = aioboto3.Session(**LOCAL_CREDENTIALS)

        async def load() -> None:
            await create_tables(cfg, session=session)
            await load_export(cfg, tmp / "messages", tmp / "counters", session=session)

        started = time.perf_counter()
        asyncio.run(load())
        yield cfg, session, time.perf_counter() - started


def _median_run(runs: list[dict]) -> dict:
    """The run with the median rate, with every run's rates beside it."""
    ordered = sorted(runs, key=lambda r: r["events_per_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs_events_per_s"] = [r["events_per_s"] for r in runs]
    chosen["runs_events_per_s_after_first_batch"] = [r.get("events_per_s_after_first_batch") for r in runs]
    chosen["repeats"] = len(runs)
    return chosen


def _references(workload: Workload, variants) -> dict[str, dict]:
    """What the drained counts must equal: with DynamoDB, what the workload injected
    (a replay against the tables finds exactly that); without, what one engine with
    no authority finds over the same records (loss and counters undecidable)."""
    out = {}
    if "dynamodb" in variants:
        out["dynamodb"] = dict(workload.expected)
    if "none" in variants:
        from auditor.authority import NoAuthority
        from auditor.engine import AuditEngine
        from benchmarks.common import record_batches

        engine = AuditEngine(NoAuthority())
        for batch in record_batches(workload.records(), 1_000):
            engine.process(batch)
        engine.finish()
        out["none"] = {**engine.tallies.counts, "rejected": engine.tallies.rejected}
    return out


def scenario(records: int, chats: int, partitions: int, seed: int, variants: tuple[str, ...] = ("none",), *,
             repeats: int = 1, session_timeout_ms: int = SESSION_TIMEOUT_MS, batch: int = 5_000,
             max_records: int = MAX_RECORDS, drain: bool = False, checkpoint_max_bytes: int | None = None,
             workdir: Path | None = None, log=print) -> dict:
    """Broker, produce, then `repeats` rounds of: the raw loop, each live variant (or its
    skip reason), every run on a fresh consumer group. Each loop's figures are those of
    its median run (all runs' rates beside them); drain (when asked) in the first round only."""
    run_id = f"bench{os.getpid()}_{time.time_ns() % 10**9}"
    spec = make_spec(records, chats, partitions, seed)
    topics = [spec.persisted_topic, spec.acked_topic, spec.delivered_topic]
    params = {"records": records, "chats": chats, "partitions": partitions, "seed": seed, "repeats": repeats,
              "fault_mix": {k: getattr(spec, k) for k in ("loss", "duplicate_sequence", "gap", "out_of_order",
                                                           "clock_skew", "duplicate_delivery", "counter_behind",
                                                           "counter_missing", "producer_retry", "bad_record")},
              "produce_batch": batch, "max_records": max_records, "session_timeout_ms": session_timeout_ms,
              "variants": list(variants), "drain": drain, "checkpoint_max_bytes": checkpoint_max_bytes,
              "broker": "tansu (memory storage), loopback", "statistic": "the median run of each loop",
              "live": "LiveAuditor, production checkpoint defaults, findings topic on, HTTP off"}
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown live variant(s) {sorted(unknown)} (known: {', '.join(VARIANTS)})")
    cls, why = live_auditor_class()
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_live_", dir=workdir))
    broker = TansuBroker(log_path=tmp / "tansu.log")
    results: dict[str, Any] = {"live": {}}
    raw_runs: list[dict] = []
    live_runs: dict[str, list[dict]] = {v: [] for v in variants}
    failed: dict[str, dict] = {}
    if cls is None:
        failed = {v: {"skipped": NOT_AVAILABLE, "detail": why} for v in variants}
        for v in variants:
            log(f"  live [{v}]: skipped ({NOT_AVAILABLE}: {why})")
    try:
        with contextlib.ExitStack() as stack:
            broker.start()
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap
            results["broker"] = {"bootstrap": bootstrap, "start_seconds": broker.start_seconds}
            produced, count = asyncio.run(produce(bootstrap, spec, batch))
            results["produce"] = produced
            log(f"  produce: {count} records, {produced['records_per_s']:,.0f}/s")
            workload = Workload(spec)
            references = _references(workload, variants) if drain and cls is not None else {}
            dynamo = None
            if "dynamodb" in variants and "dynamodb" not in failed:
                try:
                    dynamo = stack.enter_context(_dynamodb_tables(workload, tmp))
                    results["table_load_seconds"] = dynamo[2]
                except Exception as exc:  # noqa: BLE001 (recorded; the other loops stand)
                    failed["dynamodb"] = {"error": f"{type(exc).__name__}: {exc}"}
            for round_ in range(max(1, repeats)):
                raw = asyncio.run(raw_consume(bootstrap, topics, f"{run_id}.raw{round_}", count,
                                              max_records=max_records, session_timeout_ms=session_timeout_ms,
                                              heartbeat_interval_ms=max(100, session_timeout_ms // 4)))
                raw_runs.append(raw)
                log(f"  raw consume: {raw['events_per_s']:,.0f} events/s (join {raw['join_seconds']:.1f}s, "
                    f"first batch {raw['first_batch_seconds']:.2f}s)")
                for variant in variants:
                    if variant in failed:
                        continue
                    common = dict(session_timeout_ms=session_timeout_ms, max_records=max_records,
                                  drain=drain and round_ == 0, reference=references.get(variant),
                                  checkpoint_max_bytes=checkpoint_max_bytes, auditor_class=cls)
                    if variant == "dynamodb":
                        common.update(dynamo=dynamo[0], session=dynamo[1], verification="anomalies")
                    try:
                        with _quiet_auditor_logs():
                            got = asyncio.run(live_consume(bootstrap, topics, f"{run_id}.{variant}{round_}", count,
                                                           **common))
                    except Exception as exc:  # noqa: BLE001 (recorded: the raw baseline and other variants stand)
                        failed[variant] = {"error": f"{type(exc).__name__}: {exc}"}
                        log(f"  live [{variant}]: error: {type(exc).__name__}: {exc}")
                        continue
                    live_runs[variant].append(got)
                    log(f"  live [{variant}]: {got['events_per_s']:,.0f} events/s, "
                        f"{got.get('events_per_s_after_first_batch') or 0:,.0f} after the first batch "
                        f"(join {got['join_seconds']:.1f}s, first batch {got['first_batch_seconds']:.2f}s, "
                        f"{got['checkpoints']:.0f} checkpoints"
                        + (f", counts match the reference: {got['counts_match_reference']}"
                           if "counts_match_reference" in got else "") + ")")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raw = results["raw_consume"] = _median_run(raw_runs)
    for variant in variants:
        if variant in failed:
            results["live"][variant] = failed[variant]
            continue
        got = _median_run(live_runs[variant])
        for key in ("drain_seconds", "counts", "reference_counts", "counts_match_reference"):
            if key in live_runs[variant][0]:
                got[key] = live_runs[variant][0][key]
        got["ratio_to_raw"] = got["events_per_s"] / raw["events_per_s"]
        steady, raw_steady = got.get("events_per_s_after_first_batch"), raw.get("events_per_s_after_first_batch")
        if steady and raw_steady:
            got["ratio_to_raw_after_first_batch"] = steady / raw_steady
        results["live"][variant] = got
        log(f"  live [{variant}] / raw (median runs): {got['ratio_to_raw']:.2f}; after the first batch "
            f"{got.get('ratio_to_raw_after_first_batch') or 0:.2f}")
    results["records"] = count
    results["topics"] = topics
    return {"params": params, "results": results}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, help=f"default {DEFAULT_RECORDS}, quick {QUICK_RECORDS}")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--chats", type=int)
    p.add_argument("--partitions", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--variant", action="append", choices=VARIANTS, help="live variants (default: none)")
    p.add_argument("--drain", action="store_true", help="take the whole-history verdicts and check the counts")
    p.add_argument("--repeats", type=int, default=1, help="rounds of raw + live runs (median reported)")
    p.add_argument("--session-timeout-ms", type=int, default=SESSION_TIMEOUT_MS)
    p.add_argument("--checkpoint-max-bytes", type=int, help="the live auditor's checkpoint record limit "
                   "(default: its own, 1 MB like Kafka's max.message.bytes)")
    p.add_argument("--workdir", type=Path)
    args = p.parse_args(argv)
    records = args.records or (QUICK_RECORDS if args.quick else DEFAULT_RECORDS)
    chats = args.chats or (500 if args.quick else 10_000)
    partitions = args.partitions or (4 if args.quick else 12)
    result = scenario(records, chats, partitions, args.seed, tuple(args.variant or ("none",)), repeats=args.repeats,
                      session_timeout_ms=args.session_timeout_ms, drain=args.drain,
                      checkpoint_max_bytes=args.checkpoint_max_bytes, workdir=args.workdir)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
