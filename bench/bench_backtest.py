"""Backtest-engine benchmark: AutoTrader's engine against vectorbt, backtesting.py and a bare numba loop.

Run ``python bench/bench_backtest.py`` (``--quick`` for a smoke run on 10x less data, ``--repeats N``
for more warm samples, ``--skip-backtesting-py`` to leave out the slowest peer, ``--goals-only`` for
the cases that carry a goal, ``--fresh-only`` for the fresh-process runs alone, ``--sweep-combos N``
/ ``--sweep-repeats N`` for the sweep case). Exit status 1 if a goal is missed or the engines
disagree (a sweep difference where the exact reference sides with us is vectorbt's float error:
reported, not a failure). The end of the output lists every goal of
issue #14 with its measured figure and "met" / "NOT MET".

The workload (the same for every engine)
    Long-only SMA cross, 20/100 on the close: go long on the bar the fast SMA crosses above the
    slow one, go flat on the bar it crosses below; both orders fill at the NEXT bar's open. Fee
    0.1 % per side, all-in sizing (``qty = cash / (open * (1 + fee))``), no slippage, capital
    10,000. Variants: a 2 % stop-loss checked on the bar lows (the entry bar included; a bar that
    opens through the stop exits at the open), and fee 0. Data: seeded synthetic 1-minute candles,
    a GBM with Student-t (df 4) innovations at ~80 %/yr volatility, open = previous close:
    (a) 1M bars of one symbol, (b) 2.6M bars of one symbol, (c) 5 symbols x 2.6M bars (13M
    bar-symbols). ``--quick``: 100k, 260k and 5 x 260k. Every timed run starts from pandas
    DataFrames, as a library user holds candles: ours converts them (``aligned_from_frames``) and
    computes the result's data fingerprint (xxh3-128) inside the timed run; vectorbt takes the
    frames as they are.

Sweep case
    1,000 combinations (fast 5..54 x slow 60..250) of the same strategy on the 1M bars: ours is
    ``autotrader.backtest.sweep`` (one compiled pass, parallel over the combinations, each through
    the full engine kernel) returning a metrics table; vectorbt runs ``vbt.MA.run`` with lists of
    windows, ``ma_crossed_above/below`` (its column broadcasting), ``from_signals`` and total return,
    max drawdown, Sharpe and trade records, in chunks of 10 columns (it peaks at ~400 bytes per bar
    and column: all 1,000 at once would need ~400 GB; chunking only lowers vectorbt's memory
    figure). Trade counts and final equity are compared combination by combination.

Fresh processes, exactness
    The 1M bars, rounded to a 0.01 tick, are written to a Parquet store; fresh processes then run
    the Python API (imports, ``read_aligned``, ``run_backtest``), ``autotrader backtest --strategy
    sma_cross`` (default output: console summary, HTML and JSON) and ``autotrader --help``, each
    after one untimed warm-up: what a user's second run has, numba's on-disk cache, the OS file
    cache and Python bytecode (an installed package is byte-compiled by pip; here the warm-up
    writes it under the bench's temporary folder, even if PYTHONDONTWRITEBYTECODE is set).
    ``--fresh-only`` runs just this part (and the fresh-process goals). Exactness: on those tick prices and every
    bundled real 1h series, every ``sma_cross`` cross (and, for comparison, every cross of pandas'
    rolling means) is compared with an exact integer reference.

Engines (each one goes from candles to an equity curve and a trade list, signals included)
    autotrader    ``run_backtest`` with the full engine: strategy ``sma_cross`` (signals), the risk
                  engine (limits set so they never bind: position_size 1.0, daily_loss,
                  max_drawdown and correlation 1.0), instrument rules with lot step and minimum
                  notional 0 (so sizing matches the peers), trade/event records, the buy-and-hold
                  benchmark and the data fingerprint.
    vectorbt      ``vbt.MA`` + ``ma_crossed_above/below`` for signals, shifted one bar, then
                  ``Portfolio.from_signals(price=open, fees=0.001, size=inf, init_cash=10000,
                  direction='longonly', min_size=0)`` (its default min_size of 1e-8 units would
                  refuse the tiny orders our rules accept; see below); the stop variant adds
                  ``sl_stop=0.02`` with open/high/low and ``stop_entry_price='price'`` (the stop is
                  2 % below the fill price, as ours, instead of vectorbt's default of the entry
                  bar's close). The timed call includes ``pf.value()`` and the trade records,
                  which our engine also returns.
    backtesting   backtesting.py 0.6 (1M bars only; it runs a Python loop per bar):
                  ``backtesting.lib.FractionalBacktest`` with a unit of 2**-40 (so quantities are
                  effectively continuous and prices scale exactly), ``commission=0.001``,
                  ``trade_on_close=False``, ``self.buy()`` (all-in) / ``self.position.close()``.
                  For the stop variant, ``buy(sl=...)`` must be given a price when the order is
                  placed, so the strategy reads the next bar's open to put the stop 2 % below the
                  fill, exactly where our engine puts it (a peek used only to express our rule).
    floor         a bare numba loop (``sma_cross_floor_nb`` below) computing the same SMAs,
                  crosses, fills, fees, stops, equity curve and trade list in one pass, with
                  nothing else: the lower bound for this workload on one core.

Five symbols: which comparison is fair
    Our multi-symbol run shares ONE capital across the symbols; with position_size 1.0 the first
    symbol to signal takes all the cash and the others are refused until it exits. That is a
    different (path-dependent) portfolio from five independent accounts. The timed 13M comparison
    therefore uses five independent accounts of 10,000 each in every engine: ours runs
    ``run_backtest`` once per symbol (five calls, all timed), vectorbt runs one ``from_signals`` over
    five columns with ``cash_sharing=False`` and ``init_cash=10000`` per column, the floor loops over
    the columns. Trades and equity can then be compared symbol by symbol. For information, the
    13M plain case also times the shared-capital form in both engines (ours: one call on the
    aligned five-symbol data; vectorbt: ``group_by=True, cash_sharing=True, call_seq='auto'``).
    These two rows have no goal: see the printed notes for how their sizing differs.

Measurements
    Each engine runs in its own subprocess (so numba compilation, imports and peak memory are its
    own). Wall time: the first call (compilation or numba cache load included) and the median of
    ``--repeats`` warm calls. Bar-symbols per second = bars x symbols / warm median. Peak memory:
    ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end of the subprocess, reported as the
    total and as the increase over a subprocess that only imports numpy and loads the same data
    (the parent process imports only numpy and holds no data, because a child's ``ru_maxrss``
    starts from its parent's peak). Our run is also profiled (median of ``--repeats`` extra runs):
    DataFrame conversion, signals, kernel (it writes the trade and event records) and fingerprint,
    with the kernel's cost per bar beside the bare loop's ("kernel cost per bar: X ns (bare loop Y ns ...)").

Agreement
    Every peer's trade list is compared with ours symbol by symbol: entry and exit bars and prices,
    then the final equity. A difference is "explained" only when it is one of the two known kinds
    (vectorbt letting a stop inside a bar beat an exit signal at that bar's open; vectorbt no
    longer trading once cash and position are within its 1e-12 tolerance of zero); anything else
    is reported as DIFFER. The printed notes explain every difference between the engines' rules.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CAPITAL = 10_000.0
FEE = 0.001
STOP = 0.02
FAST = 20
SLOW = 100
ANNUAL_VOL = 0.80
T_DF = 4
MINUTES_PER_YEAR = 525_600
SEED = 20_240_601
START_MS = 1_546_300_800_000  # 2019-01-01 00:00 UTC
START_PRICES = (30_000.0, 2_000.0, 300.0, 0.5, 20.0)
BT_UNIT = 2.0**-40  # backtesting.py fractional unit: a power of two, so price scaling is exact

# goals (from the performance issue #14)
GOAL_SPEEDUP_VS_VBT = 5.0  # single backtest at 1M, 2.6M and 13M bar-symbols; the sweep too
GOAL_FLOOR_RATIO = 5.0  # our time / the bare loop's, 1M bars
GOAL_MEMORY_RATIO = 0.5  # our peak memory over the data / vectorbt's, 13M bar-symbols; the sweep too
GOAL_API_S = 0.8  # fresh process: imports, Parquet read, one 1M-bar backtest, exit
GOAL_CLI_S = 1.5  # fresh process: `autotrader backtest --strategy sma_cross` on 1M stored bars
GOAL_HELP_S = 0.3  # fresh process: `autotrader --help`
SWEEP_COMBOS = 1_000
SWEEP_FAST = tuple(range(5, 55))  # 50 fast windows x 20 slow windows (60..250) = 1,000 combinations
SWEEP_SLOW_FROM = 60
VBT_SWEEP_CHUNK = 10  # vectorbt gets the sweep in chunks of columns: ~400 bytes per bar and column at its peak
TICK = 0.01  # the stored copy of the 1M bars (CLI and API runs, exactness check) is rounded to this tick

ENGINE_LABELS = {
    "autotrader": "autotrader (run_backtest)",
    "autotrader_shared": "autotrader, 1 call, shared capital",
    "vectorbt": "vectorbt from_signals",
    "vectorbt_shared": "vectorbt, grouped cash sharing",
    "backtesting": "backtesting.py FractionalBacktest",
    "floor": "bare numba loop (floor)",
    "autotrader_sweep": "autotrader sweep (columns, prange)",
    "vectorbt_sweep": "vectorbt broadcasting (chunked)",
}
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str
    stop_loss: float | None
    fee: float
    engines: tuple[str, ...]
    combos: int = 0  # > 0: a parameter sweep of this many SMA combinations


@dataclass
class Run:
    """What one engine subprocess reports."""

    engine: str
    case: str
    n_bars: int
    n_symbols: int
    first_s: float
    warm_s: list[float]
    rss_before_mb: float
    rss_peak_mb: float
    hwm_mb: float
    trades: list[int]
    final_equity: list[float]
    trades_file: str
    phases: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def warm_median_s(self) -> float:
        return statistics.median(self.warm_s)

    @property
    def bars_per_s(self) -> float:
        return self.n_bars * self.n_symbols / self.warm_median_s


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def synthetic_candles(n_bars: int, n_symbols: int, seed: int = SEED) -> dict[str, Any]:
    """Seeded 1-minute candles: GBM with unit-variance Student-t innovations, ~80 %/yr volatility.

    Price arrays have shape ``(n_bars, n_symbols)`` in column-major order, so one symbol's column
    is contiguous (a zero-copy ``(n_bars, 1)`` view for a single-symbol engine and the native
    layout of a pandas/vectorbt frame). Open is the previous close; the high and low add a
    half-normal excursion of half a bar's volatility beyond the open/close.
    """
    sigma = ANNUAL_VOL / math.sqrt(MINUTES_PER_YEAR)
    t_scale = math.sqrt((T_DF - 2) / T_DF)
    shape = (n_bars, n_symbols)
    open_, high, low, close = (np.empty(shape, order="F") for _ in range(4))
    for j in range(n_symbols):
        rng = np.random.default_rng([seed, j])
        p0 = START_PRICES[j % len(START_PRICES)]
        r = rng.standard_t(T_DF, n_bars)
        r *= sigma * t_scale
        r -= 0.5 * sigma * sigma
        np.cumsum(r, out=r)
        r += math.log(p0)
        np.exp(r, out=close[:, j])
        open_[0, j] = p0
        open_[1:, j] = close[:-1, j]
        for out, sign, pick in ((high, 1.0, np.maximum), (low, -1.0, np.minimum)):
            w = rng.standard_normal(n_bars)
            np.abs(w, out=w)
            w *= sign * 0.5 * sigma
            np.exp(w, out=w)
            pick(open_[:, j], close[:, j], out=out[:, j])
            out[:, j] *= w
    return {
        "ts": START_MS + 60_000 * np.arange(n_bars, dtype=np.int64),
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": np.ones(shape, order="F"),
        "present": np.ones(shape, dtype=bool, order="F"),
    }


def _save_dataset(folder: Path, n_bars: int, n_symbols: int) -> dict[str, Any]:
    started = time.perf_counter()
    data = synthetic_candles(n_bars, n_symbols)
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in data.items():
        np.save(folder / f"{name}.npy", arr)
    return {"generate_s": time.perf_counter() - started}


def _load_dataset(folder: Path) -> dict[str, Any]:
    names = ("ts", "open", "high", "low", "close", "volume", "present")
    return {name: np.load(folder / f"{name}.npy") for name in names}


def _symbols(n: int) -> tuple[str, ...]:
    return tuple(f"SYN{j}USDT" for j in range(n))


# --------------------------------------------------------------------------------------------------
# The floor: one bare numba pass
# --------------------------------------------------------------------------------------------------


def _sma_cross_floor(open_, high, low, close, fast_n, slow_n, cash, fee, stop_loss):  # noqa: C901
    """One symbol, one pass: Kahan SMAs, strict crosses, next-open fills, stop on lows, all-in sizing.

    The arithmetic mirrors ``autotrader.strategy.indicators`` and the engine kernel operation by
    operation, so the trades are bit-identical. Returns ``(equity, trades)``; trade rows are
    ``(entry_bar, exit_bar, entry_price, exit_price, qty, pnl)``.
    """
    n = close.shape[0]
    equity = np.empty(n)
    trades = np.empty((1024, 6))
    n_trades = 0
    wallet = cash
    qty = entry = entry_fee = stop = 0.0
    entry_bar = 0
    pend_entry = pend_exit = False
    f_sum = f_comp = s_sum = s_comp = 0.0
    have_prev = fast_below = slow_below = False
    for t in range(n + 1):
        last = t == n  # one extra step closes what is still open at the last close
        o = close[n - 1] if last else open_[t]
        exit_price = o if (pend_exit or last) else -1.0
        pend_exit = False
        if pend_entry:
            pend_entry = False
            q = wallet / (o * (1.0 + fee)) if wallet > 0.0 else 0.0
            if q > 0.0:
                qty, entry, entry_bar = q, o, t
                entry_fee = q * o * fee
                wallet -= entry_fee
                stop = o * (1.0 - stop_loss) if stop_loss > 0.0 else 0.0
        if exit_price < 0.0 and qty != 0.0 and stop > 0.0 and low[t] <= stop:
            exit_price = min(stop, o)
        if exit_price >= 0.0 and qty != 0.0:
            exit_fee = qty * exit_price * fee
            pnl = qty * (exit_price - entry)
            wallet += pnl - exit_fee
            if n_trades == trades.shape[0]:
                grown = np.empty((2 * n_trades, 6))
                grown[:n_trades] = trades
                trades = grown
            trades[n_trades, 0] = entry_bar
            trades[n_trades, 1] = min(t, n - 1)
            trades[n_trades, 2] = entry
            trades[n_trades, 3] = exit_price
            trades[n_trades, 4] = qty
            trades[n_trades, 5] = pnl - exit_fee - entry_fee
            n_trades += 1
            qty = 0.0
        if last:
            equity[n - 1] = wallet
            break
        equity[t] = wallet + qty * (close[t] - entry) if qty != 0.0 else wallet + 0.0
        # this bar's close: Kahan-summed SMAs, strict crosses, orders for the next open
        y = close[t] - f_comp
        s = f_sum + y
        f_comp = (s - f_sum) - y
        f_sum = s
        y = close[t] - s_comp
        s = s_sum + y
        s_comp = (s - s_sum) - y
        s_sum = s
        if t >= fast_n:
            y = -close[t - fast_n] - f_comp
            s = f_sum + y
            f_comp = (s - f_sum) - y
            f_sum = s
        if t >= slow_n:
            y = -close[t - slow_n] - s_comp
            s = s_sum + y
            s_comp = (s - s_sum) - y
            s_sum = s
        if t < slow_n - 1 or t == n - 1:
            continue
        fast = f_sum / fast_n
        slow = s_sum / slow_n
        if have_prev and fast_below and fast > slow and qty == 0.0:
            pend_entry = True
        if have_prev and slow_below and slow > fast and qty != 0.0:
            pend_exit = True
        fast_below = fast < slow
        slow_below = slow < fast
        have_prev = True
    return equity, trades[:n_trades]


_FLOOR: list[Callable[..., Any]] = []


def sma_cross_floor_nb() -> Callable[..., Any]:
    """The compiled floor loop (compiled on first use and cached on disk by numba; numba is imported lazily)."""
    if not _FLOOR:
        from numba import njit

        _FLOOR.append(njit(cache=True)(_sma_cross_floor))
    return _FLOOR[0]


# --------------------------------------------------------------------------------------------------
# Engines (run inside a worker subprocess). Each returns (call, collect): ``call()`` is what is timed,
# ``collect(result)`` turns the last result into per-column trades, final equity and trade arrays.
# --------------------------------------------------------------------------------------------------


@functools.cache
def _sma_cross_strategy() -> tuple[Any, str]:
    """The library's ``sma_cross``; if the library does not import, the same signals from the same kernels."""
    try:
        from autotrader.strategy.library.sma_cross import SmaCross

        return SmaCross(fast=FAST, slow=SLOW), "autotrader.strategy.library.sma_cross.SmaCross"
    except ImportError as e:
        from autotrader.strategy.base import Signals, Strategy
        from autotrader.strategy.indicators import crossed_above_nb, sma_nb

        class BenchSmaCross(Strategy):
            name = "bench_sma_cross"

            def generate(self, data: Any) -> Any:
                fast = sma_nb(data.close, FAST)
                slow = sma_nb(data.close, SLOW)
                direction = np.full(data.close.shape, np.nan)
                direction[crossed_above_nb(fast, slow)] = 1.0
                direction[crossed_above_nb(slow, fast)] = 0.0
                return Signals.from_direction(direction)

        return BenchSmaCross(), f"bench copy of sma_cross (the strategy library failed to import: {e})"


def _autotrader_config(symbols: tuple[str, ...], case: Case) -> Any:
    from autotrader.backtest.runner import BacktestConfig

    return BacktestConfig(
        symbols=symbols,
        exchange="bench",
        timeframe="1m",
        strategy="sma_cross",
        initial_capital=CAPITAL,
        fee=case.fee,
        slippage_bps=0.0,
        risk_overrides={
            "position_size": 1.0,
            "stop_loss": case.stop_loss,
            "daily_loss": 1.0,
            "max_drawdown": 1.0,
            "correlation": 1.0,
        },
    )


def _loose_rules(symbols: tuple[str, ...]) -> dict[str, Any]:
    from autotrader.domain.instrument import Instrument

    return {
        s: Instrument.trading(s, "spot", tick_size=0.0, lot_step=0.0, min_qty=0.0, min_notional=0.0) for s in symbols
    }


def _symbol_frames(data: dict[str, Any], cols: range) -> dict[str, Any]:
    """One pandas DataFrame per symbol (open/high/low/close/volume on a DatetimeIndex), as a user holds
    candles; built without copying the bench's arrays (untimed: the user already has the frame)."""
    import pandas as pd

    index = pd.DatetimeIndex(pd.to_datetime(data["ts"], unit="ms"), name="time")
    syms = _symbols(data["close"].shape[1])
    names = ("open", "high", "low", "close", "volume")
    return {syms[j]: pd.DataFrame({k: data[k][:, j] for k in names}, index=index, copy=False) for j in cols}


def _to_engine_input(frames: dict[str, Any]) -> Any:
    """Timed in every run: the user's DataFrames -> the engine's input (``aligned_from_frames``)."""
    from autotrader.marketdata.frames import aligned_from_frames

    return aligned_from_frames(frames)


def _fingerprint_of(result: Any) -> str:
    """Timed in every run: the data fingerprint every result carries (computed on first use)."""
    return str(result.data_fingerprint)


def _trades_of_autotrader(results: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    col = 0
    for res in results:
        for sym in res.symbols:
            tr = res.trades[res.trades["symbol"] == sym]
            out[f"c{col}"] = _trade_table(
                tr["entry_bar"], tr["exit_bar"], tr["entry_price"], tr["exit_price"], tr["pnl"], tr["qty"]
            )
            col += 1
    return out


def _trade_table(entry_bar: Any, exit_bar: Any, entry_price: Any, exit_price: Any, pnl: Any, qty: Any) -> Any:
    """Rows ``(entry_bar, exit_bar, entry_price, exit_price, pnl, qty)`` as float64, one per trade."""
    return np.column_stack([entry_bar, exit_bar, entry_price, exit_price, pnl, qty]).astype(np.float64)


def engine_autotrader(data: dict[str, Any], case: Case, notes: list[str]) -> tuple[Callable, Callable]:
    from autotrader.backtest.runner import run_backtest

    m = data["close"].shape[1]
    strategy, where = _sma_cross_strategy()
    notes.append(f"strategy: {where}")
    jobs = []
    for j in range(m):
        sym = _symbols(m)[j : j + 1]
        jobs.append((_autotrader_config(sym, case), _symbol_frames(data, range(j, j + 1)), _loose_rules(sym)))

    def call() -> list[Any]:
        results = []
        for cfg, frames, rules in jobs:
            result = run_backtest(cfg, _to_engine_input(frames), strategy, instruments=rules)
            _fingerprint_of(result)
            results.append(result)
        return results

    def collect(results: list[Any]) -> tuple[list[int], list[float], dict[str, Any]]:
        reasons, counts = np.unique(np.concatenate([r.trades["exit_reason"] for r in results]), return_counts=True)
        notes.append("exits by reason: " + ", ".join(f"{r} {c}" for r, c in zip(reasons, counts, strict=True)))
        return (
            [len(r.trades) for r in results],
            [float(r.equity[-1]) for r in results],
            _trades_of_autotrader(results),
        )

    return call, collect


def engine_autotrader_shared(data: dict[str, Any], case: Case, notes: list[str]) -> tuple[Callable, Callable]:
    from autotrader.backtest.runner import run_backtest

    m = data["close"].shape[1]
    syms = _symbols(m)
    strategy, where = _sma_cross_strategy()
    notes.append(f"strategy: {where}; the {m} frames are stacked into row-major (n, {m}) arrays in every run")
    cfg, frames, rules = _autotrader_config(syms, case), _symbol_frames(data, range(m)), _loose_rules(syms)

    def call() -> list[Any]:
        result = run_backtest(cfg, _to_engine_input(frames), strategy, instruments=rules)
        _fingerprint_of(result)
        return [result]

    def collect(results: list[Any]) -> tuple[list[int], list[float], dict[str, Any]]:
        res = results[0]
        counts = [int((res.trades["symbol"] == s).sum()) for s in syms]
        names, counts_by_name = np.unique(res.events["event"], return_counts=True)
        summary = ", ".join(f"{c} {n}" for n, c in zip(names, counts_by_name, strict=True)) or "none"
        notes.append(f"entries refused by the engine: {summary}")
        notional = res.trades["qty"] * res.trades["entry_price"]
        share = notional / res.equity[np.maximum(res.trades["entry_bar"] - 1, 0)]
        dust = share[share < 1e-6]
        largest = f", the largest {dust.max():.1e} of the equity" if len(dust) else ""
        notes.append(f"{len(dust)} dust trades (entry notional below 1e-6 of the equity{largest}) on left-over cash")
        return counts, [float(res.equity[-1])], _trades_of_autotrader(results)

    return call, collect


def _vbt_frames(data: dict[str, Any]) -> tuple[Any, ...]:
    import pandas as pd

    index = pd.DatetimeIndex(pd.to_datetime(data["ts"], unit="ms"), name="time")
    cols = list(_symbols(data["close"].shape[1]))
    return tuple(
        pd.DataFrame(data[name], index=index, columns=cols, copy=False) for name in ("open", "high", "low", "close")
    )


def _engine_vectorbt(data: dict[str, Any], case: Case, notes: list[str], shared: bool) -> tuple[Callable, Callable]:
    import vectorbt as vbt

    open_, high, low, close = _vbt_frames(data)
    try:
        from vectorbt._engine import is_rust_available

        rust = "installed" if is_rust_available() else "not installed, so its numba engine runs"
    except ImportError:
        rust = "not part of this version"
    notes.append(f"vectorbt {vbt.__version__}, engine setting {vbt.settings.get('engine')!r}, vectorbt-rust {rust}")
    kwargs: dict[str, Any] = {
        "price": open_,
        "fees": case.fee,
        "size": np.inf,
        "init_cash": CAPITAL,
        "direction": "longonly",
        "min_size": 0.0,  # vectorbt's default refuses orders below 1e-8 units; we have no minimum (min_qty 0)
    }
    if case.stop_loss:
        kwargs |= {
            "sl_stop": case.stop_loss,
            "open": open_,
            "high": high,
            "low": low,
            "stop_entry_price": "price",
        }
    if shared:
        kwargs |= {"group_by": True, "cash_sharing": True, "call_seq": "auto"}

    def call() -> Any:
        fast = vbt.MA.run(close, FAST, short_name="fast")
        slow = vbt.MA.run(close, SLOW, short_name="slow")
        entries = fast.ma_crossed_above(slow).vbt.fshift(1, fill_value=False)
        exits = fast.ma_crossed_below(slow).vbt.fshift(1, fill_value=False)
        pf = vbt.Portfolio.from_signals(close, entries.to_numpy(), exits.to_numpy(), **kwargs)
        return pf, pf.value(), pf.trades.records

    def collect(result: Any) -> tuple[list[int], list[float], dict[str, Any]]:
        pf, value, rec = result
        assets = pf.assets().to_numpy()[-1]
        last_close = close.to_numpy()[-1]
        # liquidation value: our engine sells what is still open at the last close and pays the fee
        liq = assets * last_close * case.fee
        final = np.atleast_1d(value.to_numpy()[-1])
        final = [float(final[0] - liq.sum())] if shared else [float(v) for v in final - liq]
        tables = {}
        for j in range(close.shape[1]):
            r = rec[rec["col"] == j]
            tables[f"c{j}"] = _trade_table(
                r["entry_idx"], r["exit_idx"], r["entry_price"], r["exit_price"], r["pnl"], r["size"]
            )
        counts = [int((rec["col"] == j).sum()) for j in range(close.shape[1])]
        return counts, final, tables

    return call, collect


def engine_vectorbt(data: dict[str, Any], case: Case, notes: list[str]) -> tuple[Callable, Callable]:
    return _engine_vectorbt(data, case, notes, shared=False)


def engine_vectorbt_shared(data: dict[str, Any], case: Case, notes: list[str]) -> tuple[Callable, Callable]:
    return _engine_vectorbt(data, case, notes, shared=True)


def _rolling_mean(values: Any, n: int) -> Any:
    import pandas as pd

    return pd.Series(values).rolling(n).mean().to_numpy()


def engine_backtesting(data: dict[str, Any], case: Case, notes: list[str]) -> tuple[Callable, Callable]:
    import pandas as pd
    from backtesting import Strategy
    from backtesting import __version__ as bt_version
    from backtesting.lib import FractionalBacktest, crossover

    if data["close"].shape[1] != 1:
        raise SystemExit("backtesting.py runs one symbol per backtest; the bench uses it for the 1M case only")
    stop_loss = case.stop_loss or 0.0
    index = pd.DatetimeIndex(pd.to_datetime(data["ts"], unit="ms"))
    frame = pd.DataFrame(
        {k.capitalize(): data[k][:, 0] for k in ("open", "high", "low", "close", "volume")}, index=index
    )
    notes.append(f"backtesting.py {bt_version}: FractionalBacktest(fractional_unit=2**-40)")

    class SmaCrossBt(Strategy):
        def init(self) -> None:
            self.fast = self.I(_rolling_mean, self.data.Close, FAST)
            self.slow = self.I(_rolling_mean, self.data.Close, SLOW)
            self.all_open = np.asarray(self.data.Open)  # the full column (init sees every bar)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                i = len(self.data) - 1
                if not self.position and i + 1 < len(self.all_open):
                    sl = self.all_open[i + 1] * (1.0 - stop_loss) if stop_loss else None
                    self.buy(sl=sl)
            elif crossover(self.slow, self.fast):
                self.position.close()

    def call() -> Any:
        bt = FractionalBacktest(
            frame,
            SmaCrossBt,
            cash=CAPITAL,
            commission=case.fee,
            trade_on_close=False,
            fractional_unit=BT_UNIT,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bt.run()

    def collect(stats: Any) -> tuple[list[int], list[float], dict[str, Any]]:
        closed = stats["_trades"]
        still_open = list(stats["_strategy"].trades)
        liq = sum(t.value for t in still_open) * case.fee
        n = len(frame)
        table = _trade_table(
            closed["EntryBar"],
            closed["ExitBar"],
            closed["EntryPrice"],
            closed["ExitPrice"],
            closed["PnL"],
            closed["Size"],
        )
        for t in still_open:
            row = [t.entry_bar, n - 1, t.entry_price / BT_UNIT, frame["Close"].iloc[-1], t.pl - liq, t.size * BT_UNIT]
            table = np.vstack([table, row])
        return [len(table)], [float(stats["Equity Final [$]"] - liq)], {"c0": table}

    return call, collect


def engine_floor(data: dict[str, Any], case: Case, notes: list[str]) -> tuple[Callable, Callable]:
    floor = sma_cross_floor_nb()
    m = data["close"].shape[1]
    cols = [tuple(data[k][:, j] for k in ("open", "high", "low", "close")) for j in range(m)]
    stop_loss = case.stop_loss or 0.0

    def call() -> list[Any]:
        return [floor(o, h, lo, c, FAST, SLOW, CAPITAL, case.fee, stop_loss) for o, h, lo, c in cols]

    def collect(results: list[Any]) -> tuple[list[int], list[float], dict[str, Any]]:
        tables = {}
        for j, (_, tr) in enumerate(results):
            tables[f"c{j}"] = _trade_table(tr[:, 0], tr[:, 1], tr[:, 2], tr[:, 3], tr[:, 5], tr[:, 4])
        return [len(tr) for _, tr in results], [float(eq[-1]) for eq, _ in results], tables

    return call, collect


def sweep_grid(combos: int) -> tuple[list[int], list[int]]:
    """Fast windows 5..54 and as many slow windows (60, 70, ...) as ``combos`` needs: every pair has fast < slow."""
    fast = list(SWEEP_FAST)
    n_slow = max(1, -(-combos // len(fast)))
    return fast, [SWEEP_SLOW_FROM + 10 * i for i in range(n_slow)]


def _sweep_tables(fast: Any, slow: Any, trades: Any, final: Any) -> dict[str, Any]:
    return {
        "fast": np.asarray(fast),
        "slow": np.asarray(slow),
        "trades": np.asarray(trades),
        "final": np.asarray(final),
    }


def engine_autotrader_sweep(data: dict[str, Any], case: Case, notes: list[str]) -> tuple[Callable, Callable]:
    from numba import get_num_threads

    from autotrader.backtest.sweep import sweep

    syms = _symbols(1)
    cfg, frames, rules = _autotrader_config(syms, case), _symbol_frames(data, range(1)), _loose_rules(syms)
    fast, slow = sweep_grid(case.combos)
    grid = {"fast": fast, "slow": slow}
    notes.append(
        f"autotrader.backtest.sweep over fast {fast[0]}..{fast[-1]} x slow {slow[0]}..{slow[-1]} "
        f"({len(fast) * len(slow)} combinations), {get_num_threads()} numba threads; "
        "every combination runs the full engine kernel"
    )

    def call() -> Any:
        return sweep(cfg, _to_engine_input(frames), grid, instruments=rules)

    def collect(result: Any) -> tuple[list[int], list[float], dict[str, Any]]:
        t = result.table
        return (
            [int(x) for x in t["trades"]],
            [float(x) for x in t["final_equity"]],
            _sweep_tables(t["fast"], t["slow"], t["trades"], t["final_equity"]),
        )

    return call, collect


def engine_vectorbt_sweep(data: dict[str, Any], case: Case, notes: list[str]) -> tuple[Callable, Callable]:
    import vectorbt as vbt

    open_, _, _, close = _vbt_frames(data)
    fast, slow = sweep_grid(case.combos)
    pairs = [(f, s) for f in fast for s in slow]
    chunks = [pairs[i : i + VBT_SWEEP_CHUNK] for i in range(0, len(pairs), VBT_SWEEP_CHUNK)]
    notes.append(
        f"vectorbt {vbt.__version__}: vbt.MA.run with lists of windows + ma_crossed_above/below (column "
        f"broadcasting), from_signals, then total_return, max_drawdown, sharpe_ratio, trade count and records, "
        f"in {len(chunks)} chunks of {VBT_SWEEP_CHUNK} columns"
    )
    last_close = float(close.to_numpy()[-1, 0])

    def call() -> Any:
        out = []
        for chunk in chunks:
            fast_ma = vbt.MA.run(close, [f for f, _ in chunk], short_name="fast")
            slow_ma = vbt.MA.run(close, [s for _, s in chunk], short_name="slow")
            entries = fast_ma.ma_crossed_above(slow_ma).vbt.fshift(1, fill_value=False)
            exits = fast_ma.ma_crossed_below(slow_ma).vbt.fshift(1, fill_value=False)
            pf = vbt.Portfolio.from_signals(
                close, entries.to_numpy(), exits.to_numpy(), price=open_, fees=case.fee, size=np.inf,
                init_cash=CAPITAL, direction="longonly", min_size=0.0, freq="1min",
            )  # fmt: skip
            rec = pf.trades.records
            open_size = np.bincount(
                rec["col"], weights=np.where(rec["status"] == 0, rec["size"], 0.0), minlength=len(chunk)
            )
            out.append(
                (
                    pf.total_return().to_numpy(),
                    pf.max_drawdown().to_numpy(),
                    pf.sharpe_ratio().to_numpy(),
                    np.bincount(rec["col"], minlength=len(chunk)),
                    pf.final_value().to_numpy() - open_size * last_close * case.fee,
                )
            )
            del fast_ma, slow_ma, entries, exits, pf, rec
            gc.collect()  # vectorbt's objects hold their arrays in reference cycles: ~200 MB a chunk otherwise
        return out

    def collect(result: Any) -> tuple[list[int], list[float], dict[str, Any]]:
        trades = np.concatenate([r[3] for r in result])
        final = np.concatenate([r[4] for r in result])
        return (
            [int(x) for x in trades],
            [float(x) for x in final],
            _sweep_tables([f for f, _ in pairs], [s for _, s in pairs], trades, final),
        )

    return call, collect


ENGINES: dict[str, Callable[[dict[str, Any], Case, list[str]], tuple[Callable, Callable]]] = {
    "autotrader": engine_autotrader,
    "autotrader_shared": engine_autotrader_shared,
    "vectorbt": engine_vectorbt,
    "vectorbt_shared": engine_vectorbt_shared,
    "backtesting": engine_backtesting,
    "floor": engine_floor,
    "autotrader_sweep": engine_autotrader_sweep,
    "vectorbt_sweep": engine_vectorbt_sweep,
}


# --------------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _hwm_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


KERNEL_PHASE = "kernel (simulate_portfolio_into_nb, trade and event records included)"


def _median_phases(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Each phase's median over ``max(repeats, 1)`` profiled runs (one run alone is noisy on a shared machine)."""
    runs = [_profile_autotrader(call) for _ in range(max(repeats, 1))]
    return {k: float(np.median([r.get(k, 0.0) for r in runs])) for k in runs[0]}


def _profile_autotrader(call: Callable[[], Any]) -> dict[str, float]:
    """One extra run with the runner's phases wrapped in timers (where does our time go?)."""
    import autotrader.backtest.runner as runner

    phases: dict[str, float] = {}
    strategy_cls = type(_sma_cross_strategy()[0])
    bench = sys.modules[__name__]
    targets: list[tuple[Any, str, str]] = [
        (bench, "_to_engine_input", "DataFrame -> engine input"),
        (bench, "_fingerprint_of", "data fingerprint (xxh3-128)"),
        (runner, "simulate_portfolio_into_nb", KERNEL_PHASE),
        (runner, "equal_weight_buy_and_hold", "buy-and-hold benchmark"),
        (strategy_cls, "generate", "signals (strategy.generate)"),
    ]
    saved = []
    for owner, attr, label in targets:
        original = getattr(owner, attr, None)
        if original is None:
            continue
        saved.append((owner, attr, original))

        def timed(*args: Any, _f: Callable = original, _label: str = label, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                phases[_label] = phases.get(_label, 0.0) + time.perf_counter() - started

        setattr(owner, attr, timed)
    try:
        started = time.perf_counter()
        call()
        total = time.perf_counter() - started
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)
    phases["rest of run_backtest (config, limits, arrays)"] = total - sum(phases.values())
    phases["total"] = total
    return phases


def worker(engine: str, case: Case, folder: Path, out_file: Path, repeats: int) -> dict[str, Any]:
    data = _load_dataset(folder)
    notes: list[str] = []
    call, collect = ENGINES[engine](data, case, notes)
    rss_before = _rss_mb()
    started = time.perf_counter()
    result = call()
    first = time.perf_counter() - started
    warm = [] if repeats else [first]  # repeats 0: the first call (compilation or cache load included) is the figure
    for _ in range(repeats):
        del result
        started = time.perf_counter()
        result = call()
        warm.append(time.perf_counter() - started)
    rss_peak, hwm = _rss_mb(), _hwm_mb()
    counts, final, tables = collect(result)
    np.savez(out_file, **tables)
    phases = _median_phases(call, repeats) if engine in ("autotrader", "autotrader_shared") else {}
    n, m = data["close"].shape
    return Run(
        engine,
        case.name,
        n,
        m,
        first,
        warm,
        rss_before,
        rss_peak,
        hwm,
        counts,
        final,
        str(out_file),
        phases,
        notes,
    ).__dict__


def data_worker(folder: Path) -> dict[str, Any]:
    data = _load_dataset(folder)
    n, m = data["close"].shape
    return {"rss_peak_mb": _rss_mb(), "hwm_mb": _hwm_mb(), "n_bars": n, "n_symbols": m}


# --------------------------------------------------------------------------------------------------
# Parent side (holds no data and imports nothing heavier than numpy: a child's ru_maxrss starts at its parent's)
# --------------------------------------------------------------------------------------------------


def _spawn(args: list[str], timeout: float = 3600) -> dict[str, Any]:
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"worker {args} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def _size_label(n_bars: int, n_symbols: int) -> str:
    bars = f"{n_bars / 1e6:g}M" if n_bars >= 1_000_000 else f"{n_bars / 1e3:g}k"
    return f"{n_symbols}x{bars}"


def _cases(sizes: dict[str, tuple[int, int]], skip_bt: bool, combos: int, goals_only: bool = False) -> list[Case]:
    single = ("autotrader", "vectorbt", *(() if skip_bt else ("backtesting",)), "floor")
    multi = ("autotrader", "vectorbt", "floor")
    one, mid, five = (_size_label(*sizes[k]) for k in ("single", "mid", "multi"))
    if goals_only:  # only the cases the goals are measured on (no stop/fee variants, no shared capital)
        return [
            Case(one, "single", None, FEE, single),
            Case(mid, "mid", None, FEE, multi),
            Case(five, "multi", None, FEE, multi),
            Case(f"{one} sweep", "single", None, FEE, ("autotrader_sweep", "vectorbt_sweep"), combos),
        ]
    return [
        Case(one, "single", None, FEE, single),
        Case(f"{one} SL", "single", STOP, FEE, single),
        Case(mid, "mid", None, FEE, multi),
        Case(five, "multi", None, FEE, (*multi, "autotrader_shared", "vectorbt_shared")),
        Case(f"{five} SL", "multi", STOP, FEE, multi),
        Case(f"{five} fee0", "multi", None, 0.0, multi),
        Case(f"{one} sweep", "single", None, FEE, ("autotrader_sweep", "vectorbt_sweep"), combos),
    ]


# --------------------------------------------------------------------------------------------------
# Fresh processes: the Python API, the CLI and --help, on 1M bars stored (tick-rounded) in a Parquet store
# --------------------------------------------------------------------------------------------------

STORE_SYMBOL = "SYN0USDT"
STORE_EXCHANGE = "bench"


def make_store(folder: Path, home: Path) -> dict[str, Any]:
    """Write the single-symbol data, rounded to ``TICK``, into a Parquet store at ``home`` (as the CLI reads it)."""
    from autotrader.adapters.storage.parquet_store import ParquetCandleStore
    from autotrader.domain.candles import Candles, SeriesKey, format_ms

    data = _load_dataset(folder)
    cols = [np.round(np.ascontiguousarray(data[k][:, 0]), 2) for k in ("open", "high", "low", "close")]
    candles = Candles(data["ts"], *cols, np.ascontiguousarray(data["volume"][:, 0]))
    store = ParquetCandleStore(home / "data")
    store.upsert(SeriesKey.of(STORE_EXCHANGE, STORE_SYMBOL, "1m"), candles)
    return {"period": f"{format_ms(int(data['ts'][0]))[:10]}:{format_ms(int(data['ts'][-1]))[:10]}"}


API_CODE = """
import sys, time
t0 = time.perf_counter()
from autotrader.adapters.storage.parquet_store import ParquetCandleStore
from autotrader.backtest.runner import BacktestConfig, run_backtest
from autotrader.marketdata.store import read_aligned
from autotrader.strategy.library.sma_cross import SmaCross
t1 = time.perf_counter()
data = read_aligned(ParquetCandleStore({data_dir!r}), {exchange!r}, [{symbol!r}], "1m")
t2 = time.perf_counter()
config = BacktestConfig(symbols=({symbol!r},), exchange={exchange!r}, timeframe="1m", strategy="sma_cross",
                        params={{"fast": {fast}, "slow": {slow}}})
result = run_backtest(config, data, SmaCross(fast={fast}, slow={slow}))
t3 = time.perf_counter()
print("RESULT", t1 - t0, t2 - t1, t3 - t2, len(result.trades), data.n_bars)
"""


def _fresh(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def measure_fresh(home: Path, period: str, repeats: int) -> dict[str, dict[str, Any]]:
    """Median wall (and CPU) of fresh processes, each after one untimed run that warms numba's cache
    and the OS file cache: the API run, the CLI run (default output: console summary, HTML + JSON),
    the CLI run with ``--output-format json --quiet``, and ``--help``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES", "AUTOTRADER"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode (pip compiles it at install):
    env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")  # the warm-up run writes it here, the timed runs read it
    env |= {"AUTOTRADER_HOME": str(home), "PYTHONWARNINGS": "ignore", "COLUMNS": "120"}
    cli = [sys.executable, "-m", "autotrader"]
    backtest = [*cli, "backtest", "--strategy", "sma_cross", "--exchange", STORE_EXCHANGE, "--symbols", STORE_SYMBOL,
                "--timeframe", "1m", "--period", period]  # fmt: skip
    api = API_CODE.format(
        data_dir=str(home / "data"), exchange=STORE_EXCHANGE, symbol=STORE_SYMBOL, fast=FAST, slow=SLOW
    )
    commands = {
        "api": [sys.executable, "-c", api],
        "cli": backtest,
        "cli_json": [*backtest, "--output-format", "json", "--quiet"],
        "help": [*cli, "--help"],
    }
    out: dict[str, dict[str, Any]] = {}
    for name, cmd in commands.items():
        _fresh(cmd, env, home)
        walls, cpus, inner = [], [], ""
        for _ in range(repeats):
            wall, cpu, stdout = _fresh(cmd, env, home)
            walls.append(wall)
            cpus.append(cpu)
            inner = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), inner)
        out[name] = {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "samples": walls}
        if inner:
            imports, read, run, trades, bars = inner.split()[1:]
            out[name] |= {"import_s": float(imports), "read_s": float(read), "run_s": float(run),
                          "trades": int(trades), "bars": int(bars)}  # fmt: skip
    return out


NUMBA_FLOOR_CODE = """
import time
t0 = time.perf_counter()
import numba
from numba.core.registry import cpu_target
cpu_target.target_context.refresh()  # what numba does before it can run (or load) its first function
print("RESULT", time.perf_counter() - t0)
"""


def measure_numba_floor(repeats: int) -> dict[str, float]:
    """A fresh process that only imports numba and readies its CPU target: the start-up every
    numba engine pays before its first call, cached or not (wall, and the part inside Python)."""
    walls, inside = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", NUMBA_FLOOR_CODE], capture_output=True, text=True, timeout=120)
        walls.append(time.perf_counter() - started)
        inside.append(float(proc.stdout.split("RESULT")[-1]))
    return {"wall_s": statistics.median(walls), "inside_s": statistics.median(inside)}


# --------------------------------------------------------------------------------------------------
# Exactness: every SMA cross on tick prices against an exact integer reference
# --------------------------------------------------------------------------------------------------

EXACT_PAIRS = ((3, 10), (5, 20), (10, 50), (20, 100))


def _exact_crosses(ticks: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """+1 / 0 / NaN per bar from exact integer window sums of tick counts (strict crossover rule).

    ``ticks``: int64 (sums and products must stay below 2**63) or an object array of Python ints
    (unbounded, for ``_exact_float_ticks``)."""
    csum = np.concatenate((np.zeros(1, dtype=ticks.dtype), np.cumsum(ticks, dtype=ticks.dtype)))
    n = len(ticks)
    out = np.full(n, np.nan)
    idx = np.arange(slow - 1, n)
    f_sum = csum[idx + 1] - csum[idx + 1 - fast]
    s_sum = csum[idx + 1] - csum[idx + 1 - slow]
    diff = f_sum * slow - s_sum * fast
    sign = (diff > 0).astype(np.int64) - (diff < 0).astype(np.int64)
    prev = np.r_[0, sign[:-1]]
    out[idx[(prev == -1) & (sign > 0)]] = 1.0
    out[idx[(prev == 1) & (sign < 0)]] = 0.0
    out[slow - 1] = np.nan  # the first defined bar has no previous bar
    return out


def _exact_float_ticks(close: np.ndarray) -> np.ndarray:
    """Every float64 price as an exact Python int in units of the smallest power of two any of them
    needs (a float is m * 2**e with an integer m of 53 bits): the prices scaled by one common factor,
    with no rounding, so window sums and their comparisons are exact."""
    mant, expo = np.frexp(close)  # close = mant * 2**expo, 0.5 <= |mant| < 1
    units = (mant * 2.0**53).astype(np.int64)  # exact: 53 significant bits
    shift = (expo - expo.min()).astype(np.int64)
    return np.array([int(u) << int(k) for u, k in zip(units, shift, strict=True)], dtype=object)


def sweep_exact_worker(folder: Path, pairs: list[list[int]]) -> dict[str, Any]:
    """For each (fast, slow) where the two sweeps differ: the crosses of ``sma_cross`` and of vectorbt's
    moving averages (as its sweep computes them) against the exact reference on the same float prices
    (``_exact_float_ticks``): bars where each side differs from the exact rule, and exact ties there."""
    import pandas as pd
    import vectorbt as vbt

    from autotrader.strategy.indicators import sma_cross_direction_nb

    close = np.ascontiguousarray(_load_dataset(folder)["close"][:, 0], dtype=np.float64)
    ticks = _exact_float_ticks(close)
    csum = np.concatenate((np.zeros(1, dtype=object), np.cumsum(ticks)))
    series = pd.Series(close)
    out = {}
    for fast, slow in pairs:
        exact = _exact_crosses(ticks, fast, slow)
        ours = sma_cross_direction_nb(close[:, None], fast, slow, 1.0, 0.0)[:, 0]
        fast_ma = vbt.MA.run(series, fast, short_name="fast")
        slow_ma = vbt.MA.run(series, slow, short_name="slow")
        theirs = np.full(len(close), np.nan)
        theirs[fast_ma.ma_crossed_above(slow_ma).to_numpy()] = 1.0
        theirs[fast_ma.ma_crossed_below(slow_ma).to_numpy()] = 0.0
        theirs[:slow] = np.nan  # the exact rule's first defined bar has no previous bar
        ours_off = ~((np.isnan(ours) & np.isnan(exact)) | (ours == exact))
        theirs_off = ~((np.isnan(theirs) & np.isnan(exact)) | (theirs == exact))
        bars = np.flatnonzero(ours_off | theirs_off)
        ties = sum(
            int((csum[i + 1] - csum[i + 1 - fast]) * slow == (csum[i + 1] - csum[i + 1 - slow]) * fast)
            for b in bars
            for i in (b - 1, b)
            if i >= slow - 1
        )
        out[f"{fast}/{slow}"] = {
            "ours": int(ours_off.sum()),
            "vectorbt": int(theirs_off.sum()),
            "ties": ties,
            "bars": [int(b) for b in bars[:5]],
        }
    return out


def _decimals(close: np.ndarray) -> int:
    """The fewest decimals (<= 8) that every price has: the series' tick grid."""
    for k in range(9):
        if np.all(np.rint(close * 10.0**k) / 10.0**k == close):
            return k
    raise SystemExit("exactness check: prices with more than 8 decimals")


def exactness_worker(home: Path) -> dict[str, Any]:
    """Crosses of ``sma_cross`` and of pandas' rolling means against the exact reference, on the
    stored tick-rounded 1M bars and on every bundled real 1h series (Binance ticks)."""
    import pandas as pd

    from autotrader.adapters.storage.parquet_store import ParquetCandleStore
    from autotrader.domain.candles import SeriesKey
    from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
    from autotrader.strategy.indicators import sma_cross_direction_nb

    store = ParquetCandleStore(home / "data")
    series = [store.read(SeriesKey.of(STORE_EXCHANGE, STORE_SYMBOL, "1m")).close]
    series += [read_parquet_candles(path).close for key, path in bundled_files().items() if key.timeframe == "1h"]
    out: dict[str, Any] = {"ours": 0, "pandas": 0, "ties": 0, "bars": 0, "crosses": 0, "series": len(series)}
    for raw in series:
        close = np.ascontiguousarray(raw, dtype=np.float64)
        ticks = np.rint(close * 10.0 ** _decimals(close)).astype(np.int64)
        out["bars"] += len(close)
        csum = np.concatenate(([0], np.cumsum(ticks)))
        for fast, slow in EXACT_PAIRS:
            exact = _exact_crosses(ticks, fast, slow)
            ours = sma_cross_direction_nb(close[:, None], fast, slow, 1.0, 0.0)[:, 0]
            f = pd.Series(close).rolling(fast).mean().to_numpy()
            s_ = pd.Series(close).rolling(slow).mean().to_numpy()
            above, below = f > s_, f < s_
            theirs = np.full(len(close), np.nan)
            theirs[1:][below[:-1] & above[1:]] = 1.0
            theirs[1:][above[:-1] & below[1:]] = 0.0
            theirs[:slow] = np.nan
            out["ours"] += int((~((np.isnan(ours) & np.isnan(exact)) | (ours == exact))).sum())
            out["pandas"] += int((~((np.isnan(theirs) & np.isnan(exact)) | (theirs == exact))).sum())
            idx = np.arange(slow - 1, len(ticks))
            f_sum, s_sum = csum[idx + 1] - csum[idx + 1 - fast], csum[idx + 1] - csum[idx + 1 - slow]
            out["ties"] += int((f_sum * slow == s_sum * fast).sum())
            out["crosses"] += int((~np.isnan(exact)).sum())
    return out


def _fmt_s(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_rate(r: float) -> str:
    return f"{r / 1e6:.1f} M/s" if r >= 1e6 else f"{r / 1e3:.0f} k/s"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def render_runs(runs: list[Run], baselines: dict[str, dict[str, Any]], cases: list[Case]) -> str:
    header = [
        "case",
        "engine",
        "first call",
        "warm median",
        "bar-symbols/s",
        "peak RSS",
        "+ over data",
        "+ by the runs",
        "trades",
        "final equity",
    ]
    rows = []
    dataset_of = {c.name: c.dataset for c in cases}
    for r in runs:
        base = baselines[dataset_of[r.case]]["rss_peak_mb"]
        eq = ", ".join(f"{e:.6g}" for e in r.final_equity)
        rows.append(
            [
                r.case,
                ENGINE_LABELS[r.engine],
                _fmt_s(r.first_s),
                _fmt_s(r.warm_median_s),
                _fmt_rate(r.bars_per_s),
                f"{r.rss_peak_mb:.0f} MB",
                f"{r.rss_peak_mb - base:.0f} MB",
                f"{r.rss_peak_mb - r.rss_before_mb:.0f} MB",
                str(sum(r.trades)),
                eq if len(eq) < 70 else eq[:67] + "...",
            ]
        )
    return _table(header, rows)


# vectorbt treats cash and positions within 1e-12 of zero as zero (and sums drift at that level):
# a trade list that stops once our cash or position is this small is explained by it
TINY_EQUITY_USD = 1e-9
TINY_QTY = 1e-11


@dataclass
class Column:
    """The comparison of one symbol's trade list: ours (a) against a peer's (b)."""

    matched: int = 0  # trades with the same entry and exit bars and prices
    other_bars: int = 0
    first_other: int = -1
    stop_priority: int = 0  # vectorbt: a stop inside the bar beat our exit signal at that bar's open
    other_price: int = 0
    price_diff: float = 0.0
    missing_tail: int = 0  # peer stopped trading (equity within its tolerance of zero)
    tail_equity: float = float("nan")
    tail_qty: float = float("nan")
    extra: int = 0
    equity_rel: float = 0.0

    @property
    def explained(self) -> bool:
        return self.stop_priority > 0 or self.missing_tail > 0

    def agrees(self, tol: float) -> bool:
        exact = self.other_bars == 0 and self.other_price == 0 and self.extra == 0
        return exact and (self.explained or self.equity_rel <= tol)


def _compare_column(
    ta: np.ndarray, tb: np.ndarray, fa: float, fb: float, stop_loss: float | None, fee: float
) -> Column:
    col = Column()
    k = min(len(ta), len(tb))
    other = (ta[:k, 0] != tb[:k, 0]) | (ta[:k, 1] != tb[:k, 1])
    col.other_bars = int(other.sum())
    col.first_other = int(np.argmax(other)) if col.other_bars else -1
    entry_rel = np.abs(ta[:k, 2] / tb[:k, 2] - 1)
    exit_rel = np.abs(ta[:k, 3] / tb[:k, 3] - 1)
    differs = ~other & ((entry_rel > 1e-12) | (exit_rel > 1e-12))
    if stop_loss:
        at_stop = np.abs(tb[:k, 3] / (ta[:k, 2] * (1.0 - stop_loss)) - 1) <= 1e-12
        col.stop_priority = int((differs & at_stop & (entry_rel <= 1e-12)).sum())
        differs &= ~at_stop
    col.other_price = int(differs.sum())
    col.price_diff = float(np.max(np.maximum(entry_rel, exit_rel), initial=0.0))
    col.matched = int(k - col.other_bars - col.other_price - col.stop_priority)
    if len(tb) < len(ta) and col.other_bars == 0:
        first_missing = ta[len(tb)]
        col.tail_qty = float(first_missing[5])
        col.tail_equity = float(first_missing[5] * first_missing[2] * (1.0 + fee))  # all-in: our cash then
        if col.tail_equity < TINY_EQUITY_USD or col.tail_qty < TINY_QTY:
            col.missing_tail = len(ta) - len(tb)
    col.extra = abs(len(ta) - len(tb)) - col.missing_tail
    col.equity_rel = abs(fa - fb) / max(abs(fb), TINY_EQUITY_USD)
    return col


def _describe(col: Column, j: int, fa: float, fb: float, n_a: int, n_b: int) -> str:
    parts = [f"trades {n_a} vs {n_b}, {col.matched} identical"]
    if col.other_bars:
        parts.append(f"{col.other_bars} with other entry/exit bars (first: #{col.first_other})")
    if col.other_price:
        parts.append(f"{col.other_price} with other prices (max rel {col.price_diff:.1e})")
    if col.stop_priority:
        parts.append(
            f"{col.stop_priority} exited at the stop by the peer where our exit signal filled at that bar's open "
            "(vectorbt gives a stop hit inside the bar priority); the equity differs from there on"
        )
    if col.missing_tail:
        parts.append(
            f"the peer makes no trade after #{n_b - 1}: our cash there is {col.tail_equity:.1e} USD for "
            f"{col.tail_qty:.1e} units, near vectorbt's 1e-12 absolute tolerance of zero, below which it no "
            "longer trades"
        )
    parts.append(f"final equity {fa:.10g} vs {fb:.10g}")
    return f"    symbol {j}: " + "; ".join(parts)


def _compare(ours: Run, peer: Run, tol: float, case: Case) -> tuple[bool, str]:
    """Compare the trade lists symbol by symbol; return (agree, one summary line + lines for differences)."""
    a, b = np.load(ours.trades_file), np.load(peer.trades_file)
    lines, cols = [], []
    for j in range(len(ours.trades)):
        fa, fb = ours.final_equity[j], peer.final_equity[j]
        col = _compare_column(a[f"c{j}"], b[f"c{j}"], fa, fb, case.stop_loss, case.fee)
        cols.append(col)
        if col.explained or not col.agrees(tol) or col.equity_rel > tol:
            lines.append(_describe(col, j, fa, fb, len(a[f"c{j}"]), len(b[f"c{j}"])))
    ok = all(c.agrees(tol) for c in cols)
    verdict = "DIFFER" if not ok else "explained" if any(c.explained for c in cols) else "agree"
    summary = (
        f"[{verdict}] {ours.case}: autotrader vs {ENGINE_LABELS[peer.engine]}: trades {sum(ours.trades)} vs "
        f"{sum(peer.trades)}, {sum(c.matched for c in cols)} identical (entry/exit bars and prices), "
        f"max final-equity diff {max(c.equity_rel for c in cols):.1e} (tolerance {tol:g})"
    )
    return ok, "\n".join([summary, *lines])


TOLERANCE = {"vectorbt": 1e-9, "floor": 1e-12, "backtesting": 1e-4}


def render_agreement(runs: list[Run], cases: list[Case]) -> tuple[str, bool]:
    by = {(r.case, r.engine): r for r in runs}
    case_of = {c.name: c for c in cases}
    out, all_ok = [], True
    for (case, engine), peer in by.items():
        ours = by.get((case, "autotrader"))
        if ours and engine in TOLERANCE:
            ok, text = _compare(ours, peer, TOLERANCE[engine], case_of[case])
            all_ok &= ok
            out.append(text)
        if engine == "vectorbt_shared" and (case, "autotrader_shared") in by:
            mine = by[(case, "autotrader_shared")]
            rel = abs(mine.final_equity[0] - peer.final_equity[0]) / max(abs(peer.final_equity[0]), TINY_EQUITY_USD)
            out.append(
                f"[info]  {case}, shared capital: autotrader {sum(mine.trades)} trades {mine.trades} vs vectorbt "
                f"{sum(peer.trades)} {peer.trades}; final equity {mine.final_equity[0]:.10g} vs "
                f"{peer.final_equity[0]:.10g} (rel {rel:.1e})"
            )
    return "\n".join(out), all_ok


@dataclass(frozen=True)
class Goal:
    name: str
    value: float
    goal: str
    passed: bool


def compute_goals(
    runs: list[Run],
    baselines: dict[str, dict[str, Any]],
    cases: list[Case],
    fresh: dict[str, dict[str, Any]],
    exact: dict[str, Any],
) -> tuple[list[Goal], list[Goal]]:
    """(the issue's goals, other ratios printed for information)."""
    by = {(r.case, r.engine): r for r in runs}
    goals, info = [], []

    def mem_ratio(ours: Run, peer: Run, dataset: str) -> float:
        base = baselines[dataset]["rss_peak_mb"]
        return (ours.rss_peak_mb - base) / max(peer.rss_peak_mb - base, 1e-9)

    for case in cases:
        plain = case.stop_loss is None and case.fee == FEE and not case.combos
        if case.combos:
            ours, vbt = by.get((case.name, "autotrader_sweep")), by.get((case.name, "vectorbt_sweep"))
            if not (ours and vbt):
                missing = "vectorbt" if ours else "autotrader"
                goals.append(Goal(f"{case.name}: not measured ({missing} failed, see above)", math.nan, "", False))
            else:
                speed = vbt.warm_median_s / ours.warm_median_s
                goals.append(Goal(f"{case.name} ({case.combos} combos): speed vs vectorbt", speed,
                                  f">= {GOAL_SPEEDUP_VS_VBT:g}x", speed >= GOAL_SPEEDUP_VS_VBT))  # fmt: skip
                mem = mem_ratio(ours, vbt, case.dataset)
                goals.append(Goal(f"{case.name}: peak memory over data / vectorbt's", mem,
                                  f"<= {GOAL_MEMORY_RATIO:g}", mem <= GOAL_MEMORY_RATIO))  # fmt: skip
            continue
        ours, vbt, floor = (by.get((case.name, e)) for e in ("autotrader", "vectorbt", "floor"))
        if ours and vbt:
            speed = vbt.warm_median_s / ours.warm_median_s
            g = Goal(
                f"{case.name}: speed vs vectorbt", speed, f">= {GOAL_SPEEDUP_VS_VBT:g}x", speed >= GOAL_SPEEDUP_VS_VBT
            )
            (goals if plain else info).append(g)
            mem = mem_ratio(ours, vbt, case.dataset)
            g = Goal(f"{case.name}: peak memory over data / vectorbt's", mem, f"<= {GOAL_MEMORY_RATIO:g}",
                     mem <= GOAL_MEMORY_RATIO)  # fmt: skip
            (goals if plain and case.dataset == "multi" else info).append(g)
        if ours and floor:
            ratio = ours.warm_median_s / floor.warm_median_s
            g = Goal(
                f"{case.name}: our time / bare loop", ratio, f"<= {GOAL_FLOOR_RATIO:g}x", ratio <= GOAL_FLOOR_RATIO
            )
            (goals if plain and case.dataset == "single" else info).append(g)
        bt = by.get((case.name, "backtesting"))
        if ours and bt:
            speed = bt.warm_median_s / ours.warm_median_s
            info.append(Goal(f"{case.name}: speed vs backtesting.py", speed, "(no goal)", True))
    stored = _size_label(fresh["api"].get("bars", 0), 1)[2:]
    for key, label, target in _fresh_goal_specs(stored):
        wall = fresh[key]["wall_s"]
        goals.append(Goal(label, wall, f"< {target:g} s", wall < target))
    goals.append(Goal(f"exactness: sma_cross crosses differing from the exact reference ({exact['crosses']} crosses, "
                      f"{exact['ties']} tie bars)", exact["ours"], "= 0", exact["ours"] == 0))  # fmt: skip
    info.append(Goal("exactness: pandas rolling-mean crosses differing from the exact reference", exact["pandas"],
                     "(no goal)", True))  # fmt: skip
    return goals, info


def render_goals(goals: list[Goal], verdicts: bool = True) -> str:
    rows = [[g.name, f"{g.value:.2f}", g.goal, ("met" if g.passed else "NOT MET") if verdicts else ""] for g in goals]
    return _table(["goal", "measured", "target", "verdict" if verdicts else ""], rows)


def render_phases(runs: list[Run]) -> str:
    lines = []
    floors = {r.case: r for r in runs if r.engine == "floor"}
    for r in runs:
        if not r.phases:
            continue
        total = r.phases["total"]
        parts = ", ".join(f"{k} {_fmt_s(v)} ({100 * v / total:.0f} %)" for k, v in r.phases.items() if k != "total")
        lines.append(f"{r.case} / {ENGINE_LABELS[r.engine]}: profiled runs (median) {_fmt_s(total)}: {parts}")
        kernel = r.phases.get(KERNEL_PHASE)
        floor = floors.get(r.case)
        if kernel is not None and floor is not None:
            bars = r.n_bars * r.n_symbols
            bare = 1e9 * floor.warm_median_s / bars
            lines.append(
                f"    kernel cost per bar: {1e9 * kernel / bars:.1f} ns (bare loop {bare:.1f} ns, which does the whole "
                f"job, signals included); whole run {1e9 * total / bars:.1f} ns per bar-symbol"
            )
    return "\n".join(lines)


NOTES = """\
How to read the agreement, and the differences between the engines
  * Sizing. Every engine buys qty = cash / (open * (1 + fee)): we divide by price * (1 + fee),
    vectorbt divides the cash by (1 + fee) and then by the price (last-bit differences only),
    backtesting.py floors to whole units, here units of 2**-40 (~1e-12), so its quantity can be
    one unit smaller (hence its 1e-4 tolerance on the final equity).
  * Tiny equity. With the 0.1 % fee this strategy loses ~0.2 % per round trip: after ~6,700 trades
    (1M bars) the equity is about 2 cents, after ~17,700 trades per symbol (2.6M bars) about
    1e-12 USD. We keep sizing in floats, so our trades stay those of the bare loop to the last
    bit. vectorbt refuses orders below min_size, 1e-8 units by default (passed as 0 here, since
    our rules have no minimum quantity; with the default its trade list stops once the all-in
    quantity is below 1e-8 units, an equity of ~2e-5 USD at a 2,000 price), and treats cash and
    positions within 1e-12 of zero as zero: once the cash or the position is that small it stops
    trading (where its trade list ends above) and its last figures are float noise. With fee 0
    the equity stays in the thousands and the two agree trade for trade to the end.
    backtesting.py's default unit (1e-8 BTC) would drift by ~0.5 % on the 1M bars and, once the
    equity is below one unit's price, cancel every order ("insufficient margin").
  * End of data. We sell what is still open at the last close and pay the exit fee (exit reason
    end_of_data). vectorbt and backtesting.py leave it open, marked at the last close; their final
    equity is shown net of that exit fee (value - position * close * fee) so the figures compare.
  * Stops. Ours is armed at the fill (2 % below the entry open) and checked against the entry
    bar's own low already; backtesting.py does the same. vectorbt checks a stop from the bar after
    the entry, and a stop hit inside a bar takes priority over an exit signal filling at that
    bar's open: it exits at the stop, we (and backtesting.py) at the open, where the order fills
    first. That needs a 2 % fall within the minute after an exit signal; when it happens it is
    counted above, and the equities differ from that trade on.
  * Signals. Each engine computes its own SMAs: we use Kahan-compensated rolling sums, vectorbt a
    running cumulative sum (off by up to ~1e-6 after millions of bars), pandas its own
    compensated sum. A cross decided by a rounding error can flip between engines (it shows as
    trades with other entry/exit bars). Every sweep combination that differs from vectorbt is
    checked against an exact reference: the float prices as exact integers (one common power-of-two
    unit), exact window sums, the same strict crossover rule. Where the exact rule agrees with our
    crosses on every bar and not with vectorbt's, the difference is vectorbt's float error
    ("explained"); anything else is DIFFER and fails the bench.
  * Shared capital (the two info rows). One call on five symbols with position_size 1.0: while
    one symbol holds the cash, the other symbols' entries are refused. Our engine records these
    refusals as below_min_notional (the free cash is 0 and the minimum notional is 0 here, so the
    denial code falls through to "below minimum notional" rather than "insufficient funds"), and
    when float rounding leaves ~1e-12 of cash free it opens a dust position with it; vectorbt,
    whose cash after an all-in buy is exactly 0, refuses. With the default instrument rules (5 USD
    minimum notional) the dust orders would be refused too. Beyond the dust, the shared runs
    follow the same path until the equity is tiny (see above)."""


def _prepare_data(sizes: dict[str, tuple[int, int]], tmp: Path) -> dict[str, dict[str, Any]]:
    baselines = {}
    for name, (n, m) in sizes.items():
        info = _spawn(["--generate", str(tmp / name), str(n), str(m)])
        baselines[name] = _spawn(["--data-only", str(tmp / name)])
        print(
            f"  data {_size_label(n, m)}: {n:,} bars x {m} symbol(s), generated in {info['generate_s']:.1f} s; "
            f"a process that only loads it peaks at {baselines[name]['rss_peak_mb']:.0f} MB"
        )
    return baselines


def _run_engines(cases: list[Case], tmp: Path, repeats: int, sweep_repeats: int) -> list[Run]:
    runs = []
    for case in cases:
        for engine in case.engines:
            out = tmp / f"{case.name.replace(' ', '_')}_{engine}.npz"
            spec = json.dumps(case.__dict__)
            print(f"  running {case.name:12s} {ENGINE_LABELS[engine]} ...", flush=True)
            n = sweep_repeats if case.combos else repeats
            try:
                raw = _spawn(["--worker", engine, spec, str(tmp / case.dataset), str(out), str(n)])
            except (RuntimeError, subprocess.TimeoutExpired) as e:  # e.g. killed for memory: report, go on
                print(f"    FAILED: {str(e).splitlines()[0][:300]}", flush=True)
                continue
            runs.append(Run(**raw))
    return runs


def sweep_differences(runs: list[Run]) -> dict[str, list[list[int]]]:
    """Per sweep case: the (fast, slow) combinations whose trade count or final equity differ from
    vectorbt's beyond rel 1e-6 and are not explained by vectorbt's tolerance of zero."""
    by = {(r.case, r.engine): r for r in runs}
    out = {}
    for (case, engine), ours in by.items():
        peer = by.get((case, "vectorbt_sweep"))
        if engine != "autotrader_sweep" or peer is None:
            continue
        a, b = np.load(ours.trades_file), np.load(peer.trades_file)
        if not (np.array_equal(a["fast"], b["fast"]) and np.array_equal(a["slow"], b["slow"])):
            continue
        agree, tiny, _ = _sweep_match(a, b)
        out[case] = [[int(a["fast"][k]), int(a["slow"][k])] for k in np.flatnonzero(~(agree | tiny))]
    return out


def _sweep_match(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    same_trades = a["trades"] == b["trades"]
    rel = np.abs(a["final"] - b["final"]) / np.maximum(np.abs(b["final"]), TINY_EQUITY_USD)
    agree = same_trades & (rel <= 1e-6)
    tiny = ~agree & (np.minimum(a["final"], b["final"]) < 1e-3)
    return agree, tiny, rel


SWEEP_EXACT_MAX = 20  # differing combinations checked against the exact reference (each takes ~1 s)


def render_sweep_agreement(runs: list[Run], exact: dict[str, dict[str, Any]]) -> tuple[str, bool]:
    """Combination by combination: trade counts and final equity of our sweep against vectorbt's.

    A combination that differs beyond vectorbt's tolerance of zero is checked against the exact
    reference (``sweep_exact_worker``): when our crosses equal the exact rule's on every bar and
    vectorbt's do not, the difference is vectorbt's float error (reported, "explained"); when ours
    differ from the exact rule, or neither side's crosses do (nothing explains it), it is DIFFER
    and the bench fails. Returns (text, no DIFFER)."""
    by = {(r.case, r.engine): r for r in runs}
    lines, all_ok = [], True
    for (case, engine), ours in by.items():
        peer = by.get((case, "vectorbt_sweep"))
        if engine != "autotrader_sweep" or peer is None:
            continue
        a, b = np.load(ours.trades_file), np.load(peer.trades_file)
        if not (np.array_equal(a["fast"], b["fast"]) and np.array_equal(a["slow"], b["slow"])):
            lines.append(f"[DIFFER] {case}: the two sweeps list other combinations")
            all_ok = False
            continue
        agree, tiny, rel = _sweep_match(a, b)
        details, float_error, ours_wrong = [], 0, 0
        for k in np.flatnonzero(~(agree | tiny)):
            check = exact.get(f"{a['fast'][k]}/{a['slow'][k]}")
            if check is None:
                verdict = "not checked against the exact reference (counted as a difference of ours)"
                ours_wrong += 1
            elif check["ours"] == 0 and check["vectorbt"] > 0 and check["ties"] == 0:
                verdict = (f"exact reference agrees with ours on every bar; vectorbt's crosses differ from it on "
                           f"{check['vectorbt']} bar(s) (first: {check['bars']}): vectorbt's float error")  # fmt: skip
                float_error += 1
            else:
                verdict = (f"exact reference: ours differ from it on {check['ours']} bar(s), vectorbt's on "
                           f"{check['vectorbt']}, exact ties there {check['ties']} (bars {check['bars']})")  # fmt: skip
                ours_wrong += 1
            details.append(
                f"    fast {a['fast'][k]} / slow {a['slow'][k]}: trades {a['trades'][k]} vs {b['trades'][k]}, final "
                f"equity {a['final'][k]:.10g} vs {b['final'][k]:.10g}; {verdict}"
            )
        ok = ours_wrong == 0
        all_ok &= ok
        status = "DIFFER" if not ok else "explained" if (float_error or tiny.any()) else "agree"
        lines.append(
            f"[{status}] {case}: {int(agree.sum())} of {len(agree)} combinations with the same trade count and final "
            f"equity (rel 1e-6); {int(tiny.sum())} others end with an equity below 0.001 USD (vectorbt's tolerance "
            f"of zero, see the notes); {float_error} differ where the exact reference sides with us (vectorbt's "
            f"float error, see Signals in the notes); {ours_wrong} differ otherwise; max rel diff where both > 1 USD: "
            f"{float(np.max(np.where(np.minimum(a['final'], b['final']) > 1, rel, 0.0), initial=0.0)):.1e}"
        )
        lines.extend(details)
    return "\n".join(lines), all_ok


def _print_notes(runs: list[Run]) -> None:
    seen: set[str] = set()
    for r in runs:
        for note in r.notes:
            key = f"{r.engine}: {note}" if note.startswith(("strategy", "vectorbt ", "backtesting")) else ""
            if key and key in seen:
                continue
            seen.add(key)
            print(f"  {r.case if not key else 'all cases'} / {r.engine}: {note}")


FRESH_LABELS = {
    "api": "Python API: imports, read_aligned, run_backtest, exit",
    "cli": "autotrader backtest --strategy sma_cross (console summary, HTML + JSON)",
    "cli_json": "  the same with --output-format json --quiet",
    "help": "autotrader --help",
}


def _print_fresh(fresh: dict[str, dict[str, Any]], numba_floor: dict[str, float], n_bars: int, repeats: int) -> None:
    print(f"\nFresh processes ({n_bars:,} bars stored in a Parquet store, prices on a {TICK:g} tick; median "
          f"of {repeats} after one warm-up run; CPU = user + system time of the process)")  # fmt: skip
    for key, label in FRESH_LABELS.items():
        f = fresh[key]
        inner = (f"; inside: imports {_fmt_s(f['import_s'])}, read {_fmt_s(f['read_s'])}, run_backtest "
                 f"{_fmt_s(f['run_s'])} (its first call loads the numba cache)") if "import_s" in f else ""  # fmt: skip
        samples = ", ".join(_fmt_s(w) for w in f["samples"])
        print(f"  {label}: wall {_fmt_s(f['wall_s'])}, CPU {_fmt_s(f['cpu_s'])}{inner}; samples {samples}")
    print(
        f"  For scale: a fresh process that only imports numba and readies its CPU target (with SciPy installed, "
        f"numba imports it to find BLAS) takes {_fmt_s(numba_floor['wall_s'])} wall, "
        f"{_fmt_s(numba_floor['inside_s'])} of it inside Python: every numba engine pays this before its first call."
    )


def run_fresh_only(args: argparse.Namespace, tmp: Path) -> int:
    """Only the fresh-process part: store the single-symbol bars, time the API, CLI and --help runs."""
    n_bars = 100_000 if args.quick else 1_000_000
    print(f"autotrader fresh-process bench: python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")  # fmt: skip
    _spawn(["--generate", str(tmp / "single"), str(n_bars), "1"])
    home = tmp / "home"
    period = _spawn(["--make-store", str(tmp / "single"), str(home)])["period"]
    fresh = measure_fresh(home, period, args.repeats)
    _print_fresh(fresh, measure_numba_floor(args.repeats), n_bars, args.repeats)
    stored = _size_label(n_bars, 1)[2:]
    goals = [
        Goal(label, fresh[key]["wall_s"], f"< {target:g} s", fresh[key]["wall_s"] < target)
        for key, label, target in _fresh_goal_specs(stored)
    ]
    print("\nGoals (issue #14, fresh processes only)")
    print(render_goals(goals))
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} (1 min), {load[1]:.1f} (5 min) on {os.cpu_count()} CPUs")
    return 0 if all(g.passed for g in goals) else 1


def _fresh_goal_specs(stored: str) -> tuple[tuple[str, str, float], ...]:
    return (
        ("api", f"fresh process, Python API, {stored} stored bars (s)", GOAL_API_S),
        ("cli", f"fresh process, CLI backtest, {stored} stored bars (s)", GOAL_CLI_S),
        ("help", "fresh process, autotrader --help (s)", GOAL_HELP_S),
    )


def run_all(args: argparse.Namespace, tmp: Path) -> int:
    single, mid, multi = (100_000, 1), (260_000, 1), (260_000, 5)
    if not args.quick:
        single, mid, multi = (1_000_000, 1), (2_600_000, 1), (2_600_000, 5)
    sizes = {"single": single, "mid": mid, "multi": multi}
    cases = _cases(sizes, args.skip_backtesting_py, args.sweep_combos, args.goals_only)
    print(
        f"autotrader backtest bench ({'quick' if args.quick else 'full'}): python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    baselines = _prepare_data(sizes, tmp)
    home = tmp / "home"
    period = _spawn(["--make-store", str(tmp / "single"), str(home)])["period"]
    runs = _run_engines(cases, tmp, args.repeats, args.sweep_repeats)
    fresh = measure_fresh(home, period, args.repeats)
    numba_floor = measure_numba_floor(args.repeats)
    exact = _spawn(["--exactness", str(home)])

    sweeps = f"sweeps {args.sweep_repeats}" if args.sweep_repeats else "sweeps: the first call itself"
    print(f"\nResults (warm median of {args.repeats} runs, {sweeps}; first call = compilation or "
          "numba-cache load + run)")  # fmt: skip
    print(
        "Every timed run starts from pandas DataFrames: ours converts them (aligned_from_frames) and computes the\n"
        "data fingerprint (xxh3-128) inside the run; vectorbt takes the frames as they are.\n"
        "peak RSS = ru_maxrss of the engine's process; + over data = minus the data-only process (imports,\n"
        "compilation and the runs); + by the runs = growth after imports, data and setup (the runs' own memory)"
    )
    print(render_runs(runs, baselines, cases))
    _print_notes(runs)
    print("\nWhere our time goes (extra profiled runs per case, as many as the warm runs: the median of each phase)")
    print(render_phases(runs))
    _print_fresh(fresh, numba_floor, single[0], args.repeats)
    print(
        f"\nExactness: {exact['bars']:,} bars ({exact['series']} series: the stored synthetic bars and every bundled "
        f"real 1h series), SMA pairs "
        f"{', '.join(f'{a}/{b}' for a, b in EXACT_PAIRS)}: {exact['crosses']:,} crosses and {exact['ties']:,} bars "
        f"where the two averages are exactly equal; crosses differing from the exact integer reference: sma_cross "
        f"{exact['ours']}, pandas rolling means {exact['pandas']}"
    )
    agreement, agree = render_agreement(runs, cases)
    differing = [pair for pairs in sweep_differences(runs).values() for pair in pairs][:SWEEP_EXACT_MAX]
    sweep_exact = _spawn(["--sweep-exact", str(tmp / "single"), json.dumps(differing)]) if differing else {}
    sweep_text, sweep_ok = render_sweep_agreement(runs, sweep_exact)
    agree &= sweep_ok
    print(
        "\nAgreement (trade by trade, symbol by symbol; equity differences relative to the peer's equity,"
        " or to 1e-9 USD when that is smaller)"
    )
    print(agreement)
    print(sweep_text)
    print()
    print(NOTES)
    goals, info = compute_goals(runs, baselines, cases, fresh, exact)
    print("\nOther ratios (no goal)")
    print(render_goals(info, verdicts=False))
    print("\nGoals (issue #14)")
    print(render_goals(goals))
    load = os.getloadavg()
    print(
        f"engines agree: {'yes' if agree else 'NO (see above)'}; goals met: {sum(g.passed for g in goals)} of "
        f"{len(goals)}; load average at the end {load[0]:.1f} (1 min), {load[1]:.1f} (5 min) on {os.cpu_count()} CPUs"
    )
    return 0 if agree and all(g.passed for g in goals) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100k and 5 x 260k bars: a fast smoke run")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per figure (median reported)")
    parser.add_argument("--skip-backtesting-py", action="store_true", help="leave out backtesting.py (slow)")
    parser.add_argument("--sweep-combos", type=int, default=SWEEP_COMBOS, help="SMA combinations in the sweep case")
    parser.add_argument(
        "--sweep-repeats", type=int, default=1, help="warm runs of each sweep (0: report the first call alone)"
    )
    parser.add_argument("--goals-only", action="store_true", help="only the cases with a goal (no SL/fee0/shared)")
    parser.add_argument("--fresh-only", action="store_true", help="only the fresh-process runs (API, CLI, --help)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--make-store", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--exactness", help=argparse.SUPPRESS)
    parser.add_argument("--sweep-exact", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--data-only", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        engine, spec, folder, out, repeats = args.worker
        raw = json.loads(spec)
        case = Case(**{**raw, "engines": tuple(raw["engines"])})
        print("RESULT " + json.dumps(worker(engine, case, Path(folder), Path(out), int(repeats))))
        return 0
    if args.generate:
        folder, n, m = args.generate
        print("RESULT " + json.dumps(_save_dataset(Path(folder), int(n), int(m))))
        return 0
    if args.data_only:
        print("RESULT " + json.dumps(data_worker(Path(args.data_only))))
        return 0
    if args.make_store:
        print("RESULT " + json.dumps(make_store(Path(args.make_store[0]), Path(args.make_store[1]))))
        return 0
    if args.sweep_exact:
        print("RESULT " + json.dumps(sweep_exact_worker(Path(args.sweep_exact[0]), json.loads(args.sweep_exact[1]))))
        return 0
    if args.exactness:
        print("RESULT " + json.dumps(exactness_worker(Path(args.exactness))))
        return 0
    args.repeats = max(args.repeats, 1)
    args.sweep_repeats = max(args.sweep_repeats, 0)
    with tempfile.TemporaryDirectory(prefix="autotrader-bench-") as tmp:
        return run_fresh_only(args, Path(tmp)) if args.fresh_only else run_all(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
