"""Specification of autotrader.analytics.metrics: hand-computed cases and parity with quantstats/empyrical.

Library parity uses the same daily return series in both worlds, with periods=365 and rf=0. Where
the two libraries disagree with each other, the test names the one whose definition is ours and
says why in a comment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import resources

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from autotrader.analytics import metrics as m
from autotrader.domain.errors import DataError

DAY = m.MS_PER_DAY
HOUR = 3_600_000
T0 = 1_609_459_200_000  # 2021-01-01T00:00:00Z
REL = 1e-9


# --------------------------------------------------------------------------- series fixtures


def _random_series() -> tuple[np.ndarray, np.ndarray]:
    """1000 seeded daily returns (crypto-like: 3 % daily vol), as (day_ts_ms, day_equity)."""
    rng = np.random.default_rng(20240601)
    r = rng.normal(0.0008, 0.03, 1000)
    day_ts = T0 + DAY * np.arange(-1, r.size, dtype=np.int64)
    return day_ts, 10_000.0 * np.concatenate(([1.0], np.cumprod(1.0 + r)))


def _btc_series() -> tuple[np.ndarray, np.ndarray]:
    """Buy-and-hold BTCUSDT from the bundled hourly candles (2020-2024), resampled to days."""
    path = resources.files("autotrader") / "data" / "bundled" / "binance_BTCUSDT_1h.parquet"
    with resources.as_file(path) as p:
        candles = pd.read_parquet(p, columns=["ts", "close"])
    close = candles["close"].to_numpy()
    return m.daily_equity(candles["ts"].to_numpy(), 10_000.0 * close / close[0])


SERIES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "random": _random_series,
    "btc": _btc_series,
}


def _as_pandas(day_ts: np.ndarray, day_eq: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    r = m.daily_returns(day_eq)
    index = pd.to_datetime(day_ts[1:], unit="ms")
    return pd.Series(r, index=index), r


# What each metric is compared with. quantstats and empyrical are configured with 365 periods and rf=0.
LIBRARY_PAIRS: dict[str, tuple[Callable[..., float], Callable[..., float]]] = {
    "sharpe": (
        lambda ts, eq, r: m.sharpe_ratio(r),
        lambda s, a: qs.stats.sharpe(s, rf=0.0, periods=365),
    ),
    "sharpe_empyrical": (
        lambda ts, eq, r: m.sharpe_ratio(r),
        lambda s, a: ep.sharpe_ratio(a, risk_free=0, annualization=365),
    ),
    "sortino": (
        lambda ts, eq, r: m.sortino_ratio(r),
        lambda s, a: qs.stats.sortino(s, rf=0, periods=365),
    ),
    "sortino_empyrical": (
        # empyrical's downside_risk is the same sqrt(mean(min(r, 0)²)) as quantstats'.
        lambda ts, eq, r: m.sortino_ratio(r),
        lambda s, a: ep.sortino_ratio(a, required_return=0, annualization=365),
    ),
    "annual_volatility": (
        lambda ts, eq, r: m.annual_volatility(r),
        lambda s, a: qs.stats.volatility(s, periods=365),
    ),
    "annual_volatility_empyrical": (
        lambda ts, eq, r: m.annual_volatility(r),
        lambda s, a: ep.annual_volatility(a, annualization=365),
    ),
    "cagr": (
        # Ours counts calendar days / 365; quantstats counts returns / periods. On a gap-free
        # daily series with the opening point, days == number of returns, so they agree.
        lambda ts, eq, r: m.cagr(ts, eq),
        lambda s, a: qs.stats.cagr(s, rf=0.0, periods=365),
    ),
    "cagr_empyrical": (
        lambda ts, eq, r: m.cagr(ts, eq),
        lambda s, a: ep.cagr(a, annualization=365),
    ),
    "max_drawdown": (
        # quantstats adds a phantom 1.0 baseline before the first return: our opening point.
        lambda ts, eq, r: m.max_drawdown(eq),
        lambda s, a: qs.stats.max_drawdown(s),
    ),
    "max_drawdown_empyrical": (
        lambda ts, eq, r: m.max_drawdown(eq),
        lambda s, a: ep.max_drawdown(a),
    ),
    "calmar": (
        lambda ts, eq, r: m.calmar_ratio(m.cagr(ts, eq), m.max_drawdown(eq)),
        lambda s, a: qs.stats.calmar(s, periods=365),
    ),
    "calmar_empyrical": (
        lambda ts, eq, r: m.calmar_ratio(m.cagr(ts, eq), m.max_drawdown(eq)),
        lambda s, a: ep.calmar_ratio(a, annualization=365),
    ),
    "value_at_risk": (
        # Historical VaR = empyrical (np.percentile, linear). quantstats' value_at_risk is the
        # parametric normal VaR, a different estimator, so it is not compared.
        lambda ts, eq, r: m.value_at_risk(r, 0.95),
        lambda s, a: ep.value_at_risk(a, cutoff=0.05),
    ),
    "expected_shortfall": (
        # Historical CVaR = mean of returns <= the linear 5 % quantile: quantstats' "historical"
        # method. empyrical averages the lowest floor((n-1)·5 %)+1 returns, a slightly different tail.
        lambda ts, eq, r: m.expected_shortfall(r, 0.95),
        lambda s, a: qs.stats.conditional_value_at_risk(s, confidence=0.95, method="historical"),
    ),
}


@pytest.mark.parametrize("series", sorted(SERIES))
@pytest.mark.parametrize("metric", sorted(LIBRARY_PAIRS))
def test_metric_same_daily_returns_agrees_with_library_to_1e9_relative(metric: str, series: str) -> None:
    day_ts, day_eq = SERIES[series]()
    s, r = _as_pandas(day_ts, day_eq)
    ours_fn, theirs_fn = LIBRARY_PAIRS[metric]
    ours, theirs = ours_fn(day_ts, day_eq, r), float(theirs_fn(s, r))
    assert math.isfinite(ours)
    assert ours == pytest.approx(theirs, rel=REL, abs=0.0)


@pytest.mark.parametrize("series", sorted(SERIES))
def test_stability_score_same_series_agrees_with_empyrical_stability(series: str) -> None:
    # empyrical fits cumulative log returns against the day index, without the opening point.
    day_ts, day_eq = SERIES[series]()
    _, r = _as_pandas(day_ts, day_eq)
    expected = 100.0 * ep.stability_of_timeseries(r)
    assert m.stability_score(day_ts[1:], day_eq[1:]) == pytest.approx(expected, rel=REL, abs=0.0)


@pytest.mark.parametrize("series", sorted(SERIES))
def test_rolling_sharpe_same_series_agrees_with_quantstats(series: str) -> None:
    day_ts, day_eq = SERIES[series]()
    s, r = _as_pandas(day_ts, day_eq)
    theirs = qs.stats.rolling_sharpe(s, rf=0.0, rolling_period=30, periods_per_year=365).to_numpy()
    ours = m.rolling_sharpe(r, 30)
    assert np.isnan(ours[:29]).all()
    np.testing.assert_allclose(ours[29:], theirs[29:], rtol=REL, atol=0.0)


@pytest.mark.parametrize("series", sorted(SERIES))
def test_monthly_and_yearly_returns_same_series_agree_with_quantstats(series: str) -> None:
    day_ts, day_eq = SERIES[series]()
    s, _ = _as_pandas(day_ts, day_eq)
    table = qs.stats.monthly_returns(s, compounded=True)
    years, months, rets = m.monthly_returns(day_ts, day_eq)
    table.index = table.index.astype(int)  # quantstats labels years as strings
    expected = [table.iloc[table.index.get_loc(y), mo - 1] for y, mo in zip(years, months, strict=True)]
    np.testing.assert_allclose(rets, expected, rtol=REL, atol=1e-15)
    y_years, y_rets = m.yearly_returns(day_ts, day_eq)
    np.testing.assert_array_equal(y_years, np.unique(years))
    np.testing.assert_allclose(y_rets, table.loc[y_years, "EOY"].to_numpy(), rtol=REL, atol=1e-15)


# --------------------------------------------------------------------------- daily resampling


def test_daily_equity_intraday_bars_takes_last_value_of_each_utc_day() -> None:
    ts = np.array([T0, T0 + HOUR, T0 + 23 * HOUR, T0 + DAY, T0 + DAY + 5 * HOUR], dtype=np.int64)
    eq = np.array([100.0, 101.0, 99.0, 105.0, 104.0])
    day_ts, day_eq = m.daily_equity(ts, eq)
    np.testing.assert_array_equal(day_ts, [T0 - DAY, T0, T0 + DAY])
    np.testing.assert_array_equal(day_eq, [100.0, 99.0, 104.0])


def test_daily_equity_missing_day_carries_previous_value() -> None:
    ts = np.array([T0, T0 + 3 * DAY], dtype=np.int64)
    day_ts, day_eq = m.daily_equity(ts, np.array([100.0, 110.0]))
    np.testing.assert_array_equal(day_ts, T0 + DAY * np.arange(-1, 4))
    np.testing.assert_array_equal(day_eq, [100.0, 100.0, 100.0, 100.0, 110.0])


def test_daily_equity_bars_not_at_midnight_labels_days_by_utc_midnight() -> None:
    ts = np.array([T0 + 13 * HOUR, T0 + DAY + 2 * HOUR], dtype=np.int64)
    day_ts, day_eq = m.daily_equity(ts, np.array([50.0, 60.0]))
    np.testing.assert_array_equal(day_ts, [T0 - DAY, T0, T0 + DAY])
    np.testing.assert_array_equal(day_eq, [50.0, 50.0, 60.0])


def test_daily_equity_btc_hourly_matches_pandas_resample_last() -> None:
    path = resources.files("autotrader") / "data" / "bundled" / "binance_BTCUSDT_1h.parquet"
    with resources.as_file(path) as p:
        candles = pd.read_parquet(p, columns=["ts", "close"])
    day_ts, day_eq = m.daily_equity(candles["ts"].to_numpy(), candles["close"].to_numpy())
    daily = (
        pd.Series(candles["close"].to_numpy(), index=pd.to_datetime(candles["ts"], unit="ms", utc=True))
        .resample("D")
        .last()
        .ffill()
    )
    np.testing.assert_array_equal(day_eq[1:], daily.to_numpy())
    np.testing.assert_array_equal(day_ts[1:], daily.index.as_unit("ms").asi8)
    assert day_eq[0] == candles["close"].iloc[0]


def test_daily_equity_empty_returns_empty_arrays() -> None:
    day_ts, day_eq = m.daily_equity(np.array([], dtype=np.int64), np.array([]))
    assert day_ts.size == 0
    assert day_eq.size == 0


def test_daily_equity_decreasing_timestamps_raises_data_error() -> None:
    with pytest.raises(DataError, match="non-decreasing"):
        m.daily_equity(np.array([T0 + DAY, T0], dtype=np.int64), np.array([1.0, 2.0]))


def test_daily_equity_nonpositive_equity_raises_data_error() -> None:
    with pytest.raises(DataError, match="positive"):
        m.daily_equity(np.array([T0, T0 + DAY], dtype=np.int64), np.array([1.0, 0.0]))


def test_daily_equity_nan_equity_raises_data_error() -> None:
    with pytest.raises(DataError, match="NaN"):
        m.daily_equity(np.array([T0, T0 + DAY], dtype=np.int64), np.array([1.0, np.nan]))


def test_daily_equity_float_timestamps_raises_data_error() -> None:
    with pytest.raises(DataError, match="integer"):
        m.daily_equity(np.array([1.0, 2.0]), np.array([1.0, 2.0]))


def test_daily_equity_length_mismatch_raises_data_error() -> None:
    with pytest.raises(DataError, match="2 values"):
        m.daily_equity(np.array([T0], dtype=np.int64), np.array([1.0, 2.0]))


def test_daily_returns_compounded_equal_total_return() -> None:
    _, day_eq = _random_series()
    r = m.daily_returns(day_eq)
    assert r.size == day_eq.size - 1
    assert np.prod(1.0 + r) - 1.0 == pytest.approx(m.total_return(day_eq), rel=1e-12)


def test_daily_returns_single_point_empty() -> None:
    assert m.daily_returns(np.array([100.0])).size == 0


# --------------------------------------------------------------------------- return metrics


def test_total_return_hand_case_fraction() -> None:
    assert m.total_return(np.array([200.0, 150.0, 250.0])) == pytest.approx(0.25)


def test_total_return_empty_nan() -> None:
    assert math.isnan(m.total_return(np.array([])))


def test_cagr_doubling_over_365_days_one() -> None:
    assert m.cagr(np.array([T0, T0 + 365 * DAY]), np.array([100.0, 200.0])) == pytest.approx(1.0)


def test_cagr_doubling_over_730_days_sqrt2_minus_1() -> None:
    ts = np.array([T0, T0 + 100 * DAY, T0 + 730 * DAY])
    assert m.cagr(ts, np.array([100.0, 80.0, 200.0])) == pytest.approx(math.sqrt(2.0) - 1.0)


def test_cagr_single_point_nan() -> None:
    assert math.isnan(m.cagr(np.array([T0]), np.array([100.0])))


def test_annual_volatility_hand_case_sample_std_times_sqrt365() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0])
    expected = np.sqrt(np.sum((r - r.mean()) ** 2) / 3) * np.sqrt(365)
    assert m.annual_volatility(r) == pytest.approx(expected)


def test_annual_volatility_single_return_nan() -> None:
    assert math.isnan(m.annual_volatility(np.array([0.01])))


def test_sharpe_ratio_hand_case_mean_over_sample_std() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0])
    expected = r.mean() / np.sqrt(np.sum((r - r.mean()) ** 2) / 3) * np.sqrt(365)
    assert m.sharpe_ratio(r) == pytest.approx(expected)


def test_sharpe_ratio_constant_returns_nan() -> None:
    assert math.isnan(m.sharpe_ratio(np.full(50, 0.001)))


def test_sharpe_ratio_flat_equity_nan() -> None:
    assert math.isnan(m.sharpe_ratio(np.zeros(10)))


def test_sharpe_ratio_single_return_nan() -> None:
    assert math.isnan(m.sharpe_ratio(np.array([0.01])))


def test_sortino_ratio_hand_case_downside_over_all_days() -> None:
    r = np.array([0.02, -0.01, 0.03, -0.02])
    downside = math.sqrt((0.01**2 + 0.02**2) / 4)
    assert m.sortino_ratio(r) == pytest.approx(0.005 / downside * math.sqrt(365))


def test_sortino_ratio_no_negative_day_nan() -> None:
    assert math.isnan(m.sortino_ratio(np.array([0.01, 0.0, 0.02])))


def test_sortino_ratio_empty_nan() -> None:
    assert math.isnan(m.sortino_ratio(np.array([])))


# --------------------------------------------------------------------------- drawdown


def test_max_drawdown_hand_case_half() -> None:
    assert m.max_drawdown(np.array([100.0, 120.0, 90.0, 130.0, 65.0])) == pytest.approx(-0.5)


def test_max_drawdown_rising_equity_zero() -> None:
    assert m.max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0


def test_max_drawdown_empty_nan() -> None:
    assert math.isnan(m.max_drawdown(np.array([])))


def test_drawdown_series_hand_case_fractions_below_peak() -> None:
    dd = m.drawdown_series(np.array([100.0, 120.0, 90.0, 130.0, 65.0]))
    np.testing.assert_allclose(dd, [0.0, 0.0, -0.25, 0.0, -0.5])


def test_drawdown_series_random_equity_never_positive() -> None:
    _, day_eq = _random_series()
    assert np.all(m.drawdown_series(day_eq) <= 0.0)


def test_max_drawdown_duration_recovered_and_open_drawdowns_longest_in_bars() -> None:
    # peak 120 at bar 1, back to 120 at bar 4 → 3 bars; peak 130 at bar 5, still under at bar 6 → 1.
    eq = np.array([100.0, 120.0, 90.0, 110.0, 120.0, 130.0, 100.0])
    assert m.max_drawdown_duration(eq) == 3.0


def test_max_drawdown_duration_with_timestamps_in_ms() -> None:
    eq = np.array([100.0, 120.0, 90.0, 110.0, 120.0, 130.0, 100.0])
    ts = T0 + HOUR * np.array([0, 1, 2, 3, 10, 11, 12], dtype=np.int64)
    assert m.max_drawdown_duration(eq, ts) == float(9 * HOUR)


def test_max_drawdown_duration_unrecovered_counts_to_last_bar() -> None:
    assert m.max_drawdown_duration(np.array([100.0, 110.0, 90.0, 95.0, 100.0])) == 3.0


def test_max_drawdown_duration_rising_equity_zero() -> None:
    assert m.max_drawdown_duration(np.array([1.0, 1.0, 2.0])) == 0.0


def test_max_drawdown_duration_empty_nan() -> None:
    assert math.isnan(m.max_drawdown_duration(np.array([])))


def test_calmar_ratio_hand_case_cagr_over_abs_drawdown() -> None:
    assert m.calmar_ratio(0.5, -0.25) == pytest.approx(2.0)


def test_calmar_ratio_no_drawdown_nan() -> None:
    assert math.isnan(m.calmar_ratio(0.5, 0.0))


# --------------------------------------------------------------------------- tail risk


def test_value_at_risk_hand_case_linear_quantile() -> None:
    r = np.linspace(-0.10, 0.10, 21)  # 5 % quantile sits exactly on the 2nd value
    assert m.value_at_risk(r, 0.95) == pytest.approx(-0.09)


def test_value_at_risk_interpolates_between_returns() -> None:
    r = np.array([-0.04, -0.02, 0.0, 0.01, 0.03])  # position 0.05·4 = 0.2 → -0.04 + 0.2·0.02
    assert m.value_at_risk(r, 0.95) == pytest.approx(-0.036)


def test_expected_shortfall_hand_case_mean_of_tail() -> None:
    r = np.linspace(-0.10, 0.10, 21)
    assert m.expected_shortfall(r, 0.95) == pytest.approx(-0.095)


def test_expected_shortfall_never_above_value_at_risk() -> None:
    _, day_eq = _random_series()
    r = m.daily_returns(day_eq)
    assert m.expected_shortfall(r) <= m.value_at_risk(r)


def test_value_at_risk_empty_nan() -> None:
    assert math.isnan(m.value_at_risk(np.array([])))
    assert math.isnan(m.expected_shortfall(np.array([])))


def test_value_at_risk_confidence_out_of_range_raises_value_error() -> None:
    with pytest.raises(ValueError, match="confidence"):
        m.value_at_risk(np.array([0.01, 0.02]), 95)


# --------------------------------------------------------------------------- stability


def test_stability_score_exponential_equity_100() -> None:
    ts = T0 + DAY * np.arange(400, dtype=np.int64)
    eq = 1000.0 * 1.002 ** np.arange(400)
    assert m.stability_score(ts, eq) == pytest.approx(100.0, rel=1e-12)


def test_stability_score_exponential_uneven_timestamps_100() -> None:
    days = np.array([0, 1, 5, 6, 30, 31, 100], dtype=np.int64)
    eq = 50.0 * np.exp(0.01 * days)
    assert m.stability_score(T0 + DAY * days, eq) == pytest.approx(100.0, rel=1e-12)


def test_stability_score_hand_case_r_squared() -> None:
    # log equity 0, 1, 0, 1 against t = 0..3: R² = cov² / (var_t var_y) = 0.2
    eq = np.exp(np.array([0.0, 1.0, 0.0, 1.0]))
    assert m.stability_score(T0 + DAY * np.arange(4), eq) == pytest.approx(20.0)


def test_stability_score_flat_equity_nan() -> None:
    assert math.isnan(m.stability_score(T0 + DAY * np.arange(5), np.full(5, 100.0)))


def test_stability_score_two_points_nan() -> None:
    assert math.isnan(m.stability_score(np.array([T0, T0 + DAY]), np.array([1.0, 2.0])))


# --------------------------------------------------------------------------- rolling, calendar


def test_rolling_sharpe_flat_window_nan_and_short_input_all_nan() -> None:
    r = np.array([0.0, 0.0, 0.0, 0.01, -0.01])
    out = m.rolling_sharpe(r, 3)
    assert np.isnan(out[:3]).all()
    assert np.isfinite(out[3:]).all()
    assert np.isnan(m.rolling_sharpe(r[:2], 3)).all()


def test_rolling_sharpe_window_below_two_raises_value_error() -> None:
    with pytest.raises(ValueError, match="window"):
        m.rolling_sharpe(np.array([0.01, 0.02]), 1)


def test_monthly_returns_hand_case_month_over_previous_month_end() -> None:
    # opening 100 (labelled Dec 31), Jan 30 → 110, Jan 31 → 120, Feb 1 → 90, Feb 2 → 96
    jan30 = T0 + 29 * DAY
    ts = np.array([T0 - DAY, jan30, jan30 + DAY, jan30 + 2 * DAY, jan30 + 3 * DAY], dtype=np.int64)
    years, months, rets = m.monthly_returns(ts, np.array([100.0, 110.0, 120.0, 90.0, 96.0]))
    np.testing.assert_array_equal(years, [2021, 2021])
    np.testing.assert_array_equal(months, [1, 2])
    np.testing.assert_allclose(rets, [0.2, -0.2])


def test_yearly_returns_hand_case_year_over_previous_year_end() -> None:
    ts = np.array([T0 - 2 * DAY, T0 - DAY, T0, T0 + 364 * DAY], dtype=np.int64)  # Dec 30, 31, Jan 1, Dec 31
    years, rets = m.yearly_returns(ts, np.array([100.0, 125.0, 100.0, 150.0]))
    np.testing.assert_array_equal(years, [2020, 2021])
    np.testing.assert_allclose(rets, [0.25, 0.2])


def test_monthly_returns_single_point_empty() -> None:
    years, months, rets = m.monthly_returns(np.array([T0]), np.array([100.0]))
    assert years.size == months.size == rets.size == 0


# --------------------------------------------------------------------------- trades

# W W L L L B W: wins 100, 200, 300; losses -50, -25, -25; one break-even; 7 trades.
PNL = np.array([100.0, 200.0, -50.0, -25.0, -25.0, 0.0, 300.0])


def test_win_rate_break_even_counts_as_trade_three_sevenths() -> None:
    assert m.win_rate(PNL) == pytest.approx(3 / 7)


def test_profit_factor_hand_case_six() -> None:
    assert m.profit_factor(PNL) == pytest.approx(6.0)


def test_average_trade_hand_case() -> None:
    assert m.average_trade(PNL) == pytest.approx(500 / 7)


def test_average_win_and_loss_hand_case() -> None:
    assert m.average_win(PNL) == pytest.approx(200.0)
    assert m.average_loss(PNL) == pytest.approx(-100 / 3)


def test_win_loss_ratio_hand_case_six() -> None:
    assert m.win_loss_ratio(PNL) == pytest.approx(6.0)


def test_largest_win_and_loss_hand_case() -> None:
    assert m.largest_win(PNL) == 300.0
    assert m.largest_loss(PNL) == -50.0


def test_expectancy_hand_case_equals_average_trade() -> None:
    assert m.expectancy(PNL) == pytest.approx(3 / 7 * 200 + 3 / 7 * (-100 / 3))
    assert m.expectancy(PNL) == pytest.approx(m.average_trade(PNL))


def test_expectancy_ratio_hand_case_expectancy_over_average_loss() -> None:
    assert m.expectancy_ratio(PNL) == pytest.approx((500 / 7) / (100 / 3))


def test_expectancy_ratio_no_break_even_matches_freqtrade_formula() -> None:
    pnl = np.array([10.0, -4.0, 6.0, -2.0, 3.0])
    p_win, avg_win, avg_loss = 3 / 5, 19 / 3, 3.0
    assert m.expectancy_ratio(pnl) == pytest.approx((1 + avg_win / avg_loss) * p_win - 1)


def test_max_consecutive_wins_and_losses_break_even_ends_streak() -> None:
    assert m.max_consecutive_wins(PNL) == 2
    assert m.max_consecutive_losses(PNL) == 3
    assert m.max_consecutive_losses(np.array([-1.0, -1.0, 0.0, -1.0, -1.0])) == 2


def test_trade_stats_no_trades_nan_rates_and_zero_streaks() -> None:
    stats = m.trade_stats(np.array([]))
    assert stats["trades"] == 0.0
    for key in ("win_rate", "profit_factor", "average_trade", "average_win", "average_loss", "expectancy"):
        assert math.isnan(stats[key]), key
    assert stats["max_consecutive_wins"] == stats["max_consecutive_losses"] == 0.0


def test_profit_factor_no_losses_inf() -> None:
    assert m.profit_factor(np.array([5.0, 0.0, 1.0])) == math.inf


def test_profit_factor_only_break_even_nan() -> None:
    assert math.isnan(m.profit_factor(np.zeros(3)))
    assert m.win_rate(np.zeros(3)) == 0.0


def test_win_loss_ratio_no_losses_nan() -> None:
    assert math.isnan(m.win_loss_ratio(np.array([1.0, 2.0])))
    assert math.isnan(m.largest_loss(np.array([1.0, 2.0])))
    assert math.isnan(m.largest_win(np.array([-1.0])))


def test_trade_stats_with_holding_times_and_sides_adds_keys() -> None:
    entry = np.array([0, 10, 20, 30], dtype=np.int64) * HOUR
    exit_ = entry + np.array([1, 2, 3, 6], dtype=np.int64) * HOUR
    stats = m.trade_stats(np.array([5.0, -1.0, 2.0, -3.0]), entry, exit_, np.array([1, 1, -1, -1]))
    assert stats["avg_holding_ms"] == pytest.approx(3 * HOUR)
    assert stats["max_holding_ms"] == 6 * HOUR
    assert stats["long_trades"] == stats["short_trades"] == 2.0
    assert stats["long_win_rate"] == stats["short_win_rate"] == 0.5


def test_trade_stats_bad_side_raises_data_error() -> None:
    with pytest.raises(DataError, match="side"):
        m.trade_stats(np.array([1.0]), side=np.array([0]))


def test_trade_stats_exit_before_entry_raises_data_error() -> None:
    with pytest.raises(DataError, match="exit"):
        m.trade_stats(np.array([1.0]), np.array([10]), np.array([5]))


# --------------------------------------------------------------------------- summary

SUMMARY_KEYS = {
    "start_equity",
    "end_equity",
    "days",
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "max_drawdown_duration_days",
    "calmar_ratio",
    "value_at_risk_95",
    "expected_shortfall_95",
    "stability_score",
    "best_day",
    "worst_day",
    "trades",
    "win_rate",
    "profit_factor",
    "average_trade",
    "average_win",
    "average_loss",
    "win_loss_ratio",
    "largest_win",
    "largest_loss",
    "expectancy",
    "expectancy_ratio",
    "max_consecutive_wins",
    "max_consecutive_losses",
}


def test_summary_hourly_equity_documented_keys_consistent_with_functions() -> None:
    rng = np.random.default_rng(3)
    ts = T0 + HOUR * np.arange(24 * 200, dtype=np.int64)
    eq = 1000.0 * np.cumprod(1.0 + rng.normal(0.0001, 0.005, ts.size))
    out = m.summary(ts, eq, PNL)
    assert set(out) == SUMMARY_KEYS
    assert all(isinstance(v, float) for v in out.values())
    day_ts, day_eq = m.daily_equity(ts, eq)
    r = m.daily_returns(day_eq)
    assert out["days"] == 200.0
    assert out["sharpe_ratio"] == m.sharpe_ratio(r)
    assert out["cagr"] == m.cagr(day_ts, day_eq)
    assert out["max_drawdown"] == m.max_drawdown(eq)
    assert out["calmar_ratio"] == pytest.approx(out["cagr"] / -out["max_drawdown"])
    assert out["total_return"] == pytest.approx(np.prod(1.0 + r) - 1.0, rel=1e-12)
    assert out["win_rate"] == pytest.approx(3 / 7)


def test_summary_intraday_trough_max_drawdown_from_full_resolution() -> None:
    ts = T0 + HOUR * np.array([0, 12, 23, 24, 36, 47], dtype=np.int64)
    eq = np.array([100.0, 50.0, 100.0, 100.0, 100.0, 110.0])  # the fall to 50 recovers the same day
    out = m.summary(ts, eq, np.array([]))
    assert out["max_drawdown"] == pytest.approx(-0.5)
    assert m.max_drawdown(m.daily_equity(ts, eq)[1]) == 0.0
    assert out["max_drawdown_duration_days"] == pytest.approx(23 / 24)


def test_summary_empty_equity_all_nan_no_exception() -> None:
    out = m.summary(np.array([], dtype=np.int64), np.array([]), np.array([]))
    assert set(out) == SUMMARY_KEYS
    assert math.isnan(out["sharpe_ratio"])
    assert math.isnan(out["total_return"])
    assert out["trades"] == 0.0


def test_summary_flat_equity_nan_ratios_zero_drawdown() -> None:
    ts = T0 + DAY * np.arange(30, dtype=np.int64)
    out = m.summary(ts, np.full(30, 500.0), np.array([]))
    assert out["total_return"] == 0.0
    assert out["max_drawdown"] == 0.0
    assert out["annual_volatility"] == 0.0
    for key in ("sharpe_ratio", "sortino_ratio", "calmar_ratio", "stability_score", "win_rate"):
        assert math.isnan(out[key]), key


def test_summary_single_bar_one_day_no_exception() -> None:
    out = m.summary(np.array([T0 + HOUR]), np.array([100.0]), np.array([]))
    assert out["days"] == 1.0
    assert out["total_return"] == 0.0
    assert math.isnan(out["sharpe_ratio"])
    assert math.isnan(out["annual_volatility"])
