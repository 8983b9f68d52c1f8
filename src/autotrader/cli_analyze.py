"""``autotrader analyze`` (validate a saved backtest) and ``autotrader optimize`` (walk-forward alone).

``analyze`` reads the JSON that ``autotrader backtest`` saved and prints, section by section:
the metrics summary, the charts it wrote, the stress tests, Monte Carlo bands, the walk-forward
optimisation, the overfitting panel and the validation scorecard. Sections that need a new run
re-run the saved configuration on the stored candles. A section that cannot run says why in one
line and the others still run; the exit code is then non-zero. Everything computed is also saved
as ``analysis.json`` in the output folder.

What the overfitting panel measures
-----------------------------------
* PSR of the backtest: its daily returns against a Sharpe ratio of 0.
* Deflated Sharpe ratio: the walk-forward's stitched out-of-sample daily returns, deflated by the
  number of parameter sets the optimiser actually evaluated over all windows
  (``WalkForwardResult.n_trials_run``) and the variance of their in-sample Sharpe ratios. The
  out-of-sample record was not itself selected, so this errs on the strict side. N/A without a
  walk-forward: the number of trials behind a saved backtest is not known.
* PBO: CSCV on each window's trial matrix (in-sample daily returns × trials), averaged over the
  windows (up to 16 partitions, fewer for short windows).
* Permutation test: the backtest's positions (rebuilt from its trades on the stored candles, each
  symbol weighted ``1 / symbols``) shuffled in blocks against the open-to-open returns.

The scorecard uses the walk-forward's out-of-sample figures; when the walk-forward cannot run it
falls back to the backtest's own figures and says they are in-sample.

Boolean options accept ``--flag``, ``--no-flag`` and ``--flag=true`` / ``--flag=false``.

Wire it into the main app with ``register(app)``. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperOption

if TYPE_CHECKING:
    from rich.console import Console

    from autotrader.backtest.runner import BacktestConfig
    from autotrader.config import Settings
    from autotrader.marketdata.store import CandleStore
    from autotrader.validation.montecarlo import MonteCarloReport
    from autotrader.validation.stress import StressReport
    from autotrader.validation.walkforward import WalkForwardResult

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_MAX_PARTITIONS = 16


class _BoolValueCommand(TyperCommand):
    """A command whose ``--flag/--no-flag`` options also accept ``--flag=true`` and ``--flag=false``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        flags: dict[str, tuple[str, str]] = {}
        for p in self.params:
            if isinstance(p, TyperOption) and p.is_flag and p.secondary_opts:
                for opt in p.opts:
                    flags[opt] = (opt, p.secondary_opts[0])
        rewritten: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                rewritten.extend(args[i:])
                break
            name, sep, value = arg.partition("=")
            if not (sep and name in flags):
                rewritten.append(arg)
            elif value.strip().lower() in _TRUE:
                rewritten.append(flags[name][0])
            elif value.strip().lower() in _FALSE:
                rewritten.append(flags[name][1])
            else:
                raise typer.BadParameter(f"{value!r} is not true or false", ctx=ctx, param_hint=f"'{name}'")
        return super().parse_args(ctx, rewritten)


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` and ``optimize`` commands to ``app``."""
    app.command("analyze", cls=_BoolValueCommand)(analyze)
    app.command("optimize", cls=_BoolValueCommand)(optimize)


# ------------------------------------------------------------------------------------------- options

TrialsOption = Annotated[int, typer.Option("--trials", min=1, help="Optuna trials per walk-forward window.")]
IsDaysOption = Annotated[
    float | None, typer.Option("--is-days", min=1, help="In-sample window length in days (default: see help).")
]
OosDaysOption = Annotated[float | None, typer.Option("--oos-days", min=1, help="Out-of-sample window length in days.")]
AnchoredOption = Annotated[
    bool, typer.Option("--anchored/--rolling", help="Anchored (growing) in-sample windows instead of rolling ones.")
]
ObjectiveOption = Annotated[str, typer.Option(help="sharpe, sortino, calmar or profit_factor (in-sample).")]
MinTradesOption = Annotated[
    int, typer.Option("--min-trades", min=0, help="In-sample trades below which a trial is penalised.")
]
SchedulerOption = Annotated[
    str | None, typer.Option(help="Dask scheduler, e.g. tcp://HOST:8786 (default: a local process pool).")
]
StorageOption = Annotated[
    str | None,
    typer.Option("--optuna-storage", help="Optuna storage URL shared by machines, e.g. postgresql+psycopg://..."),
]
WorkersOption = Annotated[
    int | None, typer.Option(min=1, help="Local worker processes (default: one per CPU; 1 = no pool).")
]
SeedOption = Annotated[int, typer.Option(min=0, help="Seed of the samplers and simulations.")]


@dataclass(frozen=True)
class _WalkForwardOptions:
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
class _AnalyzeOptions:
    generate_charts: bool
    stress_test: bool
    monte_carlo: int
    walk_forward: bool
    validate: bool
    permutations: int
    wf: _WalkForwardOptions


# ------------------------------------------------------------------------------------------- analyze


def analyze(
    backtest_file: Annotated[
        Path, typer.Option("--backtest-file", help="JSON saved by 'autotrader backtest' (results/backtest_*.json).")
    ],
    generate_charts: Annotated[
        bool, typer.Option("--generate-charts/--no-generate-charts", help="Write PNG charts and charts.html.")
    ] = True,
    stress_test: Annotated[
        bool, typer.Option("--stress-test/--no-stress-test", help="Re-run the strategy under ten stress scenarios.")
    ] = True,
    monte_carlo: Annotated[
        int, typer.Option("--monte-carlo", min=0, help="Monte Carlo simulations per method (0 skips).")
    ] = 10_000,
    walk_forward: Annotated[
        bool, typer.Option("--walk-forward/--no-walk-forward", help="Walk-forward optimisation of the strategy.")
    ] = False,
    validate: Annotated[
        bool,
        typer.Option(
            "--validate/--no-validate",
            help="Validation scorecard on out-of-sample figures (runs walk-forward and stress tests).",
        ),
    ] = False,
    output_dir: Annotated[
        Path | None, typer.Option(help="Folder for charts and analysis.json (default: <file>_analysis/).")
    ] = None,
    trials: TrialsOption = 100,
    is_days: IsDaysOption = None,
    oos_days: OosDaysOption = None,
    anchored: AnchoredOption = False,
    objective: ObjectiveOption = "sharpe",
    min_trades: MinTradesOption = 10,
    scheduler: SchedulerOption = None,
    optuna_storage: StorageOption = None,
    workers: WorkersOption = None,
    permutations: Annotated[int, typer.Option(min=1, help="Shuffles of the permutation test.")] = 1000,
    seed: SeedOption = 0,
) -> None:
    """Validate a saved backtest: metrics, charts, stress tests, Monte Carlo, walk-forward, overfitting.

    Walk-forward windows default to 365 in-sample / 90 out-of-sample days, or half / an eighth of
    the backtest's period when it is shorter than two years. '--validate' judges the seed's success
    criteria on out-of-sample figures, plus stress survival, deflated Sharpe and PBO.
    """
    from autotrader.analytics.report_data import load_report
    from autotrader.cli import _console, _settings

    doc = load_report(backtest_file)
    config = _saved_config(doc, backtest_file)
    out = output_dir if output_dir is not None else backtest_file.with_name(f"{backtest_file.stem}_analysis")
    opts = _AnalyzeOptions(
        generate_charts, stress_test, monte_carlo, walk_forward or validate, validate, permutations,
        _WalkForwardOptions(trials, is_days, oos_days, anchored, objective, min_trades, scheduler,
                            optuna_storage, workers, seed),
    )  # fmt: skip
    run = _Analysis(doc, config, opts, _console(), out, _settings())
    try:
        run.execute()
    finally:
        run.close()
    if run.failed:
        raise typer.Exit(1)


def _saved_config(doc: dict[str, Any], path: Path) -> BacktestConfig:
    from pydantic import ValidationError

    from autotrader.backtest.runner import BacktestConfig
    from autotrader.domain.errors import DataError

    try:
        return BacktestConfig.model_validate(doc["config"])
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise DataError(f"{path}: the saved configuration is not valid ({where}: {first['msg']})") from None


@dataclass
class _Analysis:
    """State of one ``analyze`` run: inputs, lazily opened store, results per section."""

    doc: dict[str, Any]
    config: BacktestConfig
    opts: _AnalyzeOptions
    console: Console
    out_dir: Path
    settings: Settings
    files: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    saved: dict[str, Any] = field(default_factory=dict)
    stress: StressReport | None = None
    wf: WalkForwardResult | None = None
    overfitting: dict[str, Any] = field(default_factory=dict)
    _store: CandleStore | None = None
    _mc: MonteCarloReport | None = None
    _mc_error: str | None = None

    def execute(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        o = self.opts
        sections: list[tuple[str, bool, Callable[[], None]]] = [
            ("Metrics summary", True, self.metrics_section),
            ("Charts", o.generate_charts, self.charts_section),
            ("Stress tests", o.stress_test or o.validate, self.stress_section),
            ("Monte Carlo", o.monte_carlo > 0, self.monte_carlo_section),
            ("Walk-forward optimisation", o.walk_forward, self.walk_forward_section),
            ("Overfitting", True, self.overfitting_section),
            ("Validation scorecard", o.validate, self.scorecard_section),
        ]
        for title, wanted, body in sections:
            if wanted:
                self.section(title, body)
        self.files.append(_write_json(self.out_dir / "analysis.json", self.saved))
        self.console.print("Files written:")
        for path in self.files:
            self.console.print(f"  {path}")

    def section(self, title: str, body: Callable[[], None]) -> None:
        from autotrader.domain.errors import AutoTraderError

        self.console.rule(f"[bold]{title}[/bold]")
        try:
            body()
        except ImportError as e:
            self.fail(title, f"unavailable in this installation ({e})")
        except AutoTraderError as e:
            self.fail(title, f"could not run: {e}")

    def fail(self, title: str, message: str) -> None:
        from rich.markup import escape

        self.failed.append(title)
        self.console.print(f"[red]{title} {escape(message)}[/red]")

    @property
    def store(self) -> CandleStore:
        if self._store is None:
            from autotrader.cli import _store

            self._store = _store(self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------------- sections

    def metrics_section(self) -> None:
        _render_metrics(self.console, self.doc)

    def monte_carlo_report(self) -> MonteCarloReport | None:
        if self._mc is None and self._mc_error is None and self.opts.monte_carlo > 0:
            from autotrader.domain.errors import AutoTraderError
            from autotrader.validation.montecarlo import monte_carlo_report

            try:
                with self.console.status(f"Running {self.opts.monte_carlo:,} Monte Carlo simulations per method..."):
                    self._mc = monte_carlo_report(self.doc, n_simulations=self.opts.monte_carlo, seed=self.opts.wf.seed)
            except AutoTraderError as e:
                self._mc_error = str(e)
        return self._mc

    def charts_section(self) -> None:
        from autotrader.analytics.charts import write_charts

        fan = None
        try:
            fan = _fan_input(self.monte_carlo_report())
        except ImportError:
            self.console.print("Monte Carlo is unavailable: the fan chart is left out.")
        with self.console.status("Drawing charts..."):
            written = write_charts(self.doc, self.out_dir / "charts", monte_carlo=fan)
        self.files.extend(written)
        self.console.print(f"{len(written)} chart files in {self.out_dir / 'charts'}:")
        for path in written:
            self.console.print(f"  {path.name}")

    def stress_section(self) -> None:
        from autotrader.validation.stress import run_stress_tests

        with self.console.status("Re-running the strategy under 10 stress scenarios..."):
            self.stress = run_stress_tests(self.config, self.store, cache_dir=self.settings.cache_dir)
        self.saved["stress"] = self.stress.to_dict()
        _render_stress(self.console, self.stress)

    def monte_carlo_section(self) -> None:
        from autotrader.domain.errors import DataError

        report = self.monte_carlo_report()
        if report is None:
            raise DataError(self._mc_error or "no result")
        self.saved["monte_carlo"] = report.to_dict()
        _render_monte_carlo(self.console, report)

    def walk_forward_section(self) -> None:
        span = float(self.doc.get("period", {}).get("days") or 0)
        self.wf = _run_walk_forward(self.console, self.config, self.store, self.opts.wf, span)
        self.saved["walk_forward"] = self.wf.to_dict()
        _render_walk_forward(self.console, self.wf)

    def overfitting_section(self) -> None:
        self.overfitting = _overfitting(self)
        self.saved["overfitting"] = {k: v for k, v in self.overfitting.items() if not k.startswith("_")}
        _render_overfitting(self.console, self.overfitting)

    def scorecard_section(self) -> None:
        from autotrader.validation.scorecard import build_scorecard

        figures, reasons = _scorecard_figures(self)
        card = build_scorecard(figures, reasons)
        self.saved["scorecard"] = card.to_dict()
        _render_scorecard(self.console, card)


# ------------------------------------------------------------------------------------------- optimize


def optimize(
    strategy: Annotated[str, typer.Option(help="Strategy to optimise (its parameters with ranges are searched).")] = (
        "sma_cross"
    ),
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols.")] = "BTCUSDT,ETHUSDT",
    period: Annotated[str, typer.Option(help="FROM:TO dates (UTC, inclusive).")] = "2020-01-01:2024-12-31",
    timeframe: Annotated[str, typer.Option(help="Bar length of the stored candles to use.")] = "1h",
    exchange: Annotated[str, typer.Option(help="Exchange whose stored candles to use.")] = "binance",
    initial_capital: Annotated[float, typer.Option(help="Starting capital in USDT.")] = 10_000.0,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Fixed strategy parameter key=value (repeatable).")
    ] = None,
    space: Annotated[
        list[str] | None,
        typer.Option("--space", help="Search only these parameters, name=LOW:HIGH (repeatable)."),
    ] = None,
    risk: Annotated[str, typer.Option(help="conservative, medium or aggressive.")] = "medium",
    trials: TrialsOption = 100,
    is_days: IsDaysOption = None,
    oos_days: OosDaysOption = None,
    anchored: AnchoredOption = False,
    objective: ObjectiveOption = "sharpe",
    min_trades: MinTradesOption = 10,
    scheduler: SchedulerOption = None,
    optuna_storage: StorageOption = None,
    workers: WorkersOption = None,
    seed: SeedOption = 0,
    output: Annotated[
        Path | None, typer.Option(help="JSON result path (default results/walkforward_<strategy>_<from>_<to>.json).")
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="Instead of the walk-forward: backtest every combination, name=LOW:HIGH:STEP or name=V1,V2 "
            "(repeatable), in one compiled parallel pass; prints the best by --objective, saves all as JSON.",
        ),
    ] = None,
) -> None:
    """Walk-forward optimisation: tune on each in-sample window with Optuna, trade the next window.

    Prints every window, the stitched out-of-sample record, walk-forward efficiency and parameter
    stability, and saves them as JSON. Windows default to 365 / 90 days (half / an eighth of a
    period shorter than two years). With ``--grid`` it sweeps a full grid over the whole period instead.
    """
    from pydantic import ValidationError

    from autotrader.backtest.runner import BacktestConfig
    from autotrader.cli import _console, _parse_params, _parse_period, _settings, _store, _validation_error
    from autotrader.domain.candles import parse_date_ms

    start, end = _parse_period(period)
    try:
        config = BacktestConfig(
            symbols=tuple(symbols.split(",")), exchange=exchange, timeframe=timeframe, start=start, end=end,
            initial_capital=initial_capital, strategy=strategy, params=_parse_params(param or []),
            risk_level=risk,  # type: ignore[arg-type]
        )  # fmt: skip
    except ValidationError as e:
        raise _validation_error(e) from None
    config.limits()
    if grid:
        from autotrader.cli_sweep import run_grid_sweep

        run_grid_sweep(config, grid, objective, output)
        return
    opts = _WalkForwardOptions(
        trials, is_days, oos_days, anchored, objective, min_trades, scheduler, optuna_storage, workers, seed,
        _parse_space(space or []),
    )  # fmt: skip
    console = _console()
    store = _store(_settings())
    try:
        span = (config.end_ms - parse_date_ms(start)) / 86_400_000
        result = _run_walk_forward(console, config, store, opts, span)
    finally:
        store.close()
    _render_walk_forward(console, result)
    stem = f"walkforward_{strategy}_{start.replace('-', '')[:8]}_{end.replace('-', '')[:8]}"
    path = _write_json(output or Path("results") / f"{stem}.json", result.to_dict())
    console.print(f"Wrote: {path}")


def _parse_space(items: Sequence[str]) -> dict[str, tuple[float, float]] | None:
    from autotrader.domain.errors import ConfigError

    out: dict[str, tuple[float, float]] = {}
    for item in items:
        name, sep, rng = item.partition("=")
        low, sep2, high = rng.partition(":")
        try:
            if not (sep and sep2 and name.strip()):
                raise ValueError(item)
            out[name.strip()] = (float(low), float(high))
        except ValueError:
            raise ConfigError(f"--space {item!r}: expected name=LOW:HIGH, e.g. fast=5:50") from None
    return out or None


# ------------------------------------------------------------------------------------------- walk-forward


def _default_windows(span_days: float) -> tuple[float, float]:
    """365 / 90 days, or half / an eighth of a period shorter than two years."""
    if span_days >= 730 or span_days <= 0:
        return 365.0, 90.0
    return float(max(round(span_days / 2), 1)), float(max(round(span_days / 8), 1))


def _run_walk_forward(
    console: Console, config: BacktestConfig, store: CandleStore, opts: _WalkForwardOptions, span_days: float
) -> WalkForwardResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from autotrader.validation.walkforward import OBJECTIVES, run_walk_forward

    if opts.objective not in OBJECTIVES:
        from autotrader.domain.errors import ConfigError

        raise ConfigError(f"--objective {opts.objective!r}: choose {', '.join(OBJECTIVES)}")
    default_is, default_oos = _default_windows(span_days)
    is_days = opts.is_days or default_is
    oos_days = opts.oos_days or default_oos
    where = opts.scheduler or f"{opts.workers or 'all'} local CPUs"
    console.print(
        f"{config.strategy}: {opts.trials} trials per window, {'anchored' if opts.anchored else 'rolling'} windows of "
        f"{is_days:g} in-sample / {oos_days:g} out-of-sample days, objective {opts.objective}, on {where}"
    )
    # no auto-refresh thread, so the process pool may fork this process safely
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, auto_refresh=False, transient=True) as progress:
        task = progress.add_task("Walk-forward windows", total=None)
        progress.refresh()

        def advance(_: Any, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
            progress.refresh()

        return run_walk_forward(
            config, store, is_days=is_days, oos_days=oos_days, anchored=opts.anchored, n_trials=opts.trials,
            objective=opts.objective,  # type: ignore[arg-type]
            min_trades=opts.min_trades, seed=opts.seed, search_space_overrides=opts.space, workers=opts.workers,
            scheduler=opts.scheduler, storage=opts.storage, progress=advance,
        )  # fmt: skip


# ------------------------------------------------------------------------------------------- overfitting


def _overfitting(a: _Analysis) -> dict[str, Any]:
    """PSR of the backtest, DSR and PSR of the walk-forward OOS record, PBO, permutation test."""
    import numpy as np

    from autotrader.analytics import metrics
    from autotrader.validation import overfitting as of

    out: dict[str, Any] = {}
    day_equity = np.asarray(a.doc["equity_curve"]["daily"]["equity"], dtype=np.float64)
    r = metrics.daily_returns(day_equity)
    out["psr_backtest"] = _finite(of.probabilistic_sharpe_ratio(r)) if r.size >= 2 else None
    out["backtest_days"] = int(r.size)
    wf = a.wf
    if wf is None:
        why = (
            "the walk-forward optimisation did not run (see above): no trials to count"
            if a.opts.walk_forward
            else "no optimisation trials were run (add --walk-forward)"
        )
        out["dsr"] = out["pbo"] = None
        out["dsr_reason"] = out["pbo_reason"] = why
    else:
        out.update(_deflated_sharpe(wf))
        out.update(_pbo(wf))
    out.update(_permutation(a))
    return out


def _deflated_sharpe(wf: WalkForwardResult) -> dict[str, Any]:
    from autotrader.domain.errors import AutoTraderError
    from autotrader.validation import overfitting as of

    sharpes = wf.trial_sharpes()
    oos = wf.oos_daily_returns()
    try:
        dsr = of.deflated_sharpe_ratio(oos, sharpes, n_trials=max(wf.n_trials_run, sharpes.size))
    except AutoTraderError as e:
        return {"dsr": None, "dsr_reason": str(e)}
    return {"dsr": dsr.to_dict(), "psr_oos": _finite(dsr.psr), "oos_days": int(oos.size)}


def _pbo(wf: WalkForwardResult) -> dict[str, Any]:
    from autotrader.domain.errors import AutoTraderError
    from autotrader.validation import overfitting as of

    rows = []
    reasons = []
    for w in wf.windows:
        m = w.trial_returns
        if m.ndim != 2 or m.shape[1] < 2:
            reasons.append(f"window {w.window.index + 1}: fewer than 2 trials")
            continue
        s = min(_MAX_PARTITIONS, (m.shape[0] // 4) // 2 * 2)
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
                     "prob_oos_loss": res.prob_oos_loss, "slope": _finite(res.slope)})  # fmt: skip
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


def _permutation(a: _Analysis) -> dict[str, Any]:
    import numpy as np

    from autotrader.backtest.session import load_backtest_data
    from autotrader.domain.errors import AutoTraderError
    from autotrader.validation.overfitting import permutation_test

    trades = a.doc.get("trades") or []
    if not trades:
        return {"permutation": None, "permutation_reason": "the backtest made no trades"}
    try:
        data = load_backtest_data(a.store, a.config).data
    except AutoTraderError as e:
        return {"permutation": None, "permutation_reason": f"cannot load the candles: {e}"}
    pos = positions_from_trades(trades, data.ts, data.symbols)
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.zeros_like(pos)
        ret[:-1] = data.open[1:] / data.open[:-1] - 1.0
    ret[~np.isfinite(ret)] = 0.0
    try:
        res = permutation_test(pos, ret, n_permutations=a.opts.permutations, seed=a.opts.wf.seed)
    except AutoTraderError as e:
        return {"permutation": None, "permutation_reason": str(e)}
    return {"permutation": res.to_dict()}


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


def _scorecard_figures(a: _Analysis) -> tuple[dict[str, Any], dict[str, str]]:
    figures: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    wf = a.wf
    if wf is not None:
        s = wf.oos_summary
        figures["sample"] = "out_of_sample"
        acc = wf.oos_accuracy
        if acc is None:
            reasons["accuracy"] = "the strategy's signals have no forecast horizon (rule-based): nothing to score"
    else:
        s = a.doc["summary"]
        figures["sample"] = "in_sample"
        saved = s.get("signal_accuracy") or {}
        acc = saved.get("accuracy")
        if not saved:
            reasons["accuracy"] = "the strategy's signals have no forecast horizon"
    figures["accuracy"] = acc
    for key in ("profit_factor", "max_drawdown", "sharpe_ratio"):
        figures[key] = _figure(s.get(key))
    if a.stress is not None:
        figures["stress_survived"] = a.stress.survived
        figures["stress_scenarios"] = a.stress.total
    else:
        reasons["stress_survived"] = "the stress tests did not run"
    dsr = a.overfitting.get("dsr")
    figures["deflated_sharpe"] = dsr["dsr"] if dsr else None
    if not dsr:
        reasons["deflated_sharpe"] = a.overfitting.get("dsr_reason", "the overfitting panel did not run")
    figures["pbo"] = a.overfitting.get("pbo")
    if figures["pbo"] is None:
        reasons["pbo"] = a.overfitting.get("pbo_reason", "the overfitting panel did not run")
    return figures, reasons


def _figure(v: Any) -> float | None:
    if isinstance(v, str) and v in ("inf", "-inf"):
        return float(v)
    return None if v is None else float(v)


# ------------------------------------------------------------------------------------------- rendering


def _pct(v: Any, digits: int = 2, sign: bool = True) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{float(v) * 100:{'+' if sign else ''}.{digits}f}%"


def _share(v: Any) -> str:
    return _pct(v, 1, sign=False)


def _num(v: Any, digits: int = 2) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if math.isinf(float(v)):
        return "inf" if v > 0 else "-inf"
    return f"{float(v):,.{digits}f}"


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (1,)) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, title_style="bold", min_width=len(title) + 2)
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i in numeric else "left")
    for row in rows:
        table.add_row(*row)
    return table


def _render_metrics(console: Console, doc: dict[str, Any]) -> None:
    s, cfg, p = doc["summary"], doc["config"], doc["period"]
    console.print(
        f"{cfg['strategy']} on {', '.join(cfg['symbols'])} ({cfg['exchange']} {cfg['timeframe']}), "
        f"{p['first_bar'][:10]} .. {p['last_bar'][:10]}, {p['bars']:,} bars"
    )
    rows = [
        ("Total return", _pct(s.get("total_return"))),
        ("CAGR", _pct(s.get("cagr"))),
        ("Buy & hold return", _pct(s.get("buy_and_hold_return"))),
        ("Sharpe ratio", _num(s.get("sharpe_ratio"))),
        ("Sortino ratio", _num(s.get("sortino_ratio"))),
        ("Calmar ratio", _num(s.get("calmar_ratio"))),
        ("Max drawdown", _pct(s.get("max_drawdown"))),
        ("Trades", _num(s.get("trades"), 0)),
        ("Win rate", _pct(s.get("win_rate"), 1, sign=False)),
        ("Profit factor", _num(s.get("profit_factor"))),
        ("VaR 95% (daily)", _pct(s.get("value_at_risk_95"))),
        ("Expected shortfall 95% (daily)", _pct(s.get("expected_shortfall_95"))),
        ("Stability score", _num(s.get("stability_score"), 0)),
    ]
    acc = s.get("signal_accuracy")
    if acc:
        rows.append(("Signal accuracy", f"{_pct(acc.get('accuracy'), 1, sign=False)} of {acc.get('evaluated')}"))
    console.print(_table("Backtest (in-sample) metrics", ("metric", "value"), rows))


def _fan_input(report: MonteCarloReport | None) -> dict[str, Any] | None:
    if report is None or not report.results:
        return None
    by_method = {r.method: r for r in report.results}
    result = by_method.get("trade_bootstrap") or report.results[0]
    fan = result.fan
    unit = "day" if result.method == "daily_block_bootstrap" else "trade #"
    return {
        "bands": {p: list(row) for p, row in zip(fan.percentiles, fan.equity, strict=True)},
        "x": list(fan.step),
        "actual": list(fan.observed),
        "x_label": unit,
        "title": f"Monte Carlo ({result.method.replace('_', ' ')}, {result.n_simulations:,} paths)",
    }


def _render_stress(console: Console, report: StressReport) -> None:
    console.print(f"[bold]{report.summary_line}[/bold] (drawdown limit {report.drawdown_limit * 100:g}%)")
    style = {"survived": "green", "failed": "red", "n/a": "yellow"}
    rows = [
        (
            s.title, s.window, _pct(s.total_return), _pct(s.max_drawdown), "n/a" if s.trades is None else str(s.trades),
            f"[{style[s.status]}]{s.status.upper()}[/{style[s.status]}]", "" if s.survived else s.reason,
        )
        for s in report.scenarios
    ]  # fmt: skip
    columns = ("scenario", "window", "return", "max DD", "trades", "status", "reason")
    console.print(_table("Stress scenarios", columns, rows, numeric=(2, 3, 4)))
    for note in report.notes:
        console.print(f"note: {note}")


def _render_monte_carlo(console: Console, report: MonteCarloReport) -> None:
    for r in report.results:
        rows = []
        figures = (("total return", "total_return", r.total_return, _pct),
                   ("max drawdown", "max_drawdown", r.max_drawdown, _pct),
                   ("Sharpe ratio", "sharpe_ratio", r.sharpe_ratio, _num),
                   ("win rate", "win_rate", r.win_rate, _share))  # fmt: skip
        for name, key, band, fmt in figures:
            if band is not None:
                rows.append((name, fmt(band.p5), fmt(band.p50), fmt(band.p95), fmt(r.observed.get(key))))
        title = f"{r.method.replace('_', ' ')}: {r.n_simulations:,} simulations of {r.n_steps:,} steps"
        console.print(_table(title, ("figure", "5%", "50%", "95%", "backtest"), rows, numeric=(1, 2, 3, 4)))
        breach = "n/a" if r.prob_drawdown_breach is None else _pct(r.prob_drawdown_breach, 1, sign=False)
        limit = "" if r.drawdown_limit is None else f" {r.drawdown_limit * 100:g}%"
        console.print(
            f"P(loss) {_pct(r.prob_loss, 1, sign=False)}   P(drawdown beyond{limit}) {breach}   "
            f"P(ruin: equity below {r.ruin_fraction * 100:g}% of capital) {_pct(r.prob_ruin, 1, sign=False)}"
        )
    for method, reason in report.skipped.items():
        console.print(f"{method.replace('_', ' ')}: skipped ({reason})")


def _render_walk_forward(console: Console, wf: WalkForwardResult) -> None:
    first = wf.windows[0].window
    in_sample = (
        f"from {first.is_label[:10]} (anchored)" if wf.anchored else f"the {wf.is_days:g} days before each OOS window"
    )
    console.print(f"In-sample: {in_sample}; out-of-sample windows of {wf.oos_days:g} days.")
    rows = []
    for w in wf.windows:
        params = ", ".join(f"{k}={_num(v, 4) if isinstance(v, float) else v}" for k, v in w.best_params.items())
        rows.append((
            str(w.window.index + 1), w.window.oos_label, params, _pct(w.is_total_return),
            _pct(w.oos_total_return), _num(w.oos_summary.get("trades"), 0), _num(w.efficiency),
        ))  # fmt: skip
    columns = ("#", "out-of-sample", "best parameters", "IS return", "OOS return", "OOS trades", "WFE")
    title = f"Walk-forward windows (objective {wf.objective})"
    console.print(_table(title, columns, rows, numeric=(0, 3, 4, 5, 6)))
    console.print(
        f"[bold]Walk-forward efficiency: {_num(wf.efficiency)}[/bold] "
        f"(OOS annualised {_pct(wf.oos_annual_return)} / IS annualised {_pct(wf.is_annual_return)})"
    )
    stab = [(s.name, ", ".join(_num(v, 4 if v % 1 else 0) for v in s.values), _num(s.mean), _num(s.std), _num(s.cv))
            for s in wf.stability]  # fmt: skip
    columns = ("parameter", "best per window", "mean", "std", "CV")
    console.print(_table("Parameter stability", columns, stab, numeric=(2, 3, 4)))
    s = wf.oos_summary
    oos_rows = [
        ("Total return", _pct(s["total_return"])), ("CAGR", _pct(s["cagr"])),
        ("Sharpe ratio", _num(s["sharpe_ratio"])), ("Sortino ratio", _num(s["sortino_ratio"])),
        ("Max drawdown", _pct(s["max_drawdown"])), ("Trades", _num(s["trades"], 0)),
        ("Win rate", _pct(s["win_rate"], 1, sign=False)), ("Profit factor", _num(s["profit_factor"])),
    ]  # fmt: skip
    console.print(_table("Stitched out-of-sample record", ("metric", "value"), oos_rows))
    console.print(
        f"{wf.n_trials_run:,} parameter sets evaluated ({wf.n_invalid_trials:,} rejected by the strategy) "
        f"in {wf.elapsed_s:.1f} s on {wf.execution}"
    )
    for note in wf.notes:
        console.print(f"note: {note}")


def _render_overfitting(console: Console, o: dict[str, Any]) -> None:
    rows = [
        ("PSR (backtest, vs Sharpe 0)", _num(o.get("psr_backtest"), 3), f"{o.get('backtest_days', 0)} daily returns")
    ]
    dsr = o.get("dsr")
    if dsr:
        rows.append((
            "Deflated Sharpe ratio (walk-forward OOS)", _num(dsr["dsr"], 3),
            f"N = {dsr['n_trials']:,} trials; SR {_num(dsr['sharpe_annualised'])} vs SR0 "
            f"{_num(dsr['benchmark_sharpe_annualised'])} (annualised), {dsr['n_obs']} days",
        ))  # fmt: skip
        rows.append(("PSR (walk-forward OOS, vs Sharpe 0)", _num(o.get("psr_oos"), 3), ""))
    else:
        rows.append(("Deflated Sharpe ratio", "n/a", o.get("dsr_reason", "")))
    if o.get("pbo") is not None:
        n = len(o["pbo_windows"])
        detail = f"CSCV, mean of {n} windows (min {_num(o['pbo_min'], 3)}, max {_num(o['pbo_max'], 3)})"
        rows.append(("Probability of backtest overfitting", _num(o["pbo"], 3), detail))
    else:
        rows.append(("Probability of backtest overfitting", "n/a", o.get("pbo_reason", "")))
    perm = o.get("permutation")
    if perm:
        detail = (f"{perm['n_permutations']:,} shuffles in blocks of {perm['block_length']} bars of the "
                  f"trades' timing (equal unit exposure, no costs): observed {_pct(perm['observed'])} "
                  f"vs null 95% {_pct(perm['null_p95'])}")  # fmt: skip
        rows.append(("Permutation test p-value", _num(perm["p_value"], 4), detail))
    else:
        rows.append(("Permutation test p-value", "n/a", o.get("permutation_reason", "")))
    console.print(_table("Overfitting panel", ("statistic", "value", "detail"), rows))


def _render_scorecard(console: Console, card: Any) -> None:
    style = {"PASS": "green", "FAIL": "red", "N/A": "yellow"}
    rows = [
        (g.label, f"[{style[g.status]}]{g.status}[/{style[g.status]}]", g.shown, g.requirement, g.reason or "")
        for g in card.gates
    ]
    columns = ("gate", "status", "figure", "requirement", "note")
    console.print(_table("Validation scorecard", columns, rows, numeric=(2,)))
    console.print(f"[bold {style[card.verdict]}]{card.summary}[/bold {style[card.verdict]}]")
    for note in card.notes:
        console.print(f"note: {note}")


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_plain(payload), indent=1, allow_nan=False), encoding="utf-8")
    tmp.replace(path)
    return path


def _plain(obj: Any) -> Any:
    """JSON-safe copy: NaN → null, ±inf → "inf"/"-inf", numpy scalars and tuples to plain types."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str):
        obj = obj.item()
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
    return obj
