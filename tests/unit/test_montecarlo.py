"""Specification of autotrader.validation.montecarlo: closed forms, invariants and parity with metrics.

Tolerances of the statistical checks are a few Monte Carlo standard errors: with 10,000
simulations the 5 % quantile of a normal has a standard error of about 0.02 standard deviations.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from autotrader.analytics import metrics
from autotrader.domain.errors import ConfigError, DataError
from autotrader.validation import montecarlo as mc

Z95 = stats.norm.ppf(0.95)


def _lognormal_trades(n: int = 1000, mu: float = 0.001, sigma: float = 0.02, seed: int = 7) -> np.ndarray:
    """Trade returns whose log-returns are i.i.d. normal: compounded paths are log-normal."""
    return np.expm1(np.random.default_rng(seed).normal(mu, sigma, n))


def _analytic_log_bands(r: np.ndarray, block_length: float = 1.0) -> tuple[float, float, float, float]:
    """(p5, p50, p95, sd) of log(1 + total return) of a stationary-bootstrap resample of ``r``.

    The sum of ``n`` resampled log-returns has mean ``n * mean(g)`` and variance
    ``n * (c0 + 2 * sum_k b(k) c_k)``, with ``c_k = sum_t d_t d_(t+k) / n`` the sample
    autocovariances (``d`` the demeaned log-returns) and
    ``b(k) = (1 - k/n) q^k + (k/n) q^(n-k)``, ``q = 1 - 1/block_length`` (Politis & Romano 1994,
    Lemma 1); for ``block_length = 1`` (i.i.d. bootstrap) it is ``n * c0``. Normal by the CLT.
    """
    g = np.log1p(r)
    n = g.size
    d = g - g.mean()
    c = np.array([d[: n - k] @ d[k:] for k in range(n)]) / n
    k = np.arange(1, n)
    q = 1.0 - 1.0 / block_length
    b = (1 - k / n) * q**k + (k / n) * q ** (n - k)
    centre, sd = n * g.mean(), math.sqrt(n * (c[0] + 2.0 * float(b @ c[1:])))
    return centre - Z95 * sd, centre, centre + Z95 * sd, sd


# --------------------------------------------------------------------------- one path vs metrics


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(2, 60), elements=st.floats(-0.95, 3.0).map(lambda x: round(x, 6))))
def test_path_stats_any_returns_matches_metrics(r: np.ndarray) -> None:
    fan_idx = np.arange(r.size + 1, dtype=np.int64)
    fan_row = np.empty(r.size + 1)
    total, mdd, min_eq, sharpe, win = mc.path_stats_nb(r, float(r.mean()), fan_idx, fan_row)
    equity = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    assert total == pytest.approx(metrics.total_return(equity), rel=1e-9, abs=1e-12)
    assert mdd == pytest.approx(metrics.max_drawdown(equity), rel=1e-9, abs=1e-12)
    assert min_eq == pytest.approx(min(1.0, float(equity.min())), rel=1e-12)
    assert win == metrics.win_rate(r)
    expected_sharpe = metrics.sharpe_ratio(r, periods_per_year=1)
    if math.isnan(expected_sharpe):
        assert math.isnan(sharpe)
    else:
        assert sharpe == pytest.approx(expected_sharpe, rel=1e-7, abs=1e-9)
    np.testing.assert_allclose(fan_row, equity, rtol=1e-12)


def test_path_stats_equity_wiped_out_stays_at_zero() -> None:
    r = np.array([0.5, -1.0, 0.8, 0.2])
    fan_row = np.empty(5)
    total, mdd, min_eq, _, _ = mc.path_stats_nb(r, 0.0, np.arange(5, dtype=np.int64), fan_row)
    assert (total, mdd, min_eq) == (-1.0, -1.0, 0.0)
    np.testing.assert_array_equal(fan_row, [1.0, 1.5, 0.0, 0.0, 0.0])


# --------------------------------------------------------------------------- permutation


def test_permute_trades_order_free_figures_identical_in_every_band() -> None:
    r = _lognormal_trades(300)
    res = mc.permute_trades(r, n_simulations=2000, trades_per_year=100.0)
    obs = res.observed
    for band, value in (
        (res.total_return, obs["total_return"]),
        (res.sharpe_ratio, obs["sharpe_ratio"]),
        (res.win_rate, obs["win_rate"]),
    ):
        assert band is not None
        for q in (band.p5, band.p50, band.p95):
            assert q == pytest.approx(value, rel=1e-9)
    assert res.prob_loss in (0.0, 1.0)
    assert res.sharpe_ratio.p50 == pytest.approx(metrics.sharpe_ratio(r, periods_per_year=1) * 10.0, rel=1e-9)
    # only the path changes: drawdowns spread out
    assert res.max_drawdown.p5 < res.max_drawdown.p50 < res.max_drawdown.p95 <= 0.0


def test_permute_trades_only_gains_never_draw_down() -> None:
    res = mc.permute_trades(np.full(50, 0.01) + np.linspace(0, 0.01, 50), n_simulations=500, drawdown_limit=0.1)
    assert (res.max_drawdown.p5, res.max_drawdown.p95) == (0.0, 0.0)
    assert (res.prob_ruin, res.prob_drawdown_breach, res.prob_loss) == (0.0, 0.0, 0.0)


def test_permute_trades_one_crash_ruins_every_order() -> None:
    r = np.zeros(10)
    r[3] = -0.6
    res = mc.permute_trades(r, n_simulations=1000, drawdown_limit=0.5)
    assert res.prob_ruin == 1.0
    assert res.prob_drawdown_breach == 1.0
    assert res.max_drawdown.p50 == pytest.approx(-0.6)


# --------------------------------------------------------------------------- bootstrap: closed forms


def test_bootstrap_trades_lognormal_paths_match_analytic_bands() -> None:
    r = _lognormal_trades()
    res = mc.bootstrap_trades(r, seed=1)
    lo, mid, hi, sd = _analytic_log_bands(r)
    tol = 0.06 * sd  # ~3 Monte Carlo standard errors of a 5 % quantile
    assert math.log1p(res.total_return.p5) == pytest.approx(lo, abs=tol)
    assert math.log1p(res.total_return.p50) == pytest.approx(mid, abs=tol)
    assert math.log1p(res.total_return.p95) == pytest.approx(hi, abs=tol)
    expected_loss = stats.norm.cdf(-mid / sd)
    assert res.prob_loss == pytest.approx(expected_loss, abs=0.015)


def test_bootstrap_trades_sharpe_and_win_rate_bands_match_sampling_theory() -> None:
    r = _lognormal_trades()
    n = r.size
    res = mc.bootstrap_trades(r, seed=2)
    sr = metrics.sharpe_ratio(r, periods_per_year=1)
    se_sr = math.sqrt((1.0 + sr * sr / 2.0) / n)  # Lo (2002), i.i.d. normal returns
    assert res.sharpe_ratio.p50 == pytest.approx(sr, abs=0.1 * se_sr)
    assert res.sharpe_ratio.p95 - res.sharpe_ratio.p5 == pytest.approx(2 * Z95 * se_sr, rel=0.08)
    w = metrics.win_rate(r)
    assert res.win_rate is not None
    assert res.win_rate.p50 == pytest.approx(w, abs=1.5 / n)
    assert res.win_rate.p95 - res.win_rate.p5 == pytest.approx(2 * Z95 * math.sqrt(w * (1 - w) / n), rel=0.1)


def test_bootstrap_trades_single_crash_ruin_probability_closed_form() -> None:
    n = 10
    r = np.zeros(n)
    r[0] = -0.6  # a path is ruined (equity 0.4 < 0.5) iff it draws this trade at least once
    res = mc.bootstrap_trades(r, seed=3, drawdown_limit=0.5)
    expected = 1.0 - (1.0 - 1.0 / n) ** n
    se = math.sqrt(expected * (1 - expected) / res.n_simulations)
    assert res.prob_ruin == pytest.approx(expected, abs=4 * se)
    assert res.prob_drawdown_breach == res.prob_ruin == res.prob_loss


@pytest.mark.parametrize(("block_length", "tol_sd"), [(1.0, 0.06), (5.0, 0.1), (20.0, 0.1)])
def test_bootstrap_daily_returns_match_stationary_bootstrap_closed_form(block_length: float, tol_sd: float) -> None:
    # blocks make the resampled sum a scale mixture of normals: the normal quantiles are looser there
    r = _lognormal_trades(n=730, mu=0.0005, sigma=0.03, seed=11)
    res = mc.bootstrap_daily_returns(r, block_length=block_length, seed=4)
    lo, mid, hi, sd = _analytic_log_bands(r, block_length)
    tol = tol_sd * sd
    assert math.log1p(res.total_return.p5) == pytest.approx(lo, abs=tol)
    assert math.log1p(res.total_return.p50) == pytest.approx(mid, abs=tol)
    assert math.log1p(res.total_return.p95) == pytest.approx(hi, abs=tol)
    assert res.win_rate is None
    assert res.sharpe_periods_per_year == 365.0
    assert res.observed["sharpe_ratio"] == pytest.approx(metrics.sharpe_ratio(r), rel=1e-12)


def test_bootstrap_daily_returns_long_blocks_keep_autocorrelation() -> None:
    # trending days (AR(1), phi = 0.6): blocks keep the persistence, so paths spread wider than i.i.d.
    rng = np.random.default_rng(5)
    e = rng.normal(0, 0.01, 2000)
    r = np.empty_like(e)
    r[0] = e[0]
    for t in range(1, e.size):
        r[t] = 0.6 * r[t - 1] + e[t]
    iid = mc.bootstrap_daily_returns(r, block_length=1, n_simulations=3000)
    blocks = mc.bootstrap_daily_returns(r, block_length=50, n_simulations=3000)
    width = lambda res: math.log1p(res.total_return.p95) - math.log1p(res.total_return.p5)  # noqa: E731
    # long-run variance of an AR(1) is (1 + phi) / (1 - phi) = 4 times the i.i.d. one: width x2
    assert width(blocks) / width(iid) == pytest.approx(2.0, rel=0.2)


def test_default_block_length_cube_root_with_floor() -> None:
    assert mc.default_block_length(10) == 5
    assert mc.default_block_length(1826) == 13
    assert mc.default_block_length(1000) == 10


# --------------------------------------------------------------------------- fan chart, seeds, JSON


def test_fan_chart_last_point_is_the_total_return_band() -> None:
    r = _lognormal_trades(500)
    res = mc.bootstrap_trades(r, n_simulations=3000, initial_capital=10_000.0)
    fan = res.fan
    assert fan.step[0] == 0
    assert fan.step[-1] == 500
    assert 95 <= len(fan.step) <= 100
    assert all(v == 10_000.0 for v in (row[0] for row in fan.equity))
    p5, p25, p50, p75, p95 = (row[-1] for row in fan.equity)
    assert p5 <= p25 <= p50 <= p75 <= p95
    assert fan.observed[0] == 10_000.0
    assert fan.observed[-1] == pytest.approx(10_000.0 * (1 + res.observed["total_return"]), rel=1e-12)
    assert p5 == pytest.approx(10_000.0 * (1 + res.total_return.p5), rel=1e-12)
    assert p50 == pytest.approx(10_000.0 * (1 + res.total_return.p50), rel=1e-12)
    assert p95 == pytest.approx(10_000.0 * (1 + res.total_return.p95), rel=1e-12)


def test_fan_chart_short_path_has_every_step() -> None:
    res = mc.bootstrap_trades(np.array([0.1, -0.05, 0.02]), n_simulations=100)
    assert res.fan.step == (0, 1, 2, 3)


def test_simulations_depend_on_seed_not_on_workers() -> None:
    r = _lognormal_trades(200)
    one = mc.bootstrap_trades(r, n_simulations=2500, seed=9, workers=1)
    two = mc.bootstrap_trades(r, n_simulations=2500, seed=9, workers=2)
    other = mc.bootstrap_trades(r, n_simulations=2500, seed=10, workers=2)
    assert one == two
    assert one.total_return != other.total_return


def test_result_to_dict_is_plain_json() -> None:
    res = mc.bootstrap_trades(np.array([0.01, -0.01, 0.02, 0.0]), n_simulations=200, drawdown_limit=0.2)
    doc = res.to_dict()
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    assert doc["method"] == mc.TRADE_BOOTSTRAP
    assert doc["prob_drawdown_breach"] is not None


def test_result_to_dict_undefined_sharpe_is_null() -> None:
    res = mc.bootstrap_trades(np.full(5, 0.01), n_simulations=50)  # equal returns: Sharpe undefined
    doc = res.to_dict()
    assert doc["sharpe_ratio"] == {"p5": None, "p50": None, "p95": None}
    json.dumps(doc, allow_nan=False)


def test_permutation_invariant_figures_are_not_reported_as_results() -> None:
    # issue 16: reordering the same trades leaves return, Sharpe, win rate and P(loss) unchanged on
    # every path; they must not read as simulated reassurance
    r = np.array([0.03, -0.01, 0.02, -0.02, 0.01, 0.04, -0.03])
    perm = mc.permute_trades(r, n_simulations=300, trades_per_year=72.7)
    assert perm.total_return.p5 == pytest.approx(perm.total_return.p95)  # invariant indeed
    doc = perm.to_dict()
    assert doc["invariant_by_construction"] == ["total_return", "sharpe_ratio", "win_rate", "prob_loss"]
    assert doc["total_return"] is doc["sharpe_ratio"] is doc["win_rate"] is doc["prob_loss"] is None
    assert doc["max_drawdown"]["p5"] is not None
    assert "closed-trade equity" in doc["basis"] and "72.7 trades a year" in doc["basis"]
    assert "cannot tell whether the edge is real" in doc["scope"]
    boot = mc.bootstrap_trades(r, n_simulations=300).to_dict()
    assert boot["invariant_by_construction"] == []
    assert boot["total_return"]["p5"] is not None
    assert "per trade" in boot["basis"]
    daily = mc.bootstrap_daily_returns(r, n_simulations=300, block_length=2).to_dict()
    assert "marked equity" in daily["basis"]


# --------------------------------------------------------------------------- backtest document


def _doc(pnl: list[float], day_equity: list[float], capital: float = 1000.0) -> dict:
    return {
        "config": {"initial_capital": capital},
        "risk_limits": {"max_drawdown": 0.15},
        "period": {"days": 365},
        "trades": [{"pnl_usd": p} for p in pnl],
        "equity_curve": {"daily": {"equity": day_equity}},
    }


def test_trade_returns_divide_by_closed_trade_equity_before() -> None:
    r = mc.trade_returns(_doc([100.0, -110.0, 50.0], [1000.0, 1040.0]))
    np.testing.assert_allclose(r, [0.1, -0.1, 50.0 / 990.0])


def test_trade_returns_bankrupt_account_refused() -> None:
    with pytest.raises(DataError, match="equity reached zero"):
        mc.trade_returns(_doc([-1000.0, 10.0], [1000.0, 10.0]))


def test_monte_carlo_report_runs_three_methods_with_the_risk_limit() -> None:
    rng = np.random.default_rng(3)
    pnl = list(rng.normal(5.0, 30.0, 120))
    days = list(1000.0 * np.cumprod(1 + rng.normal(0.001, 0.02, 366)))
    report = mc.monte_carlo_report(_doc(pnl, days), n_simulations=500)
    assert [r.method for r in report.results] == [
        mc.TRADE_PERMUTATION,
        mc.TRADE_BOOTSTRAP,
        mc.DAILY_BLOCK_BOOTSTRAP,
    ]
    assert all(r.drawdown_limit == 0.15 and r.initial_capital == 1000.0 for r in report.results)
    assert report.results[0].sharpe_periods_per_year == pytest.approx(120.0)
    assert report.results[2].n_steps == 365
    assert report.skipped == {}
    doc = report.to_dict()
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_monte_carlo_report_without_trades_says_why() -> None:
    report = mc.monte_carlo_report(_doc([], [1000.0, 1000.0, 1010.0]), n_simulations=100)
    assert [r.method for r in report.results] == [mc.DAILY_BLOCK_BOOTSTRAP]
    assert report.skipped[mc.TRADE_BOOTSTRAP] == "needs at least 2 closed trades, the backtest has 0"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_simulations": 0}, "simulations"),
        ({"seed": -1}, "seed"),
        ({"drawdown_limit": 15.0}, "drawdown_limit"),
        ({"ruin_fraction": 1.0}, "ruin_fraction"),
        ({"fan_points": 1}, "fan_points"),
        ({"trades_per_year": 0.0}, "trades_per_year"),
    ],
)
def test_bad_option_is_config_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        mc.bootstrap_trades([0.01, -0.01, 0.02], **kwargs)


@pytest.mark.parametrize(
    ("returns", "match"),
    [
        ([0.01], "at least 2"),
        ([0.01, math.nan], "NaN"),
        ([0.01, -1.5], "below -100"),
        ([[0.1, 0.2]], "one-dim"),
    ],
)
def test_bad_returns_are_data_error(returns: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        mc.permute_trades(returns)


def test_bad_block_length_is_config_error() -> None:
    with pytest.raises(ConfigError, match="block_length"):
        mc.bootstrap_daily_returns([0.01, -0.01, 0.02], block_length=0.5)
