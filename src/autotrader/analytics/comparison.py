"""What a backtest of the robot's strategy over the same window says, set against the live results.

``validation.live_comparison`` computes it; ``live.status.live_results`` compares it with the live
trades; ``cli.status`` renders it. Plain data, so the robot's side never imports the backtest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BacktestComparison", "BacktestTrade"]


@dataclass(frozen=True)
class BacktestTrade:
    """One trade of the comparison backtest (from ``BacktestResult.trades``)."""

    signal_id: str
    symbol: str
    side: int
    qty: float
    entry_price: float
    exit_price: float
    fees: float
    pnl: float


@dataclass(frozen=True)
class BacktestComparison:
    """What the backtest of the same strategy says about the same period."""

    strategy: str
    accuracy: float | None
    evaluated: int
    trades: Sequence[BacktestTrade]
    fee_rate: float
    slippage_bps: float
    note: str = ""  # why there is no comparison at all
    accuracy_note: str = ""  # why the backtest has no accuracy
