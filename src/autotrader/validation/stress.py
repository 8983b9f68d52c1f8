"""Stress tests: ten scenarios, each re-running the strategy with its risk engine through the real engine.

``run_stress_tests(config, source)`` re-runs the strategy of a saved ``BacktestConfig`` under ten
adverse scenarios and says, for each one, whether the run **survived**: its maximum drawdown stayed
within the risk level's ``max_drawdown`` and its equity stayed positive (:func:`judge`). Every
scenario goes through ``run_backtest``, so fees, slippage, stops, the daily-loss block and the
drawdown kill switch all act exactly as in a backtest.

``source`` is either a ``CandleStore`` (``analyze`` re-running a saved configuration: the run's own
period is read with ``load_backtest_data``; historical windows are read from the store whatever the
saved period was) or already-loaded ``AlignedCandles`` (tests: the candles *are* the run's period,
and historical windows are cut from them).

Historical windows (kind ``historical``)
----------------------------------------
``march_2020_crash`` 2020-03-01..2020-03-31, ``may_2021_crash`` 2021-05-01..2021-05-31,
``luna_2022`` 2022-05-01..2022-05-31, ``ftx_2022`` 2022-11-01..2022-11-30 and
``crypto_winter_2022`` 2022-01-01..2022-12-31 (dates inclusive, UTC).

Each window is run as a fresh start: the candles are read from ``warm-up`` before the window's
first day, the strategy computes its signals over warm-up and window together (so indicators and
models are primed), and every signal before the window is then dropped. The robot therefore
starts the window flat, with the initial capital and a fresh risk engine (its drawdown peak is
the capital at the window's start), and the figures are measured inside the window only. Running
from the saved period's start instead would let an earlier halt or drawdown decide the outcome
of a later crash. The warm-up is ``max(90 days, (2 * strategy.warmup_bars +
correlation_window_bars) bars)`` unless ``warmup_days`` is given; it is clipped to the data.

A window with no bar of any of the run's symbols is **N/A** with the data's range as the reason
(never "survived"). A symbol without data in the window is left out of that window's run, and a
window the data covers only partly runs on the part covered; the row's reason says so.

Synthetic scenarios (kind ``synthetic``), on the run's own period
-----------------------------------------------------------------
``gap_down_30pct``     every symbol gaps down 30 % in one bar: the bar's OHLC and every later price
                       are scaled by 0.7 (:func:`gap_down`). The bar is the one after the unstressed
                       (baseline) run's highest exposure, the worst moment for the strategy; the
                       middle bar when the baseline never holds a position.
``volatility_x3``      log returns of the close are scaled by 3 around each symbol's mean return, so
                       the trend is kept and the return standard deviation triples; open, high and
                       low keep their log distance to the close, also ×3 (:func:`scale_volatility`).
``liquidity_crisis``   slippage ×10, fees ×2 and every entry capped at 1 % of its fill bar's volume
                       (:func:`liquidity_crisis_config`).
``correlation_shock``  every symbol's log returns become the first symbol's, rescaled to the
                       symbol's own mean and standard deviation: pairwise correlation 1
                       (:func:`correlation_shock`). N/A for a single-symbol run.
``system_failure``     the robot is offline for 24 h from the bar of the baseline run's largest one-bar
                       equity loss (the largest one-bar fall of the buy & hold basket when the
                       baseline never loses): no signal is acted on, and stops only fire if they
                       rest on the exchange. Run twice, with and without ``stops_on_exchange``
                       (:func:`offline_config`); the scenario survives only if both runs do, and its
                       row shows the worse run (``runs`` holds both).

Transforms are pure functions of ``AlignedCandles``; they keep bars that a symbol lacks as NaN and
keep every bar consistent (``high >= max(open, close)``, ``low <= min(open, close)``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from pydantic import ValidationError

from autotrader.analytics import metrics
from autotrader.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import SeriesKey, format_ms, parse_date_ms
from autotrader.domain.errors import ConfigError, DataError, StrategyError
from autotrader.domain.instrument import Instrument
from autotrader.domain.jsonsafe import finite_or_none
from autotrader.domain.timeframe import Timeframe
from autotrader.marketdata.store import CandleStore
from autotrader.strategy.base import Signals, Strategy

__all__ = [
    "HISTORICAL_WINDOWS",
    "SCENARIO_NAMES",
    "HistoricalWindow",
    "ScenarioResult",
    "StrategyFactory",
    "StressReport",
    "StressRun",
    "correlation_shock",
    "gap_down",
    "judge",
    "liquidity_crisis_config",
    "offline_config",
    "run_stress_tests",
    "scale_volatility",
]

log = logging.getLogger(__name__)

Status = Literal["survived", "failed", "n/a"]
Kind = Literal["historical", "synthetic"]
StrategyFactory = Callable[[BacktestConfig], Strategy]

_MS_PER_DAY: Final = 86_400_000
_MS_PER_HOUR: Final = 3_600_000
GAP_FRACTION: Final = 0.30
VOLATILITY_FACTOR: Final = 3.0
SLIPPAGE_FACTOR: Final = 10.0
FEE_FACTOR: Final = 2.0
CRISIS_VOLUME_SHARE: Final = 0.01
OFFLINE_HOURS: Final = 24.0
MIN_WARMUP_DAYS: Final = 90.0
_MAX_FEE: Final = 0.0999  # BacktestConfig.fee must stay below 0.1
_MAX_SLIPPAGE_BPS: Final = 999.0  # and slippage_bps below 1000


@dataclass(frozen=True, slots=True)
class HistoricalWindow:
    """A market episode to replay: inclusive UTC dates ``start``..``end``."""

    name: str
    title: str
    start: str
    end: str

    @property
    def start_ms(self) -> int:
        return parse_date_ms(self.start)

    @property
    def end_ms(self) -> int:
        """The last millisecond of the ``end`` day."""
        return parse_date_ms(self.end) + _MS_PER_DAY - 1

    @property
    def label(self) -> str:
        return f"{self.start} .. {self.end}"


HISTORICAL_WINDOWS: Final = (
    HistoricalWindow("march_2020_crash", "March 2020 crash", "2020-03-01", "2020-03-31"),
    HistoricalWindow("may_2021_crash", "May 2021 crash", "2021-05-01", "2021-05-31"),
    HistoricalWindow("luna_2022", "LUNA collapse (May 2022)", "2022-05-01", "2022-05-31"),
    HistoricalWindow("ftx_2022", "FTX collapse (Nov 2022)", "2022-11-01", "2022-11-30"),
    HistoricalWindow("crypto_winter_2022", "2022 crypto winter", "2022-01-01", "2022-12-31"),
)
_SYNTHETIC: Final = {
    "gap_down_30pct": "-30 % one-bar gap on every symbol",
    "volatility_x3": "volatility x3",
    "liquidity_crisis": "liquidity crisis (slippage x10, fees x2, fills <= 1 % of bar volume)",
    "correlation_shock": "correlation shock (all symbols move together)",
    "system_failure": "system failure (robot offline 24 h at the worst moment)",
}
SCENARIO_NAMES: Final = (*(w.name for w in HISTORICAL_WINDOWS), *_SYNTHETIC)
_WINDOWS: Final = {w.name: w for w in HISTORICAL_WINDOWS}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class StressRun:
    """One engine run of a scenario, measured over the scenario's window."""

    label: str
    status: Status
    total_return: float
    max_drawdown: float  # fraction <= 0 (-0.2 = 20 % below the peak)
    min_equity: float
    trades: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "status": self.status,
            "total_return": finite_or_none(self.total_return),
            "max_drawdown": finite_or_none(self.max_drawdown),
            "min_equity": finite_or_none(self.min_equity),
            "trades": self.trades,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One row of the stress table. Figures are ``None`` for an N/A scenario."""

    name: str
    title: str
    kind: Kind
    window: str
    status: Status
    total_return: float | None
    max_drawdown: float | None
    drawdown_limit: float
    trades: int | None
    reason: str
    detail: str = ""
    runs: tuple[StressRun, ...] = ()

    @property
    def survived(self) -> bool:
        return self.status == "survived"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "kind": self.kind,
            "window": self.window,
            "status": self.status,
            "total_return": finite_or_none(self.total_return),
            "max_drawdown": finite_or_none(self.max_drawdown),
            "drawdown_limit": self.drawdown_limit,
            "trades": self.trades,
            "reason": self.reason,
            "detail": self.detail,
            "runs": [r.to_dict() for r in self.runs],
        }


@dataclass(frozen=True)
class StressReport:
    """Every scenario's row, the limit they were judged against and the unstressed baseline."""

    scenarios: tuple[ScenarioResult, ...]
    drawdown_limit: float
    risk_level: str
    baseline: StressRun | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def survived(self) -> int:
        return sum(s.status == "survived" for s in self.scenarios)

    @property
    def failed(self) -> int:
        return sum(s.status == "failed" for s in self.scenarios)

    @property
    def not_applicable(self) -> int:
        return sum(s.status == "n/a" for s in self.scenarios)

    @property
    def total(self) -> int:
        """Every scenario, N/A included: an N/A scenario is not a survived one."""
        return len(self.scenarios)

    @property
    def summary_line(self) -> str:
        line = f"Stress Test Survival: {self.survived}/{self.total}"
        if self.not_applicable:
            line += f" ({self.not_applicable} N/A)"
        return line

    def scenario(self, name: str) -> ScenarioResult:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "survived": self.survived,
            "failed": self.failed,
            "not_applicable": self.not_applicable,
            "total": self.total,
            "summary": self.summary_line,
            "risk_level": self.risk_level,
            "drawdown_limit": self.drawdown_limit,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "notes": list(self.notes),
            "scenarios": [s.to_dict() for s in self.scenarios],
        }

    def render_text(self) -> str:
        """A plain-text table (for logs; the CLI renders its own)."""
        head = f"{'scenario':<22} {'window':<24} {'return':>9} {'max DD':>8} {'trades':>6}  status"
        lines = [self.summary_line, head]
        for s in self.scenarios:
            ret = "n/a" if s.total_return is None else f"{s.total_return * 100:+.2f}%"
            dd = "n/a" if s.max_drawdown is None else f"{s.max_drawdown * 100:.2f}%"
            trades = "n/a" if s.trades is None else str(s.trades)
            lines.append(f"{s.name:<22} {s.window:<24} {ret:>9} {dd:>8} {trades:>6}  {s.status}: {s.reason}")
        return "\n".join(lines)


def judge(equity: np.ndarray, max_drawdown_limit: float) -> tuple[Status, str]:
    """The survival rule: max drawdown within ``max_drawdown_limit`` (a positive fraction) and equity > 0.

    ``equity`` is the run's equity over the scenario's window, starting with the equity it
    entered the window with.
    """
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0 or not np.all(np.isfinite(eq)):
        return "n/a", "no equity to judge"
    limit_text = f"{max_drawdown_limit * 100:g}% limit"
    if np.min(eq) <= 0.0:
        return "failed", f"equity fell to {np.min(eq):,.2f}: the account was wiped out"
    dd = metrics.max_drawdown(eq)
    if -dd <= max_drawdown_limit + 1e-12:
        return "survived", f"max drawdown {-dd * 100:.2f}% within the {limit_text}"
    return "failed", f"max drawdown {-dd * 100:.2f}% exceeds the {limit_text}"


# --------------------------------------------------------------------------- transforms (pure)


def gap_down(data: AlignedCandles, bar: int, fraction: float = GAP_FRACTION) -> AlignedCandles:
    """Every symbol gaps down by ``fraction`` at ``bar``: that bar's and all later prices × (1 - fraction)."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"gap fraction must be in (0, 1), got {fraction}")
    if not 0 < bar < data.n_bars:
        raise ConfigError(f"gap bar {bar} is outside 1..{data.n_bars - 1}")
    scale = 1.0 - fraction
    prices = {}
    for name in ("open", "high", "low", "close"):
        arr = getattr(data, name).copy()
        arr[bar:] *= scale
        prices[name] = arr
    return dataclasses.replace(data, **prices)


def scale_volatility(data: AlignedCandles, factor: float = VOLATILITY_FACTOR) -> AlignedCandles:
    """Scale each symbol's close-to-close log returns by ``factor`` around their mean; rebuild OHLC.

    The first close is kept and the mean return (the trend) is unchanged, so the standard deviation
    of the log returns is multiplied by ``factor``. Open, high and low keep their log distance to the
    bar's close multiplied by ``factor`` too (a monotone map, so the bar stays consistent).
    """
    if factor <= 0.0:
        raise ConfigError(f"volatility factor must be positive, got {factor}")
    o, h, lo, c = (getattr(data, n).copy() for n in ("open", "high", "low", "close"))
    for j in range(len(data.symbols)):
        rows = np.flatnonzero(data.present[:, j])
        if rows.size < 2:
            continue
        log_close = np.log(data.close[rows, j])
        r = np.diff(log_close)
        mu = float(np.mean(r))
        new_log_close = log_close[0] + np.concatenate(([0.0], np.cumsum(mu + factor * (r - mu))))
        for out, src in ((o, data.open), (h, data.high), (lo, data.low)):
            out[rows, j] = np.exp(new_log_close + factor * (np.log(src[rows, j]) - log_close))
        c[rows, j] = np.exp(new_log_close)
    return _with_prices(data, o, h, lo, c)


def correlation_shock(data: AlignedCandles, leader: int = 0) -> AlignedCandles:
    """Make every symbol move with ``data.symbols[leader]``: pairwise return correlation 1.

    Each other symbol's close-to-close log return becomes ``mu_j + sd_j / sd_L * (r_L - mu_L)``,
    where ``r_L`` is the leader's log return over the same span and ``mu``/``sd`` are each symbol's
    own mean and standard deviation of returns: its level of volatility and trend are kept, its
    moves are the leader's. Each bar keeps its open/high/low ratios to the close. The leader is
    unchanged; a single symbol is returned unchanged.
    """
    m = len(data.symbols)
    if not 0 <= leader < m:
        raise ConfigError(f"leader index {leader} is outside 0..{m - 1}")
    if m < 2:
        return data
    lead_rows = np.flatnonzero(data.present[:, leader])
    if lead_rows.size < 3:
        raise DataError(f"{data.symbols[leader]} has fewer than three bars: no returns to copy")
    lead_log = np.log(data.close[lead_rows, leader])
    lead_r = np.diff(lead_log)
    mu_l, sd_l = float(np.mean(lead_r)), float(np.std(lead_r, ddof=1))
    # the leader's log close on every bar (carried forward; its first value before it lists)
    idx = np.clip(np.searchsorted(lead_rows, np.arange(data.n_bars), side="right") - 1, 0, None)
    lead_ff = lead_log[idx]
    o, h, lo, c = (getattr(data, n).copy() for n in ("open", "high", "low", "close"))
    for j in range(m):
        rows = np.flatnonzero(data.present[:, j])
        if j == leader or rows.size < 3:
            continue
        log_close = np.log(data.close[rows, j])
        r = np.diff(log_close)
        mu, sd = float(np.mean(r)), float(np.std(r, ddof=1))
        lead_move = np.diff(lead_ff[rows])
        new_r = mu + (sd / sd_l) * (lead_move - mu_l) if sd_l > 0.0 else np.full(r.size, mu)
        ratio = np.exp(log_close[0] + np.concatenate(([0.0], np.cumsum(new_r))) - log_close)
        for arr in (o, h, lo, c):
            arr[rows, j] = arr[rows, j] * ratio
    return _with_prices(data, o, h, lo, c)


def liquidity_crisis_config(
    config: BacktestConfig,
    *,
    slippage_factor: float = SLIPPAGE_FACTOR,
    fee_factor: float = FEE_FACTOR,
    max_volume_share: float = CRISIS_VOLUME_SHARE,
) -> BacktestConfig:
    """``config`` with slippage and fee multiplied and entries capped at a share of bar volume.

    The fee and slippage are capped just below ``BacktestConfig``'s own maxima; a tighter volume cap
    already in ``config`` is kept.
    """
    share = max_volume_share if config.max_volume_share is None else min(config.max_volume_share, max_volume_share)
    return _derive(
        config,
        slippage_bps=min(config.slippage_bps * slippage_factor, _MAX_SLIPPAGE_BPS),
        fee=min(config.fee_rate * fee_factor, _MAX_FEE),
        max_volume_share=share,
    )


def offline_config(
    config: BacktestConfig, start_ms: int, *, hours: float = OFFLINE_HOURS, stops_on_exchange: bool
) -> BacktestConfig:
    """``config`` with the robot offline for ``hours`` from ``start_ms`` (added to any existing windows)."""
    end_ms = int(start_ms + hours * _MS_PER_HOUR) - 1
    return _derive(
        config,
        offline_windows=(*config.offline_windows, (int(start_ms), end_ms)),
        stops_on_exchange=stops_on_exchange,
    )


def _with_prices(data: AlignedCandles, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> AlignedCandles:
    """Replace the prices, repairing float rounding so every bar stays consistent."""
    with np.errstate(invalid="ignore"):
        h = np.fmax(h, np.fmax(o, c))
        lo = np.fmin(lo, np.fmin(o, c))
    return dataclasses.replace(data, open=o, high=h, low=lo, close=c)


def _derive(config: BacktestConfig, **update: Any) -> BacktestConfig:
    """A validated copy of ``config`` (``model_copy(update=...)`` would skip validation)."""
    try:
        return BacktestConfig.model_validate({**config.model_dump(), **update})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"stress scenario setting {where!r}: {first['msg']}") from None


# --------------------------------------------------------------------------- data sources


class _Source:
    """Where the scenarios' candles come from."""

    def base(self) -> AlignedCandles:
        raise NotImplementedError

    def window(self, start_ms: int, end_ms: int) -> AlignedCandles | None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class _StoreSource(_Source):
    def __init__(self, config: BacktestConfig, store: CandleStore) -> None:
        self.config = config
        self.store = store

    def base(self) -> AlignedCandles:
        from autotrader.backtest.session import load_backtest_data

        return load_backtest_data(self.store, self.config).data

    def window(self, start_ms: int, end_ms: int) -> AlignedCandles | None:
        series = {}
        for symbol in self.config.symbols:
            candles = self.store.read(
                SeriesKey.of(self.config.exchange, symbol, self.config.timeframe), start_ms, end_ms
            )
            if len(candles):
                series[symbol] = candles
        return align(series) if series else None

    def describe(self) -> str:
        parts = []
        stored = set(self.store.keys())
        for symbol in self.config.symbols:
            key = SeriesKey.of(self.config.exchange, symbol, self.config.timeframe)
            cov = self.store.coverage(key) if key in stored else []
            if cov:
                parts.append(f"{symbol} {format_ms(cov[0].first_ts)[:10]} .. {format_ms(cov[0].last_ts)[:10]}")
            else:
                parts.append(f"{symbol} none")
        return f"stored {self.config.timeframe} data: " + "; ".join(parts)


class _CandleSource(_Source):
    def __init__(self, data: AlignedCandles) -> None:
        self.data = data

    def base(self) -> AlignedCandles:
        return self.data

    def window(self, start_ms: int, end_ms: int) -> AlignedCandles | None:
        rows = np.flatnonzero((self.data.ts >= start_ms) & (self.data.ts <= end_ms))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(self.data.present[rows].any(axis=0))
        return _take(self.data, rows, cols) if cols.size else None

    def describe(self) -> str:
        ts = self.data.ts
        return f"data covers {format_ms(int(ts[0]))} .. {format_ms(int(ts[-1]))} UTC" if ts.size else "no data"


def _take(data: AlignedCandles, rows: np.ndarray, cols: np.ndarray) -> AlignedCandles:
    """Rows and symbol columns of ``data``; rows where no kept symbol has a bar are dropped."""
    present = data.present[np.ix_(rows, cols)]
    rows = rows[present.any(axis=1)]

    def sub(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[np.ix_(rows, cols)])

    return AlignedCandles(
        tuple(data.symbols[j] for j in cols),
        data.ts[rows],
        sub(data.open),
        sub(data.high),
        sub(data.low),
        sub(data.close),
        sub(data.volume),
        sub(data.present),
    )


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class _Runner:
    factory: StrategyFactory
    instruments: dict[str, Instrument] | None
    limit: float

    def run(self, config: BacktestConfig, data: AlignedCandles, active_from_ms: int | None = None) -> BacktestResult:
        strategy = self.factory(config)
        signals = None
        if active_from_ms is not None:
            signals = _mask_before(strategy.generate(data), data.ts, active_from_ms)
        return run_backtest(config, data, strategy, signals=signals, instruments=self.instruments)

    def measure(self, label: str, result: BacktestResult, from_ms: int | None = None) -> StressRun:
        """Judge ``result`` over bars at or after ``from_ms`` (the whole run when ``None``)."""
        capital = float(result.config.initial_capital)
        keep = np.ones(result.ts.size, dtype=bool) if from_ms is None else result.ts >= from_ms
        equity = np.concatenate(([capital], result.equity[keep]))
        status, reason = judge(equity, self.limit)
        trades = result.trades if from_ms is None else result.trades[result.trades["entry_ts"] >= from_ms]
        if len(trades) == 0 and status == "survived":
            reason = "no trades in the window: nothing was at risk, so surviving proves little"
        return StressRun(
            label=label,
            status=status,
            total_return=float(equity[-1] / capital - 1.0),
            max_drawdown=_drawdown(equity),
            min_equity=float(np.min(equity)),
            trades=len(trades),
            reason=reason,
        )


def _mask_before(signals: Signals, ts: np.ndarray, start_ms: int) -> Signals:
    """Drop every signal on a bar before ``start_ms`` (warm-up bars only prime the strategy)."""
    before = ts < start_ms
    direction = np.array(signals.direction, dtype=np.float64, copy=True)
    confidence = np.array(signals.confidence, dtype=np.float64, copy=True)
    direction[before] = np.nan
    confidence[before] = np.nan
    return dataclasses.replace(signals, direction=direction, confidence=confidence)


def _drawdown(equity: np.ndarray) -> float:
    """Max drawdown (≤ 0); defined here too for equity that went non-positive (metrics refuses it)."""
    if np.min(equity) > 0.0:
        return metrics.max_drawdown(equity)
    peak = np.maximum.accumulate(equity)
    return float(np.min(equity / peak - 1.0))


def run_stress_tests(
    config: BacktestConfig,
    source: CandleStore | AlignedCandles,
    *,
    strategy_factory: StrategyFactory | None = None,
    cache_dir: Path | None = None,
    instruments: dict[str, Instrument] | None = None,
    warmup_days: float | None = None,
    scenarios: Sequence[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> StressReport:
    """Run the stress scenarios (all ten by default, or those named in ``scenarios``) for ``config``.

    ``progress(done, total, what)`` is told before the baseline and after each scenario.

    ``source`` is a ``CandleStore`` (the run's period is loaded as a backtest would; historical
    windows are read from the store) or ``AlignedCandles`` (used as the run's period; windows are
    cut from them). ``strategy_factory(config)`` builds a fresh strategy per run; by default it is
    ``build_strategy(config, cache_dir)``, i.e. the saved strategy with its parameters.
    ``instruments`` overrides the default instrument rules (tests). See the module docstring for
    every scenario's definition.
    """
    names = tuple(SCENARIO_NAMES if scenarios is None else scenarios)
    unknown = [n for n in names if n not in SCENARIO_NAMES]
    if unknown:
        raise ConfigError(f"unknown stress scenario {unknown[0]!r}; known: {', '.join(SCENARIO_NAMES)}")
    limit = float(config.limits().max_drawdown)
    factory = strategy_factory or functools.partial(_default_strategy, cache_dir=cache_dir)
    src: _Source = _CandleSource(source) if isinstance(source, AlignedCandles) else _StoreSource(config, source)
    runner = _Runner(factory, instruments, limit)
    tell = progress or (lambda done, total, what: None)
    tell(0, len(names) + 1, "stress: baseline run")
    base = src.base()
    baseline_result = runner.run(config, base)
    baseline = runner.measure("baseline", baseline_result)
    log.info("stress baseline: %s", baseline.reason)
    warmup_ms = _warmup_ms(config, factory(config), warmup_days)
    period = _period_label(base)
    results: list[ScenarioResult] = []
    for name in names:
        window = _WINDOWS.get(name)
        if window is not None:
            body = functools.partial(_historical, window, config, src, runner, warmup_ms)
            row = _guarded(name, window.title, "historical", window.label, limit, body)
        else:
            body = functools.partial(_SYNTHETIC_RUNS[name], config, base, runner, baseline_result)
            row = _guarded(name, _SYNTHETIC[name], "synthetic", period, limit, body)
        log.info("stress scenario %s: %s (%s)", row.name, row.status, row.reason)
        results.append(row)
        tell(len(results) + 1, len(names) + 1, f"stress: {row.name} {row.status}")
    notes = (f"baseline (no stress): {baseline.reason}, return {baseline.total_return * 100:+.2f}%",)
    return StressReport(tuple(results), limit, config.risk_level, baseline, notes)


def _default_strategy(config: BacktestConfig, cache_dir: Path | None) -> Strategy:
    from autotrader.backtest.session import build_strategy

    return build_strategy(config, cache_dir)


def _warmup_ms(config: BacktestConfig, strategy: Strategy, warmup_days: float | None) -> int:
    if warmup_days is not None:
        if warmup_days < 0:
            raise ConfigError(f"warm-up must not be negative, got {warmup_days} days")
        return int(warmup_days * _MS_PER_DAY)
    bars = 2 * int(strategy.warmup_bars) + int(config.limits().correlation_window_bars)
    return max(int(MIN_WARMUP_DAYS * _MS_PER_DAY), bars * Timeframe.parse(config.timeframe).ms)


def _guarded(
    name: str, title: str, kind: Kind, window: str, limit: float, body: Callable[[], _Outcome]
) -> ScenarioResult:
    """Run one scenario; data or configuration it cannot run on makes it N/A with the reason."""
    try:
        outcome = body()
    except (DataError, ConfigError, StrategyError) as e:
        outcome = _Outcome.not_applicable(f"could not run: {e}")
    if outcome.runs:
        worst = min(outcome.runs, key=lambda r: (r.status == "survived", r.max_drawdown, r.total_return))
        status: Status = "survived" if all(r.status == "survived" for r in outcome.runs) else "failed"
        if any(r.status == "n/a" for r in outcome.runs):
            status = "n/a"
        reason = worst.reason if len(outcome.runs) == 1 else "; ".join(f"{r.label}: {r.reason}" for r in outcome.runs)
        return ScenarioResult(
            name, title, kind, outcome.window or window, status, worst.total_return, worst.max_drawdown,
            limit, worst.trades, reason, outcome.detail, outcome.runs,
        )  # fmt: skip
    return ScenarioResult(name, title, kind, outcome.window or window, "n/a", None, None, limit, None, outcome.detail)


@dataclass(frozen=True)
class _Outcome:
    runs: tuple[StressRun, ...]
    detail: str
    window: str = ""

    @classmethod
    def not_applicable(cls, reason: str) -> _Outcome:
        return cls((), reason)


def _period_label(data: AlignedCandles) -> str:
    return f"{format_ms(int(data.ts[0]))[:10]} .. {format_ms(int(data.ts[-1]))[:10]}"


# --------------------------------------------------------------------------- scenarios


def _historical(
    window: HistoricalWindow, config: BacktestConfig, src: _Source, runner: _Runner, warmup_ms: int
) -> _Outcome:
    data = src.window(window.start_ms - warmup_ms, window.end_ms)
    inside = None if data is None else (data.ts >= window.start_ms) & (data.ts <= window.end_ms)
    if data is None or inside is None or not data.present[inside].any():
        return _Outcome.not_applicable(f"no {config.timeframe} data in {window.label} ({src.describe()})")
    cols = np.flatnonzero(data.present[inside].any(axis=0))
    notes = []
    if cols.size < len(data.symbols) or len(data.symbols) < len(config.symbols):
        kept = {data.symbols[j] for j in cols}
        missing = [s for s in config.symbols if s not in kept]
        notes.append(f"without {', '.join(missing)} (no data in the window)")
        data = _take(data, np.arange(data.n_bars), cols)
        inside = (data.ts >= window.start_ms) & (data.ts <= window.end_ms)
    first, last = int(data.ts[inside][0]), int(data.ts[inside][-1])
    tf_ms = Timeframe.parse(config.timeframe).ms
    if first > window.start_ms + tf_ms or last < window.end_ms - 2 * tf_ms + 1:
        notes.append(f"data covers only {format_ms(first)} .. {format_ms(last)} UTC of the window")
    if data.ts[0] > window.start_ms - tf_ms:
        notes.append("no warm-up data before the window")
    elif data.ts[0] > window.start_ms - warmup_ms + tf_ms:
        days = (window.start_ms - int(data.ts[0])) / _MS_PER_DAY
        notes.append(f"warm-up shortened to {days:.0f} days (no earlier data)")
    if int(np.count_nonzero(inside)) < 2:
        return _Outcome.not_applicable(f"fewer than two bars in {window.label}")
    cfg = _derive(config, symbols=data.symbols, start=window.start, end=window.end)
    result = runner.run(cfg, data, active_from_ms=window.start_ms)
    run = runner.measure("window", result, from_ms=window.start_ms)
    return _Outcome((run,), "; ".join(notes))


def _gap(config: BacktestConfig, base: AlignedCandles, runner: _Runner, baseline: BacktestResult) -> _Outcome:
    exposure = np.asarray(baseline.exposure, dtype=np.float64)
    if base.n_bars < 3:
        return _Outcome.not_applicable("fewer than three bars: no bar to gap")
    if exposure[:-1].max(initial=0.0) > 0.0:
        bar = int(np.argmax(exposure[:-1])) + 1
        why = f"after the baseline's peak exposure of {exposure[bar - 1] * 100:.1f}% of equity"
    else:
        bar = base.n_bars // 2
        why = "the middle bar (the baseline never held a position)"
    result = runner.run(config, gap_down(base, bar))
    detail = f"-{GAP_FRACTION * 100:g}% gap at {format_ms(int(base.ts[bar]))} UTC, {why}"
    return _Outcome((runner.measure("gap", result),), detail)


def _volatility(config: BacktestConfig, base: AlignedCandles, runner: _Runner, baseline: BacktestResult) -> _Outcome:
    result = runner.run(config, scale_volatility(base, VOLATILITY_FACTOR))
    detail = f"close-to-close log returns x{VOLATILITY_FACTOR:g} around each symbol's mean; OHLC rebuilt"
    return _Outcome((runner.measure("volatility", result),), detail)


def _liquidity(config: BacktestConfig, base: AlignedCandles, runner: _Runner, baseline: BacktestResult) -> _Outcome:
    cfg = liquidity_crisis_config(config)
    result = runner.run(cfg, base)
    detail = (
        f"slippage {config.slippage_bps:g} -> {cfg.slippage_bps:g} bps, fee {config.fee_rate * 100:g}% -> "
        f"{cfg.fee_rate * 100:g}% per side, entries capped at {(cfg.max_volume_share or 0) * 100:g}% "
        "of bar volume"
    )
    return _Outcome((runner.measure("liquidity", result),), detail)


def _correlation(config: BacktestConfig, base: AlignedCandles, runner: _Runner, baseline: BacktestResult) -> _Outcome:
    if len(base.symbols) < 2:
        return _Outcome.not_applicable("a single-symbol run has no correlation to shock")
    result = runner.run(config, correlation_shock(base, 0))
    detail = f"every symbol's returns follow {base.symbols[0]}'s, scaled to its own volatility"
    return _Outcome((runner.measure("correlation", result),), detail)


def _system_failure(
    config: BacktestConfig, base: AlignedCandles, runner: _Runner, baseline: BacktestResult
) -> _Outcome:
    equity_change = np.diff(np.asarray(baseline.equity, dtype=np.float64))
    if equity_change.size == 0:
        return _Outcome.not_applicable("fewer than two bars")
    if equity_change.min() < 0.0:
        bar = int(np.argmin(equity_change)) + 1
        why = "the baseline's largest one-bar equity loss"
    else:
        bar = int(np.argmin(np.diff(np.asarray(baseline.benchmark_equity, dtype=np.float64)))) + 1
        why = "the buy & hold basket's largest one-bar fall (the baseline never lost)"
    start_ms = int(base.ts[bar])
    runs = []
    for on_exchange, label in ((True, "stops on exchange"), (False, "no exchange stops")):
        cfg = offline_config(config, start_ms, hours=OFFLINE_HOURS, stops_on_exchange=on_exchange)
        runs.append(runner.measure(label, runner.run(cfg, base)))
    detail = f"offline {OFFLINE_HOURS:g} h from {format_ms(start_ms)} UTC, {why}"
    return _Outcome(tuple(runs), detail)


_SYNTHETIC_RUNS: Final[dict[str, Callable[[BacktestConfig, AlignedCandles, _Runner, BacktestResult], _Outcome]]] = {
    "gap_down_30pct": _gap,
    "volatility_x3": _volatility,
    "liquidity_crisis": _liquidity,
    "correlation_shock": _correlation,
    "system_failure": _system_failure,
}
