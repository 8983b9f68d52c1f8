"""Benchmarks: each module measures AutoTrader against its goals and prints the figures (``python -m bench``)."""
