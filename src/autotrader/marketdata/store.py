"""The market-data store port: one interface, two backends (embedded Parquet, PostgreSQL).

Backends live in ``autotrader.adapters.storage``; ``autotrader.adapters.storage.open_store``
picks one from the configuration. Everything above the store (backtest, analysis, CLI) talks
only to this ``CandleStore`` protocol and to ``read_aligned``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles, Coverage, SeriesKey
from autotrader.domain.errors import DataError


@runtime_checkable
class CandleStore(Protocol):
    """Storage of candle series keyed by ``SeriesKey`` and bar open time (UTC ms)."""

    def upsert(self, key: SeriesKey, candles: Candles) -> int:
        """Insert or replace bars (same ``ts`` is overwritten); all-or-nothing. Returns rows written."""
        ...

    def read(self, key: SeriesKey, start_ms: int | None = None, end_ms: int | None = None) -> Candles:
        """Bars with ``start_ms <= ts <= end_ms``, sorted; empty ``Candles`` if none."""
        ...

    def keys(self) -> list[SeriesKey]:
        """Every stored series, sorted by exchange, symbol, timeframe. Cheap (no bar scan)."""
        ...

    def coverage(self, key: SeriesKey | None = None) -> list[Coverage]:
        """First/last bar, rows and gaps of one series, or of every stored series."""
        ...

    def delete(self, key: SeriesKey, start_ms: int | None = None, end_ms: int | None = None) -> int:
        """Remove a series (or a time range of it). Returns rows removed."""
        ...

    def close(self) -> None:
        """Release connections or handles."""
        ...


def read_aligned(
    store: CandleStore,
    exchange: str,
    symbols: Sequence[str],
    timeframe: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> AlignedCandles:
    """Read many symbols of one exchange/timeframe and align them; a symbol with no bars is a ``DataError``."""
    series: dict[str, Candles] = {}
    for symbol in symbols:
        key = SeriesKey.of(exchange, symbol, timeframe)
        candles = store.read(key, start_ms, end_ms)
        if len(candles) == 0:
            raise DataError(f"no {key.timeframe} candles for {key.symbol} on {key.exchange} in the requested period")
        series[key.symbol] = candles
    return align(series)


def missing_series_hint(keys: Iterable[SeriesKey], wanted: SeriesKey) -> str:
    """Where a series that is not stored may be: ``"; ..."`` to append to the error, or ``""``.

    The same symbol under another exchange comes first, then under another timeframe, then a close
    symbol name on the same exchange and timeframe, then a close name anywhere in the store.
    """
    keys = list(keys)
    same = [k for k in keys if k.symbol == wanted.symbol]
    exchanges = sorted({k.exchange for k in same if k.timeframe == wanted.timeframe})
    if exchanges:
        return f"; {wanted.symbol} {wanted.timeframe} is stored under --exchange {' or '.join(exchanges)}"
    if same:
        where = sorted({f"{k.exchange} {k.timeframe}" for k in same})
        return f"; {wanted.symbol} is stored as {', '.join(where)} (see --exchange and --timeframe)"
    here = sorted({k.symbol for k in keys if k.exchange == wanted.exchange and k.timeframe == wanted.timeframe})
    close = difflib.get_close_matches(wanted.symbol, here, n=1)
    if close:
        return f"; did you mean {close[0]}?"
    anywhere: dict[str, set[str]] = {}
    for k in keys:
        anywhere.setdefault(k.symbol, set()).add(f"{k.exchange} {k.timeframe}")
    close = difflib.get_close_matches(wanted.symbol, sorted(anywhere), n=1)
    if close:
        return f"; did you mean {close[0]} ({', '.join(sorted(anywhere[close[0]]))})?"
    return ""
