"""The prefetch policy alone, on a clock of the test's own: no worker, no database."""

from __future__ import annotations

import pytest

from django_qtasks.worker.prefetch import PREFETCH_PER_SLOT, PREFETCH_WINDOW, PrefetchPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_fixed_prefetch_claims_that_many_ahead_whatever_the_runs(clock):
    policy = PrefetchPolicy(4, 7, clock)
    assert (policy.auto, policy.first_unclaimed) == (False, 4 + 7)
    assert policy.ahead([]) == 7
    policy.ended(3600.0)
    assert policy.ahead([clock.now - 3600]) == 7
    assert policy.held_too_long(False, 0) is False


def test_auto_claims_nothing_ahead_until_a_run_has_ended(clock):
    policy = PrefetchPolicy(4, "auto", clock)
    assert (policy.auto, policy.most, policy.first_unclaimed) == (True, 4 * PREFETCH_PER_SLOT, 4)
    assert policy.ahead([]) == 0


def test_auto_claims_ahead_what_recent_runs_say_starts_within_the_window(clock):
    policy = PrefetchPolicy(4, "auto", clock)
    policy.ended(PREFETCH_WINDOW / 5)  # five runs a window, in each of four slots
    assert policy.ahead([clock.now]) == 20
    policy = PrefetchPolicy(4, "auto", clock)
    policy.ended(PREFETCH_WINDOW / 1000)  # short runs: capped at PREFETCH_PER_SLOT a slot
    assert policy.ahead([]) == 4 * PREFETCH_PER_SLOT
    policy = PrefetchPolicy(4, "auto", clock)
    policy.ended(10 * PREFETCH_WINDOW)  # runs longer than the window: none ahead
    assert policy.ahead([]) == 0


def test_auto_claims_nothing_ahead_while_a_run_is_long(clock):
    policy = PrefetchPolicy(2, "auto", clock)
    policy.ended(PREFETCH_WINDOW / 10)
    started = clock.now
    assert policy.ahead([started]) == 20
    clock.now += 2 * PREFETCH_WINDOW
    assert policy.ahead([started]) == 0, "what it holds would wait behind that run"
    assert policy.ahead([]) == 20, "once it ended, short runs again"


def test_the_run_time_is_a_moving_average(clock):
    policy = PrefetchPolicy(1, "auto", clock)
    policy.ended(1.0)
    assert policy.run_seconds == 1.0
    policy.ended(2.0)
    assert policy.run_seconds == pytest.approx(1.2)
    for _ in range(50):
        policy.ended(0.01)
    assert policy.run_seconds == pytest.approx(0.01, abs=1e-4)


def test_what_is_held_goes_back_a_window_after_the_last_start(clock):
    policy = PrefetchPolicy(2, "auto", clock)
    policy.started()
    assert policy.held_too_long(True, 0) is False
    clock.now += PREFETCH_WINDOW / 2
    policy.started()  # a start moves the deadline
    clock.now += PREFETCH_WINDOW * 0.9
    assert policy.held_too_long(True, 0) is False
    clock.now += PREFETCH_WINDOW * 0.2
    assert policy.held_too_long(True, 0) is True


def test_after_an_idle_spell_what_is_held_gets_a_whole_window(clock):
    policy = PrefetchPolicy(2, "auto", clock)
    policy.started()
    clock.now += 3600  # idle for an hour, then tasks come and are held
    assert policy.held_too_long(True, 0) is False
    assert policy.hand_back_at() == clock.now + PREFETCH_WINDOW
    clock.now += PREFETCH_WINDOW * 1.1
    assert policy.held_too_long(True, 0) is True
    # Nothing held any more: the next holding starts its own window.
    assert policy.held_too_long(False, 0) is False
    clock.now += 3600
    assert policy.held_too_long(True, 0) is False


def test_nothing_held_goes_back_while_a_slot_is_free(clock):
    """A free slot claims what is held: giving it back would only have the broker
    hand the same messages straight back."""
    policy = PrefetchPolicy(2, "auto", clock)
    policy.started()
    clock.now += PREFETCH_WINDOW * 10
    assert policy.held_too_long(True, 1) is False
    # The slots busy again: what is held from now on gets its own window.
    assert policy.held_too_long(True, 0) is False
    clock.now += PREFETCH_WINDOW * 1.1
    assert policy.held_too_long(True, 0) is True


def test_after_a_hand_back_what_is_held_next_gets_its_own_window(clock):
    policy = PrefetchPolicy(2, "auto", clock)
    policy.started()
    assert policy.held_too_long(True, 0) is False
    clock.now += PREFETCH_WINDOW * 1.1
    assert policy.held_too_long(True, 0) is True
    # Held again at once (messages that came meanwhile): not back at once.
    assert policy.held_too_long(True, 0) is False
    assert policy.hand_back_at() == clock.now + PREFETCH_WINDOW
    clock.now += PREFETCH_WINDOW * 1.1
    assert policy.held_too_long(True, 0) is True
