"""Indicator kernels against their pandas equivalents, NaN handling and causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from autotrader.domain.errors import ConfigError
from autotrader.strategy import indicators as ind


@pytest.fixture(scope="module")
def prices() -> np.ndarray:
    """Three random walks: full, listed at bar 60, and with a 7-bar gap at 300."""
    rng = np.random.default_rng(42)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, size=(800, 3)), axis=0))
    x[:60, 1] = np.nan
    x[300:307, 2] = np.nan
    return x


def _per_column(x: np.ndarray, fn) -> np.ndarray:
    """Apply a pandas function to each column's present values and scatter back (NaN elsewhere)."""
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        s = pd.Series(x[:, j]).dropna()
        out[s.index.to_numpy(), j] = fn(s).to_numpy()
    return out


def _wilder(s: pd.Series, n: int) -> pd.Series:
    """Wilder smoothing in pandas: seed with the mean of the first n values, then ewm(alpha=1/n)."""
    seeded = pd.concat([pd.Series([s.iloc[:n].mean()], index=[s.index[n - 1]]), s.iloc[n:]])
    return seeded.ewm(alpha=1.0 / n, adjust=False).mean().reindex(s.index)


CASES = {
    "sma": (lambda x: ind.sma(x, 20), lambda s: s.rolling(20).mean()),
    "ema": (lambda x: ind.ema(x, 20), lambda s: s.ewm(span=20, adjust=False, min_periods=20).mean()),
    "rolling_max": (lambda x: ind.rolling_max(x, 15), lambda s: s.rolling(15).max()),
    "rolling_max_excl": (
        lambda x: ind.rolling_max(x, 15, exclude_current=True),
        lambda s: s.rolling(15).max().shift(1),
    ),
    "rolling_min": (lambda x: ind.rolling_min(x, 15), lambda s: s.rolling(15).min()),
    "rolling_min_excl": (
        lambda x: ind.rolling_min(x, 15, exclude_current=True),
        lambda s: s.rolling(15).min().shift(1),
    ),
    "rolling_std": (lambda x: ind.rolling_std(x, 30), lambda s: s.rolling(30).std()),
    "rolling_std_ddof0": (lambda x: ind.rolling_std(x, 30, ddof=0), lambda s: s.rolling(30).std(ddof=0)),
    "log_return": (lambda x: ind.log_return(x, 5), lambda s: np.log(s / s.shift(5))),
}


@pytest.mark.parametrize("name", CASES)
def test_indicator_random_walk_with_listing_and_gap_matches_pandas(prices, name):
    ours, theirs = CASES[name]
    np.testing.assert_allclose(ours(prices), _per_column(prices, theirs), rtol=1e-10, atol=1e-12)


def test_rsi_random_walk_matches_pandas_wilder(prices):
    def ref(s: pd.Series) -> pd.Series:
        d = s.diff().iloc[1:]
        g = _wilder(d.clip(lower=0), 14)
        lo = _wilder((-d).clip(lower=0), 14)
        return (100 - 100 / (1 + g / lo)).reindex(s.index)

    np.testing.assert_allclose(ind.rsi(prices, 14), _per_column(prices, ref), rtol=1e-10, atol=1e-10)


def test_rsi_only_gains_is_100_and_flat_is_50():
    up = np.arange(1.0, 40.0)
    flat = np.full(40, 5.0)
    assert ind.rsi(up, 14)[14:] == pytest.approx(100.0)
    assert ind.rsi(flat, 14)[14:] == pytest.approx(50.0)
    assert np.isnan(ind.rsi(up, 14)[:14]).all()


def test_atr_random_ohlc_matches_pandas_wilder(prices):
    rng = np.random.default_rng(1)
    close = prices
    high = close * (1 + rng.uniform(0, 0.01, close.shape))
    low = close * (1 - rng.uniform(0, 0.01, close.shape))
    expected = np.full(close.shape, np.nan)
    for j in range(close.shape[1]):
        df = pd.DataFrame({"h": high[:, j], "l": low[:, j], "c": close[:, j]}).dropna()
        prev = df["c"].shift(1)
        tr = pd.concat([df["h"] - df["l"], (df["h"] - prev).abs(), (df["l"] - prev).abs()], axis=1).max(axis=1)
        expected[df.index.to_numpy(), j] = _wilder(tr, 14).to_numpy()
    np.testing.assert_allclose(ind.atr(high, low, close, 14), expected, rtol=1e-10, atol=1e-12)


def test_indicator_before_listing_and_in_gap_is_nan(prices):
    out = ind.sma(prices, 10)
    assert np.isnan(out[:69, 1]).all()  # listed at 60: first full window ends at 69
    assert not np.isnan(out[69, 1])
    assert np.isnan(out[300:307, 2]).all()
    assert not np.isnan(out[307, 2])  # the window skips the gap: 10 present bars are still there


@pytest.mark.parametrize("name", CASES)
def test_indicator_truncated_input_same_prefix(prices, name):
    ours, _ = CASES[name]
    full = ours(prices)
    for cut in (50, 301, 555):
        np.testing.assert_array_equal(ours(prices[:cut]), full[:cut])


def test_crossed_above_strict_inequalities_match_backtesting_crossover():
    a = np.array([1.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 2.0, 3.0])
    b = np.full_like(a, 2.0)
    # below→above (1) crosses; below→equal (3) no; equal→above (4) no (backtesting needs a[-2] < b[-2]);
    # below→equal→equal→above (8) no
    assert np.flatnonzero(ind.crossed_above(a, b)).tolist() == [1]


def test_crossed_above_nan_in_between_compares_with_previous_defined_bar():
    a = np.array([np.nan, 1.0, np.nan, 3.0])
    b = np.array([np.nan, 2.0, np.nan, 2.0])
    assert np.flatnonzero(ind.crossed_above(a, b)).tolist() == [3]


@pytest.mark.parametrize("window", [0, -3, 2.5])
def test_indicator_bad_window_raises_config_error(window):
    with pytest.raises(ConfigError, match="positive integer"):
        ind.sma(np.ones(10), window)


@pytest.mark.parametrize(("fast", "slow", "down"), [(3, 7, 0.0), (5, 20, -1.0), (1, 2, 0.0), (20, 100, 0.0)])
def test_sma_cross_direction_fused_equals_sma_then_crossed_above(prices, fast, slow, down):
    rng = np.random.default_rng(fast * 100 + slow)
    flat = np.round(100 + np.cumsum(rng.choice([-1.0, 0.0, 1.0], size=(3000, 2)), axis=0), 0)  # many ties
    flat[500:520, 1] = np.nan  # a gap
    for x in (prices, flat):
        a, b = ind.sma_nb(x, fast), ind.sma_nb(x, slow)
        expected = np.full(x.shape, np.nan)
        expected[ind.crossed_above_nb(a, b)] = 1.0
        expected[ind.crossed_above_nb(b, a)] = down
        got = ind.sma_cross_direction_nb(np.ascontiguousarray(x), fast, slow, 1.0, down)
        np.testing.assert_array_equal(got, expected)
        assert np.isfinite(got).sum() > 0
