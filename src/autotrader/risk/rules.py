"""The risk engine's decisions as compiled pure functions.

These ``*_nb`` functions are the single implementation of sizing and entry checks: the
backtest kernel calls them per bar, and the paper/live robot calls the very same functions per
signal. They take plain numbers and arrays so numba can compile them and Python can call them.
"""

from __future__ import annotations

import math
from enum import IntEnum

import numpy as np

from autotrader.jit import njit


class Denial(IntEnum):
    """Why the risk engine or the venue rules refused an entry: THE denial vocabulary.

    ``label`` (the name, lower-cased) is what every environment shows: the backtest's events and
    reports, the robot's decisions, ``autotrade --mode=status`` and the dashboard.
    """

    NONE = 0
    HALTED_DRAWDOWN = 1  # the kill switch: drawdown limit breached earlier
    DAILY_LOSS = 2  # daily loss limit hit; entries blocked until the next UTC day
    CORRELATION = 3  # entry would push exposure-weighted correlation above the limit
    BELOW_MIN_NOTIONAL = 4  # quantity after lot rounding below min qty / min notional
    INSUFFICIENT_FUNDS = 5  # not enough cash/margin for the minimum order
    # 6 was KELLY_NO_EDGE: no edge under Kelly sizing is not a denial; the entry is sized at the floor
    LOW_CONFIDENCE = 7  # signal confidence below the risk level's threshold
    # 8 was SHORT_NOT_ALLOWED: a spot short is not a denial but the signal rule's ``policy.Skip``
    NO_PRICE = 9  # the symbol has no bar at the fill time (gap or not listed)

    @property
    def label(self) -> str:
        """The name reports, decisions, status and the dashboard show."""
        return self.name.lower()


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
def volatility_fraction_nb(risk_per_trade: float, daily_volatility: float, atr_multiple: float, cap: float) -> float:
    """Volatility target: the fraction of equity whose expected daily volatility is ``risk_per_trade``.

    ``fraction = risk_per_trade / daily_volatility`` (the symbol's expected daily volatility of
    returns, :func:`daily_volatility`), capped at ``cap`` (the position limit). A position
    sized so moves ``fraction × σ_daily = risk_per_trade`` of equity on a one-sigma day.
    Without a volatility estimate yet (warm-up), the cap. ``atr_multiple`` is not used (kept so
    the compiled signature stays the same for every caller).
    """
    if not (daily_volatility > 0.0) or math.isnan(daily_volatility):
        return cap
    return min(cap, risk_per_trade / daily_volatility)


def daily_volatility(close: np.ndarray, bar_ms: int, window_days: float = 14.0) -> np.ndarray:
    """Expected daily volatility per bar and symbol: the standard deviation (``ddof=1``) of the
    bar log returns over the last ``window_days`` days of bars ending at the bar (causal), times
    ``sqrt(bars per day)``. NaN until half the window has returns; gaps (NaN closes) are skipped.
    """
    c = np.asarray(close, dtype=np.float64)
    bars_per_day = 86_400_000.0 / float(bar_ms)
    window = max(2, round(window_days * bars_per_day))
    r = np.full_like(c, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[1:] = np.log(c[1:] / c[:-1])
    ok = np.isfinite(r)
    x = np.where(ok, r, 0.0)
    zeros = np.zeros((1, c.shape[1]))
    n = np.concatenate((zeros, np.cumsum(ok, axis=0)))
    s1 = np.concatenate((zeros, np.cumsum(x, axis=0)))
    s2 = np.concatenate((zeros, np.cumsum(x * x, axis=0)))
    hi = np.arange(1, c.shape[0] + 1)
    lo = np.maximum(hi - window, 0)
    cnt = n[hi] - n[lo]
    m1 = s1[hi] - s1[lo]
    m2 = s2[hi] - s2[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (m2 - m1 * m1 / cnt) / (cnt - 1)
    out = np.sqrt(np.maximum(var, 0.0)) * math.sqrt(bars_per_day)
    out[cnt < max(2, window // 2)] = np.nan
    return out


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


@njit(cache=True, inline="always")
def trailing_stop_level_nb(stop: float, trail_ref: float, side: int, trailing: float, tick: float) -> float:
    """THE protective stop under a trailing stop, as it rests at the venue: ``stop`` (the level so
    far, 0.0 = none) tightened by ``trail_ref`` (the best price since the entry) x (1 -/+ ``trailing``),
    rounded to the nearest tick (``round_to_tick_nb``, as every order price). ``trailing`` 0: ``stop``.

    The robot moves its resting stop to this level and the backtest kernel tests bars against it,
    so both see the same price to the tick.
    """
    level = stop
    if trailing > 0.0:
        if side > 0:
            level = max(stop, round_to_tick_nb(trail_ref * (1.0 - trailing), tick))
        else:
            trail = round_to_tick_nb(trail_ref * (1.0 + trailing), tick)
            level = trail if stop == 0.0 else min(stop, trail)
    return level


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
def correlation_size_cap_nb(
    close: np.ndarray,
    t: int,
    exposure: np.ndarray,
    candidate: int,
    side: float,
    full_exposure: float,
    correlation_limit: float,
    window: int,
) -> float:
    """Largest share of a full-size position ``candidate`` may take so the correlation limit holds.

    The measure is the exposure-weighted average pairwise correlation of the book with each
    position's exposure counted as a share of a full-size position (``full_exposure``: the
    position limit × equity × leverage; the unused share of a slot is cash, uncorrelated):
    ``ρ̄ = Σ_{i<j} f_i f_j s_ij c_ij / #pairs``, ``s_ij = -1`` for a long/short pair (a hedge).
    With every position at full size it is the plain average pairwise correlation, the old
    rule; a smaller position adds less correlated risk. ``ρ̄`` is linear in the candidate's
    share ``f``, so ``f ≤ (L · #pairs − Σ_existing) / Σ_j f_j s_j c_j``.

    Returns ``inf`` when any size keeps the limit (no other position, the candidate lowers or
    keeps ``ρ̄`` within the limit), a share in ``(0, inf)`` when it must be sized down, and
    ``0.0`` when no size keeps the limit.
    """
    n_sym = exposure.shape[0]
    if not (full_exposure > 0.0):
        return 0.0
    existing = 0.0
    pairs = 0
    with_candidate = 0.0
    for i in range(n_sym):
        if i == candidate or exposure[i] == 0.0:
            continue
        fi = abs(exposure[i]) / full_exposure
        si = 1.0 if exposure[i] > 0.0 else -1.0
        c = pair_correlation_nb(close, t, i, candidate, window)
        if not math.isnan(c):
            with_candidate += fi * si * side * c
            pairs += 1
        for j in range(i + 1, n_sym):
            if j == candidate or exposure[j] == 0.0:
                continue
            cij = pair_correlation_nb(close, t, i, j, window)
            if math.isnan(cij):
                continue
            sj = 1.0 if exposure[j] > 0.0 else -1.0
            existing += fi * (abs(exposure[j]) / full_exposure) * si * sj * cij
            pairs += 1
    if pairs == 0:
        return np.inf
    room = correlation_limit * pairs - existing
    if with_candidate <= 0.0:
        return np.inf if room >= 0.0 else 0.0
    if room <= 0.0:
        return 0.0
    return room / with_candidate


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

    Sizing (fixed, Kelly or the volatility target, each capped by ``position_size``) comes
    first; then correlation is treated as a risk to size, not a wall: the fraction is cut to
    the largest one that keeps the correlation measure of :func:`correlation_size_cap_nb`
    within ``correlation_limit``, and the entry is refused (``CORRELATION``) only when no size
    would. An entry cut so small that the venue's minimum order is not met is refused later by
    :func:`entry_quantity_nb`. ``atr_pct`` carries the expected daily volatility for the
    volatility target (:func:`daily_volatility`).
    """
    code = entry_denial_nb(state, confidence, min_confidence, 0.0, 1.0)
    if code != ALLOWED:
        return code, 0.0
    if sizing == SIZING_KELLY:
        fraction = kelly_fraction_nb(n_wins, n_losses, sum_win, sum_loss, kelly_share, position_size, kelly_min_trades)
    elif sizing == SIZING_VOLATILITY:
        fraction = volatility_fraction_nb(risk_per_trade, atr_pct, atr_multiple, position_size)
    else:
        fraction = position_size
    if correlation_limit < 1.0:
        full = position_size * equity * leverage
        share = correlation_size_cap_nb(
            close, t, signed_exposure, candidate, side, full, correlation_limit, correlation_window
        )
        if not (share > 0.0):
            return DENY_CORRELATION, 0.0
        fraction = min(fraction, share * position_size)
    return ALLOWED, fraction


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
