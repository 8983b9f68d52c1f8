"""Monte Carlo resampling of a backtest: how lucky was the path it happened to take?

Three resampling methods, each run ``n_simulations`` times (10,000 by default) from a seed:

``trade_permutation`` (:func:`permute_trades`)
    The same trades in a random order. Total return, Sharpe and win rate are the same on every
    path (a product does not depend on the order of its factors); only the path — its drawdown,
    its lowest point and so whether it breaches a limit or ruins — changes. It answers "how deep
    could the drawdown have been with exactly these trades?".
``trade_bootstrap`` (:func:`bootstrap_trades`)
    As many trades as the backtest made, drawn *with replacement* from its trades: every figure
    varies. It answers "what if the strategy's trade distribution is right but the sample was
    lucky?".
``daily_block_bootstrap`` (:func:`bootstrap_daily_returns`)
    The stationary bootstrap of Politis & Romano (1994) on the daily returns of the equity
    curve: paths as long as the backtest made of blocks of consecutive days, each block starting
    on a random day (wrapping round the end) with a geometric length of mean ``block_length``,
    so that volatility clusters and short-range autocorrelation survive the resampling. Win rate
    does not apply (there are no trades). Default block length: :func:`default_block_length`.

Conventions
-----------
* **Trades compound.** A trade's return is its net P&L divided by the equity *before* it, and
  a path's equity is ``capital * prod(1 + r)``: a trade risks a share of the equity it finds,
  not a fixed amount of money. :func:`trade_returns` derives the returns from a saved backtest
  with the *closed-trade* equity ``initial_capital + P&L of the trades closed before it``
  (trades in the order they closed). This ignores unrealised P&L of positions open at the same
  time, so with overlapping positions it is an approximation; pass your own array of trade
  returns to use another one.
* A path starts at ``1`` (scaled by ``initial_capital`` in the fan chart) and has one point per
  trade or day after it. An equity that reaches zero or below stays at zero (ruin is
  absorbing).
* **Figures of one path** follow :mod:`autotrader.analytics.metrics`: total return
  ``E_last / E_0 - 1``; max drawdown ``min(E / running_max(E) - 1)`` including the start
  (a fraction ≤ 0); Sharpe ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)`` (NaN for zero
  dispersion); win rate ``#(r > 0) / #r``. They are computed in a compiled kernel for speed
  and checked against the ``metrics`` functions by the tests. Daily paths use 365 periods a
  year, as the backtest report; trade paths use ``trades_per_year`` when given (the backtest's
  trades per 365 days, see :func:`trades_per_year`), else the Sharpe is per trade.
* **Bands** are the 5th, 50th and 95th percentiles (linear interpolation) over the simulations
  with a defined figure.
* **Probabilities** are shares of simulations: of a loss (total return < 0); of breaching the
  drawdown limit (max drawdown ≤ ``-drawdown_limit``, e.g. the risk level's kill-switch
  drawdown, ``risk_limits.max_drawdown``; omitted when no limit is given); of ruin (the equity
  falls below ``ruin_fraction`` of the starting capital at any point; default 0.5, i.e. losing
  half the account — a conventional threshold beyond which few traders carry on, not a
  regulatory one).
* **Fan chart**: the 5/25/50/75/95 % percentiles of equity at about ``fan_points`` (100) evenly
  spaced steps of the path, including the start and the end.
* **Reproducibility**: simulations run in chunks of 1,000, each with its own random stream
  spawned from ``numpy.random.SeedSequence(seed)``; the result depends on the seed only, not
  on how many threads ran the chunks.

Every result is a frozen dataclass with ``to_dict()`` giving plain JSON types (NaN and ±inf → ``None``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autotrader.analytics import metrics
from autotrader.domain.errors import ConfigError, DataError
from autotrader.domain.jsonsafe import finite_or_none
from autotrader.jit import njit

__all__ = [
    "BAND_PERCENTILES",
    "DAILY_BLOCK_BOOTSTRAP",
    "DEFAULT_FAN_POINTS",
    "DEFAULT_RUIN_FRACTION",
    "DEFAULT_SIMULATIONS",
    "FAN_PERCENTILES",
    "TRADE_BOOTSTRAP",
    "TRADE_PERMUTATION",
    "Band",
    "FanChart",
    "MonteCarloReport",
    "MonteCarloResult",
    "bootstrap_daily_returns",
    "bootstrap_trades",
    "default_block_length",
    "monte_carlo_report",
    "permute_trades",
    "trade_returns",
    "trades_per_year",
]

TRADE_PERMUTATION: Final = "trade_permutation"
TRADE_BOOTSTRAP: Final = "trade_bootstrap"
DAILY_BLOCK_BOOTSTRAP: Final = "daily_block_bootstrap"
DEFAULT_SIMULATIONS: Final = 10_000
DEFAULT_RUIN_FRACTION: Final = 0.5
DEFAULT_FAN_POINTS: Final = 100
BAND_PERCENTILES: Final = (5.0, 50.0, 95.0)
FAN_PERCENTILES: Final = (5.0, 25.0, 50.0, 75.0, 95.0)
MIN_BLOCK_DAYS: Final = 5
_CHUNK: Final = 1000  # simulations per random stream
_INVARIANT: Final = ("total_return", "sharpe_ratio", "win_rate", "prob_loss")
_SCOPE: Final = {
    TRADE_PERMUTATION: "the same trades in another order: tells how deep the drawdown and how low the "
    "equity could have gone with exactly these trades; cannot tell whether the edge is real (return, Sharpe, "
    "win rate and P(loss) are the backtest's own on every path)",
    TRADE_BOOTSTRAP: "trades drawn with replacement: tells how the figures vary if the trade distribution is "
    "right but the sample was lucky; cannot see regime changes or serial dependence between trades",
    DAILY_BLOCK_BOOTSTRAP: "blocks of consecutive days: keeps volatility clusters; tells how the figures vary "
    "over other orderings of the same market days, not under markets unlike the backtest's",
}
_NAN: Final = float("nan")

FloatArray = NDArray[np.float64]

# columns of the per-simulation statistics array
_TOTAL, _MDD, _MIN_EQ, _SHARPE, _WIN = 0, 1, 2, 3, 4
_N_STATS = 5


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Band:
    """The 5th, 50th and 95th percentiles of a figure over the simulations (NaN if undefined)."""

    p5: float
    p50: float
    p95: float

    def to_dict(self) -> dict[str, float | None]:
        return {"p5": finite_or_none(self.p5), "p50": finite_or_none(self.p50), "p95": finite_or_none(self.p95)}


@dataclass(frozen=True)
class FanChart:
    """Percentile paths of equity: ``equity[i][j]`` is percentile ``percentiles[i]`` at ``step[j]``.

    ``step`` counts trades (or days) completed: ``0`` is the start, the last is the whole path.
    ``observed`` is the backtest's own path (its trades or days in their order) at the same
    steps. Equity is in the unit of ``initial_capital``.
    """

    step: tuple[int, ...]
    percentiles: tuple[float, ...]
    equity: tuple[tuple[float, ...], ...]
    observed: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": list(self.step),
            "percentiles": list(self.percentiles),
            "equity": [[finite_or_none(v) for v in row] for row in self.equity],
            "observed": [finite_or_none(v) for v in self.observed],
        }


@dataclass(frozen=True)
class MonteCarloResult:
    """Bands, probabilities and fan chart of one resampling method (see the module docstring).

    ``observed`` holds the backtest's own figures on the same basis (its trades in their order,
    or its daily returns), computed with :mod:`autotrader.analytics.metrics`, to set the bands
    against. ``win_rate`` is ``None`` for the daily method; ``prob_drawdown_breach`` is ``None``
    when no drawdown limit was given. ``sharpe_periods_per_year`` is the annualisation of the
    Sharpe figures (``1.0``: per trade).
    """

    method: str
    n_simulations: int
    n_steps: int
    seed: int
    block_length: float | None
    initial_capital: float
    sharpe_periods_per_year: float
    total_return: Band
    max_drawdown: Band
    sharpe_ratio: Band
    win_rate: Band | None
    prob_loss: float
    prob_drawdown_breach: float | None
    drawdown_limit: float | None
    prob_ruin: float
    ruin_fraction: float
    observed: Mapping[str, float]
    fan: FanChart

    @property
    def invariant(self) -> tuple[str, ...]:
        """Figures equal on every path by construction: not results of the simulation.

        Trade-order permutation reorders the same trades, so total return, Sharpe ratio, win
        rate and hence P(loss) are the backtest's own on every path.
        """
        return _INVARIANT if self.method == TRADE_PERMUTATION else ()

    @property
    def basis(self) -> str:
        """The equity the figures are computed on, and how the Sharpe ratio is annualised."""
        if self.method == DAILY_BLOCK_BOOTSTRAP:
            return "daily returns of the marked equity curve; Sharpe annualised with 365 days"
        per = (
            "per trade"
            if self.sharpe_periods_per_year == 1.0
            else f"annualised at {self.sharpe_periods_per_year:.1f} trades a year"
        )
        return (
            "closed-trade equity: net trade returns compounded in closing order, open positions not marked "
            f"(drawdowns read shallower than on marked bar-close equity); Sharpe {per}"
        )

    @property
    def scope(self) -> str:
        """What the method can and cannot tell."""
        return _SCOPE[self.method]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (NaN → ``None``); invariant figures are ``None`` and listed."""
        inv = self.invariant
        return {
            "basis": self.basis,
            "scope": self.scope,
            "invariant_by_construction": list(inv),
            "method": self.method,
            "n_simulations": self.n_simulations,
            "n_steps": self.n_steps,
            "seed": self.seed,
            "block_length": self.block_length,
            "initial_capital": self.initial_capital,
            "sharpe_periods_per_year": self.sharpe_periods_per_year,
            "total_return": None if "total_return" in inv else self.total_return.to_dict(),
            "max_drawdown": self.max_drawdown.to_dict(),
            "sharpe_ratio": None if "sharpe_ratio" in inv else self.sharpe_ratio.to_dict(),
            "win_rate": None if self.win_rate is None or "win_rate" in inv else self.win_rate.to_dict(),
            "prob_loss": None if "prob_loss" in inv else self.prob_loss,
            "prob_drawdown_breach": self.prob_drawdown_breach,
            "drawdown_limit": self.drawdown_limit,
            "prob_ruin": self.prob_ruin,
            "ruin_fraction": self.ruin_fraction,
            "observed": {k: finite_or_none(v) for k, v in self.observed.items()},
            "fan": self.fan.to_dict(),
        }


@dataclass(frozen=True)
class MonteCarloReport:
    """The methods that could run on a backtest document, and why the others could not."""

    results: tuple[MonteCarloResult, ...]
    skipped: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": {r.method: r.to_dict() for r in self.results},
            "skipped": dict(self.skipped),
        }


# --------------------------------------------------------------------------- from a backtest document


def trade_returns(doc: Mapping[str, Any]) -> FloatArray:
    """Each closed trade's net P&L over the closed-trade equity before it, in closing order.

    ``r_i = pnl_i / (initial_capital + sum(pnl_j for j < i))`` from ``doc["trades"]`` and
    ``doc["config"]["initial_capital"]`` of a backtest document (see ``report_data``). Raises
    ``DataError`` when the document lacks them or the equity before a trade is not positive.
    """
    try:
        capital = float(doc["config"]["initial_capital"])
        pnl = np.array([float(t["pnl_usd"]) for t in doc["trades"]], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"backtest document has no usable trades or initial capital: {e!r}") from None
    if not math.isfinite(capital) or capital <= 0.0:
        raise DataError(f"initial capital must be a positive number, got {capital}")
    if not np.all(np.isfinite(pnl)):
        raise DataError("a trade's pnl_usd is missing or not finite")
    before = capital + np.concatenate(([0.0], np.cumsum(pnl)[:-1]))
    if np.any(before <= 0.0):
        raise DataError("closed-trade equity reached zero before the last trade: trade returns are undefined")
    return pnl / before


def trades_per_year(doc: Mapping[str, Any]) -> float | None:
    """Closed trades per 365 days of the backtest period (``None`` without trades or days)."""
    n = len(doc.get("trades") or [])
    days = (doc.get("period") or {}).get("days")
    if n == 0 or not isinstance(days, int | float) or days <= 0:
        return None
    return n / (float(days) / metrics.DAYS_PER_YEAR)


def monte_carlo_report(
    doc: Mapping[str, Any],
    *,
    n_simulations: int = DEFAULT_SIMULATIONS,
    seed: int = 0,
    block_length: float | None = None,
    ruin_fraction: float = DEFAULT_RUIN_FRACTION,
    fan_points: int = DEFAULT_FAN_POINTS,
    workers: int | None = None,
) -> MonteCarloReport:
    """All three methods on a backtest document (``report_data.load_report``).

    Uses the document's trades (:func:`trade_returns`, :func:`trades_per_year`), its daily
    equity ``equity_curve.daily.equity``, its ``config.initial_capital`` and, as the drawdown
    limit, ``risk_limits.max_drawdown``. A method that lacks data (fewer than two trades or
    days) is listed in ``skipped`` with the reason instead of failing the others.
    """
    r_trades = trade_returns(doc)  # validates the trades and the initial capital
    capital = float(doc["config"]["initial_capital"])
    limit = (doc.get("risk_limits") or {}).get("max_drawdown")
    limit = float(limit) if isinstance(limit, int | float) else None
    opts: dict[str, Any] = {
        "n_simulations": n_simulations,
        "seed": seed,
        "initial_capital": capital,
        "drawdown_limit": limit,
        "ruin_fraction": ruin_fraction,
        "fan_points": fan_points,
        "workers": workers,
    }
    results: list[MonteCarloResult] = []
    skipped: dict[str, str] = {}
    if r_trades.size < 2:
        reason = f"needs at least 2 closed trades, the backtest has {r_trades.size}"
        skipped[TRADE_PERMUTATION] = skipped[TRADE_BOOTSTRAP] = reason
    else:
        tpy = trades_per_year(doc)
        results.append(permute_trades(r_trades, trades_per_year=tpy, **opts))
        results.append(bootstrap_trades(r_trades, trades_per_year=tpy, **opts))
    try:
        day_equity = doc["equity_curve"]["daily"]["equity"]
    except (KeyError, TypeError):
        day_equity = []
    r_days = metrics.daily_returns(np.asarray(day_equity, dtype=np.float64))
    if r_days.size < 2:
        skipped[DAILY_BLOCK_BOOTSTRAP] = f"needs at least 2 daily returns, the backtest has {r_days.size}"
    else:
        results.append(bootstrap_daily_returns(r_days, block_length=block_length, **opts))
    return MonteCarloReport(tuple(results), skipped)


# --------------------------------------------------------------------------- public simulations


def permute_trades(
    trade_returns: ArrayLike,
    *,
    n_simulations: int = DEFAULT_SIMULATIONS,
    seed: int = 0,
    initial_capital: float = 1.0,
    drawdown_limit: float | None = None,
    ruin_fraction: float = DEFAULT_RUIN_FRACTION,
    trades_per_year: float | None = None,
    fan_points: int = DEFAULT_FAN_POINTS,
    workers: int | None = None,
) -> MonteCarloResult:
    """Trade-order permutation: the backtest's trade returns in ``n_simulations`` random orders.

    ``trade_returns`` are fractions of the equity before each trade (:func:`trade_returns`).
    ``drawdown_limit`` is a positive fraction (``0.15`` = 15 %). ``workers`` threads run the
    chunks (default: every CPU); the result does not depend on it.
    """
    r = _returns(trade_returns, "trade_returns")
    ppy = _trade_periods(trades_per_year)
    return _simulate(
        TRADE_PERMUTATION,
        r,
        None,
        ppy,
        n_simulations,
        seed,
        initial_capital,
        drawdown_limit,
        ruin_fraction,
        fan_points,
        workers,
    )


def bootstrap_trades(
    trade_returns: ArrayLike,
    *,
    n_simulations: int = DEFAULT_SIMULATIONS,
    seed: int = 0,
    initial_capital: float = 1.0,
    drawdown_limit: float | None = None,
    ruin_fraction: float = DEFAULT_RUIN_FRACTION,
    trades_per_year: float | None = None,
    fan_points: int = DEFAULT_FAN_POINTS,
    workers: int | None = None,
) -> MonteCarloResult:
    """Trade bootstrap: paths of ``len(trade_returns)`` trades drawn with replacement.

    Arguments as :func:`permute_trades`.
    """
    r = _returns(trade_returns, "trade_returns")
    ppy = _trade_periods(trades_per_year)
    return _simulate(
        TRADE_BOOTSTRAP,
        r,
        None,
        ppy,
        n_simulations,
        seed,
        initial_capital,
        drawdown_limit,
        ruin_fraction,
        fan_points,
        workers,
    )


def bootstrap_daily_returns(
    daily_returns: ArrayLike,
    *,
    block_length: float | None = None,
    n_simulations: int = DEFAULT_SIMULATIONS,
    seed: int = 0,
    initial_capital: float = 1.0,
    drawdown_limit: float | None = None,
    ruin_fraction: float = DEFAULT_RUIN_FRACTION,
    fan_points: int = DEFAULT_FAN_POINTS,
    workers: int | None = None,
) -> MonteCarloResult:
    """Stationary block bootstrap of daily returns (Politis & Romano 1994).

    Each path has ``len(daily_returns)`` days. It starts on a uniformly random day; each next
    day starts a new block on a random day with probability ``1 / block_length``, otherwise it
    continues with the day after (wrapping from the last day to the first), so blocks have a
    geometric length of mean ``block_length`` days (default :func:`default_block_length`;
    ``1`` is the plain i.i.d. bootstrap). Sharpe is annualised with 365 days. Other arguments as
    :func:`permute_trades`.
    """
    r = _returns(daily_returns, "daily_returns")
    if block_length is None:
        block_length = float(default_block_length(r.size))
    if not (isinstance(block_length, int | float) and math.isfinite(block_length) and block_length >= 1.0):
        raise ConfigError(f"block_length must be at least 1 day, got {block_length!r}")
    return _simulate(
        DAILY_BLOCK_BOOTSTRAP,
        r,
        float(block_length),
        float(metrics.DAYS_PER_YEAR),
        n_simulations,
        seed,
        initial_capital,
        drawdown_limit,
        ruin_fraction,
        fan_points,
        workers,
    )


def default_block_length(n_days: int) -> int:
    """Default mean block length in days: ``max(5, ceil(n_days ** (1/3)))``.

    The cube root is the order of the MSE-optimal block length for the variance of a mean
    (Hall, Horowitz & Jing 1995; Politis & White 2004); the floor of 5 days keeps at least a
    trading week of dependence. Five years of days give 13.
    """
    return max(MIN_BLOCK_DAYS, math.ceil(max(n_days, 1) ** (1.0 / 3.0) - 1e-9))


# --------------------------------------------------------------------------- driver


def _simulate(
    method: str,
    r: FloatArray,
    block_length: float | None,
    periods_per_year: float,
    n_simulations: int,
    seed: int,
    initial_capital: float,
    drawdown_limit: float | None,
    ruin_fraction: float,
    fan_points: int,
    workers: int | None,
) -> MonteCarloResult:
    _check_options(n_simulations, seed, initial_capital, drawdown_limit, ruin_fraction, fan_points, workers)
    n = r.size
    fan_idx = np.unique(np.linspace(0, n, min(fan_points, n + 1)).round().astype(np.int64))
    stats = np.empty((n_simulations, _N_STATS), dtype=np.float64)
    fan = np.empty((n_simulations, fan_idx.size), dtype=np.float64)

    def chunk(start: int, rng: np.random.Generator) -> None:
        stop = min(start + _CHUNK, n_simulations)
        out, fan_out = stats[start:stop], fan[start:stop]
        if method == DAILY_BLOCK_BOOTSTRAP:
            _stationary_bootstrap_nb(rng, r, 1.0 / float(block_length or 1.0), fan_idx, out, fan_out)
        else:
            _resample_trades_nb(rng, r, method == TRADE_BOOTSTRAP, fan_idx, out, fan_out)

    starts = range(0, n_simulations, _CHUNK)
    streams = np.random.SeedSequence(seed).spawn(len(starts))
    _run_chunks(chunk, [(s, np.random.default_rng(ss)) for s, ss in zip(starts, streams, strict=True)], workers)

    sharpe = stats[:, _SHARPE] * math.sqrt(periods_per_year)
    total, mdd = stats[:, _TOTAL], stats[:, _MDD]
    is_trades = method != DAILY_BLOCK_BOOTSTRAP
    return MonteCarloResult(
        method=method,
        n_simulations=n_simulations,
        n_steps=n,
        seed=seed,
        block_length=block_length,
        initial_capital=float(initial_capital),
        sharpe_periods_per_year=float(periods_per_year),
        total_return=_band(total),
        max_drawdown=_band(mdd),
        sharpe_ratio=_band(sharpe),
        win_rate=_band(stats[:, _WIN]) if is_trades else None,
        prob_loss=float(np.mean(total < 0.0)),
        prob_drawdown_breach=None if drawdown_limit is None else float(np.mean(mdd <= -drawdown_limit)),
        drawdown_limit=None if drawdown_limit is None else float(drawdown_limit),
        prob_ruin=float(np.mean(stats[:, _MIN_EQ] < ruin_fraction)),
        ruin_fraction=float(ruin_fraction),
        observed=_observed(r, periods_per_year, is_trades),
        fan=FanChart(
            step=tuple(int(i) for i in fan_idx),
            percentiles=FAN_PERCENTILES,
            equity=tuple(
                tuple(float(v) for v in row)
                for row in _sorted_percentiles(np.sort(fan.T, axis=1), FAN_PERCENTILES).T * initial_capital
            ),
            observed=tuple(float(v) for v in _observed_path(r)[fan_idx] * initial_capital),
        ),
    )


def _run_chunks(
    work: Callable[[int, np.random.Generator], None],
    jobs: list[tuple[int, np.random.Generator]],
    workers: int | None,
) -> None:
    n_workers = min(len(jobs), workers or os.cpu_count() or 1)
    if n_workers <= 1:
        for start, rng in jobs:
            work(start, rng)
        return
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for future in [pool.submit(work, start, rng) for start, rng in jobs]:
            future.result()


def _observed_path(r: FloatArray) -> FloatArray:
    """Equity from 1 compounding ``r`` in order, floored at 0 like the simulated paths."""
    return np.maximum(np.concatenate(([1.0], np.cumprod(1.0 + r))), 0.0)


def _observed(r: FloatArray, periods_per_year: float, is_trades: bool) -> dict[str, float]:
    equity = _observed_path(r)
    out = {"sharpe_ratio": metrics.sharpe_ratio(r, periods_per_year=1) * math.sqrt(periods_per_year)}
    if np.all(equity > 0.0):
        out["total_return"] = metrics.total_return(equity)
        out["max_drawdown"] = metrics.max_drawdown(equity)
    else:  # the path was ruined: metrics refuses a non-positive equity
        out["total_return"] = -1.0
        out["max_drawdown"] = -1.0
    if is_trades:
        out["win_rate"] = metrics.win_rate(r)
    return out


def _band(values: FloatArray) -> Band:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Band(_NAN, _NAN, _NAN)
    p5, p50, p95 = np.percentile(finite, BAND_PERCENTILES)
    return Band(float(p5), float(p50), float(p95))


def _sorted_percentiles(rows: FloatArray, q: tuple[float, ...]) -> FloatArray:
    """``numpy.percentile(rows, q, axis=1).T`` ("linear" method) of rows sorted ascending; faster."""
    pos = np.asarray(q, dtype=np.float64) / 100.0 * (rows.shape[1] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, rows.shape[1] - 1)
    frac = pos - lo
    return rows[:, lo] + (rows[:, hi] - rows[:, lo]) * frac


# --------------------------------------------------------------------------- input checks


def _returns(values: ArrayLike, name: str) -> FloatArray:
    r = np.asarray(values, dtype=np.float64)
    if r.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {r.shape}")
    if r.size < 2:
        raise DataError(f"Monte Carlo needs at least 2 {name.replace('_', ' ')}, got {r.size}")
    if not np.all(np.isfinite(r)):
        raise DataError(f"{name} contains NaN or infinite values")
    if np.any(r < -1.0):
        raise DataError(f"{name} has a return below -100 %: a loss cannot exceed the equity it risked")
    return r


def _trade_periods(trades_per_year: float | None) -> float:
    if trades_per_year is None:
        return 1.0
    if not (isinstance(trades_per_year, int | float) and math.isfinite(trades_per_year) and trades_per_year > 0):
        raise ConfigError(f"trades_per_year must be a positive number, got {trades_per_year!r}")
    return float(trades_per_year)


def _check_options(
    n_simulations: int,
    seed: int,
    initial_capital: float,
    drawdown_limit: float | None,
    ruin_fraction: float,
    fan_points: int,
    workers: int | None,
) -> None:
    if isinstance(n_simulations, bool) or not isinstance(n_simulations, int) or n_simulations < 1:
        raise ConfigError(f"the number of Monte Carlo simulations must be a positive integer, got {n_simulations!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not (math.isfinite(initial_capital) and initial_capital > 0.0):
        raise ConfigError(f"initial_capital must be positive, got {initial_capital!r}")
    if drawdown_limit is not None and not 0.0 < drawdown_limit <= 1.0:
        raise ConfigError(f"drawdown_limit must be a fraction in (0, 1] (0.15 = 15 %), got {drawdown_limit!r}")
    if not 0.0 < ruin_fraction < 1.0:
        raise ConfigError(f"ruin_fraction must be a fraction in (0, 1) (0.5 = half the capital), got {ruin_fraction!r}")
    if isinstance(fan_points, bool) or not isinstance(fan_points, int) or fan_points < 2:
        raise ConfigError(f"fan_points must be an integer of at least 2, got {fan_points!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")


# --------------------------------------------------------------------------- compiled kernels


@njit(nogil=True, cache=True)
def path_stats_nb(
    r: FloatArray, shift: float, fan_idx: NDArray[np.int64], fan_row: FloatArray
) -> tuple[float, float, float, float, float]:
    """Figures of one path of returns ``r`` compounded from equity 1.

    Returns ``(total_return, max_drawdown, min_equity, per_period_sharpe, win_rate)`` and writes
    the equity after ``fan_idx[j]`` steps into ``fan_row[j]`` (``fan_idx`` ascending, 0 = start).
    Equity at or below zero stays zero. The Sharpe ratio is ``mean / std(ddof=1)``, NaN for
    fewer than two returns or equal returns; the variance uses sums of ``r - shift`` (pass a
    value near the mean, e.g. the mean of the sample resampled, to avoid cancellation).
    """
    n = r.size
    equity = 1.0
    peak = 1.0
    trough = 1.0
    mdd = 0.0
    min_eq = 1.0
    s1 = 0.0
    s2 = 0.0
    wins = 0
    lo = r[0]
    hi = r[0]
    k = 0
    while k < fan_idx.size and fan_idx[k] == 0:
        fan_row[k] = 1.0
        k += 1
    for i in range(n):
        x = r[i]
        wins += x > 0.0
        lo = min(lo, x)
        hi = max(hi, x)
        d = x - shift
        s1 += d
        s2 += d * d
        equity *= 1.0 + x
        if equity <= 0.0:
            equity = 0.0
        if equity > peak:
            peak = equity
            trough = equity
        elif equity < trough:
            trough = equity
            mdd = min(mdd, trough / peak - 1.0)
        min_eq = min(min_eq, equity)
        while k < fan_idx.size and fan_idx[k] == i + 1:
            fan_row[k] = equity
            k += 1
    sharpe = np.nan
    if n >= 2 and hi > lo:
        var = max((s2 - s1 * s1 / n) / (n - 1), 0.0)
        if var > 0.0:
            sharpe = (s1 / n + shift) / math.sqrt(var)
    return equity - 1.0, mdd, min_eq, sharpe, wins / n


@njit(nogil=True, cache=True)
def _store_nb(s: int, stats: tuple[float, float, float, float, float], out: FloatArray) -> None:
    out[s, 0] = stats[0]
    out[s, 1] = stats[1]
    out[s, 2] = stats[2]
    out[s, 3] = stats[3]
    out[s, 4] = stats[4]


@njit(nogil=True, cache=True)
def _resample_trades_nb(
    rng: np.random.Generator,
    r: FloatArray,
    bootstrap: bool,
    fan_idx: NDArray[np.int64],
    out: FloatArray,
    fan_out: FloatArray,
) -> None:
    """Permutation (Fisher-Yates on the previous order) or bootstrap of ``r``, one path per row."""
    n = r.size
    shift = r.mean()
    buf = r.copy()
    for s in range(out.shape[0]):
        if bootstrap:
            for i in range(n):
                buf[i] = r[min(int(rng.random() * n), n - 1)]
        else:
            for i in range(n - 1, 0, -1):
                j = min(int(rng.random() * (i + 1)), i)
                tmp = buf[i]
                buf[i] = buf[j]
                buf[j] = tmp
        _store_nb(s, path_stats_nb(buf, shift, fan_idx, fan_out[s]), out)


@njit(nogil=True, cache=True)
def _stationary_bootstrap_nb(
    rng: np.random.Generator,
    r: FloatArray,
    p_new: float,
    fan_idx: NDArray[np.int64],
    out: FloatArray,
    fan_out: FloatArray,
) -> None:
    """Politis-Romano stationary bootstrap of ``r`` (circular), one path per row."""
    n = r.size
    shift = r.mean()
    buf = np.empty(n)
    for s in range(out.shape[0]):
        k = min(int(rng.random() * n), n - 1)
        buf[0] = r[k]
        for t in range(1, n):
            if rng.random() < p_new:
                k = min(int(rng.random() * n), n - 1)
            else:
                k += 1
                if k == n:
                    k = 0
            buf[t] = r[k]
        _store_nb(s, path_stats_nb(buf, shift, fan_idx, fan_out[s]), out)
