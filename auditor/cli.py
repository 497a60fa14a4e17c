"""`auditor` command line: flags and environment become a frozen config here,
and nowhere deeper."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import aioboto3
import orjson
from prometheus_client import CollectorRegistry

from .config import AttributeNames, ReplayConfig
from .engine import EngineConfig
from .dynamo.authority import TableAuthority
from .dynamo.config import DynamoConfig, TableNames
from .dynamo.reader import AuthorityReader
from .dynamo.tables import create_tables, load_export
from .errors import AuditorError, ConfigError
from .export import load_export_authority
from .metrics import DynamoMetrics, audit_registry, write_metrics
from .replay import Patience, replay, replay_live
from .report import build_report, summary_lines
from .sinks import DeadLetterSink
from .verification import ALL, MODES, VerificationPolicy

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditor", description="Streaming correctness auditor.")
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="audit Kafka dump files offline against a table export",
                        description="Replay kcat -J dumps (or plain event JSON lines, .gz or not) "
                                    "in order. Exit 0: no findings; 1: findings; 2: usage or I/O error.")
    rp.add_argument("dumps", nargs="+", type=Path, metavar="DUMP")
    rp.add_argument("--messages-export", type=Path, metavar="DIR",
                    help="DynamoDB export of the messages table (omit: loss undecided)")
    rp.add_argument("--counters-export", type=Path, metavar="DIR",
                    help="DynamoDB export of the chat_counters table (omit: counters undecided)")
    rp.add_argument("--report", type=Path, metavar="PATH", help="write the JSON report here")
    rp.add_argument("--dead-letter", type=Path, metavar="PATH",
                    help="write rejected records (JSON lines) here")
    rp.add_argument("--metrics-out", type=Path, metavar="PATH",
                    help="write the final metrics in Prometheus text format here")
    rp.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bar (default: when stderr is a terminal)")
    rp.add_argument("--delivery-window", type=int, default=EngineConfig().delivery_window,
                    help="sequences a delivery is remembered for duplicate detection")
    _add_table_flags(rp)
    rp.add_argument("--dynamodb-endpoint", metavar="URL", default=_env("AWS_ENDPOINT_URL_DYNAMODB"),
                    help="verify against live tables at this endpoint instead of exports "
                         "(env AWS_ENDPOINT_URL_DYNAMODB)")
    rp.add_argument("--eventually-consistent", action="store_true",
                    help="eventually consistent reads (half the cost; may see an item late)")
    rp.add_argument("--verify", choices=MODES, default=ALL,
                    help="which claims to read from the live table as they arrive: all, a sample "
                         "plus every anomaly, or anomalies only (the report is the same; the cost "
                         "differs: see auditor/verification.py)")
    rp.add_argument("--sample-rate", type=float, default=VerificationPolicy().sample_rate,
                    help="share of sequences read with --verify sample")
    rp.add_argument("--authority-wait", type=float, default=Patience().max_wait, metavar="SECONDS",
                    help="how long verdicts wait for an unavailable table before the run fails")

    auth = sub.add_parser("authority", help="tools for the DynamoDB tables")
    auth_sub = auth.add_subparsers(dest="authority_command", required=True)
    load = auth_sub.add_parser("load-export", help="create the tables if absent and load an export")
    load.add_argument("--messages-export", type=Path, metavar="DIR")
    load.add_argument("--counters-export", type=Path, metavar="DIR")
    load.add_argument("--dynamodb-endpoint", metavar="URL", default=_env("AWS_ENDPOINT_URL_DYNAMODB"),
                      required=_env("AWS_ENDPOINT_URL_DYNAMODB") is None)
    _add_table_flags(load)
    from .cli_run import add_run_parser  # `auditor run`: auditor/cli_run.py

    add_run_parser(sub)
    demo = sub.add_parser("demo", help="the whole system on this machine: broker, DynamoDB Local, "
                                       "two workers, injected faults (see auditor/demo.py)")
    demo.add_argument("--messages", type=int, default=6_000, help="messages in the generated traffic")
    demo.add_argument("--chats", type=int, default=60)
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--http-port", type=int, default=9102, help="first worker's /metrics port")
    demo.add_argument("--keep-running", action="store_true", help="after the summary, wait for Ctrl-C")
    return parser


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _add_table_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", default=_env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or "us-east-1")
    parser.add_argument("--messages-table", default="messages", metavar="NAME",
                        help="messages table name ('' = no messages table)")
    parser.add_argument("--counters-table", default="chat_counters", metavar="NAME",
                        help="counters table name ('' = no counters table)")
    for attr in ("chat_id", "sequence", "message_id", "last_sequence"):
        parser.add_argument(f"--attr-{attr.replace('_', '-')}", default=attr, metavar="NAME",
                            help=f"attribute name of {attr} in the tables")


def _attributes(args: argparse.Namespace) -> AttributeNames:
    return AttributeNames(args.attr_chat_id, args.attr_sequence, args.attr_message_id,
                          args.attr_last_sequence)


def _dynamo_config(args: argparse.Namespace) -> DynamoConfig:
    return DynamoConfig(
        endpoint_url=args.dynamodb_endpoint, region=args.region,
        tables=TableNames(args.messages_table or "messages", args.counters_table or "chat_counters"),
        attributes=_attributes(args),
        consistent_read=not getattr(args, "eventually_consistent", False))


def _session(config: DynamoConfig) -> aioboto3.Session:
    """DynamoDB Local takes any credentials: on a loopback endpoint with none
    configured, use placeholders rather than fail on the credential chain."""
    host = urlparse(config.endpoint_url or "").hostname or ""
    if host in ("127.0.0.1", "localhost", "::1") and not _env("AWS_ACCESS_KEY_ID"):
        return aioboto3.Session(aws_access_key_id="local", aws_secret_access_key="local")
    return aioboto3.Session()


def _replay_config(args: argparse.Namespace) -> ReplayConfig:
    try:
        VerificationPolicy(args.verify, args.sample_rate)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ReplayConfig(
        dumps=tuple(args.dumps),
        messages_export=args.messages_export,
        counters_export=args.counters_export,
        report=args.report,
        dead_letter=args.dead_letter,
        metrics_out=args.metrics_out,
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
        attributes=_attributes(args),
        engine=EngineConfig(delivery_window=args.delivery_window),
        dynamo=_dynamo_config(args) if args.dynamodb_endpoint else None,
        has_messages_table=bool(args.messages_table),
        has_counters_table=bool(args.counters_table),
        authority_wait=args.authority_wait,
        verification=VerificationPolicy(args.verify, args.sample_rate),
    )


def run_replay(config: ReplayConfig) -> int:
    if config.dynamo is not None and (config.messages_export or config.counters_export):
        raise ConfigError("use either --dynamodb-endpoint or export directories, not both")
    dead_letter = DeadLetterSink(config.dead_letter) if config.dead_letter else None
    progress = _Progress(config.dumps) if config.progress else None
    on_batch = progress.update if progress else None
    registry = CollectorRegistry()  # the run's metrics: audit, plus DynamoDB's when live
    started = time.perf_counter()
    try:
        if config.dynamo is None:
            authority = load_export_authority(config.messages_export, config.counters_export,
                                              config.attributes)
            result = replay(config.dumps, authority, config.engine, dead_letter, on_batch)
        else:
            authority, result = asyncio.run(_replay_live(config, dead_letter, on_batch,
                                                         DynamoMetrics(registry)))
    finally:
        if dead_letter is not None:
            dead_letter.close()
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - started
    report = build_report(result.findings, result.tallies, authority, result.sources, result.errors)
    if config.report:
        config.report.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    if config.metrics_out:
        write_metrics(config.metrics_out, audit_registry(lambda: result.tallies, registry))
    records = result.tallies.events_total + result.tallies.rejected + result.tallies.replayed_records
    print("\n".join(summary_lines(report)))
    print(f"replayed {records} records in {elapsed:.1f}s ({records / max(elapsed, 1e-9):,.0f} records/s)")
    for error in result.errors:
        print(f"auditor: {error}", file=sys.stderr)
    if result.errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if result.findings else EXIT_CLEAN


async def _replay_live(config: ReplayConfig, dead_letter, on_batch, metrics: DynamoMetrics):
    async with AuthorityReader(config.dynamo, session=_session(config.dynamo), metrics=metrics) as reader:
        await reader.require_tables(messages=config.has_messages_table, counters=config.has_counters_table)
        authority = TableAuthority(reader, config.has_messages_table, config.has_counters_table,
                                   complete=config.verification.reads_everything)
        result = await replay_live(config.dumps, authority, config.engine, dead_letter, on_batch,
                                   Patience(max_wait=config.authority_wait),
                                   metrics.pending_verdicts.set, config.verification)
    return authority, result


def run_load_export(args: argparse.Namespace) -> int:
    config = _dynamo_config(args)

    async def load() -> dict[str, int]:
        session = _session(config)
        await create_tables(config, session=session)
        return await load_export(config, args.messages_export, args.counters_export, session=session)

    counts = asyncio.run(load())
    for table, n in counts.items():
        print(f"{table}: {n} items loaded")
    return EXIT_CLEAN


class _Progress:
    """A tqdm bar over the bytes of all dump files, with records/s beside it."""

    def __init__(self, paths: Sequence[Path]) -> None:
        from tqdm import tqdm

        total = sum(p.stat().st_size for p in paths if p.is_file())
        self._bar = tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, leave=False)
        self._done_files = 0
        self._current = None
        self._records = 0
        self._started = time.perf_counter()

    def update(self, dump, batch) -> None:
        if dump is not self._current:
            if self._current is not None:
                self._done_files += self._current.size
            self._current = dump
        self._records += len(batch.records) + len(batch.bad_lines)
        self._bar.n = self._done_files + batch.bytes_read
        rate = self._records / max(time.perf_counter() - self._started, 1e-9)
        self._bar.set_postfix_str(f"{self._records:,} records, {rate:,.0f} records/s", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        if args.command == "replay":
            return run_replay(_replay_config(args))
        if args.command == "authority" and args.authority_command == "load-export":
            return run_load_export(args)
        if args.command == "run":
            from .cli_run import run

            return run(args)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.messages, args.chats, args.seed, args.http_port, args.keep_running)
    except AuditorError as exc:
        print(f"auditor: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
