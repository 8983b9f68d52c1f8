"""Mark-to-market at a bar's close: equity, the risk state's transitions, the equity snapshot and the risk usage.

The risk state moves exactly as the backtest kernel's does at a bar's close (``RiskState.mark``,
the shared ``risk.policy`` functions); this module records what it saw: a ``RobotEvent`` per
transition, the risk snapshot, an ``EquitySnapshot``, the ``risk_usage`` meta row and the gauges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.live.metrics import RobotMetrics
from autotrader.live.portfolio import Book
from autotrader.live.ports import Clock, StateStore
from autotrader.live.records import EquitySnapshot, RobotEvent
from autotrader.live.risk_state import KillSwitch, RiskState, RiskTransition
from autotrader.risk.limits import RiskLimits
from autotrader.risk.rules import correlation_exposure_nb

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Marking:
    """Marks a book's equity into a risk state and records it (store rows and metrics)."""

    limits: RiskLimits
    symbols: tuple[str, ...]
    store: StateStore
    clock: Clock
    metrics: RobotMetrics
    kill_switch: KillSwitch

    def mark(
        self,
        book: Book,
        risk: RiskState,
        history: AlignedCandles | None,
        prices: dict[str, float],
        as_of_ms: int,
    ) -> list[RiskTransition]:
        """Mark ``book`` at ``prices`` into ``risk`` as of ``as_of_ms``; record and return the transitions."""
        equity = book.equity(prices)
        transitions = risk.mark(equity, as_of_ms)
        for tr in transitions:
            log.warning("risk: %s: %s", tr.kind, tr.detail)
            self.store.record_event(RobotEvent(self.clock.now_ms(), tr.kind, tr.detail))
        self.store.save_risk(risk.snapshot(self.kill_switch.engaged))
        gross = book.gross_exposure(prices)
        self.store.snapshot_equity(
            EquitySnapshot(
                ts_ms=self.clock.now_ms(),
                equity=equity,
                cash=float(book.cash),
                exposure=gross / equity if equity > 0 else 0.0,
                peak_equity=risk.peak_equity,
                day_start_equity=risk.day_start_equity,
                state=risk.state,
            )
        )
        self.write_usage(book, history, prices, equity, gross)
        self.metrics.equity.set(equity)
        self.metrics.drawdown.set(risk.drawdown(equity))
        self.metrics.state.set(risk.state)
        self.metrics.positions.set(sum(1 for s in self.symbols if book.open_side(s, prices.get(s))))
        return transitions

    def write_usage(
        self, book: Book, history: AlignedCandles | None, prices: dict[str, float], equity: float, gross: float
    ) -> None:
        """The ``risk_usage`` meta row: how much of each limit the book uses at ``prices``."""
        biggest = max(
            (
                abs(float(p.qty)) * prices.get(s, float(p.avg_price))
                for s, p in book.positions.items()
                if book.open_side(s, prices.get(s))
            ),
            default=0.0,
        )
        corr = self.correlation_now(book, history, prices)
        self.store.set_meta(
            "risk_usage",
            {
                "ts_ms": self.clock.now_ms(),
                "equity": equity,
                "max_position_fraction": biggest / equity if equity > 0 else 0.0,
                "gross_exposure": gross / equity if equity > 0 else 0.0,
                "correlation": corr,
                "leverage": gross / equity if equity > 0 else 0.0,
                "prices": prices,
            },
        )

    def correlation_now(self, book: Book, history: AlignedCandles | None, prices: dict[str, float]) -> float:
        """The book's exposure-weighted correlation (``correlation_exposure_nb``); 0 below two positions."""
        data = history
        if data is None or data.n_bars < 2:
            return 0.0
        exposure = np.array([book.signed_exposure(s, prices.get(s, 0.0)) for s in data.symbols])
        if np.count_nonzero(exposure) < 2:
            return 0.0
        c = correlation_exposure_nb(
            np.ascontiguousarray(data.close), data.n_bars - 1, exposure, -1, 0.0, self.limits.correlation_window_bars
        )
        return float(c)
