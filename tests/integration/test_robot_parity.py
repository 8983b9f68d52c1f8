"""Parity: the robot in demo mode on exchange-sim makes the backtest's trades on the same bundled candles.

Bundled Binance 1h candles are replayed bar by bar through exchange-sim (no spread, the backtest's
2 bps slippage); the robot computes ``sma_cross`` signals from the candles the venue serves and
trades through the venue. The backtest runs on the same candles, offline (no decisions) before
the robot's first bar. Same trades expected: symbol, side, entry and exit bar, exit reason; prices
and quantities within small tolerances. What remains different, by construction:

* fill prices are rounded to the tick at the venue (the backtest's are not);
* spot fees: the venue takes the buy fee in the coin bought, so the robot holds and sells
  ``qty × (1 - fee)`` where the backtest sells ``qty`` (P&L differs by a fraction of the fee);
  equity at the next decision differs by the same crumbs, so a later quantity can differ by a lot step;
* a stop that gaps fills at the open in the backtest and at the stop level (less slippage) at the venue.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from robot_harness import connect, new_account, robot_config, sim_server

from autotrader.adapters.state import open_state_store
from autotrader.backtest.runner import BacktestConfig, run_backtest
from autotrader.domain.candles import Candles, SeriesKey
from autotrader.live.clock import FunctionClock
from autotrader.live.engine import Robot
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.marketdata.store import align
from autotrader.strategy.base import get_strategy

HOUR = 3_600_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START = 1_709_251_200_000  # 2024-03-01 00:00 UTC: first bar the robot decides on
WARMUP = 300
BARS = 700
PARAMS = {"fast": 10, "slow": 40}


def bundled(symbol: str) -> Candles:
    candles = read_parquet_candles(bundled_files()[SeriesKey.of("binance", symbol, "1h")])
    return candles.slice_range(START - WARMUP * HOUR, START + BARS * HOUR)  # one bar past the robot's last


@pytest.mark.slow
def test_robot_parity_with_backtest_on_bundled_candles(tmp_path) -> None:
    candles = {s: bundled(s) for s in SYMBOLS}
    assert all(len(c) == WARMUP + BARS + 1 for c in candles.values())  # no gaps in this stretch
    config = robot_config(
        symbols=SYMBOLS,
        timeframe="1h",
        risk_level="medium",
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
    open_positions = {s: p for s, p in store.load_positions().items() if p.entry_qty > 0}
    store.close()

    bt_config = BacktestConfig(
        symbols=SYMBOLS,
        timeframe="1h",
        initial_capital=10_000.0,
        strategy="sma_cross",
        params=PARAMS,
        risk_level="medium",
        market="spot",
        slippage_bps=2.0,
        offline_windows=((START - WARMUP * HOUR, START - HOUR),),
    )
    data = align(candles)
    result = run_backtest(bt_config, data, get_strategy("sma_cross", **PARAMS))
    bt = [t for t in result.trades if t["exit_reason"] != "end_of_data"]
    still_open = {str(t["symbol"]) for t in result.trades if t["exit_reason"] == "end_of_data"}

    assert len(bt) >= 10, "the stretch should trade"
    assert len(live) == len(bt)
    assert set(open_positions) == still_open
    report = []
    for b, t in zip(
        sorted(bt, key=lambda x: (x["entry_ts"], x["symbol"])),
        sorted(live, key=lambda x: (x.entry_ms, x.symbol)),
        strict=True,
    ):
        live_exit_bar = t.exit_ms - HOUR if t.exit_reason == "stop_loss" else t.exit_ms  # stops fill inside the bar
        assert (t.symbol, t.side, t.entry_ms, live_exit_bar, t.exit_reason) == (
            str(b["symbol"]),
            int(b["side"]),
            int(b["entry_ts"]),
            int(b["exit_ts"]),
            str(b["exit_reason"]),
        )
        entry_diff = float(t.entry_price) / b["entry_price"] - 1
        exit_diff = float(t.exit_price) / b["exit_price"] - 1
        qty_diff = float(t.qty) / b["qty"] - 1
        assert abs(entry_diff) < 1e-5  # the tick
        assert abs(exit_diff) < 2e-3  # the tick; a gapped stop fills at its level, not the open
        assert -2e-3 < qty_diff < 1e-3  # the spot fee is paid in the coin bought; a lot step
        assert abs(float(t.pnl) - b["pnl"]) < 0.5 + 0.002 * abs(b["pnl"])
        report.append((t.symbol, t.exit_reason, entry_diff, exit_diff, qty_diff, float(t.pnl) - b["pnl"]))
    live_pnl = sum(float(t.pnl) for t in live)
    bt_pnl = sum(float(b["pnl"]) for b in bt)
    print(
        f"parity: {len(live)} trades, live P&L {live_pnl:+.4f} vs backtest {bt_pnl:+.4f} "
        f"(difference {live_pnl - bt_pnl:+.4f}); worst |price diff| "
        f"{max(abs(r[3]) for r in report):.2e}, worst qty diff {min(r[4] for r in report):+.2e}"
    )
    assert Decimal(repr(abs(live_pnl - bt_pnl))) < Decimal(2)
