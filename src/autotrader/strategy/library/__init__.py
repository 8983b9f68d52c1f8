"""The built-in strategies. Importing this package registers each of them by name."""

from autotrader.strategy.library import (
    buy_and_hold,
    donchian_breakout,
    ml,
    rsi_reversion,
    signals,
    sma_cross,
)

__all__ = ["buy_and_hold", "donchian_breakout", "ml", "rsi_reversion", "signals", "sma_cross"]
