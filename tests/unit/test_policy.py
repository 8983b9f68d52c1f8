"""The shared decision policy: the signal-to-action rule, risk-state marking, Kelly update, exposure, names."""

from __future__ import annotations

import numpy as np
import pytest

from autotrader.analytics.report_data import STATE_EVENTS
from autotrader.backtest.runner import EVENT_NAMES
from autotrader.live.decider import Pause, decide_action
from autotrader.risk import policy
from autotrader.risk.policy import Skip, Transition, transitions_of
from autotrader.risk.rules import ACTIVE, DAILY_BLOCKED, HALTED, Denial

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC

# (direction, held side, exit pending, linear) -> (exit, entry side, skip)
RULE = [
    ((1.0, 0, False, False), (False, 1, Skip.NONE)),  # flat, long signal: enter long
    ((1.0, 1, False, False), (False, 0, Skip.ALREADY_IN_POSITION)),  # no pyramiding
    ((0.0, 1, False, False), (True, 0, Skip.NONE)),  # flat signal: exit
    ((0.0, 0, False, False), (False, 0, Skip.NO_POSITION)),
    ((-1.0, 1, False, False), (True, 0, Skip.NONE)),  # spot: a short means "be flat"
    ((-1.0, 0, False, False), (False, 0, Skip.SHORT_NOT_ALLOWED)),
    ((-1.0, 1, False, True), (True, -1, Skip.NONE)),  # linear reversal: exit, then enter short
    ((-1.0, 0, False, True), (False, -1, Skip.NONE)),
    ((1.0, -1, True, True), (False, 1, Skip.NONE)),  # exit already on its way: only the entry
    ((0.0, 1, True, False), (False, 0, Skip.EXIT_PENDING)),
]


@pytest.mark.parametrize(("given", "expected"), RULE, ids=[f"rule{i}" for i in range(len(RULE))])
def test_signal_action_rule(given, expected) -> None:
    do_exit, side, skip = policy.signal_action_nb(*given)
    assert (bool(do_exit), int(side), Skip(int(skip))) == expected
    action = decide_action(int(given[0]), *given[1:])  # the robot's typed view of the same rule
    assert (action.exit, action.entry_side, action.skip or Skip.NONE) == expected


def _mark(state, equity, peak, day_start, now, halted_at=0, resume=0):
    return policy.mark_risk_nb(state, equity, peak, day_start, now, halted_at, 0.05, 0.15, resume)


def test_marking_blocks_the_day_on_a_daily_loss_and_the_next_utc_day_lifts_it() -> None:
    state, day_start, next_day, reset = policy.roll_day_nb(ACTIVE, T0 + HOUR, T0 + DAY, 1000.0, 1000.0)
    assert (state, day_start, next_day, reset) == (ACTIVE, 1000.0, T0 + DAY, False)  # the same day
    state, peak, _, moves = _mark(state, 949.0, 1000.0, day_start, T0 + HOUR)
    assert (state, peak) == (DAILY_BLOCKED, 1000.0)
    assert transitions_of(moves) == [Transition.DAILY_LOSS_HIT]
    state, day_start, next_day, reset = policy.roll_day_nb(state, T0 + DAY, next_day, 949.0, day_start)
    assert (state, day_start, next_day, reset) == (ACTIVE, 949.0, T0 + 2 * DAY, True)  # from the previous mark
    assert _mark(state, 950.0, peak, day_start, T0 + DAY) == (ACTIVE, 1000.0, 0, 0)


def test_marking_halts_on_drawdown_and_resumes_after_the_cooling_off_with_the_peak_rebased() -> None:
    state, peak, halted_at, moves = _mark(ACTIVE, 1010.0, 1200.0, 1190.0, T0 + HOUR)
    assert (state, peak, halted_at) == (HALTED, 1200.0, T0 + HOUR)
    assert transitions_of(moves) == [Transition.DRAWDOWN_HALT]
    assert _mark(state, 1000.0, peak, 1000.0, T0 + 2 * HOUR - 1, halted_at, HOUR)[0] == HALTED  # cooling off
    state, peak, _, moves = _mark(state, 1000.0, peak, 1000.0, T0 + 2 * HOUR, halted_at, HOUR)
    assert (state, peak) == (ACTIVE, 1000.0)
    assert transitions_of(moves) == [Transition.HALT_RESUMED]
    state, peak, _, moves = _mark(HALTED, 900.0, 1200.0, 1000.0, T0 + 2 * HOUR, halted_at, HOUR)
    assert (state, peak) == (DAILY_BLOCKED, 900.0)  # resumed, but today's loss is beyond the limit
    assert transitions_of(moves) == [Transition.HALT_RESUMED, Transition.DAILY_LOSS_HIT]
    assert _mark(HALTED, 1000.0, 1200.0, 1000.0, T0 + 9 * DAY, T0, 0)[0] == HALTED  # no cooling-off: for good


def test_kelly_statistics_count_wins_and_positive_loss_sums() -> None:
    assert policy.kelly_update_nb(0.02, 1, 1, 0.01, 0.03) == (2, 1, pytest.approx(0.03), 0.03)
    assert policy.kelly_update_nb(-0.01, 1, 1, 0.01, 0.03) == (1, 2, 0.01, pytest.approx(0.04))
    assert policy.kelly_update_nb(0.0, 0, 0, 0.0, 0.0) == (0, 1, 0.0, 0.0)  # break-even is a loss


def test_exposure_counts_held_positions_not_being_exited_and_pending_entries() -> None:
    qty = np.array([2.0, -1.0, 3.0, 0.0])
    mark = np.array([10.0, 20.0, 30.0, 40.0])
    exiting = np.array([False, False, True, False])
    side = np.array([0.0, 0.0, 1.0, -1.0])
    fraction = np.array([0.0, 0.0, 0.1, 0.2])
    equity = np.array([0.0, 0.0, 1000.0, 1000.0])
    out = policy.exposure_vector_nb(qty, mark, exiting, side, fraction, equity, 2.0, np.empty(4))
    assert out.tolist() == [20.0, -20.0, 200.0, -400.0]


def test_one_vocabulary_of_denials_and_state_changes() -> None:
    assert EVENT_NAMES[int(Denial.HALTED_DRAWDOWN)] == "halted_drawdown"
    assert EVENT_NAMES[int(Denial.DAILY_LOSS)] == "daily_loss"
    assert EVENT_NAMES[int(Denial.CORRELATION)] == "correlation"
    assert {EVENT_NAMES[int(t)] for t in Transition} == STATE_EVENTS  # reports tell state changes from denials
    labels = [x.label for x in (*Denial, *Skip, *Transition, *Pause) if x.name != "NONE"]
    assert len(labels) == len(set(labels))  # no name means two things
