"""Structured JSON logs in ADR-012's schema (section 1.4), on the standard `logging` module.

One JSON object per line, always with the same keys in the same order::

    {"timestamp": "2026-01-31T10:00:00.123456Z", "level": "INFO", "service": "auditor",
     "instance": "auditor-0", "trace_id": "4bf9...", "span_id": "00f0...", "request_id": null,
     "event": "partition_assigned", "message_id": null, "chat_id": null, "user_id": null,
     "error_code": null, "error_message": null, "latency_ms": null, "operation": null,
     "metadata": {"partition": 3, "logger": "auditor.consumer"}}

Absent fields are `null`, so every line parses to the same shape (ADR-012:
"all logs conform to structured schema"). `request_id` and `user_id` are part
of the ADR's schema too; the auditor seldom has them.

Use:

    configure_logging("INFO", instance="auditor-0")        # once, at the edge (the CLI)
    log = logging.getLogger(__name__)
    log_event(log, "partition_assigned", partition=3)       # unknown fields -> metadata
    log_event(log, "verdict_deferred", level=logging.WARNING, chat_id=c, latency_ms=12.5,
              operation="BatchGetItem", error_code="throttled")
    with trace_context(*trace_from_headers(record.headers)):   # W3C traceparent of a Kafka record
        log_event(log, "finding", message_id=m)              # carries that trace_id/span_id
    except Exception:
        log.exception("checkpoint failed", extra={"event": "checkpoint_failed"})

Plain `logger.info("text %s", x, extra={...})` calls (ours or a library's, e.g.
aiokafka) are rendered in the same schema: schema fields in `extra` go to the
top level, any other `extra` key to `metadata`, the formatted text to
`metadata.message`, and `event` defaults to "log".

Correlation (ADR-012 section 1.2): `trace_id`/`span_id` come from the record's
`extra`, else from the current `trace_context` (a contextvar, so each asyncio
task keeps its own). An exception (`exc_info`) becomes `error_code` (the
exception's class name unless the call gave one), `error_message` (its text)
and `metadata.exception_type` / `metadata.traceback`.

Secrets. The rule is not to pass them. As a safety net the formatter replaces
the value of any metadata key that names a credential (password, secret, token,
api_key, authorization, credentials, ...) with "[REDACTED]" and strips the
user:password part of URLs in string values. Values that JSON cannot carry are
rendered with `str()` (bytes decoded as UTF-8 with replacement); a line is never
lost to a serialisation error.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import functools
import logging
import os
import re
import socket
import sys
import traceback
from typing import IO, Any, Iterable, Iterator, Mapping

import orjson

from .events import parse_traceparent

__all__ = ["JsonFormatter", "SCHEMA_FIELDS", "configure_logging", "current_trace", "log_event",
           "parse_traceparent", "trace_context", "trace_from_headers"]

SERVICE = "auditor"
# Key order of every line. timestamp, level, service and instance come from the
# record and the formatter; the rest may be given by the caller.
SCHEMA_FIELDS = ("timestamp", "level", "service", "instance", "trace_id", "span_id", "request_id", "event",
                 "message_id", "chat_id", "user_id", "error_code", "error_message", "latency_ms", "operation",
                 "metadata")
CALLER_FIELDS = frozenset(SCHEMA_FIELDS) - {"timestamp", "level", "service", "instance", "metadata"}
DEFAULT_EVENT = "log"
REDACTED = "[REDACTED]"

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName"}

_SECRET_WORDS = frozenset({"password", "passwd", "pwd", "secret", "token", "authorization", "auth", "apikey",
                           "credential", "credentials", "cookie", "signature", "passphrase"})
_SECRET_JOINED = ("api_key", "apikey", "access_key", "secret", "password", "private_key", "session_token",
                  "sasl_plain")
_SPLIT = re.compile(r"[_\-.\s]+")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]*@")

_trace: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "auditor_trace", default=(None, None))


# --- correlation ------------------------------------------------------------------------

def trace_from_headers(headers: Iterable[tuple[str, bytes]] | Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(trace_id, span_id) from Kafka record headers ([(name, value)] or a mapping) carrying `traceparent`."""
    if not headers:
        return None, None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        if name.lower() == "traceparent":
            return parse_traceparent(value)
    return None, None


@contextlib.contextmanager
def trace_context(trace_id: str | None, span_id: str | None = None) -> Iterator[None]:
    """Every log line emitted inside (this task or thread context) carries these ids."""
    token = _trace.set((trace_id, span_id))
    try:
        yield
    finally:
        _trace.reset(token)


def current_trace() -> tuple[str | None, str | None]:
    return _trace.get()


# --- rendering --------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _second(sec: int) -> str:
    return _dt.datetime.fromtimestamp(sec, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def format_timestamp(created: float) -> str:
    """RFC 3339, UTC, microseconds: 2026-01-31T10:00:00.123456Z."""
    us = round(created * 1_000_000)
    sec, frac = divmod(us, 1_000_000)
    return f"{_second(sec)}.{frac:06d}Z"


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if any(word in lowered for word in _SECRET_JOINED):
        return True
    return any(part in _SECRET_WORDS for part in _SPLIT.split(lowered))


def _scrub_text(text: str) -> str:
    return _URL_USERINFO.sub(r"\1" + REDACTED + "@", text) if "://" in text else text


def _clean(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy: secret keys redacted, URL credentials stripped, strings for the rest."""
    if isinstance(value, str):
        return _scrub_text(value)
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2 ** 63) <= value < 2 ** 64 else str(value)
    if depth > 8:
        return _to_str(value)
    if isinstance(value, Mapping):
        return {str(k): (REDACTED if _is_secret_key(str(k)) else _clean(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v, depth + 1) for v in value]
    return _to_str(value)


def _to_str(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    try:
        return _scrub_text(str(value))
    except Exception:  # a broken __str__ must not lose the line
        return f"<unprintable {type(value).__name__}>"


def _default(value: Any) -> Any:
    return _to_str(value)


class JsonFormatter(logging.Formatter):
    """Renders a LogRecord as one ADR-012 JSON line (see the module doc)."""

    def __init__(self, instance: str | None = None, service: str = SERVICE) -> None:
        super().__init__()
        self.service = service
        self.instance = instance or default_instance()

    def format(self, record: logging.LogRecord) -> str:
        line = self.to_dict(record)
        try:
            return orjson.dumps(line, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, ValueError):  # e.g. an int beyond 64 bits: make everything JSON-safe
            return orjson.dumps(_clean(line), default=_default, option=orjson.OPT_NON_STR_KEYS).decode()

    def to_dict(self, record: logging.LogRecord) -> dict:
        extra = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}
        given_metadata = extra.pop("metadata", None)
        metadata: dict = {}
        if isinstance(given_metadata, Mapping):
            metadata.update(given_metadata)
        elif given_metadata is not None:
            metadata["metadata"] = given_metadata
        fields = {}
        for key, value in extra.items():
            if key in CALLER_FIELDS:
                fields[key] = value
            else:
                metadata[key] = value

        trace_id, span_id = _trace.get()
        if fields.get("trace_id") is None:
            fields["trace_id"] = trace_id
            if fields.get("span_id") is None:
                fields["span_id"] = span_id
        event = fields.get("event") or DEFAULT_EVENT
        fields["event"] = event

        try:
            text = record.getMessage()
        except Exception as exc:  # bad %-args: keep the template, say why
            text = f"{record.msg!r} (formatting failed: {type(exc).__name__}: {exc})"
        if text and text != event:
            metadata["message"] = text

        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            if fields.get("error_code") is None:
                fields["error_code"] = getattr(exc, "error_code", None) or exc_type.__name__
            if fields.get("error_message") is None:
                fields["error_message"] = _to_str(exc) or exc_type.__name__
            metadata["exception_type"] = f"{exc_type.__module__}.{exc_type.__qualname__}"
            metadata["traceback"] = _scrub_text("".join(traceback.format_exception(exc_type, exc, tb)).rstrip())
        elif record.exc_text:
            metadata["traceback"] = _scrub_text(record.exc_text)
        if record.stack_info:
            metadata["stack"] = record.stack_info
        metadata["logger"] = record.name

        for key in ("error_message",):
            if isinstance(fields.get(key), str):
                fields[key] = _scrub_text(fields[key])
        latency = fields.get("latency_ms")
        if latency is not None and not isinstance(latency, (int, float)):
            fields["latency_ms"] = _to_str(latency)

        out = {"timestamp": format_timestamp(record.created), "level": record.levelname,
               "service": self.service, "instance": self.instance}
        for key in SCHEMA_FIELDS[4:-1]:
            value = fields.get(key)
            out[key] = value if value is None or isinstance(value, (int, float, str)) else _clean(value)
        out["metadata"] = _clean(metadata)
        return out


def default_instance() -> str:
    """$AUDITOR_INSTANCE, else $HOSTNAME (a Kubernetes pod name), else the host name."""
    return os.environ.get("AUDITOR_INSTANCE") or os.environ.get("HOSTNAME") or socket.gethostname()


# --- setup and helper -------------------------------------------------------------------

_HANDLER_MARK = "_auditor_json_handler"


def configure_logging(level: int | str = "INFO", instance: str | None = None,
                      stream: IO[str] | None = None, *, service: str = SERVICE,
                      logger: logging.Logger | None = None) -> logging.Handler:
    """Send every log record of `logger` (default: the root) to `stream` as ADR-012 JSON lines.

    Call once at the edge (the CLI). Idempotent: a handler installed by an
    earlier call is replaced, other handlers are left alone. `stream` defaults
    to stderr (stdout is kept for command output). `level` is a name or a number.
    Returns the handler.
    """
    target = logger if logger is not None else logging.getLogger()
    if isinstance(level, str):
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise ValueError(f"unknown log level {level!r}")
        level = numeric
    for handler in list(target.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            target.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(instance=instance, service=service))
    setattr(handler, _HANDLER_MARK, True)
    target.addHandler(handler)
    target.setLevel(level)
    return handler


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, exc_info: Any = None,
              metadata: Mapping[str, Any] | None = None, **fields: Any) -> None:
    """Log one schema event: known schema fields go to the top level, the others to `metadata`.

        log_event(log, "checkpoint_written", partition=3, offset=1200, latency_ms=4.2, operation="checkpoint")
    """
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, Any] = {"event": event}
    meta = dict(metadata) if metadata else {}
    for key, value in fields.items():
        if key in CALLER_FIELDS:
            extra[key] = value
        else:
            meta[key] = value
    if meta:
        extra["metadata"] = meta
    logger.log(level, event, exc_info=exc_info, extra=extra, stacklevel=2)
