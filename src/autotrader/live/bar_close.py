"""What the robot does when a bar closes: mark, update risk, protect positions, act on the strategy's signals.

At a newly closed bar, exactly as the backtest kernel does at a bar's close: mark equity and
update the risk state (daily loss, drawdown halt, flatten), ratchet trailing stops with the bar's
extreme and rest every position's stop and take-profit, score the acted-on signals whose horizon
it reached, and — with a strategy — decide on the bar's signals.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.candles import format_ms
from autotrader.domain.errors import TemporaryExchangeError
from autotrader.live.robot_exits import RobotExits
from autotrader.live.robot_state import ExchangeFault, MarkBook, RobotState
from autotrader.live.signal_engine import window_start_ms
from autotrader.live.signal_intake import SignalIntake
from autotrader.risk.policy import Transition
from autotrader.risk.rules import HALTED
from autotrader.signals.prediction import Prediction

log = logging.getLogger(__name__)

_ALIGNED = ("ts", "open", "high", "low", "close", "volume", "present")


class BarClose:
    """A robot's work at each closed bar (``on_bar_close``)."""

    def __init__(
        self,
        state: RobotState,
        mark: MarkBook,
        exits: RobotExits,
        intake: SignalIntake,
        exchange_fault: ExchangeFault,
    ) -> None:
        self.state = state
        self.mark = mark  # marks the book into the risk state
        self.exits = exits  # flattens on a halt, exits at a crossed trailing stop
        self.intake = intake  # decides the strategy's signals
        self.exchange_fault = exchange_fault

    async def on_bar_close(self, bar_ts: int) -> None:
        """The bar opened at ``bar_ts`` closed: mark, update risk, protect positions, act on strategy signals."""
        state = self.state
        await state.market_view.load_history()
        data = state.history
        if data is None or int(data.ts[-1]) < bar_ts:
            return  # the venue has not served the bar yet: try again on the next iteration
        state.last_bar_ts = bar_ts
        t = data.n_bars - 1
        closes = {s: float(data.close[t, j]) for j, s in enumerate(data.symbols) if data.present[t, j]}
        state.market_view.bar_closes = closes
        assert state.om is not None
        await state.om.sync_open_orders()  # stops that filled during the bar: the book must know before marking
        for symbol, value in closes.items():
            if symbol not in state.market_view.prices:
                state.market_view.set_price(symbol, value)
        await self._mark_and_act(closes, bar_ts)
        self._score_signals(data)
        if state.strategy is not None:
            for symbol in state.symbols:  # orders go out at the next moment's price
                await self._fresh_price(symbol, closes.get(symbol, math.nan))  # a failed one keeps its last
            await self._strategy_signals(data, bar_ts)

    async def _fresh_price(self, symbol: str, fallback: float) -> float:
        """The symbol's price from the venue now; on a passing venue problem, a recorded fault and ``fallback``
        (the bar's close), so one symbol's failed ticker does not end the bar's work for the others."""
        try:
            return await self.state.market_view.price(symbol, max_age_s=0.0)
        except TemporaryExchangeError as e:
            self.exchange_fault(f"bar close price of {symbol}", e)
            return fallback

    def _score_signals(self, data: AlignedCandles) -> None:
        """Record the close at each acted-on signal's horizon (for live signal accuracy)."""
        state = self.state
        until = int(data.ts[-1]) + state.tf_ms
        column = {s: j for j, s in enumerate(data.symbols)}
        for d in state.store.signals_to_score(until):
            j = column.get(d.symbol)
            bar = (d.expires_ms // state.tf_ms) * state.tf_ms - state.tf_ms  # the bar that closes at or before it
            i = int(np.searchsorted(data.ts, bar))
            if j is None or i >= data.n_bars or int(data.ts[i]) != bar or not data.present[i, j]:
                if j is None or bar < int(data.ts[0]):
                    state.store.score_signal(d.signal_id, -1.0)  # too old to score: marked so, never again
                continue
            state.store.score_signal(d.signal_id, float(data.close[i, j]))

    async def _mark_and_act(self, prices: dict[str, float], as_of_ms: int) -> None:
        state = self.state
        transitions = self.mark(prices, as_of_ms)
        halted = any(tr.transition is Transition.DRAWDOWN_HALT for tr in transitions) or state.risk.state == HALTED
        if halted and state.limits.flatten_on_halt:
            await self.exits.flatten(Transition.DRAWDOWN_HALT.label)
        assert state.om is not None
        for symbol in state.symbols:
            if symbol in prices and not state.om.pending(symbol):
                price = prices[symbol]
                extremes = self._trail_extremes(symbol, price) if state.limits.trailing_stop else None
                if extremes is not None:
                    # the trailing stop ratchets with the closed bar's extreme; the new level applies from
                    # now (the next bar's open): a price already through it exits at market, as the
                    # kernel's gap through a stop fills at the open
                    price = await self._fresh_price(symbol, price)
                    await state.om.ratchet(symbol, *extremes, price, bar_ts=state.last_bar_ts)
                    reason = state.om.crossed(symbol, price)
                    if reason is not None:
                        log.warning("%s of %s already crossed at %s: exit at market", reason, symbol, price)
                        await self.exits.exit_now(symbol, price, reason)
                        continue
                await state.om.protect(symbol, price)

    def _trail_extremes(self, symbol: str, price: float) -> tuple[float, float] | None:
        """(highest high, lowest low) of the closed bars a position's trailing stop has not seen yet.

        From the entry's bar (the kernel ratchets with it too) or the bar after the last one it
        ratcheted with, to the bar that just closed: after a restart, the bars closed while the
        robot was down count as well. ``None``: flat, or no such bar.
        """
        state = self.state
        data, om, book = state.history, state.om, state.book
        if data is None or om is None or book is None or symbol not in data.symbols:
            return None
        if state.last_bar_ts < 0 or int(data.ts[-1]) != state.last_bar_ts or not book.open_side(symbol, price):
            return None
        j = data.symbols.index(symbol)
        since = (book.position(symbol).entry_ms // state.tf_ms) * state.tf_ms
        seen = om.trail_bar(symbol)
        if seen is not None:
            since = max(since, seen + state.tf_ms)
        rows = np.flatnonzero((data.ts >= since) & data.present[:, j])
        if not len(rows):
            return None
        return float(data.high[rows, j].max()), float(data.low[rows, j].min())

    async def _strategy_signals(self, data: AlignedCandles, bar_ts: int) -> None:
        state = self.state
        assert state.strategy is not None
        first = int(np.searchsorted(data.ts, window_start_ms(state.strategy, state.tf_ms, bar_ts)))
        if first > 0:  # the strategy's window (anchored for a retrained model: the same model all period)
            data = dataclasses.replace(data, **{c: getattr(data, c)[first:] for c in _ALIGNED})
        signals = await asyncio.to_thread(state.strategy.generate, data)  # a model may train: off the loop
        t = data.n_bars - 1
        now = state.clock.now_ms()
        perf = time.perf_counter()
        if all(math.isnan(float(signals.direction[t, j])) for j in range(len(data.symbols))):
            log.info(
                "strategy %s: no signal at the bar close %s UTC (%d bars seen)",
                state.strategy.name,
                format_ms(bar_ts + state.tf_ms),
                data.n_bars,
            )
        for j, symbol in enumerate(data.symbols):
            d = float(signals.direction[t, j])
            if math.isnan(d) or not data.present[t, j]:
                continue
            conf = float(signals.confidence[t, j])
            prediction = Prediction(
                id=f"{state.strategy.name}-{symbol}-{state.config.timeframe}-{bar_ts}",
                symbol=symbol,
                ts=bar_ts + state.tf_ms,
                direction="long" if d > 0 else "short" if d < 0 else "flat",
                confidence=1.0 if math.isnan(conf) else min(1.0, max(0.0, conf)),
                horizon=state.config.timeframe,
                model=state.strategy.name,
            )
            if state.store.seen(prediction.id):
                continue
            state.metrics.signals.inc(verdict="accepted", source="strategy")
            await self.intake.on_signal(prediction, f"strategy:{state.strategy.name}", now, perf, bar_prices=True)
