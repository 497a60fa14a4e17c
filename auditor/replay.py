"""Offline replay: dump files in, findings and tallies out.

The same engine as the live consumer, fed from files instead of a broker. The
authority is a snapshot assumed to be taken after the dump ends (contract
section 4), so every verdict can be taken as records arrive.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .authority import Authority
from .dumps import INVALID_ENVELOPE, Batch, DumpFile
from .engine import AuditEngine, EngineConfig, Tallies
from .errors import InputError
from .findings import Finding
from .sinks import DeadLetterSink


@dataclass
class ReplayResult:
    findings: list[Finding]
    tallies: Tallies
    sources: list[str]
    errors: list[str] = field(default_factory=list)  # one line per file cut short


@contextmanager
def _batch_gc():
    """Replay allocates millions of short-lived objects beside a large, long-lived
    authority: freeze what exists (the authority) out of the collector's scans and
    collect the young generation less often. Restored afterwards."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def replay(
    paths: Sequence[str | Path],
    authority: Authority,
    config: EngineConfig = EngineConfig(),
    dead_letter: DeadLetterSink | None = None,
    on_batch: Callable[[DumpFile, Batch], None] | None = None,
) -> ReplayResult:
    """Replay `paths` in order. An unreadable file is recorded in `errors` and
    the replay goes on with the next one: what was read is still reported."""
    with _batch_gc():
        return _replay(paths, AuditEngine(authority, config), dead_letter, on_batch)


def _replay(paths, engine: AuditEngine, dead_letter, on_batch) -> ReplayResult:
    findings: list[Finding] = []
    errors: list[str] = []
    sources: list[str] = []
    for path in paths:
        try:
            dump = DumpFile(path)
            sources.append(dump.path)
            for batch in dump.batches():
                for bad in batch.bad_lines:
                    engine.count_rejected(INVALID_ENVELOPE)
                    if dead_letter is not None:
                        dead_letter.write_bad_line(dump.path, bad.line, bad.raw, bad.error)
                new_findings, rejections = engine.process(batch.records)
                findings.extend(new_findings)
                if dead_letter is not None and rejections:
                    dead_letter.write(dump.path, rejections)
                if on_batch is not None:
                    on_batch(dump, batch)
        except InputError as exc:
            errors.append(str(exc))
    findings.extend(engine.finish())
    findings.sort(key=lambda f: f.sort_key)
    return ReplayResult(findings, engine.tallies, sources, errors)
