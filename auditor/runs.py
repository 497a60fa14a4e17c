"""SequenceRuns: a set of sequence numbers stored as disjoint runs.

A healthy chat's persisted sequences form one run `[lo, watermark]`, so the
set costs one pair however many messages it holds; every hole (an open gap)
adds one run. Memory therefore grows with anomalies, not with messages.

The highest run is kept in two plain attributes because in-order traffic only
ever extends it (`add(watermark + 1)`), and that path must stay a couple of
integer comparisons. Lower runs live in a `SortedDict` start -> end.
"""

from __future__ import annotations

from typing import Iterator

from sortedcontainers import SortedDict


class SequenceRuns:
    __slots__ = ("_start", "_end", "_lower")

    def __init__(self) -> None:
        self._start = 0  # highest run; empty set when _start == 0 (sequences are >= 1)
        self._end = -1
        self._lower: SortedDict | None = None  # start -> end, below _start - 1; made on the first hole

    def __bool__(self) -> bool:
        return self._start != 0

    def __contains__(self, seq: int) -> bool:
        if self._start <= seq <= self._end:
            return True
        lower = self._lower
        if not lower:
            return False
        i = lower.bisect_right(seq) - 1
        return i >= 0 and seq <= lower.peekitem(i)[1]

    @property
    def max(self) -> int:
        """Highest sequence in the set, 0 when empty."""
        return self._end if self._start else 0

    @property
    def min(self) -> int:
        """Lowest sequence in the set, 0 when empty."""
        if not self._start:
            return 0
        return self._lower.peekitem(0)[0] if self._lower else self._start

    @property
    def run_count(self) -> int:
        return len(self._lower or ()) + (1 if self._start else 0)

    def add(self, seq: int) -> bool:
        """Add `seq`; True when it was not in the set before."""
        end = self._end
        if seq == end + 1 and self._start:
            self._end = seq
            return True
        start = self._start
        if start <= seq <= end:
            return False
        if not start:
            self._start, self._end = seq, seq
            return True
        if self._lower is None:
            self._lower = SortedDict()
        if seq > end:  # a hole opens: the old top run moves down
            self._lower[start] = end
            self._start = self._end = seq
            return True
        return self._add_lower(seq)

    def _add_lower(self, seq: int) -> bool:
        lower = self._lower
        i = lower.bisect_right(seq) - 1
        if i >= 0:
            prev_start, prev_end = lower.peekitem(i)
            if seq <= prev_end:
                return False
        else:
            prev_start = prev_end = None
        # Runs adjacent above: the next lower run, or the top run.
        if i + 1 < len(lower):
            next_start, next_end = lower.peekitem(i + 1)
            next_is_top = False
        else:
            next_start, next_end, next_is_top = self._start, self._end, True
        joins_prev = prev_end is not None and prev_end == seq - 1
        joins_next = next_start == seq + 1
        if joins_prev and joins_next:
            if next_is_top:
                del lower[prev_start]
                self._start = prev_start
            else:
                del lower[next_start]
                lower[prev_start] = next_end
        elif joins_prev:
            lower[prev_start] = seq
        elif joins_next:
            if next_is_top:
                self._start = seq
            else:
                del lower[next_start]
                lower[seq] = next_end
        else:
            lower[seq] = seq
        return True

    def discard_below(self, floor: int) -> None:
        """Forget every member below `floor` (history closed and reported)."""
        lower = self._lower
        while lower:
            start, end = lower.peekitem(0)
            if start >= floor:
                break
            del lower[start]
            if end >= floor:
                lower[floor] = end
                break
        if self._start and self._start < floor:
            if self._end < floor:  # nothing left at the top: the highest lower run moves up
                if lower:
                    self._start, self._end = lower.popitem(-1)
                else:
                    self._start, self._end = 0, -1
            else:
                self._start = floor

    def runs(self) -> Iterator[tuple[int, int]]:
        """The runs in ascending order, as inclusive (start, end) pairs."""
        if self._lower:
            yield from self._lower.items()
        if self._start:
            yield self._start, self._end

    def missing(self, lo: int, hi: int) -> Iterator[int]:
        """Every sequence in [lo, hi] that is not in the set, ascending."""
        nxt = lo
        for start, end in self.runs():
            if start > hi:
                break
            if end < nxt:
                continue
            yield from range(nxt, min(start, hi + 1))
            nxt = end + 1
        yield from range(nxt, hi + 1)
