"""Shared pieces of the parity tests: the backtest and the robot on the same hourly candles, and how
their trades are compared.

The robot runs in demo mode against exchange-sim, which replays the candles bar by bar (no spread,
the backtest's 2 bps slippage); the robot's clock moves an hour a step. The backtest runs on the
same candles with the same costs, offline (no decisions) before the robot's first bar, ``START``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_harness import connect, new_account, robot_config, sim_server

from autotrader.adapters.state import open_state_store
from autotrader.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from autotrader.domain.aligned import align
from autotrader.domain.candles import Candles, SeriesKey
from autotrader.domain.instrument import Instrument
from autotrader.live.clock import FunctionClock
from autotrader.live.records import ClosedTrade, Decision, PositionState, RobotEvent
from autotrader.live.robot import Robot, RobotConfig
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.strategy.base import Strategy, get_strategy

HOUR = 3_600_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START = 1_709_251_200_000  # 2024-03-01 00:00 UTC: the first bar the robot decides on


def bundled_hourly(symbol: str, warmup: int, bars: int) -> Candles:
    """Bundled Binance 1h candles from ``warmup`` bars before START to one bar past the robot's last."""
    candles = read_parquet_candles(bundled_files()[SeriesKey.of("binance", symbol, "1h")])
    return candles.slice_range(START - warmup * HOUR, START + bars * HOUR)


def bundled_stretch(warmup: int, bars: int) -> dict[str, Candles]:
    """``bundled_hourly`` of every symbol in SYMBOLS; the stretch has no missing bar."""
    candles = {s: bundled_hourly(s, warmup, bars) for s in SYMBOLS}
    assert all(len(c) == warmup + bars + 1 for c in candles.values())  # no gaps in this stretch
    return candles


def backtest_hourly(candles: dict[str, Candles], strategy: Strategy, warmup: int, /, **config: Any) -> BacktestResult:
    """The backtest on ``candles`` with the robot's costs, making no decision before START.

    ``config``: the rest of the ``BacktestConfig`` (the strategy's name and parameters, risk, market).
    """
    bt_config = BacktestConfig(
        symbols=SYMBOLS,
        timeframe="1h",
        initial_capital=10_000.0,
        slippage_bps=2.0,
        offline_windows=((START - warmup * HOUR, START - HOUR),),
        **config,
    )
    return run_backtest(bt_config, align(candles), strategy)


@dataclass(frozen=True)
class RobotRun:
    """What the robot's store holds after the run, and the instruments it traded."""

    trades: list[ClosedTrade]
    positions: dict[str, PositionState]
    decisions: list[Decision]
    events: list[RobotEvent]
    instruments: dict[str, Instrument]


def run_robot_hourly(
    tmp_path: Path, candles: dict[str, Candles], config: RobotConfig, strategy: Strategy, warmup: int, bars: int
) -> RobotRun:
    """The robot on exchange-sim replaying ``candles`` from START, one step per hourly bar close, ``bars`` steps."""
    with sim_server(candles, timeframe="1h", warmup_bars=warmup, spread_bps=0.0, slippage_bps=2.0) as sim:
        assert sim.admin.market_time_ms() == START
        account = new_account(sim, "10000")
        store = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
        exchange = connect(sim, account)
        robot = Robot(config, exchange, store, FunctionClock(sim.state.clock.now_ms), strategy=strategy)

        async def go() -> None:
            await robot.start()
            for _ in range(bars):
                sim.admin.advance(HOUR)
                await robot.step()
            await exchange.close()

        asyncio.run(go())
    try:
        return RobotRun(
            store.load_trades(), store.load_positions(), store.decisions(), store.events(), robot.instruments
        )
    finally:
        store.close()


def sma_backtest(candles: dict[str, Candles], params: dict[str, Any], warmup: int, /, **risk: Any) -> BacktestResult:
    """``backtest_hourly`` with ``sma_cross(**params)``; ``risk``: risk_level, risk_overrides, market."""
    strategy = get_strategy("sma_cross", **params)
    return backtest_hourly(candles, strategy, warmup, strategy="sma_cross", params=params, **risk)


def sma_robot(
    tmp_path: Path, candles: dict[str, Candles], params: dict[str, Any], warmup: int, bars: int, /, **risk: Any
) -> RobotRun:
    """``run_robot_hourly`` of a robot on SYMBOLS computing ``sma_cross(**params)`` signals from ``warmup`` bars.

    ``risk``: the rest of its ``robot_config`` (risk_level, risk_overrides, market).
    """
    config = robot_config(
        symbols=SYMBOLS, timeframe="1h", strategy="sma_cross", strategy_params=params, lookback_bars=warmup, **risk
    )
    return run_robot_hourly(tmp_path, candles, config, get_strategy("sma_cross", **params), warmup, bars)


def closed_and_open(result: BacktestResult) -> tuple[list[dict[str, Any]], set[str]]:
    """The backtest's closed trades, and the symbols it still holds when the data ends."""
    closed = [t for t in result.trades if t["exit_reason"] != "end_of_data"]
    still_open = {str(t["symbol"]) for t in result.trades if t["exit_reason"] == "end_of_data"}
    return closed, still_open


def paired(bt: Sequence[dict[str, Any]], live: Sequence[ClosedTrade]) -> Iterator[tuple[dict[str, Any], ClosedTrade]]:
    """The backtest's and the robot's trades side by side, in entry order; their counts must agree."""
    return zip(
        sorted(bt, key=lambda x: (x["entry_ts"], x["symbol"])),
        sorted(live, key=lambda x: (x.entry_ms, x.symbol)),
        strict=True,
    )


def assert_same_trade(b: dict[str, Any], t: ClosedTrade, live_exit_ms: int, tick: float) -> None:
    """The same symbol, side, entry bar, exit bar and exit reason; prices within a few ticks.

    ``live_exit_ms`` is the robot's exit time mapped to the backtest's bar (a resting exit fills at
    the venue at the end of the step it traded in). Entry prices agree within two ticks (the venue
    rounds each fill to the tick and, with no spread, buys one tick above the last price); exit
    prices within three (a stop's or target's level derives from the entry, rounded on each side).
    """
    assert (t.symbol, t.side, t.entry_ms, live_exit_ms, t.exit_reason) == (
        str(b["symbol"]),
        int(b["side"]),
        int(b["entry_ts"]),
        int(b["exit_ts"]),
        str(b["exit_reason"]),
    )
    assert abs(float(t.entry_price) - b["entry_price"]) <= 2 * tick + 1e-9
    assert abs(float(t.exit_price) - b["exit_price"]) <= 3 * tick + 1e-9
