"""Donchian channel breakout (the Turtle rule): long on a new `entry`-bar high, flat on a new `exit`-bar low."""

from __future__ import annotations

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.strategy.base import Param, Signals, Strategy
from autotrader.strategy.indicators import rolling_max_nb, rolling_min_nb


class DonchianBreakout(Strategy):
    """``+1`` on every bar whose close is above the highest high of the previous ``entry`` bars,
    ``0`` on every bar whose close is below the lowest low of the previous ``exit`` bars; NaN
    otherwise. The channels exclude the current bar. The two conditions can never hold on the same
    bar (the previous bar's high is at least its low). A signal repeats while its condition holds;
    ``+1`` while already long changes nothing.
    """

    name = "donchian_breakout"
    description = "long above the previous `entry`-bar high, flat below the previous `exit`-bar low"
    parameters = {
        "entry": Param(20, 1, 10_000, "bars of the breakout (entry) channel"),
        "exit": Param(10, 1, 10_000, "bars of the exit channel"),
    }

    @property
    def warmup_bars(self) -> int:
        return max(int(self.params["entry"]), int(self.params["exit"])) + 1

    def generate(self, data: AlignedCandles) -> Signals:
        upper = rolling_max_nb(data.high, int(self.params["entry"]), True)
        lower = rolling_min_nb(data.low, int(self.params["exit"]), True)
        direction = np.full(data.close.shape, np.nan)
        direction[data.close > upper] = 1.0  # NaN compares false: no signal before the channel exists
        direction[data.close < lower] = 0.0
        return Signals.from_direction(direction)
