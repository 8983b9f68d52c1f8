"""Risk engine: limits, sizing and entry checks shared by backtest, paper and live trading."""
