"""General warm-up: a backtest loads the bars its strategy needs before the period and trades from its start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotrader.adapters.storage.parquet_store import ParquetCandleStore
from autotrader.analytics.report_data import build_report
from autotrader.backtest.runner import BacktestConfig
from autotrader.backtest.session import run_config
from autotrader.domain.candles import SeriesKey, format_ms, parse_date_ms
from autotrader.domain.errors import DataError
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles

BTC = SeriesKey.of("binance", "BTCUSDT", "1h")
SLOW = {"fast": 50, "slow": 1500}  # 1,500 hours: a slow average that never forms inside a short period


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ParquetCandleStore:
    """BTC 1h 2020-2024 only (no pre-2020 history)."""
    s = ParquetCandleStore(Path(tmp_path_factory.mktemp("warmup")))
    s.upsert(BTC, read_parquet_candles(bundled_files()[BTC]))
    return s


def _config(start: str, end: str, **params: object) -> BacktestConfig:
    return BacktestConfig(symbols=("BTCUSDT",), start=start, end=end, strategy="sma_cross", params={**SLOW, **params})


def _legs(trades: np.ndarray) -> list[tuple[int, int, int, float, float]]:
    return [
        (int(t["entry_ts"]), int(t["exit_ts"]), int(t["side"]), float(t["entry_price"]), float(t["exit_price"]))
        for t in trades
        if t["exit_reason"] != "end_of_data"
    ]


def test_warmup_slow_sma_short_period_same_trades_as_inside_longer_run(store: ParquetCandleStore) -> None:
    long_run = run_config(_config("2020-06-01", "2021-12-31"), store)
    # start the short run on a bar where the long run is flat, a few months before its end
    short_start_ms = parse_date_ms("2021-06-01")
    open_at_start = [t for t in long_run.trades if t["entry_ts"] < short_start_ms <= t["exit_ts"]]
    assert not open_at_start, "pick a start where the long run holds nothing"

    short_run = run_config(_config("2021-06-01", "2021-12-31"), store)

    expected = [leg for leg in _legs(long_run.trades) if leg[0] >= short_start_ms]
    assert len(expected) >= 2
    assert _legs(short_run.trades) == expected
    assert short_run.warmup["bars_before_period"] == 1500
    assert short_run.warmup["missing_bars"] == 0
    assert format_ms(int(short_run.ts[0])) == "2021-06-01 00:00"  # measured from the period's first bar


def test_warmup_missing_history_period_start_is_warmup_and_measured_after(store: ParquetCandleStore) -> None:
    result = run_config(_config("2020-01-01", "2020-06-30"), store)  # the store starts on 2020-01-01

    w = result.warmup
    assert (w["bars_before_period"], w["missing_bars"]) == (0, 1500)
    assert w["period_warmup_from"] == "2020-01-01 00:00"
    first_ts = int(result.ts[0])
    assert w["measured_from"] == format_ms(first_ts)
    assert first_ts > parse_date_ms("2020-01-01") + 1400 * 3_600_000
    # buy & hold is bought at the first measured bar, not at the warm-up's first bar
    assert result.benchmark_equity[0] == pytest.approx(
        10_000.0 * result.data.close[0, 0] / result.data.open[0, 0], rel=1e-12
    )
    doc = build_report(result)
    assert doc["period"]["warmup"]["missing_bars"] == 1500
    assert "were warm-up (not traded)" in doc["period"]["note"]
    assert "2020-01-01 00:00" in doc["period"]["note"]


def test_warmup_whole_period_needed_as_warmup_is_one_clear_data_error(store: ParquetCandleStore) -> None:
    with pytest.raises(DataError, match="needs 1,500 bars of warm-up"):
        run_config(_config("2020-01-01", "2020-01-31"), store)


def test_report_costs_share_of_gross_profit_counts_fees_and_slippage(store: ParquetCandleStore) -> None:
    result = run_config(_config("2021-06-01", "2021-12-31"), store)
    s = build_report(result)["summary"]
    t = result.trades
    slippage = float(np.sum(t["qty"] * (t["entry_price"] + t["exit_price"]))) * 2.0 / 10_000
    costs = float(np.sum(t["entry_fee"] + t["exit_fee"])) + slippage
    gross = t["pnl"] + t["entry_fee"] + t["exit_fee"] + t["qty"] * (t["entry_price"] + t["exit_price"]) * 2e-4
    assert s["costs_usd"] == pytest.approx(costs)
    assert s["costs_share_of_gross_profit"] == pytest.approx(costs / float(np.sum(gross[gross > 0])))


def test_report_leaves_per_bar_signal_arrays_out(store: ParquetCandleStore) -> None:
    result = run_config(_config("2021-06-01", "2021-12-31"), store)
    result.signals_meta["p_up"] = np.zeros((result.ts.size, 1))
    doc = build_report(result)
    assert "p_up" not in doc["signals"]
    assert doc["signals"]["n_signals"] == result.signals_meta["n_signals"]


def test_console_summary_shows_costs_share_and_missing_warmup(store: ParquetCandleStore) -> None:
    from rich.console import Console

    from autotrader.analytics.reports import render_console

    console = Console(record=True, width=300)
    render_console(build_report(run_config(_config("2020-01-01", "2020-06-30"), store)), console)
    text = console.export_text()
    assert "of gross profit" in text
    assert "Warm-up: 1,500 bars needed; no stored bars before the period; 1,500 bars were missing" in text
