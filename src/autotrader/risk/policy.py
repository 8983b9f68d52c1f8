"""THE decision policy shared by the backtest kernel and the paper/live robot (compiled, pure).

Three rules live here and nowhere else:

* :func:`signal_action_nb` - a signal's direction against the position held becomes "exit the
  position", "consider an entry on this side", or a :class:`Skip` reason when nothing is done;
* :func:`roll_day_nb` and :func:`mark_risk_nb` (with :func:`kelly_update_nb`) - marking equity
  moves the day's start equity, the peak and the engine state (daily loss, drawdown halt, resume
  after a cooling-off) and reports the :class:`Transition` s made;
* :func:`exposure_vector_nb` - the signed exposure the correlation check sees: positions held and
  not being exited, plus entries decided but not filled yet.

The entry gate and sizing (``decide_entry_nb``, ``entry_quantity_nb``) are in
:mod:`autotrader.risk.rules`; every code's name, lower-cased (``.label``), is what reports,
the robot's decisions, ``--mode=status`` and the dashboard show.

The functions are inlined into the kernel's loop (``inline="always"``, one return point each, so
the loop is as fast as with the rules written in place); numba's cache of the kernel does not
notice edits here: delete the ``*.nbi``/``*.nbc`` files after changing them.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from autotrader.jit import njit
from autotrader.risk.rules import ACTIVE, DAILY_BLOCKED, HALTED

DAY_MS = 86_400_000


class Skip(IntEnum):
    """Why a signal leads to no order at all (not a risk denial: the position already says it)."""

    NONE = 0
    ALREADY_IN_POSITION = 1  # the signal's side is already held (no pyramiding)
    NO_POSITION = 2  # a flat signal with nothing to exit
    SHORT_NOT_ALLOWED = 3  # a short signal on a spot market with nothing to exit (spot is long-only)
    EXIT_PENDING = 4  # a flat/opposite signal while the position's exit is already on its way

    @property
    def label(self) -> str:
        """The name reports and decisions show."""
        return self.name.lower()


class Transition(IntEnum):
    """A risk-state change made by marking equity; the codes are the backtest's event codes."""

    DAILY_LOSS_HIT = 101  # the day's loss reached the limit: entries blocked until 00:00 UTC
    DRAWDOWN_HALT = 102  # the drawdown from the peak reached the limit: entries halted
    HALT_RESUMED = 103  # a halt's cooling-off ended: entries allowed again, the peak re-based
    DAILY_RESET = 104  # a new UTC day lifted the daily block

    @property
    def label(self) -> str:
        """The name reports and robot events show."""
        return self.name.lower()

    @property
    def bit(self) -> int:
        """This transition's bit in :func:`mark_risk_nb`'s ``transitions`` mask."""
        return 1 << (int(self) - 100)


# Plain-int copies for compiled code.
SKIP_NONE = int(Skip.NONE)
SKIP_ALREADY_IN_POSITION = int(Skip.ALREADY_IN_POSITION)
SKIP_NO_POSITION = int(Skip.NO_POSITION)
SKIP_SHORT_NOT_ALLOWED = int(Skip.SHORT_NOT_ALLOWED)
SKIP_EXIT_PENDING = int(Skip.EXIT_PENDING)
EVENT_DAILY_LOSS_HIT = int(Transition.DAILY_LOSS_HIT)
EVENT_DRAWDOWN_HALT = int(Transition.DRAWDOWN_HALT)
EVENT_HALT_RESUMED = int(Transition.HALT_RESUMED)
BIT_DAILY_LOSS_HIT = Transition.DAILY_LOSS_HIT.bit
BIT_DRAWDOWN_HALT = Transition.DRAWDOWN_HALT.bit
BIT_HALT_RESUMED = Transition.HALT_RESUMED.bit
BIT_DAILY_RESET = Transition.DAILY_RESET.bit


def transitions_of(mask: int) -> list[Transition]:
    """The transitions set in a :func:`mark_risk_nb` mask, in the order they happen."""
    order = (Transition.DAILY_RESET, Transition.HALT_RESUMED, Transition.DRAWDOWN_HALT, Transition.DAILY_LOSS_HIT)
    return [tr for tr in order if mask & tr.bit]


@njit(cache=True, inline="always")
def signal_action_nb(direction: float, held: float, exit_pending: bool, linear: bool) -> tuple[bool, int, int]:
    """THE signal-to-action rule: ``(exit, entry_side, skip)`` for one signal.

    ``direction`` is the signal (+1 long, -1 short, 0 flat); ``held`` the position (its sign is
    the side held: the signed quantity, or +1/-1/0). On spot a short means "be flat" (long-only).
    A flat or opposite signal exits the position (unless its exit is already pending); an entry
    is considered (``entry_side`` ±1) unless the wanted side is flat or already held (no
    pyramiding); a reversal is an exit and then an entry. ``skip`` is a :class:`Skip` code when
    neither an exit nor an entry results.
    """
    if direction > 0.0:
        want = 1
    elif direction < 0.0 and linear:
        want = -1
    else:
        want = 0
    held_side = 1 if held > 0 else (-1 if held < 0 else 0)
    do_exit = False  # one return point: inlined into the kernel's loop, it stays straight-line code
    entry_side = 0
    skip = SKIP_NONE
    if want == held_side:  # the usual case on a bar: nothing changes
        if want != 0:
            skip = SKIP_ALREADY_IN_POSITION
        elif direction < 0.0:
            skip = SKIP_SHORT_NOT_ALLOWED
        else:
            skip = SKIP_NO_POSITION
    else:
        entry_side = want
        if held_side != 0:
            if not exit_pending:
                do_exit = True
            elif want == 0:
                skip = SKIP_EXIT_PENDING
    return do_exit, entry_side, skip


@njit(cache=True, inline="always")
def roll_day_nb(
    state: int, now_ms: int, next_day_ms: int, previous_equity: float, day_start_equity: float
) -> tuple[int, float, int, bool]:
    """THE UTC-day roll, before marking: ``(state, day_start_equity, next_day_ms, daily_reset)``.

    At the first mark of a new UTC day (``now_ms >= next_day_ms``) the day starts at the previous
    mark's equity and a daily block is lifted (``daily_reset``); otherwise nothing changes (no
    integer division on ordinary marks).
    """
    reset = False  # one return point: inlined into the kernel's loop, it stays straight-line code
    if now_ms >= next_day_ms:
        next_day_ms = (now_ms // DAY_MS + 1) * DAY_MS
        day_start_equity = previous_equity
        if state == DAILY_BLOCKED:
            state = ACTIVE
            reset = True
    return state, day_start_equity, next_day_ms, reset


@njit(cache=True, inline="always")
def mark_risk_nb(
    state: int,
    equity: float,
    peak: float,
    day_start_equity: float,
    now_ms: int,
    halted_at_ms: int,
    daily_loss: float,
    max_drawdown: float,
    resume_after_ms: int,
) -> tuple[int, float, int, int]:
    """THE risk-state marking (after :func:`roll_day_nb`): ``(state, peak, halted_at_ms, transitions)``.

    The peak follows equity up. A drawdown halt is final unless ``resume_after_ms`` > 0: once it
    has lasted that long, entries resume with the peak re-based on this equity (an operator's
    reset after a cooling-off: the next halt needs a fresh drawdown). Then equity at or below
    ``peak × (1 - max_drawdown)`` halts (the kill switch), and equity at or below
    ``day_start_equity × (1 - daily_loss)`` blocks entries for the rest of the UTC day.
    ``transitions`` is a bit mask of :class:`Transition` bits.
    """
    transitions = 0  # one return point: inlined into the kernel's loop, it stays straight-line code
    if equity > peak:
        peak = equity
    if state == HALTED and resume_after_ms > 0 and now_ms >= halted_at_ms + resume_after_ms:
        state = ACTIVE
        peak = equity
        transitions = BIT_HALT_RESUMED
    if state != HALTED:
        if peak > 0.0 and equity <= peak * (1.0 - max_drawdown):
            state = HALTED
            halted_at_ms = now_ms
            transitions |= BIT_DRAWDOWN_HALT
        elif state == ACTIVE and day_start_equity > 0.0 and equity <= day_start_equity * (1.0 - daily_loss):
            state = DAILY_BLOCKED
            transitions |= BIT_DAILY_LOSS_HIT
    return state, peak, halted_at_ms, transitions


@njit(cache=True, inline="always")
def kelly_update_nb(
    trade_return: float, n_wins: int, n_losses: int, sum_win: float, sum_loss: float
) -> tuple[int, int, float, float]:
    """Kelly statistics after a closed trade returning ``trade_return`` (pnl / (qty × entry price)).

    A positive return is a win; anything else a loss, whose size adds to ``sum_loss`` as a
    positive number.
    """
    if trade_return > 0:
        n_wins += 1
        sum_win += trade_return
    else:
        n_losses += 1
        sum_loss -= trade_return
    return n_wins, n_losses, sum_win, sum_loss


@njit(cache=True, inline="always")
def exposure_vector_nb(
    qty: np.ndarray,
    mark: np.ndarray,
    exit_pending: np.ndarray,
    pending_side: np.ndarray,
    pending_fraction: np.ndarray,
    pending_equity: np.ndarray,
    leverage: float,
    out: np.ndarray,
) -> np.ndarray:
    """Signed exposure per symbol for the correlation check, written into ``out``.

    A position held and not being exited counts ``qty × mark`` (short < 0); otherwise an entry
    decided but not filled yet counts ``side × fraction × decision equity × leverage``;
    otherwise 0.
    """
    for k in range(qty.shape[0]):
        if qty[k] != 0.0 and not exit_pending[k]:
            out[k] = qty[k] * mark[k]
        elif pending_side[k] != 0.0:
            out[k] = pending_side[k] * pending_fraction[k] * pending_equity[k] * leverage
        else:
            out[k] = 0.0
    return out
