"""Performance analytics: pure numpy metrics of a backtest or live equity curve and its trades.

``autotrader.analytics.metrics`` holds the definitions (read its module docstring for the
conventions: daily returns, rf = 0, 365-day year, ddof = 1). Nothing here imports pandas, a
network, database or broker library.
"""
