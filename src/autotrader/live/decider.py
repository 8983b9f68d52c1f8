"""The robot's decision for one signal, pure: no I/O, no awaits.

``Robot.on_signal`` fetches prices, asks :func:`decide_action` what the signal means for the
position held (the shared ``risk.policy.signal_action_nb``), and for an entry gathers the book's
numbers into :class:`EntryInputs` and asks :func:`decide_entry` (the shared ``decide_entry_nb``
and ``entry_quantity_nb``, the backtest kernel's functions). It then persists and sends what was
decided. Every reason a signal is not acted on is typed: a risk :class:`Denial`, a signal-rule
:class:`Skip`, or one of the robot's own :class:`Pause` reasons; ``label`` is what is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from autotrader.domain.instrument import Instrument
from autotrader.live.risk_state import RiskState
from autotrader.risk.limits import RiskLimits
from autotrader.risk.policy import Skip, signal_action_nb
from autotrader.risk.rules import ALLOWED, Denial, decide_entry_nb, entry_quantity_nb


class Pause(Enum):
    """Why the robot acts on no signal, or on no entry, right now (its own reasons, not risk denials)."""

    UNKNOWN_SYMBOL = "unknown_symbol"  # the signal's symbol is not traded by this robot
    EXCHANGE_UNAVAILABLE = "exchange_unavailable"  # the venue could not be asked for a price or an order
    ORDER_PENDING = "order_pending"  # an earlier order of the symbol is still open
    KILL_SWITCH = "kill_switch"  # the operator paused entries
    RECONCILIATION_FAILED = "reconciliation_failed"  # the book and the venue disagree: entries paused
    OUTSIDE_TRADING_HOURS = "outside_trading_hours"  # the configured trading hours exclude now

    @property
    def label(self) -> str:
        """The name decisions and the dashboard show."""
        return self.value


Reason = Denial | Skip | Pause


@dataclass(frozen=True, slots=True)
class Action:
    """What a signal means for the position: exit it, consider an entry (side ±1), or skip."""

    exit: bool
    entry_side: int
    skip: Skip | None


@dataclass(frozen=True, slots=True)
class Settings:
    """The robot's fixed decision settings."""

    limits: RiskLimits
    linear: bool
    leverage: float
    fee_rate: float
    slippage: float  # a fraction (2 bps = 0.0002)
    sizing: int  # ``risk.rules.SIZING_*``


@dataclass(frozen=True, slots=True)
class EntryInputs:
    """The book and market numbers an entry is decided on."""

    price: float  # the symbol's price now
    equity: float  # marked equity at the decision
    free_cash: float
    close: np.ndarray  # closes (bars × symbols) up to the latest bar, for the correlation check
    exposure: np.ndarray  # signed exposure per symbol (``risk.policy.exposure_vector_nb``)
    column: int  # the symbol's column in ``close``
    daily_volatility: float  # expected daily volatility (volatility sizing), else 0.0
    instrument: Instrument


@dataclass(frozen=True, slots=True)
class EntryPlan:
    """An allowed entry: side, equity fraction, venue quantity and the price it assumes."""

    side: int
    fraction: float
    qty: float
    decision_equity: float
    fill_price: float


def decide_action(direction: int, held_side: int, exit_pending: bool, linear: bool) -> Action:
    """The signal-to-action rule (``signal_action_nb``) for the robot, typed."""
    do_exit, side, skip = signal_action_nb(float(direction), held_side, exit_pending, linear)
    code = Skip(int(skip))
    return Action(bool(do_exit), int(side), None if code is Skip.NONE else code)


def decide_entry(
    settings: Settings, side: int, confidence: float, pause: Pause | None, risk: RiskState, inputs: EntryInputs
) -> EntryPlan | Reason:
    """An entry on ``side`` through the shared risk gate, sizing and venue quantity; or why not."""
    if pause is not None:
        return pause
    lim = settings.limits
    close = inputs.close
    code, fraction = decide_entry_nb(
        risk.state,
        confidence,
        lim.min_confidence,
        close,
        close.shape[0] - 1,
        inputs.exposure,
        inputs.column,
        float(side),
        inputs.equity,
        settings.leverage,
        lim.position_size,
        lim.correlation,
        lim.correlation_window_bars,
        settings.sizing,
        risk.n_wins,
        risk.n_losses,
        risk.sum_win,
        risk.sum_loss,
        lim.kelly_fraction,
        lim.kelly_min_trades,
        inputs.daily_volatility,
        lim.risk_per_trade,
        lim.atr_multiple,
    )
    if code != ALLOWED:
        return Denial(int(code))
    inst = inputs.instrument
    fill = inputs.price * (1.0 + settings.slippage) if side > 0 else inputs.price * (1.0 - settings.slippage)
    qty, code = entry_quantity_nb(
        fraction,
        inputs.equity,
        settings.leverage,
        fill,
        inputs.free_cash,
        settings.fee_rate,
        float(inst.lot_step),
        float(inst.min_qty),
        float(inst.min_notional),
        np.inf,
    )
    if code != ALLOWED:
        return Denial(int(code))
    return EntryPlan(side, float(fraction), float(qty), inputs.equity, fill)


__all__ = ["Action", "EntryInputs", "EntryPlan", "Pause", "Reason", "Settings", "decide_action", "decide_entry"]
