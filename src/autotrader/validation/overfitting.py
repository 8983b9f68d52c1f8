"""Overfitting statistics: is the backtest's edge more than luck and selection?

Four tools, pure numpy / scipy / numba:

* :func:`probabilistic_sharpe_ratio` — PSR, the probability that the true Sharpe ratio exceeds a
  benchmark given the observed one, the track length and the skewness and kurtosis of returns
  (Bailey & López de Prado 2012).
* :func:`deflated_sharpe_ratio` — DSR, the PSR against the Sharpe ratio the best of ``N``
  worthless trials would be expected to reach (Bailey & López de Prado 2014). ``N`` must be the
  number of trials actually run (every parameter set an optimiser evaluated, every variant
  tried), not a guess. :func:`deflated_sharpe_of_selection` applies it where the paper does:
  to the selected trial, on the very returns it was selected on, with that selection's ``N``
  and trial Sharpe variance. A record that was *not* selected as a best (a walk-forward's
  stitched out-of-sample days) carries no selection penalty: judge it by its PSR against 0.
* :func:`probability_of_backtest_overfitting` — PBO by combinatorially symmetric
  cross-validation (CSCV) over a matrix of trial returns (Bailey, Borwein, López de Prado &
  Zhu 2015/2017).
* :func:`permutation_test` — shuffles the strategy's positions (in blocks) against the market's
  returns; the p-value is the share of shuffled strategies that did at least as well.

Sharpe ratios here are **per period** (per bar or per day, not annualised) unless a name says
``annualised``: the PSR formula needs the Sharpe ratio of the period its ``n`` counts. The
Sharpe ratio of a return series is ``metrics.sharpe_ratio(r, periods_per_year=1)``:
``mean / std(ddof=1)``, risk-free rate 0. Skewness ``γ3`` and kurtosis ``γ4`` are the sample
moments ``m3 / m2**1.5`` and ``m4 / m2**2`` (``scipy.stats.skew`` and ``kurtosis(fisher=False)``
with their default ``bias=True``; kurtosis is *not* excess kurtosis: 3 for a normal
distribution), as in the papers' estimators.

References
----------
* D. H. Bailey, M. López de Prado (2012), "The Sharpe Ratio Efficient Frontier", Journal of
  Risk 15(2). SSRN 1821643.
* D. H. Bailey, M. López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5), 94-107.
  SSRN 2460551.
* D. H. Bailey, J. M. Borwein, M. López de Prado, Q. J. Zhu (2017), "The Probability of
  Backtest Overfitting", Journal of Computational Finance 20(4). SSRN 2326253.
* B. Phipson, G. K. Smyth (2010), "Permutation P-values Should Never Be Zero", Statistical
  Applications in Genetics and Molecular Biology 9(1) — the ``+1`` correction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from autotrader.analytics import metrics
from autotrader.domain.errors import ConfigError, DataError
from autotrader.domain.jsonsafe import json_safe
from autotrader.jit import njit

__all__ = [
    "DEFAULT_PARTITIONS",
    "DEFAULT_PERMUTATIONS",
    "EULER_GAMMA",
    "DeflatedSharpe",
    "PBOResult",
    "PermutationTestResult",
    "deflated_sharpe_from_stats",
    "deflated_sharpe_of_selection",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "permutation_test",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "psr_from_stats",
    "sharpe_moments",
]

EULER_GAMMA: Final = 0.5772156649015329  # Euler-Mascheroni constant
DEFAULT_PARTITIONS: Final = 16
DEFAULT_PERMUTATIONS: Final = 1000
MAX_COMBINATIONS: Final = 200_000  # C(S, S/2) above this is refused (S = 20 gives 184,756)
_NAN: Final = float("nan")
_STATISTICS: Final = ("total_return", "sharpe")

FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------- PSR / DSR


def sharpe_moments(returns: ArrayLike) -> tuple[float, float, float, int]:
    """``(per-period Sharpe, skewness γ3, kurtosis γ4, n)`` of a return series.

    Sharpe from ``metrics.sharpe_ratio(returns, periods_per_year=1)``; NaN moments when the
    returns do not vary (or there are fewer than two).
    """
    r = _series(returns, "returns")
    sr = metrics.sharpe_ratio(r, periods_per_year=1)
    if math.isnan(sr):
        return _NAN, _NAN, _NAN, int(r.size)
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    m3 = float(np.mean(d**3))
    m4 = float(np.mean(d**4))
    return sr, m3 / m2**1.5, m4 / m2**2, int(r.size)


def psr_from_stats(
    sharpe: float,
    n_obs: int,
    skewness: float = 0.0,
    kurtosis: float = 3.0,
    benchmark_sharpe: float = 0.0,
) -> float:
    """Probabilistic Sharpe ratio from summary statistics (Bailey & López de Prado 2012, eq. 11).

    ``PSR(SR*) = Φ( (SR - SR*) * sqrt(n - 1) / sqrt(1 - γ3 * SR + (γ4 - 1) / 4 * SR²) )``

    with ``SR`` and ``SR*`` per-period Sharpe ratios, ``n`` the number of returns, ``γ3`` the
    skewness and ``γ4`` the (non-excess) kurtosis of the returns; ``Φ`` is the standard normal
    CDF. The denominator is the standard error of ``SR`` under non-normal i.i.d. returns
    (Mertens 2002) times ``sqrt(n - 1)``. NaN for ``n < 2``, a NaN input or a non-positive
    variance term.
    """
    values = (sharpe, skewness, kurtosis, benchmark_sharpe)
    if n_obs < 2 or any(math.isnan(v) for v in values):
        return _NAN
    var_term = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if var_term <= 0.0:
        return _NAN
    z = (sharpe - benchmark_sharpe) * math.sqrt(n_obs - 1) / math.sqrt(var_term)
    return float(stats.norm.cdf(z))


def probabilistic_sharpe_ratio(returns: ArrayLike, benchmark_sharpe: float = 0.0) -> float:
    """PSR of a return series against a per-period benchmark Sharpe ratio (default 0).

    The probability that the true Sharpe ratio exceeds ``benchmark_sharpe``; see
    :func:`psr_from_stats`. NaN when the returns do not vary.
    """
    sr, skew, kurt, n = sharpe_moments(returns)
    return psr_from_stats(sr, n, skew, kurt, benchmark_sharpe)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum per-period Sharpe of ``n_trials`` independent trials with no skill.

    ``SR0 = sqrt(V) * ((1 - γ) * Φ⁻¹(1 - 1/N) + γ * Φ⁻¹(1 - 1/(N e)))`` (Bailey & López de Prado
    2014, eq. 2, from the false strategy theorem), ``V`` the variance of the trials' Sharpe
    ratios, ``γ`` the Euler-Mascheroni constant. ``0`` for a single trial (no selection).
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int | np.integer) or n_trials < 1:
        raise ConfigError(f"the number of trials must be a positive integer, got {n_trials!r}")
    if not math.isfinite(sharpe_variance) or sharpe_variance < 0.0:
        raise ConfigError(f"the variance of trial Sharpe ratios must be finite and >= 0, got {sharpe_variance!r}")
    if n_trials == 1:
        return 0.0
    n = float(n_trials)
    z = (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n) + EULER_GAMMA * stats.norm.ppf(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(sharpe_variance) * z)


def deflated_sharpe_from_stats(
    sharpe: float,
    n_obs: int,
    sharpe_variance: float,
    n_trials: int,
    skewness: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """DSR from summary statistics: ``PSR(SR0)`` with ``SR0 = expected_max_sharpe(N, V)``.

    All Sharpe figures per period. See :func:`deflated_sharpe_ratio`.
    """
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    return psr_from_stats(sharpe, n_obs, skewness, kurtosis, sr0)


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of a selected strategy and what went into it.

    ``dsr`` is the probability that the strategy's true Sharpe ratio exceeds ``benchmark_sharpe``
    (``SR0``, the expected best Sharpe of ``n_trials`` worthless trials); ``psr`` the same
    against 0 (no deflation). Sharpe figures are per period; ``*_annualised`` multiply by
    ``sqrt(periods_per_year)``.
    """

    dsr: float
    psr: float
    sharpe: float
    benchmark_sharpe: float
    n_trials: int
    sharpe_variance: float
    n_obs: int
    skewness: float
    kurtosis: float
    periods_per_year: float

    @property
    def sharpe_annualised(self) -> float:
        return self.sharpe * math.sqrt(self.periods_per_year)

    @property
    def benchmark_sharpe_annualised(self) -> float:
        return self.benchmark_sharpe * math.sqrt(self.periods_per_year)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["sharpe_annualised"] = self.sharpe_annualised
        out["benchmark_sharpe_annualised"] = self.benchmark_sharpe_annualised
        return json_safe(out)


def deflated_sharpe_ratio(
    returns: ArrayLike,
    trial_sharpes: ArrayLike,
    *,
    n_trials: int | None = None,
    periods_per_year: float = metrics.DAYS_PER_YEAR,
) -> DeflatedSharpe:
    """Deflated Sharpe ratio of the selected strategy's ``returns`` (Bailey & López de Prado 2014).

    ``DSR = PSR(SR0)`` (:func:`psr_from_stats`) with ``SR0`` the expected maximum Sharpe of
    ``N`` unskilled trials (:func:`expected_max_sharpe`) and ``V`` the sample variance
    (``ddof=1``) of ``trial_sharpes``.

    ``returns`` are the selected strategy's per-period returns (e.g. daily); ``trial_sharpes``
    the Sharpe ratios of **every** trial run, the selected one included, annualised with the
    same ``periods_per_year`` (as ``metrics.sharpe_ratio`` returns them; pass
    ``periods_per_year=1`` for per-period figures). ``n_trials`` defaults to
    ``len(trial_sharpes)``; give it when more trials ran than Sharpe ratios were kept (it must
    not be fewer). With one trial ``SR0 = 0`` and the DSR is the PSR.
    """
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ConfigError(f"periods_per_year must be positive, got {periods_per_year!r}")
    trials = np.asarray(trial_sharpes, dtype=np.float64)
    if trials.ndim != 1 or trials.size == 0:
        raise DataError(f"trial_sharpes must be a non-empty 1-D array, got shape {trials.shape}")
    if not np.all(np.isfinite(trials)):
        raise DataError("trial_sharpes contains NaN or infinite values (a trial without a defined Sharpe?)")
    n = trials.size if n_trials is None else n_trials
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < trials.size:
        raise ConfigError(f"n_trials must be an integer >= the {trials.size} trial Sharpe ratios given, got {n!r}")
    per_period = trials / math.sqrt(periods_per_year)
    variance = float(np.var(per_period, ddof=1)) if per_period.size > 1 else 0.0
    if n > 1 and per_period.size < 2:
        raise DataError("the variance of trial Sharpe ratios needs at least two trial Sharpe ratios")
    sr, skew, kurt, n_obs = sharpe_moments(returns)
    sr0 = expected_max_sharpe(int(n), variance)
    return DeflatedSharpe(
        dsr=psr_from_stats(sr, n_obs, skew, kurt, sr0),
        psr=psr_from_stats(sr, n_obs, skew, kurt, 0.0),
        sharpe=sr,
        benchmark_sharpe=sr0,
        n_trials=int(n),
        sharpe_variance=variance,
        n_obs=n_obs,
        skewness=skew,
        kurtosis=kurt,
        periods_per_year=float(periods_per_year),
    )


def deflated_sharpe_of_selection(
    trial_returns: ArrayLike,
    selected: int,
    *,
    n_trials: int | None = None,
    periods_per_year: float = metrics.DAYS_PER_YEAR,
) -> DeflatedSharpe:
    """DSR of the trial an optimiser picked, on the returns it was picked on (one selection).

    ``trial_returns`` is the ``(T, N)`` matrix of the returns every trial earned over the sample
    the selection was made on (a walk-forward window's in-sample days); ``selected`` the column
    of the chosen trial. This is the basis of Bailey & López de Prado (2014): ``SR`` is the
    chosen trial's per-period Sharpe over those ``T`` periods, ``V`` the sample variance
    (``ddof=1``) of the ``N`` trials' per-period Sharpe ratios (a trial whose returns do not vary
    scores 0), ``N`` the number of trials (``n_trials`` when more were run than have returns
    here), and ``DSR = PSR(SR0)``, ``SR0 = expected_max_sharpe(N, V)``.
    """
    m = np.asarray(trial_returns, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 1 or m.shape[0] < 2:
        raise DataError(f"trial_returns must be a (periods >= 2, trials >= 1) matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise DataError("trial_returns contains NaN or infinite values")
    if isinstance(selected, bool) or not isinstance(selected, int | np.integer) or not 0 <= selected < m.shape[1]:
        raise ConfigError(f"selected must be a column of the {m.shape[1]} trials, got {selected!r}")
    sd = m.std(axis=0, ddof=1)
    flat = m.max(axis=0) == m.min(axis=0)
    per_period = np.divide(m.mean(axis=0), sd, out=np.zeros(m.shape[1]), where=~flat & (sd > 0.0))
    return deflated_sharpe_ratio(
        m[:, int(selected)],
        per_period * math.sqrt(periods_per_year),
        n_trials=m.shape[1] if n_trials is None else n_trials,
        periods_per_year=periods_per_year,
    )


# --------------------------------------------------------------------------- PBO (CSCV)


@dataclass(frozen=True)
class PBOResult:
    """Probability of backtest overfitting by CSCV, with its logit distribution.

    * ``pbo`` — share of the ``n_combinations`` splits in which the in-sample best trial ranks
      at or below the out-of-sample median (logit ≤ 0).
    * ``logits`` — ``λ_c = ln(ω_c / (1 - ω_c))`` per split, ``ω_c`` the relative out-of-sample
      rank of the in-sample best trial.
    * ``is_sharpe`` / ``oos_sharpe`` — the in-sample best trial's figure in and out of sample per
      split (Sharpe annualised with ``periods_per_year`` unless a custom metric was used).
    * performance degradation — the least-squares line ``oos = intercept + slope * is`` over the
      splits, its ``r_squared``, and ``prob_oos_loss`` = share of splits where the chosen trial
      lost out of sample (figure < 0).
    * ``n_flat_scores`` / ``flat_trials`` — how many (split, set, trial) scores were fixed at 0
      (or ``±inf``) because the trial's returns did not vary in that set, and which trials.
    * ``rows_used`` — the first ``rows_dropped`` (oldest) rows are dropped so that the ``S``
      partitions have equal length.
    """

    pbo: float
    n_partitions: int
    n_combinations: int
    n_trials: int
    rows_used: int
    rows_dropped: int
    metric: str
    logits: tuple[float, ...]
    is_sharpe: tuple[float, ...]
    oos_sharpe: tuple[float, ...]
    slope: float
    intercept: float
    r_squared: float
    prob_oos_loss: float
    mean_is: float
    mean_oos: float
    n_flat_scores: int = 0
    flat_trials: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return json_safe({k: getattr(self, k) for k in self.__dataclass_fields__})


def probability_of_backtest_overfitting(
    trial_returns: ArrayLike,
    n_partitions: int = DEFAULT_PARTITIONS,
    *,
    metric: Callable[[FloatArray], ArrayLike] | None = None,
    periods_per_year: float = metrics.DAYS_PER_YEAR,
) -> PBOResult:
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado & Zhu 2017).

    ``trial_returns`` is a ``(T, N)`` matrix: one column per trial (parameter set) actually
    run, one row per period, all over the same periods. The algorithm:

    1. Drop the ``T mod S`` oldest rows and cut the rest into ``S = n_partitions`` (even)
       consecutive blocks of equal length.
    2. For each of the ``C(S, S/2)`` ways to choose ``S/2`` blocks: the chosen blocks (in time
       order) are the in-sample set ``J``, the others the out-of-sample set ``J̄``.
    3. Score every trial on ``J`` and on ``J̄`` (per-period Sharpe ratio ``mean / std(ddof=1)``
       by default). A trial whose returns do not vary at all in a set (no position there)
       scores 0 in it, ``±inf`` for a constant non-zero return; ``n_flat_scores`` counts such
       scores and ``flat_trials`` lists the columns that had one. Take the
       in-sample best ``n*`` (first on ties) and its out-of-sample rank ``r`` among the ``N``
       trials (1 = worst, ties averaged); ``ω = r / (N + 1)``, ``λ = ln(ω / (1 - ω))``.
    4. ``PBO = #(λ ≤ 0) / C(S, S/2)``: how often the in-sample winner is no better than the
       median out of sample. Pure noise gives about 0.5; a genuine, persistent edge near 0.

    ``metric``, if given, maps a ``(rows, N)`` block of returns to ``N`` scores (slower: one
    call per split and side; its scores are reported as they are). ``periods_per_year``
    (365: daily rows) only annualises the Sharpe ratios reported in ``is_sharpe`` /
    ``oos_sharpe``; the ranks and so the PBO do not depend on it. Needs ``N ≥ 2``, ``S`` even and
    at least two rows per half.
    """
    m = np.asarray(trial_returns, dtype=np.float64)
    if m.ndim != 2:
        raise DataError(f"trial_returns must be a (periods, trials) matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise DataError("trial_returns contains NaN or infinite values")
    t_rows, n_trials = m.shape
    s = n_partitions
    if isinstance(s, bool) or not isinstance(s, int) or s < 2 or s % 2:
        raise ConfigError(f"the number of CSCV partitions must be an even integer >= 2, got {s!r}")
    if math.comb(s, s // 2) > MAX_COMBINATIONS:
        raise ConfigError(f"{s} partitions give {math.comb(s, s // 2):,} splits; use at most 20 partitions")
    if n_trials < 2:
        raise DataError(f"PBO compares trials: needs at least 2 trials (columns), got {n_trials}")
    block = t_rows // s
    if block * (s // 2) < 2:
        raise DataError(f"{t_rows} periods are too few for {s} partitions (each half needs at least 2 periods)")
    dropped = t_rows - block * s
    m = m[dropped:]
    combos = np.array(list(itertools.combinations(range(s), s // 2)), dtype=np.int64)
    chosen = np.zeros((combos.shape[0], s), dtype=bool)
    chosen[np.arange(combos.shape[0])[:, None], combos] = True
    if metric is None:
        is_perf, oos_perf, flat_is, flat_oos = _cscv_sharpe(m, s, chosen)
        n_flat = int(np.count_nonzero(flat_is) + np.count_nonzero(flat_oos))
        flat_trials = np.any(flat_is | flat_oos, axis=0)
        name = "sharpe_ratio"
        scale = math.sqrt(periods_per_year)
    else:
        is_perf, oos_perf = _cscv_custom(m, s, chosen, metric)
        n_flat = 0
        flat_trials = np.zeros(n_trials, dtype=bool)
        name = getattr(metric, "__name__", "custom")
        scale = 1.0
    best = np.argmax(is_perf, axis=1)
    rows = np.arange(best.size)
    oos_best = oos_perf[rows, best]
    below = np.sum(oos_perf < oos_best[:, None], axis=1)
    ties = np.sum(oos_perf == oos_best[:, None], axis=1)
    omega = (below + (ties + 1) / 2.0) / (n_trials + 1)
    logits = np.log(omega / (1.0 - omega))
    x, y = is_perf[rows, best] * scale, oos_best * scale
    slope, intercept, r2 = _line(x, y)
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        n_partitions=s,
        n_combinations=int(combos.shape[0]),
        n_trials=int(n_trials),
        rows_used=int(m.shape[0]),
        rows_dropped=int(dropped),
        metric=name,
        logits=tuple(logits.tolist()),
        is_sharpe=tuple(x.tolist()),
        oos_sharpe=tuple(y.tolist()),
        slope=slope,
        intercept=intercept,
        r_squared=r2,
        prob_oos_loss=float(np.mean(oos_best < 0.0)),
        mean_is=_finite_mean(x),
        mean_oos=_finite_mean(y),
        n_flat_scores=n_flat,
        flat_trials=tuple(int(j) for j in np.flatnonzero(flat_trials)),
    )


def _cscv_sharpe(
    m: FloatArray, s: int, chosen: NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray, NDArray[np.bool_], NDArray[np.bool_]]:
    """Per-period Sharpe of every trial on every in-sample and out-of-sample set, from block sums.

    A half in which a trial's returns do not vary at all (decided on the raw values, not on a
    variance that rounding can leave a hair above or below zero) scores 0 when the constant is
    0 (no position: no risk taken, no return) and ``±inf`` for a constant non-zero return. The
    last two values mark those zero-variance scores, ``(splits, trials)`` each.
    """
    n_trials = m.shape[1]
    raw = m.reshape(s, -1, n_trials)
    centre = m.mean(axis=0)
    blocks = raw - centre
    n_half = blocks.shape[1] * (s // 2)
    raw_sums = raw.sum(axis=1)
    sums, sumsq = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)
    block_lo, block_hi = raw.min(axis=1), raw.max(axis=1)
    weights = chosen.astype(np.float64)

    def sharpe(w: FloatArray, mask: NDArray[np.bool_]) -> tuple[FloatArray, NDArray[np.bool_]]:
        total, total_sq = w @ sums, w @ sumsq
        var = np.maximum((total_sq - total * (total / n_half)) / (n_half - 1), 0.0)
        mean = (w @ raw_sums) / n_half
        lo = np.full((w.shape[0], n_trials), np.inf)
        hi = np.full((w.shape[0], n_trials), -np.inf)
        for j in range(s):
            sel = mask[:, j, None]
            lo = np.where(sel, np.minimum(lo, block_lo[j]), lo)
            hi = np.where(sel, np.maximum(hi, block_hi[j]), hi)
        flat = lo == hi
        std = np.sqrt(var)
        out = np.divide(mean, std, out=np.zeros_like(mean), where=~flat & (std > 0.0))
        out[flat & (lo > 0.0)] = np.inf
        out[flat & (lo < 0.0)] = -np.inf
        return out, flat

    is_perf, is_flat = sharpe(weights, chosen)
    oos_perf, oos_flat = sharpe(1.0 - weights, ~chosen)
    return is_perf, oos_perf, is_flat, oos_flat


def _cscv_custom(
    m: FloatArray, s: int, chosen: NDArray[np.bool_], metric: Callable[[FloatArray], ArrayLike]
) -> tuple[FloatArray, FloatArray]:
    blocks = m.reshape(s, -1, m.shape[1])
    is_perf = np.empty((chosen.shape[0], m.shape[1]))
    oos_perf = np.empty_like(is_perf)
    for c, mask in enumerate(chosen):
        for out, side in ((is_perf, mask), (oos_perf, ~mask)):
            scores = np.asarray(metric(blocks[side].reshape(-1, m.shape[1])), dtype=np.float64)
            if scores.shape != (m.shape[1],) or np.any(np.isnan(scores)):
                raise DataError(f"the PBO metric must give one non-NaN score per trial, got shape {scores.shape}")
            out[c] = scores
    return is_perf, oos_perf


def _line(x: FloatArray, y: FloatArray) -> tuple[float, float, float]:
    """Least-squares ``y = a + b x``: ``(b, a, r²)``; NaN when undefined (constant or infinite x)."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2:
        return _NAN, _NAN, _NAN
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    if sxx == 0.0:
        return _NAN, _NAN, _NAN
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy) if syy > 0.0 else _NAN
    return slope, float(y.mean() - slope * x.mean()), r2


def _finite_mean(v: FloatArray) -> float:
    f = v[np.isfinite(v)]
    return float(f.mean()) if f.size else _NAN


# --------------------------------------------------------------------------- permutation test


@dataclass(frozen=True)
class PermutationTestResult:
    """Outcome of :func:`permutation_test`.

    ``p_value = (1 + #(null ≥ observed)) / (1 + n_permutations)``; ``null_p5/p50/p95`` are
    percentiles of the shuffled strategies' statistic.
    """

    statistic: str
    observed: float
    p_value: float
    n_permutations: int
    block_length: int
    seed: int
    null_p5: float
    null_p50: float
    null_p95: float
    null_mean: float

    def to_dict(self) -> dict[str, Any]:
        return json_safe({k: getattr(self, k) for k in self.__dataclass_fields__})


def permutation_test(
    positions: ArrayLike,
    returns: ArrayLike,
    *,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    block_length: int | None = None,
    statistic: str = "total_return",
    seed: int = 0,
) -> PermutationTestResult:
    """Is the strategy's timing better than chance? Shuffle its positions against the returns.

    ``positions[t]`` is the exposure held over period ``t`` (a fraction of equity, ``+1`` long,
    ``-1`` short, ``0`` flat; already lagged so that it was decided before period ``t``) and
    ``returns[t]`` the market's return over period ``t``; both ``(T,)`` or ``(T, K)`` for ``K``
    symbols. The strategy's return is ``p_t = sum_k positions[t, k] * returns[t, k]``.

    The null hypothesis is that the positions carry no information about the returns. The
    position series is cut into consecutive blocks of ``block_length`` periods (the last may be
    shorter), the blocks are put in a random order ``n_permutations`` times (the same order for
    every symbol), and the statistic of each shuffled strategy is computed against the
    unshuffled returns. Blocks keep the strategy's exposure, turnover and holding periods;
    the default length is the mean length of a run of unchanged positions (at least 1).

    ``statistic``: ``"total_return"`` (``prod(1 + p) - 1``, equity floored at 0) or
    ``"sharpe"`` (per-period ``mean(p) / std(p, ddof=1)``; NaN-free: a flat strategy scores 0).
    ``p_value = (1 + #(null ≥ observed - tol)) / (1 + n_permutations)`` (Phipson & Smyth 2010),
    ``tol = 1e-12 * max(1, |observed|)`` so that a rearrangement giving the same strategy
    counts as "at least as good" despite rounding.
    """
    pos, ret = _aligned(positions, returns)
    if statistic not in _STATISTICS:
        raise ConfigError(f"statistic must be one of {', '.join(_STATISTICS)}, got {statistic!r}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 1:
        raise ConfigError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if block_length is None:
        block_length = _mean_run_length(pos)
    if isinstance(block_length, bool) or not isinstance(block_length, int) or block_length < 1:
        raise ConfigError(f"block_length must be a positive integer, got {block_length!r}")
    use_sharpe = statistic == "sharpe"
    observed = float(_strategy_statistic_nb(pos, ret, np.arange(pos.shape[0]), use_sharpe))
    null = np.empty(n_permutations, dtype=np.float64)
    _permutation_null_nb(np.random.default_rng(seed), pos, ret, block_length, use_sharpe, null)
    tol = 1e-12 * max(1.0, abs(observed))
    p5, p50, p95 = np.percentile(null, (5.0, 50.0, 95.0))
    return PermutationTestResult(
        statistic=statistic,
        observed=observed,
        p_value=float((1 + np.count_nonzero(null >= observed - tol)) / (1 + n_permutations)),
        n_permutations=n_permutations,
        block_length=int(block_length),
        seed=seed,
        null_p5=float(p5),
        null_p50=float(p50),
        null_p95=float(p95),
        null_mean=float(null.mean()),
    )


def _aligned(positions: ArrayLike, returns: ArrayLike) -> tuple[FloatArray, FloatArray]:
    pos = np.asarray(positions, dtype=np.float64)
    ret = np.asarray(returns, dtype=np.float64)
    if pos.shape != ret.shape or pos.ndim not in (1, 2):
        raise DataError(f"positions and returns must have the same 1-D or 2-D shape, got {pos.shape} and {ret.shape}")
    if pos.ndim == 1:
        pos, ret = pos[:, None], ret[:, None]
    if pos.shape[0] < 2:
        raise DataError(f"a permutation test needs at least 2 periods, got {pos.shape[0]}")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(ret))):
        raise DataError("positions or returns contain NaN or infinite values")
    return np.ascontiguousarray(pos), np.ascontiguousarray(ret)


def _mean_run_length(pos: FloatArray) -> int:
    changes = int(np.count_nonzero(np.any(pos[1:] != pos[:-1], axis=1)))
    return max(1, round(pos.shape[0] / (changes + 1)))


@njit(nogil=True, cache=True)
def _strategy_statistic_nb(pos: FloatArray, ret: FloatArray, order: NDArray[np.int64], use_sharpe: bool) -> float:
    """Statistic of the strategy holding ``pos[order[t]]`` over period ``t``."""
    n, k = ret.shape
    equity = 1.0
    s1 = 0.0
    s2 = 0.0
    lo = np.inf
    hi = -np.inf
    for t in range(n):
        src = order[t]
        p = 0.0
        for j in range(k):
            p += pos[src, j] * ret[t, j]
        s1 += p
        s2 += p * p
        lo = min(lo, p)
        hi = max(hi, p)
        equity *= 1.0 + p
        if equity < 0.0:
            equity = 0.0
    if not use_sharpe:
        return equity - 1.0
    mean = s1 / n
    var = (s2 - s1 * mean) / (n - 1)
    if hi == lo or var <= 0.0:
        return 0.0
    return mean / math.sqrt(var)


@njit(nogil=True, cache=True)
def _permutation_null_nb(
    rng: np.random.Generator,
    pos: FloatArray,
    ret: FloatArray,
    block_length: int,
    use_sharpe: bool,
    out: FloatArray,
) -> None:
    """Fill ``out`` with the statistic of block-shuffled positions, one shuffle per element."""
    n = pos.shape[0]
    n_blocks = (n + block_length - 1) // block_length
    blocks = np.arange(n_blocks)
    order = np.empty(n, dtype=np.int64)
    for s in range(out.size):
        for i in range(n_blocks - 1, 0, -1):
            j = min(int(rng.random() * (i + 1)), i)
            tmp = blocks[i]
            blocks[i] = blocks[j]
            blocks[j] = tmp
        t = 0
        for b in range(n_blocks):
            start = blocks[b] * block_length
            stop = min(start + block_length, n)
            for src in range(start, stop):
                order[t] = src
                t += 1
        out[s] = _strategy_statistic_nb(pos, ret, order, use_sharpe)


# --------------------------------------------------------------------------- helpers


def _series(values: ArrayLike, name: str) -> FloatArray:
    r = np.asarray(values, dtype=np.float64)
    if r.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise DataError(f"{name} contains NaN or infinite values")
    return r
