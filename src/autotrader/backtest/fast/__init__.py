"""Compiled (numba) kernels of the backtest; functions end in ``_nb``."""

from autotrader.jit import start_numba

start_numba()  # before the kernels are defined: numba's start-up with the garbage collector paused
