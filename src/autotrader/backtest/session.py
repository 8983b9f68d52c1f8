"""Loading what a backtest run needs from the store, with honest notes about the data."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autotrader.backtest.runner import BacktestConfig, BacktestResult, rows_from, run_backtest, warmup_note
from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.candles import SeriesKey, format_ms
from autotrader.domain.errors import ConfigError, DataError
from autotrader.marketdata.store import CandleStore, missing_series_hint, read_aligned
from autotrader.risk.limits import RiskLimits
from autotrader.strategy.base import Strategy
from autotrader.strategy.build import build_strategy as strategy_for


@dataclass(frozen=True)
class LoadedData:
    """Aligned candles for a run plus human-readable notes (clipped periods, gaps).

    ``data`` starts with up to ``history_bars`` stored bars before the period (warm-up history);
    ``start_row`` is the row of the period's first bar (0 without history).
    """

    data: AlignedCandles
    notes: tuple[str, ...]
    start_row: int = 0


def load_backtest_data(store: CandleStore, config: BacktestConfig, history_bars: int = 0) -> LoadedData:
    """Read ``config``'s symbols and period; clip to what exists and say so; fail clearly otherwise.

    ``history_bars``: also read up to this many stored bars before the period (the strategy's
    warm-up, see ``Strategy.history_bars``); fewer when the store holds fewer.
    """
    start_ms, end_ms = config.start_ms, config.end_ms
    if start_ms > end_ms:
        raise ConfigError(f"period start {config.start} is after its end {config.end}")
    stored = store.keys()
    available = {k for k in stored if k.exchange == config.exchange and k.timeframe == config.timeframe}
    known_symbols = sorted(k.symbol for k in available)
    notes: list[str] = []
    for symbol in config.symbols:
        key = SeriesKey.of(config.exchange, symbol, config.timeframe)
        if key not in available:
            hint = missing_series_hint(stored, key)
            listing = ", ".join(known_symbols) or "none"
            raise DataError(
                f"no {config.timeframe} candles for {symbol} on {config.exchange}{hint} "
                f"(available: {listing}; add data with 'autotrader data import')"
            )
        [cov] = store.coverage(key)
        if cov.last_ts < start_ms or cov.first_ts > end_ms:
            raise DataError(
                f"{symbol} has no {config.timeframe} data in {config.start}..{config.end} "
                f"(stored: {format_ms(cov.first_ts)} .. {format_ms(cov.last_ts)})"
            )
        if cov.first_ts > start_ms or cov.last_ts < end_ms - key.tf.ms + 1:
            lo, hi = max(cov.first_ts, start_ms), min(cov.last_ts, end_ms)
            notes.append(
                f"{symbol}: data only covers {format_ms(lo)} .. {format_ms(hi)} UTC of the requested period; "
                "it trades only there"
            )
    if history_bars <= 0:
        data = read_aligned(store, config.exchange, config.symbols, config.timeframe, start_ms, end_ms)
        return LoadedData(data, tuple(notes))
    tf_ms = SeriesKey.of(config.exchange, config.symbols[0], config.timeframe).tf.ms
    slack = history_bars // 20 + 48  # gaps: read a little more, then keep exactly ``history_bars`` rows
    early_ms = max(start_ms - (history_bars + slack) * tf_ms, 0)
    data = read_aligned(store, config.exchange, config.symbols, config.timeframe, early_ms, end_ms)
    start_row = int(np.searchsorted(data.ts, start_ms))
    lo = max(0, start_row - history_bars)
    return LoadedData(rows_from(data, lo), tuple(notes), start_row - lo)


def build_strategy(
    config: BacktestConfig, cache_dir: Path | None = None, *, limits: RiskLimits | None = None
) -> Strategy:
    """The strategy a backtest config names (``strategy.build.build_strategy`` with the config's trading fields)."""
    return strategy_for(config.strategy, config.params, config, limits=limits, cache_dir=cache_dir)


def run_config(
    config: BacktestConfig,
    store: CandleStore,
    *,
    cache_dir: Path | None = None,
    transform: Callable[[AlignedCandles], AlignedCandles] | None = None,
) -> BacktestResult:
    """Load data, build the strategy and run: how ``analyze`` re-runs a saved configuration.

    ``transform`` changes the candles before the run (stress scenarios use it).
    """
    limits = config.limits()
    strategy = build_strategy(config, cache_dir, limits=limits)
    loaded = load_backtest_data(store, config, strategy.history_bars)
    data = transform(loaded.data) if transform is not None else loaded.data
    result = run_backtest(config, data, strategy, start_row=loaded.start_row, limits=limits)
    return with_notes(result, loaded.notes)


def with_notes(result: BacktestResult, notes: tuple[str, ...]) -> BacktestResult:
    """``result`` with the data notes and the warm-up note in ``period_note``."""
    parts = [*notes, warmup_note(result.warmup)]
    text = "; ".join(p for p in parts if p)
    return dataclasses.replace(result, period_note=text) if text else result
