"""A venue problem on one symbol at a bar close does not cost the other symbols their bar.

Two longs (BTCUSDT, ETHUSDT) on exchange-sim with a trailing stop while the price rises 1 % a bar.
At one bar close the venue's ticker fails for BTCUSDT (the first symbol the robot works through):
the fault is recorded, BTCUSDT's trailing stop ratchets at the bar's close price, and ETHUSDT's
trailing stop still moves with that bar, and the strategy still decides on it.
"""

from __future__ import annotations

import asyncio

import numpy as np
from robot_harness import MINUTE, new_account, robot_config, robot_process, signal, sim_server, start_on_signal
from test_robot_exits import WARMUP, _out_and_back

from autotrader.adapters.state import open_state_store
from autotrader.domain.errors import TemporaryExchangeError
from autotrader.strategy.base import Signals, get_strategy


def test_a_failed_ticker_at_a_bar_close_still_moves_the_other_symbols_trailing_stop(tmp_path) -> None:
    rising = _out_and_back(1)
    with sim_server({"BTCUSDT": rising, "ETHUSDT": rising}, warmup_bars=WARMUP) as sim:
        account = new_account(sim)
        store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
        config = robot_config(market="linear", risk_overrides={"stop_loss": 0.03, "trailing_stop": 0.02})
        assert config.symbols[0] == "BTCUSDT"
        strategy = get_strategy("sma_cross")
        decided_at: list[int] = []  # the last bar each strategy decision was shown

        def silent_generate(data):  # the strategy decides, but never trades (the test's positions stay)
            decided_at.append(int(data.ts[-1]))
            return Signals.from_direction(np.full((data.n_bars, len(data.symbols)), np.nan))

        strategy.generate = silent_generate
        robot, exchange, source = robot_process(sim, account, store, config, strategy=strategy)
        seen: dict = {}

        async def go() -> None:
            now = sim.state.clock.now_ms
            await start_on_signal(robot, source, signal(now, "a", "BTCUSDT"))
            source.push(signal(now, "b", "ETHUSDT"))
            await robot.step()
            for _ in range(13):  # into the rise
                sim.admin.advance(MINUTE)
                await robot.step()
            assert all(robot.book.position(s).qty > 0 for s in config.symbols)
            stops_before = {s: robot.book.position(s).stop_price for s in config.symbols}
            ticker = exchange.ticker

            async def failing_ticker(market, symbol):
                if symbol == "BTCUSDT":
                    raise TemporaryExchangeError("BTCUSDT ticker: 502 Bad Gateway")
                return await ticker(market, symbol)

            exchange.ticker = failing_ticker
            sim.admin.advance(MINUTE)
            await robot.step()
            exchange.ticker = ticker
            seen["bar"] = robot.last_bar_ts
            seen["decided_at"] = decided_at[-1]
            seen["trail_bars"] = {s: robot.om.trail_bar(s) for s in config.symbols}
            seen["stops"] = {s: (stops_before[s], robot.book.position(s).stop_price) for s in config.symbols}
            await exchange.close()

        asyncio.run(go())
        faults = [e.detail for e in store.events(kinds=["fault"])]
        store.close()
    assert seen["trail_bars"] == {"BTCUSDT": seen["bar"], "ETHUSDT": seen["bar"]}  # both ratcheted with the bar
    before, after = seen["stops"]["ETHUSDT"]
    assert after > before  # ETHUSDT's resting stop moved up with the rising bar
    assert seen["decided_at"] == seen["bar"]  # the strategy still decided on the bar
    assert any("bar close price of BTCUSDT" in f for f in faults), faults
