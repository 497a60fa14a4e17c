import pytest

from auditor.dynamo.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(threshold=3, open_seconds=10.0):
    clock, seen = Clock(), []
    return CircuitBreaker(threshold, open_seconds, clock=clock, on_change=seen.append), clock, seen


def test_opens_after_threshold_consecutive_failures():
    b, _, seen = make()
    b.failure(), b.failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    b.success()  # a success resets the count: failures must be consecutive
    b.failure(), b.failure()
    assert b.state is BreakerState.CLOSED
    b.failure()
    assert b.state is BreakerState.OPEN and not b.allow()
    assert seen == [BreakerState.OPEN]


def test_half_open_after_period_lets_one_trial_through():
    b, clock, _ = make()
    for _ in range(3):
        b.failure()
    clock.now += 9.99
    assert not b.allow()
    clock.now += 0.01
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()        # the trial
    assert not b.allow()    # everyone else still fails fast
    assert not b.allow()


def test_trial_success_closes():
    b, clock, seen = make()
    for _ in range(3):
        b.failure()
    clock.now += 10
    assert b.allow()
    b.success()
    assert b.state is BreakerState.CLOSED and b.allow() and b.allow()
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    b.failure(), b.failure()  # the count starts again from zero
    assert b.state is BreakerState.CLOSED


def test_trial_failure_reopens_for_a_full_period():
    b, clock, seen = make()
    for _ in range(3):
        b.failure()
    clock.now += 10
    assert b.allow()
    clock.now += 1
    b.failure()  # one failure is enough in half-open
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.now += 9.99
    assert not b.allow()
    clock.now += 0.01
    assert b.allow()
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN, BreakerState.HALF_OPEN]


def test_abandoned_trial_frees_the_slot():
    b, clock, _ = make()
    for _ in range(3):
        b.failure()
    clock.now += 10
    assert b.allow() and not b.allow()
    b.abandon()  # the trial's caller was cancelled
    assert b.state is BreakerState.HALF_OPEN and b.allow()


def test_lost_trial_times_out():
    b, clock, _ = make()
    for _ in range(3):
        b.failure()
    clock.now += 10
    assert b.allow()
    clock.now += 9
    assert not b.allow()
    clock.now += 1  # the trial never reported back within a period: try another
    assert b.allow()


def test_open_state_is_reported_without_a_call():
    b, clock, seen = make(threshold=1, open_seconds=1)
    b.failure()
    clock.now += 1
    assert b.state is BreakerState.HALF_OPEN  # the metric can read it directly
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN]


def test_rejects_bad_settings():
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1)
    with pytest.raises(ValueError):
        CircuitBreaker(1, 0)
