"""A small language for hand-written histories in unit tests."""

from __future__ import annotations

import orjson

from auditor.authority import InMemoryAuthority, NoAuthority
from auditor.engine import AuditEngine, EngineConfig
from auditor.records import Record

TS = "2026-01-31T10:00:00Z"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def persisted(chat: str, seq: int, mid: str | None = None, **extra) -> dict:
    return {"event_type": "message_persisted", "chat_id": chat, "sequence": seq,
            "message_id": mid or f"{chat}-{seq}", "created_at": TS, "sender_id": "u1", **extra}


def acked(chat: str, seq: int, mid: str | None = None, **extra) -> dict:
    return {"event_type": "message_acked", "chat_id": chat, "sequence": seq,
            "message_id": mid or f"{chat}-{seq}", "acked_at": TS, **extra}


def delivered(chat: str, seq: int, mid: str | None = None, recipient: str = "r1",
              created_at: str = TS, delivered_at: str = "2026-01-31T10:00:00.300Z", **extra) -> dict:
    return {"event_type": "message_delivered", "chat_id": chat, "sequence": seq,
            "message_id": mid or f"{chat}-{seq}", "recipient_id": recipient,
            "created_at": created_at, "delivered_at": delivered_at, **extra}


class History:
    """Records on one partition per topic, offsets assigned in order."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._next: dict[tuple[str, int], int] = {}

    def add(self, event: dict | bytes | str, topic: str = "t", partition: int = 0,
            offset: int | None = None, traceparent: str | None = None) -> Record:
        if offset is None:
            offset = self._next.get((topic, partition), 0)
        self._next[(topic, partition)] = max(self._next.get((topic, partition), 0), offset + 1)
        payload = orjson.dumps(event).decode() if isinstance(event, dict) else event
        headers = ["traceparent", traceparent] if traceparent else None
        record = Record(topic, partition, offset, payload, None, headers)
        self.records.append(record)
        return record

    def extend(self, *events: dict, **kw) -> "History":
        for event in events:
            self.add(event, **kw)
        return self


def authority(messages: dict | None = None, counters: dict | None = None) -> InMemoryAuthority:
    return InMemoryAuthority(messages, counters)


def items(chat: str, *seqs: int, **overrides: str) -> dict[int, str]:
    """Authority items {seq: f"{chat}-{seq}"}, with per-seq overrides as s<seq>=id."""
    out = {s: f"{chat}-{s}" for s in seqs}
    for key, mid in overrides.items():
        out[int(key[1:])] = mid
    return out


def run(history: History, auth=None, config: EngineConfig = EngineConfig()):
    """Process the history in one batch; return (engine, findings, rejections)."""
    engine = AuditEngine(auth if auth is not None else NoAuthority(), config)
    findings, rejections = engine.process(history.records)
    findings = findings + engine.finish()
    return engine, findings, rejections


def of_kind(findings, kind: str):
    return [f for f in findings if f.kind == kind]
