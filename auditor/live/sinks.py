"""Where the live consumer's findings go: a findings topic, a JSON-lines file, the log.

Every finding is written as `Finding.to_dict()` plus a deterministic
`finding_id`: a finding re-emitted after a crash (the records after the last
checkpoint are audited again) or after a rebalance carries the same id, so
downstream consumers de-duplicate on it. The id is a hash of what makes the
finding one finding (contract section 5, "one finding per"):

    message_loss        kind, chat_id, sequence, message_id
    duplicate_sequence  kind, chat_id, sequence
    counter_corruption  kind, chat_id
    sequence_gap        kind, chat_id, sequence
    out_of_order        kind, the record's (topic, partition, offset)
    clock_skew          kind, the record's (topic, partition, offset)
    duplicate_delivery  kind, chat_id, recipient_id, message_id

Evidence, classification and detail are not part of it: they may grow or be
completed as more records arrive, and the same finding must keep its id.

Findings topic (default `auditor.findings`): key = chat_id (so a chat's
findings stay in order on one partition), value = the JSON object, header
`finding_id`. Sends are not awaited one by one: `flush()` awaits them, and the
checkpoint protocol calls it before any checkpoint (auditor.live.checkpoint,
step 2). The file is opened for appending and flushed per batch. Each finding
is also logged as one structured JSON line (event "finding") with its trace id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Iterable

import orjson
from aiokafka import AIOKafkaProducer

from ..findings import (CLOCK_SKEW, COUNTER_CORRUPTION, DUPLICATE_DELIVERY, DUPLICATE_SEQUENCE,
                        MESSAGE_LOSS, OUT_OF_ORDER, SEQUENCE_GAP, Finding)
from ..logs import log_event
from ..sinks import DeadLetterSink, JsonLinesSink

log = logging.getLogger("auditor.findings")


def finding_identity(finding: Finding) -> tuple:
    kind = finding.kind
    if kind in (OUT_OF_ORDER, CLOCK_SKEW) and finding.evidence:
        return (kind,) + finding.evidence[0].coordinates
    if kind == MESSAGE_LOSS:
        return (kind, finding.chat_id, finding.sequence, finding.message_ids[0] if finding.message_ids else None)
    if kind in (DUPLICATE_SEQUENCE, SEQUENCE_GAP):
        return (kind, finding.chat_id, finding.sequence)
    if kind == COUNTER_CORRUPTION:
        return (kind, finding.chat_id)
    if kind == DUPLICATE_DELIVERY:
        return (kind, finding.chat_id, finding.recipient_id, finding.message_ids[0] if finding.message_ids else None)
    return (kind, finding.chat_id, finding.sequence, finding.message_ids)


def finding_id(finding: Finding) -> str:
    """32 hex digits, the same for the same finding in any run, on any member."""
    return hashlib.sha256(orjson.dumps(finding_identity(finding))).hexdigest()[:32]


def finding_document(finding: Finding) -> dict:
    return finding.to_dict() | {"finding_id": finding_id(finding)}


class DeadLetterFile(DeadLetterSink):
    """Rejected records, as replay's dead-letter output has them, appended."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, append=True)


class FindingEmitter:
    """Sends findings to every configured sink; `flush()` awaits the topic's acknowledgements."""

    def __init__(self, producer: AIOKafkaProducer | None = None, topic: str | None = None,
                 path: str | Path | None = None, metrics=None) -> None:
        self.producer, self.topic = producer, topic
        self.file = JsonLinesSink(path, append=True) if path else None
        self.metrics = metrics
        self._pending: list[asyncio.Future] = []
        self._failed: Exception | None = None

    async def emit(self, findings: Iterable[Finding]) -> int:
        documents = []
        for finding in findings:
            document = finding_document(finding)
            documents.append(document)
            trace_ids = document["trace_ids"]
            log_event(log, "finding", level=logging.WARNING, trace_id=trace_ids[0] if trace_ids else None,
                      chat_id=finding.chat_id, message_id=finding.message_ids[0] if finding.message_ids else None,
                      operation="audit", kind=finding.kind, sequence=finding.sequence,
                      finding_id=document["finding_id"], classification=finding.classification,
                      records=document["records"], trace_ids=trace_ids, detail=finding.detail)
            if self.producer is not None and self.topic:
                self._pending.append(await self.producer.send(
                    self.topic, orjson.dumps(document), key=finding.chat_id.encode(),
                    headers=[("finding_id", document["finding_id"].encode())]))
            if self.metrics is not None:
                self.metrics.findings.labels(kind=finding.kind).inc()
        if documents and self.file is not None:
            self.file.write_objects(documents)
        return len(documents)

    async def flush(self) -> None:
        """Every finding emitted so far is acknowledged by the topic (acks=all).

        A delivery error is raised, and raised again by every later flush: a
        finding may be lost, so no checkpoint may ever pass this point again
        (the records are audited again from the last checkpoint after a restart)."""
        if self._failed is not None:
            raise self._failed
        pending, self._pending = self._pending, []
        if pending:
            try:
                await asyncio.gather(*pending)
            except Exception as exc:
                self._failed = exc
                raise

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
