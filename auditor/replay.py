"""Offline replay: dump files in, findings and tallies out.

The same engine as the live consumer, fed from files instead of a broker. The
authority is a snapshot assumed to be taken after the dump ends (contract
section 4), so every verdict can be taken as records arrive.

Two drivers share one batch loop: `replay` for an authority that answers at
once (an export in memory), `replay_live` for one that must fetch first (a
live table): it awaits the facts each batch names between `engine.admit` and
`engine.apply`, and the whole-history facts before `engine.finish`.
"""

from __future__ import annotations

import asyncio
import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterator, Protocol, Sequence

from .authority import Authority
from .dumps import BATCH_BYTES, INVALID_ENVELOPE, Batch, DumpFile
from .engine import AuditEngine, EngineConfig, Rejection
from .errors import AuthorityUnavailable, InputError
from .findings import Finding
from .sinks import DeadLetterSink
from .state import Tallies
from .verification import VerificationPolicy

OnBatch = Callable[[DumpFile, Batch], None]
# Against a live table, a batch is also a round of reads: 1 MB (~2,500 records,
# ~1,000 distinct keys) fills BatchGetItem requests to ~85 of their 100 keys,
# where the CPU-friendly 256 KB batches of `replay` fill them to ~70.
LIVE_BATCH_BYTES = 1 << 20


class FetchingAuthority(Authority, Protocol):
    async def prefetch(self, keys: set[tuple[str, int]]) -> None:
        """Fetch these items (unless known)."""

    async def prepare_finish(self, chat_ids: set[str]) -> None:
        """Fetch every fact `finish` needs for these chats and the table's own."""


@dataclass
class ReplayResult:
    findings: list[Finding]
    tallies: Tallies
    sources: list[str]
    errors: list[str] = field(default_factory=list)  # one line per file cut short


class _Run:
    """One replay's engine and outputs; `batches` is the loop both drivers use."""

    def __init__(self, authority: Authority, config: EngineConfig,
                 dead_letter: DeadLetterSink | None, on_batch: OnBatch | None) -> None:
        self.engine = AuditEngine(authority, config)
        self.dead_letter = dead_letter
        self.on_batch = on_batch
        self.findings: list[Finding] = []
        self.errors: list[str] = []
        self.sources: list[str] = []

    def batches(self, paths: Sequence[str | Path], batch_bytes: int = BATCH_BYTES) -> Iterator[Batch]:
        """Each file's batches in order. An unreadable file is recorded in
        `errors` and the run goes on with the next one."""
        for path in paths:
            try:
                dump = DumpFile(path)
                self.sources.append(dump.path)
                for batch in dump.batches(batch_bytes):
                    for bad in batch.bad_lines:
                        self.engine.count_rejected(INVALID_ENVELOPE)
                        if self.dead_letter is not None:
                            self.dead_letter.write_bad_line(dump.path, bad.line, bad.raw, bad.error)
                    self._source = dump.path
                    yield batch
                    if self.on_batch is not None:
                        self.on_batch(dump, batch)
                    gc.freeze()  # what outlived the batch is long-lived state: see _batch_gc
            except InputError as exc:
                self.errors.append(str(exc))

    def applied(self, output: tuple[list[Finding], list[Rejection]]) -> None:
        findings, rejections = output
        self.findings.extend(findings)
        if self.dead_letter is not None and rejections:
            self.dead_letter.write(self._source, rejections)

    def result(self) -> ReplayResult:
        self.findings.extend(self.engine.finish())
        self.findings.sort(key=lambda f: f.sort_key)
        return ReplayResult(self.findings, self.engine.tallies, self.sources, self.errors)


@contextmanager
def _batch_gc():
    """Replay allocates millions of short-lived objects beside a large, long-lived
    authority: freeze what exists (the authority) out of the collector's scans and
    collect the young generation less often. Restored afterwards.

    After each batch, `_Run.batches` freezes what survived it too: the engine's
    state, mostly the delivery window (first deliveries, key tuples). Left young, every
    collection traversed it again (~10% of a replay). That state holds no
    reference cycles and a replay creates none (tested), so nothing collectable
    is kept from the collector; `unfreeze` hands it all back at the end."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def replay(paths: Sequence[str | Path], authority: Authority,
           config: EngineConfig = EngineConfig(), dead_letter: DeadLetterSink | None = None,
           on_batch: OnBatch | None = None) -> ReplayResult:
    """Replay `paths` in order against an authority that answers at once."""
    run = _Run(authority, config, dead_letter, on_batch)
    with _batch_gc():
        for batch in run.batches(paths):
            run.applied(run.engine.process(batch.records))
        return run.result()


@dataclass(frozen=True)
class Patience:
    """How long a verdict waits for an unavailable authority before the run
    gives up (exit 2, nothing decided on a missing answer)."""

    max_wait: float = 600.0  # seconds without progress
    first_delay: float = 0.5
    max_delay: float = 10.0  # a restarted table is noticed within this


async def _patiently(fetch: Callable[[], Awaitable[None]], patience: Patience,
                     pending: Callable[[int], None], waiting: int) -> None:
    """Run `fetch` until it succeeds; while the authority is unavailable, wait
    with exponential backoff and show `waiting` verdicts as pending."""
    delay, deadline = patience.first_delay, time.monotonic() + patience.max_wait
    while True:
        try:
            await fetch()
            pending(0)
            return
        except AuthorityUnavailable:
            pending(waiting)
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, patience.max_delay)


async def replay_live(paths: Sequence[str | Path], authority: FetchingAuthority,
                      config: EngineConfig = EngineConfig(),
                      dead_letter: DeadLetterSink | None = None,
                      on_batch: OnBatch | None = None, patience: Patience = Patience(),
                      pending: Callable[[int], None] = lambda n: None,
                      policy: VerificationPolicy = VerificationPolicy()) -> ReplayResult:
    """Replay `paths` against an authority that fetches. Per batch:

    1. decode and admit the records (`engine.admit`);
    2. read the items the policy chooses, waiting out an outage (the batch is
       never applied without its facts);
    3. settle sequences that were audited unverified and have just been read;
    4. audit the batch (`engine.apply`).
    At the end, read every chat whole, settle whatever is still unverified,
    and finish: so every policy gives the same report.
    """
    run = _Run(authority, config, dead_letter, on_batch)
    engine = run.engine
    with _batch_gc():
        for batch in run.batches(paths, LIVE_BATCH_BYTES):
            admitted = engine.admit(batch.records)
            keys = policy.keys_to_read(admitted, engine)
            await _patiently(lambda: authority.prefetch(keys), patience, pending, len(admitted))
            engine.settle(keys)
            run.applied(engine.apply(admitted))
        chats = engine.chat_ids()
        await _patiently(lambda: authority.prepare_finish(chats), patience, pending, len(chats))
        engine.settle(engine.unverified_keys())
        return run.result()
