"""A stop (re)placed after the price already gapped through its level: the robot exits at market at once.

A long on linear with a 3 % stop-loss (38,800 from an entry at 40,000). exchange-sim refuses the
first stop (Bybit 10001, once); before the robot places it again, BTC crashes 10 % in one bar to
36,000, below the stop. The stop is not sent again: a falling stop above the price would be
refused (110093), and one sent "trigger on rise" would leave the position without downside
protection. The robot exits at market in the same step, as ``stop_loss``.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import numpy as np
from robot_harness import MINUTE, WARMUP, btc_venue, minute_candles, signal

from autotrader.domain.candles import Candles

CRASH_BAR = WARMUP + 10


def _crash_btc() -> Candles:
    """Flat at 40,000 until ``CRASH_BAR``, which closes 10 % lower at 36,000; flat there after."""
    close = np.full(WARMUP + 40, 40_000.0)
    close[CRASH_BAR:] = 36_000.0
    return minute_candles(close)


def test_a_stop_the_price_gapped_through_before_it_was_placed_exits_at_market_at_once(tmp_path) -> None:
    with btc_venue(tmp_path, _crash_btc(), market="linear", risk_overrides={"stop_loss": 0.03}) as venue:
        sim, store = venue.sim, venue.store
        robot, exchange, source = venue.process()
        stop_sends: list[tuple[str, object]] = []
        inner = exchange.create_order

        async def create_order(order):
            if order.trigger_price is not None:
                stop_sends.append((order.client_order_id, order.trigger_direction))
            return await inner(order)

        exchange.create_order = create_order  # type: ignore[method-assign]
        steps_after_crash: list[int] = []  # the step at which the price was first seen through the stop
        flat_after: list[int] = []  # the step at which the position was closed

        async def go() -> None:
            sim.admin.advance(10 * MINUTE)  # the entry comes at the open of the bar that crashes
            await robot.start()
            sim.admin.fault("refuse_conditional", count=1, path="/v5/order/create", ret_code=10001, ret_msg="bad")
            source.push(signal(sim.state.clock.now_ms, direction="long"))
            await robot.step()
            assert robot.book.position("BTCUSDT").qty > 0
            assert len(stop_sends) == 1  # the first stop, refused
            for i in range(6):
                sim.admin.advance(MINUTE)
                await robot.step()
                if float((await exchange.ticker("linear", "BTCUSDT")).last) < 38_000 and not steps_after_crash:
                    steps_after_crash.append(i)
                if robot.book.position("BTCUSDT").qty == 0:
                    flat_after.append(i)
                    break
            await exchange.close()

        asyncio.run(go())
        view = venue.view()
    trades = store.load_trades()
    store.close()
    [trade] = trades
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price < Decimal(37_000)  # at market, at the crashed price, not at the stop's level
    assert view["positions"] == {}
    assert len(stop_sends) == 1  # never sent again once the price was through it
    assert not [cid for cid in view["link_ids"] if "-sl-" in cid]  # no stop ever rested (the one sent was refused)
    assert trade.entry_price > Decimal(39_500)  # entered before the crash
    assert flat_after == steps_after_crash == [0]  # closed in the very step the crash was seen
