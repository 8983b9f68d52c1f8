"""The lookahead check catches a strategy that peeks at the future and passes an honest one."""

from __future__ import annotations

import numpy as np
import pytest

from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.errors import StrategyError
from autotrader.strategy.base import Signals, Strategy, get_strategy
from autotrader.validation.lookahead import check_lookahead
from tests.scenarios.harness import candles_from_rows


class PeekingStrategy(Strategy):
    """Buys when the NEXT close is higher: a textbook lookahead bug."""

    name = "peeking_test_strategy"

    def generate(self, data: AlignedCandles) -> Signals:
        nxt = np.vstack([data.close[1:], data.close[-1:]])
        direction = np.where(nxt > data.close, 1.0, 0.0)
        return Signals.from_direction(direction)


class CenteredMeanStrategy(Strategy):
    """Normalises with the whole-sample mean: a subtler lookahead bug."""

    name = "centered_mean_test_strategy"

    def generate(self, data: AlignedCandles) -> Signals:
        direction = np.where(data.close > np.nanmean(data.close, axis=0), 1.0, np.nan)
        return Signals.from_direction(direction)


@pytest.fixture
def data() -> AlignedCandles:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 600)))
    rows = [(c, c * 1.01, c * 0.99, c) for c in close]
    return align({"AAA": candles_from_rows(rows)})


def test_lookahead_check_future_peeking_strategy_fails_loudly(data):
    with pytest.raises(StrategyError, match="lookahead detected"):
        check_lookahead(PeekingStrategy(), data)


def test_lookahead_check_whole_sample_normalisation_fails(data):
    with pytest.raises(StrategyError, match="changes"):
        check_lookahead(CenteredMeanStrategy(), data)


def test_lookahead_check_causal_strategy_passes(data):
    report = check_lookahead(get_strategy("sma_cross", fast=5, slow=20), data)
    assert len(report.cuts) == 4
    assert report.compared_signals > 0
