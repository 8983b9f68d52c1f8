"""Candles as columnar numpy arrays, series keys and coverage. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from autotrader.domain.timeframe import Timeframe

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PRICE_COLUMNS = ("open", "high", "low", "close")
COLUMNS = ("ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Identifies one candle series: exchange, symbol and timeframe (all normalised)."""

    exchange: str
    symbol: str
    timeframe: str

    @classmethod
    def of(cls, exchange: str, symbol: str, timeframe: str | Timeframe) -> SeriesKey:
        """Build a key with canonical spelling: lower-case exchange, upper-case symbol, ``1h`` style timeframe."""
        tf = timeframe if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
        return cls(exchange.strip().lower(), symbol.strip().upper().replace("/", ""), tf.name)

    @property
    def tf(self) -> Timeframe:
        return Timeframe.parse(self.timeframe)

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}:{self.timeframe}"


@dataclass(frozen=True, slots=True)
class Candles:
    """OHLCV bars of one series. ``ts`` is the bar OPEN time in UTC milliseconds.

    Arrays share one length; a well-formed series is sorted, unique and on the timeframe grid
    (see ``autotrader.marketdata.verify``).
    """

    ts: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        n = len(self.ts)
        for name in COLUMNS[1:]:
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, ts has {n}")

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> Candles:
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f.copy(), f.copy(), f.copy(), f.copy())

    @classmethod
    def from_columns(cls, columns: dict[str, npt.ArrayLike]) -> Candles:
        """Build from a mapping with the six ``COLUMNS`` (copies into int64/float64)."""
        return cls(
            ts=np.ascontiguousarray(columns["ts"], dtype=np.int64),
            **{c: np.ascontiguousarray(columns[c], dtype=np.float64) for c in COLUMNS[1:]},
        )

    def columns(self) -> dict[str, np.ndarray]:
        return {c: getattr(self, c) for c in COLUMNS}

    def slice_range(self, start_ms: int | None = None, end_ms: int | None = None) -> Candles:
        """Bars with ``start_ms <= ts <= end_ms`` (either bound optional)."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.ts, start_ms, side="left"))
        hi = len(self.ts) if end_ms is None else int(np.searchsorted(self.ts, end_ms, side="right"))
        return Candles(*(getattr(self, c)[lo:hi] for c in COLUMNS))

    def take(self, index: npt.ArrayLike) -> Candles:
        return Candles(*(getattr(self, c)[index] for c in COLUMNS))


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing bars between two present bars: ``after_ts`` is the last bar before the hole."""

    after_ts: int
    missing_bars: int


@dataclass(frozen=True, slots=True)
class Coverage:
    """What a store holds for one series."""

    key: SeriesKey
    first_ts: int
    last_ts: int
    rows: int
    gaps: tuple[Gap, ...]

    @property
    def missing_bars(self) -> int:
        return sum(g.missing_bars for g in self.gaps)


def find_gaps(ts: IntArray, timeframe_ms: int) -> tuple[Gap, ...]:
    """Holes in a sorted timestamp array: each step longer than one bar is a gap."""
    if len(ts) < 2:
        return ()
    steps = np.diff(ts)
    where = np.flatnonzero(steps > timeframe_ms)
    return tuple(Gap(int(ts[i]), int(steps[i] // timeframe_ms) - 1) for i in where)


def coverage_of(key: SeriesKey, ts: IntArray) -> Coverage | None:
    """Coverage of a sorted timestamp array, ``None`` when empty."""
    if len(ts) == 0:
        return None
    return Coverage(key, int(ts[0]), int(ts[-1]), len(ts), find_gaps(ts, key.tf.ms))


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def format_ms(ms: int) -> str:
    """``2020-01-01 00:00`` (UTC)."""
    return ms_to_datetime(ms).strftime("%Y-%m-%d %H:%M")


def parse_date_ms(text: str) -> int:
    """Parse ``YYYY-MM-DD`` or an ISO-8601 date-time (UTC assumed when no zone) to epoch ms."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)
