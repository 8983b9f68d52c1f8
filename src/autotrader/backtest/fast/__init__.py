"""Compiled (numba) kernels of the backtest; functions end in ``_nb``."""
