"""Clocks for the robot: the wall (production) or the venue's market clock (replays).

A replay venue (``exchange-sim``) runs its own market clock, faster than the wall or moved by a
test; the robot must then take "now" from the venue's answers. ``VenueClock`` learns it from the
``ts_ms`` of ticker answers (the envelope time, which ``exchange-sim`` sets to its market clock and
Bybit to its server clock) each time ``refresh()`` is awaited.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from autotrader.domain.instrument import Market
from autotrader.execution.ports import ExchangePort


class WallClock:
    """UTC wall time."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def refresh(self) -> None:
        return None


class FunctionClock:
    """Whatever ``fn()`` says (tests: the simulator's market clock, or a manual counter)."""

    def __init__(self, fn: Callable[[], int]) -> None:
        self._fn = fn

    def now_ms(self) -> int:
        return int(self._fn())

    async def refresh(self) -> None:
        return None


class VenueClock:
    """The venue's clock, observed on every ``refresh()`` (a ticker request).

    ``extrapolate``: between observations advance with the wall (a venue in real time); off, the
    clock stands still until the next observation (a replay whose speed is unknown). Never goes back.
    """

    def __init__(
        self,
        exchange: ExchangePort,
        market: Market,
        symbol: str,
        *,
        extrapolate: bool = False,
        on_price: Callable[[str, float], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.market = market
        self.symbol = symbol
        self.extrapolate = extrapolate
        self.on_price = on_price
        self._venue_ms = 0
        self._wall_ms = 0

    def now_ms(self) -> int:
        if not self._venue_ms:
            return time.time_ns() // 1_000_000
        if self.extrapolate:
            return self._venue_ms + (time.time_ns() // 1_000_000 - self._wall_ms)
        return self._venue_ms

    def observe(self, venue_ms: int) -> None:
        if venue_ms > self._venue_ms:
            self._venue_ms = venue_ms
            self._wall_ms = time.time_ns() // 1_000_000

    async def refresh(self) -> None:
        ticker = await self.exchange.ticker(self.market, self.symbol)
        if ticker.ts_ms:
            self.observe(ticker.ts_ms)
        if self.on_price is not None:
            self.on_price(ticker.symbol, float(ticker.last))
