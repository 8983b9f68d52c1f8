"""The robot's view of the market: last prices (kept fresh from tickers) and the closed bars of its symbols.

Use:

    view = MarketView(config, exchange, clock)
    await view.load_history()          # the last ``lookback_bars`` closed bars, incrementally after the first time
    price = await view.price(symbol)    # refreshed when older than ``price_max_age_s``
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import COLUMNS, Candles
from autotrader.execution.ports import ExchangePort
from autotrader.live.ports import Clock
from autotrader.live.robot_config import RobotConfig

PAGE_BARS = 1000  # Bybit serves at most 1000 klines per request


@dataclasses.dataclass
class Price:
    """A last price, with when it was taken on the wall (monotonic seconds) and on the robot's clock."""

    value: float
    wall_s: float
    clock_ms: int


class MarketView:
    """Prices and closed-bar history of the robot's symbols, fetched from the exchange port."""

    def __init__(self, config: RobotConfig, exchange: ExchangePort, clock: Clock) -> None:
        self.config = config
        self.exchange = exchange
        self.clock = clock
        self.tf_ms = config.tf.ms
        self.prices: dict[str, Price] = {}
        self.history: AlignedCandles | None = None
        self.bar_closes: dict[str, float] = {}  # the last closed bar's closes (the kernel decides at them)
        self._series: dict[str, Candles] = {}

    # ------------------------------------------------------------------------------------ prices

    def price_map(self) -> dict[str, float]:
        """The last price of every symbol that has one."""
        return {s: p.value for s, p in self.prices.items()}

    def set_price(self, symbol: str, value: float) -> None:
        """Take ``value`` as ``symbol``'s last price, now."""
        self.prices[symbol] = Price(value, time.monotonic(), self.clock.now_ms())

    async def refresh_prices(self, force: bool = False, symbols: Sequence[str] | None = None) -> None:
        """Tickers for prices older than ``price_max_age_s`` on the wall or on the robot's clock (replays run fast)."""
        now = time.monotonic()
        clock_now = self.clock.now_ms()
        max_age = self.config.price_max_age_s
        for symbol in symbols or self.config.symbols:
            p = self.prices.get(symbol)
            if force or p is None or now - p.wall_s > max_age or clock_now - p.clock_ms > max_age * 1000:
                ticker = await self.exchange.ticker(self.config.market, symbol)
                self.set_price(symbol, float(ticker.last))

    async def price(self, symbol: str, max_age_s: float | None = None) -> float:
        """The symbol's last price; refreshed first when older than ``max_age_s`` (default ``price_max_age_s``)."""
        p = self.prices.get(symbol)
        limit = self.config.price_max_age_s if max_age_s is None else max_age_s
        if p is None or time.monotonic() - p.wall_s > limit or self.clock.now_ms() - p.clock_ms > limit * 1000:
            await self.refresh_prices(force=True, symbols=[symbol])
        return self.prices[symbol].value

    # ------------------------------------------------------------------------------------ bars

    async def load_history(self) -> None:
        """Closed bars of every symbol (the last ``lookback_bars``), fetched incrementally after the first time."""
        cfg = self.config
        for symbol in cfg.symbols:
            have = self._series.get(symbol)
            if have is None or not len(have):
                fresh = await self._recent_candles(symbol, cfg.lookback_bars)
            else:
                last = int(have.ts[-1])
                missing = (self.clock.now_ms() - last) // self.tf_ms
                if missing <= 1:
                    continue  # nothing new can have closed
                if missing > min(cfg.lookback_bars, PAGE_BARS - 1):
                    fresh = await self._recent_candles(symbol, cfg.lookback_bars)
                else:
                    new = await self.exchange.candles(
                        cfg.market, symbol, cfg.timeframe, start_ms=last + self.tf_ms, limit=int(missing) + 1
                    )
                    fresh = append_candles(have, new, cfg.lookback_bars)
            self._series[symbol] = fresh
        if all(len(self._series.get(s, ())) for s in cfg.symbols):
            self.history = align({s: self._series[s] for s in cfg.symbols})

    async def _recent_candles(self, symbol: str, n_bars: int) -> Candles:
        """The newest ``n_bars`` bars, in pages of at most ``PAGE_BARS`` (Bybit's kline limit)."""
        cfg = self.config
        if n_bars <= PAGE_BARS:
            return await self.exchange.candles(cfg.market, symbol, cfg.timeframe, limit=n_bars)
        now_bar = (self.clock.now_ms() // self.tf_ms) * self.tf_ms
        start = now_bar - (n_bars + n_bars // 20 + 48) * self.tf_ms  # a margin for gaps in the venue's data
        have: Candles | None = None
        while start <= now_bar:
            end = min(now_bar, start + (PAGE_BARS - 1) * self.tf_ms)
            page = await self.exchange.candles(
                cfg.market, symbol, cfg.timeframe, start_ms=start, end_ms=end, limit=PAGE_BARS
            )
            if len(page):
                page = page.take(np.argsort(page.ts, kind="stable"))
                have = page if have is None or not len(have) else append_candles(have, page, n_bars + PAGE_BARS)
            start = end + self.tf_ms
        if have is None:
            return await self.exchange.candles(cfg.market, symbol, cfg.timeframe, limit=PAGE_BARS)
        return have.take(np.arange(max(0, len(have) - n_bars), len(have)))


def append_candles(have: Candles, new: Candles, keep: int) -> Candles:
    """``have`` followed by the bars of ``new`` after its last one, the newest ``keep`` bars."""
    if not len(new):
        return have
    new = new.take(np.flatnonzero(new.ts > have.ts[-1]))
    merged = Candles(*(np.concatenate([getattr(have, c), getattr(new, c)]) for c in COLUMNS))
    return merged.take(np.arange(max(0, len(merged) - keep), len(merged)))
