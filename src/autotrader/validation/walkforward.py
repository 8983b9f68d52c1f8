"""Walk-forward optimisation: tune on a past window, trade the next one, roll forward, repeat.

``run_walk_forward(config, source)`` optimises the strategy of a ``BacktestConfig`` on a series of
in-sample (IS) windows with Optuna and trades each window's best parameters on the out-of-sample
(OOS) window that follows it. The OOS windows tile the period without overlap, so their equity
curves chained together (:attr:`WalkForwardResult.oos_equity`) are a track record made only of
data the optimiser had not seen.

Windows (:func:`make_windows`, lengths in days, half-open ``[start, end)`` in UTC ms)
-------------------------------------------------------------------------------------
``rolling``   IS ``[s + k*oos, s + k*oos + is)``, OOS ``[s + k*oos + is, s + (k+1)*oos + is)``.
``anchored``  IS ``[s, s + k*oos + is)`` (it grows), OOS as in rolling.

``s`` is the start of the configuration's period (or the first bar, if later); candles before it
serve only as warm-up. The last OOS window is cut at the end of the period; it is kept
when it is at least ``min_oos_days`` long (half an OOS window by default) and the unused tail is
noted otherwise. An IS window never overlaps its OOS window, and OOS windows never overlap each
other.

Search (one Optuna study per window)
------------------------------------
* **Space**: every strategy parameter whose ``Param`` has both ``low`` and ``high`` (bools and
  strings are never searched), or the ranges given in ``search_space_overrides``. Integer
  parameters reach the strategy as integers (drawn on a continuous scale and rounded, which keeps
  Optuna's TPE three times cheaper than its discrete kernels; each integer gets an equal bin). A
  range with ``low > 0`` and ``high / low >= 100`` (a length from 1 to 10,000 bars, say) is
  searched on a log scale; others uniformly. Parameters not searched keep the saved
  configuration's values.
* **Sampler**: TPE seeded with ``seed + window index``: the same inputs give the same trials in
  one process, in a process pool or on a Dask cluster.
* **Objective** (``objective``): ``sharpe`` or ``sortino`` of the IS daily returns, ``calmar``
  (IS CAGR / |IS max drawdown|) or ``profit_factor`` of the IS trades, all from
  :mod:`autotrader.analytics.metrics`. An undefined figure scores 0 (no trades, a flat run),
  except a Sortino or Calmar ratio undefined for want of a loss on a run that gained, which
  scores 100 as an infinite profit factor (no losing trade) does. Scores are clipped to ±100 so
  one tiny drawdown cannot make a Calmar ratio dominate.
* **Minimum trades**: a trial with fewer than ``min_trades`` IS trades scores
  ``-1000 - (min_trades - trades)``: below every trial that traded enough, and better the closer
  it came. Parameters the strategy rejects (``fast >= slow``) score ``-1e6`` and are not counted
  as trials run. A parameter set proposed twice in a window is evaluated once.

Warm-up and measurement
-----------------------
A window is run as a fresh start, as the stress tests' historical windows are: the strategy
computes its signals on warm-up bars *and* the window, every signal before the window is then
dropped, and the run is measured from the window's first bar (flat, with the initial capital and a
fresh risk engine). The warm-up is ``max(30 days, 2 * strategy.warmup_bars +
correlation_window_bars)`` bars for each parameter set, clipped to the data (the first window has
none). IS runs end at the IS window's end: they never see OOS bars.

Results
-------
* per window: best parameters, IS and OOS ``metrics.summary``, per-window efficiency;
* stitched OOS equity (windows chained by returns: each window starts where the previous one
  ended), its ``metrics.summary`` and trade statistics (trade P&L rescaled to the stitched equity);
* **walk-forward efficiency** (:func:`walk_forward_efficiency`): annualised OOS return /
  annualised IS return of the selected parameters, each annualised over the windows' calendar
  days; NaN when the IS figure is not positive (no edge to keep);
* **parameter stability**: each searched parameter's best value per window with its mean,
  standard deviation (``ddof=1``) and coefficient of variation ``std / |mean|``;
* the **trial matrix**: per window, every trial's parameters, score and IS daily returns (a
  ``(days, trials)`` matrix, the input of PBO by CSCV; ``n_trials_run`` is the DSR's number of
  trials).

Parallel execution
------------------
Windows are independent. By default they run in a local process pool (``workers``, default
``os.cpu_count()``; ``workers=1`` runs in this process). ``scheduler="tcp://HOST:8786"`` (or a
``distributed.Client``) runs the same function on a Dask cluster. Each window's candles go to its
worker once; every trial of the window reuses them. Results do not depend on where a window ran.

``storage`` (an Optuna storage URL such as ``postgresql+psycopg://user@host/db`` or
``sqlite:///wf.db``) keeps each window's study in a database, named ``<study_prefix>-w<k>``
(the prefix defaults to a digest of the configuration, windows, objective, space and seed), and
resumes it when it exists: a study is topped up to ``n_trials`` trials, so machines sharing a
database share the work. Give each machine its own ``seed`` then; results are reproducible only
when one process runs each study from scratch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import multiprocessing.context
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from autotrader.analytics import metrics
from autotrader.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.candles import format_ms
from autotrader.domain.errors import ConfigError, DataError, StrategyError
from autotrader.domain.jsonsafe import json_safe
from autotrader.domain.timeframe import Timeframe
from autotrader.marketdata.store import CandleStore
from autotrader.strategy.base import Param, Signals, Strategy, get_strategy

if TYPE_CHECKING:
    import optuna

__all__ = [
    "INVALID_SCORE",
    "OBJECTIVES",
    "ParamSpec",
    "ParamStability",
    "TrialRecord",
    "WalkForwardResult",
    "Window",
    "WindowResult",
    "annualised_return",
    "make_windows",
    "run_walk_forward",
    "search_space",
    "walk_forward_efficiency",
]

log = logging.getLogger(__name__)

Objective = Literal["sharpe", "sortino", "calmar", "profit_factor"]
OBJECTIVES: Final = ("sharpe", "sortino", "calmar", "profit_factor")
MS_PER_DAY: Final = 86_400_000
MIN_WARMUP_DAYS: Final = 30.0
SCORE_CLIP: Final = 100.0
PENALTY_BASE: Final = -1000.0
INVALID_SCORE: Final = -1e6
_LOG_RATIO: Final = 100.0
_EQUITY_FLOOR: Final = 1e-9  # share of capital an account wiped out is measured at
_NAN: Final = float("nan")


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class Window:
    """One in-sample / out-of-sample pair; half-open ``[start, end)`` UTC ms, IS end == OOS start."""

    index: int
    is_start_ms: int
    is_end_ms: int
    oos_start_ms: int
    oos_end_ms: int

    @property
    def is_days(self) -> float:
        return (self.is_end_ms - self.is_start_ms) / MS_PER_DAY

    @property
    def oos_days(self) -> float:
        return (self.oos_end_ms - self.oos_start_ms) / MS_PER_DAY

    @property
    def is_label(self) -> str:
        return _span_label(self.is_start_ms, self.is_end_ms)

    @property
    def oos_label(self) -> str:
        return _span_label(self.oos_start_ms, self.oos_end_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "is_start_ms": self.is_start_ms,
            "is_end_ms": self.is_end_ms,
            "oos_start_ms": self.oos_start_ms,
            "oos_end_ms": self.oos_end_ms,
            "is": self.is_label,
            "oos": self.oos_label,
        }


def _span_label(start_ms: int, end_ms: int) -> str:
    return f"{format_ms(start_ms)[:10]} .. {format_ms(end_ms - 1)[:10]}"


def make_windows(
    start_ms: int,
    end_ms: int,
    *,
    is_days: float,
    oos_days: float,
    anchored: bool = False,
    min_oos_days: float | None = None,
) -> tuple[Window, ...]:
    """The walk-forward windows over ``[start_ms, end_ms)`` (see the module docstring).

    Raises ``ConfigError`` for non-positive lengths or a period too short for one window.
    """
    if not (is_days > 0 and oos_days > 0):
        raise ConfigError(f"window lengths must be positive, got in-sample {is_days} and out-of-sample {oos_days} days")
    is_ms, oos_ms = round(is_days * MS_PER_DAY), round(oos_days * MS_PER_DAY)
    min_ms = oos_ms // 2 if min_oos_days is None else round(min_oos_days * MS_PER_DAY)
    windows: list[Window] = []
    oos_start = start_ms + is_ms
    while oos_start < end_ms:
        oos_end = min(oos_start + oos_ms, end_ms)
        if oos_end - oos_start < max(min_ms, 1):
            break
        is_start = start_ms if anchored else oos_start - is_ms
        windows.append(Window(len(windows), is_start, oos_start, oos_start, oos_end))
        oos_start += oos_ms
    if not windows:
        span = (end_ms - start_ms) / MS_PER_DAY
        raise ConfigError(
            f"the period ({span:.0f} days) is too short for one walk-forward window "
            f"({is_days:g} in-sample + {oos_days:g} out-of-sample days); shorten the windows"
        )
    return tuple(windows)


# --------------------------------------------------------------------------- search space


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One searched parameter: ``kind`` ``int`` or ``float``, inclusive range, log scale or not."""

    name: str
    kind: Literal["int", "float"]
    low: float
    high: float
    log: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high, "log": self.log}


def search_space(
    strategy: str | type[Strategy], overrides: Mapping[str, tuple[float, float]] | None = None
) -> tuple[ParamSpec, ...]:
    """The parameters walk-forward searches for ``strategy`` and their ranges.

    Every numeric ``Param`` with ``low`` and ``high``; with ``overrides`` only the parameters it
    names, over the given ``(low, high)`` (which must lie within the ``Param``'s own limits).
    """
    cls = type(get_strategy(strategy)) if isinstance(strategy, str) else strategy
    params: dict[str, Param] = dict(cls.parameters)
    names = list(overrides) if overrides else list(params)
    specs: list[ParamSpec] = []
    for name in names:
        p = params.get(name)
        if p is None:
            raise ConfigError(f"strategy {cls.name!r} has no parameter {name!r} to search")
        numeric = isinstance(p.default, int | float) and not isinstance(p.default, bool)
        if not numeric:
            if overrides:
                raise ConfigError(f"parameter {name!r} of {cls.name!r} is not numeric: it cannot be searched")
            continue
        if overrides:
            low, high = (float(v) for v in overrides[name])
            if (p.low is not None and low < p.low) or (p.high is not None and high > p.high):
                raise ConfigError(f"range {low:g}..{high:g} of {name!r} is outside its limits {p.low}..{p.high}")
        elif p.low is None or p.high is None or not p.search:
            continue
        else:
            low, high = float(p.low), float(p.high)
        kind: Literal["int", "float"] = "int" if isinstance(p.default, int) else "float"
        if kind == "int":
            low, high = float(math.ceil(low)), float(math.floor(high))
        if not low < high:
            raise ConfigError(f"search range of {name!r} is empty: {low:g}..{high:g}")
        specs.append(ParamSpec(name, kind, low, high, low > 0 and high / low >= _LOG_RATIO))
    if not specs:
        raise ConfigError(f"strategy {cls.name!r} has no numeric parameter with a range: nothing to optimise")
    return tuple(specs)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One trial of a window's study. ``invalid`` holds why the strategy rejected the parameters."""

    number: int
    params: dict[str, Any]
    score: float
    objective_value: float
    trades: int
    invalid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": dict(self.params),
            "score": json_safe(self.score),
            "objective_value": json_safe(self.objective_value),
            "trades": self.trades,
            "invalid": self.invalid,
        }


@dataclass(frozen=True)
class WindowResult:
    """A window's search and its out-of-sample run.

    ``oos_ts`` / ``oos_equity``: the OOS run's equity per bar from the window's first bar,
    starting with ``initial_capital``. ``trial_returns`` is ``(days, trials)``: the IS daily
    returns of every valid trial, in the order of ``trial_numbers``.
    """

    window: Window
    best_params: dict[str, Any]
    best_score: float
    is_summary: dict[str, float]
    oos_summary: dict[str, float]
    oos_ts: np.ndarray
    oos_equity: np.ndarray
    oos_trades: np.ndarray  # runner.TRADE_DTYPE
    trials: tuple[TrialRecord, ...]
    trial_numbers: tuple[int, ...]
    trial_day_ts: np.ndarray
    trial_returns: np.ndarray
    oos_accuracy: tuple[int, int] | None = None  # (correct, evaluated) when signals have a horizon
    notes: tuple[str, ...] = ()
    best_trial: int = -1  # the number of the trial whose parameters were kept

    @property
    def is_total_return(self) -> float:
        return self.is_summary["total_return"]

    @property
    def oos_total_return(self) -> float:
        return self.oos_summary["total_return"]

    @property
    def efficiency(self) -> float:
        """This window's annualised OOS return / annualised IS return (NaN when IS ≤ 0)."""
        return walk_forward_efficiency(
            [self.is_total_return], [self.window.is_days], [self.oos_total_return], [self.window.oos_days]
        )[2]

    @property
    def n_valid_trials(self) -> int:
        return len(self.trial_numbers)

    def to_dict(self, include_returns: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "window": self.window.to_dict(),
            "best_params": dict(self.best_params),
            "best_trial": self.best_trial,
            "best_score": json_safe(self.best_score),
            "is_summary": json_safe(self.is_summary),
            "oos_summary": json_safe(self.oos_summary),
            "efficiency": json_safe(self.efficiency),
            "oos_trades": len(self.oos_trades),
            "oos_accuracy": list(self.oos_accuracy) if self.oos_accuracy else None,
            "trials": [t.to_dict() for t in self.trials],
            "notes": list(self.notes),
        }
        if include_returns:
            out["oos_ts_ms"] = self.oos_ts.tolist()
            out["oos_equity"] = self.oos_equity.tolist()
            out["trial_numbers"] = list(self.trial_numbers)
            out["trial_day_ts_ms"] = self.trial_day_ts.tolist()
            out["trial_returns"] = self.trial_returns.tolist()
        return out


@dataclass(frozen=True, slots=True)
class ParamStability:
    """A searched parameter's best value in each window and how much it moved."""

    name: str
    values: tuple[float, ...]
    mean: float
    std: float
    cv: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "values": list(self.values),
            "mean": json_safe(self.mean),
            "std": json_safe(self.std),
            "cv": json_safe(self.cv),
        }


@dataclass(frozen=True)
class WalkForwardResult:
    """Every window, the stitched out-of-sample record, efficiency, stability and the trial matrix."""

    config: BacktestConfig
    objective: str
    n_trials: int
    min_trades: int
    anchored: bool
    is_days: float
    oos_days: float
    seed: int
    space: tuple[ParamSpec, ...]
    windows: tuple[WindowResult, ...]
    oos_ts: np.ndarray
    oos_equity: np.ndarray
    oos_trade_pnl: np.ndarray
    oos_summary: dict[str, float]
    is_annual_return: float
    oos_annual_return: float
    efficiency: float
    stability: tuple[ParamStability, ...]
    notes: tuple[str, ...] = ()
    execution: str = field(default="", compare=False)
    elapsed_s: float = field(default=0.0, compare=False)

    @property
    def n_trials_run(self) -> int:
        """Valid parameter sets evaluated over all windows: the DSR's number of trials."""
        return sum(w.n_valid_trials for w in self.windows)

    @property
    def n_invalid_trials(self) -> int:
        return sum(1 for w in self.windows for t in w.trials if t.invalid is not None)

    @property
    def oos_accuracy(self) -> float | None:
        """Share of OOS signals whose direction was right, over all windows (None without a horizon)."""
        counts = [w.oos_accuracy for w in self.windows if w.oos_accuracy is not None]
        if not counts:
            return None
        evaluated = sum(c[1] for c in counts)
        return sum(c[0] for c in counts) / evaluated if evaluated else _NAN

    def oos_daily_returns(self) -> np.ndarray:
        """Daily returns of the stitched OOS equity (``metrics.daily_equity`` conventions)."""
        _, day_eq = metrics.daily_equity(self.oos_ts, self.oos_equity)
        return metrics.daily_returns(day_eq)

    def trial_sharpes(self) -> np.ndarray:
        """Annualised Sharpe ratio (365 days) of every valid trial's IS daily returns; 0 where flat."""
        out = []
        for w in self.windows:
            for j in range(w.trial_returns.shape[1]):
                s = metrics.sharpe_ratio(w.trial_returns[:, j])
                out.append(0.0 if math.isnan(s) else s)
        return np.asarray(out, dtype=np.float64)

    def to_dict(self, include_returns: bool = False) -> dict[str, Any]:
        """Plain JSON types (NaN → ``None``); the equity curve and trial returns only on request."""
        out: dict[str, Any] = {
            "config": self.config.model_dump(mode="json"),
            "objective": self.objective,
            "n_trials": self.n_trials,
            "min_trades": self.min_trades,
            "anchored": self.anchored,
            "is_days": self.is_days,
            "oos_days": self.oos_days,
            "seed": self.seed,
            "space": [s.to_dict() for s in self.space],
            "n_trials_run": self.n_trials_run,
            "n_invalid_trials": self.n_invalid_trials,
            "is_annual_return": json_safe(self.is_annual_return),
            "oos_annual_return": json_safe(self.oos_annual_return),
            "efficiency": json_safe(self.efficiency),
            "oos_summary": json_safe(self.oos_summary),
            "oos_accuracy": json_safe(self.oos_accuracy),
            "stability": [s.to_dict() for s in self.stability],
            "windows": [w.to_dict(include_returns) for w in self.windows],
            "notes": list(self.notes),
        }
        if include_returns:
            out["oos_ts_ms"] = self.oos_ts.tolist()
            out["oos_equity"] = self.oos_equity.tolist()
        return out


# --------------------------------------------------------------------------- pure figures


def annualised_return(total_returns: Sequence[float], days: Sequence[float]) -> float:
    """Compound annual growth over windows: ``exp(sum(log(1 + r)) * 365 / sum(days)) - 1``.

    -1 when a window lost everything; NaN without days.
    """
    r = np.asarray(total_returns, dtype=np.float64)
    d = float(np.sum(np.asarray(days, dtype=np.float64)))
    if r.size == 0 or d <= 0.0 or not np.all(np.isfinite(r)):
        return _NAN
    if np.any(r <= -1.0):
        return -1.0
    return float(math.expm1(float(np.sum(np.log1p(r))) * metrics.DAYS_PER_YEAR / d))


def walk_forward_efficiency(
    is_returns: Sequence[float], is_days: Sequence[float], oos_returns: Sequence[float], oos_days: Sequence[float]
) -> tuple[float, float, float]:
    """``(IS annualised, OOS annualised, efficiency = OOS / IS)`` from windows' total returns.

    Both sides are annualised with :func:`annualised_return` over their own windows' days.
    Efficiency is NaN when the IS figure is not positive: there was no in-sample edge to keep.
    """
    is_ann = annualised_return(is_returns, is_days)
    oos_ann = annualised_return(oos_returns, oos_days)
    eff = oos_ann / is_ann if is_ann > 0.0 and math.isfinite(oos_ann) else _NAN
    return is_ann, oos_ann, eff


def _stability(space: Sequence[ParamSpec], windows: Sequence[WindowResult]) -> tuple[ParamStability, ...]:
    out = []
    for spec in space:
        values = np.array([float(w.best_params[spec.name]) for w in windows], dtype=np.float64)
        mean = float(values.mean()) if values.size else _NAN
        std = float(values.std(ddof=1)) if values.size > 1 else _NAN
        cv = std / abs(mean) if mean != 0.0 and math.isfinite(std) else _NAN
        out.append(ParamStability(spec.name, tuple(values.tolist()), mean, std, cv))
    return tuple(out)


# --------------------------------------------------------------------------- one run, measured


@dataclass(frozen=True)
class _Run:
    ts: np.ndarray
    equity: np.ndarray  # from the first measured bar, capital prepended as its opening value
    trades: np.ndarray
    result: BacktestResult
    signals: Signals
    first_row: int  # first measured row inside result


def _derive(config: BacktestConfig, params: Mapping[str, Any]) -> BacktestConfig:
    return config.model_copy(update={"params": {**config.params, **params}})


def _build(config: BacktestConfig) -> Strategy:
    from autotrader.backtest.session import build_strategy

    return build_strategy(config)


def _warmup_rows(config: BacktestConfig, strategy: Strategy, tf_ms: int) -> int:
    bars = 2 * int(strategy.warmup_bars) + int(config.limits().correlation_window_bars)
    return max(bars, math.ceil(MIN_WARMUP_DAYS * MS_PER_DAY / tf_ms))


def _rows(data: AlignedCandles, lo: int, hi: int) -> AlignedCandles:
    return AlignedCandles(
        data.symbols,
        data.ts[lo:hi],
        data.open[lo:hi],
        data.high[lo:hi],
        data.low[lo:hi],
        data.close[lo:hi],
        data.volume[lo:hi],
        data.present[lo:hi],
    )


def _run_span(
    config: BacktestConfig, strategy: Strategy, data: AlignedCandles, start_row: int, end_row: int, tf_ms: int
) -> _Run:
    """Run ``strategy`` on rows ``[start_row, end_row)`` after its warm-up; measure from ``start_row``."""
    lo = max(0, start_row - _warmup_rows(config, strategy, tf_ms))
    sub = _rows(data, lo, end_row)
    k = start_row - lo
    signals = strategy.generate(sub)
    direction = np.array(signals.direction, dtype=np.float64, copy=True)
    confidence = np.array(signals.confidence, dtype=np.float64, copy=True)
    direction[:k] = np.nan
    confidence[:k] = np.nan
    signals = dataclasses.replace(signals, direction=direction, confidence=confidence)
    result = run_backtest(config, sub, strategy, signals=signals)
    capital = float(config.initial_capital)
    equity = np.maximum(result.equity[k:], capital * _EQUITY_FLOOR)
    return _Run(result.ts[k:], equity, result.trades, result, signals, k)


def _raw_objective(objective: str, run: _Run) -> float:
    pnl = run.trades["pnl"]
    if objective == "profit_factor":
        value = metrics.profit_factor(pnl)
    else:
        day_ts, day_eq = metrics.daily_equity(run.ts, run.equity)
        if objective == "calmar":
            value = metrics.calmar_ratio(metrics.cagr(day_ts, day_eq), metrics.max_drawdown(run.equity))
        else:
            r = metrics.daily_returns(day_eq)
            value = metrics.sharpe_ratio(r) if objective == "sharpe" else metrics.sortino_ratio(r)
    if math.isnan(value):
        lossless = objective in ("sortino", "calmar") and run.equity[-1] > run.equity[0]
        return SCORE_CLIP if lossless else 0.0
    return float(min(max(value, -SCORE_CLIP), SCORE_CLIP))


def _score(raw: float, trades: int, min_trades: int) -> float:
    return raw if trades >= min_trades else PENALTY_BASE - (min_trades - trades)


def _summary(run: _Run) -> dict[str, float]:
    return metrics.summary(run.ts, run.equity, run.trades["pnl"])


def _accuracy(run: _Run) -> tuple[int, int] | None:
    """(right, evaluated) OOS signals: sign of the close ``horizon_bars`` later vs the trade's side."""
    horizon = run.signals.horizon_bars
    if horizon is None:
        return None
    res = run.result
    t = res.trades
    column = {s: j for j, s in enumerate(res.symbols)}
    bar = np.searchsorted(res.ts, t["signal_ts"])
    cols = np.array([column.get(str(s), -1) for s in t["symbol"]], dtype=np.int64)
    ok = (cols >= 0) & (bar + horizon < res.ts.size)
    c0 = np.where(ok, res.close[np.minimum(bar, res.ts.size - 1), np.maximum(cols, 0)], np.nan)
    c1 = np.where(ok, res.close[np.minimum(bar + horizon, res.ts.size - 1), np.maximum(cols, 0)], np.nan)
    ok &= np.isfinite(c0) & np.isfinite(c1)
    right = ok & (np.sign(c1 - c0) == t["side"])
    return int(np.count_nonzero(right)), int(np.count_nonzero(ok))


# --------------------------------------------------------------------------- one window (runs in a worker)


@dataclass(frozen=True)
class _WindowTask:
    window: Window
    config: BacktestConfig
    data: AlignedCandles  # warm-up + IS + OOS rows only
    tf_ms: int
    space: tuple[ParamSpec, ...]
    objective: str
    n_trials: int
    min_trades: int
    seed: int
    storage: str | None
    study_name: str
    forecast: np.ndarray | None = None  # the model's output for ``data``'s rows, fitted once (see _prefit)


@dataclass
class _Eval:
    score: float
    raw: float
    trades: int
    day_returns: np.ndarray | None
    invalid: str | None


class _Evaluator:
    """Scores parameter sets on one window's IS rows; memoises repeated proposals."""

    def __init__(self, task: _WindowTask) -> None:
        self.task = task
        ts = task.data.ts
        w = task.window
        self.is_rows = (int(np.searchsorted(ts, w.is_start_ms)), int(np.searchsorted(ts, w.is_end_ms)))
        self.oos_rows = (int(np.searchsorted(ts, w.oos_start_ms)), int(np.searchsorted(ts, w.oos_end_ms)))
        self.cache: dict[tuple[tuple[str, Any], ...], _Eval] = {}

    def run(self, params: Mapping[str, Any], rows: tuple[int, int]) -> tuple[BacktestConfig, _Run]:
        cfg = _derive(self.task.config, params)
        strategy = _build(cfg)
        if self.task.forecast is not None:
            strategy.use_forecast(self.task.data.ts, self.task.forecast)  # type: ignore[attr-defined]
        return cfg, _run_span(cfg, strategy, self.task.data, rows[0], rows[1], self.task.tf_ms)

    def evaluate(self, params: Mapping[str, Any]) -> _Eval:
        key = tuple(sorted(params.items()))
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        try:
            _, run = self.run(params, self.is_rows)
        except (ConfigError, StrategyError) as e:
            ev = _Eval(INVALID_SCORE, _NAN, 0, None, str(e))
        else:
            raw = _raw_objective(self.task.objective, run)
            trades = len(run.trades)
            _, day_eq = metrics.daily_equity(run.ts, run.equity)
            ev = _Eval(_score(raw, trades, self.task.min_trades), raw, trades, metrics.daily_returns(day_eq), None)
        self.cache[key] = ev
        return ev


def _suggest(trial: optuna.Trial, spec: ParamSpec) -> int | float:
    """Draw ``spec``; an integer is drawn on a continuous scale and rounded (see :func:`_decode`).

    Optuna's discrete TPE kernels cost about three times as much per trial as its continuous ones
    and dominated a walk-forward's run time; rounding a draw from ``[low - 0.5, high + 0.5]`` gives
    every integer its own bin on the same scale.
    """
    if spec.kind == "int":
        return _decode(spec, trial.suggest_float(spec.name, spec.low - 0.5, spec.high + 0.5, log=spec.log))
    return trial.suggest_float(spec.name, spec.low, spec.high, log=spec.log)


def _decode(spec: ParamSpec, value: float) -> int | float:
    """The parameter value a raw Optuna draw stands for: integers rounded into ``[low, high]``."""
    if spec.kind == "int":
        return int(min(max(round(value), spec.low), spec.high))
    return float(value)


def _run_window(task: _WindowTask) -> WindowResult:
    """Optimise on the IS window, then run the best parameters on the OOS window. Deterministic."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial
    try:
        return _optimise_window(task)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _optimise_window(task: _WindowTask) -> WindowResult:
    import optuna

    w = task.window
    ev = _Evaluator(task)
    if ev.is_rows[1] - ev.is_rows[0] < 2 or ev.oos_rows[1] - ev.oos_rows[0] < 2:
        raise DataError(
            f"walk-forward window {w.index + 1} has fewer than two bars in IS {w.is_label} or OOS {w.oos_label}"
        )

    def objective(trial: optuna.Trial) -> float:
        params = {spec.name: _suggest(trial, spec) for spec in task.space}
        e = ev.evaluate(params)
        trial.set_user_attr("trades", e.trades)
        trial.set_user_attr("raw", None if math.isnan(e.raw) else e.raw)
        if e.invalid is not None:
            trial.set_user_attr("invalid", e.invalid)
        elif task.storage is not None:  # other machines read the returns from the shared study
            trial.set_user_attr("is_returns", e.day_returns.tolist() if e.day_returns is not None else [])
        return e.score

    storage = optuna.storages.RDBStorage(task.storage) if task.storage else None
    try:
        study = optuna.create_study(
            study_name=task.study_name,
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=task.seed + w.index),
            load_if_exists=True,
        )
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if done < task.n_trials:
            study.optimize(
                objective,
                n_trials=task.n_trials - done,
                callbacks=[optuna.study.MaxTrialsCallback(task.n_trials, states=(optuna.trial.TrialState.COMPLETE,))],
            )
        trials = sorted(
            study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.number
        )
    finally:
        if storage is not None:
            storage.engine.dispose()
    return _finish_window(task, ev, trials)


def _finish_window(task: _WindowTask, ev: _Evaluator, trials: Sequence[optuna.trial.FrozenTrial]) -> WindowResult:
    w = task.window
    records: list[TrialRecord] = []
    numbers: list[int] = []
    columns: list[np.ndarray] = []
    for t in trials:
        params = {spec.name: _decode(spec, t.params[spec.name]) for spec in task.space}
        invalid = t.user_attrs.get("invalid")
        raw = t.user_attrs.get("raw")
        records.append(
            TrialRecord(t.number, params, float(t.value or 0.0), _NAN if raw is None else float(raw),
                        int(t.user_attrs.get("trades", 0)), invalid)
        )  # fmt: skip
        if invalid is not None:
            continue
        if task.storage is None:
            returns = ev.evaluate(params).day_returns
        else:
            stored = t.user_attrs.get("is_returns")
            returns = None if stored is None else np.asarray(stored, dtype=np.float64)
        if returns is not None:
            numbers.append(t.number)
            columns.append(returns)
    valid = [r for r in records if r.invalid is None]
    if not valid:
        raise ConfigError(
            f"walk-forward window {w.index + 1}: every one of {len(records)} parameter sets was rejected by the "
            f"strategy ({records[0].invalid if records else 'no trials'}); narrow the search space or run more trials"
        )
    best = max(valid, key=lambda r: (r.score, -r.number))
    notes: list[str] = []
    lengths = {c.size for c in columns}
    if len(lengths) > 1:  # trials from another machine over other data: keep the common shape
        keep = max(lengths, key=lambda n: sum(c.size == n for c in columns))
        numbers = [n for n, c in zip(numbers, columns, strict=True) if c.size == keep]
        columns = [c for c in columns if c.size == keep]
        notes.append("some stored trials had returns of another length and were left out of the trial matrix")
    _, is_run = ev.run(best.params, ev.is_rows)
    _, oos_run = ev.run(best.params, ev.oos_rows)
    if best.trades < task.min_trades:
        notes.append(f"no parameter set reached {task.min_trades} in-sample trades (best: {best.trades})")
    if ev.is_rows[0] - _warmup_rows(task.config, _build(_derive(task.config, best.params)), task.tf_ms) < 0:
        notes.append("in-sample warm-up shortened: no earlier data")
    day_ts, _ = metrics.daily_equity(is_run.ts, is_run.equity)
    matrix = np.column_stack(columns) if columns else np.empty((0, 0))
    return WindowResult(
        window=w,
        best_params=dict(best.params),
        best_score=best.score,
        is_summary=_summary(is_run),
        oos_summary=_summary(oos_run),
        oos_ts=np.concatenate((oos_run.ts[:1], oos_run.ts)),
        oos_equity=np.concatenate(([float(task.config.initial_capital)], oos_run.equity)),
        oos_trades=oos_run.trades,
        trials=tuple(records),
        trial_numbers=tuple(numbers),
        trial_day_ts=day_ts[1:] if matrix.size else np.empty(0, dtype=np.int64),
        trial_returns=matrix,
        oos_accuracy=_accuracy(oos_run),
        notes=tuple(notes),
        best_trial=best.number,
    )


# --------------------------------------------------------------------------- orchestration


ProgressCallback = Callable[[WindowResult, int, int], None]


def run_walk_forward(
    config: BacktestConfig,
    source: CandleStore | AlignedCandles,
    *,
    is_days: float = 365.0,
    oos_days: float = 90.0,
    anchored: bool = False,
    n_trials: int = 100,
    objective: Objective = "sharpe",
    min_trades: int = 10,
    seed: int = 0,
    search_space_overrides: Mapping[str, tuple[float, float]] | None = None,
    min_oos_days: float | None = None,
    workers: int | None = None,
    scheduler: str | Any | None = None,
    storage: str | None = None,
    study_prefix: str | None = None,
    progress: ProgressCallback | None = None,
    status: Callable[[str], None] | None = None,
) -> WalkForwardResult:
    """Walk-forward optimisation of ``config``'s strategy (see the module docstring).

    ``source`` is a ``CandleStore`` (``config``'s symbols and period are loaded as a backtest
    loads them) or ``AlignedCandles`` (used as they are). ``workers``: processes of the local
    pool (default ``os.cpu_count()``, ``1`` = this process). ``scheduler``: a Dask scheduler
    address (``tcp://HOST:8786``) or a ``distributed.Client``; it replaces the local pool.
    ``storage``: an Optuna storage URL shared by several machines. ``progress(window_result,
    done, total)`` is called in this process as each window finishes; ``status(text)`` with a line
    about a long step before the windows (fitting a model once).

    A strategy whose model output does not depend on the searched parameters (``ml`` searching only
    its trading rule, ``threshold`` and ``min_edge``) fits its walk-forward models **once** on all the
    loaded bars; every trial of every window reuses that output (:func:`_prefit`).
    """
    started = time.perf_counter()
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"the number of trials must be a positive integer, got {n_trials!r}")
    if min_trades < 0:
        raise ConfigError(f"the minimum number of trades must not be negative, got {min_trades}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    config.limits()
    space = search_space(config.strategy, search_space_overrides)
    tf_ms = Timeframe.parse(config.timeframe).ms
    max_warm = _max_warmup_rows(config, space, tf_ms)
    # a model that learns from history (``ml``) gets all it asks for, as in a backtest: same forecasts
    data = _load(config, source, max(max_warm, int(_build(config).history_bars)) * tf_ms)
    start_ms = max(int(data.ts[0]), config.start_ms)
    end_ms = min(int(data.ts[-1]) + tf_ms, config.end_ms + 1)
    windows = make_windows(
        start_ms, end_ms, is_days=is_days, oos_days=oos_days, anchored=anchored, min_oos_days=min_oos_days
    )
    prefix = study_prefix or _study_prefix(config, windows, objective, space, seed, min_trades)
    forecast = _prefit(config, space, data, status)
    tasks = []
    for w in windows:
        lo = max(0, int(np.searchsorted(data.ts, w.is_start_ms)) - max_warm)
        hi = int(np.searchsorted(data.ts, w.oos_end_ms))
        tasks.append(
            _WindowTask(w, config, _copy_rows(data, lo, hi), tf_ms, space, objective, n_trials, min_trades,
                        seed, storage, f"{prefix}-w{w.index:03d}",
                        None if forecast is None else np.ascontiguousarray(forecast[lo:hi]))
        )  # fmt: skip
    results, execution = _execute(tasks, workers, scheduler, progress)
    notes = []
    tail_ms = end_ms - windows[-1].oos_end_ms
    if tail_ms >= MS_PER_DAY:
        notes.append(f"the last {tail_ms / MS_PER_DAY:.1f} days are shorter than the minimum OOS window and unused")
    return _combine(config, results, space, notes, execution, time.perf_counter() - started,
                    objective=objective, n_trials=n_trials, min_trades=min_trades, anchored=anchored,
                    is_days=is_days, oos_days=oos_days, seed=seed)  # fmt: skip


def _load(config: BacktestConfig, source: CandleStore | AlignedCandles, warmup_ms: int) -> AlignedCandles:
    """The candles of ``config``'s period, from a store with up to ``warmup_ms`` of earlier bars."""
    if isinstance(source, AlignedCandles):
        data = source
    else:
        from autotrader.backtest.session import load_backtest_data

        early = format_ms(max(config.start_ms - warmup_ms, 0))[:10]
        data = load_backtest_data(source, config.model_copy(update={"start": early})).data
    if data.n_bars < 2:
        raise DataError("fewer than two bars: nothing to walk forward over")
    return data


def _prefit(
    config: BacktestConfig,
    space: Sequence[ParamSpec],
    data: AlignedCandles,
    status: Callable[[str], None] | None,
) -> np.ndarray | None:
    """The strategy's model output on every loaded bar, when no searched parameter changes it; else None.

    Honest because the model is itself walk-forward: its output at a bar uses only labels known
    before that bar, and equals what a run on the data up to any later bar would give (the ``ml``
    probe test), so a window's trials see exactly what a run ending at the window's end would see.
    """
    strategy = _build(config)
    rule_params = getattr(strategy, "rule_params", None)
    if rule_params is None or any(spec.name not in rule_params for spec in space):
        return None
    if status is not None:
        status(
            f"{config.strategy}: fitting the walk-forward models once on {data.n_bars:,} bars x "
            f"{len(data.symbols)} symbols; the trials search the trading rule over their output"
        )
    started = time.perf_counter()
    out = np.asarray(strategy.prefit(data))  # type: ignore[attr-defined]
    if status is not None:
        status(f"{config.strategy}: models fitted in {time.perf_counter() - started:.0f} s")
    return out


def _copy_rows(data: AlignedCandles, lo: int, hi: int) -> AlignedCandles:
    sub = _rows(data, lo, hi)
    return AlignedCandles(
        sub.symbols,
        *(np.ascontiguousarray(getattr(sub, n)) for n in ("ts", "open", "high", "low", "close", "volume", "present")),
    )


def _max_warmup_rows(config: BacktestConfig, space: Sequence[ParamSpec], tf_ms: int) -> int:
    """The longest warm-up any searched parameter set may need: each parameter at either end."""
    rows = [_warmup_rows(config, _build(config), tf_ms)]
    for spec in space:
        for end in (spec.low, spec.high):
            value: int | float = int(end) if spec.kind == "int" else end
            try:
                rows.append(_warmup_rows(config, _build(_derive(config, {spec.name: value})), tf_ms))
            except (ConfigError, StrategyError):
                continue
    return max(rows)


def _study_prefix(
    config: BacktestConfig,
    windows: Sequence[Window],
    objective: str,
    space: Sequence[ParamSpec],
    seed: int,
    min_trades: int,
) -> str:
    spec = {
        "config": config.model_dump(mode="json"),
        "windows": [(w.is_start_ms, w.is_end_ms, w.oos_end_ms) for w in windows],
        "objective": objective,
        "space": [s.to_dict() for s in space],
        "seed": seed,
        "min_trades": min_trades,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"autotrader-wf-{config.strategy}-{digest}"


def _execute(
    tasks: Sequence[_WindowTask], workers: int | None, scheduler: Any, progress: ProgressCallback | None
) -> tuple[list[WindowResult], str]:
    total = len(tasks)
    done: dict[int, WindowResult] = {}

    def finished(result: WindowResult) -> None:
        done[result.window.index] = result
        if progress is not None:
            progress(result, len(done), total)

    if scheduler is not None:
        execution = _execute_dask(tasks, scheduler, finished)
    else:
        n = min(workers or os.cpu_count() or 1, total)
        if n <= 1:
            for task in tasks:
                finished(_run_window(task))
            execution = "serial (1 process)"
        else:
            _execute_pool(tasks, n, finished)
            execution = f"process pool ({n} workers)"
    return [done[t.window.index] for t in tasks], execution


def _execute_pool(tasks: Sequence[_WindowTask], n: int, finished: Callable[[WindowResult], None]) -> None:
    with ProcessPoolExecutor(max_workers=n, mp_context=_mp_context()) as pool:
        futures = [pool.submit(_run_window, task) for task in tasks]
        try:
            for future in as_completed(futures):
                finished(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _mp_context() -> multiprocessing.context.BaseContext:
    """``fork`` when this process runs a single thread (workers start warm, nothing to re-import);
    otherwise ``forkserver`` (a fork of a thread holding a lock could hang the child), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__, "optuna"])
        return ctx
    return multiprocessing.get_context("spawn")


def _execute_dask(tasks: Sequence[_WindowTask], scheduler: Any, finished: Callable[[WindowResult], None]) -> str:
    from distributed import Client
    from distributed import as_completed as dask_completed

    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout="10s") if own else scheduler
    except (OSError, TimeoutError, ValueError) as e:
        raise ConfigError(f"cannot reach the Dask scheduler {scheduler!r}: {e}") from None
    try:
        futures = [client.submit(_run_window, client.scatter(task, hash=False), pure=False) for task in tasks]
        for future in dask_completed(futures):
            finished(future.result())
        address = client.scheduler.address if client.scheduler is not None else str(scheduler)
    finally:
        if own:
            client.close()
    return f"dask ({address})"


def _combine(
    config: BacktestConfig,
    results: Sequence[WindowResult],
    space: tuple[ParamSpec, ...],
    notes: list[str],
    execution: str,
    elapsed_s: float,
    **settings: Any,
) -> WalkForwardResult:
    capital = float(config.initial_capital)
    ts_parts: list[np.ndarray] = [results[0].oos_ts[:1]]
    eq_parts: list[np.ndarray] = [np.array([capital])]
    pnl_parts: list[np.ndarray] = []
    level = capital
    for w in results:
        growth = w.oos_equity / capital
        ts_parts.append(w.oos_ts[1:])
        eq_parts.append(level * growth[1:])
        pnl_parts.append(w.oos_trades["pnl"] * (level / capital))
        level *= float(growth[-1])
        notes.extend(f"window {w.window.index + 1}: {n}" for n in w.notes)
    oos_ts = np.concatenate(ts_parts)
    oos_equity = np.concatenate(eq_parts)
    pnl = np.concatenate(pnl_parts) if pnl_parts else np.empty(0)
    is_ann, oos_ann, eff = walk_forward_efficiency(
        [w.is_total_return for w in results],
        [w.window.is_days for w in results],
        [w.oos_total_return for w in results],
        [w.window.oos_days for w in results],
    )
    return WalkForwardResult(
        config=config,
        space=space,
        windows=tuple(results),
        oos_ts=oos_ts,
        oos_equity=oos_equity,
        oos_trade_pnl=pnl,
        oos_summary=metrics.summary(oos_ts, oos_equity, pnl),
        is_annual_return=is_ann,
        oos_annual_return=oos_ann,
        efficiency=eff,
        stability=_stability(space, results),
        notes=tuple(notes),
        execution=execution,
        elapsed_s=elapsed_s,
        **settings,
    )
