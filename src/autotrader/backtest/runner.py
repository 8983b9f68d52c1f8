"""Backtest runner: configuration in, ``BacktestResult`` out. No I/O beyond the store port."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from autotrader import __version__
from autotrader.backtest.fast.kernel import (
    EVENT_DTYPE,
    KERNEL_SETTINGS_DTYPE,
    SYMBOL_DTYPE,
    TRADE_DTYPE,
    signal_rows_nb,
    simulate_portfolio_into_nb,
    symbol_rules_of,
)
from autotrader.backtest.fast.kernel import (
    EVENT_NAMES as EVENT_NAMES,  # re-exported: the names reports and the robot show
)
from autotrader.backtest.fast.kernel import (
    EXIT_REASONS as EXIT_REASONS,  # re-exported
)
from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.candles import format_ms, parse_date_ms
from autotrader.domain.errors import ConfigError, DataError
from autotrader.domain.instrument import Instrument, default_instrument
from autotrader.domain.timeframe import Timeframe
from autotrader.risk.limits import RiskLimits
from autotrader.risk.rules import SIZING_FIXED, SIZING_KELLY, SIZING_VOLATILITY
from autotrader.risk.trading import TradingConfig
from autotrader.risk.volatility import daily_volatility_of
from autotrader.strategy.base import Signals, Strategy

log = logging.getLogger(__name__)

_SIZING_CODES = {"fixed": SIZING_FIXED, "kelly": SIZING_KELLY, "volatility": SIZING_VOLATILITY}


class BacktestConfig(TradingConfig):
    """Everything that defines a backtest run; saved with the result so it can be re-run.

    The trading fields (symbols, market, timeframe, leverage, risk, sizing, fee, slippage) and
    ``limits()`` come from ``TradingConfig``, shared with the robot's ``RobotConfig``.
    """

    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    exchange: str = "binance"
    start: str = "2020-01-01"
    end: str = "2024-12-31"
    initial_capital: float = Field(default=10_000.0, gt=0)
    strategy: str = "ml"
    params: dict[str, Any] = Field(default_factory=dict)
    maintenance_margin: float = Field(default=0.005, ge=0, lt=0.5)
    max_volume_share: float | None = Field(
        default=None, gt=0, le=1, description="cap an entry at this share of the fill bar's volume"
    )
    offline_windows: tuple[tuple[int, int], ...] = Field(
        default=(), description="(start_ms, end_ms) spans when the robot is down (stress tests)"
    )
    stops_on_exchange: bool = True
    on_halt: str = Field(
        default="stop",
        description="after a drawdown halt: 'stop' (for good, as live) or 'resume-after=DURATION' (e.g. 30d)",
    )

    @field_validator("on_halt")
    @classmethod
    def _on_halt(cls, v: str) -> str:
        parse_on_halt(v)
        return v.strip().lower()

    @property
    def resume_after_ms(self) -> int:
        """How long a drawdown halt lasts before the peak is re-based and trading resumes (0 = for good)."""
        return parse_on_halt(self.on_halt)

    @property
    def start_ms(self) -> int:
        return _date_ms(self.start, "start")

    @property
    def end_ms(self) -> int:
        """Inclusive end: a bare date means the whole day."""
        ms = _date_ms(self.end, "end")
        return ms + 86_400_000 - 1 if len(self.end.strip()) == 10 else ms


def parse_on_halt(text: str) -> int:
    """``"stop"`` → 0; ``"resume-after=30d"`` → 30 days in ms (units m, h, d, w). ``ValueError`` otherwise."""
    value = text.strip().lower()
    if value == "stop":
        return 0
    head, sep, duration = value.partition("=")
    if head == "resume-after" and sep:
        try:
            return Timeframe.parse(duration).ms
        except ConfigError:
            pass
    raise ValueError(f"on-halt {text!r}: expected 'stop' or 'resume-after=DURATION' such as resume-after=30d")


def _date_ms(text: str, what: str) -> int:
    try:
        return parse_date_ms(text)
    except ValueError:
        raise ConfigError(f"invalid {what} date {text!r}: expected YYYY-MM-DD") from None


@dataclass(frozen=True)
class BacktestResult:
    """The outcome of a run: per-bar equity and exposure, trades, risk events and provenance."""

    config: BacktestConfig
    limits: RiskLimits
    ts: np.ndarray
    equity: np.ndarray
    exposure: np.ndarray
    trades: np.ndarray  # TRADE_DTYPE
    events: np.ndarray  # EVENT_DTYPE
    data: AlignedCandles = field(repr=False)  # the candles the run saw
    close: np.ndarray  # (bars, symbols), for per-symbol analysis
    signals_meta: dict[str, Any] = field(default_factory=dict)
    period_note: str = ""
    warmup: dict[str, Any] = field(default_factory=dict)  # see ``run_backtest``'s ``start_row``
    elapsed_s: float = 0.0
    version: str = __version__

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.config.symbols

    @property
    def data_fingerprint(self) -> str:
        """xxh3-128 of the candles the run saw, computed when first asked for (a report does) and
        cached on the data set: the run itself never pays for it."""
        return self.data.fingerprint

    @cached_property
    def benchmark_equity(self) -> np.ndarray:
        """Equal-weight buy and hold of the same symbols (computed when a report asks for it)."""
        return equal_weight_buy_and_hold(self.data, self.config.initial_capital)


def fingerprint(data: AlignedCandles) -> str:
    """xxh3-128 of the timestamps and prices the run saw (cached on the data set)."""
    return data.fingerprint


def equal_weight_buy_and_hold(data: AlignedCandles, capital: float) -> np.ndarray:
    """Equity of splitting ``capital`` equally and buying each symbol at its first open (no costs)."""
    m = len(data.symbols)
    equity = np.zeros(data.n_bars)
    for j in range(m):
        present = np.flatnonzero(data.present[:, j])
        if len(present) == 0:
            equity += capital / m
            continue
        first = present[0]
        closes = data.close[:, j].copy()
        # forward-fill gaps so the holding keeps its last value
        idx = np.where(data.present[:, j], np.arange(data.n_bars), 0)
        np.maximum.accumulate(idx, out=idx)
        closes = closes[idx]
        units = (capital / m) / data.open[first, j]
        leg = np.where(np.arange(data.n_bars) >= first, units * closes, capital / m)
        equity += leg
    return equity


def run_backtest(
    config: BacktestConfig,
    data: AlignedCandles,
    strategy: Strategy,
    *,
    signals: Signals | None = None,
    instruments: dict[str, Instrument] | None = None,
    start_row: int | None = None,
    limits: RiskLimits | None = None,
) -> BacktestResult:
    """Simulate ``strategy`` on ``data`` under ``config``'s costs and risk limits.

    ``start_row`` (the first row of the requested period; the rows before it are warm-up history,
    see ``Strategy.history_bars``): the strategy computes its signals on every row, then the run
    starts flat at ``start_row`` and decides nothing before it. When fewer than the strategy's
    ``warmup_bars`` rows precede the period, the first rows of the period complete the warm-up:
    the run, its buy & hold benchmark and its time in market are all measured from the first bar
    that has the full warm-up behind it. ``BacktestResult.warmup`` records what was used and
    missing. ``None``: every row of ``data`` is part of the run (no warm-up handling).
    ``limits``: ``config.limits()`` when the caller already computed them.
    """
    started = time.perf_counter()
    if limits is None:
        limits = config.limits()
    if data.n_bars < 2:
        raise DataError("fewer than two bars in the requested period: nothing to backtest")
    if signals is None:
        signals = strategy.generate(data)
    warmup: dict[str, Any] = {}
    if start_row is not None:
        data, signals, warmup = _after_warmup(data, signals, strategy, start_row)
    m = len(data.symbols)
    if signals.direction.shape != (data.n_bars, m):
        raise ConfigError(f"strategy {strategy.name!r} returned signals of shape {signals.direction.shape}")
    rules = instrument_rules_for(config, data, instruments)
    atr_pct = daily_volatility_of(data, config.timeframe) if config.sizing == "volatility" else np.zeros((1, 1))
    direction = np.ascontiguousarray(signals.direction, dtype=np.float64)
    signal_rows, n_signals = signal_rows_nb(direction)
    max_trades = n_signals + m + 1
    n_days = int((data.ts[-1] - data.ts[0]) // 86_400_000) + 2
    max_events = n_signals * 2 + n_days * 2 + 16
    confidence = np.ascontiguousarray(signals.confidence, dtype=np.float64)  # NaN = 1.0 in the kernel
    offline = offline_mask(config, data)

    equity = np.empty(data.n_bars)
    exposure = np.empty(data.n_bars)
    trades = np.empty(max_trades, dtype=TRADE_DTYPE)  # every field of a used record is written
    events = np.empty(max_events, dtype=EVENT_DTYPE)  # every field of a used record is written
    n_trades, n_events = simulate_portfolio_into_nb(
        data.ts,
        data.open,
        data.high,
        data.low,
        data.close,
        data.volume,
        data.present,
        direction,
        signal_rows,
        confidence,
        atr_pct,
        symbol_rules_of(rules),
        kernel_settings(config, limits),
        offline,
        np.array(data.symbols, dtype=SYMBOL_DTYPE),
        equity,
        exposure,
        trades,
        events,
    )
    trades = trades[:n_trades].copy()  # the records the run wrote (not the room left for every signal)
    events = events[:n_events].copy()
    return BacktestResult(
        config=config,
        limits=limits,
        ts=data.ts,
        equity=equity,
        exposure=exposure,
        trades=trades,
        events=events,
        data=data,
        close=data.close,
        signals_meta={**signals.meta, "horizon_bars": signals.horizon_bars, "n_signals": n_signals},
        warmup=warmup,
        elapsed_s=time.perf_counter() - started,
    )


def kernel_settings(config: BacktestConfig, limits: RiskLimits) -> np.void:
    """The run's costs, risk limits and sizing as the kernel's one ``KERNEL_SETTINGS_DTYPE`` record
    (``run_backtest`` and ``sweep`` build it here, so both simulate the same run)."""
    settings = np.zeros(1, dtype=KERNEL_SETTINGS_DTYPE)[0]
    settings["initial_cash"] = config.initial_capital
    settings["fee_rate"] = config.fee_rate
    settings["slippage"] = config.slippage_bps / 10_000.0
    settings["linear"] = config.market == "linear"
    settings["leverage"] = config.leverage
    settings["maintenance_margin"] = config.maintenance_margin
    settings["position_size"] = limits.position_size
    settings["stop_loss"] = limits.stop_loss or 0.0
    settings["take_profit"] = limits.take_profit or 0.0
    settings["trailing_stop"] = limits.trailing_stop or 0.0
    settings["daily_loss"] = limits.daily_loss
    settings["max_drawdown"] = limits.max_drawdown
    settings["corr_limit"] = limits.correlation
    settings["corr_window"] = limits.correlation_window_bars
    settings["min_confidence"] = limits.min_confidence
    settings["sizing"] = _SIZING_CODES[config.sizing]
    settings["risk_per_trade"] = limits.risk_per_trade
    settings["kelly_share"] = limits.kelly_fraction
    settings["kelly_min_trades"] = limits.kelly_min_trades
    settings["atr_multiple"] = limits.atr_multiple
    settings["flatten_on_halt"] = limits.flatten_on_halt
    settings["max_volume_share"] = config.max_volume_share or 0.0
    settings["stops_on_exchange"] = config.stops_on_exchange
    settings["resume_after_ms"] = config.resume_after_ms
    return settings


def instrument_rules_for(
    config: BacktestConfig, data: AlignedCandles, instruments: Mapping[str, Instrument] | None
) -> list[Instrument]:
    """Each symbol's instrument: the given one, else defaults scaled to its first close."""
    rules = []
    for j, sym in enumerate(data.symbols):
        if instruments and sym in instruments:
            rules.append(instruments[sym])
        else:
            first = np.flatnonzero(data.present[:, j])
            ref = float(data.close[first[0], j]) if len(first) else 1.0
            rules.append(default_instrument(sym, config.market, ref))
    return rules


def offline_mask(config: BacktestConfig, data: AlignedCandles) -> np.ndarray:
    """Bars inside ``config.offline_windows`` (the robot is down); empty when there are none."""
    if not config.offline_windows:
        return np.zeros(0, dtype=np.bool_)
    offline = np.zeros(data.n_bars, dtype=np.bool_)
    for lo, hi in config.offline_windows:
        offline |= (data.ts >= lo) & (data.ts <= hi)
    return offline


def _after_warmup(
    data: AlignedCandles, signals: Signals, strategy: Strategy, start_row: int
) -> tuple[AlignedCandles, Signals, dict[str, Any]]:
    """Drop the warm-up rows (and any rows of the period still needed as warm-up) from data and signals."""
    n = data.n_bars
    start_row = min(max(int(start_row), 0), n)
    needed = int(strategy.warmup_bars)
    missing = max(0, needed - start_row)
    first = start_row + missing
    if first > n - 2:
        raise DataError(
            f"strategy {strategy.name!r} needs {needed:,} bars of warm-up; the store holds {start_row:,} before the "
            f"period and the period has {n - start_row:,}: nothing is left to trade (start later, or load earlier "
            "history with 'autotrader data import')"
        )
    if signals.direction.shape != (n, len(data.symbols)):
        raise ConfigError(f"strategy {strategy.name!r} returned signals of shape {signals.direction.shape}")
    meta = {
        k: (v[first:] if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n else v)
        for k, v in signals.meta.items()
    }
    sliced = dataclasses.replace(
        signals, direction=signals.direction[first:], confidence=signals.confidence[first:], meta=meta
    )
    info: dict[str, Any] = {
        "bars_needed": needed,
        "bars_wanted": int(strategy.history_bars),
        "bars_before_period": start_row,
        "missing_bars": missing,
        "history_from": format_ms(int(data.ts[0])) if start_row > 0 else None,
        "history_to": format_ms(int(data.ts[start_row - 1])) if start_row > 0 else None,
        "period_warmup_from": format_ms(int(data.ts[start_row])) if missing else None,
        "period_warmup_to": format_ms(int(data.ts[first - 1])) if missing else None,
        "measured_from": format_ms(int(data.ts[first])),
    }
    info["note"] = warmup_note(info)
    return rows_from(data, first), sliced, info


def rows_from(data: AlignedCandles, first: int) -> AlignedCandles:
    """The rows of ``data`` from ``first`` on (contiguous copies; ``data`` itself when ``first`` is 0)."""
    if first == 0:
        return data
    return AlignedCandles(
        data.symbols,
        *(
            np.ascontiguousarray(getattr(data, n)[first:])
            for n in ("ts", "open", "high", "low", "close", "volume", "present")
        ),
    )


def warmup_note(warmup: dict[str, Any]) -> str:
    """One line about the warm-up a run used ('' when it had none to report)."""
    if not warmup:
        return ""
    text = f"warm-up {warmup['bars_needed']:,} bars needed"
    if warmup["bars_wanted"] > warmup["bars_needed"]:
        text += f" (up to {warmup['bars_wanted']:,} used as history)"
    if warmup["bars_before_period"]:
        text += (
            f"; {warmup['bars_before_period']:,} stored bars before the period used "
            f"({warmup['history_from']} .. {warmup['history_to']} UTC)"
        )
    else:
        text += "; no stored bars before the period"
    if warmup["missing_bars"]:
        text += (
            f"; {warmup['missing_bars']:,} bars were missing, so {warmup['period_warmup_from']} .. "
            f"{warmup['period_warmup_to']} UTC inside the period were warm-up (not traded): return, buy & hold, "
            f"time in market and exposure are measured from {warmup['measured_from']} UTC"
        )
    return text
