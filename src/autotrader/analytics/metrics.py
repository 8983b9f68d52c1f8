"""Performance metrics of an equity curve and its trades, in pure numpy.

Conventions
-----------
* **Time** is UTC epoch milliseconds in ``int64`` arrays (``ts_ms``). A *day* is a UTC calendar
  day; it is labelled by the midnight that starts it (``day_ts_ms``).
* **Daily equity** (:func:`daily_equity`) is the last equity value of each UTC day. Calendar days
  without an observation carry the previous day's value forward (a 0 % day). The series opens
  with ``equity[0]`` labelled one day before the first day, i.e. the starting equity is treated
  as the close of the day before the run, so a run over ``N`` calendar days gives ``N + 1``
  points and ``N`` daily returns whose compounded product equals ``equity[-1] / equity[0]``
  (quantstats makes the same choice with its "phantom baseline" for drawdowns).
* **Daily returns** are simple returns ``r_t = E_t / E_{t-1} - 1`` of the daily equity.
* **Risk-free rate** is 0; there is no excess-return adjustment anywhere.
* **Year** = 365 days: crypto trades every day, so ``periods_per_year = 365`` for annualisation
  and CAGR uses calendar days / 365.
* **Standard deviation** is the sample standard deviation, ``ddof = 1``; quantstats
  (``Series.std()``, ``returns.std(ddof=1)``) and empyrical (``nanstd(ddof=1)``) both use it.

Definitions (``r`` = daily returns, ``n = len(r)``, ``P = 365``)
-----------------------------------------------------------------
* total return      ``E_last / E_first - 1``.
* CAGR              ``(E_last / E_first) ** (1 / years) - 1``, ``years = (ts_last - ts_first) / 365 d``.
                    On a gap-free daily series ``years = n / 365``: quantstats' ``cagr(periods=365)``
                    and empyrical's ``cagr(annualization=365)``.
* annual volatility ``std(r, ddof=1) * sqrt(P)``.
* Sharpe            ``mean(r) / std(r, ddof=1) * sqrt(P)``.
* Sortino           ``mean(r) / DD * sqrt(P)`` with downside deviation
                    ``DD = sqrt(sum(min(r, 0) ** 2) / n)`` — every day counts in ``n``, gains count
                    as 0 (Red Rock Capital's "Sortino: a sharper ratio"; quantstats ``sortino`` and
                    empyrical ``downside_risk`` with required return 0).
* max drawdown      ``min(E / running_max(E) - 1)`` on the full-resolution equity, a fraction ≤ 0
                    (``-0.25`` is a 25 % fall from the peak).
* Calmar            ``CAGR / |max drawdown|``.
* drawdown duration time from a peak to the first later bar at or above it (or to the last bar
                    when the curve has not recovered), in bars, or in ms when ``ts_ms`` is given.
* VaR (historical)  the ``1 - confidence`` quantile of ``r`` with linear interpolation
                    (``numpy.quantile`` default; empyrical ``value_at_risk``). It is a *return*, so a
                    loss is negative. quantstats' ``value_at_risk`` is the parametric (normal) VaR
                    and is a different estimator.
* CVaR / expected shortfall (historical)
                    ``mean(r[r <= VaR])`` (quantstats ``conditional_value_at_risk(method=
                    "historical")``). Also a return, ≤ VaR.
* stability score   ``100 * R²`` of the least-squares line through ``(t, log E)``: 100 for a
                    perfectly exponential curve, near 0 for a curve with no trend.

Trade statistics (``p`` = net P&L per closed trade, after fees)
----------------------------------------------------------------
A trade is a *win* if ``p > 0``, a *loss* if ``p < 0``; a break-even trade (``p == 0``) counts in
the number of trades (so it lowers the win rate) but is neither a win nor a loss, and it ends a
winning or losing streak.

* win rate           ``#wins / #trades``.
* profit factor      ``sum(wins) / |sum(losses)|``; ``inf`` when there are wins and no losses.
* average trade      ``mean(p)``; average win ``mean(wins)``; average loss ``mean(losses)`` (< 0).
* win/loss ratio     ``average win / |average loss|`` (payoff ratio).
* largest win / loss ``max(wins)`` / ``min(losses)`` (the loss is negative).
* expectancy         ``P(win) * average win + P(loss) * average loss``, money per trade; with
                     break-evens at 0 this equals the average trade.
* expectancy ratio   ``expectancy / |average loss|``: expected profit per unit of average loss
                     (freqtrade's ``expectancy_ratio`` when there are no break-even trades).

Edge cases
----------
Nothing here raises on thin data: a statistic that is undefined is ``nan``, never an exception
— empty input; a single point (a return needs two, a standard deviation two returns, a fitted
line three points); zero dispersion (every return equal: Sharpe); no negative day (Sortino; as
quantstats, where empyrical would give ``inf``); no drawdown (Calmar); a flat equity (stability);
no trades (win rate, averages, expectancy, profit factor); no wins or no losses (their averages
and the ratios built on them). Profit factor is ``float('inf')`` with wins and no losses. Streak
lengths are ``0`` with no trades. Malformed input — arrays of different length, NaN or infinite
values, decreasing timestamps, non-positive equity — raises ``DataError``: that is a bug
upstream, not thin data.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autotrader.domain.errors import DataError

__all__ = [
    "DAYS_PER_YEAR",
    "MS_PER_DAY",
    "annual_volatility",
    "average_loss",
    "average_trade",
    "average_win",
    "cagr",
    "calmar_ratio",
    "daily_equity",
    "daily_returns",
    "drawdown_series",
    "expectancy",
    "expectancy_ratio",
    "expected_shortfall",
    "largest_loss",
    "largest_win",
    "max_consecutive_losses",
    "max_consecutive_wins",
    "max_drawdown",
    "max_drawdown_duration",
    "monthly_returns",
    "profit_factor",
    "rolling_sharpe",
    "sharpe_ratio",
    "sortino_ratio",
    "stability_score",
    "summary",
    "total_return",
    "trade_stats",
    "value_at_risk",
    "win_loss_ratio",
    "win_rate",
    "yearly_returns",
]

MS_PER_DAY: Final = 86_400_000
DAYS_PER_YEAR: Final = 365
_MS_PER_YEAR: Final = DAYS_PER_YEAR * MS_PER_DAY
_NAN: Final = float("nan")

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# --------------------------------------------------------------------------- input checks


def _floats(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values")
    return arr


def _equity(values: ArrayLike) -> FloatArray:
    arr = _floats(values, "equity")
    if arr.size and np.min(arr) <= 0.0:
        raise DataError("equity must be positive; a non-positive equity has no returns")
    return arr


def _timestamps(ts_ms: ArrayLike, size: int) -> IntArray:
    ts = np.asarray(ts_ms)
    if ts.ndim != 1 or ts.size != size:
        raise DataError(f"ts_ms must be one-dimensional with {size} values, got shape {ts.shape}")
    if ts.size and not np.issubdtype(ts.dtype, np.integer):
        raise DataError(f"ts_ms must be integer epoch milliseconds, got dtype {ts.dtype}")
    ts = ts.astype(np.int64, copy=False)
    if ts.size > 1 and np.any(np.diff(ts) < 0):
        raise DataError("ts_ms must be non-decreasing")
    return ts


# --------------------------------------------------------------------------- equity → daily


def daily_equity(ts_ms: ArrayLike, equity: ArrayLike) -> tuple[IntArray, FloatArray]:
    """Resample an equity curve to one value per UTC day: the last value of each day.

    Returns ``(day_ts_ms, day_equity)``: ``day_ts_ms`` is the UTC midnight starting each day.
    Missing calendar days repeat the previous value. The first point is the opening equity
    ``equity[0]`` labelled one day before the first day, so ``N`` days give ``N`` returns.
    Empty input gives empty arrays.
    """
    eq = _equity(equity)
    ts = _timestamps(ts_ms, eq.size)
    if eq.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    day = ts // MS_PER_DAY
    last_of_day = np.flatnonzero(np.append(day[1:] != day[:-1], True))
    seen_days, seen_equity = day[last_of_day], eq[last_of_day]
    all_days = np.arange(seen_days[0], seen_days[-1] + 1, dtype=np.int64)
    filled = seen_equity[np.searchsorted(seen_days, all_days, side="right") - 1]
    day_ts = np.concatenate(([all_days[0] - 1], all_days)) * MS_PER_DAY
    return day_ts, np.concatenate(([eq[0]], filled))


def daily_returns(day_equity: ArrayLike) -> FloatArray:
    """Simple returns ``E_t / E_{t-1} - 1`` of consecutive values (one fewer than the input)."""
    eq = _equity(day_equity)
    if eq.size < 2:
        return np.empty(0, dtype=np.float64)
    return eq[1:] / eq[:-1] - 1.0


# --------------------------------------------------------------------------- return metrics


def total_return(equity: ArrayLike) -> float:
    """``equity[-1] / equity[0] - 1``; NaN when empty."""
    eq = _equity(equity)
    if eq.size == 0:
        return _NAN
    return float(eq[-1] / eq[0] - 1.0)


def cagr(ts_ms: ArrayLike, equity: ArrayLike) -> float:
    """Compound annual growth rate over the calendar span of ``ts_ms`` (365-day years).

    Pass the daily series from :func:`daily_equity`. NaN for fewer than two points or a zero span.
    """
    eq = _equity(equity)
    ts = _timestamps(ts_ms, eq.size)
    if eq.size < 2 or ts[-1] == ts[0]:
        return _NAN
    years = float(ts[-1] - ts[0]) / _MS_PER_YEAR
    return float((eq[-1] / eq[0]) ** (1.0 / years) - 1.0)


def annual_volatility(returns: ArrayLike, periods_per_year: int = DAYS_PER_YEAR) -> float:
    """``std(returns, ddof=1) * sqrt(periods_per_year)``; NaN for fewer than two returns."""
    r = _floats(returns, "returns")
    if r.size < 2:
        return _NAN
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year))


def sharpe_ratio(returns: ArrayLike, periods_per_year: int = DAYS_PER_YEAR) -> float:
    """Annualised Sharpe ratio, rf = 0: ``mean / std(ddof=1) * sqrt(periods_per_year)``.

    NaN for fewer than two returns or when every return is the same (zero dispersion).
    """
    r = _floats(returns, "returns")
    if r.size < 2 or np.ptp(r) == 0.0:
        return _NAN
    std = float(np.std(r, ddof=1))
    if std == 0.0:  # dispersion below float resolution (denormal returns)
        return _NAN
    return float(np.mean(r) / std * math.sqrt(periods_per_year))


def sortino_ratio(returns: ArrayLike, periods_per_year: int = DAYS_PER_YEAR) -> float:
    """Annualised Sortino ratio, target 0, downside deviation ``sqrt(sum(min(r,0)²) / n)``.

    NaN for fewer than two returns or when no return is negative (as quantstats).
    """
    r = _floats(returns, "returns")
    if r.size < 2:
        return _NAN
    downside = math.sqrt(float(np.sum(np.minimum(r, 0.0) ** 2)) / r.size)
    if downside == 0.0:
        return _NAN
    return float(np.mean(r) / downside * math.sqrt(periods_per_year))


def drawdown_series(equity: ArrayLike) -> FloatArray:
    """``equity / running_max(equity) - 1`` at every point; all values ≤ 0."""
    eq = _equity(equity)
    return eq / np.maximum.accumulate(eq) - 1.0 if eq.size else np.empty(0, dtype=np.float64)


def max_drawdown(equity: ArrayLike) -> float:
    """Deepest fall from a running peak, a fraction ≤ 0 (``-0.2`` = 20 %); NaN when empty.

    Pass the full-resolution equity: daily closes can hide an intraday trough.
    """
    dd = drawdown_series(equity)
    return float(np.min(dd)) if dd.size else _NAN


def max_drawdown_duration(equity: ArrayLike, ts_ms: ArrayLike | None = None) -> float:
    """Longest peak-to-recovery span: in bars, or in ms when ``ts_ms`` is given.

    A drawdown lasts from its peak to the first later point at or above the peak, or to the last
    point when it has not recovered. 0 when the curve never falls; NaN when empty.
    """
    eq = _equity(equity)
    if eq.size == 0:
        return _NAN
    clock = np.arange(eq.size, dtype=np.int64) if ts_ms is None else _timestamps(ts_ms, eq.size)
    at_peak = eq >= np.maximum.accumulate(eq)
    peak_idx = np.maximum.accumulate(np.where(at_peak, np.arange(eq.size), 0))
    recovered = at_peak[1:] & ~at_peak[:-1]
    spans = clock[1:][recovered] - clock[peak_idx[:-1][recovered]]
    longest = int(spans.max()) if spans.size else 0
    if not at_peak[-1]:
        longest = max(longest, int(clock[-1] - clock[peak_idx[-1]]))
    return float(longest)


def calmar_ratio(annual_return: float, max_dd: float) -> float:
    """``annual_return / |max_dd|`` — pass :func:`cagr` and :func:`max_drawdown`.

    NaN when either is NaN or there was no drawdown.
    """
    if math.isnan(annual_return) or math.isnan(max_dd) or max_dd == 0.0:
        return _NAN
    return annual_return / abs(max_dd)


def value_at_risk(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Historical VaR: the ``1 - confidence`` quantile of returns (linear interpolation).

    A return, so a loss is negative. NaN when empty.
    """
    r = _floats(returns, "returns")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if r.size == 0:
        return _NAN
    return float(np.quantile(r, 1.0 - confidence))


def expected_shortfall(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Historical CVaR: the mean of the returns at or below :func:`value_at_risk`. NaN when empty."""
    r = _floats(returns, "returns")
    var = value_at_risk(r, confidence)
    if math.isnan(var):
        return _NAN
    return float(np.mean(r[r <= var]))


def stability_score(ts_ms: ArrayLike, equity: ArrayLike) -> float:
    """``100 * R²`` of a least-squares line through ``(ts_ms, log(equity))``, in [0, 100].

    100 for a perfectly exponential curve. NaN for fewer than three points (a line always fits
    two), a zero time span or a flat equity (no trend to explain).
    """
    eq = _equity(equity)
    ts = _timestamps(ts_ms, eq.size)
    if eq.size < 3:
        return _NAN
    x = (ts - ts[0]).astype(np.float64) / MS_PER_DAY
    y = np.log(eq)
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    if sxx == 0.0 or syy == 0.0:
        return _NAN
    r2 = float(dx @ dy) ** 2 / (sxx * syy)
    return 100.0 * min(r2, 1.0)


def rolling_sharpe(returns: ArrayLike, window: int, periods_per_year: int = DAYS_PER_YEAR) -> FloatArray:
    """Sharpe ratio over each trailing ``window`` of returns, same length as ``returns``.

    The first ``window - 1`` values, and windows whose returns are all equal, are NaN.
    """
    r = _floats(returns, "returns")
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    out = np.full(r.size, np.nan)
    if r.size < window:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(r, window)
    mean = windows.mean(axis=1)
    std = windows.std(axis=1, ddof=1)
    flat = np.ptp(windows, axis=1) == 0.0
    ratio = np.divide(mean, std, out=np.full(mean.size, np.nan), where=~flat)
    out[window - 1 :] = ratio * math.sqrt(periods_per_year)
    return out


# --------------------------------------------------------------------------- calendar returns


def _period_returns(day_ts_ms: ArrayLike, day_equity: ArrayLike, unit: str) -> tuple[IntArray, FloatArray]:
    eq = _equity(day_equity)
    ts = _timestamps(day_ts_ms, eq.size)
    if eq.size < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    period = ts[1:].astype("datetime64[ms]").astype(f"datetime64[{unit}]").astype(np.int64)
    last = np.flatnonzero(np.append(period[1:] != period[:-1], True))
    closes = eq[1:][last]
    bases = np.concatenate(([eq[0]], closes[:-1]))
    return period[last], closes / bases - 1.0


def monthly_returns(day_ts_ms: ArrayLike, day_equity: ArrayLike) -> tuple[IntArray, IntArray, FloatArray]:
    """Compounded return of each calendar month: ``(year, month, return)`` arrays.

    A month's return is its last equity over the previous month's last equity; the first
    point (the opening equity from :func:`daily_equity`) is only the base of the first month.
    """
    months, rets = _period_returns(day_ts_ms, day_equity, "M")
    return months // 12 + 1970, months % 12 + 1, rets


def yearly_returns(day_ts_ms: ArrayLike, day_equity: ArrayLike) -> tuple[IntArray, FloatArray]:
    """Compounded return of each calendar year: ``(year, return)``, built like :func:`monthly_returns`."""
    years, rets = _period_returns(day_ts_ms, day_equity, "Y")
    return years + 1970, rets


# --------------------------------------------------------------------------- trade statistics


def _pnl(trade_pnl: ArrayLike) -> FloatArray:
    return _floats(trade_pnl, "trade_pnl")


def win_rate(trade_pnl: ArrayLike) -> float:
    """Share of trades with ``pnl > 0`` (break-evens count as trades); NaN with no trades."""
    p = _pnl(trade_pnl)
    return float(np.count_nonzero(p > 0.0) / p.size) if p.size else _NAN


def profit_factor(trade_pnl: ArrayLike) -> float:
    """Gross profit / |gross loss|; ``inf`` with wins and no losses; NaN with no wins nor losses."""
    p = _pnl(trade_pnl)
    gross_profit = float(np.sum(p[p > 0.0]))
    gross_loss = float(-np.sum(p[p < 0.0]))
    if gross_loss == 0.0:
        return math.inf if gross_profit > 0.0 else _NAN
    return gross_profit / gross_loss


def average_trade(trade_pnl: ArrayLike) -> float:
    """Mean P&L per trade; NaN with no trades."""
    p = _pnl(trade_pnl)
    return float(np.mean(p)) if p.size else _NAN


def average_win(trade_pnl: ArrayLike) -> float:
    """Mean P&L of winning trades; NaN with no wins."""
    wins = _pnl(trade_pnl)
    wins = wins[wins > 0.0]
    return float(np.mean(wins)) if wins.size else _NAN


def average_loss(trade_pnl: ArrayLike) -> float:
    """Mean P&L of losing trades (negative); NaN with no losses."""
    losses = _pnl(trade_pnl)
    losses = losses[losses < 0.0]
    return float(np.mean(losses)) if losses.size else _NAN


def win_loss_ratio(trade_pnl: ArrayLike) -> float:
    """Average win / |average loss|; NaN with no wins or no losses."""
    return average_win(trade_pnl) / abs(average_loss(trade_pnl))


def largest_win(trade_pnl: ArrayLike) -> float:
    """Largest winning trade; NaN with no wins."""
    wins = _pnl(trade_pnl)
    wins = wins[wins > 0.0]
    return float(np.max(wins)) if wins.size else _NAN


def largest_loss(trade_pnl: ArrayLike) -> float:
    """Largest losing trade, as a negative number; NaN with no losses."""
    losses = _pnl(trade_pnl)
    losses = losses[losses < 0.0]
    return float(np.min(losses)) if losses.size else _NAN


def expectancy(trade_pnl: ArrayLike) -> float:
    """``P(win) * average win + P(loss) * average loss`` per trade; NaN with no trades."""
    p = _pnl(trade_pnl)
    if p.size == 0:
        return _NAN
    return float(np.sum(p[p > 0.0]) / p.size + np.sum(p[p < 0.0]) / p.size)


def expectancy_ratio(trade_pnl: ArrayLike) -> float:
    """Expectancy per unit of average loss (R-multiple); NaN with no trades or no losses."""
    return expectancy(trade_pnl) / abs(average_loss(trade_pnl))


def _longest_run(mask: NDArray[np.bool_]) -> int:
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int(np.max(ends - starts))


def max_consecutive_wins(trade_pnl: ArrayLike) -> int:
    """Longest run of consecutive trades with ``pnl > 0``; 0 with no trades."""
    return _longest_run(_pnl(trade_pnl) > 0.0)


def max_consecutive_losses(trade_pnl: ArrayLike) -> int:
    """Longest run of consecutive trades with ``pnl < 0``; 0 with no trades."""
    return _longest_run(_pnl(trade_pnl) < 0.0)


def trade_stats(
    trade_pnl: ArrayLike,
    entry_ts_ms: ArrayLike | None = None,
    exit_ts_ms: ArrayLike | None = None,
    side: ArrayLike | None = None,
) -> dict[str, float]:
    """All trade statistics in one dict (keys as in :func:`summary`'s trade part).

    With ``entry_ts_ms`` and ``exit_ts_ms``, adds ``avg_holding_ms`` and ``max_holding_ms``.
    With ``side`` (``+1`` long, ``-1`` short per trade), adds ``long_trades``, ``short_trades``,
    ``long_win_rate`` and ``short_win_rate``.
    """
    p = _pnl(trade_pnl)
    stats: dict[str, float] = {
        "trades": float(p.size),
        "win_rate": win_rate(p),
        "profit_factor": profit_factor(p),
        "average_trade": average_trade(p),
        "average_win": average_win(p),
        "average_loss": average_loss(p),
        "win_loss_ratio": win_loss_ratio(p),
        "largest_win": largest_win(p),
        "largest_loss": largest_loss(p),
        "expectancy": expectancy(p),
        "expectancy_ratio": expectancy_ratio(p),
        "max_consecutive_wins": float(max_consecutive_wins(p)),
        "max_consecutive_losses": float(max_consecutive_losses(p)),
    }
    if entry_ts_ms is not None and exit_ts_ms is not None:
        held = np.asarray(exit_ts_ms, dtype=np.int64) - np.asarray(entry_ts_ms, dtype=np.int64)
        if held.shape != p.shape or np.any(held < 0):
            raise DataError("entry/exit timestamps must match trade_pnl and exit must not precede entry")
        stats["avg_holding_ms"] = float(np.mean(held)) if held.size else _NAN
        stats["max_holding_ms"] = float(np.max(held)) if held.size else _NAN
    if side is not None:
        sides = np.asarray(side)
        if sides.shape != p.shape or not np.all(np.isin(sides, (1, -1))):
            raise DataError("side must hold +1 (long) or -1 (short) for every trade")
        for name, sign in (("long", 1), ("short", -1)):
            stats[f"{name}_trades"] = float(np.count_nonzero(sides == sign))
            stats[f"{name}_win_rate"] = win_rate(p[sides == sign])
    return stats


# --------------------------------------------------------------------------- summary


def summary(ts_ms: ArrayLike, equity: ArrayLike, trade_pnl: ArrayLike) -> dict[str, float]:
    """Headline figures of a run, every value a float (NaN where undefined).

    Equity keys: ``start_equity``, ``end_equity``, ``days`` (calendar days covered),
    ``total_return``, ``cagr``, ``annual_volatility``, ``sharpe_ratio``, ``sortino_ratio``,
    ``max_drawdown`` (full resolution, ≤ 0), ``max_drawdown_duration_days`` (full resolution),
    ``calmar_ratio`` (CAGR / |full-resolution max drawdown|), ``value_at_risk_95`` and
    ``expected_shortfall_95`` (daily returns, historical), ``stability_score`` (daily equity),
    ``best_day``, ``worst_day``. Ratios and VaR use the daily returns of :func:`daily_equity`.

    Trade keys (from :func:`trade_stats`): ``trades``, ``win_rate``, ``profit_factor``,
    ``average_trade``, ``average_win``, ``average_loss``, ``win_loss_ratio``, ``largest_win``,
    ``largest_loss``, ``expectancy``, ``expectancy_ratio``, ``max_consecutive_wins``,
    ``max_consecutive_losses``.
    """
    eq = _equity(equity)
    ts = _timestamps(ts_ms, eq.size)
    day_ts, day_eq = daily_equity(ts, eq)
    r = daily_returns(day_eq)
    annual = cagr(day_ts, day_eq)
    mdd = max_drawdown(eq)
    duration_ms = max_drawdown_duration(eq, ts)
    out: dict[str, float] = {
        "start_equity": float(eq[0]) if eq.size else _NAN,
        "end_equity": float(eq[-1]) if eq.size else _NAN,
        "days": float(r.size),
        "total_return": total_return(eq),
        "cagr": annual,
        "annual_volatility": annual_volatility(r),
        "sharpe_ratio": sharpe_ratio(r),
        "sortino_ratio": sortino_ratio(r),
        "max_drawdown": mdd,
        "max_drawdown_duration_days": duration_ms / MS_PER_DAY,
        "calmar_ratio": calmar_ratio(annual, mdd),
        "value_at_risk_95": value_at_risk(r, 0.95),
        "expected_shortfall_95": expected_shortfall(r, 0.95),
        "stability_score": stability_score(day_ts, day_eq),
        "best_day": float(np.max(r)) if r.size else _NAN,
        "worst_day": float(np.min(r)) if r.size else _NAN,
    }
    out.update(trade_stats(trade_pnl))
    return out
