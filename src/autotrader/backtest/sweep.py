"""Parameter sweeps as columns: every combination of a grid in one compiled, parallel pass.

``sweep(config, data, {"fast": range(5, 51, 5), "slow": range(20, 201, 10)})`` runs the full
engine (``simulate_portfolio_into_nb``: the kernel of ``run_backtest``, with its costs, risk limits,
stops, lot rules) once per combination inside one numba function, parallel over the combinations
(``prange``, one per core), and returns a table with one row of metrics per combination. Each
worker computes its combination's signals (the fused ``sma_cross`` kernel), simulates it and
reduces the equity curve and trades to metrics; only the table leaves the compiled code, so the
memory is a few arrays per core, not per combination.

Metrics (the same definitions as ``autotrader.analytics.metrics``): ``total_return`` =
``equity[-1] / equity[0] - 1``; ``max_drawdown`` (fraction <= 0, full resolution); ``sharpe`` on
daily returns (the last equity of each UTC day, missing days repeated), annualised with
sqrt(365), NaN without dispersion; ``trades``; ``win_rate`` (pnl > 0) and ``profit_factor`` over
the trades; ``final_equity``.

Only strategies with a compiled signal kernel can sweep as columns; today that is ``sma_cross``
(grid over ``fast`` and ``slow``; ``short`` is taken from the configuration). A combination the
strategy refuses (``fast >= slow``) is skipped and counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import prange

from autotrader.backtest.fast.kernel import (
    EVENT_DTYPE,
    SYMBOL_DTYPE,
    TRADE_DTYPE,
    signal_rows_nb,
    simulate_portfolio_into_nb,
    symbol_rules_of,
)
from autotrader.backtest.runner import (
    BacktestConfig,
    instrument_rules_for,
    kernel_settings,
    offline_mask,
)
from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.errors import ConfigError, DataError
from autotrader.domain.instrument import Instrument
from autotrader.jit import njit
from autotrader.risk.volatility import daily_volatility_of
from autotrader.strategy.base import get_strategy
from autotrader.strategy.indicators import sma_cross_direction_nb

DAY_MS = 86_400_000
DAYS_PER_YEAR = 365
METRICS = ("total_return", "max_drawdown", "sharpe", "trades", "win_rate", "profit_factor", "final_equity")
SWEEPABLE = {"sma_cross": ("fast", "slow")}
_N_METRICS = len(METRICS)


@dataclass(frozen=True)
class SweepResult:
    """One row per combination: the parameters, then ``METRICS``."""

    strategy: str
    params: tuple[str, ...]
    table: np.ndarray  # structured: one int64 field per parameter, then float64 metrics (trades int64)
    skipped: int  # combinations the strategy refuses (e.g. fast >= slow)
    n_bars: int
    elapsed_s: float

    def best(self, metric: str = "sharpe", n: int = 10) -> np.ndarray:
        """The ``n`` best rows by ``metric`` (highest first; for ``max_drawdown`` the shallowest); NaN last."""
        if metric not in METRICS:
            raise ConfigError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
        values = np.asarray(self.table[metric], dtype=np.float64)
        order = np.argsort(np.where(np.isnan(values), -np.inf, values), kind="stable")[::-1]
        return self.table[order[:n]]

    def to_rows(self) -> list[dict[str, Any]]:
        """The table as a list of plain dicts (JSON-ready)."""
        names = self.table.dtype.names or ()
        return [{k: row[k].item() for k in names} for row in self.table]


def parse_grid(items: Sequence[str]) -> dict[str, list[int]]:
    """``["fast=5:50:5", "slow=20,50,100"]`` -> ``{"fast": [5, 10, ..., 50], "slow": [20, 50, 100]}``.

    ``LOW:HIGH:STEP`` includes ``HIGH`` when the steps land on it; ``LOW:HIGH`` steps by 1; a comma
    list gives the values themselves.
    """
    grid: dict[str, list[int]] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        name = name.strip()
        try:
            if not (sep and name and spec.strip()):
                raise ValueError(item)
            if ":" in spec:
                parts = [int(p) for p in spec.split(":")]
                if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0):
                    raise ValueError(item)
                low, high, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1
                values = list(range(low, high + 1, step))
            else:
                values = [int(v) for v in spec.split(",")]
        except ValueError:
            raise ConfigError(
                f"--grid {item!r}: expected name=LOW:HIGH:STEP (e.g. fast=5:50:5) or name=V1,V2,..."
            ) from None
        if not values:
            raise ConfigError(f"--grid {item!r}: the range is empty")
        grid[name] = sorted(set(grid.get(name, []) + values))
    return grid


def _combinations(config: BacktestConfig, grid: Mapping[str, Sequence[int]]) -> tuple[np.ndarray, np.ndarray, int]:
    names = SWEEPABLE.get(config.strategy)
    if names is None:
        raise ConfigError(
            f"strategy {config.strategy!r} has no compiled column sweep (available: {', '.join(SWEEPABLE)}); "
            "use 'autotrader optimize' without --grid for a walk-forward search"
        )
    unknown = sorted(set(grid) - set(names))
    if unknown:
        raise ConfigError(f"cannot sweep {unknown[0]!r} of {config.strategy}: the grid takes {', '.join(names)}")
    base = get_strategy(config.strategy, **config.params).params
    values = [list(grid.get(n, [base[n]])) for n in names]
    fast, slow, skipped = [], [], 0
    for f in values[0]:
        for s in values[1]:
            try:
                get_strategy(config.strategy, **{**config.params, "fast": f, "slow": s})
            except ConfigError:
                skipped += 1
                continue
            fast.append(f)
            slow.append(s)
    if not fast:
        raise ConfigError(
            f"no valid combination in the grid ({skipped} refused by {config.strategy}, e.g. fast >= slow)"
        )
    return np.array(fast, dtype=np.int64), np.array(slow, dtype=np.int64), skipped


def _rules(
    config: BacktestConfig, data: AlignedCandles, instruments: Mapping[str, Instrument] | None
) -> list[Instrument]:
    """The instrument rules ``run_backtest`` uses."""
    return instrument_rules_for(config, data, instruments)


def sweep(
    config: BacktestConfig,
    data: AlignedCandles,
    grid: Mapping[str, Sequence[int]],
    *,
    instruments: Mapping[str, Instrument] | None = None,
) -> SweepResult:
    """Backtest every combination of ``grid`` under ``config`` in one parallel compiled pass.

    Each row equals ``run_backtest`` with that combination's parameters (same kernel, same inputs).
    """
    started = time.perf_counter()
    limits = config.limits()
    if data.n_bars < 2:
        raise DataError("fewer than two bars in the requested period: nothing to backtest")
    fast, slow, skipped = _combinations(config, grid)
    rules = _rules(config, data, instruments)
    down = -1.0 if get_strategy(config.strategy, **config.params).params.get("short") else 0.0
    atr_pct = daily_volatility_of(data, config.timeframe) if config.sizing == "volatility" else np.zeros((1, 1))
    offline = offline_mask(config, data)
    out = np.full((len(fast), _N_METRICS), np.nan)
    _sweep_sma_cross_nb(
        np.ascontiguousarray(data.ts, dtype=np.int64),
        np.ascontiguousarray(data.open, dtype=np.float64),
        np.ascontiguousarray(data.high, dtype=np.float64),
        np.ascontiguousarray(data.low, dtype=np.float64),
        np.ascontiguousarray(data.close, dtype=np.float64),
        np.ascontiguousarray(data.volume, dtype=np.float64),
        np.ascontiguousarray(data.present, dtype=np.bool_),
        fast,
        slow,
        down,
        atr_pct,
        symbol_rules_of(rules),
        np.array([kernel_settings(config, limits)]),  # an array: numba's parallel loop cannot share a record
        offline,
        out,
    )
    dtype = [("fast", "i8"), ("slow", "i8")] + [(m, "i8" if m == "trades" else "f8") for m in METRICS]
    table = np.zeros(len(fast), dtype=dtype)
    table["fast"] = fast
    table["slow"] = slow
    for k, m in enumerate(METRICS):
        table[m] = out[:, k]
    return SweepResult(config.strategy, ("fast", "slow"), table, skipped, data.n_bars, time.perf_counter() - started)


@njit(cache=True)
def _daily_sharpe_nb(ts, equity):  # pragma: no cover - compiled
    """``metrics.sharpe_ratio(metrics.daily_returns(metrics.daily_equity(ts, equity)[1]))`` in one pass."""
    n = equity.shape[0]
    first_day = ts[0] // DAY_MS
    n_days = int(ts[n - 1] // DAY_MS - first_day) + 1
    rets = np.empty(n_days)
    prev = equity[0]
    k = 0
    for i in range(n):
        day = ts[i] // DAY_MS
        if i == n - 1 or ts[i + 1] // DAY_MS != day:  # the last bar of a day with bars
            while first_day + k < day:  # calendar days without bars repeat the previous value
                rets[k] = prev / prev - 1.0
                k += 1
            rets[k] = equity[i] / prev - 1.0
            prev = equity[i]
            k += 1
    if k < 2:
        return np.nan
    lo = rets[0]
    hi = rets[0]
    total = 0.0
    for i in range(k):
        lo = min(lo, rets[i])
        hi = max(hi, rets[i])
        total += rets[i]
    if hi - lo == 0.0:
        return np.nan
    mean = total / k
    ss = 0.0
    for i in range(k):
        ss += (rets[i] - mean) ** 2
    std = math.sqrt(ss / (k - 1))
    if std == 0.0:
        return np.nan
    return mean / std * math.sqrt(DAYS_PER_YEAR)


@njit(cache=True)
def _metrics_nb(ts, equity, trades, n_trades, out):  # pragma: no cover - compiled
    """Write ``METRICS`` of one run into ``out`` (see the module docstring)."""
    n = equity.shape[0]
    peak = equity[0]
    worst = 0.0
    for i in range(n):
        peak = max(peak, equity[i])
        worst = min(worst, equity[i] / peak - 1.0)
    wins = 0
    gross_win = 0.0
    gross_loss = 0.0
    for k in range(n_trades):
        p = trades[k].pnl
        if p > 0.0:
            wins += 1
            gross_win += p
        elif p < 0.0:
            gross_loss -= p
    out[0] = equity[n - 1] / equity[0] - 1.0
    out[1] = worst
    out[2] = _daily_sharpe_nb(ts, equity)
    out[3] = n_trades
    out[4] = wins / n_trades if n_trades > 0 else np.nan
    if gross_loss > 0.0:
        out[5] = gross_win / gross_loss
    else:
        out[5] = np.inf if gross_win > 0.0 else np.nan
    out[6] = equity[n - 1]


@njit(cache=True, parallel=True)
def _sweep_sma_cross_nb(  # pragma: no cover - compiled
    ts,
    open_,
    high,
    low,
    close,
    volume,
    present,
    fast,
    slow,
    down,
    atr_pct,
    symbol_rules,
    settings,
    offline,
    out,
):
    """One ``sma_cross`` backtest per combination, in parallel; metrics into ``out[k]``.

    ``settings`` holds the one ``KERNEL_SETTINGS_DTYPE`` record of ``kernel_settings``."""
    n, m = close.shape
    confidence = np.full((n, m), np.nan)  # sma_cross gives no confidence (read as sure); shared, read-only
    for k in prange(fast.shape[0]):
        direction = sma_cross_direction_nb(close, fast[k], slow[k], 1.0, down)
        rows, n_signals = signal_rows_nb(direction)
        equity = np.empty(n)
        exposure = np.empty(n)
        trades = np.empty(n_signals + m + 1, dtype=TRADE_DTYPE)  # room for every signal plus one per symbol
        n_trades, _ = simulate_portfolio_into_nb(
            ts,
            open_,
            high,
            low,
            close,
            volume,
            present,
            direction,
            rows,
            confidence,
            atr_pct,
            symbol_rules,
            settings[0],
            offline,
            np.empty(0, dtype=SYMBOL_DTYPE),  # no names: the metrics read only the trades' numbers
            equity,
            exposure,
            trades,
            np.empty(0, dtype=EVENT_DTYPE),  # no room: the sweep keeps no events
        )
        _metrics_nb(ts, equity, trades, n_trades, out[k])
