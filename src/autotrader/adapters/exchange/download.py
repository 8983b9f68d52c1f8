"""Paginated, resumable candle download from Bybit (or any v5 server) into the candle store.

The period is cut into windows of ``page_bars`` bars; each window is fetched, stored (one atomic
upsert) and reported to ``progress`` before the next is asked for, so an interrupted download
leaves whole windows behind and the next run continues after the last stored bar. Only closed
bars are stored: the end is clipped to the newest bar the exchange has closed.

A server that returns fewer bars than asked (Bybit's page cap has changed over the years) is
handled: the part of a window it left out is asked for again, so no page cap leaves a hole.
Requests go through the adapter, i.e. its rate limiter and retries.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from autotrader.domain.candles import COLUMNS, Candles, SeriesKey
from autotrader.domain.instrument import Market
from autotrader.domain.timeframe import Timeframe
from autotrader.marketdata.store import CandleStore

log = logging.getLogger(__name__)


class KlineSource(Protocol):
    async def kline_page(
        self,
        market: Market,
        symbol: str,
        timeframe: str | Timeframe,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> tuple[Candles, int | None]: ...


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    key: SeriesKey
    bars_done: int
    bars_total: int  # bars the period can hold (an upper bound: gaps and pre-listing time hold none)
    last_ts: int | None
    requests: int


@dataclass(frozen=True, slots=True)
class DownloadResult:
    key: SeriesKey
    bars_written: int
    requests: int
    first_ts: int | None  # of what this run wrote
    last_ts: int | None
    resumed_from: int | None  # the first bar asked for when continuing a stored series

    @property
    def up_to_date(self) -> bool:
        return self.bars_written == 0


def _concat(parts: list[Candles]) -> Candles:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Candles.empty()
    merged = Candles.from_columns({c: np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS})
    order = np.argsort(merged.ts, kind="stable")
    merged = merged.take(order)
    keep = np.ones(len(merged), dtype=bool)
    keep[1:] = merged.ts[1:] != merged.ts[:-1]
    return merged.take(keep.nonzero()[0])


class _Fetcher:
    def __init__(self, source: KlineSource, market: Market, symbol: str, tf: Timeframe, page_bars: int) -> None:
        self.source, self.market, self.symbol, self.tf, self.page_bars = source, market, symbol, tf, page_bars
        self.requests = 0

    async def latest_closed(self) -> int | None:
        """Open time of the newest bar the exchange has closed."""
        self.requests += 1
        candles, _ = await self.source.kline_page(self.market, self.symbol, self.tf, None, None, 3)
        return int(candles.ts[-1]) if len(candles) else None

    async def window(self, a: int, b: int) -> Candles:
        """Every bar with ``a <= ts <= b`` the exchange has, whatever its page cap."""
        expected = (b - a) // self.tf.ms + 1
        self.requests += 1
        candles, _ = await self.source.kline_page(
            self.market, self.symbol, self.tf, a, b, min(self.page_bars, expected)
        )
        got = candles.slice_range(a, b)
        if len(got) == 0 or len(got) >= expected:
            return got
        parts = [got]
        lo, hi = int(got.ts[0]), int(got.ts[-1])
        if lo > a:
            parts.append(await self.window(a, lo - self.tf.ms))
        if hi < b:
            parts.append(await self.window(hi + self.tf.ms, b))
        return _concat(parts)


async def download_candles(
    source: KlineSource,
    store: CandleStore,
    key: SeriesKey,
    market: Market,
    start_ms: int,
    end_ms: int,
    *,
    page_bars: int = 1000,
    progress: Callable[[DownloadProgress], None] | None = None,
) -> DownloadResult:
    """Download ``key``'s bars with open time in ``[start_ms, end_ms]`` into ``store``; resumable."""
    tf = key.tf
    start = math.ceil(start_ms / tf.ms) * tf.ms
    fetch = _Fetcher(source, market, key.symbol, tf, max(1, page_bars))
    newest = await fetch.latest_closed()
    end = min(end_ms, newest) if newest is not None else end_ms
    end = (end // tf.ms) * tf.ms
    ranges: list[tuple[int, int]] = []
    resumed_from = None
    covered = store.coverage(key)
    if covered:
        cov = covered[0]
        if start < cov.first_ts:
            ranges.append((start, min(end, cov.first_ts - tf.ms)))
        resumed_from = max(start, cov.last_ts + tf.ms)
        ranges.append((resumed_from, end))
    else:
        ranges.append((start, end))
    ranges = [(a, b) for a, b in ranges if a <= b]
    total = sum((b - a) // tf.ms + 1 for a, b in ranges)
    done = 0
    first_written: int | None = None
    last_written: int | None = None
    for a, b in ranges:
        for w_start in range(a, b + 1, tf.ms * fetch.page_bars):
            w_end = min(b, w_start + tf.ms * (fetch.page_bars - 1))
            bars = await fetch.window(w_start, w_end)
            if len(bars):
                store.upsert(key, bars)
                done += len(bars)
                first_written = int(bars.ts[0]) if first_written is None else min(first_written, int(bars.ts[0]))
                last_written = int(bars.ts[-1]) if last_written is None else max(last_written, int(bars.ts[-1]))
            if progress is not None:
                progress(DownloadProgress(key, done, total, last_written, fetch.requests))
    log.info("downloaded %d %s bars of %s in %d requests", done, tf, key, fetch.requests)
    return DownloadResult(key, done, fetch.requests, first_written, last_written, resumed_from)
