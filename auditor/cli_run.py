"""`auditor run`: the live consumer group (auditor.live), from flags and environment.

Every setting is a flag; the ones a deployment sets per environment also read
an environment variable (named in the help). A password is read from the
environment or a file only, never from the command line (it would show in
`ps`). The result is one frozen `LiveConfig`, built here; nothing below reads
the environment.

Exit codes: 0 after a graceful stop (SIGTERM/SIGINT: the batch in hand is
finished, state checkpointed, offsets committed, the group left); 2 on a
configuration error or a fatal error (the last durable checkpoint stays the
restart point).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .cli import EXIT_CLEAN, EXIT_ERROR, _add_table_flags, _dynamo_config, _env, _session
from .engine import EngineConfig
from .horizon import Grace
from .errors import AuditorError, ConfigError
from .live.config import (CHAT_PARTITIONERS, CheckpointSettings, ConsumerSettings, KafkaSettings, LiveConfig,
                          Topics)
from .logs import configure_logging, log_event
from .replay import Patience
from .verification import ALL, MODES, VerificationPolicy

log = logging.getLogger("auditor.run")


def add_run_parser(subparsers) -> argparse.ArgumentParser:
    defaults, ck, cons = LiveConfig(), CheckpointSettings(), ConsumerSettings()
    rp = subparsers.add_parser(
        "run", help="audit live from Kafka as a consumer group (findings topic, /metrics, /healthz, /readyz)",
        description="Consume the event topics as a consumer group, audit against DynamoDB, checkpoint state "
                    "with its offsets, export metrics. SIGTERM/SIGINT: finish the batch, checkpoint, commit, "
                    "leave the group. Exit 0 after a graceful stop, 2 on an error.")
    k = rp.add_argument_group("Kafka")
    k.add_argument("--bootstrap-servers", default=_env("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092",
                   metavar="HOST:PORT[,...]", help="env KAFKA_BOOTSTRAP_SERVERS")
    k.add_argument("--security-protocol", default=_env("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT",
                   choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"), help="env KAFKA_SECURITY_PROTOCOL")
    k.add_argument("--sasl-mechanism", default=_env("KAFKA_SASL_MECHANISM"),
                   choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER"),
                   help="env KAFKA_SASL_MECHANISM")
    k.add_argument("--sasl-username", default=_env("KAFKA_SASL_USERNAME"), help="env KAFKA_SASL_USERNAME")
    k.add_argument("--sasl-password-file", type=Path, metavar="PATH",
                   help="file holding the SASL password (else env KAFKA_SASL_PASSWORD)")
    k.add_argument("--ssl-cafile", default=_env("KAFKA_SSL_CAFILE"), metavar="PATH", help="env KAFKA_SSL_CAFILE")
    k.add_argument("--ssl-certfile", default=_env("KAFKA_SSL_CERTFILE"), metavar="PATH",
                   help="client certificate (mutual TLS); env KAFKA_SSL_CERTFILE")
    k.add_argument("--ssl-keyfile", default=_env("KAFKA_SSL_KEYFILE"), metavar="PATH", help="env KAFKA_SSL_KEYFILE")
    k.add_argument("--client-id", default=_env("KAFKA_CLIENT_ID") or "auditor")
    k.add_argument("--group-id", default=_env("AUDITOR_GROUP_ID") or defaults.group_id,
                   help="consumer group (env AUDITOR_GROUP_ID)")
    k.add_argument("--persisted-topic", default=_env("AUDITOR_PERSISTED_TOPIC") or Topics().persisted)
    k.add_argument("--acked-topic", default=_env("AUDITOR_ACKED_TOPIC") or Topics().acked)
    k.add_argument("--delivered-topic", default=_env("AUDITOR_DELIVERED_TOPIC") or Topics().delivered)
    k.add_argument("--session-timeout-ms", type=int, default=cons.session_timeout_ms)
    k.add_argument("--heartbeat-interval-ms", type=int, default=cons.heartbeat_interval_ms)
    k.add_argument("--rebalance-timeout-ms", type=int, default=cons.rebalance_timeout_ms,
                   help="how long the group waits for a member's revoke (batch, checkpoint, commit)")
    k.add_argument("--max-poll-records", type=int, default=cons.max_records, help="records per fetch batch")
    k.add_argument("--chat-partitioner", choices=CHAT_PARTITIONERS, default=defaults.chat_partitioner,
                   help="the producers' key partitioner, to assign chats that have table items but no "
                        "events to a partition (see auditor/live/partitions.py)")

    c = rp.add_argument_group("checkpoints and findings")
    c.add_argument("--checkpoint-topic", default=_env("AUDITOR_CHECKPOINT_TOPIC") or ck.topic)
    c.add_argument("--checkpoint-interval", type=float, default=ck.interval_seconds, metavar="SECONDS",
                   help="checkpoint at least this often while records arrive")
    c.add_argument("--checkpoint-records", type=int, default=ck.every_records, metavar="N",
                   help="... and after N records, whichever comes first")
    c.add_argument("--checkpoint-max-bytes", type=int, default=ck.max_bytes, metavar="BYTES",
                   help="largest checkpoint record; above it the auditor stops with an error (Kafka's "
                        "default max.message.bytes is 1 MB)")
    c.add_argument("--findings-topic", default=_env("AUDITOR_FINDINGS_TOPIC") or defaults.findings_topic,
                   help="'' = none (env AUDITOR_FINDINGS_TOPIC)")
    c.add_argument("--findings-file", type=Path, metavar="PATH", help="also append findings here (JSON lines)")
    c.add_argument("--dead-letter", type=Path, metavar="PATH", help="append rejected records here (JSON lines)")
    c.add_argument("--create-topics", action=argparse.BooleanOptionalAction, default=True,
                   help="create the checkpoint and findings topics when absent")
    c.add_argument("--topic-replication-factor", type=int,
                   default=_env("AUDITOR_TOPIC_REPLICATION_FACTOR") or defaults.topic_replication_factor,
                   help="for topics the auditor creates (env AUDITOR_TOPIC_REPLICATION_FACTOR)")

    d = rp.add_argument_group("DynamoDB authority")
    d.add_argument("--dynamodb-endpoint", metavar="URL", default=_env("AWS_ENDPOINT_URL_DYNAMODB"),
                   help="DynamoDB endpoint (env AWS_ENDPOINT_URL_DYNAMODB); --no-dynamodb: audit without it")
    d.add_argument("--no-dynamodb", action="store_true",
                   help="no authority: loss undecided, gaps unverified (said in the findings)")
    d.add_argument("--eventually-consistent", action="store_true",
                   help="eventually consistent reads (half the cost; may see an item late: a false loss)")
    d.add_argument("--verify", choices=MODES, default=_env("AUDITOR_VERIFY") or ALL,
                   help="which claims to read as they arrive (see auditor/verification.py); env AUDITOR_VERIFY")
    d.add_argument("--sample-rate", type=float, default=VerificationPolicy().sample_rate)
    d.add_argument("--authority-wait", type=float, default=Patience().max_wait, metavar="SECONDS",
                   help="how long verdicts wait for an unavailable table before the auditor stops")
    _add_table_flags(d)

    o = rp.add_argument_group("operations")
    o.add_argument("--http-host", default=_env("AUDITOR_HTTP_HOST") or "0.0.0.0",
                   help="address of /metrics, /healthz, /readyz (env AUDITOR_HTTP_HOST)")
    o.add_argument("--http-port", type=int, default=_env("AUDITOR_HTTP_PORT") or defaults.http_port,
                   help="0 = any free port; env AUDITOR_HTTP_PORT")
    o.add_argument("--no-http", action="store_true", help="no HTTP server")
    o.add_argument("--log-level", default=_env("AUDITOR_LOG_LEVEL") or "INFO", help="env AUDITOR_LOG_LEVEL")
    o.add_argument("--instance", default=_env("AUDITOR_INSTANCE") or _env("HOSTNAME"),
                   help="instance name in logs and checkpoints (env AUDITOR_INSTANCE, else HOSTNAME)")
    o.add_argument("--delivery-window", type=int, default=EngineConfig().delivery_window)

    g = rp.add_argument_group("retention horizon (auditor/horizon.py)")
    g.add_argument("--grace-seconds", type=float, default=_env("AUDITOR_GRACE_SECONDS") or Grace().seconds,
                   help="a sequence stays open this long after a higher one is seen (env AUDITOR_GRACE_SECONDS)")
    g.add_argument("--grace-records", type=int, default=_env("AUDITOR_GRACE_RECORDS") or Grace().records,
                   help="... and until the partition has read this many more records (env AUDITOR_GRACE_RECORDS)")
    g.add_argument("--no-horizon", action="store_true",
                   help="never close history (memory grows with messages; for short audits)")
    return rp


def _security(args: argparse.Namespace) -> tuple[tuple[str, object], ...]:
    protocol = args.security_protocol
    out: list[tuple[str, object]] = [("security_protocol", protocol)]
    if protocol.startswith("SASL"):
        if not args.sasl_mechanism:
            raise ConfigError(f"--security-protocol {protocol} needs --sasl-mechanism (env KAFKA_SASL_MECHANISM)")
        out.append(("sasl_mechanism", args.sasl_mechanism))
        if args.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            password = (args.sasl_password_file.read_text().strip() if args.sasl_password_file
                        else _env("KAFKA_SASL_PASSWORD"))
            if not args.sasl_username or password is None:
                raise ConfigError(f"SASL {args.sasl_mechanism} needs --sasl-username and a password "
                                  "(--sasl-password-file or env KAFKA_SASL_PASSWORD)")
            out += [("sasl_plain_username", args.sasl_username), ("sasl_plain_password", password)]
    if protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        out.append(("ssl_context", create_ssl_context(cafile=args.ssl_cafile, certfile=args.ssl_certfile,
                                                      keyfile=args.ssl_keyfile)))
    return tuple(out)


def live_config(args: argparse.Namespace) -> LiveConfig:
    if not args.no_dynamodb and not args.dynamodb_endpoint:
        raise ConfigError("say where the authority is: --dynamodb-endpoint URL (env AWS_ENDPOINT_URL_DYNAMODB), "
                          "or --no-dynamodb to audit without it")
    try:
        return LiveConfig(
            kafka=KafkaSettings(args.bootstrap_servers, _security(args), args.client_id),
            group_id=args.group_id,
            topics=Topics(args.persisted_topic, args.acked_topic, args.delivered_topic),
            checkpoint=CheckpointSettings(topic=args.checkpoint_topic, interval_seconds=args.checkpoint_interval,
                                          every_records=args.checkpoint_records,
                                          max_bytes=args.checkpoint_max_bytes),
            consumer=ConsumerSettings(session_timeout_ms=args.session_timeout_ms,
                                      heartbeat_interval_ms=args.heartbeat_interval_ms,
                                      rebalance_timeout_ms=args.rebalance_timeout_ms,
                                      max_records=args.max_poll_records),
            findings_topic=args.findings_topic or None,
            findings_file=str(args.findings_file) if args.findings_file else None,
            dead_letter_file=str(args.dead_letter) if args.dead_letter else None,
            create_topics=args.create_topics,
            topic_replication_factor=args.topic_replication_factor,
            dynamo=None if args.no_dynamodb else _dynamo_config(args),
            has_messages_table=bool(args.messages_table),
            has_counters_table=bool(args.counters_table),
            verification=VerificationPolicy(args.verify, args.sample_rate),
            authority_wait=args.authority_wait,
            engine=EngineConfig(delivery_window=args.delivery_window),
            grace=None if args.no_horizon else Grace(float(args.grace_seconds), int(args.grace_records)),
            chat_partitioner=args.chat_partitioner,
            http_host=None if args.no_http else args.http_host,
            http_port=args.http_port,
            instance=args.instance,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def serve(config: LiveConfig) -> int:
    from .live import LiveAuditor

    session = _session(config.dynamo) if config.dynamo is not None else None
    auditor = LiveAuditor(config, session=session)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, auditor, sig)
    try:
        await auditor.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return EXIT_CLEAN


def _on_signal(auditor, sig: signal.Signals) -> None:
    log_event(log, "shutdown_requested", operation="stop", signal=sig.name)
    auditor.stop()


def run(args: argparse.Namespace) -> int:
    config = live_config(args)
    configure_logging(args.log_level, instance=config.instance)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return asyncio.run(serve(config))
    except AuditorError as exc:
        log_event(log, "auditor_exit", level=logging.ERROR, error_code=type(exc).__name__, error_message=str(exc))
        print(f"auditor: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a Kafka or DynamoDB error that stopped the run: already logged
        print(f"auditor: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
