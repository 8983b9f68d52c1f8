"""Clocks for the robot: the wall (production) or the venue's market clock (replays).

A replay venue (``exchange-sim``) runs its own market clock, faster than the wall or moved by a
test; the robot must then take "now" from the venue's answers. ``VenueClock`` learns it from the
``ts_ms`` of ticker answers (the envelope time, which ``exchange-sim`` sets to its market clock and
Bybit to its server clock) each time ``refresh()`` is awaited.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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


REPLAY_CLOCK_KEY = "replay_clock"
"""The state-store meta key under which the replay stack's one market clock is kept."""


@dataclass(frozen=True, slots=True)
class ReplayClock:
    """The market clock of a replay, shared by every process of the stack through the state store.

    Market time is ``start_ms + (wall - wall_anchor_ms) * speed``: a pure function of the wall
    clock, so the demo's paper wallet and the signal engine agree on "now" without talking to each
    other, and a process that restarts finds the market where it would be had it kept running
    (as the real market does while a robot is down).
    """

    start_ms: int
    wall_anchor_ms: int
    speed: float

    def now_ms(self, wall_ms: int | None = None) -> int:
        wall = time.time_ns() // 1_000_000 if wall_ms is None else wall_ms
        return int(self.start_ms + max(0, wall - self.wall_anchor_ms) * self.speed)

    def to_meta(self) -> dict[str, float | int]:
        return {"start_ms": self.start_ms, "wall_anchor_ms": self.wall_anchor_ms, "speed": self.speed}

    @classmethod
    def from_meta(cls, value: dict[str, float | int]) -> ReplayClock:
        return cls(int(value["start_ms"]), int(value["wall_anchor_ms"]), float(value["speed"]))

    @classmethod
    def starting(cls, start_ms: int, speed: float) -> ReplayClock:
        """A clock whose market time is ``start_ms`` now."""
        return cls(int(start_ms), time.time_ns() // 1_000_000, float(speed))


class ReplayClockReader:
    """``now_ms`` from a ``ReplayClock`` (the robot's ``Clock`` protocol)."""

    def __init__(self, clock: ReplayClock) -> None:
        self.clock = clock

    def now_ms(self) -> int:
        return self.clock.now_ms()

    async def refresh(self) -> None:
        return None
