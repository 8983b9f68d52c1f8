"""The backtest beside the live results: the strategy behind the robot's signals, with the robot's trading
fields, over the same window; a missing comparison says why instead of failing the report."""

from __future__ import annotations

from pathlib import Path

from autotrader.adapters.storage.parquet_store import ParquetCandleStore
from autotrader.domain.candles import SeriesKey, parse_date_ms
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.marketdata.store import CandleStore
from autotrader.validation.live_comparison import backtest_comparison, comparison_config

SINCE = parse_date_ms("2023-01-01")
UNTIL = parse_date_ms("2023-06-30")
ROBOT = {
    "symbols": ["BTCUSDT"],
    "timeframe": "1h",
    "capital": 2_000.0,
    "strategy": "sma_cross",
    "strategy_params": {"fast": 10, "slow": 50},
    "risk_level": "aggressive",
    "market": "linear",
    "leverage": 2.0,
    "fee": 0.0004,
    "slippage_bps": 3.0,
}


def no_candles() -> CandleStore:
    raise AssertionError("the candle store is opened only when a backtest runs")


def bundled(tmp_path: Path) -> CandleStore:
    key = SeriesKey.of("binance", "BTCUSDT", "1h")
    store = ParquetCandleStore(tmp_path)
    store.upsert(key, read_parquet_candles(bundled_files()[key]))
    return store


def test_no_signal_and_no_configured_strategy_means_no_comparison() -> None:
    assert backtest_comparison({}, [], no_candles, SINCE, UNTIL) is None


def test_signals_of_an_outside_model_get_a_comparison_that_says_why_there_is_no_backtest() -> None:
    models = ["upstream-lgbm", "upstream-lgbm", "sma_cross"]  # most signals came from outside
    got = backtest_comparison(ROBOT, models, no_candles, SINCE, UNTIL)
    assert got is not None
    assert (got.strategy, got.trades) == ("upstream-lgbm", ())
    assert got.note == "'upstream-lgbm' is not a built-in strategy to backtest"


def test_a_backtest_that_cannot_run_still_gives_a_comparison_with_its_reason(tmp_path: Path) -> None:
    robot = {**ROBOT, "symbols": ["NOSUCHUSDT"]}
    got = backtest_comparison(robot, [], lambda: bundled(tmp_path), SINCE, UNTIL)
    assert got is not None and got.note.startswith("no backtest: ")


def test_the_comparison_backtest_trades_with_the_robots_fields_over_the_window() -> None:
    config = comparison_config(ROBOT, "sma_cross", SINCE, UNTIL)
    assert (config.start, config.end, config.initial_capital) == ("2023-01-01", "2023-06-30", 2_000.0)
    assert (config.market, config.leverage, config.risk_level) == ("linear", 2.0, "aggressive")
    assert (config.fee_rate, config.slippage_bps, config.params) == (0.0004, 3.0, {"fast": 10, "slow": 50})
    other = comparison_config(ROBOT, "ml", SINCE, UNTIL)
    assert other.params == {}  # the robot's parameters belong to its own strategy only


def test_an_old_robot_config_with_fee_rate_keeps_its_fee() -> None:
    old = {k: v for k, v in ROBOT.items() if k != "fee"} | {"fee_rate": 0.0002}
    assert comparison_config(old, "sma_cross", SINCE, UNTIL).fee_rate == 0.0002


def test_the_strategy_behind_the_signals_is_backtested_and_its_trades_carry_signal_ids(tmp_path: Path) -> None:
    got = backtest_comparison(ROBOT, ["sma_cross"], lambda: bundled(tmp_path), SINCE, UNTIL)
    assert got is not None and got.note == ""
    assert (got.strategy, got.fee_rate, got.slippage_bps) == ("sma_cross", 0.0004, 3.0)
    assert got.trades
    for trade in got.trades:
        prefix, _, opened = trade.signal_id.rpartition("-")
        assert prefix == "sma_cross-BTCUSDT-1h" and SINCE <= int(opened) <= UNTIL
    assert got.accuracy is None and got.accuracy_note == "sma_cross makes no forecast with a horizon"
