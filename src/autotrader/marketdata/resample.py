"""Resample candles to a longer timeframe (pure numpy, no pandas).

Buckets are aligned to the UTC epoch: a bar belongs to the bucket ``ts // target_ms * target_ms``.
For every timeframe up to one day this is the natural calendar alignment (``1h`` buckets start on
the hour, ``4h`` buckets at 00:00, 04:00, ... UTC, ``1d`` buckets at 00:00 UTC; multi-day buckets
count whole days from 1970-01-01). Weekly targets (any multiple of 7 days) are refused: the Unix
epoch was a Thursday, so epoch-aligned weeks would not start on Monday like exchange weekly candles.

Rules, the same as an exchange building its longer candles from the shorter ones:

* open = open of the first source bar in the bucket, close = close of the last one,
  high = max of highs, low = min of lows, volume = sum of volumes;
* a bucket with no source bar is not created: gaps in the source stay gaps in the result;
* a bucket with only some of its source bars (around a gap, or the last, still-forming bucket)
  is kept as a partial bar. Use ``bars_per_bucket`` to find and drop them if that matters.
"""

from __future__ import annotations

import numpy as np

from autotrader.domain.candles import Candles, IntArray
from autotrader.domain.errors import DataError
from autotrader.marketdata.verify import timeframe_label

_WEEK_MS = 7 * 86_400_000


def _check_timeframes(source_ms: int, target_ms: int) -> None:
    if source_ms <= 0 or target_ms <= 0:
        raise DataError(f"cannot resample: timeframes must be positive, got {source_ms} and {target_ms} ms")
    source, target = timeframe_label(source_ms), timeframe_label(target_ms)
    if target_ms % source_ms != 0:
        raise DataError(f"cannot resample {source} bars to {target}: {target} is not a multiple of {source}")
    if target_ms % _WEEK_MS == 0:
        raise DataError(
            f"cannot resample to {target}: weekly targets are not supported (buckets are UTC-epoch aligned)"
        )


def _check_sorted(ts: IntArray) -> None:
    if len(ts) > 1 and not bool(np.all(np.diff(ts) > 0)):
        raise DataError("cannot resample: timestamps must be sorted and unique (run verify_candles first)")


def bucket_starts(ts: IntArray, target_ms: int) -> IntArray:
    """Open time of the ``target_ms`` bucket each timestamp falls in (UTC epoch aligned)."""
    return ts // target_ms * target_ms


def resample(candles: Candles, source_ms: int, target_ms: int) -> Candles:
    """Aggregate ``source_ms`` bars into ``target_ms`` bars (see the module docstring for the rules).

    ``candles`` must be sorted with unique timestamps. ``target_ms`` must be a whole multiple of
    ``source_ms`` and not a week or longer multiple of weeks; otherwise ``DataError``.
    ``target_ms == source_ms`` returns an equal copy.
    """
    _check_timeframes(source_ms, target_ms)
    _check_sorted(candles.ts)
    if len(candles) == 0:
        return Candles.empty()
    buckets = bucket_starts(candles.ts, target_ms)
    starts_ts, first = np.unique(buckets, return_index=True)
    last = np.append(first[1:], len(buckets)) - 1
    return Candles(
        ts=starts_ts.astype(np.int64),
        open=candles.open[first].copy(),
        high=np.maximum.reduceat(candles.high, first),
        low=np.minimum.reduceat(candles.low, first),
        close=candles.close[last].copy(),
        volume=np.add.reduceat(candles.volume, first),
    )


def bars_per_bucket(candles: Candles, target_ms: int) -> IntArray:
    """How many source bars went into each bar of ``resample(candles, ..., target_ms)`` (same order).

    A bucket is complete when this equals ``target_ms // source_ms``.
    """
    _check_sorted(candles.ts)
    _, counts = np.unique(bucket_starts(candles.ts, target_ms), return_counts=True)
    return counts.astype(np.int64)
