"""``autotrader optimize --grid ...``: a full parameter grid in one compiled parallel pass (``backtest.sweep``).

The rows go to a JSON file written atomically; a non-finite figure is written as ``json_safe`` writes
it (NaN as ``null``, an infinite profit factor as ``"inf"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotrader.domain.jsonsafe import json_safe
from autotrader.files import write_text_atomic

if TYPE_CHECKING:
    from autotrader.backtest.runner import BacktestConfig
    from autotrader.backtest.sweep import SweepResult

SHOWN_ROWS = 20
_HEADERS = {
    "total_return": "return",
    "max_drawdown": "max DD",
    "sharpe": "Sharpe",
    "trades": "trades",
    "win_rate": "win",
    "profit_factor": "PF",
    "final_equity": "equity",
}


def run_grid_sweep(config: BacktestConfig, grid_items: Sequence[str], objective: str, output: Path | None) -> Path:
    """Load the stored candles, sweep the grid, print the best rows by ``objective``, save every row as JSON."""
    from rich.table import Table

    from autotrader.backtest.session import load_backtest_data
    from autotrader.backtest.sweep import METRICS, parse_grid, sweep
    from autotrader.cli.common import open_candle_store, settings_from_options, stdout_console
    from autotrader.domain.errors import ConfigError

    if objective not in METRICS:
        raise ConfigError(f"--objective {objective!r} with --grid: choose one of {', '.join(METRICS)}")
    grid = parse_grid(grid_items)
    console = stdout_console()
    store = open_candle_store(settings_from_options())
    try:
        loaded = load_backtest_data(store, config)
    finally:
        store.close()
    for note in loaded.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    result = sweep(config, loaded.data, grid)
    n = len(result.table)
    console.print(
        f"Swept {n:,} combinations of {config.strategy} on {result.n_bars:,} bars x {len(config.symbols)} symbol(s) "
        f"in {result.elapsed_s:.2f} s ({result.skipped} refused by the strategy)."
    )
    table = Table(title=f"Best {min(n, SHOWN_ROWS)} by {objective}")
    for name in (*result.params, *METRICS):
        table.add_column(_HEADERS.get(name, name), justify="right")
    for row in result.best(objective, SHOWN_ROWS):
        table.add_row(*(str(int(row[p])) for p in result.params), *(_cell(m, row[m]) for m in METRICS))
    console.print(table)
    stem = f"sweep_{config.strategy}_{config.start.replace('-', '')[:8]}_{config.end.replace('-', '')[:8]}"
    path = save_sweep(output or Path("results") / f"{stem}.json", config, grid, objective, result)
    console.print(f"Wrote: {path}")
    return path


def save_sweep(
    path: Path, config: BacktestConfig, grid: Mapping[str, Any], objective: str, result: SweepResult
) -> Path:
    """Write the sweep's every row with its config as strict JSON, atomically; returns ``path``."""
    doc: dict[str, Any] = {
        "strategy": config.strategy,
        "config": config.model_dump(mode="json"),
        "grid": grid,
        "objective": objective,
        "skipped": result.skipped,
        "elapsed_s": result.elapsed_s,
        "rows": result.to_rows(),
    }
    return write_text_atomic(path, json.dumps(json_safe(doc), indent=1, allow_nan=False))


def _cell(metric: str, value: Any) -> str:
    v = float(value)
    if math.isnan(v):
        return "n/a"
    if metric in ("total_return", "max_drawdown", "win_rate"):
        return f"{100 * v:+.2f}%" if metric != "win_rate" else f"{100 * v:.1f}%"
    if metric == "trades":
        return str(int(v))
    if metric == "final_equity":
        return f"{v:,.0f}"
    return f"{v:.3f}"
