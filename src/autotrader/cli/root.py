"""The root command tree of ``autotrader``: the data and backtest commands and the entry point.

Heavy libraries are imported inside commands so ``autotrader --help`` starts fast. Every
``AutoTraderError`` becomes one red line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from autotrader.cli.common import (
    InitialCapitalOption,
    ParamOption,
    PeriodOption,
    RiskLevelOption,
    StoredExchangeOption,
    StoredTimeframeOption,
    SymbolsOption,
    backtest_config,
    open_candle_store,
    parse_params,
    parse_period,
    root_options,
    settings_from_options,
    stdout_console,
)
from autotrader.domain.fees import DEFAULT_SLIPPAGE_BPS, default_fee_help

app = typer.Typer(
    name="autotrader",
    help="AutoTrader: honest, fast crypto backtests and automated trading with one risk engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)
data_app = typer.Typer(help="Manage the market-data store: list, import, verify, resample.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (default: $AUTOTRADER_HOME/config.toml).")
]
TimeUnitOption = Annotated[
    str | None, typer.Option(help="Unit of numeric timestamps: s, ms, us or ns (default: by magnitude).")
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace stored bars that differ from the file's.")]
CheckLookaheadOption = Annotated[
    bool, typer.Option("--check-lookahead", help="Re-run on truncated data; fail if any past signal changes.")
]


@app.callback()
def _root(
    config: ConfigOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
) -> None:
    root_options.config_file = config
    root_options.verbose = verbose


# ----------------------------------------------------------------------------------------------- data


@data_app.command("list")
def data_list() -> None:
    """Show every stored series: exchange, symbol, timeframe, first and last bar, rows and gaps."""
    from rich.table import Table

    from autotrader.domain.candles import format_ms

    settings = settings_from_options()
    store = open_candle_store(settings)
    try:
        coverage = store.coverage()
    finally:
        store.close()
    # fits 80 columns without cutting a date: compact box, short headers, dates never wrapped or cut
    table = Table(
        title=f"Market data ({settings.storage.backend} store, times UTC)",
        box=None,
        pad_edge=False,
        padding=(0, 1),
        header_style="bold underline",
    )
    for col in ("exchange", "symbol", "tf", "first bar", "last bar", "rows", "gaps (bars)"):
        right = col in ("rows", "gaps (bars)")
        table.add_column(col, justify="right" if right else "left", no_wrap=col != "gaps (bars)")
    for cov in coverage:
        gaps = f"{len(cov.gaps)} ({cov.missing_bars})" if cov.gaps else "0"
        table.add_row(
            cov.key.exchange,
            cov.key.symbol,
            cov.key.timeframe,
            format_ms(cov.first_ts)[:16],
            format_ms(cov.last_ts)[:16],
            f"{cov.rows:,}",
            gaps,
        )
    stdout_console().print(table)
    if not coverage:
        stdout_console().print("The store is empty: import candles with 'autotrader data import'.")


@data_app.command("import")
def data_import(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet, freqtrade JSON or feather candle file.")],
    exchange: Annotated[str, typer.Option(help="Exchange the candles come from, e.g. binance, bybit.")],
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. BTCUSDT.")],
    timeframe: Annotated[str, typer.Option(help="Bar length, e.g. 1m, 30m, 1h, 4h, 1d.")],
    columns: Annotated[
        str | None, typer.Option(help="Map fields to the file's columns: 'ts=Unix,volume=Volume BTC'.")
    ] = None,
    skip_rows: Annotated[
        int | None, typer.Option(min=0, help="Lines before the CSV header (default: skip a preamble naming no column).")
    ] = None,
    time_unit: TimeUnitOption = None,
    overwrite: OverwriteOption = False,
    jump_pct: Annotated[float, typer.Option(help="Report close-to-close moves larger than this, in %.")] = 30.0,
) -> None:
    """Import a candle file. All-or-nothing: one bad row imports nothing and names the row.

    Timestamps may be seconds, milliseconds or ISO-8601 (UTC when no zone is given).

    A file listed newest first is reversed; the gaps and price jumps found are printed.

    Bars already stored with other values are replaced only with --overwrite (and counted).
    """
    from autotrader.cli.progress import progress
    from autotrader.domain.candles import SeriesKey, format_ms
    from autotrader.domain.errors import DataError
    from autotrader.marketdata.importer import ImportOptions, compare_with_stored, load_file, parse_column_mapping
    from autotrader.marketdata.verify import describe_gaps_and_jumps

    key = SeriesKey.of(exchange, symbol, timeframe)
    options = ImportOptions(
        columns=parse_column_mapping(columns), skip_rows=skip_rows, time_unit=time_unit, symbol=key.symbol
    )
    with progress(f"importing {file.name} into {key}") as advance:
        advance(0, 3, f"reading and checking {file.name}")
        loaded = load_file(file, key.tf, options)
        candles = loaded.candles
        settings = settings_from_options()
        store = open_candle_store(settings)
        try:
            advance(1, 3, f"comparing {len(candles):,} bars with {key}")
            changes = compare_with_stored(store.read(key, int(candles.ts[0]), int(candles.ts[-1])), candles)
            if changes.changed and not overwrite:
                raise DataError(
                    f"{changes.changed:,} of the file's {len(candles):,} bars differ from those stored in {key} "
                    f"(first {changes.first_changed}); nothing imported: re-run with --overwrite to replace them"
                )
            advance(2, 3, f"writing {len(candles):,} bars")
            written = store.upsert(key, candles)
            advance(3, 3, f"imported into {key}")
        finally:
            store.close()
    console = stdout_console()
    console.print(
        f"Imported {written:,} bars into {key} "
        f"({format_ms(int(candles.ts[0]))} .. {format_ms(int(candles.ts[-1]))}, {settings.storage.backend} store): "
        f"{changes.new:,} new, {changes.unchanged:,} unchanged, {changes.changed:,} replaced.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for note in loaded.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    for line in describe_gaps_and_jumps(candles, key.tf.ms, jump_threshold_pct=jump_pct):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@data_app.command("verify")
def data_verify(
    symbol: Annotated[str | None, typer.Option(help="Only this symbol (default: every series).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Only this timeframe.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    jump_pct: Annotated[float, typer.Option(help="Warn on close-to-close moves larger than this, in %.")] = 30.0,
    all_problems: Annotated[
        bool, typer.Option("--all", help="List every problem of every series, not only the first.")
    ] = False,
) -> None:
    """Check stored series for duplicates, unsorted or off-grid bars, gaps, bad OHLC, NaN and jumps.

    Exits non-zero when a hard error is found; gaps and jumps are warnings. --all lists each one.
    """
    from rich.table import Table

    from autotrader.domain.candles import SeriesKey, format_ms
    from autotrader.domain.errors import DataError
    from autotrader.marketdata.store import missing_series_hint
    from autotrader.marketdata.verify import has_errors, verify_candles

    settings = settings_from_options()
    store = open_candle_store(settings)
    console = stdout_console()
    failed = False
    listing: list[str] = []
    shown_one_of_many = 0
    try:
        stored = store.keys()
        keys = [
            k
            for k in stored
            if (symbol is None or k.symbol == symbol.upper())
            and (timeframe is None or k.timeframe == timeframe)
            and (exchange is None or k.exchange == exchange.lower())
        ]
        if not keys:
            hint = ""
            if symbol is not None:
                wanted = SeriesKey.of(exchange or "binance", symbol, timeframe or "1h")
                hint = missing_series_hint(stored, wanted)
            raise DataError(f"no stored series matches the given filters{hint} (see 'autotrader data list')")
        table = Table(title="Verification")
        for col in ("series", "rows", "errors", "warnings", "first problem"):
            table.add_column(col)
        for key in keys:
            candles = store.read(key)
            cap = len(candles) + 1 if all_problems else 20
            findings = verify_candles(candles, key.tf.ms, jump_threshold_pct=jump_pct, max_per_kind=cap)
            errors = [f for f in findings if f.severity == "error"]
            warnings = [f for f in findings if f.severity == "warning"]
            n_errors, n_warnings = sum(f.count for f in errors), sum(f.count for f in warnings)
            failed |= has_errors(findings)
            shown_one_of_many += n_errors + n_warnings > 1
            first = (errors or warnings or [None])[0]
            where = f" at {format_ms(first.ts)}" if first is not None and first.ts is not None else ""
            table.add_row(
                str(key),
                f"{len(candles):,}",
                f"[red]{n_errors:,}[/red]" if n_errors else "0",
                f"{n_warnings:,}",
                f"{first.kind}{where}: {first.message}" if first else "ok",
            )
            if all_problems and findings:
                listing.append(f"{key}: {n_errors:,} errors, {n_warnings:,} warnings")
                listing.extend(
                    f"  {f.severity:<7} {f.kind:<18} row {f.row + 1:>7,}: {f.message}"
                    if f.row is not None
                    else f"  {f.severity:<7} {f.kind:<18} {f.message}"
                    for f in findings
                )
    finally:
        store.close()
    console.print(table)
    if listing:
        sys.stdout.write("\n".join(listing) + "\n")
    elif shown_one_of_many:
        console.print(f"{shown_one_of_many} series have more than one problem: 'data verify --all' lists each.")
    if failed:
        console.print("[red]Hard errors found.[/red]")
        raise typer.Exit(3)
    console.print("No hard errors.")


@data_app.command("resample")
def data_resample(
    to: Annotated[str, typer.Option("--to", help="Target timeframe, e.g. 4h or 1d.")],
    source: Annotated[str, typer.Option("--from", help="Source timeframe.")] = "1h",
    symbol: Annotated[str | None, typer.Option(help="Only this symbol (default: all of the source timeframe).")] = None,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
) -> None:
    """Aggregate stored candles to a longer timeframe and store them (gaps stay gaps)."""
    from autotrader.domain.candles import SeriesKey
    from autotrader.domain.errors import DataError
    from autotrader.domain.timeframe import Timeframe
    from autotrader.marketdata.resample import resample

    src_tf, dst_tf = Timeframe.parse(source), Timeframe.parse(to)
    settings = settings_from_options()
    store = open_candle_store(settings)
    console = stdout_console()
    try:
        keys = [
            k
            for k in store.keys()
            if k.timeframe == src_tf.name
            and (symbol is None or k.symbol == symbol.upper())
            and (exchange is None or k.exchange == exchange.lower())
        ]
        if not keys:
            raise DataError(f"no stored {src_tf} series to resample (see 'autotrader data list')")
        for key in keys:
            out = resample(store.read(key), src_tf.ms, dst_tf.ms)
            target = SeriesKey.of(key.exchange, key.symbol, dst_tf)
            written = store.upsert(target, out)
            console.print(f"{key} -> {target}: {written:,} bars")
    finally:
        store.close()


@data_app.command("seed")
def data_seed() -> None:
    """(Re)load the bundled real Binance candles into the configured store."""
    from autotrader.marketdata.bundled import seed

    settings = settings_from_options()
    store = open_candle_store(settings)
    try:
        rows = seed(store)
    finally:
        store.close()
    stdout_console().print(f"Loaded {rows:,} bundled candles into the {settings.storage.backend} store.")


# ------------------------------------------------------------------------------------------- backtest


def _check_on_halt(value: str) -> None:
    from autotrader.backtest.runner import parse_on_halt
    from autotrader.domain.errors import ConfigError

    try:
        parse_on_halt(value)
    except ValueError as e:
        raise ConfigError(f"--{e}") from None


@app.command()
def backtest(
    symbols: SymbolsOption = "BTCUSDT,ETHUSDT",
    period: PeriodOption = "2020-01-01:2024-12-31",
    initial_capital: InitialCapitalOption = 10_000.0,
    output_format: Annotated[
        str, typer.Option(help="tradingview (console + HTML report), json or csv.")
    ] = "tradingview",
    strategy: Annotated[
        str, typer.Option(help="ml, sma_cross, rsi_reversion, donchian_breakout, buy_and_hold or signals.")
    ] = "ml",
    param: ParamOption = None,
    timeframe: StoredTimeframeOption = "1h",
    exchange: StoredExchangeOption = "binance",
    risk: RiskLevelOption = "medium",
    sizing: Annotated[str, typer.Option(help="fixed, kelly or volatility.")] = "fixed",
    market: Annotated[
        str, typer.Option(help="spot (long only) or linear (USDT perpetuals: shorts, leverage).")
    ] = "spot",
    leverage: Annotated[float, typer.Option(help="Leverage for --market linear (capped by the risk level).")] = 1.0,
    fee: Annotated[
        float | None, typer.Option(help=f"Taker fee per side as a fraction (default: Bybit {default_fee_help()}).")
    ] = None,
    slippage_bps: Annotated[
        float, typer.Option(help="Slippage per market fill in basis points.")
    ] = DEFAULT_SLIPPAGE_BPS,
    on_halt: Annotated[
        str,
        typer.Option(
            "--on-halt",
            help="After a drawdown halt: stop (for good, as live) or resume-after=DURATION (e.g. 30d: "
            "an operator's reset after a cooling-off period, the peak re-based).",
        ),
    ] = "stop",
    signals: Annotated[
        Path | None, typer.Option(help="Stored predictions to replay (implies --strategy signals).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Report path (HTML for tradingview, JSON file, or CSV directory).")
    ] = None,
    check_lookahead: CheckLookaheadOption = False,
    stress_test: Annotated[
        bool,
        typer.Option(
            "--stress-test/--no-stress-test",
            help="Also re-run the strategy under the ten stress scenarios of 'analyze' (Stress Test Survival: k/10).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary; only errors.")] = False,
) -> None:
    """Backtest a strategy on stored candles with next-bar fills, costs and the live risk engine.

    The full result is always saved as JSON (default results/backtest_<from>_<to>.json) so
    'autotrader analyze' can read it.
    """
    from autotrader.analytics.report_data import build_report
    from autotrader.analytics.reports import render_console
    from autotrader.backtest.runner import run_backtest
    from autotrader.backtest.session import build_strategy, load_backtest_data, with_notes
    from autotrader.domain.errors import ConfigError

    if output_format not in ("tradingview", "json", "csv"):
        raise ConfigError(f"--output-format {output_format!r}: choose tradingview, json or csv")
    start, end = parse_period(period)
    params: dict[str, str] = parse_params(param or [])
    _check_on_halt(on_halt)
    if signals is not None:
        strategy = "signals"
        params["path"] = str(signals)
    config = backtest_config(
        symbols,
        start,
        end,
        exchange=exchange,
        timeframe=timeframe,
        initial_capital=initial_capital,
        strategy=strategy,
        params=params,
        risk_level=risk,
        sizing=sizing,
        market=market,
        leverage=leverage,
        fee=fee,
        slippage_bps=slippage_bps,
        on_halt=on_halt,
    )
    limits = config.limits()  # validate risk overrides and leverage before any work
    settings = settings_from_options()
    strat = build_strategy(config, settings.cache_dir, limits=limits)
    console = stdout_console()
    store = open_candle_store(settings)
    try:
        loaded = load_backtest_data(store, config, strat.history_bars)
    finally:
        store.close()
    if not quiet:
        for note in loaded.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
    from autotrader.cli.progress import progress

    steps = 4 if check_lookahead else 3
    computing = f"computing {config.strategy} signals on {loaded.data.n_bars:,} bars"
    with progress(computing, quiet=quiet) as advance:
        step = 0
        if check_lookahead:
            from autotrader.validation.lookahead import check_lookahead as run_check

            advance(step, steps, "checking for lookahead (re-running on truncated data)")
            report = run_check(strat, loaded.data)
            step += 1
            if not quiet:
                console.print(f"Lookahead check: {report}")
        advance(step, steps, computing)
        strat.progress = advance  # a model strategy reports its training in finer steps
        sig = strat.generate(loaded.data)
        strat.progress = None
        advance(step + 1, steps, "simulating the portfolio")
        result = with_notes(
            run_backtest(config, loaded.data, strat, signals=sig, start_row=loaded.start_row, limits=limits),
            loaded.notes,
        )
        advance(step + 2, steps, "building the report")
        doc = build_report(result)
        advance(steps, steps, "backtest done")
    if stress_test:
        from autotrader.validation.stress import run_stress_tests

        store = open_candle_store(settings)
        try:
            with progress("re-running the strategy under 10 stress scenarios", quiet=quiet) as advance:
                stress = run_stress_tests(config, store, cache_dir=settings.cache_dir, progress=advance)
        finally:
            store.close()
        doc["stress"] = stress.to_dict()
    written = _write_backtest_outputs(doc, output_format, output, start, end)
    if not quiet:
        render_console(doc, console)
        console.print("Wrote: " + ", ".join(str(p) for p in written))


def calendar_years(start: str, end: str) -> tuple[str, str] | None:
    """``(first year, last year)`` when ``start:end`` covers whole calendar years, else ``None``.

    >>> calendar_years("2020-01-01", "2024-12-31")
    ('2020', '2024')
    """
    start, end = start.strip(), end.strip()
    if len(start) == len(end) == 10 and start[4:] == "-01-01" and end[4:] == "-12-31" and start[:4] <= end[:4]:
        return start[:4], end[:4]
    return None


def _write_backtest_outputs(doc: dict, output_format: str, output: Path | None, start: str, end: str) -> list[Path]:
    """Always the JSON (for ``analyze``), plus the HTML report or the CSV tables."""
    from autotrader.analytics.reports import write_csv, write_html, write_json

    results_dir = Path("results")
    stem = f"backtest_{start.replace('-', '')[:8]}_{end.replace('-', '')[:8]}"
    json_path = output if (output is not None and output_format == "json") else results_dir / f"{stem}.json"
    written = [write_json(doc, json_path)]
    if (years := calendar_years(start, end)) is not None:  # the name 'analyze' looks for by default
        written.append(write_json(doc, results_dir / f"backtest_{years[0]}_{years[1]}.json"))
    if output_format == "tradingview":
        written.append(write_html(doc, output or results_dir / f"{stem}.html"))
    elif output_format == "csv":
        written.extend(write_csv(doc, output or results_dir / stem))
    return written


# ------------------------------------------------------------------------------- other command groups
def _register_command_groups() -> None:
    """Commands that live in their own modules (each imports its heavy libraries lazily)."""
    from autotrader.cli import analyze, autotrade, broker, dashboard, exchange, signals

    signals.register(app)
    broker.register(app)
    exchange.register(app, data_app)
    analyze.register(app)
    autotrade.register(app)
    dashboard.register(app)


_register_command_groups()


# ----------------------------------------------------------------------------------------------- main


# Rich's option table truncates option names and defaults ("--generate-cha…") on narrow terminals; click's plain
# layout wraps instead and never cuts a name, so it is used below this width.
_RICH_HELP_MIN_COLUMNS = 120


def _terminal_columns() -> int:
    import shutil

    return shutil.get_terminal_size(fallback=(80, 24)).columns


def _use_plain_help(command: object) -> None:
    """Switch a click command tree to click's plain help layout (wraps, never truncates)."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _use_plain_help(sub)


def run(application: typer.Typer) -> None:
    """Run a command tree; turn our errors into one clear line and an exit code."""
    from autotrader.domain.errors import AutoTraderError
    from autotrader.domain.redact import redact

    try:
        command = typer.main.get_command(application)
        if _terminal_columns() < _RICH_HELP_MIN_COLUMNS:
            _use_plain_help(command)
        command(prog_name="autotrader")
    except AutoTraderError as e:
        typer.secho(f"error: {redact(str(e))}", fg=typer.colors.RED, err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        sys.exit(130)
