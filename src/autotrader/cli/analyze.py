"""``autotrader analyze`` (validate a saved backtest) and ``autotrader optimize`` (walk-forward alone).

``analyze`` reads the JSON that ``autotrader backtest`` saved and prints, section by section:
the metrics summary, the charts it wrote, the stress tests, Monte Carlo bands, the walk-forward
optimisation, the overfitting panel and the validation scorecard. Sections that need a new run
re-run the saved configuration on the stored candles. A section that cannot run says why in one
line and the others still run; the exit code is then non-zero. Everything computed is also saved
as ``analysis.json`` in the output folder.

The figures come from ``autotrader.validation.analysis`` (what each overfitting statistic
measures is explained there); this module parses the options, prints each section with rich and
writes the charts, ``analysis.json`` and the walk-forward's ``walk_forward_trial_returns.parquet``
and ``walk_forward_oos_daily.parquet`` (so PBO, DSR and PSR can be recomputed from the output alone).

Boolean options accept ``--flag``, ``--no-flag`` and ``--flag=true`` / ``--flag=false``.

Wire it into the main app with ``register(app)``. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer
from typer.core import TyperCommand, TyperOption

from autotrader.cli.common import (
    InitialCapitalOption,
    PeriodOption,
    RiskLevelOption,
    StoredExchangeOption,
    StoredTimeframeOption,
    SymbolsOption,
)

if TYPE_CHECKING:
    from rich.console import Console

    from autotrader.backtest.runner import BacktestConfig
    from autotrader.validation.analysis import AnalysisOptions, BacktestAnalyzer, WalkForwardOptions
    from autotrader.validation.montecarlo import MonteCarloReport
    from autotrader.validation.stress import StressReport
    from autotrader.validation.walkforward import WalkForwardResult

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


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
    app.command("analyze", cls=_BoolValueCommand)(with_walk_forward_flags(analyze))
    app.command("optimize", cls=_BoolValueCommand)(with_walk_forward_flags(optimize))


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
class WalkForwardFlags:
    """The walk-forward options ``analyze`` and ``optimize`` share, declared once (see ``with_walk_forward_flags``)."""

    trials: TrialsOption = 100
    is_days: IsDaysOption = None
    oos_days: OosDaysOption = None
    anchored: AnchoredOption = False
    objective: ObjectiveOption = "sharpe"
    min_trades: MinTradesOption = 10
    scheduler: SchedulerOption = None
    storage: StorageOption = None
    workers: WorkersOption = None

    def options(self, seed: int, space: dict[str, tuple[float, float]] | None = None) -> WalkForwardOptions:
        """The walk-forward's options: these flags with the command's seed and search space."""
        from autotrader.validation.analysis import WalkForwardOptions

        return WalkForwardOptions(**asdict(self), seed=seed, space=space)


def with_walk_forward_flags(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with the ``WalkForwardFlags`` fields as its options, in the place of its ``wf`` parameter.

    Typer reads the options from the returned function's signature; the command receives them as one
    ``WalkForwardFlags`` (``wf=``), so its help lists them where ``wf`` stands.
    """
    hints = get_type_hints(WalkForwardFlags, include_extras=True)
    flags = [
        inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default, annotation=hints[f.name])
        for f in fields(WalkForwardFlags)
    ]
    signature = inspect.signature(command, eval_str=True)
    params = [q for p in signature.parameters.values() for q in (flags if p.name == "wf" else [p])]

    @functools.wraps(command)
    def expanded(**options: Any) -> None:
        wf = WalkForwardFlags(**{f.name: options.pop(f.name) for f in fields(WalkForwardFlags)})
        command(wf=wf, **options)

    expanded.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    expanded.__annotations__ = {p.name: p.annotation for p in params}
    return expanded


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
    wf: WalkForwardFlags = WalkForwardFlags(),
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
    from autotrader.cli.common import open_candle_store, settings_from_options, stdout_console
    from autotrader.validation.analysis import AnalysisOptions, BacktestAnalyzer, saved_config

    if not backtest_file.exists():
        raise missing_backtest_file(backtest_file)
    doc = load_report(backtest_file)
    config = saved_config(doc, backtest_file)
    out = output_dir if output_dir is not None else backtest_file.with_name(f"{backtest_file.stem}_analysis")
    opts = AnalysisOptions(
        generate_charts, stress_test, monte_carlo, walk_forward or validate, validate, permutations, wf.options(seed),
        walk_forward,
    )  # fmt: skip
    settings = settings_from_options()
    analyzer = BacktestAnalyzer(doc, config, opts, lambda: open_candle_store(settings), settings.cache_dir)
    run = _AnalyzeRun(analyzer, stdout_console(), out)
    try:
        run.execute()
    finally:
        analyzer.close()
    if run.failed:
        raise typer.Exit(1)


def _validate_line(o: AnalysisOptions) -> str:
    line = "--validate turned on: " + ", ".join(o.validate_turned_on()) + "."
    off = o.validate_left_off()
    return line + (" Left off as asked: " + "; ".join(off) + "." if off else "")


@dataclass
class _AnalyzeRun:
    """One ``analyze`` run: each section computed by the analyzer, printed, and its files written."""

    analyzer: BacktestAnalyzer
    console: Console
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    walk_forward_files: dict[str, str] = field(default_factory=dict)

    def execute(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        o = self.analyzer.options
        if o.validate:
            self.console.print(_validate_line(o))
            self.analyzer.validate()
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
        saved = self.analyzer.result().to_dict()
        if "walk_forward" in saved and self.walk_forward_files:
            saved["walk_forward"]["files"] = self.walk_forward_files
        self.files.append(_write_json(self.out_dir / "analysis.json", saved))
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

    # ------------------------------------------------------------------- sections

    def metrics_section(self) -> None:
        self.analyzer.metrics()
        _render_metrics(self.console, self.analyzer.doc)

    def monte_carlo_report(self) -> MonteCarloReport:
        if not self.analyzer.monte_carlo_pending:
            return self.analyzer.monte_carlo()
        from autotrader.cli.progress import progress

        what = f"running {self.analyzer.options.monte_carlo:,} Monte Carlo simulations per method"
        with progress(what) as advance:
            report = self.analyzer.monte_carlo()
            advance(1, 1, "Monte Carlo done")
        return report

    def charts_section(self) -> None:
        from autotrader.analytics.charts import write_charts
        from autotrader.cli.progress import progress
        from autotrader.domain.errors import AutoTraderError

        fan = None
        if self.analyzer.options.monte_carlo > 0:
            try:
                fan = _fan_input(self.monte_carlo_report())
            except ImportError:
                self.console.print("Monte Carlo is unavailable: the fan chart is left out.")
            except AutoTraderError:
                pass  # the Monte Carlo section says why
        with progress("drawing charts") as advance:
            written = write_charts(dict(self.analyzer.doc), self.out_dir / "charts", monte_carlo=fan)
            advance(1, 1, "charts drawn")
        self.files.extend(written)
        self.console.print(f"{len(written)} chart files in {self.out_dir / 'charts'}:")
        for path in written:
            self.console.print(f"  {path.name}")

    def stress_section(self) -> None:
        from autotrader.cli.progress import progress

        with progress("re-running the strategy under 10 stress scenarios") as advance:
            report = self.analyzer.stress(progress=advance)
        _render_stress(self.console, report)

    def monte_carlo_section(self) -> None:
        _render_monte_carlo(self.console, self.monte_carlo_report())

    def walk_forward_section(self) -> None:
        a = self.analyzer
        wf = _run_walk_forward(self.console, a.config, a.options.wf, a.span_days, a.walk_forward)
        written = _write_walk_forward_returns(self.out_dir, wf)
        self.walk_forward_files = {p.stem: p.name for p in written}
        self.files.extend(written)
        _render_walk_forward(self.console, wf)

    def overfitting_section(self) -> None:
        _render_overfitting(self.console, self.analyzer.overfitting().to_dict())

    def scorecard_section(self) -> None:
        _render_scorecard(self.console, self.analyzer.scorecard())


# ------------------------------------------------------------------------------------------- optimize


def optimize(
    strategy: Annotated[str, typer.Option(help="Strategy to optimise (its parameters with ranges are searched).")] = (
        "sma_cross"
    ),
    symbols: SymbolsOption = "BTCUSDT,ETHUSDT",
    period: PeriodOption = "2020-01-01:2024-12-31",
    timeframe: StoredTimeframeOption = "1h",
    exchange: StoredExchangeOption = "binance",
    initial_capital: InitialCapitalOption = 10_000.0,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Fixed strategy parameter key=value (repeatable).")
    ] = None,
    space: Annotated[
        list[str] | None,
        typer.Option("--space", help="Search only these parameters, name=LOW:HIGH (repeatable)."),
    ] = None,
    risk: RiskLevelOption = "medium",
    wf: WalkForwardFlags = WalkForwardFlags(),
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
    from autotrader.cli.common import (
        backtest_config,
        open_candle_store,
        parse_params,
        parse_period,
        settings_from_options,
        stdout_console,
    )
    from autotrader.domain.candles import parse_date_ms
    from autotrader.validation.analysis import run_walk_forward_with

    start, end = parse_period(period)
    config = backtest_config(
        symbols, start, end, exchange=exchange, timeframe=timeframe, initial_capital=initial_capital,
        strategy=strategy, params=parse_params(param or []), risk_level=risk,
    )  # fmt: skip
    config.limits()
    if grid:
        from autotrader.cli.sweep import run_grid_sweep

        run_grid_sweep(config, grid, wf.objective, output)
        return
    opts = wf.options(seed, _parse_space(space or []))
    console = stdout_console()
    store = open_candle_store(settings_from_options())
    try:
        span = (config.end_ms - parse_date_ms(start)) / 86_400_000
        result = _run_walk_forward(
            console,
            config,
            opts,
            span,
            lambda on_window, status: run_walk_forward_with(config, store, opts, span, on_window, status),
        )
    finally:
        store.close()
    _render_walk_forward(console, result)
    stem = f"walkforward_{strategy}_{start.replace('-', '')[:8]}_{end.replace('-', '')[:8]}"
    path = _write_json(output or Path("results") / f"{stem}.json", result.to_dict())
    returns = _write_walk_forward_returns(path.parent, result, prefix=f"{path.stem}_")
    console.print(f"Wrote: {path}, " + ", ".join(p.name for p in returns))


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


def _run_walk_forward(
    console: Console,
    config: BacktestConfig,
    opts: WalkForwardOptions,
    span_days: float,
    run: Callable[[Callable[[Any, int, int], None], Callable[[str], None]], WalkForwardResult],
) -> WalkForwardResult:
    """Print the walk-forward's plan, then ``run(on_window, status)`` it with a progress bar per window."""
    from autotrader.cli.progress import progress
    from autotrader.validation.analysis import walk_forward_windows

    is_days, oos_days = walk_forward_windows(opts, span_days)
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

        return run(on_window, note)


TRIAL_RETURNS_FILE = "walk_forward_trial_returns.parquet"
OOS_DAILY_FILE = "walk_forward_oos_daily.parquet"


def _write_walk_forward_returns(out_dir: Path, wf: WalkForwardResult, prefix: str = "") -> list[Path]:
    """Save the inputs of PBO and DSR so both can be recomputed from the output alone (file names
    start with ``prefix``, which ``optimize`` sets to its JSON's name).

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
    trial_path = out_dir / f"{prefix}{TRIAL_RETURNS_FILE}"
    pq.write_table(table, trial_path)
    day_ts, day_eq = metrics.daily_equity(wf.oos_ts, wf.oos_equity)
    ret = np.concatenate(([np.nan], metrics.daily_returns(day_eq)))
    oos = pa.table({
        "day": pa.array(np.asarray(day_ts, dtype=np.int64), pa.timestamp("ms", tz="UTC")),
        "equity": pa.array(np.asarray(day_eq, dtype=np.float64)),
        "return": pa.array(ret[: len(day_eq)], pa.float64()),
    })  # fmt: skip
    oos_path = out_dir / f"{prefix}{OOS_DAILY_FILE}"
    pq.write_table(oos, oos_path)
    return [trial_path, oos_path]


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


def _write_json(path: Path, payload: dict[str, Any]) -> Path:
    from autotrader.domain.jsonsafe import json_safe
    from autotrader.files import write_text_atomic

    return write_text_atomic(path, json.dumps(json_safe(payload), indent=1, allow_nan=False))
