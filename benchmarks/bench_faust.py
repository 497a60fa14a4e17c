"""Consumer framework benchmark: a plain faust-streaming agent vs the raw aiokafka loop, one run.

    .venv/bin/pip install -e '.[stream]'                      # faust-streaming (optional extra)
    .venv/bin/python benchmarks/bench_faust.py                # 100,000 records
    .venv/bin/python benchmarks/bench_faust.py --quick        # 10,000 records
    .venv/bin/python benchmarks/bench_faust.py --bootstrap HOST:PORT   # an existing broker

One run, one broker, one topic:

1. starts a Tansu broker on a free loopback port (`auditor.kafka.TansuBroker`,
   in memory; or uses `--bootstrap`, then with a topic name unique to the run),
   creates ONE topic with `--partitions` partitions (default 4) and produces
   `--records` workload records to it (`auditor.workload`, the fault mix of
   `bench_consume.py`; persisted, acked and delivered events all go to this
   topic, partitioned by chat);
2. (a) faust: a faust-streaming App (in memory store, web server off, every
   other setting faust's default) with one plain agent,
   `async for value in stream`, doing exactly what the baseline does per record:
   `orjson.loads` and a per-chat highest-sequence dict update. The App is started
   in this process and stopped once the agent has seen every record;
3. (b) raw: `bench_consume.raw_consume` (aiokafka `getmany`, same parsing) on a
   fresh consumer group over the same topic;
4. prints events/s for both and ratio = faust / raw. The decision rule in
   docs/consumer-framework.md: faust is only worth adopting at ratio >= 0.5.

Clocks (the same for both): `join_seconds` runs from starting the consumer
(faust: `app.start()`; raw: `consumer.start()`) until the member holds its
partitions (faust: `on_partitions_assigned` with a partition of the topic);
`seconds` from then until the last expected record is parsed, so
`events_per_s` = records / seconds. Faust's `first_record_seconds` (assignment
to first record: its recovery and fetcher start-up) is inside `seconds` and
also reported apart. Group-join times depend on the broker and on the session
timeout (faust's default is 60 s, aiokafka's 10 s); `--faust-session-timeout`
sets faust's. If faust fails (not installed, an error against the broker, or
a timeout), the exact error is recorded under `faust.error` and the raw loop
is still measured.

The last line of stdout is the whole result as one JSON object; `main(argv)`
returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from auditor.kafka import TansuBroker, create_topics, produce_workload  # noqa: E402
from auditor.workload import Workload  # noqa: E402
from benchmarks.bench_consume import MAX_RECORDS, make_spec, raw_consume  # noqa: E402

DEFAULT_RECORDS, QUICK_RECORDS = 100_000, 10_000
THRESHOLD = 0.5  # faust must reach this fraction of the raw loop's events/s to be considered


async def faust_consume(bootstrap: str, topic: str, app_id: str, expected: int, *, partitions: int,
                        timeout: float, session_timeout: float | None = None) -> dict:
    """Consume `expected` records with one plain faust agent; same parsing as `raw_consume`.

    Returns {"records", "join_seconds", "seconds", "events_per_s", "first_record_seconds",
    "events_per_s_after_first", "chats", "unparsed", "version", "settings"}; raises on failure.
    """
    import faust  # the `stream` extra; imported here so the rest works without it

    settings: dict[str, Any] = dict(broker=f"kafka://{bootstrap}", store="memory://", web_enabled=False,
                                    autodiscover=False, consumer_auto_offset_reset="earliest",
                                    topic_partitions=partitions)
    if session_timeout is not None:
        settings["broker_session_timeout"] = session_timeout
    app = faust.App(app_id, **settings)
    source = app.topic(topic, value_serializer="raw")
    loads = orjson.loads
    high: dict = {}
    state: dict[str, Any] = {"n": 0, "unparsed": 0, "assigned": None, "first": None, "last": None,
                             "error": None}
    done = asyncio.Event()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        if state["assigned"] is None and any(tp.topic == topic for tp in assigned):
            state["assigned"] = time.perf_counter()

    @app.agent(source)
    async def audit(stream: Any) -> None:
        try:
            async for value in stream:
                if state["first"] is None:
                    state["first"] = time.perf_counter()
                try:
                    event = loads(value)
                    chat, seq = event["chat_id"], event["sequence"]
                    if seq > high.get(chat, 0):
                        high[chat] = seq
                except (ValueError, KeyError, TypeError):
                    state["unparsed"] += 1
                state["n"] += 1
                if state["n"] >= expected:
                    state["last"] = time.perf_counter()
                    done.set()
        except Exception as exc:  # an agent crash is only logged by faust's supervisor: surface it
            state["error"] = exc
            done.set()
            raise

    starting = time.perf_counter()
    try:
        await app.start()
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"faust agent consumed {state['n']} of {expected} records in {timeout:.0f}s "
                               f"(partitions assigned: {state['assigned'] is not None})") from None
        if state["error"] is not None:
            raise state["error"]
    finally:
        await app.stop()
    assigned, first, last, n = state["assigned"], state["first"], state["last"], state["n"]
    if assigned is None:  # records without an assignment signal: time from the first record
        assigned = first
    seconds = last - assigned
    return {"records": n, "join_seconds": assigned - starting, "seconds": seconds,
            "events_per_s": n / seconds if seconds > 0 else float("inf"),
            "first_record_seconds": first - assigned,
            "events_per_s_after_first": (n - 1) / (last - first) if last > first else float("inf"),
            "chats": len(high), "unparsed": state["unparsed"], "version": faust.__version__,
            "settings": {k: v for k, v in settings.items() if k != "broker"}}


async def produce(bootstrap: str, spec: Any, topic: str, partitions: int, batch: int) -> dict:
    started = time.perf_counter()
    records = list(Workload(spec).records())
    generated = time.perf_counter() - started
    await create_topics(bootstrap, {topic: partitions})
    started = time.perf_counter()
    count = await produce_workload(bootstrap, records, batch=batch)
    seconds = time.perf_counter() - started
    return {"records": count, "seconds": seconds, "records_per_s": count / seconds,
            "generate_seconds": generated, "batch": batch}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, help=f"records to produce (default {DEFAULT_RECORDS}, quick {QUICK_RECORDS})")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_RECORDS} records")
    p.add_argument("--chats", type=int, default=10_000)
    p.add_argument("--partitions", type=int, default=4, help="partitions of the one topic")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=5_000, help="records per produce chunk")
    p.add_argument("--max-records", type=int, default=MAX_RECORDS, help="raw loop: getmany max_records")
    p.add_argument("--faust-session-timeout", type=float,
                   help="faust broker_session_timeout in seconds (default: faust's own, 60)")
    p.add_argument("--timeout", type=float, help="per consumer, seconds (default 120 + 1 s per 500 records)")
    p.add_argument("--bootstrap", help="use this broker instead of starting Tansu (the topic gets a unique name)")
    p.add_argument("--workdir", type=Path, help="where the broker log goes (default: a temporary directory)")
    return p.parse_args(argv)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    records = args.records or (QUICK_RECORDS if args.quick else DEFAULT_RECORDS)
    run_id = f"benchfaust{os.getpid()}_{time.time_ns() % 10**9}"
    topic = f"{run_id}.events" if args.bootstrap else "messages.events"
    spec = dataclasses.replace(make_spec(records, args.chats, args.partitions, args.seed),
                               persisted_topic=topic, acked_topic=topic, delivered_topic=topic)
    timeout = args.timeout or 120.0 + records / 500
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench_faust_", dir=args.workdir))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # faust's own warnings, if any
    broker = None
    try:
        if args.bootstrap:
            bootstrap, broker_info = args.bootstrap, {"kind": "external", "bootstrap": args.bootstrap}
        else:
            broker = TansuBroker(log_path=workdir / "tansu.log").start()
            bootstrap = broker.bootstrap
            broker_info = {"kind": "tansu", "bootstrap": bootstrap, "start_seconds": broker.start_seconds}
            print(f"broker: Tansu on {bootstrap}, ready in {broker.start_seconds:.3f}s", file=sys.stderr)
        produced = asyncio.run(produce(bootstrap, spec, topic, args.partitions, args.batch))
        count = produced["records"]
        print(f"produce: {count} records to {topic!r} ({args.partitions} partitions) in "
              f"{produced['seconds']:.2f}s = {produced['records_per_s']:,.0f}/s", file=sys.stderr)

        try:
            faust_result = asyncio.run(faust_consume(bootstrap, topic, f"{run_id}-faust", count,
                                                     partitions=args.partitions, timeout=timeout,
                                                     session_timeout=args.faust_session_timeout))
            print(f"faust agent: {faust_result['records']} records in {faust_result['seconds']:.2f}s = "
                  f"{faust_result['events_per_s']:,.0f} events/s (group join {faust_result['join_seconds']:.2f}s, "
                  f"first record {faust_result['first_record_seconds']:.2f}s after assignment, "
                  f"faust {faust_result['version']})", file=sys.stderr)
        except Exception as exc:
            faust_result = {"error": _error(exc), "traceback": traceback.format_exc()}
            print(f"faust agent FAILED: {faust_result['error']}\n{faust_result['traceback']}", file=sys.stderr)

        raw = asyncio.run(raw_consume(bootstrap, [topic], f"{run_id}.raw", count, max_records=args.max_records,
                                      timeout=timeout))
        print(f"raw aiokafka getmany: {raw['records']} records in {raw['seconds']:.2f}s = "
              f"{raw['events_per_s']:,.0f} events/s (group join {raw['join_seconds']:.2f}s)", file=sys.stderr)
    except BaseException:
        if broker is not None:
            print(f"broker log tail: {broker.log_tail(20)}", file=sys.stderr)
        raise
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    ratio = None
    if "events_per_s" in faust_result and raw["events_per_s"] > 0:
        ratio = faust_result["events_per_s"] / raw["events_per_s"]
        print(f"ratio faust/raw: {ratio:.3f} (faust adopted only at >= {THRESHOLD})", file=sys.stderr)
    agree = ("chats" in faust_result and faust_result["chats"] == raw["chats"]
             and faust_result["unparsed"] == raw["unparsed"])
    result = {"records": count, "topic": topic, "partitions": args.partitions, "chats": args.chats,
              "seed": args.seed, "broker": broker_info, "produce": produced,
              "faust": {k: v for k, v in faust_result.items() if k != "traceback"}, "raw_consume": raw,
              "ratio": ratio, "threshold": THRESHOLD, "faust_meets_threshold": ratio is not None and ratio >= THRESHOLD,
              "results_agree": agree, "timeout": timeout,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
