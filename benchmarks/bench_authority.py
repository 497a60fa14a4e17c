"""Authority benchmark: what verification costs in DynamoDB requests, per policy.

    .venv/bin/python benchmarks/bench_authority.py [--records 100000] [--quick]

One run: generate a workload dump and its table export; replay it against the
export (in memory: the baseline); start DynamoDB Local, load the export, and
replay the same dump against the live tables once per verification policy.
For each it reports records/s and, per 1,000 messages, BatchGetItem requests,
keys read and read units (strongly consistent: 1 RCU per item under 4 KB), and
the average keys per BatchGetItem request (target under steady load: >= 80).
The end-of-run reads (one Query per chat, one Scan) are reported apart: they
are the same for every policy and do not grow with traffic.

DynamoDB Local's speed says nothing about AWS's: compare policies and paths
within one run, never across machines. The last stdout line is the result as
JSON; `main(argv)` returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aioboto3  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from auditor.config import AttributeNames  # noqa: E402
from auditor.dynamo import AuthorityReader, DynamoConfig, create_tables, load_export  # noqa: E402
from auditor.dynamo.authority import TableAuthority  # noqa: E402
from auditor.dynamo.local import LOCAL_CREDENTIALS, DynamoDBLocal, dynamodb_local_dir, free_port  # noqa: E402
from auditor.export import load_export_authority  # noqa: E402
from auditor.metrics import DynamoMetrics  # noqa: E402
from auditor.replay import replay, replay_live  # noqa: E402
from auditor.verification import ALL, ANOMALIES, SAMPLE, VerificationPolicy  # noqa: E402
from auditor.workload import Workload, WorkloadSpec, write_export, write_kcat_dump  # noqa: E402

FAULTS = dict(loss=0.001, duplicate_sequence=0.001, gap=0.001, out_of_order=0.001, clock_skew=0.001,
              duplicate_delivery=0.001, counter_behind=0.01, counter_missing=0.01, producer_retry=0.002)
POLICIES = (VerificationPolicy(ALL), VerificationPolicy(SAMPLE, 0.05), VerificationPolicy(ANOMALIES))


def _samples(metric, name_suffix: str) -> dict[str, float]:
    """operation -> value of the samples whose name ends with `name_suffix`."""
    return {s.labels.get("operation", ""): s.value for m in metric.collect() for s in m.samples
            if s.name.endswith(name_suffix)}


def request_figures(metrics: DynamoMetrics, messages: int) -> dict:
    keys = _samples(metrics.keys_per_request, "_sum").get("BatchGetItem", 0.0)
    batches = _samples(metrics.keys_per_request, "_count").get("BatchGetItem", 0.0)
    requests: dict[str, float] = {}
    for m in metrics.requests.collect():
        for s in m.samples:
            if s.name.endswith("_total"):
                requests[s.labels["operation"]] = requests.get(s.labels["operation"], 0) + s.value
    per_k = 1000.0 / messages
    return {
        "batch_get_requests": batches, "keys_read": keys,
        "keys_per_request": keys / batches if batches else 0.0,
        "requests_per_1k_messages": batches * per_k,
        "keys_per_1k_messages": keys * per_k,
        "rcu_per_1k_messages": keys * per_k,  # consistent reads of items < 4 KB: 1 RCU each
        "end_of_run_requests": {op: n for op, n in requests.items() if op in ("Query", "Scan")},
    }


async def live_run(cfg: DynamoConfig, session, dump: Path, policy: VerificationPolicy, messages: int) -> dict:
    metrics = DynamoMetrics(CollectorRegistry())
    async with AuthorityReader(cfg, session=session, metrics=metrics) as reader:
        authority = TableAuthority(reader, complete=policy.reads_everything)
        started = time.perf_counter()
        result = await replay_live([dump], authority, policy=policy)
        seconds = time.perf_counter() - started
    records = result.tallies.events_total + result.tallies.rejected + result.tallies.replayed_records
    return {"policy": policy.mode, "sample_rate": policy.sample_rate if policy.mode == SAMPLE else None,
            "seconds": seconds, "records_per_s": records / seconds,
            "findings": len(result.findings), **request_figures(metrics, messages)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--quick", action="store_true", help="a small run (seconds), for CI")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    records = min(args.records, 8_000) if args.quick else args.records
    spec = WorkloadSpec(chats=max(10, records // 400), messages=max(1, records // 4), partitions=6,
                        ack_ratio=0.95, seed=args.seed, **FAULTS)
    workload = Workload(spec)
    with tempfile.TemporaryDirectory(prefix="bench-authority-") as tmp:
        tmp = Path(tmp)
        dump = tmp / "dump.kcat.jsonl"
        n = write_kcat_dump(workload.records(), dump)
        write_export(*workload.truth(), tmp / "messages", tmp / "counters")
        exported = load_export_authority(tmp / "messages", tmp / "counters", AttributeNames())
        started = time.perf_counter()
        baseline = replay([dump], exported)
        export_s = time.perf_counter() - started
        result = {"records": n, "messages": spec.messages, "chats": spec.chats,
                  "export": {"seconds": export_s, "records_per_s": n / export_s,
                             "findings": len(baseline.findings)}, "live": []}
        server = DynamoDBLocal(dynamodb_local_dir(), free_port(), tmp / "dynamodb-local.log")
        with server:
            cfg = DynamoConfig(endpoint_url=server.endpoint)
            session = aioboto3.Session(**LOCAL_CREDENTIALS)

            async def run_all() -> None:
                started = time.perf_counter()
                await create_tables(cfg, session=session)
                await load_export(cfg, tmp / "messages", tmp / "counters", session=session)
                result["load_seconds"] = time.perf_counter() - started
                for policy in POLICIES:
                    result["live"].append(await live_run(cfg, session, dump, policy, spec.messages))

            asyncio.run(run_all())
    print(f"{n} records, {spec.messages} messages, {spec.chats} chats; export loaded into "
          f"DynamoDB Local in {result['load_seconds']:.1f}s")
    print(f"export (in memory): {result['export']['records_per_s']:>9,.0f} records/s")
    print(f"{'policy':<16}{'records/s':>11}{'vs export':>10}{'req/1k msg':>12}{'keys/1k msg':>13}"
          f"{'RCU/1k msg':>12}{'keys/req':>10}")
    for run in result["live"]:
        name = run["policy"] + (f" {run['sample_rate']:g}" if run["sample_rate"] else "")
        print(f"{name:<16}{run['records_per_s']:>11,.0f}"
              f"{run['records_per_s'] / result['export']['records_per_s']:>10.2f}"
              f"{run['requests_per_1k_messages']:>12.1f}{run['keys_per_1k_messages']:>13.1f}"
              f"{run['rcu_per_1k_messages']:>12.1f}{run['keys_per_request']:>10.1f}")
    result["keys_per_request_all"] = result["live"][0]["keys_per_request"]
    result["target_keys_per_request"] = 80
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
