"""Exits the robot sends itself: flattening, and the stops and targets the venue refused to hold.

``RobotExits`` works on the robot's book and order manager in its ``RobotState``, which
``Robot.start`` fills.
"""

from __future__ import annotations

import logging

from autotrader.domain.errors import OrderRejected, TemporaryExchangeError
from autotrader.domain.orders import OrderStatus
from autotrader.live.exits import exit_hit
from autotrader.live.intents import exit_intent, market_order
from autotrader.live.records import Intent, RobotEvent, StoredOrder
from autotrader.live.robot_state import ExchangeFault, RobotState

log = logging.getLogger(__name__)


class RobotExits:
    """Market exits of a robot's positions: on demand (``flatten``) and at robot-held stops and targets."""

    def __init__(self, state: RobotState, exchange_fault: ExchangeFault) -> None:
        self.state = state
        self.exchange_fault = exchange_fault

    def exit_order(self, intent: Intent, symbol: str, price: float) -> StoredOrder | None:
        """The market order closing ``symbol``'s tradable quantity (``None``: nothing tradable or below minimums)."""
        state = self.state
        assert state.om is not None
        assert state.book is not None
        qty = state.book.tradable_qty(symbol, price)
        if qty == 0:
            return None
        command = market_order(intent, qty, state.config.market)
        try:
            command = state.om.fit(command, price)
        except OrderRejected:
            return None
        return state.om.new_order(intent, command)

    async def flatten(self, reason: str) -> int:
        """Exit every open position (reason recorded); returns how many exits were sent."""
        sent = 0
        for symbol in self.state.symbols:
            price = await self.state.market_view.price(symbol)
            if await self.exit_now(symbol, price, reason) is not None:
                sent += 1
        return sent

    async def exit_now(self, symbol: str, price: float, reason: str) -> StoredOrder | None:
        """Send a market exit for ``symbol``'s position (``None``: flat, an exit pending, or not placeable)."""
        state = self.state
        assert state.om is not None
        assert state.book is not None
        side = state.book.open_side(symbol, price)
        if side == 0 or state.om.pending_exit(symbol):
            return None
        now = state.clock.now_ms()
        cid = state.om.client_id(symbol, f"{reason}-{state.book.position(symbol).entry_client_order_id}", "exit")
        intent = exit_intent(cid, symbol, side, now, reason, price)
        stored = self.exit_order(intent, symbol, price)
        if stored is None:
            return None
        state.store.save_intent(intent, stored.order)
        state.om.track(intent, stored)
        return await state.om.run_exit(stored, price)

    async def check_robot_exits(self) -> int:
        """Robot-side exits (the venue refused the conditional order): exit at market at the level.

        Stops (``stop_loss`` or, once the level trailed, ``trailing_stop``) and targets
        (``take_profit``) the venue would not hold are checked on every loop iteration with a fresh
        price (a stop before a target, as the kernel assumes). If that exit cannot be placed or is
        refused too, every position is flattened and the kill switch engaged (entries halt);
        returns how many exits were sent.
        """
        state = self.state
        om, book = state.om, state.book
        if om is None or book is None:
            return 0
        sent = 0
        for symbol in om.robot_exit_symbols():
            stop, target = om.robot_stop(symbol), om.robot_target(symbol)
            if (stop is None and target is None) or symbol not in state.instruments:
                continue
            try:
                price = await state.market_view.price(symbol)
            except TemporaryExchangeError as e:
                self.exchange_fault("robot-side exit", e)
                continue
            side = book.open_side(symbol, price)
            if side == 0:
                om.clear_robot_stop(symbol)
                om.clear_robot_target(symbol)
                continue
            if om.pending(symbol):
                continue
            hit = exit_hit(side, price, float(stop or 0), float(target or 0))
            if hit is None:
                continue
            reason = om.stop_reason(symbol, stop) if hit == "stop" and stop is not None else hit
            level = stop if hit == "stop" else target
            log.warning("robot-side %s of %s hit at %s (level %s): exit at market", reason, symbol, price, level)
            stored = await self.exit_now(symbol, price, reason)
            if stored is None or stored.order.status is OrderStatus.REJECTED:
                await self._stops_impossible(symbol, stored)
                return sent
            sent += 1
        return sent

    async def _stops_impossible(self, symbol: str, stored: StoredOrder | None) -> None:
        state = self.state
        why = "could not be placed" if stored is None else f"was refused ({stored.order.reason})"
        detail = f"{symbol}: the robot-side exit's market order {why}: flattening everything and halting"
        log.error(detail)
        event = RobotEvent(state.clock.now_ms(), "fault", f"StopFallbackFailed: {detail}"[:1000], symbol)
        state.store.record_event(event)
        state.kill_switch.engage(f"robot-side exit of {symbol} failed")
        await self.flatten("stop_failed")
