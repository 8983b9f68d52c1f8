"""Backtesting: the runner, data loading for a run, and the compiled kernel (``fast/``)."""
