"""RSI mean reversion: buy when RSI recovers from oversold, exit when it becomes overbought."""

from __future__ import annotations

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.errors import ConfigError
from autotrader.strategy.base import Param, Signals, Strategy
from autotrader.strategy.indicators import crossed_above_nb, rsi_nb


class RsiReversion(Strategy):
    """Wilder's RSI(``period``) on the close.

    ``+1`` on the bar where RSI crosses up through ``lower`` (``rsi[t-1] < lower < rsi[t]``), ``0``
    on the bar where it crosses up through ``upper`` (``rsi[t-1] < upper < rsi[t]``); NaN otherwise.
    Crosses use the strict ``backtesting.lib.crossover`` rule, like ``sma_cross``.
    """

    name = "rsi_reversion"
    description = "long when RSI crosses up through `lower`, flat when it crosses up through `upper`"
    parameters = {
        "period": Param(14, 2, 1_000, "RSI length in bars (Wilder smoothing)"),
        "lower": Param(30.0, 0.0, 100.0, "oversold level: a cross up through it enters"),
        "upper": Param(70.0, 0.0, 100.0, "overbought level: a cross up through it exits"),
    }

    def validate(self) -> None:
        if self.params["lower"] >= self.params["upper"]:
            raise ConfigError(
                f"strategy 'rsi_reversion': lower={self.params['lower']} must be below upper={self.params['upper']}"
            )

    @property
    def warmup_bars(self) -> int:
        return int(self.params["period"]) + 1

    def generate(self, data: AlignedCandles) -> Signals:
        rsi = rsi_nb(data.close, int(self.params["period"]))
        level = np.where(np.isnan(rsi), np.nan, 1.0)
        direction = np.full(data.close.shape, np.nan)
        direction[crossed_above_nb(rsi, level * float(self.params["lower"]))] = 1.0
        direction[crossed_above_nb(rsi, level * float(self.params["upper"]))] = 0.0
        return Signals.from_direction(direction)
