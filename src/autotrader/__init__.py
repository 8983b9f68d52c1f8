"""AutoTrader: honest, fast crypto backtesting and automated trading."""

__version__ = "0.1.0"
