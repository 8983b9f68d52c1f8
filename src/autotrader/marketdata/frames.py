"""pandas DataFrames in, engine input out: ``aligned_from_frames({"BTCUSDT": df, ...})``.

A frame has the columns ``open, high, low, close, volume`` (any capitalisation, as pandas-based
libraries name them) and its bar open times as a ``DatetimeIndex`` (naive = UTC) or as integer UTC
milliseconds (the index or a ``ts`` column). float64 columns are used as they are, without a copy
(a frame's float block stores each column contiguously); symbols on one shared time grid become
the ``(bars, symbols)`` arrays directly, others are aligned as ``align`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles
from autotrader.domain.errors import DataError

_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_PER_MS = {"ns": 1_000_000, "us": 1_000, "ms": 1, "s": -1}  # -1: seconds, multiply by 1000


def _times_ms(frame: Any, symbol: str) -> np.ndarray:
    by_name = {str(c).lower(): c for c in frame.columns}
    if "ts" in by_name:
        return np.asarray(frame[by_name["ts"]].to_numpy(), dtype=np.int64)
    index = frame.index
    unit = getattr(index, "unit", None)  # a DatetimeIndex (tz-aware or naive UTC) and its resolution
    if unit in _PER_MS and hasattr(index, "asi8"):
        raw = np.asarray(index.asi8, dtype=np.int64)  # no copy; as_unit("ms") cost 8 ms per 1M bars
        per_ms = _PER_MS[unit]
        return raw if per_ms == 1 else (raw // per_ms if per_ms > 1 else raw * 1000)
    if np.issubdtype(np.asarray(index).dtype, np.integer):
        return np.asarray(index, dtype=np.int64)
    raise DataError(f"{symbol}: the frame needs a DatetimeIndex, integer UTC-ms index or a 'ts' column")


def candles_from_frame(frame: Any, symbol: str = "") -> Candles:
    """One symbol's frame as ``Candles`` (zero-copy for float64 columns)."""
    by_name = {str(c).lower(): c for c in frame.columns}
    missing = [c for c in _PRICE_COLUMNS if c not in by_name]
    if missing:
        raise DataError(f"{symbol or 'frame'}: missing column(s) {', '.join(missing)}")
    ts = _times_ms(frame, symbol)
    cols = [np.asarray(frame[by_name[c]].to_numpy(), dtype=np.float64) for c in _PRICE_COLUMNS]
    return Candles(ts, *cols)


def aligned_from_frames(frames: Mapping[str, Any]) -> AlignedCandles:
    """Several symbols' frames as the engine's ``AlignedCandles`` (see the module docstring)."""
    if not frames:
        raise DataError("no frames to align")
    return align({symbol.upper(): candles_from_frame(frame, symbol) for symbol, frame in frames.items()})
