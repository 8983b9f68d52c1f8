"""Parity of exits: the robot on exchange-sim closes positions where and why the backtest does (linear).

The set-up of ``test_robot_parity`` (bundled Binance 1h candles replayed bar by bar through
exchange-sim, no spread, 2 bps slippage, ``sma_cross`` signals computed by the robot from the
candles the venue serves), on the linear market, where the strategy goes long and short, with
the exits the risk settings ask for:

* ``stop_loss`` + ``take_profit``: a stop-loss and a target rest at the venue;
* ``stop_loss`` + ``trailing_stop``: the resting stop follows the best price bar by bar (the
  trailing distance is wider than the stop-loss, so a position first exits as ``stop_loss`` and,
  once the price moved its way, as ``trailing_stop``).

Same trades expected: symbol, side, entry bar, exit bar and exit reason; prices within a few
ticks. A resting exit fills at the venue at the end of the step it traded in (the robot's clock
moves an hour a step): inside the bar before, or at the open when the bar gapped through it, so
its exit time is the backtest's exit bar or the one after.
"""

from __future__ import annotations

import asyncio

import pytest
from robot_harness import connect, new_account, robot_config, sim_server

from autotrader.adapters.state import open_state_store
from autotrader.backtest.runner import BacktestConfig, run_backtest
from autotrader.domain.candles import Candles, SeriesKey
from autotrader.live.clock import FunctionClock
from autotrader.live.robot import Robot
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.marketdata.store import align
from autotrader.strategy.base import get_strategy

HOUR = 3_600_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START = 1_709_251_200_000  # 2024-03-01 00:00 UTC: first bar the robot decides on
WARMUP = 300
BARS = 500
PARAMS = {"fast": 10, "slow": 40, "short": True}
RESTING = ("stop_loss", "take_profit", "trailing_stop")
EXITS = {
    "stop_and_target": ({"stop_loss": 0.015, "take_profit": 0.02}, {"stop_loss", "take_profit"}),
    "stop_and_trailing": ({"stop_loss": 0.01, "trailing_stop": 0.015}, {"stop_loss", "trailing_stop"}),
}


def bundled(symbol: str) -> Candles:
    candles = read_parquet_candles(bundled_files()[SeriesKey.of("binance", symbol, "1h")])
    return candles.slice_range(START - WARMUP * HOUR, START + BARS * HOUR)  # one bar past the robot's last


def _backtest(candles: dict[str, Candles], overrides: dict):
    bt_config = BacktestConfig(
        symbols=SYMBOLS,
        timeframe="1h",
        initial_capital=10_000.0,
        strategy="sma_cross",
        params=PARAMS,
        risk_level="medium",
        risk_overrides=overrides,
        market="linear",
        slippage_bps=2.0,
        offline_windows=((START - WARMUP * HOUR, START - HOUR),),
    )
    return run_backtest(bt_config, align(candles), get_strategy("sma_cross", **PARAMS))


def _robot_trades(tmp_path, candles: dict[str, Candles], overrides: dict):
    config = robot_config(
        symbols=SYMBOLS,
        timeframe="1h",
        market="linear",
        risk_level="medium",
        risk_overrides=overrides,
        strategy="sma_cross",
        strategy_params=PARAMS,
        lookback_bars=WARMUP,
    )
    with sim_server(candles, timeframe="1h", warmup_bars=WARMUP, spread_bps=0.0, slippage_bps=2.0) as sim:
        assert sim.admin.market_time_ms() == START
        account = new_account(sim, "10000")
        store = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
        exchange = connect(sim, account)
        robot = Robot(
            config, exchange, store, FunctionClock(sim.state.clock.now_ms), strategy=get_strategy("sma_cross", **PARAMS)
        )

        async def go() -> None:
            await robot.start()
            for _ in range(BARS):
                sim.admin.advance(HOUR)
                await robot.step()
            await exchange.close()

        asyncio.run(go())
    live = store.load_trades()
    open_positions = {s: p for s, p in store.load_positions().items() if p.qty != 0}
    store.close()
    steps = {s: (float(robot.instruments[s].tick_size), float(robot.instruments[s].lot_step)) for s in SYMBOLS}
    return live, open_positions, steps


@pytest.mark.slow
@pytest.mark.parametrize("exits", sorted(EXITS))
def test_robot_exits_match_the_backtest_long_and_short_on_linear(tmp_path, exits) -> None:
    overrides, expected_reasons = EXITS[exits]
    candles = {s: bundled(s) for s in SYMBOLS}
    assert all(len(c) == WARMUP + BARS + 1 for c in candles.values())  # no gaps in this stretch
    live, open_positions, steps = _robot_trades(tmp_path, candles, overrides)

    result = _backtest(candles, overrides)
    bt = [t for t in result.trades if t["exit_reason"] != "end_of_data"]
    still_open = {str(t["symbol"]) for t in result.trades if t["exit_reason"] == "end_of_data"}
    # the stretch exercises every exit asked for, on both sides
    for reason in expected_reasons:
        assert {int(b["side"]) for b in bt if b["exit_reason"] == reason} == {1, -1}, reason

    assert len(live) == len(bt)
    assert set(open_positions) == still_open
    for b, t in zip(
        sorted(bt, key=lambda x: (x["entry_ts"], x["symbol"])),
        sorted(live, key=lambda x: (x.entry_ms, x.symbol)),
        strict=True,
    ):
        bt_exit = int(b["exit_ts"])
        live_exit = t.exit_ms - HOUR if t.exit_reason in RESTING and t.exit_ms - HOUR == bt_exit else t.exit_ms
        assert (t.symbol, t.side, t.entry_ms, live_exit, t.exit_reason) == (
            str(b["symbol"]),
            int(b["side"]),
            int(b["entry_ts"]),
            bt_exit,
            str(b["exit_reason"]),
        )
        tick, lot = steps[t.symbol]
        assert abs(float(t.entry_price) - b["entry_price"]) <= 2 * tick + 1e-9
        # a stop's or target's level derives from the entry (two ticks apart), rounded on each side
        assert abs(float(t.exit_price) - b["exit_price"]) <= 3 * tick + 1e-9
        # equity differs by crumbs (ticks, fees), so a quantity at a lot boundary can differ by one lot
        assert abs(float(t.qty) - b["qty"]) <= lot + 1e-12
        # P&L scales with the quantity; beyond that, the price differences and rounding crumbs
        scaled = b["pnl"] * float(t.qty) / b["qty"]
        assert abs(float(t.pnl) - scaled) <= 5 * tick * float(t.qty) + 0.002 * abs(scaled)
