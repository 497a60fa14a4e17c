"""The retention horizon: when the live consumer closes a chat's history.

Replay sees the whole history before it judges; a consumer that runs for
months cannot keep it. It closes each chat's history in steps instead
(`AuditEngine.close`): what lies below the horizon is reported (gaps, losses,
duplicate sequences, duplicate deliveries) and forgotten, so memory and
checkpoints hold chats and the open window, not every message ever seen.

Terms. A chat's *mark* is (hi, t, position): its highest sequence seen, the
time, and how far its engine had read (`AuditEngine.position`) when the mark
was set. `Grace(seconds, records)` is how long a sequence stays open.

The rule, at each tick (`due(engine, now, grace)`):

1. A chat with a mark whose grace has passed in BOTH time (now - t >= seconds)
   and records read (position now - position then >= records) is closed
   through the mark's hi, and its mark cleared.
2. A chat without a mark whose hi is above what is closed, or that holds open
   state below it (an event that arrived after its sequence closed), gets a new
   mark (hi, now, position now).

After closing, the adapter retires the chats left quiet (`AuditEngine.retire`):
a few numbers each instead of their state, until their next event.

So a sequence is closed between `grace` and `grace` plus one tick after the
auditor first saw a higher one. Why both measures: time alone closes too early
while the consumer catches up on a backlog (thousands of records per wall
second, so a record published late sits far behind its neighbours); records
alone close too early in a quiet partition. Together they are at least as
patient as either. A late arrival inside the grace fills its gap (and counts
as out of order); one after it is audited as new, beside the closed history:
a producer retry arriving then counts as out of order, not redelivered.

The horizon is documented for operators in docs/live-consumer.md. Time is
passed in (`now`, wall-clock seconds, as checkpoints carry marks across
restarts), so this stays pure and tests choose it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, NamedTuple

from .engine import AuditEngine
from .findings import Finding


@dataclass(frozen=True, slots=True)
class Grace:
    # A publisher's retry or reordering lands within seconds; a minute is far
    # beyond it and still well inside ADR-012's 5-minute alert windows.
    seconds: float = 60.0
    # ... and at least this many records read by the partition's engine since.
    records: int = 10_000

    def __post_init__(self) -> None:
        if self.seconds < 0 or self.records < 0:
            raise ValueError("grace seconds and records must be >= 0")


def due(engine: AuditEngine, now: float, grace: Grace) -> dict[str, int]:
    """chat_id -> the sequence to close through, for every chat whose grace has
    passed (steps 1-2 above); marks are moved as a side effect."""
    position = engine.position
    through: dict[str, int] = {}
    for chat_id, chat in engine.chats.items():
        mark = chat.mark
        closed = chat.closed_through
        if mark is not None:
            hi, at, read = mark
            if now - at < grace.seconds or position - read < grace.records:
                continue
            through[chat_id] = closed = hi  # 1.
            chat.mark = None
        if chat.hi > closed or (chat_id not in through and not chat.quiet):  # 2.
            chat.mark = (chat.hi, now, position)
    return through


class Closed(NamedTuple):
    findings: list[Finding]
    sequences: int  # sequences closed (for the metric)
    retired: list[str]  # chats retired after the close (the authority may drop them)


def close(engine: AuditEngine, through: dict[str, int], read: Iterable[tuple[str, int]]) -> Closed:
    """Close `through` (from `due`) once the authority holds the facts it needs:
    settle what was `read` (`engine.closing_keys(through, ...)`), close, decide
    the closing chats' counters, then retire the chats left quiet."""
    engine.settle(read)
    sequences = 0
    for chat_id, upto in through.items():
        chat = engine.chats[chat_id]
        sequences += max(0, min(upto, chat.hi) - chat.closed_through)
    findings = engine.close(through) + engine.check_counters(through)
    return Closed(findings, sequences, engine.retire())
