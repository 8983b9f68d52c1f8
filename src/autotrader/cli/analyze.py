"""``autotrader analyze`` (validate a saved backtest) and ``autotrader optimize`` (walk-forward alone).

``analyze`` reads the JSON that ``autotrader backtest`` saved and prints, section by section:
the metrics summary, the charts it wrote, the stress tests, Monte Carlo bands, the walk-forward
optimisation, the overfitting panel and the validation scorecard. Sections that need a new run
re-run the saved configuration on the stored candles. A section that cannot run says why in one
line and the others still run; the exit code is then non-zero. Everything computed is also saved
as ``analysis.json`` in the output folder.

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
  windows (up to 16 partitions, fewer for short windows). The matrix is saved as
  ``walk_forward_trial_returns.parquet`` and the stitched out-of-sample days as
  ``walk_forward_oos_daily.parquet`` beside ``analysis.json``, so PBO, DSR and PSR can be
  recomputed from the output alone.
* Permutation test: the backtest's positions (rebuilt from its trades on the stored candles, each
  symbol weighted ``1 / symbols``: gross unit exposure, no costs, not the strategy's sizing)
  shuffled in blocks against the open-to-open returns.

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
    walk_forward_asked: bool = False


# ------------------------------------------------------------------------------------------- analyze


DEFAULT_BACKTEST_FILE = Path("results/backtest_2020_2024.json")


def missing_backtest_file(path: Path) -> Exception:
    """The one-line error for a missing report, naming the newest saved one (or how to make one)."""
    from autotrader.domain.errors import DataError

    folder = path.parent if str(path.parent) not in ("", ".") else Path("results")
    saved = [p for p in folder.glob("backtest_*.json") if p.is_file()] if folder.is_dir() else []
    if saved:
        newest = max(saved, key=lambda p: (p.stat().st_mtime, p.name))
        return DataError(f"report file {path} does not exist; the newest saved backtest is {newest}")
    return DataError(f"report file {path} does not exist; run 'autotrader backtest' first (it writes {folder}/)")


def analyze(
    backtest_file: Annotated[
        Path,
        typer.Option(
            "--backtest-file",
            help="JSON saved by 'autotrader backtest' (default: the 2020-2024 run, results/backtest_2020_2024.json).",
        ),
    ] = DEFAULT_BACKTEST_FILE,
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
            help="Validation scorecard on out-of-sample figures (turns on walk-forward; stress tests unless "
            "--no-stress-test).",
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
    the backtest's period when it is shorter than two years. '--validate' judges out-of-sample
    accuracy > 65 %, profit factor > 1.8, max drawdown < 20 % and Sharpe > 0, plus stress survival,
    deflated Sharpe and PBO.
    """
    from autotrader.analytics.report_data import load_report
    from autotrader.cli.common import settings_from_options, stdout_console

    if not backtest_file.exists():
        raise missing_backtest_file(backtest_file)
    doc = load_report(backtest_file)
    config = _saved_config(doc, backtest_file)
    out = output_dir if output_dir is not None else backtest_file.with_name(f"{backtest_file.stem}_analysis")
    opts = _AnalyzeOptions(
        generate_charts, stress_test, monte_carlo, walk_forward or validate, validate, permutations,
        _WalkForwardOptions(trials, is_days, oos_days, anchored, objective, min_trades, scheduler,
                            optuna_storage, workers, seed),
        walk_forward,
    )  # fmt: skip
    run = _Analysis(doc, config, opts, stdout_console(), out, settings_from_options())
    try:
        run.execute()
    finally:
        run.close()
    if run.failed:
        raise typer.Exit(1)


def _validate_turned_on(o: _AnalyzeOptions) -> list[str]:
    on = ["validation scorecard", "overfitting panel (PBO, deflated Sharpe, out-of-sample PSR)"]
    if not o.walk_forward_asked:
        on.insert(0, "walk-forward optimisation")
    return on


def _validate_left_off(o: _AnalyzeOptions) -> list[str]:
    return [] if o.stress_test else ["stress tests (--no-stress-test): the stress gate will be N/A"]


def _validate_line(o: _AnalyzeOptions) -> str:
    line = "--validate turned on: " + ", ".join(_validate_turned_on(o)) + "."
    off = _validate_left_off(o)
    return line + (" Left off as asked: " + "; ".join(off) + "." if off else "")


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
        if o.validate:
            self.console.print(_validate_line(o))
            self.saved["validate"] = {"turned_on": _validate_turned_on(o), "left_off": _validate_left_off(o)}
        sections: list[tuple[str, bool, Callable[[], None]]] = [
            ("Metrics summary", True, self.metrics_section),
            ("Charts", o.generate_charts, self.charts_section),
            ("Stress tests", o.stress_test, self.stress_section),
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
            from autotrader.cli.common import open_candle_store

            self._store = open_candle_store(self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------------- sections

    def metrics_section(self) -> None:
        _render_metrics(self.console, self.doc)
        self.saved["metric_bases"] = METRIC_BASES

    def monte_carlo_report(self) -> MonteCarloReport | None:
        if self._mc is None and self._mc_error is None and self.opts.monte_carlo > 0:
            from autotrader.domain.errors import AutoTraderError
            from autotrader.validation.montecarlo import monte_carlo_report

            try:
                from autotrader.cli.progress import progress

                what = f"running {self.opts.monte_carlo:,} Monte Carlo simulations per method"
                with progress(what) as advance:
                    self._mc = monte_carlo_report(self.doc, n_simulations=self.opts.monte_carlo, seed=self.opts.wf.seed)
                    advance(1, 1, "Monte Carlo done")
            except AutoTraderError as e:
                self._mc_error = str(e)
        return self._mc

    def charts_section(self) -> None:
        from autotrader.analytics.charts import write_charts
        from autotrader.cli.progress import progress

        fan = None
        try:
            fan = _fan_input(self.monte_carlo_report())
        except ImportError:
            self.console.print("Monte Carlo is unavailable: the fan chart is left out.")
        with progress("drawing charts") as advance:
            written = write_charts(self.doc, self.out_dir / "charts", monte_carlo=fan)
            advance(1, 1, "charts drawn")
        self.files.extend(written)
        self.console.print(f"{len(written)} chart files in {self.out_dir / 'charts'}:")
        for path in written:
            self.console.print(f"  {path.name}")

    def stress_section(self) -> None:
        from autotrader.cli.progress import progress
        from autotrader.validation.stress import run_stress_tests

        with progress("re-running the strategy under 10 stress scenarios") as advance:
            self.stress = run_stress_tests(self.config, self.store, cache_dir=self.settings.cache_dir, progress=advance)
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
        written = _write_walk_forward_returns(self.out_dir, self.wf)
        self.saved["walk_forward"]["files"] = {p.stem: p.name for p in written}
        self.files.extend(written)
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
    from autotrader.cli.common import (
        config_error_from,
        open_candle_store,
        parse_params,
        parse_period,
        settings_from_options,
        stdout_console,
    )
    from autotrader.domain.candles import parse_date_ms

    start, end = parse_period(period)
    try:
        config = BacktestConfig(
            symbols=tuple(symbols.split(",")), exchange=exchange, timeframe=timeframe, start=start, end=end,
            initial_capital=initial_capital, strategy=strategy, params=parse_params(param or []),
            risk_level=risk,  # type: ignore[arg-type]
        )  # fmt: skip
    except ValidationError as e:
        raise config_error_from(e) from None
    config.limits()
    if grid:
        from autotrader.cli.sweep import run_grid_sweep

        run_grid_sweep(config, grid, objective, output)
        return
    opts = _WalkForwardOptions(
        trials, is_days, oos_days, anchored, objective, min_trades, scheduler, optuna_storage, workers, seed,
        _parse_space(space or []),
    )  # fmt: skip
    console = stdout_console()
    store = open_candle_store(settings_from_options())
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
    from autotrader.cli.progress import progress
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
    with progress("walk-forward windows", every_s=0.0) as advance:

        def on_window(result: Any, done: int, total: int) -> None:
            oos = result.oos_summary.get("total_return", float("nan"))
            advance(
                done,
                total,
                f"walk-forward window {result.window.index + 1}/{total}: OOS {result.window.oos_label} "
                f"return {oos * 100:+.2f}%",
            )

        def note(text: str) -> None:
            console.print(text, soft_wrap=True)

        return run_walk_forward(
            config, store, is_days=is_days, oos_days=oos_days, anchored=opts.anchored, n_trials=opts.trials,
            objective=opts.objective,  # type: ignore[arg-type]
            min_trades=opts.min_trades, seed=opts.seed, search_space_overrides=opts.space, workers=opts.workers,
            scheduler=opts.scheduler, storage=opts.storage, progress=on_window, status=note,
        )  # fmt: skip


TRIAL_RETURNS_FILE = "walk_forward_trial_returns.parquet"
OOS_DAILY_FILE = "walk_forward_oos_daily.parquet"


def _write_walk_forward_returns(out_dir: Path, wf: WalkForwardResult) -> list[Path]:
    """Save the inputs of PBO and DSR so both can be recomputed from the output alone.

    ``walk_forward_trial_returns.parquet``: one row per (window, in-sample day, trial) with
    ``window`` (1-based), ``day`` (UTC), ``trial`` (Optuna trial number), ``is_best`` (the trial
    whose parameters the window kept) and ``return`` (that day's return of the trial's marked
    equity). ``walk_forward_oos_daily.parquet``: the stitched out-of-sample record's daily
    ``equity`` (marked, from ``initial_capital``) and ``return`` per ``day``.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from autotrader.analytics import metrics

    cols: dict[str, list[Any]] = {"window": [], "day": [], "trial": [], "is_best": [], "return": []}
    for w in wf.windows:
        m = w.trial_returns
        if m.ndim != 2 or m.size == 0:
            continue
        days, trials = m.shape
        numbers = np.asarray(w.trial_numbers, dtype=np.int64)
        cols["window"].append(np.full(days * trials, w.window.index + 1, dtype=np.int64))
        cols["day"].append(np.repeat(np.asarray(w.trial_day_ts, dtype=np.int64), trials))
        cols["trial"].append(np.tile(numbers, days))
        cols["is_best"].append(np.tile(numbers == w.best_trial, days))
        cols["return"].append(m.reshape(-1))
    arrays = {k: np.concatenate(v) if v else np.empty(0) for k, v in cols.items()}
    table = pa.table({
        "window": pa.array(arrays["window"], pa.int32()),
        "day": pa.array(arrays["day"].astype(np.int64), pa.timestamp("ms", tz="UTC")),
        "trial": pa.array(arrays["trial"], pa.int32()),
        "is_best": pa.array(arrays["is_best"].astype(bool), pa.bool_()),
        "return": pa.array(arrays["return"].astype(np.float64), pa.float64()),
    })  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    trial_path = out_dir / TRIAL_RETURNS_FILE
    pq.write_table(table, trial_path)
    day_ts, day_eq = metrics.daily_equity(wf.oos_ts, wf.oos_equity)
    ret = np.concatenate(([np.nan], metrics.daily_returns(day_eq)))
    oos = pa.table({
        "day": pa.array(np.asarray(day_ts, dtype=np.int64), pa.timestamp("ms", tz="UTC")),
        "equity": pa.array(np.asarray(day_eq, dtype=np.float64)),
        "return": pa.array(ret[: len(day_eq)], pa.float64()),
    })  # fmt: skip
    oos_path = out_dir / OOS_DAILY_FILE
    pq.write_table(oos, oos_path)
    return [trial_path, oos_path]


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
        out["dsr"] = out["pbo"] = out["psr_oos"] = None
        out["dsr_reason"] = out["pbo_reason"] = out["psr_oos_reason"] = why
    else:
        out.update(_deflated_sharpe(wf))
        out.update(_pbo(wf))
    out.update(_permutation(a))
    return out


def _deflated_sharpe(wf: WalkForwardResult) -> dict[str, Any]:
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
        rows.append({"window": k, "best_trial": w.best_trial, "dsr": _finite(d.dsr), "psr": _finite(d.psr),
                     "n_trials": d.n_trials, "n_obs": d.n_obs, "sharpe_annualised": _finite(d.sharpe_annualised),
                     "benchmark_sharpe_annualised": _finite(d.benchmark_sharpe_annualised),
                     "sharpe_variance": d.sharpe_variance, "skewness": _finite(d.skewness),
                     "kurtosis": _finite(d.kurtosis)})  # fmt: skip
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
    out["psr_oos"] = _finite(psr)
    out["psr_oos_detail"] = {
        "basis": "stitched out-of-sample daily returns (marked equity) against a Sharpe ratio of 0; "
        "no selection penalty: this record was not picked as a best",
        "n_obs": n, "sharpe_annualised": _finite(sr * math.sqrt(365.0)), "skewness": _finite(skew),
        "kurtosis": _finite(kurt),
    }  # fmt: skip
    if out["psr_oos"] is None:
        out["psr_oos_reason"] = f"undefined on {n} out-of-sample daily returns (flat or too short)"
    out["oos_days"] = n
    return out


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
                     "prob_oos_loss": res.prob_oos_loss, "slope": _finite(res.slope),
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
        off = "the stress tests were switched off (--no-stress-test)"
        reasons["stress_survived"] = "the stress tests did not run" if a.opts.stress_test else off
    figures["deflated_sharpe"] = a.overfitting.get("dsr")
    if figures["deflated_sharpe"] is None:
        reasons["deflated_sharpe"] = a.overfitting.get("dsr_reason", "the overfitting panel did not run")
    figures["oos_psr"] = a.overfitting.get("psr_oos")
    if figures["oos_psr"] is None:
        reasons["oos_psr"] = a.overfitting.get(
            "psr_oos_reason", a.overfitting.get("dsr_reason", "the overfitting panel did not run")
        )
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


def _table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: Sequence[int] = (1,),
    whole: Sequence[int] = (),
) -> Any:
    """A compact rich table; ``numeric`` columns are right-aligned and, with ``whole``, never wrapped."""
    from rich.table import Table

    table = Table(
        title=title, title_justify="left", box=None, title_style="bold", min_width=len(title) + 2,
        pad_edge=False, padding=(0, 1), header_style="bold underline",
    )  # fmt: skip
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i in numeric else "left", no_wrap=i in numeric or i in whole)
    for row in rows:
        table.add_row(*row)
    return table


def _render_metrics(console: Console, doc: dict[str, Any]) -> None:
    s, cfg, p = doc["summary"], doc["config"], doc["period"]
    console.print(
        f"{cfg['strategy']} on {', '.join(cfg['symbols'])} ({cfg['exchange']} {cfg['timeframe']}), "
        f"{p['first_bar'][:10]} .. {p['last_bar'][:10]}, {p['bars']:,} bars"
    )
    bars = f"marked equity at {cfg['timeframe']} bar closes"
    daily = "daily returns of marked equity, 365 days a year"
    rows = [
        ("Total return", _pct(s.get("total_return")), bars),
        ("CAGR", _pct(s.get("cagr")), "marked equity, daily"),
        ("Buy & hold return", _pct(s.get("buy_and_hold_return")), "equal-weight symbols, no costs"),
        ("Sharpe ratio", _num(s.get("sharpe_ratio")), daily),
        ("Sortino ratio", _num(s.get("sortino_ratio")), daily),
        ("Calmar ratio", _num(s.get("calmar_ratio")), "CAGR / |max drawdown at bar closes|"),
        ("Max drawdown", _pct(s.get("max_drawdown")), bars),
        ("Trades", _num(s.get("trades"), 0), "closed trades"),
        ("Win rate", _pct(s.get("win_rate"), 1, sign=False), "closed trades, net P&L > 0"),
        ("Profit factor", _num(s.get("profit_factor")), "closed trades, net"),
        ("VaR 95% (daily)", _pct(s.get("value_at_risk_95")), "daily returns of marked equity, historical"),
        ("Expected shortfall 95% (daily)", _pct(s.get("expected_shortfall_95")), "daily returns of marked equity"),
        ("Stability score", f"{_num(s.get('stability_score'), 0)} / 100", "100 × R² of log daily equity on time"),
    ]
    acc = s.get("signal_accuracy")
    if acc:
        rows.append(("Signal accuracy", f"{_pct(acc.get('accuracy'), 1, sign=False)} of {acc.get('evaluated')}",
                     "direction over each signal's horizon"))  # fmt: skip
    console.print(_table("Backtest (in-sample) metrics", ("metric", "value", "basis"), rows))


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


def _compact_window(window: str) -> str:
    """``2022-05-01 .. 2022-05-31`` → ``2022-05-01→05-31`` (the year once when both dates share it)."""
    first, sep, last = window.partition(" .. ")
    if not sep:
        return window
    return f"{first}→{last[5:]}" if first[:4] == last[:4] else f"{first}→{last}"


def _render_stress(console: Console, report: StressReport) -> None:
    console.print(f"[bold]{report.summary_line}[/bold] (drawdown limit {report.drawdown_limit * 100:g}%)")
    style = {"survived": "green", "failed": "red", "n/a": "yellow"}
    rows = [
        (
            f"{i}. {s.title}", _compact_window(s.window), _pct(s.total_return), _pct(s.max_drawdown),
            "n/a" if s.trades is None else str(s.trades), f"[{style[s.status]}]{s.status.upper()}[/{style[s.status]}]",
        )
        for i, s in enumerate(report.scenarios, 1)
    ]  # fmt: skip
    columns = ("scenario", "window", "return", "max DD", "trades", "status")
    console.print(_table("Stress scenarios", columns, rows, numeric=(2, 3, 4), whole=(1, 5)))
    # reasons below the table, one line each, so the table itself stays one line per scenario
    for i, s in enumerate(report.scenarios, 1):
        if not s.survived:
            console.print(f"  {i}. {s.status}: {s.reason}", soft_wrap=True, highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True)


def _render_monte_carlo(console: Console, report: MonteCarloReport) -> None:
    for r in report.results:
        rows = []
        figures = (("total return", "total_return", r.total_return, _pct),
                   ("max drawdown", "max_drawdown", r.max_drawdown, _pct),
                   ("Sharpe ratio", "sharpe_ratio", r.sharpe_ratio, _num),
                   ("win rate", "win_rate", r.win_rate, _share))  # fmt: skip
        for name, key, band, fmt in figures:
            if band is not None and key not in r.invariant:
                rows.append((name, fmt(band.p5), fmt(band.p50), fmt(band.p95), fmt(r.observed.get(key))))
        title = f"{r.method.replace('_', ' ')}: {r.n_simulations:,} simulations of {r.n_steps:,} steps"
        columns = ("figure", "5%", "50%", "95%", "backtest, same basis")
        console.print(_table(title, columns, rows, numeric=(1, 2, 3, 4)))
        console.print(f"basis: {r.basis}")
        console.print(f"scope: {r.scope}")
        breach = "n/a" if r.prob_drawdown_breach is None else _pct(r.prob_drawdown_breach, 1, sign=False)
        limit = "" if r.drawdown_limit is None else f" {r.drawdown_limit * 100:g}%"
        loss = "" if "prob_loss" in r.invariant else f"P(loss) {_pct(r.prob_loss, 1, sign=False)}   "
        console.print(
            f"{loss}P(drawdown beyond{limit}) {breach}   "
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
    title = "Stitched out-of-sample record (marked equity; Sharpe/Sortino on daily returns, 365 days)"
    console.print(_table(title, ("metric", "value"), oos_rows))
    console.print(
        f"{wf.n_trials_run:,} parameter sets evaluated ({wf.n_invalid_trials:,} rejected by the strategy) "
        f"in {wf.elapsed_s:.1f} s on {wf.execution}"
    )
    for note in wf.notes:
        console.print(f"note: {note}")


def _render_overfitting(console: Console, o: dict[str, Any]) -> None:
    rows = [(
        "PSR (backtest, in-sample, vs Sharpe 0)", _num(o.get("psr_backtest"), 3),
        f"{o.get('backtest_days', 0)} daily returns of the backtest's marked equity",
    )]  # fmt: skip
    if o.get("dsr") is not None:
        w = o["dsr_windows"]
        ns = [r["n_trials"] for r in w]
        rows.append((
            "Deflated Sharpe ratio (walk-forward in-sample winners)", _num(o["dsr"], 3),
            f"median of {len(w)} windows (min {_num(o['dsr_min'], 3)}, max {_num(o['dsr_max'], 3)}): each window's "
            f"winner on its in-sample days vs the expected best of that window's N = {min(ns)}-{max(ns)} trials",
        ))  # fmt: skip
    else:
        rows.append(("Deflated Sharpe ratio (walk-forward in-sample winners)", "n/a", o.get("dsr_reason", "")))
    detail = o.get("psr_oos_detail") or {}
    if o.get("psr_oos") is not None:
        rows.append((
            "PSR (walk-forward out-of-sample record, vs Sharpe 0)", _num(o["psr_oos"], 3),
            f"{detail.get('n_obs')} stitched OOS daily returns, Sharpe {_num(detail.get('sharpe_annualised'))} "
            "annualised; no selection penalty: this record was not picked as a best",
        ))  # fmt: skip
    else:
        rows.append(("PSR (walk-forward out-of-sample record, vs Sharpe 0)", "n/a", o.get("psr_oos_reason", "")))
    if o.get("pbo") is not None:
        n = len(o["pbo_windows"])
        flat = sum(r.get("n_flat_scores", 0) for r in o["pbo_windows"])
        detail_pbo = (f"CSCV on each window's in-sample trial matrix (daily returns), mean of {n} windows "
                      f"(min {_num(o['pbo_min'], 3)}, max {_num(o['pbo_max'], 3)}); {flat:,} trial scores "
                      "fixed at 0 where a trial held no position in a half")  # fmt: skip
        rows.append(("Probability of backtest overfitting", _num(o["pbo"], 3), detail_pbo))
    else:
        rows.append(("Probability of backtest overfitting", "n/a", o.get("pbo_reason", "")))
    perm = o.get("permutation")
    if perm:
        detail = (f"{perm['n_permutations']:,} shuffles in blocks of {perm['block_length']} bars of the trades' "
                  f"timing. Basis: gross unit exposure (1/symbols per open trade, no costs, not the strategy's "
                  f"sizing): observed {_pct(perm['observed'])} vs null 95% {_pct(perm['null_p95'])}; not "
                  "comparable with the backtest's net return")  # fmt: skip
        rows.append(("Permutation test p-value", _num(perm["p_value"], 4), detail))
    else:
        rows.append(("Permutation test p-value", "n/a", o.get("permutation_reason", "")))
    console.print(_table("Overfitting panel", ("statistic", "value", "detail"), rows))
    if o.get("dsr_windows"):
        drows = [(str(r["window"]), str(r["best_trial"]), str(r["n_trials"]), _num(r["sharpe_annualised"]),
                  _num(r["benchmark_sharpe_annualised"]), _num(r["psr"], 3), _num(r["dsr"], 3))
                 for r in o["dsr_windows"]]  # fmt: skip
        columns = ("window", "winner", "N trials", "IS Sharpe", "SR0", "PSR", "DSR")
        title = "Deflated Sharpe per window (in-sample daily returns; Sharpe and SR0 annualised, 365 days)"
        console.print(_table(title, columns, drows, numeric=(0, 1, 2, 3, 4, 5, 6)))


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
