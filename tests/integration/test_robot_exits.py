"""Take-profit and trailing stop on exchange-sim: the robot places every exit the backtest simulates.

BTC is flat at 40,000, then moves 1 % a bar one way for 8 bars and 1 % a bar back for 12. The
robot enters on a signal while it is flat, on linear, long and short. With a take-profit of 5 %
the position closes at the target (``take_profit``) on the way out; with a trailing stop of 2 %
(and a stop-loss of 3 %) the resting stop follows the price bar by bar and closes the position on
the way back with ``trailing_stop``, in profit. ``venue``: the exits rest at exchange-sim as
conditional orders; ``robot-side``: exchange-sim refuses every conditional order (Bybit 10001),
so after the refusals the robot holds the exits itself and exits at market.
"""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

import numpy as np
import pytest
from robot_harness import MINUTE, WARMUP, btc_venue, close_bars, minute_candles, signal, start_on_signal

from autotrader.cli.status import render_risk
from autotrader.dashboard.snapshot import build_snapshot
from autotrader.domain.candles import Candles
from autotrader.live.status import risk_management

PRICE = 40_000.0


def _out_and_back(side: int) -> Candles:
    """Flat until 10 bars after the start, 1 % a bar in ``side``'s favour for 8 bars, then 1 % a bar back for 12."""
    n = WARMUP + 60
    close = np.full(n, PRICE)
    up = PRICE * (1 + 0.01 * side) ** np.arange(1, 9)
    back = up[-1] * (1 - 0.01 * side) ** np.arange(1, 13)
    close[WARMUP + 10 : WARMUP + 30] = np.concatenate([up, back])
    close[WARMUP + 30 :] = back[-1]
    return minute_candles(close)


def _trade(tmp_path, side: int, where: str, overrides: dict) -> tuple[object, object, dict]:
    candles, refuse_stops = _out_and_back(side), where == "robot-side"
    with btc_venue(tmp_path, candles, refuse_stops=refuse_stops, market="linear", risk_overrides=overrides) as venue:
        sim, store = venue.sim, venue.store
        robot, exchange, source = venue.process()
        seen: dict = {"stops": [], "status": []}

        async def go() -> None:
            direction = "long" if side > 0 else "short"
            await start_on_signal(robot, source, signal(sim.state.clock.now_ms, direction=direction))
            for _ in range(40):
                sim.admin.advance(MINUTE)
                await robot.step()
                pos = robot.book.position("BTCUSDT")
                level = robot.om.robot_stop("BTCUSDT") if where == "robot-side" else pos.stop_price
                if level is not None and pos.qty != 0:
                    seen["stops"].append(level)
                if pos.qty != 0:  # what --mode=status and the dashboard show of the open position's exits
                    block = risk_management(store, sim.state.clock.now_ms())
                    [shown] = block.positions
                    [dashboard] = build_snapshot(store, sim.state.clock.now_ms())["positions"]
                    seen["status"].append((shown, dashboard, render_risk(block)))
            await exchange.close()

        asyncio.run(go())
        view = venue.view()
    trades = store.load_trades()
    store.close()
    assert view["positions"] == {}  # the venue agrees: flat
    [trade] = trades
    return trade, robot, seen


@pytest.mark.parametrize("where", ["venue", "robot-side"])
@pytest.mark.parametrize("direction", ["long", "short"])
def test_robot_takes_profit_at_the_target(tmp_path, direction, where) -> None:
    side = 1 if direction == "long" else -1
    trade, robot, seen = _trade(tmp_path, side, where, {"stop_loss": 0.03, "take_profit": 0.05})
    target = Decimal(str(round(float(trade.entry_price) * (1 + 0.05 * side), 2)))
    assert (trade.side, trade.exit_reason) == (side, "take_profit")
    if where == "venue":  # the resting order fills at the target (the first price through it), less slippage
        assert abs(trade.exit_price - target) <= target * Decimal("0.0005")
    else:  # robot-side: at market on the first price the robot sees past it (within one 1 % bar)
        assert (trade.exit_price - target) * side >= 0
        assert abs(trade.exit_price - target) <= target * Decimal("0.011")
    assert trade.pnl > 0
    assert not robot.om.open_orders("BTCUSDT")  # the stop left behind is cancelled
    assert robot.om.robot_targets == {} and robot.om.robot_stops == {}
    # while open, status and dashboard showed the target where it lived, and the initial stop-loss
    placed = "exchange" if where == "venue" else "robot-side"
    shown = [(s, d, text) for s, d, text in seen["status"] if s.take_profit_where == placed]
    assert shown, f"the take-profit was never shown {placed}"
    initial_stop = round(float(trade.entry_price) * (1 - 0.03 * side), 2)
    for status, dashboard, text in shown:
        assert status.take_profit == dashboard["take_profit"] == float(target)
        left = side * (float(target) - status.price) / status.price
        assert status.take_profit_distance == pytest.approx(left)
        assert dashboard["take_profit_distance"] == pytest.approx(status.take_profit_distance)
        assert (status.stop, status.stop_kind) == (pytest.approx(initial_stop, abs=0.051), "initial")
        assert dashboard["stop_kind"] == "initial" and dashboard["take_profit_where"] == placed
        assert f"take-profit {float(target):,.4f}" in text


@pytest.mark.parametrize("where", ["venue", "robot-side"])
@pytest.mark.parametrize("direction", ["long", "short"])
def test_robot_trailing_stop_follows_the_price_and_exits_as_trailing_stop(tmp_path, direction, where) -> None:
    side = 1 if direction == "long" else -1
    trade, robot, seen = _trade(tmp_path, side, where, {"stop_loss": 0.03, "trailing_stop": 0.02})
    assert (trade.side, trade.exit_reason) == (side, "trailing_stop")
    stops = [float(s) for s in seen["stops"]]
    assert len(set(stops)) >= 5  # it moved bar by bar
    assert all((b - a) * side >= 0 for a, b in itertools.pairwise(stops))  # and only ever tightened
    best = PRICE * (1 + 0.01 * side) ** 8 * (1 + 0.0005 * side)  # the best bar's extreme
    level = best * (1 - 0.02 * side)
    assert abs(stops[-1] - level) <= 0.01 * 2 + 1e-6 * level
    assert abs(float(trade.exit_price) - level) <= level * 0.011  # within the 1 % bar it fell through
    assert trade.pnl > 0  # the trailing stop locked in a profit
    assert not robot.om.open_orders("BTCUSDT")
    # status and the dashboard followed the trailing stop (tighter than the 3 % stop-loss from the entry on)
    shown = [(status, dashboard, text) for status, dashboard, text in seen["status"] if status.stop is not None]
    assert {float(status.stop) for status, _, _ in shown} >= set(stops[1:])
    for status, dashboard, text in shown:
        assert status.stop_kind == dashboard["stop_kind"] == "trailing"
        assert status.stop_where == ("exchange" if where == "venue" else "robot-side")
        assert status.stop_distance == pytest.approx(-side * (status.stop - status.price) / status.price)
        assert status.take_profit is None and "no take-profit" in text
        assert f"trailing stop {status.stop:,.4f}" in text


def test_trailing_stop_catches_up_with_the_bars_closed_while_the_robot_was_down(tmp_path) -> None:
    limits = {"stop_loss": 0.05, "trailing_stop": 0.03}
    with btc_venue(tmp_path, _out_and_back(1), market="linear", risk_overrides=limits) as venue:
        sim, store, clock = venue.sim, venue.store, venue.sim.state.clock.now_ms
        seen: dict = {}

        async def go() -> None:
            robot, exchange, source = venue.process()
            await start_on_signal(robot, source, signal(clock, direction="long"))
            await close_bars(sim, robot, 12)  # flat, then 2 bars up
            seen["before"] = robot.book.position("BTCUSDT").stop_price
            await robot.stop()
            await exchange.close()
            sim.admin.advance(7 * MINUTE)  # down while the price rises 6 more bars and turns
            robot, exchange, _ = venue.process()
            await robot.start()
            sim.admin.advance(MINUTE)  # the first bar close after the restart: a falling bar
            await robot.step()
            seen["after"] = robot.book.position("BTCUSDT").stop_price
            seen["tick"] = float(robot.instruments["BTCUSDT"].tick_size)
            seen["high"] = float(robot.history.high[robot.history.ts <= robot.last_bar_ts, 0].max())
            seen["last_high"] = float(robot.history.high[-1, 0])
            seen["open"] = robot.book.open_side("BTCUSDT", 42_000.0)
            await exchange.close()

        asyncio.run(go())
        store.close()
    expected = seen["high"] * 0.97  # the best price of every bar, the missed ones included, to the tick
    assert abs(float(seen["after"]) - expected) <= seen["tick"] / 2 + 1e-6
    assert seen["open"] == 1  # still held: the price is above the new level
    assert seen["after"] > seen["before"]
    assert seen["last_high"] < seen["high"]  # the bar that just closed is not the best one
