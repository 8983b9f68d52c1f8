"""Buy and hold: the benchmark every other strategy must beat."""

from __future__ import annotations

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.strategy.base import Signals, Strategy


class BuyAndHold(Strategy):
    """``+1`` on each symbol's first present bar (filled at the next bar's open), nothing after."""

    name = "buy_and_hold"
    description = "long from each symbol's first bar to the end"
    parameters = {}

    def generate(self, data: AlignedCandles) -> Signals:
        direction = np.full(data.close.shape, np.nan)
        present = data.present & ~np.isnan(data.close)
        has_any = present.any(axis=0)
        first = present.argmax(axis=0)
        cols = np.flatnonzero(has_any)
        direction[first[cols], cols] = 1.0
        return Signals.from_direction(direction)
