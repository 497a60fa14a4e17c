"""A small circuit breaker for calls to the authority.

When DynamoDB is down, every verdict that needs it would otherwise spend its
whole retry budget against a dead endpoint. After `failure_threshold`
consecutive failures the breaker opens and callers fail fast (they wait and
retry later); after `open_seconds` it lets exactly one trial call through
(half-open): success closes it, failure opens it again for another period.

Only the caller decides what a failure is; the breaker just counts. The clock
is injectable so tests can move time by hand.
"""

from __future__ import annotations

import enum
import time
from typing import Callable


class BreakerState(enum.IntEnum):
    # The values are the gauge values exported as auditor_dynamo_breaker_state.
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(self, failure_threshold: int = 5, open_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[BreakerState], None] | None = None) -> None:
        if failure_threshold < 1 or open_seconds <= 0:
            raise ValueError("failure_threshold must be >= 1 and open_seconds > 0")
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started: float | None = None  # set while the half-open trial runs

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose period is over reads as half-open)."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.open_seconds:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open, True for one trial call only.

        A trial that never reports back (its caller was cancelled and did not
        call `abandon`) would block the breaker forever, so a trial older than
        `open_seconds` is considered lost and another one is allowed.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        now = self._clock()
        if self._trial_started is not None and now - self._trial_started < self.open_seconds:
            return False
        self._trial_started = now
        return True

    def success(self) -> None:
        self._failures = 0
        self._trial_started = None
        self._set(BreakerState.CLOSED)

    def failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._trial_started = None
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def abandon(self) -> None:
        """The allowed call ended without a verdict (cancelled): free the trial slot."""
        self._trial_started = None

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
