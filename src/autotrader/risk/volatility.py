"""The volatility estimate that volatility sizing uses, for a whole data set (backtest and robot alike)."""

from __future__ import annotations

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.timeframe import Timeframe
from autotrader.risk.rules import daily_volatility


def daily_volatility_of(data: AlignedCandles, timeframe: str) -> np.ndarray:
    """Expected daily volatility per bar and symbol for the volatility target (``rules.daily_volatility``)."""
    return daily_volatility(data.close, Timeframe.parse(timeframe).ms)
