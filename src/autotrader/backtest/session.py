"""Loading what a backtest run needs from the store, with honest notes about the data."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autotrader.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from autotrader.domain.candles import SeriesKey, format_ms
from autotrader.domain.errors import ConfigError, DataError
from autotrader.marketdata.store import AlignedCandles, CandleStore, missing_series_hint, read_aligned
from autotrader.strategy.base import Strategy, get_strategy


@dataclass(frozen=True)
class LoadedData:
    """Aligned candles for a run plus human-readable notes (clipped periods, gaps)."""

    data: AlignedCandles
    notes: tuple[str, ...]


def load_backtest_data(store: CandleStore, config: BacktestConfig) -> LoadedData:
    """Read ``config``'s symbols and period; clip to what exists and say so; fail clearly otherwise."""
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
    data = read_aligned(store, config.exchange, config.symbols, config.timeframe, start_ms, end_ms)
    return LoadedData(data, tuple(notes))


def build_strategy(config: BacktestConfig, cache_dir: Path | None = None) -> Strategy:
    """The strategy a config names, with the risk level's confidence threshold and the prediction cache."""
    strategy = get_strategy(config.strategy, **config.params)
    if "threshold" in strategy.parameters and "threshold" not in config.params:
        strategy.params["threshold"] = config.limits().min_confidence
    if cache_dir is not None and hasattr(strategy, "cache"):
        from autotrader.strategy.cache import NpzPredictionCache

        strategy.cache = NpzPredictionCache(cache_dir / "predictions")
    return strategy


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
    loaded = load_backtest_data(store, config)
    data = transform(loaded.data) if transform is not None else loaded.data
    strategy = build_strategy(config, cache_dir)
    result = run_backtest(config, data, strategy)
    if loaded.notes:
        result = dataclasses.replace(result, period_note="; ".join(loaded.notes))
    return result
