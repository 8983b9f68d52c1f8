"""Loading what a backtest run needs from the store, with honest notes about the data."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from autotrader.backtest.runner import BacktestConfig
from autotrader.domain.candles import SeriesKey, format_ms
from autotrader.domain.errors import ConfigError, DataError
from autotrader.marketdata.store import AlignedCandles, CandleStore, read_aligned


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
    available = {k for k in store.keys() if k.exchange == config.exchange and k.timeframe == config.timeframe}
    known_symbols = sorted(k.symbol for k in available)
    notes: list[str] = []
    for symbol in config.symbols:
        key = SeriesKey.of(config.exchange, symbol, config.timeframe)
        if key not in available:
            close = difflib.get_close_matches(symbol, known_symbols, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
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
