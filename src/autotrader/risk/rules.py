"""The risk engine's decisions as compiled pure functions.

These ``*_nb`` functions are the single implementation of sizing and entry checks: the
backtest kernel calls them per bar, and the paper/live robot calls the very same functions per
signal. They take plain numbers and arrays so numba can compile them and Python can call them.
"""

from __future__ import annotations

import math
from enum import IntEnum

import numpy as np
from numba import njit


class Denial(IntEnum):
    """Why the risk engine or the venue rules refused an entry (recorded as events)."""

    NONE = 0
    HALTED_DRAWDOWN = 1  # the kill switch: drawdown limit breached earlier
    DAILY_LOSS = 2  # daily loss limit hit; entries blocked until the next UTC day
    CORRELATION = 3  # entry would push exposure-weighted correlation above the limit
    BELOW_MIN_NOTIONAL = 4  # quantity after lot rounding below min qty / min notional
    INSUFFICIENT_FUNDS = 5  # not enough cash/margin for the minimum order
    KELLY_NO_EDGE = 6  # (informational) Kelly estimate <= 0; sized at the floor instead
    LOW_CONFIDENCE = 7  # signal confidence below the risk level's threshold
    SHORT_NOT_ALLOWED = 8  # short signal on a spot market (treated as exit)
    NO_PRICE = 9  # the symbol has no bar at the fill time (gap or not listed)


class EngineState(IntEnum):
    """Risk engine state: ACTIVE trades; HALTED refuses every entry (kill switch)."""

    ACTIVE = 0
    DAILY_BLOCKED = 1
    HALTED = 2


# Plain-int copies for compiled code (numba treats module-level ints as constants).
ACTIVE = int(EngineState.ACTIVE)
DAILY_BLOCKED = int(EngineState.DAILY_BLOCKED)
HALTED = int(EngineState.HALTED)
ALLOWED = int(Denial.NONE)
DENY_HALTED = int(Denial.HALTED_DRAWDOWN)
DENY_DAILY = int(Denial.DAILY_LOSS)
DENY_CORRELATION = int(Denial.CORRELATION)
DENY_MIN_NOTIONAL = int(Denial.BELOW_MIN_NOTIONAL)
DENY_FUNDS = int(Denial.INSUFFICIENT_FUNDS)
DENY_CONFIDENCE = int(Denial.LOW_CONFIDENCE)
DENY_NO_PRICE = int(Denial.NO_PRICE)

SIZING_FIXED = 0
SIZING_KELLY = 1
SIZING_VOLATILITY = 2


@njit(cache=True)
def kelly_fraction_nb(
    n_wins: int, n_losses: int, sum_win: float, sum_loss: float, kelly_share: float, cap: float, min_trades: int
) -> float:
    """Fractional Kelly position fraction from closed trades only, capped at ``cap``.

    ``sum_loss`` is the positive sum of losing trades' returns. Before ``min_trades`` trades,
    or when Kelly says there is no edge, the floor ``cap * 0.1`` is used so the strategy keeps
    producing the trades that would re-estimate it.
    """
    n = n_wins + n_losses
    floor = cap * 0.1
    if n < min_trades or n_wins == 0:
        return cap if n < min_trades else floor
    if n_losses == 0:
        return cap
    p = n_wins / n
    b = (sum_win / n_wins) / (sum_loss / n_losses)
    f = p - (1.0 - p) / b
    if f <= 0.0:
        return floor
    return min(cap, max(floor, f * kelly_share))


@njit(cache=True)
def volatility_fraction_nb(risk_per_trade: float, atr_pct: float, atr_multiple: float, cap: float) -> float:
    """Fraction of equity such that a stop ``atr_multiple`` ATRs away risks ``risk_per_trade``."""
    if not (atr_pct > 0.0) or math.isnan(atr_pct):
        return cap
    return min(cap, risk_per_trade / (atr_multiple * atr_pct))


@njit(cache=True)
def round_down_nb(qty: float, step: float) -> float:
    """Round a quantity down to the lot step (with a tiny tolerance for float noise)."""
    if step <= 0.0:
        return qty
    return math.floor(qty / step + 1e-9) * step


@njit(cache=True)
def round_to_tick_nb(price: float, tick: float) -> float:
    """Round a price to the nearest tick."""
    if tick <= 0.0:
        return price
    return round(price / tick) * tick


@njit(cache=True)
def venue_quantity_nb(qty: float, price: float, lot_step: float, min_qty: float, min_notional: float) -> float:
    """Quantity the venue would accept (rounded down to the lot), or 0.0 when below its minimums."""
    q = round_down_nb(qty, lot_step)
    if q < min_qty or q * price < min_notional or q <= 0.0:
        return 0.0
    return q


@njit(cache=True)
def pair_correlation_nb(close: np.ndarray, t: int, a: int, b: int, window: int) -> float:
    """Pearson correlation of two columns' bar log returns over ``window`` bars ending at ``t``.

    Bars where either symbol has no price are skipped; fewer than 10 shared returns gives NaN.
    """
    sx = 0.0
    sy = 0.0
    sxx = 0.0
    syy = 0.0
    sxy = 0.0
    n = 0
    start = max(1, t - window + 1)
    for i in range(start, t + 1):
        xa0 = close[i - 1, a]
        xa1 = close[i, a]
        xb0 = close[i - 1, b]
        xb1 = close[i, b]
        if xa0 > 0.0 and xa1 > 0.0 and xb0 > 0.0 and xb1 > 0.0:
            x = math.log(xa1 / xa0)
            y = math.log(xb1 / xb0)
            sx += x
            sy += y
            sxx += x * x
            syy += y * y
            sxy += x * y
            n += 1
    if n < 10:
        return np.nan
    cov = sxy - sx * sy / n
    vx = sxx - sx * sx / n
    vy = syy - sy * sy / n
    if vx <= 0.0 or vy <= 0.0:
        return np.nan
    return cov / math.sqrt(vx * vy)


@njit(cache=True)
def correlation_exposure_nb(
    close: np.ndarray, t: int, exposure: np.ndarray, candidate: int, candidate_exposure: float, window: int
) -> float:
    """Exposure-weighted average pairwise correlation if ``candidate`` gets ``candidate_exposure``.

    ``exposure`` holds signed notional per symbol (short < 0); a long/short pair counts with the
    opposite sign of its return correlation (it hedges). Fewer than two positions gives 0.0.
    """
    n_sym = exposure.shape[0]
    num = 0.0
    den = 0.0
    for i in range(n_sym):
        ei = candidate_exposure if i == candidate else exposure[i]
        if ei == 0.0:
            continue
        for j in range(i + 1, n_sym):
            ej = candidate_exposure if j == candidate else exposure[j]
            if ej == 0.0:
                continue
            c = pair_correlation_nb(close, t, i, j, window)
            if math.isnan(c):
                continue
            w = abs(ei) * abs(ej)
            sign = 1.0 if (ei > 0.0) == (ej > 0.0) else -1.0
            num += w * sign * c
            den += w
    if den == 0.0:
        return 0.0
    return num / den


@njit(cache=True)
def entry_denial_nb(
    state: int,
    confidence: float,
    min_confidence: float,
    correlation_after: float,
    correlation_limit: float,
) -> int:
    """The entry gate shared by all environments: returns a ``Denial`` code (0 = allowed)."""
    if state == HALTED:
        return DENY_HALTED
    if state == DAILY_BLOCKED:
        return DENY_DAILY
    if not (confidence >= min_confidence):
        return DENY_CONFIDENCE
    if correlation_after > correlation_limit:
        return DENY_CORRELATION
    return ALLOWED


@njit(cache=True)
def update_state_nb(
    state: int, equity: float, peak_equity: float, day_start_equity: float, daily_loss: float, max_drawdown: float
) -> int:
    """Next engine state after marking equity: HALTED is final; daily block lasts the UTC day."""
    if state == HALTED:
        return HALTED
    if peak_equity > 0.0 and equity <= peak_equity * (1.0 - max_drawdown):
        return HALTED
    if day_start_equity > 0.0 and equity <= day_start_equity * (1.0 - daily_loss):
        return DAILY_BLOCKED
    return state


@njit(cache=True)
def decide_entry_nb(
    state: int,
    confidence: float,
    min_confidence: float,
    close: np.ndarray,
    t: int,
    signed_exposure: np.ndarray,
    candidate: int,
    side: float,
    equity: float,
    leverage: float,
    position_size: float,
    correlation_limit: float,
    correlation_window: int,
    sizing: int,
    n_wins: int,
    n_losses: int,
    sum_win: float,
    sum_loss: float,
    kelly_share: float,
    kelly_min_trades: int,
    atr_pct: float,
    risk_per_trade: float,
    atr_multiple: float,
) -> tuple[int, float]:
    """THE entry decision, shared by the backtest kernel and the live robot.

    Given the engine state, the signal (``candidate`` symbol, ``side`` ±1, ``confidence``), the
    closes up to bar ``t`` (for correlation) and the current signed exposure per symbol, return
    ``(denial_code, equity_fraction)``: ``ALLOWED`` with the fraction of equity to commit, or a
    ``Denial`` code and 0.0.
    """
    corr = 0.0
    if correlation_limit < 1.0:
        candidate_exposure = side * position_size * equity * leverage
        corr = correlation_exposure_nb(close, t, signed_exposure, candidate, candidate_exposure, correlation_window)
    code = entry_denial_nb(state, confidence, min_confidence, corr, correlation_limit)
    if code != ALLOWED:
        return code, 0.0
    if sizing == SIZING_KELLY:
        return ALLOWED, kelly_fraction_nb(
            n_wins, n_losses, sum_win, sum_loss, kelly_share, position_size, kelly_min_trades
        )
    if sizing == SIZING_VOLATILITY:
        return ALLOWED, volatility_fraction_nb(risk_per_trade, atr_pct, atr_multiple, position_size)
    return ALLOWED, position_size


@njit(cache=True)
def entry_quantity_nb(
    fraction: float,
    decision_equity: float,
    leverage: float,
    fill_price: float,
    free_cash: float,
    fee_rate: float,
    lot_step: float,
    min_qty: float,
    min_notional: float,
    max_qty: float,
) -> tuple[float, int]:
    """Quantity to send for an allowed entry, shared by the backtest kernel and the live robot.

    Notional = fraction × equity at decision × leverage, limited by free cash (margin plus the
    fee must fit) and by ``max_qty`` (e.g. a share of bar volume; ``inf`` for none), then
    rounded down to the lot step. Returns ``(qty, ALLOWED)`` or ``(0.0, denial_code)``.
    """
    affordable = free_cash / (fill_price * (1.0 / leverage + fee_rate)) if free_cash > 0.0 else 0.0
    raw = min(fraction * decision_equity * leverage / fill_price, affordable, max_qty)
    q = venue_quantity_nb(raw, fill_price, lot_step, min_qty, min_notional)
    if q == 0.0:
        return 0.0, DENY_FUNDS if affordable * fill_price < min_notional else DENY_MIN_NOTIONAL
    return q, ALLOWED
