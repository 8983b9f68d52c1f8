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
* the venue rounds each fill to the tick and, with no spread, buys one tick above the last price.

So entry prices agree within two ticks and exit prices within three (a stop's level derives from the
entry), far inside the bar of one tick plus slippage (12 USDT on BTC). One bar of the stretch is edited so that its open
gaps through the first stop-loss the backtest takes: both sides must fill that stop at the open
(less slippage), not at the stop level.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from robot_harness import connect, new_account, robot_config, sim_server

from autotrader.adapters.state import open_state_store
from autotrader.backtest.runner import BacktestConfig, run_backtest
from autotrader.domain.aligned import align
from autotrader.domain.candles import Candles, SeriesKey
from autotrader.live.clock import FunctionClock
from autotrader.live.robot import Robot
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.strategy.base import get_strategy

HOUR = 3_600_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START = 1_709_251_200_000  # 2024-03-01 00:00 UTC: first bar the robot decides on
WARMUP = 300
BARS = 700
PARAMS = {"fast": 10, "slow": 40}
SLIP = 0.0002


def bundled(symbol: str) -> Candles:
    candles = read_parquet_candles(bundled_files()[SeriesKey.of("binance", symbol, "1h")])
    return candles.slice_range(START - WARMUP * HOUR, START + BARS * HOUR)  # one bar past the robot's last


def _backtest(candles: dict[str, Candles]):
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
    return run_backtest(bt_config, align(candles), get_strategy("sma_cross", **PARAMS))


def _gap_through_first_stop(candles: dict[str, Candles]) -> tuple[dict[str, Candles], str, int]:
    """The candles with the bar after the first stop-loss bar opening 1 % below that stop."""
    stop = next(t for t in _backtest(candles).trades if t["exit_reason"] == "stop_loss")
    symbol, c = str(stop["symbol"]), candles[str(stop["symbol"])]
    k = int(np.searchsorted(c.ts, int(stop["exit_ts"]))) + 1
    level = stop["exit_price"] / (1 - SLIP)
    o, lo = c.open.copy(), c.low.copy()
    o[k] = round(level * 0.99, 2)
    lo[k] = min(lo[k], o[k])
    h, cl = c.high.copy(), c.close.copy()
    lo[k - 1] = max(lo[k - 1], round(level * 1.001, 2))  # bar k-1 no longer reaches the stop
    cl[k - 1] = max(cl[k - 1], lo[k - 1])
    h[k - 1] = max(h[k - 1], cl[k - 1])
    gapped = {**candles, symbol: Candles(c.ts, o, h, lo, cl, c.volume)}
    return gapped, symbol, int(c.ts[k])


@pytest.mark.slow
def test_robot_parity_with_backtest_on_bundled_candles(tmp_path) -> None:
    candles = {s: bundled(s) for s in SYMBOLS}
    assert all(len(c) == WARMUP + BARS + 1 for c in candles.values())  # no gaps in this stretch
    candles, gap_symbol, gap_ts = _gap_through_first_stop(candles)
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
    ticks = {s: float(robot.instruments[s].tick_size) for s in SYMBOLS}

    result = _backtest(candles)
    bt = [t for t in result.trades if t["exit_reason"] != "end_of_data"]
    still_open = {str(t["symbol"]) for t in result.trades if t["exit_reason"] == "end_of_data"}

    assert len(bt) >= 10, "the stretch should trade"
    assert len(live) == len(bt)
    assert set(open_positions) == still_open
    [gapped] = [b for b in bt if str(b["symbol"]) == gap_symbol and int(b["exit_ts"]) == gap_ts]
    assert gapped["exit_reason"] == "stop_loss"
    report = []
    for b, t in zip(
        sorted(bt, key=lambda x: (x["entry_ts"], x["symbol"])),
        sorted(live, key=lambda x: (x.entry_ms, x.symbol)),
        strict=True,
    ):
        # the venue fills a stop at the end of the step it traded in: inside the bar before, or at a gap's open
        live_exit = t.exit_ms - HOUR if t.exit_reason == "stop_loss" and t.exit_ms != gap_ts else t.exit_ms
        assert (t.symbol, t.side, t.entry_ms, live_exit, t.exit_reason) == (
            str(b["symbol"]),
            int(b["side"]),
            int(b["entry_ts"]),
            int(b["exit_ts"]),
            str(b["exit_reason"]),
        )
        tick = ticks[t.symbol]
        entry_diff = float(t.entry_price) - b["entry_price"]
        exit_diff = float(t.exit_price) - b["exit_price"]
        qty_diff = float(t.qty) / b["qty"] - 1
        assert abs(entry_diff) <= 2 * tick + 1e-9  # rounding at the venue, plus the one-tick ask
        # exits likewise; a stop's level is the entry (up to two ticks apart) × 0.98, rounded on each side
        assert abs(exit_diff) <= 3 * tick + 1e-9
        assert -2e-3 < qty_diff < 1e-3  # the spot fee is paid in the coin bought; a lot step
        # P&L: the price differences on the quantity, the fee taken in the coin (0.1 % of the
        # position) and a lot step of quantity (≤ 0.2 %) on the trade's P&L
        pnl_tol = 4 * tick * b["qty"] + 0.001 * b["qty"] * b["exit_price"] + 0.002 * abs(b["pnl"])
        assert abs(float(t.pnl) - b["pnl"]) <= pnl_tol
        report.append((t.symbol, t.exit_reason, entry_diff / tick, exit_diff / tick, qty_diff, float(t.pnl) - b["pnl"]))
    live_pnl = sum(float(t.pnl) for t in live)
    bt_pnl = sum(float(b["pnl"]) for b in bt)
    print(
        f"parity: {len(live)} trades, live P&L {live_pnl:+.4f} vs backtest {bt_pnl:+.4f} "
        f"(difference {live_pnl - bt_pnl:+.4f}); worst |entry diff| {max(abs(r[2]) for r in report):.2f} ticks, "
        f"worst |exit diff| {max(abs(r[3]) for r in report):.2f} ticks, worst qty diff {min(r[4] for r in report):+.2e}"
    )
    assert abs(live_pnl - bt_pnl) < 0.25
