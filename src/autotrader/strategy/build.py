"""Building a strategy for a run: the one way the backtest, the signal engine and the robot get one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autotrader.domain.fees import round_trip_cost
from autotrader.risk.limits import RiskLimits
from autotrader.risk.trading import TradingConfig
from autotrader.strategy.base import Strategy, get_strategy


def build_strategy(
    name: str,
    params: Mapping[str, Any],
    trading: TradingConfig,
    *,
    limits: RiskLimits | None = None,
    cache_dir: Path | None = None,
) -> Strategy:
    """The strategy ``name`` with ``params``, set up for ``trading``.

    A strategy with a ``threshold`` parameter gets the risk level's minimum confidence, and one
    with a ``cost`` parameter (the ML model learns net of costs) the round-trip fee and slippage,
    unless ``params`` sets them. ``limits``: ``trading.limits()`` when already computed.
    ``cache_dir``: a strategy with a prediction cache keeps its predictions under it.
    """
    strategy = get_strategy(name, **params)
    if "threshold" in strategy.parameters and "threshold" not in params:
        strategy.params["threshold"] = (limits if limits is not None else trading.limits()).min_confidence
    if "cost" in strategy.parameters and "cost" not in params:
        strategy.params["cost"] = round_trip_cost(trading.fee_rate, trading.slippage_bps)
    if cache_dir is not None and hasattr(strategy, "cache"):
        from autotrader.strategy.cache import NpzPredictionCache

        strategy.cache = NpzPredictionCache(cache_dir / "predictions")
    return strategy
