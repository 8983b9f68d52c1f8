"""Strategies: one small interface, vectorised signal generation, shared by backtest, paper and live."""
