"""Lookahead check: a signal must not change when the data after it is removed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.candles import format_ms
from autotrader.domain.errors import StrategyError
from autotrader.strategy.base import Strategy


def truncate(data: AlignedCandles, bars: int) -> AlignedCandles:
    """The first ``bars`` bars of ``data``."""
    return AlignedCandles(
        data.symbols,
        data.ts[:bars],
        data.open[:bars],
        data.high[:bars],
        data.low[:bars],
        data.close[:bars],
        data.volume[:bars],
        data.present[:bars],
    )


@dataclass(frozen=True)
class LookaheadReport:
    """Which cut points were checked and how many signals were compared."""

    cuts: tuple[int, ...]
    compared_signals: int

    def __str__(self) -> str:
        return f"passed: {self.compared_signals:,} signals unchanged at {len(self.cuts)} truncation points"


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def check_lookahead(strategy: Strategy, data: AlignedCandles, n_cuts: int = 4) -> LookaheadReport:
    """Re-run ``strategy`` on data truncated at ``n_cuts`` points; raise ``StrategyError`` on any change."""
    full = strategy.generate(data)
    lo = min(max(strategy.warmup_bars + 2, data.n_bars // (n_cuts + 1)), data.n_bars - 1)
    cuts = tuple(sorted({int(c) for c in np.linspace(lo, data.n_bars - 1, n_cuts)}))
    compared = 0
    for cut in cuts:
        part = strategy.generate(truncate(data, cut))
        ok = _same(full.direction[:cut], part.direction) & _same(full.confidence[:cut], part.confidence)
        if not ok.all():
            bar, sym = np.argwhere(~ok)[0]
            raise StrategyError(
                f"lookahead detected in strategy {strategy.name!r}: the {data.symbols[sym]} signal at "
                f"{format_ms(int(data.ts[bar]))} changes ({full.direction[bar, sym]} -> {part.direction[bar, sym]}) "
                f"when data after {format_ms(int(data.ts[cut - 1]))} is removed"
            )
        compared += int(np.count_nonzero(~np.isnan(part.direction)))
    return LookaheadReport(cuts, compared)
