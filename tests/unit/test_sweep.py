"""Parameter sweeps as columns: every combination's metrics equal a single ``run_backtest`` with those parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autotrader.analytics import metrics
from autotrader.backtest.runner import BacktestConfig, run_backtest
from autotrader.backtest.sweep import METRICS, SweepResult, parse_grid, sweep
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import SeriesKey
from autotrader.domain.errors import ConfigError
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.strategy.base import get_strategy

GRID = {"fast": [5, 12, 30], "slow": [20, 50]}
SPOT = BacktestConfig(symbols=("BTCUSDT", "ETHUSDT"), strategy="sma_cross")
LINEAR = BacktestConfig(
    symbols=("BTCUSDT", "ETHUSDT"), strategy="sma_cross", params={"short": True}, market="linear", leverage=2.0,
    sizing="volatility", slippage_bps=5.0, fee=0.0007, initial_capital=25_000.0, max_volume_share=0.5,
    risk_level="aggressive", risk_overrides={"take_profit": 0.05, "trailing_stop": 0.03, "daily_loss": 0.02},
)  # fmt: skip


@pytest.fixture(scope="module")
def data() -> AlignedCandles:
    series = {s: read_parquet_candles(bundled_files()[SeriesKey.of("binance", s, "1h")]) for s in SPOT.symbols}
    full = align(series)
    keep = slice(0, 9_000)
    return AlignedCandles(
        full.symbols, full.ts[keep], *(getattr(full, f)[keep] for f in ("open", "high", "low", "close", "volume")),
        full.present[keep],
    )  # fmt: skip


def _single(config: BacktestConfig, data: AlignedCandles, fast: int, slow: int) -> dict[str, float]:
    params = {**config.params, "fast": fast, "slow": slow}
    res = run_backtest(config.model_copy(update={"params": params}), data, get_strategy("sma_cross", **params))
    _, day_equity = metrics.daily_equity(res.ts, res.equity)
    pnl = res.trades["pnl"]
    return {
        "total_return": metrics.total_return(res.equity),
        "max_drawdown": metrics.max_drawdown(res.equity),
        "sharpe": metrics.sharpe_ratio(metrics.daily_returns(day_equity)),
        "trades": len(res.trades),
        "win_rate": metrics.win_rate(pnl),
        "profit_factor": metrics.profit_factor(pnl),
        "final_equity": float(res.equity[-1]),
    }


@pytest.mark.slow  # the first run in a fresh checkout compiles the parallel sweep kernel
@pytest.mark.parametrize("config", [SPOT, LINEAR], ids=["spot", "linear-short-stops-volatility"])
def test_sweep_every_combination_equals_single_run(config: BacktestConfig, data: AlignedCandles) -> None:
    result = sweep(config, data, GRID)
    assert len(result.table) == 5 and result.skipped == 1  # 30/20 is refused (fast >= slow)
    traded = 0
    for row in result.table:
        expected = _single(config, data, int(row["fast"]), int(row["slow"]))
        traded += expected["trades"]
        for name in ("trades", "final_equity", "total_return", "max_drawdown", "win_rate"):
            assert row[name] == expected[name], (row["fast"], row["slow"], name)
        for name in ("sharpe", "profit_factor"):  # summation order only: last-bit differences
            assert math.isclose(row[name], expected[name], rel_tol=1e-9), (row["fast"], row["slow"], name)
    assert traded > 100


def test_parse_grid_ranges_lists_and_errors() -> None:
    grid = parse_grid(["fast=5:50:5", "slow=20:200:10", "fast=7,3"])
    assert grid["fast"] == [3, 5, 7, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert len(grid["slow"]) == 19 and grid["slow"][-1] == 200
    assert parse_grid(["slow=2:4"]) == {"slow": [2, 3, 4]}
    for bad in ("fast", "fast=", "fast=5:x", "fast=5:50:0", "fast=50:5"):
        with pytest.raises(ConfigError, match="--grid"):
            parse_grid([bad])


def test_sweep_refuses_unknown_strategy_and_parameter(data: AlignedCandles) -> None:
    with pytest.raises(ConfigError, match="no compiled column sweep"):
        sweep(SPOT.model_copy(update={"strategy": "rsi_reversion"}), data, {"lower": [20, 30]})
    with pytest.raises(ConfigError, match="cannot sweep 'short'"):
        sweep(SPOT, data, {"short": [0, 1]})
    with pytest.raises(ConfigError, match="no valid combination"):
        sweep(SPOT, data, {"fast": [50], "slow": [20]})


def test_sweep_result_best_orders_by_metric_nan_last() -> None:
    table = np.zeros(3, dtype=[("fast", "i8"), ("slow", "i8")] + [(m, "f8") for m in METRICS])
    table["sharpe"] = [0.5, np.nan, 1.5]
    table["fast"] = [1, 2, 3]
    result = SweepResult("sma_cross", ("fast", "slow"), table, 0, 10, 0.0)
    assert list(result.best("sharpe")["fast"]) == [3, 1, 2]
    assert result.to_rows()[0]["fast"] == 1
    with pytest.raises(ConfigError, match="unknown metric"):
        result.best("nope")


def test_a_saved_sweep_is_strict_json_and_keeps_an_infinite_profit_factor(tmp_path) -> None:
    import json

    from autotrader.cli.sweep import save_sweep

    table = np.zeros(2, dtype=[("fast", "i8"), ("slow", "i8")] + [(m, "f8") for m in METRICS])
    table["profit_factor"] = [np.inf, 1.5]  # no losing trade: an infinite profit factor
    table["sharpe"] = [np.nan, 0.5]
    result = SweepResult("sma_cross", ("fast", "slow"), table, 0, 10, 0.0)
    path = save_sweep(tmp_path / "grid.json", SPOT, {"fast": [1], "slow": [2]}, "sharpe", result)
    rows = json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))["rows"]
    assert [r["profit_factor"] for r in rows] == ["inf", 1.5]
    assert [r["sharpe"] for r in rows] == [None, 0.5]


def test_a_sweep_that_cannot_finish_writing_leaves_the_previous_file_whole(tmp_path, monkeypatch) -> None:
    from autotrader import files
    from autotrader.cli.sweep import save_sweep

    path = tmp_path / "grid.json"
    path.write_text('{"rows": []}', encoding="utf-8")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    table = np.zeros(1, dtype=[("fast", "i8"), ("slow", "i8")] + [(m, "f8") for m in METRICS])
    with pytest.raises(OSError, match="No space left"):
        save_sweep(path, SPOT, {}, "sharpe", SweepResult("sma_cross", ("fast", "slow"), table, 0, 10, 0.0))
    assert path.read_text(encoding="utf-8") == '{"rows": []}'
