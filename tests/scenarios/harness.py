"""Candle-table scenarios: a few hand-written bars and signals in, trades and events out."""

from __future__ import annotations

from typing import Any

import numpy as np

from autotrader.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles
from autotrader.domain.instrument import Instrument
from autotrader.strategy.base import Signals, Strategy

HOUR_MS = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


class ScriptedStrategy(Strategy):
    """Emits the signals it is given: ``{(bar, symbol_index): direction}``."""

    name = "scripted_test_strategy"

    def __init__(self, script: dict[tuple[int, int], float], confidence: float = 1.0) -> None:
        super().__init__()
        self.script = script
        self.conf = confidence

    def generate(self, data: AlignedCandles) -> Signals:
        d = np.full(data.close.shape, np.nan)
        for (bar, j), v in self.script.items():
            d[bar, j] = v
        c = np.where(np.isnan(d), np.nan, self.conf)
        return Signals(direction=d, confidence=c)


def candles_from_rows(rows: list[tuple[float, float, float, float]], start_ms: int = T0) -> Candles:
    """Rows of (open, high, low, close), one bar per hour."""
    arr = np.array(rows, dtype=float)
    ts = start_ms + HOUR_MS * np.arange(len(rows), dtype=np.int64)
    return Candles(ts, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], np.full(len(rows), 1000.0))


def loose_rules(symbol: str, market: str = "spot", min_notional: float = 0.0) -> Instrument:
    return Instrument.trading(symbol, market, tick_size=0.0, lot_step=0.0, min_qty=0.0, min_notional=min_notional)  # type: ignore[arg-type]


def run_scenario(
    tables: dict[str, list[tuple[float, float, float, float]]],
    script: dict[tuple[int, int], float],
    *,
    rules: dict[str, Instrument] | None = None,
    confidence: float = 1.0,
    **config: Any,
) -> BacktestResult:
    """Run the real engine on candle tables with sensible test defaults (no fees/slippage unless given)."""
    data = align({sym: candles_from_rows(rows) for sym, rows in tables.items()})
    overrides = {"correlation": 1.0, "daily_loss": 1.0, "max_drawdown": 1.0, "stop_loss": None, "position_size": 1.0}
    overrides.update(config.pop("risk_overrides", {}))
    cfg = BacktestConfig(
        symbols=tuple(tables),
        strategy=ScriptedStrategy.name,
        fee=config.pop("fee", 0.0),
        slippage_bps=config.pop("slippage_bps", 0.0),
        risk_overrides=overrides,
        initial_capital=config.pop("initial_capital", 10_000.0),
        **config,
    )
    rules = rules or {sym: loose_rules(sym, cfg.market) for sym in tables}
    return run_backtest(cfg, data, ScriptedStrategy(script, confidence), instruments=rules)
