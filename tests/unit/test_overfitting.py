"""Specification of autotrader.validation.overfitting: published examples, reference formulas, known cases."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import special, stats

from autotrader.analytics import metrics
from autotrader.domain.errors import ConfigError, DataError
from autotrader.validation import overfitting as of


def _skewed_returns(n: int = 1500, seed: int = 3) -> np.ndarray:
    """Daily-like returns with negative skew and fat tails (a normal plus rare crashes)."""
    rng = np.random.default_rng(seed)
    crash = rng.random(n) < 0.02
    return rng.normal(0.0015, 0.01, n) - crash * rng.exponential(0.04, n)


def _psr_reference(r: np.ndarray, benchmark: float) -> float:
    """PSR written straight from Bailey & López de Prado (2012) with scipy's moment estimators."""
    sr = np.mean(r) / np.std(r, ddof=1)
    g3, g4 = stats.skew(r), stats.kurtosis(r, fisher=False)
    z = (sr - benchmark) * np.sqrt(r.size - 1) / np.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


# --------------------------------------------------------------------------- PSR


@pytest.mark.parametrize("benchmark", [0.0, 0.05, -0.02])
def test_psr_matches_independent_scipy_formula(benchmark: float) -> None:
    r = _skewed_returns()
    assert of.probabilistic_sharpe_ratio(r, benchmark) == pytest.approx(_psr_reference(r, benchmark), rel=1e-10)


def test_sharpe_moments_are_metrics_sharpe_and_scipy_moments() -> None:
    r = _skewed_returns()
    sr, skew, kurt, n = of.sharpe_moments(r)
    assert sr == metrics.sharpe_ratio(r, periods_per_year=1)
    assert skew == pytest.approx(stats.skew(r), rel=1e-10)
    assert kurt == pytest.approx(stats.kurtosis(r, fisher=False), rel=1e-10)
    assert n == r.size
    assert skew < 0
    assert kurt > 3


def test_psr_at_its_own_benchmark_is_one_half() -> None:
    assert of.psr_from_stats(0.1, 500, -1.0, 8.0, benchmark_sharpe=0.1) == 0.5


def test_psr_normal_returns_reduce_to_lo_standard_error() -> None:
    # γ3 = 0, γ4 = 3: z = (SR - SR*) sqrt(n - 1) / sqrt(1 + SR²/2), hand-checked: SR 0.1, n 101 → z = 0.99751
    z = 0.1 * math.sqrt(100) / math.sqrt(1 + 0.01 / 2)
    assert z == pytest.approx(0.997509, abs=1e-6)
    assert of.psr_from_stats(0.1, 101) == pytest.approx(stats.norm.cdf(z), rel=1e-12)


def test_psr_negative_skew_and_fat_tails_lower_confidence() -> None:
    normal = of.psr_from_stats(0.1, 250, 0.0, 3.0)
    assert of.psr_from_stats(0.1, 250, -2.0, 3.0) < normal
    assert of.psr_from_stats(0.1, 250, 0.0, 10.0) < normal
    assert of.psr_from_stats(0.1, 1000) > normal  # a longer track record is more convincing


def test_psr_undefined_for_flat_or_too_short_returns() -> None:
    assert math.isnan(of.probabilistic_sharpe_ratio(np.full(10, 0.01)))
    assert math.isnan(of.psr_from_stats(0.1, 1))


# --------------------------------------------------------------------------- DSR


def test_dsr_reproduces_the_papers_numerical_example() -> None:
    # Bailey & López de Prado (2014), numerical example: N = 100 trials, V[SR_n] = 1/2 and the
    # selected SR = 2.5 (both annualised, 250 days a year), T = 1250 daily returns, skewness -3,
    # kurtosis 10 → E[max SR] ≈ 0.1132 (daily) and DSR ≈ 0.9004.
    sr0 = of.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = of.deflated_sharpe_from_stats(2.5 / math.sqrt(250), 1250, 0.5 / 250, 100, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_expected_max_sharpe_independent_formula_and_simulation() -> None:
    gamma = np.euler_gamma
    for n in (2, 10, 100, 1000):
        z = (1 - gamma) * stats.norm.ppf(1 - 1 / n) + gamma * stats.norm.ppf(1 - 1 / (n * np.e))
        assert of.expected_max_sharpe(n, 0.04) == pytest.approx(0.2 * z, rel=1e-12)
    # it approximates the mean maximum of N standard normals (2.5076 for N = 100) within 1 %
    maxima = np.random.default_rng(0).standard_normal((20_000, 100)).max(axis=1)
    assert of.expected_max_sharpe(100, 1.0) == pytest.approx(maxima.mean(), rel=0.015)
    assert of.expected_max_sharpe(1, 1.0) == 0.0


def test_deflated_sharpe_ratio_from_returns_and_annualised_trial_sharpes() -> None:
    r = _skewed_returns()
    rng = np.random.default_rng(8)
    trials = np.append(rng.normal(0.3, 0.8, 49), metrics.sharpe_ratio(r))  # annualised, 365 days
    res = of.deflated_sharpe_ratio(r, trials)
    sr, skew, kurt, n = of.sharpe_moments(r)
    variance = np.var(trials / math.sqrt(365), ddof=1)
    assert res.n_trials == 50
    assert res.n_obs == n
    assert res.sharpe_variance == pytest.approx(variance, rel=1e-12)
    assert res.dsr == pytest.approx(of.deflated_sharpe_from_stats(sr, n, variance, 50, skew, kurt), rel=1e-12)
    assert res.psr == pytest.approx(of.probabilistic_sharpe_ratio(r), rel=1e-12)
    assert res.sharpe_annualised == pytest.approx(metrics.sharpe_ratio(r), rel=1e-12)
    assert res.dsr < res.psr
    more = of.deflated_sharpe_ratio(r, trials, n_trials=5000)
    assert more.dsr < res.dsr
    assert more.benchmark_sharpe > res.benchmark_sharpe
    doc = res.to_dict()
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_deflated_sharpe_of_selection_matches_the_papers_formulas_by_hand() -> None:
    # one walk-forward window: 365 in-sample days, 12 trials, the optimiser keeps the best Sharpe;
    # trial 7 never traded (flat: Sharpe 0). Everything below is written straight from the papers.
    rng = np.random.default_rng(14)
    m = rng.normal(0.0004, 0.01, (365, 12)) - (rng.random((365, 12)) < 0.01) * 0.03
    m[:, 7] = 0.0
    sr = np.array([0.0 if m[:, j].std() == 0 else m[:, j].mean() / m[:, j].std(ddof=1) for j in range(12)])
    best = int(np.argmax(sr))
    n, t = 12, 365
    v = sr.var(ddof=1)  # variance of the trials' per-period Sharpe ratios (BLdP 2014, eq. 2)
    g = 0.5772156649015329
    sr0 = math.sqrt(v) * ((1 - g) * stats.norm.ppf(1 - 1 / n) + g * stats.norm.ppf(1 - 1 / (n * math.e)))
    x = m[:, best]
    d = x - x.mean()
    g3 = np.mean(d**3) / np.mean(d**2) ** 1.5
    g4 = np.mean(d**4) / np.mean(d**2) ** 2
    z = (sr[best] - sr0) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr[best] + (g4 - 1) / 4 * sr[best] ** 2)
    dsr_by_hand = stats.norm.cdf(z)
    res = of.deflated_sharpe_of_selection(m, best)
    assert res.n_trials == 12
    assert res.n_obs == 365
    assert res.sharpe == pytest.approx(sr[best], rel=1e-12)
    assert res.sharpe_variance == pytest.approx(v, rel=1e-12)
    assert res.benchmark_sharpe == pytest.approx(sr0, rel=1e-12)
    assert res.dsr == pytest.approx(dsr_by_hand, rel=1e-10)
    assert res.psr == pytest.approx(of.probabilistic_sharpe_ratio(x), rel=1e-12)
    assert res.dsr < res.psr  # the selection penalty
    # more trials run than have returns here: N grows, the penalty with it
    assert of.deflated_sharpe_of_selection(m, best, n_trials=100).dsr < res.dsr
    with pytest.raises(ConfigError, match="selected"):
        of.deflated_sharpe_of_selection(m, 12)


def test_deflated_sharpe_single_trial_is_the_psr() -> None:
    r = _skewed_returns()
    res = of.deflated_sharpe_ratio(r, [metrics.sharpe_ratio(r)])
    assert res.benchmark_sharpe == 0.0
    assert res.dsr == res.psr


def test_deflated_sharpe_bad_trial_inputs() -> None:
    r = _skewed_returns()
    with pytest.raises(ConfigError, match="n_trials"):
        of.deflated_sharpe_ratio(r, [1.0, 2.0, 3.0], n_trials=2)
    with pytest.raises(DataError, match="at least two"):
        of.deflated_sharpe_ratio(r, [1.0], n_trials=10)
    with pytest.raises(DataError, match="NaN"):
        of.deflated_sharpe_ratio(r, [1.0, math.nan])
    with pytest.raises(ConfigError, match="trials"):
        of.expected_max_sharpe(0, 1.0)


# --------------------------------------------------------------------------- PBO


def _cscv_reference(m: np.ndarray, s: int) -> np.ndarray:
    """CSCV logits written straight from the paper: loop over splits, scipy ranks and logit."""
    m = m[m.shape[0] % s :]
    blocks = np.split(m, s)
    n = m.shape[1]
    out = []
    for chosen in itertools.combinations(range(s), s // 2):
        train = np.concatenate([blocks[i] for i in chosen])
        test = np.concatenate([blocks[i] for i in range(s) if i not in chosen])
        r_is = train.mean(axis=0) / train.std(axis=0, ddof=1)
        r_oos = test.mean(axis=0) / test.std(axis=0, ddof=1)
        best = int(np.argmax(r_is))
        omega = stats.rankdata(r_oos)[best] / (n + 1)
        out.append(special.logit(omega))
    return np.array(out)


def test_pbo_logits_match_reference_implementation() -> None:
    m = np.random.default_rng(1).normal(0.0002, 0.01, (243, 7))
    res = of.probability_of_backtest_overfitting(m, 6)
    expected = _cscv_reference(m, 6)
    np.testing.assert_allclose(res.logits, expected, rtol=1e-9)
    assert res.pbo == pytest.approx(np.mean(expected <= 0))
    assert (res.n_combinations, res.rows_used, res.rows_dropped) == (20, 240, 3)


def test_pbo_custom_metric_gives_the_same_answer_as_the_default() -> None:
    m = np.random.default_rng(2).normal(0.0, 0.01, (160, 5))

    def sharpe(block: np.ndarray) -> np.ndarray:
        return block.mean(axis=0) / block.std(axis=0, ddof=1)

    default = of.probability_of_backtest_overfitting(m, 8)
    custom = of.probability_of_backtest_overfitting(m, 8, metric=sharpe)
    np.testing.assert_allclose(custom.logits, default.logits, rtol=1e-9)
    assert custom.metric == "sharpe"


def test_pbo_pure_noise_trials_average_one_half() -> None:
    # for worthless trials the in-sample winner's out-of-sample rank is uniform: E[PBO] = 1/2 (N even);
    # one matrix is a noisy estimate (sd ~ 0.23), so average 120 of them (standard error ~ 0.02)
    pbos = [
        of.probability_of_backtest_overfitting(np.random.default_rng(s).normal(0, 0.01, (400, 10)), 8).pbo
        for s in range(120)
    ]
    assert np.mean(pbos) == pytest.approx(0.5, abs=0.07)


def test_pbo_one_trial_with_a_real_edge_is_never_overfit() -> None:
    n = 12
    m = np.random.default_rng(4).normal(0.0, 0.01, (1600, n))
    m[:, 5] += 0.01  # Sharpe 1 a day: best in and out of sample in every split
    res = of.probability_of_backtest_overfitting(m)
    assert res.pbo == 0.0
    np.testing.assert_allclose(res.logits, math.log(n))  # rank N of N: ω = N / (N + 1)
    assert res.n_combinations == 12_870
    assert res.prob_oos_loss == 0.0
    assert res.mean_oos > 0


def test_pbo_in_sample_winner_always_loses_out_of_sample() -> None:
    # two mirror trials whose returns sum to zero over the sample: whichever wins in-sample has
    # exactly the opposite mean out of sample, so it always ranks last → PBO = 1
    a = np.random.default_rng(5).normal(0, 0.01, 320)
    a -= a.mean()
    res = of.probability_of_backtest_overfitting(np.column_stack([a, -a]), 8)
    assert res.pbo == 1.0
    np.testing.assert_allclose(res.logits, math.log(1 / 2))
    assert res.prob_oos_loss == 1.0
    assert res.slope == pytest.approx(-1.0, abs=0.05)  # degradation: OOS mean = -IS mean (stds differ a little)


def test_pbo_flat_trial_scores_zero_not_nan() -> None:
    m = np.random.default_rng(6).normal(0, 0.01, (80, 3))
    m[:, 1] = 0.0  # a parameter set that never traded
    res = of.probability_of_backtest_overfitting(m, 4)
    assert all(math.isfinite(v) for v in res.logits)
    doc = res.to_dict()
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def _cscv_reference_flat_zero(m: np.ndarray, s: int) -> np.ndarray:
    """As ``_cscv_reference``, a trial whose returns do not vary in a set scoring 0 there."""
    m = m[m.shape[0] % s :]
    blocks = np.split(m, s)
    out = []
    for chosen in itertools.combinations(range(s), s // 2):
        scores = []
        for side in (chosen, [i for i in range(s) if i not in chosen]):
            part = np.concatenate([blocks[i] for i in side])
            sd = part.std(axis=0, ddof=1)
            flat = part.max(axis=0) == part.min(axis=0)
            scores.append(np.where(flat, 0.0, part.mean(axis=0) / np.where(flat, 1.0, sd)))
        best = int(np.argmax(scores[0]))
        out.append(special.logit(stats.rankdata(scores[1])[best] / (m.shape[1] + 1)))
    return np.array(out)


@pytest.mark.parametrize("seed", [16, 17, 18, 19, 20])
def test_pbo_trial_flat_in_one_half_scores_zero_there_not_infinite(seed: int) -> None:
    # issue 16: a trial with no position in one half (0 there, active elsewhere) scored +inf in
    # that half when rounding left its mean ~1e-21 after subtracting the column mean (std 0),
    # and so "won" in-sample (seeds 18 and 20 hit it); it must score 0 like any flat trial
    rng = np.random.default_rng(seed)
    m = rng.normal(0.001, 0.01, (160, 5))
    m[:80, 2] = 0.0  # trial 2 had no position in blocks 0-3 of 8
    m[80:, 2] = rng.normal(-0.004, 0.01, 80)  # and lost money afterwards
    res = of.probability_of_backtest_overfitting(m, 8)
    np.testing.assert_allclose(res.logits, _cscv_reference_flat_zero(m, 8), rtol=1e-9)
    assert all(math.isfinite(v) for v in res.is_sharpe)
    assert res.n_flat_scores == 2  # split {0,1,2,3}: in-sample; split {4,5,6,7}: out-of-sample
    assert res.flat_trials == (2,)
    assert res.to_dict()["n_flat_scores"] == 2


@pytest.mark.parametrize(
    ("shape", "s", "error", "match"),
    [
        ((100, 4), 5, ConfigError, "even"),
        ((100, 4), 22, ConfigError, "at most 20"),
        ((100, 1), 4, DataError, "at least 2 trials"),
        ((7, 4), 8, DataError, "too few"),
        ((100,), 4, DataError, "matrix"),
    ],
)
def test_pbo_bad_input(shape: tuple[int, ...], s: int, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        of.probability_of_backtest_overfitting(
            np.zeros(shape) + np.arange(shape[0]).reshape(-1, *[1] * (len(shape) - 1)), s
        )


# --------------------------------------------------------------------------- permutation test


def test_permutation_test_real_edge_has_a_tiny_p_value() -> None:
    rng = np.random.default_rng(10)
    ret = rng.normal(0.0, 0.01, 2000)
    right = rng.random(2000) < 0.56  # the signal calls the direction right 56 % of the time
    pos = np.where(right, np.sign(ret), -np.sign(ret))
    for statistic in ("total_return", "sharpe"):
        res = of.permutation_test(pos, ret, n_permutations=999, statistic=statistic, block_length=1)
        assert res.p_value == pytest.approx(1 / 1000)
        assert res.observed > res.null_p95


def test_permutation_test_noise_p_values_are_uniform() -> None:
    p_values = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        ret = rng.normal(0.0, 0.01, 250)
        pos = np.repeat(rng.choice([-1.0, 0.0, 1.0], 25), 10)  # 10-bar holds, unrelated to returns
        p_values.append(of.permutation_test(pos, ret, n_permutations=99, seed=seed).p_value)
    p = np.array(p_values)
    assert np.mean(p) == pytest.approx(0.5, abs=0.06)
    assert np.mean(p <= 0.05) == pytest.approx(0.05, abs=0.04)
    assert stats.kstest(p, "uniform").pvalue > 0.001


def test_permutation_test_default_block_is_the_mean_holding_run() -> None:
    ret = np.random.default_rng(0).normal(0, 0.01, 100)
    pos = np.repeat([1.0, 0.0, -1.0, 1.0], 25)
    assert of.permutation_test(pos, ret, n_permutations=10).block_length == 25


def test_permutation_test_one_block_cannot_shuffle_so_p_is_one() -> None:
    rng = np.random.default_rng(1)
    ret, pos = rng.normal(0, 0.01, 50), rng.choice([-1.0, 1.0], 50)
    res = of.permutation_test(pos, ret, n_permutations=19, block_length=50)
    assert res.p_value == 1.0
    assert res.null_p5 == res.null_p95 == pytest.approx(res.observed)


def test_permutation_test_two_symbols_sum_their_returns() -> None:
    rng = np.random.default_rng(2)
    ret = rng.normal(0, 0.01, (300, 2))
    pos = np.sign(ret)  # perfect foresight on both symbols
    res = of.permutation_test(pos, ret, n_permutations=99, statistic="total_return", block_length=1)
    assert res.observed == pytest.approx(np.prod(1 + np.abs(ret).sum(axis=1)) - 1)
    assert res.p_value == 0.01
    again = of.permutation_test(pos, ret, n_permutations=99, statistic="total_return", block_length=1)
    assert again == res
    doc = res.to_dict()
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"statistic": "sortino"}, ConfigError, "statistic"),
        ({"n_permutations": 0}, ConfigError, "n_permutations"),
        ({"block_length": 0}, ConfigError, "block_length"),
        ({"seed": -3}, ConfigError, "seed"),
    ],
)
def test_permutation_test_bad_options(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        of.permutation_test([1.0, -1.0, 1.0], [0.01, 0.02, -0.01], **kwargs)


def test_permutation_test_misaligned_inputs_are_data_errors() -> None:
    with pytest.raises(DataError, match="same"):
        of.permutation_test([1.0, -1.0], [0.01, 0.02, -0.01])
    with pytest.raises(DataError, match="NaN"):
        of.permutation_test([1.0, math.nan], [0.01, 0.02])
