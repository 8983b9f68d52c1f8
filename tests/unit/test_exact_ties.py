"""Moving averages exact at ties: every SMA cross on tick prices equals an exact (``fractions``) reference."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from autotrader.domain.candles import SeriesKey
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.strategy.indicators import sma, sma_cross_direction_nb

PAIRS = ((2, 4), (3, 10), (5, 20), (10, 50))


def _tick_walk(n: int, tick_decimals: int, seed: int) -> np.ndarray:
    """A price walk on a decimal tick grid that often stands still, so equal averages are common."""
    rng = np.random.default_rng(seed)
    ticks = 5_000 + np.cumsum(rng.choice([-1, 0, 0, 0, 1], size=n))
    return ticks / 10.0**tick_decimals  # each value is the double nearest its decimal


def _exact_means(prices: np.ndarray, n: int) -> list[Fraction | None]:
    exact = [Fraction(repr(float(p))) for p in prices]
    out: list[Fraction | None] = [None] * len(exact)
    total = sum(exact[:n], Fraction(0))
    for i in range(n - 1, len(exact)):
        if i >= n:
            total += exact[i] - exact[i - n]
        out[i] = total / n
    return out


def _exact_crosses(prices: np.ndarray, fast: int, slow: int) -> tuple[np.ndarray, int]:
    """(+1 / 0 / NaN per bar by the strict crossover rule on exact means, number of tie bars)."""
    f, s = _exact_means(prices, fast), _exact_means(prices, slow)
    out = np.full(len(prices), np.nan)
    prev: int | None = None
    ties = 0
    for i in range(slow - 1, len(prices)):
        fi, si = f[i], s[i]
        assert fi is not None and si is not None
        c = (fi > si) - (fi < si)
        ties += c == 0
        if prev == -1 and c > 0:
            out[i] = 1.0
        elif prev == 1 and c < 0:
            out[i] = 0.0
        prev = c
    return out, ties


def _ours(prices: np.ndarray, fast: int, slow: int) -> np.ndarray:
    return sma_cross_direction_nb(np.ascontiguousarray(prices[:, None]), fast, slow, 1.0, 0.0)[:, 0]


@pytest.mark.parametrize(("decimals", "seed"), [(2, 1), (4, 2), (0, 3)])
def test_sma_cross_tick_prices_every_cross_equals_exact_reference(decimals: int, seed: int) -> None:
    prices = _tick_walk(3_000, decimals, seed)
    total_ties = 0
    for fast, slow in PAIRS:
        expected, ties = _exact_crosses(prices, fast, slow)
        total_ties += ties
        np.testing.assert_array_equal(_ours(prices, fast, slow), expected, err_msg=f"{fast}/{slow}")
    assert total_ties > 100  # the data really has many exact ties


def test_sma_cross_real_btc_hourly_every_cross_equals_exact_reference() -> None:
    candles = read_parquet_candles(bundled_files()[SeriesKey.of("binance", "BTCUSDT", "1h")])
    prices = np.asarray(candles.close[:4_000], dtype=np.float64)
    for fast, slow in ((3, 10), (5, 20), (10, 50)):
        expected, _ = _exact_crosses(prices, fast, slow)
        np.testing.assert_array_equal(_ours(prices, fast, slow), expected, err_msg=f"{fast}/{slow}")


def test_sma_tick_prices_is_correctly_rounded_exact_mean() -> None:
    prices = _tick_walk(2_000, 2, 4)
    for n in (3, 7, 50):
        expected = np.array([np.nan if m is None else float(m) for m in _exact_means(prices, n)])
        np.testing.assert_array_equal(sma(prices, n), expected)


def test_sma_cross_with_gaps_uses_present_bars_exactly() -> None:
    prices = _tick_walk(1_500, 2, 5)
    with_gaps = prices.copy()
    holes = np.r_[100:130, 700:705]
    with_gaps[holes] = np.nan
    present = np.setdiff1d(np.arange(len(prices)), holes)
    expected, _ = _exact_crosses(prices[present], 5, 20)
    got = _ours(with_gaps, 5, 20)
    assert np.isnan(got[holes]).all()
    np.testing.assert_array_equal(got[present], expected)


def test_sma_cross_off_grid_prices_falls_back_to_float_sums() -> None:
    prices = 100.0 * np.exp(np.cumsum(np.random.default_rng(6).normal(0, 0.01, 1_000)))
    expected, ties = _exact_crosses(prices, 5, 20)
    assert ties == 0  # arbitrary floats: no ties, float sums decide every bar correctly
    np.testing.assert_array_equal(_ours(prices, 5, 20), expected)
