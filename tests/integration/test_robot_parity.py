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

import numpy as np
import pytest
from parity_harness import HOUR, assert_same_trade, bundled_stretch, closed_and_open, paired, sma_backtest, sma_robot

from autotrader.domain.candles import Candles

WARMUP = 300
BARS = 700
PARAMS = {"fast": 10, "slow": 40}
RISK = {"risk_level": "medium", "market": "spot"}
SLIP = 0.0002


def _gap_through_first_stop(candles: dict[str, Candles]) -> tuple[dict[str, Candles], str, int]:
    """The candles with the bar after the first stop-loss bar opening 1 % below that stop."""
    stop = next(t for t in sma_backtest(candles, PARAMS, WARMUP, **RISK).trades if t["exit_reason"] == "stop_loss")
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
    candles, gap_symbol, gap_ts = _gap_through_first_stop(bundled_stretch(WARMUP, BARS))
    run = sma_robot(tmp_path, candles, PARAMS, WARMUP, BARS, **RISK)
    live = run.trades
    open_positions = {s for s, p in run.positions.items() if p.entry_qty > 0}

    bt, still_open = closed_and_open(sma_backtest(candles, PARAMS, WARMUP, **RISK))

    assert len(bt) >= 10, "the stretch should trade"
    assert len(live) == len(bt)
    assert open_positions == still_open
    [gapped] = [b for b in bt if str(b["symbol"]) == gap_symbol and int(b["exit_ts"]) == gap_ts]
    assert gapped["exit_reason"] == "stop_loss"
    report = []
    for b, t in paired(bt, live):
        # the venue fills a stop at the end of the step it traded in: inside the bar before, or at a gap's open
        live_exit = t.exit_ms - HOUR if t.exit_reason == "stop_loss" and t.exit_ms != gap_ts else t.exit_ms
        tick = float(run.instruments[t.symbol].tick_size)
        # entry: rounding at the venue, plus the one-tick ask; exit: a stop's level is the entry × 0.98
        assert_same_trade(b, t, live_exit, tick)
        entry_diff = float(t.entry_price) - b["entry_price"]
        exit_diff = float(t.exit_price) - b["exit_price"]
        qty_diff = float(t.qty) / b["qty"] - 1
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
