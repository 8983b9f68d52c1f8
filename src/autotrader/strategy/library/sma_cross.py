"""Moving-average crossover: long when the fast SMA crosses above the slow one."""

from __future__ import annotations

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.errors import ConfigError
from autotrader.strategy.base import Param, Signals, Strategy
from autotrader.strategy.indicators import sma_cross_direction_nb


class SmaCross(Strategy):
    """Fast/slow simple-moving-average crossover on the close.

    ``+1`` on the bar where the fast SMA crosses above the slow one, ``0`` (or ``-1`` with
    ``short=True``) on the bar where it crosses below; NaN on every other bar.

    A cross is exactly ``backtesting.lib.crossover``: ``fast[t-1] < slow[t-1] and fast[t] > slow[t]``,
    both inequalities strict (a bar where the two are equal is neither above nor below, so a path
    equal → above is not a cross). Bars before the slow SMA exists never cross. ``t-1`` is the
    symbol's previous real bar (gaps are skipped).
    """

    name = "sma_cross"
    description = "fast/slow SMA crossover on the close"
    parameters = {
        "fast": Param(20, 1, 10_000, "fast SMA length in bars"),
        "slow": Param(100, 2, 10_000, "slow SMA length in bars"),
        "short": Param(False, help="go short (-1) on a cross below instead of flat (0)"),
    }

    def validate(self) -> None:
        if self.params["fast"] >= self.params["slow"]:
            raise ConfigError(
                f"strategy 'sma_cross': fast={self.params['fast']} must be below slow={self.params['slow']}"
            )

    @property
    def warmup_bars(self) -> int:
        return int(self.params["slow"])

    def generate(self, data: AlignedCandles) -> Signals:
        down = -1.0 if self.params["short"] else 0.0
        close = np.ascontiguousarray(data.close, dtype=np.float64)
        direction = sma_cross_direction_nb(close, int(self.params["fast"]), int(self.params["slow"]), 1.0, down)
        return Signals.from_direction(direction)
