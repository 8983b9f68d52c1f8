"""A protective stop the exchange refuses: a few tries, then a robot-side stop that closes the position.

exchange-sim runs with the ``refuse_conditional`` fault (Bybit 10001 on every order create with a
trigger price, as an independent Bybit v5 server did); entries and exits still go through.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import numpy as np
import pytest
from robot_harness import WARMUP, btc_venue, close_bars, minute_candles, signal, start_on_signal

from autotrader.cli.status import render_risk
from autotrader.dashboard.snapshot import build_snapshot
from autotrader.domain.candles import Candles
from autotrader.live.order_manager import STOP_REFUSALS_BEFORE_FALLBACK
from autotrader.live.risk_state import KillSwitch
from autotrader.live.status import risk_management

STOP_LOSS = {"stop_loss": 0.02}


def _falling_btc(step: float = 0.99) -> Candles:
    """Flat at 40,000 (±0.05 % wiggle) until 10 bars after the start, then ×``step`` a bar for 12 bars, then flat."""
    n = WARMUP + 60
    close = np.full(n, 40_000.0)
    close[WARMUP + 10 : WARMUP + 22] = 40_000.0 * step ** np.arange(1, 13)
    close[WARMUP + 22 :] = close[WARMUP + 21]
    return minute_candles(close)


@pytest.mark.parametrize(("market", "direction"), [("spot", "long"), ("linear", "short")])
def test_robot_refused_stop_falls_back_to_robot_side_and_closes_the_position(tmp_path, market, direction) -> None:
    side = 1 if direction == "long" else -1
    candles = _falling_btc(1.0 - 0.01 * side)
    with btc_venue(tmp_path, candles, refuse_stops=True, market=market, risk_overrides=STOP_LOSS) as venue:
        sim, store = venue.sim, venue.store
        kill = KillSwitch(tmp_path / "KILL")
        robot, exchange, source = venue.process(kill_switch=kill)
        stop_sends: list[str] = []
        inner = exchange.create_order

        async def create_order(order):
            if order.trigger_price:
                stop_sends.append(order.client_order_id)
            return await inner(order)

        exchange.create_order = create_order
        seen: dict[str, object] = {}

        async def go() -> None:
            # the entry, then its stop: refused
            await start_on_signal(robot, source, signal(sim.state.clock.now_ms, "a", direction=direction))
            await close_bars(sim, robot, 6)  # bar closes and reconciliations try again, up to the limit
            seen["sends_at_fallback"] = len(stop_sends)
            seen["level"] = robot.om.robot_stop("BTCUSDT")
            seen["status"] = render_risk(risk_management(store, int(time.time() * 1000)))
            seen["snapshot"] = build_snapshot(store, int(time.time() * 1000))["positions"]
            await close_bars(sim, robot, 20)  # the price moves 1 % a bar through the stop
            await exchange.close()

        asyncio.run(go())
        view = venue.view()

    assert seen["sends_at_fallback"] == len(stop_sends) == STOP_REFUSALS_BEFORE_FALLBACK  # then no more sends
    [refused] = [e for e in store.events() if e.kind == "fault" and e.detail.startswith("StopRefused")]
    assert "refused 3 times" in refused.detail
    assert "robot-side" in refused.detail
    [trade] = store.load_trades()
    level = seen["level"]
    assert isinstance(level, Decimal)
    assert trade.side == side
    assert level == Decimal(str(round(trade.entry_price * (1 - Decimal("0.02") * side), 2)))
    assert trade.exit_reason == "stop_loss"
    # exited at market on the first price at or past the level: within one 1 % bar of it
    if side > 0:
        assert level * Decimal("0.985") < trade.exit_price <= level
        assert store.load_positions()["BTCUSDT"].qty == view["wallet"].get("BTC", Decimal(0))
    else:
        assert level <= trade.exit_price < level * Decimal("1.015")
        assert view["positions"] == {}
    assert robot.book.open_side("BTCUSDT", float(trade.exit_price)) == 0
    assert f"stop-loss {float(level):,.4f} robot-side (the exchange refused it)" in str(seen["status"])
    [position] = seen["snapshot"]  # type: ignore[misc]
    assert position["stop_where"] == "robot-side"
    assert position["stop"] == float(level)
    assert not kill.engaged  # the fallback worked: nothing to halt
    assert robot.om.robot_stops == {}  # flat: the robot-side stop is gone


def test_robot_side_stop_that_cannot_exit_flattens_and_halts(tmp_path) -> None:
    with btc_venue(tmp_path, _falling_btc(), refuse_stops=True, risk_overrides=STOP_LOSS) as venue:
        sim, store, clock = venue.sim, venue.store, venue.sim.state.clock.now_ms
        kill = KillSwitch(tmp_path / "KILL")
        robot, exchange, source = venue.process(kill_switch=kill)

        async def go() -> None:
            await start_on_signal(robot, source, signal(clock, "a"))
            await close_bars(sim, robot, 6)
            assert robot.om.robot_stop("BTCUSDT") is not None
            # from now on the venue refuses the robot-side stop's market exit (once): fall back to flatten
            sim.admin.fault("ret_code", count=1, path="/v5/order/create", ret_code=170130, ret_msg="bad value")
            await close_bars(sim, robot, 20)
            source.push(signal(clock, "b"))  # entries are halted
            await robot.step()
            await exchange.close()

        asyncio.run(go())
    assert kill.engaged
    assert any(e.detail.startswith("StopFallbackFailed") for e in store.events() if e.kind == "fault")
    [trade] = store.load_trades()
    assert trade.exit_reason == "stop_failed"
    assert store.load_positions()["BTCUSDT"].qty == 0 or robot.book.open_side("BTCUSDT", 30_000.0) == 0
    decisions = {d.signal_id: d for d in store.decisions()}
    assert (decisions["b"].outcome.value, decisions["b"].reason) == ("skipped", "kill_switch")


def test_robot_side_stop_survives_a_restart_and_is_not_sent_again(tmp_path) -> None:
    with btc_venue(tmp_path, _falling_btc(), refuse_stops=True, risk_overrides=STOP_LOSS) as venue:
        sim, store, clock = venue.sim, venue.store, venue.sim.state.clock.now_ms
        levels = []

        async def go() -> None:
            robot, exchange, source = venue.process()
            await start_on_signal(robot, source, signal(clock, "a"))
            await close_bars(sim, robot, 6)
            levels.append(robot.om.robot_stop("BTCUSDT"))
            await robot.stop()
            await exchange.close()
            # a new process: the robot-side stop comes back from the store and still closes the position
            robot, exchange, _ = venue.process()
            await robot.start()
            levels.append(robot.om.robot_stop("BTCUSDT"))
            await close_bars(sim, robot, 20)
            await exchange.close()

        asyncio.run(go())
        refused = sim.admin.state()["requests"].get("/v5/order/create", 0)
    assert levels[0] is not None and levels[0] == levels[1]
    [trade] = store.load_trades()
    assert trade.exit_reason == "stop_loss"
    assert refused == STOP_REFUSALS_BEFORE_FALLBACK + 2  # three refused stops, the entry and the exit
