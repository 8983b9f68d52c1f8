"""Validation of a saved backtest: the figures ``autotrader analyze`` prints, as one typed result.

``BacktestAnalyzer`` runs the sections on the JSON document ``autotrader backtest`` saved: stress
tests, Monte Carlo, the walk-forward optimisation, the overfitting panel and the validation
scorecard. Sections that need a new run re-run the saved configuration on the candle store it is
given (opened only when a section needs it). ``BacktestAnalysis`` is what came out of the sections
that ran; its ``to_dict`` is the ``analysis.json`` payload. Rendering and files are the CLI's.

What the overfitting panel measures
-----------------------------------
* PSR of the backtest: its daily returns (marked equity) against a Sharpe ratio of 0 (in-sample).
* Deflated Sharpe ratio, per walk-forward window, where the selection happened: the window's
  in-sample winner on its in-sample daily returns, deflated by that window's number of trials and
  the variance of their Sharpe ratios (Bailey & López de Prado 2014); the panel and the
  scorecard use the median over the windows, and the per-window table shows each.
* PSR of the stitched out-of-sample record against 0: it was not selected as a best of anything,
  so no second selection penalty. N/A (both) without a walk-forward: the number of trials behind
  a saved backtest is not known.
* PBO: CSCV on each window's trial matrix (in-sample daily returns × trials), averaged over the
  windows (up to 16 partitions, fewer for short windows).
* Permutation test: the backtest's positions (rebuilt from its trades on the stored candles, each
  symbol weighted ``1 / symbols``: gross unit exposure, no costs, not the strategy's sizing)
  shuffled in blocks against the open-to-open returns.

The scorecard uses the walk-forward's out-of-sample figures; when the walk-forward cannot run it
falls back to the backtest's own figures and says they are in-sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotrader.domain.jsonsafe import finite_or_none

if TYPE_CHECKING:
    from autotrader.backtest.runner import BacktestConfig
    from autotrader.marketdata.store import CandleStore
    from autotrader.validation.montecarlo import MonteCarloReport
    from autotrader.validation.scorecard import Scorecard
    from autotrader.validation.stress import StressReport
    from autotrader.validation.walkforward import WalkForwardResult

Advance = Callable[[int, int, str], None]
MAX_PBO_PARTITIONS = 16

METRIC_BASES = {
    "total_return": "marked equity at bar closes",
    "max_drawdown": "marked equity at bar closes",
    "sharpe_ratio": "daily returns of marked equity, annualised with 365 days",
    "sortino_ratio": "daily returns of marked equity, annualised with 365 days",
    "value_at_risk_95": "daily returns of marked equity",
    "expected_shortfall_95": "daily returns of marked equity",
    "stability_score": "100 x R^2 of a least-squares line through log daily equity against time (0-100)",
    "trades": "closed trades",
    "win_rate": "closed trades, net P&L > 0",
}


# ------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class WalkForwardOptions:
    """How to run the walk-forward optimisation (window lengths ``None``: see ``default_windows``)."""

    trials: int = 100
    is_days: float | None = None
    oos_days: float | None = None
    anchored: bool = False
    objective: str = "sharpe"
    min_trades: int = 10
    scheduler: str | None = None
    storage: str | None = None
    workers: int | None = None
    seed: int = 0
    space: dict[str, tuple[float, float]] | None = None


@dataclass(frozen=True)
class AnalysisOptions:
    """Which sections of the analysis to run, and with what."""

    generate_charts: bool
    stress_test: bool
    monte_carlo: int
    walk_forward: bool
    validate: bool
    permutations: int
    wf: WalkForwardOptions
    walk_forward_asked: bool = False

    def validate_turned_on(self) -> list[str]:
        """The sections ``--validate`` switched on."""
        on = ["validation scorecard", "overfitting panel (PBO, deflated Sharpe, out-of-sample PSR)"]
        if not self.walk_forward_asked:
            on.insert(0, "walk-forward optimisation")
        return on

    def validate_left_off(self) -> list[str]:
        """The sections ``--validate`` would use that were switched off, and what that costs."""
        return [] if self.stress_test else ["stress tests (--no-stress-test): the stress gate will be N/A"]


def default_windows(span_days: float) -> tuple[float, float]:
    """365 / 90 days, or half / an eighth of a period shorter than two years."""
    if span_days >= 730 or span_days <= 0:
        return 365.0, 90.0
    return float(max(round(span_days / 2), 1)), float(max(round(span_days / 8), 1))


def walk_forward_windows(opts: WalkForwardOptions, span_days: float) -> tuple[float, float]:
    """In-sample and out-of-sample window lengths in days; a bad objective is a ConfigError."""
    from autotrader.validation.walkforward import OBJECTIVES

    if opts.objective not in OBJECTIVES:
        from autotrader.domain.errors import ConfigError

        raise ConfigError(f"--objective {opts.objective!r}: choose {', '.join(OBJECTIVES)}")
    default_is, default_oos = default_windows(span_days)
    return opts.is_days or default_is, opts.oos_days or default_oos


def run_walk_forward_with(
    config: BacktestConfig,
    store: CandleStore,
    opts: WalkForwardOptions,
    span_days: float,
    on_window: Callable[[Any, int, int], None] | None = None,
    status: Callable[[str], None] | None = None,
) -> WalkForwardResult:
    """The walk-forward optimisation of ``config`` with ``opts`` (windows from ``walk_forward_windows``)."""
    from autotrader.validation.walkforward import run_walk_forward

    is_days, oos_days = walk_forward_windows(opts, span_days)
    return run_walk_forward(
        config, store, is_days=is_days, oos_days=oos_days, anchored=opts.anchored, n_trials=opts.trials,
        objective=opts.objective,  # type: ignore[arg-type]
        min_trades=opts.min_trades, seed=opts.seed, search_space_overrides=opts.space, workers=opts.workers,
        scheduler=opts.scheduler, storage=opts.storage, progress=on_window, status=status,
    )  # fmt: skip


def saved_config(doc: Mapping[str, Any], source: Path | str) -> BacktestConfig:
    """The configuration a saved backtest ran with; an invalid one is a DataError naming ``source``."""
    from pydantic import ValidationError

    from autotrader.backtest.runner import BacktestConfig
    from autotrader.domain.errors import DataError

    try:
        return BacktestConfig.model_validate(doc["config"])
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise DataError(f"{source}: the saved configuration is not valid ({where}: {first['msg']})") from None


# ------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class OverfittingPanel:
    """PSR of the backtest, deflated Sharpe and PSR of the walk-forward, PBO and the permutation test.

    A figure is ``None`` when it could not be computed; its ``*_reason`` then says why. ``detail``
    holds every figure with its basis and per-window rows, as saved in ``analysis.json``.
    """

    psr_backtest: float | None
    backtest_days: int
    dsr: float | None
    psr_oos: float | None
    pbo: float | None
    permutation_p_value: float | None
    detail: Mapping[str, Any]

    @property
    def dsr_reason(self) -> str | None:
        """Why there is no deflated Sharpe ratio."""
        return self.detail.get("dsr_reason")

    @property
    def psr_oos_reason(self) -> str | None:
        """Why there is no out-of-sample PSR."""
        return self.detail.get("psr_oos_reason", self.detail.get("dsr_reason"))

    @property
    def pbo_reason(self) -> str | None:
        """Why there is no PBO."""
        return self.detail.get("pbo_reason")

    def to_dict(self) -> dict[str, Any]:
        """The panel as saved in ``analysis.json``."""
        return {k: v for k, v in self.detail.items() if not k.startswith("_")}


@dataclass(frozen=True)
class BacktestAnalysis:
    """What an analysis of a saved backtest found: one field per section, ``None`` when it did not run."""

    validate: Mapping[str, list[str]] | None = None
    metric_bases: Mapping[str, str] | None = None
    stress: StressReport | None = None
    monte_carlo: MonteCarloReport | None = None
    walk_forward: WalkForwardResult | None = None
    overfitting: OverfittingPanel | None = None
    scorecard: Scorecard | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``analysis.json`` payload: every section that ran."""
        out: dict[str, Any] = {}
        if self.validate is not None:
            out["validate"] = dict(self.validate)
        if self.metric_bases is not None:
            out["metric_bases"] = dict(self.metric_bases)
        if self.stress is not None:
            out["stress"] = self.stress.to_dict()
        if self.monte_carlo is not None:
            out["monte_carlo"] = self.monte_carlo.to_dict()
        if self.walk_forward is not None:
            out["walk_forward"] = self.walk_forward.to_dict()
        if self.overfitting is not None:
            out["overfitting"] = self.overfitting.to_dict()
        if self.scorecard is not None:
            out["scorecard"] = self.scorecard.to_dict()
        return out


# ------------------------------------------------------------------------------------------- analyzer


@dataclass
class BacktestAnalyzer:
    """Runs the sections of one analysis of a saved backtest; ``result()`` is what they found.

    Each section method computes and returns its figures (raising ``AutoTraderError`` when it
    cannot run, so the caller can say why and go on with the next). ``open_store`` is called once,
    the first time a section needs candles; ``close`` closes that store.
    """

    doc: Mapping[str, Any]
    config: BacktestConfig
    options: AnalysisOptions
    open_store: Callable[[], CandleStore]
    cache_dir: Path | None = None
    _store: CandleStore | None = None
    _sections: dict[str, Any] = field(default_factory=dict)
    _mc_error: Exception | None = None

    @property
    def store(self) -> CandleStore:
        """The candle store, opened on first use."""
        if self._store is None:
            self._store = self.open_store()
        return self._store

    def close(self) -> None:
        """Close the candle store if a section opened it."""
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def span_days(self) -> float:
        """Length of the saved backtest's period in days (0 when unknown)."""
        return float(self.doc.get("period", {}).get("days") or 0)

    def validate(self) -> Mapping[str, list[str]]:
        """What ``--validate`` switched on and what was left off as asked."""
        self._sections["validate"] = {
            "turned_on": self.options.validate_turned_on(),
            "left_off": self.options.validate_left_off(),
        }
        return self._sections["validate"]

    def metrics(self) -> Mapping[str, Any]:
        """The saved summary figures (their bases are ``METRIC_BASES``)."""
        self._sections["metric_bases"] = METRIC_BASES
        return self.doc["summary"]

    @property
    def monte_carlo_pending(self) -> bool:
        """True until ``monte_carlo`` has run (or failed) once."""
        return "monte_carlo" not in self._sections and self._mc_error is None

    def monte_carlo(self) -> MonteCarloReport:
        """Monte Carlo bands of the saved trades and days, computed once (a failure is raised again)."""
        from autotrader.domain.errors import AutoTraderError
        from autotrader.validation.montecarlo import monte_carlo_report

        if self._mc_error is not None:
            raise self._mc_error
        if "monte_carlo" not in self._sections:
            try:
                self._sections["monte_carlo"] = monte_carlo_report(
                    self.doc, n_simulations=self.options.monte_carlo, seed=self.options.wf.seed
                )
            except AutoTraderError as e:
                self._mc_error = e
                raise
        return self._sections["monte_carlo"]

    def stress(self, progress: Advance | None = None) -> StressReport:
        """The saved configuration re-run under the ten stress scenarios."""
        from autotrader.validation.stress import run_stress_tests

        report = run_stress_tests(self.config, self.store, cache_dir=self.cache_dir, progress=progress)
        self._sections["stress"] = report
        return report

    def walk_forward(
        self, on_window: Callable[[Any, int, int], None] | None = None, status: Callable[[str], None] | None = None
    ) -> WalkForwardResult:
        """The walk-forward optimisation of the saved configuration over the backtest's period."""
        result = run_walk_forward_with(self.config, self.store, self.options.wf, self.span_days, on_window, status)
        self._sections["walk_forward"] = result
        return result

    def overfitting(self) -> OverfittingPanel:
        """The overfitting panel (see the module docstring)."""
        panel = overfitting_panel(
            self.doc, self._sections.get("walk_forward"), self.options.walk_forward, self.permutation
        )
        self._sections["overfitting"] = panel
        return panel

    def permutation(self) -> dict[str, Any]:
        """The permutation test of the trades' timing, or why it could not run."""
        from autotrader.backtest.session import load_backtest_data
        from autotrader.domain.errors import AutoTraderError

        trades = self.doc.get("trades") or []
        if not trades:
            return {"permutation": None, "permutation_reason": "the backtest made no trades"}
        try:
            data = load_backtest_data(self.store, self.config).data
        except AutoTraderError as e:
            return {"permutation": None, "permutation_reason": f"cannot load the candles: {e}"}
        return permutation_of_trades(trades, data, self.options.permutations, self.options.wf.seed)

    def scorecard(self) -> Scorecard:
        """The validation scorecard on the out-of-sample figures (in-sample when no walk-forward ran)."""
        from autotrader.validation.scorecard import build_scorecard

        figures, reasons = scorecard_figures(
            self.doc,
            self._sections.get("walk_forward"),
            self._sections.get("stress"),
            self._sections.get("overfitting"),
            stress_asked=self.options.stress_test,
        )
        card = build_scorecard(figures, reasons)
        self._sections["scorecard"] = card
        return card

    def result(self) -> BacktestAnalysis:
        """What the sections that ran found."""
        return BacktestAnalysis(**self._sections)


# ------------------------------------------------------------------------------------------- overfitting


def overfitting_panel(
    doc: Mapping[str, Any],
    wf: WalkForwardResult | None,
    walk_forward_asked: bool,
    permutation: Callable[[], dict[str, Any]],
) -> OverfittingPanel:
    """PSR of the backtest, DSR and PSR of the walk-forward OOS record, PBO, and ``permutation()``."""
    import numpy as np

    from autotrader.analytics import metrics
    from autotrader.validation import overfitting as of

    out: dict[str, Any] = {}
    day_equity = np.asarray(doc["equity_curve"]["daily"]["equity"], dtype=np.float64)
    r = metrics.daily_returns(day_equity)
    out["psr_backtest"] = finite_or_none(of.probabilistic_sharpe_ratio(r)) if r.size >= 2 else None
    out["backtest_days"] = int(r.size)
    if wf is None:
        why = (
            "the walk-forward optimisation did not run (see above): no trials to count"
            if walk_forward_asked
            else "no optimisation trials were run (add --walk-forward)"
        )
        out["dsr"] = out["pbo"] = out["psr_oos"] = None
        out["dsr_reason"] = out["pbo_reason"] = out["psr_oos_reason"] = why
    else:
        out.update(deflated_sharpe_of_walk_forward(wf))
        out.update(pbo(wf))
    out.update(permutation())
    perm = out.get("permutation")
    return OverfittingPanel(
        psr_backtest=out["psr_backtest"],
        backtest_days=out["backtest_days"],
        dsr=out.get("dsr"),
        psr_oos=out.get("psr_oos"),
        pbo=out.get("pbo"),
        permutation_p_value=None if not perm else perm.get("p_value"),
        detail=out,
    )


def deflated_sharpe_of_walk_forward(wf: WalkForwardResult) -> dict[str, Any]:
    """DSR per window (the in-sample winner, that window's trials) and PSR of the stitched OOS record.

    The deflated Sharpe is applied where a selection was made: each window's optimiser picked
    its best of ``N`` trials on the in-sample days, so the winner's in-sample Sharpe is deflated
    by that window's ``N`` and the variance of that window's trial Sharpe ratios. The stitched
    out-of-sample record was not selected as a best of anything: its PSR against 0 (no second
    selection penalty) says whether it shows skill.
    """
    import numpy as np

    from autotrader.domain.errors import AutoTraderError
    from autotrader.validation import overfitting as of

    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    for w in wf.windows:
        k = w.window.index + 1
        if w.best_trial not in w.trial_numbers or w.trial_returns.ndim != 2:
            reasons.append(f"window {k}: the winner's in-sample returns were not kept")
            continue
        try:
            d = of.deflated_sharpe_of_selection(w.trial_returns, w.trial_numbers.index(w.best_trial))
        except AutoTraderError as e:
            reasons.append(f"window {k}: {e}")
            continue
        rows.append({"window": k, "best_trial": w.best_trial, "dsr": finite_or_none(d.dsr),
                     "psr": finite_or_none(d.psr), "n_trials": d.n_trials, "n_obs": d.n_obs,
                     "sharpe_annualised": finite_or_none(d.sharpe_annualised),
                     "benchmark_sharpe_annualised": finite_or_none(d.benchmark_sharpe_annualised),
                     "sharpe_variance": d.sharpe_variance, "skewness": finite_or_none(d.skewness),
                     "kurtosis": finite_or_none(d.kurtosis)})  # fmt: skip
    out: dict[str, Any] = {"dsr_basis": "per walk-forward window: the in-sample winner's daily returns, deflated "
                           "by that window's trial count and the variance of its trials' Sharpe ratios"}  # fmt: skip
    values = [r["dsr"] for r in rows if r["dsr"] is not None]
    if values:
        out.update({"dsr": float(np.median(values)), "dsr_min": min(values), "dsr_max": max(values),
                    "dsr_windows": rows, "dsr_skipped": reasons})  # fmt: skip
    else:
        out.update({"dsr": None, "dsr_reason": "; ".join(reasons) or "no window to deflate", "dsr_windows": rows})
    oos = wf.oos_daily_returns()
    sr, skew, kurt, n = of.sharpe_moments(oos) if oos.size >= 2 else (float("nan"),) * 3 + (int(oos.size),)
    psr = of.psr_from_stats(sr, n, skew, kurt, 0.0)
    out["psr_oos"] = finite_or_none(psr)
    out["psr_oos_detail"] = {
        "basis": "stitched out-of-sample daily returns (marked equity) against a Sharpe ratio of 0; "
        "no selection penalty: this record was not picked as a best",
        "n_obs": n, "sharpe_annualised": finite_or_none(sr * math.sqrt(365.0)), "skewness": finite_or_none(skew),
        "kurtosis": finite_or_none(kurt),
    }  # fmt: skip
    if out["psr_oos"] is None:
        out["psr_oos_reason"] = f"undefined on {n} out-of-sample daily returns (flat or too short)"
    out["oos_days"] = n
    return out


def pbo(wf: WalkForwardResult) -> dict[str, Any]:
    """Probability of backtest overfitting: CSCV on each window's trial matrix, averaged over the windows."""
    from autotrader.domain.errors import AutoTraderError
    from autotrader.validation import overfitting as of

    rows = []
    reasons = []
    for w in wf.windows:
        m = w.trial_returns
        if m.ndim != 2 or m.shape[1] < 2:
            reasons.append(f"window {w.window.index + 1}: fewer than 2 trials")
            continue
        s = min(MAX_PBO_PARTITIONS, (m.shape[0] // 4) // 2 * 2)
        if s < 2:
            reasons.append(f"window {w.window.index + 1}: too few days")
            continue
        try:
            res = of.probability_of_backtest_overfitting(m, n_partitions=s)
        except AutoTraderError as e:
            reasons.append(f"window {w.window.index + 1}: {e}")
            continue
        rows.append({"window": w.window.index + 1, "pbo": res.pbo, "partitions": s,
                     "combinations": res.n_combinations, "trials": res.n_trials,
                     "prob_oos_loss": res.prob_oos_loss, "slope": finite_or_none(res.slope),
                     "n_flat_scores": res.n_flat_scores, "flat_trials": len(res.flat_trials)})  # fmt: skip
    if not rows:
        return {"pbo": None, "pbo_reason": "; ".join(reasons) or "no window to test"}
    values = [row["pbo"] for row in rows]
    return {
        "pbo": sum(values) / len(values),
        "pbo_min": min(values),
        "pbo_max": max(values),
        "pbo_windows": rows,
        "pbo_skipped": reasons,
    }


def permutation_of_trades(trades: list[dict[str, Any]], data: Any, n_permutations: int, seed: int) -> dict[str, Any]:
    """Permutation test of the trades' positions (``positions_from_trades``) against open-to-open returns."""
    import numpy as np

    from autotrader.domain.errors import AutoTraderError
    from autotrader.validation.overfitting import permutation_test

    pos = positions_from_trades(trades, data.ts, data.symbols)
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.zeros_like(pos)
        ret[:-1] = data.open[1:] / data.open[:-1] - 1.0
    ret[~np.isfinite(ret)] = 0.0
    try:
        res = permutation_test(pos, ret, n_permutations=n_permutations, seed=seed)
    except AutoTraderError as e:
        return {"permutation": None, "permutation_reason": str(e)}
    basis = ("gross unit exposure: each open trade holds 1/symbols of equity, no costs, not the strategy's "
             "sizing; positions rebuilt from the trades, open-to-open bar returns")  # fmt: skip
    return {"permutation": {**res.to_dict(), "basis": basis}}


def positions_from_trades(trades: list[dict[str, Any]], ts: Any, symbols: tuple[str, ...]) -> Any:
    """Per-bar exposure (±1/len(symbols) per open trade) for open-to-open bar returns.

    A trade filled at bar e's open is exposed from bar e. A signal or kill-switch exit fills at
    bar x's open, so exposure ends before bar x; a stop, target or liquidation fills INSIDE bar
    x, so the trade stays exposed to that whole bar (ending it earlier would hide the very move
    that stopped it: a lookahead that makes any stop-loss strategy look skilful).
    """
    import numpy as np

    col = {s: j for j, s in enumerate(symbols)}
    m = len(symbols)
    pos = np.zeros((len(ts), m))
    for t in trades:
        j = col.get(t["symbol"])
        if j is None:
            continue
        lo, hi = np.searchsorted(ts, [_iso_ms(t["entry_time"]), _iso_ms(t["exit_time"])])
        if t.get("exit_reason") not in ("signal", "kill_switch"):
            hi += 1
        pos[lo:hi, j] += (1.0 if t["side"] == "long" else -1.0) / m
    return pos


def _iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


# ------------------------------------------------------------------------------------------- scorecard


def scorecard_figures(
    doc: Mapping[str, Any],
    wf: WalkForwardResult | None,
    stress: StressReport | None,
    overfitting: OverfittingPanel | None,
    *,
    stress_asked: bool,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The scorecard's figures (out-of-sample when a walk-forward ran) and why each missing one is missing."""
    figures: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    if wf is not None:
        s = wf.oos_summary
        figures["sample"] = "out_of_sample"
        acc = wf.oos_accuracy
        if acc is None:
            reasons["accuracy"] = "the strategy's signals have no forecast horizon (rule-based): nothing to score"
    else:
        s = doc["summary"]
        figures["sample"] = "in_sample"
        saved = s.get("signal_accuracy") or {}
        acc = saved.get("accuracy")
        if not saved:
            reasons["accuracy"] = "the strategy's signals have no forecast horizon"
    figures["accuracy"] = acc
    for key in ("profit_factor", "max_drawdown", "sharpe_ratio"):
        figures[key] = _figure(s.get(key))
    if stress is not None:
        figures["stress_survived"] = stress.survived
        figures["stress_scenarios"] = stress.total
    else:
        off = "the stress tests were switched off (--no-stress-test)"
        reasons["stress_survived"] = "the stress tests did not run" if stress_asked else off
    not_run = "the overfitting panel did not run"
    figures["deflated_sharpe"] = overfitting.dsr if overfitting is not None else None
    if figures["deflated_sharpe"] is None:
        reasons["deflated_sharpe"] = (overfitting.dsr_reason if overfitting is not None else None) or not_run
    figures["oos_psr"] = overfitting.psr_oos if overfitting is not None else None
    if figures["oos_psr"] is None:
        reasons["oos_psr"] = (overfitting.psr_oos_reason if overfitting is not None else None) or not_run
    figures["pbo"] = overfitting.pbo if overfitting is not None else None
    if figures["pbo"] is None:
        reasons["pbo"] = (overfitting.pbo_reason if overfitting is not None else None) or not_run
    return figures, reasons


def _figure(v: Any) -> float | None:
    if isinstance(v, str) and v in ("inf", "-inf"):
        return float(v)
    return None if v is None else float(v)
