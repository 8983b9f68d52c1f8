"""The backtest beside the robot's live results: the strategy that made the signals, over the same window.

``backtest_comparison`` takes the robot's saved configuration and the models behind its decisions
(the caller reads them from the state store) and the candles from a candle store, backtests the
strategy behind most of the signals with the robot's trading fields, and returns the
``BacktestComparison`` that ``live.status.live_results`` sets against the live trades.
``cli.status`` renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autotrader.analytics.comparison import BacktestComparison, BacktestTrade
from autotrader.backtest.runner import BacktestConfig, run_backtest
from autotrader.backtest.session import build_strategy
from autotrader.domain.candles import format_ms
from autotrader.marketdata.store import CandleStore, read_aligned

__all__ = ["backtest_comparison", "comparison_config"]


def backtest_comparison(
    robot_config: Mapping[str, Any],
    signal_models: Sequence[str],
    open_candles: Callable[[], CandleStore],
    since_ms: int,
    until_ms: int,
    *,
    cache_dir: Path | None = None,
) -> BacktestComparison | None:
    """Backtest the strategy that made the signals from ``since_ms`` to ``until_ms`` on stored candles.

    ``robot_config``: the robot's saved configuration (its ``config`` meta record); ``signal_models``:
    the model of each decision in the window. The strategy is the model behind most of them (else
    the robot's configured strategy); ``None`` when there is neither. A model that is not a built-in strategy, or a
    backtest that cannot run, gives a comparison whose ``note`` says why. ``open_candles`` is
    called (and the store closed) only when a backtest runs.
    """
    from autotrader.strategy.base import registered_strategies

    config = robot_config
    models = list(signal_models)
    if not models and config.get("strategy"):
        models = [config["strategy"]]
    if not models:
        return None
    model = max(set(models), key=models.count)
    import autotrader.strategy.library  # noqa: F401 (registers the built-in strategies)

    if model not in registered_strategies():
        return BacktestComparison(model, None, 0, (), 0.0, 0.0, f"{model!r} is not a built-in strategy to backtest")
    try:
        return _run(comparison_config(config, model, since_ms, until_ms), open_candles, since_ms, until_ms, cache_dir)
    except Exception as e:  # a report must still print: say why the comparison is missing
        return BacktestComparison(model, None, 0, (), 0.0, 0.0, f"no backtest: {str(e).splitlines()[0][:200]}")


def comparison_config(robot_config: Mapping[str, Any], model: str, since_ms: int, until_ms: int) -> BacktestConfig:
    """The backtest of ``model`` with the robot's saved trading fields over the window's days.

    The robot's strategy parameters apply when ``model`` is its configured strategy.
    """
    config = robot_config
    return BacktestConfig(
        symbols=tuple(config.get("symbols") or ("BTCUSDT",)),
        exchange=config.get("candles_exchange", "binance"),
        timeframe=config.get("timeframe", "1h"),
        start=format_ms(since_ms)[:10],
        end=format_ms(until_ms)[:10],
        initial_capital=float(config.get("capital", 1000.0)),
        strategy=model,
        params=dict(config.get("strategy_params") or {}) if model == config.get("strategy") else {},
        risk_level=config.get("risk_level", "medium"),
        sizing=config.get("sizing", "fixed"),
        market=config.get("market", "spot"),
        leverage=float(config.get("leverage", 1.0)),
        fee=config.get("fee", config.get("fee_rate")),  # robots before the shared TradingConfig stored 'fee_rate'
        **{k: config[k] for k in ("slippage_bps", "risk_overrides") if k in config},
    )


def _run(
    bt: BacktestConfig,
    open_candles: Callable[[], CandleStore],
    since_ms: int,
    until_ms: int,
    cache_dir: Path | None,
) -> BacktestComparison:
    from autotrader.analytics.report_data import build_report

    candle_store = open_candles()
    try:
        data = read_aligned(candle_store, bt.exchange, bt.symbols, bt.timeframe, since_ms, until_ms)
    finally:
        candle_store.close()
    result = run_backtest(bt, data, build_strategy(bt, cache_dir))
    acc = build_report(result)["summary"].get("signal_accuracy") or {}
    model, tf = bt.strategy, bt.timeframe
    trades = [
        BacktestTrade(
            signal_id=f"{model}-{t['symbol']}-{tf}-{int(t['signal_ts'])}",
            symbol=str(t["symbol"]),
            side=int(t["side"]),
            qty=float(t["qty"]),
            entry_price=float(t["entry_price"]),
            exit_price=float(t["exit_price"]),
            fees=float(t["entry_fee"] + t["exit_fee"]),
            pnl=float(t["pnl"]),
        )
        for t in result.trades
        if since_ms <= int(t["signal_ts"]) <= until_ms and t["exit_reason"] != "end_of_data"
    ]
    accuracy = acc.get("accuracy")
    return BacktestComparison(
        model,
        None if accuracy is None else float(accuracy),
        int(acc.get("evaluated") or 0),
        trades,
        bt.fee_rate,
        bt.slippage_bps,
        accuracy_note="" if acc else f"{model} makes no forecast with a horizon",
    )
