"""Replayed market data for the simulator: a market clock and a price path through stored bars.

The simulator has two clocks. The *auth clock* (wall time plus an optional skew) is what Bybit's
``/v5/market/time`` reports and what request signatures are checked against. The *market clock*
replays stored candles: it starts at ``start_ms`` and runs ``speed`` times faster than the wall
(``speed=0`` stops it; tests move it explicitly with ``advance``). Everything market-related —
klines, tickers, order and fill times, the envelope ``time`` of data answers — is on the market
clock.

Inside a bar the price follows open → low → high → close for an up bar (open → high → low → close
for a down bar), one third of the bar per leg, so stops and limits trigger in the order a
backtest assumes and a partial bar's high/low/close are what had traded so far.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from autotrader.domain.candles import Candles


class MarketClock:
    """Replay time in ms: ``start_ms + speed × wall-elapsed + manual advances``. Thread-safe."""

    def __init__(self, start_ms: int, speed: float = 1.0, monotonic=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._lock = threading.Lock()
        self._mono = monotonic
        self._base_ms = float(start_ms)
        self._base_wall = monotonic()
        self._speed = float(speed)

    def now_ms(self) -> int:
        with self._lock:
            return int(self._base_ms + (self._mono() - self._base_wall) * 1000.0 * self._speed)

    @property
    def speed(self) -> float:
        return self._speed

    def _rebase(self) -> None:
        now = self._mono()
        self._base_ms += (now - self._base_wall) * 1000.0 * self._speed
        self._base_wall = now

    def advance(self, ms: int) -> int:
        """Jump forward by ``ms`` (never backwards); returns the new time."""
        with self._lock:
            self._rebase()
            self._base_ms += max(0, int(ms))
            return int(self._base_ms)

    def set(self, ms: int) -> int:
        with self._lock:
            self._rebase()
            self._base_ms = max(self._base_ms, float(ms))
            return int(self._base_ms)

    def set_speed(self, speed: float) -> None:
        with self._lock:
            self._rebase()
            self._speed = max(0.0, float(speed))


@dataclass(frozen=True, slots=True)
class Bar:
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class SymbolTape:
    """One symbol's bars at the base timeframe, with the intra-bar price path."""

    def __init__(self, symbol: str, candles: Candles, timeframe_ms: int) -> None:
        if len(candles) == 0:
            raise ValueError(f"no candles for {symbol}")
        self.symbol = symbol
        self.tf_ms = timeframe_ms
        self.c = candles
        self.ts = candles.ts

    @property
    def first_ts(self) -> int:
        return int(self.ts[0])

    @property
    def end_ms(self) -> int:
        """When the last stored bar closes."""
        return int(self.ts[-1]) + self.tf_ms

    def index_at(self, t_ms: int) -> int:
        """Index of the bar containing ``t_ms`` (clamped to the data); -1 before the first bar."""
        i = int(np.searchsorted(self.ts, t_ms, side="right")) - 1
        return min(i, len(self.ts) - 1)

    def _vertices(self, i: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Times (fractions of the bar) and prices of bar ``i``'s path."""
        c = self.c
        o, h, lo, cl = float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i])
        mid = (lo, h) if cl >= o else (h, lo)
        return (0.0, 1 / 3, 2 / 3, 1.0), (o, mid[0], mid[1], cl)

    def price_at(self, t_ms: int) -> float | None:
        """The traded price at ``t_ms``; ``None`` before the first bar, the last close after the data."""
        i = self.index_at(t_ms)
        if i < 0:
            return None
        start = int(self.ts[i])
        if t_ms >= start + self.tf_ms:
            return float(self.c.close[i])
        frac = (t_ms - start) / self.tf_ms
        xs, ys = self._vertices(i)
        return float(np.interp(frac, xs, ys))

    def range_between(self, a_ms: int, b_ms: int) -> tuple[float, float] | None:
        """Lowest and highest traded price in ``[a_ms, b_ms]`` (``None`` if nothing traded)."""
        if b_ms < a_ms:
            return None
        lo_i, hi_i = max(self.index_at(a_ms), 0), self.index_at(b_ms)
        if self.index_at(b_ms) < 0:
            return None
        prices: list[float] = []
        for t in (a_ms, b_ms):
            p = self.price_at(t)
            if p is not None:
                prices.append(p)
        for i in range(lo_i, hi_i + 1):
            start = int(self.ts[i])
            xs, ys = self._vertices(i)
            for x, y in zip(xs, ys, strict=True):
                t = start + x * self.tf_ms
                if a_ms <= t <= b_ms:
                    prices.append(y)
        if not prices:
            return None
        return min(prices), max(prices)

    def first_through(self, a_ms: int, b_ms: int, level: float, falling: bool) -> float | None:
        """The first traded price at or past ``level`` in ``[a_ms, b_ms]`` (``None``: never reached).

        Inside a bar the path is continuous, so crossing ``level`` there trades at ``level``; from one
        bar to the next the price jumps (close to the next open), so a gap past ``level`` first trades
        at the new bar's open. A path already past ``level`` at ``a_ms`` gives its price there.
        """
        if b_ms < a_ms or self.index_at(b_ms) < 0:
            return None
        points: list[tuple[int, int, float]] = []  # (time, bar, price), sorted below
        for t in (a_ms, b_ms):
            p = self.price_at(t)
            if p is not None:
                points.append((t, max(self.index_at(t), 0), p))
        for i in range(max(self.index_at(a_ms), 0), self.index_at(b_ms) + 1):
            start = int(self.ts[i])
            xs, ys = self._vertices(i)
            for x, y in zip(xs, ys, strict=True):
                t = start + round(x * self.tf_ms)
                if a_ms <= t <= b_ms:
                    points.append((t, i, y))
        points.sort(key=lambda p: (p[0], p[1]))

        def past(price: float) -> bool:
            return price <= level if falling else price >= level

        if not points:
            return None
        if past(points[0][2]):
            return points[0][2]
        for (_, bar_a, _), (_, bar_b, price) in itertools.pairwise(points):
            if past(price):
                return level if bar_a == bar_b else price
        return None

    def bar_at(self, i: int) -> Bar:
        c = self.c
        return Bar(
            int(c.ts[i]), float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i]), float(c.volume[i])
        )

    def partial_bar(self, i: int, t_ms: int) -> Bar:
        """Bar ``i`` as it stood at ``t_ms`` (complete once ``t_ms`` reaches its close)."""
        start = int(self.ts[i])
        if t_ms >= start + self.tf_ms:
            return self.bar_at(i)
        frac = max(0.0, (t_ms - start) / self.tf_ms)
        xs, ys = self._vertices(i)
        seen = [y for x, y in zip(xs, ys, strict=True) if x <= frac]
        last = float(np.interp(frac, xs, ys))
        seen.append(last)
        return Bar(start, ys[0], max(seen), min(seen), last, float(self.c.volume[i]) * frac)


class MarketReplay:
    """Every symbol's tape plus the market clock; serves bars at the base timeframe or multiples."""

    def __init__(self, candles: Mapping[str, Candles], timeframe_ms: int, clock: MarketClock) -> None:
        if not candles:
            raise ValueError("the simulator needs candles for at least one symbol")
        self.tf_ms = timeframe_ms
        self.clock = clock
        self.tapes = {s.upper(): SymbolTape(s.upper(), c, timeframe_ms) for s, c in candles.items()}

    @property
    def symbols(self) -> list[str]:
        return sorted(self.tapes)

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def price(self, symbol: str, t_ms: int | None = None) -> float | None:
        tape = self.tapes.get(symbol)
        return None if tape is None else tape.price_at(self.now_ms() if t_ms is None else t_ms)

    def klines(
        self, symbol: str, interval_ms: int, start_ms: int | None, end_ms: int | None, limit: int, now_ms: int
    ) -> list[Bar]:
        """Bars (newest first, as Bybit sends them) with open time in ``[start, end]``, up to ``now``.

        The newest bar may still be open. When more than ``limit`` bars match, the newest ``limit``
        are returned. ``interval_ms`` must be a multiple of the base timeframe.
        """
        tape = self.tapes[symbol]
        factor = interval_ms // self.tf_ms
        hi_t = now_ms if end_ms is None else min(end_ms, now_ms)
        lo_t = start_ms if start_ms is not None else hi_t - interval_ms * (limit + 1)
        # base bars that can contribute: open time from the first interval start to hi_t
        first_group = (max(lo_t, tape.first_ts) // interval_ms) * interval_ms
        lo_i = int(np.searchsorted(tape.ts, first_group, side="left"))
        hi_i = int(np.searchsorted(tape.ts, hi_t, side="right")) - 1
        hi_i = min(hi_i, int(np.searchsorted(tape.ts, now_ms, side="right")) - 1)
        if hi_i < lo_i:
            return []
        if factor == 1:
            idx = range(max(lo_i, hi_i - limit + 1), hi_i + 1)
            bars = [tape.partial_bar(i, now_ms) for i in idx if int(tape.ts[i]) >= lo_t]
            return list(reversed(bars[-limit:]))
        groups: dict[int, list[Bar]] = {}
        for i in range(lo_i, hi_i + 1):
            b = tape.partial_bar(i, now_ms)
            groups.setdefault((b.ts // interval_ms) * interval_ms, []).append(b)
        out = [
            Bar(
                g,
                parts[0].open,
                max(p.high for p in parts),
                min(p.low for p in parts),
                parts[-1].close,
                sum(p.volume for p in parts),
            )
            for g, parts in sorted(groups.items())
            if lo_t <= g <= hi_t
        ]
        return list(reversed(out[-limit:]))

    def is_closed(self, bar_ts: int, interval_ms: int, now_ms: int) -> bool:
        return bar_ts + interval_ms <= now_ms


def synthetic_candles(
    n: int,
    timeframe_ms: int = 60_000,
    start_ms: int = 1_704_067_200_000,
    start_price: float = 40_000.0,
    cycle_bars: int = 240,
    amplitude: float = 0.02,
    seed: int = 0,
) -> Candles:
    """Deterministic bars for tests and rehearsals: a slow cycle of ±``amplitude`` plus noise.

    The cycle makes limit and stop orders a few percent away from the market fill within one
    ``cycle_bars``; prices are rounded to cents so they survive any decimal round trip.
    """
    rng = np.random.default_rng(seed)
    i = np.arange(n + 1)
    path = (
        start_price
        * (1.0 + amplitude * np.sin(2 * np.pi * i / cycle_bars))
        * np.exp(np.cumsum(rng.normal(0.0, 0.0004, n + 1)))
    )
    path = np.round(path, 2)
    opens, closes = path[:-1], path[1:]
    wiggle = np.abs(rng.normal(0.0, 0.0006, n)) * opens
    highs = np.round(np.maximum(opens, closes) + wiggle, 2)
    lows = np.round(np.minimum(opens, closes) - wiggle, 2)
    volume = np.round(rng.uniform(1.0, 10.0, n), 3)
    ts = start_ms + timeframe_ms * np.arange(n, dtype=np.int64)
    return Candles.from_columns(
        {"ts": ts, "open": opens, "high": highs, "low": lows, "close": closes, "volume": volume}
    )
