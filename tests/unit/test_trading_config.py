"""One trading configuration: a backtest and the robot given the same trading fields trade under the
same risk limits, at the same fee, with the same strategy; old saved files still load."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from autotrader.adapters.storage.parquet_store import ParquetCandleStore
from autotrader.backtest import session
from autotrader.backtest.runner import BacktestConfig
from autotrader.backtest.session import build_strategy as backtest_strategy
from autotrader.backtest.session import run_config
from autotrader.domain.candles import SeriesKey
from autotrader.domain.errors import ConfigError
from autotrader.domain.fees import DEFAULT_FEES
from autotrader.exchange_sim.engine import Fees
from autotrader.live.robot_config import RobotConfig
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.risk.trading import TradingConfig
from autotrader.strategy.build import build_strategy
from autotrader.validation.analysis import saved_config

TRADING_CASES: dict[str, dict[str, Any]] = {
    "spot-defaults": {"symbols": ("BTCUSDT",)},
    "linear-leverage-venue-fee": {"symbols": ("BTCUSDT", "ETHUSDT"), "market": "linear", "leverage": 3.0},
    "aggressive-overrides-own-fee": {
        "symbols": ("ETHUSDT",),
        "risk_level": "aggressive",
        "risk_overrides": {"stop_loss": 0.05, "take_profit": 0.1, "min_confidence": 0.6},
        "fee": 0.0004,
        "slippage_bps": 7.0,
    },
    "conservative-kelly-4h": {
        "symbols": ("SOLUSDT",),
        "timeframe": "4h",
        "risk_level": "conservative",
        "sizing": "kelly",
    },
}

# ``config`` inside a result saved by ``autotrader backtest`` before the shared TradingConfig
OLD_SAVED_BACKTEST_CONFIG: dict[str, Any] = {
    "symbols": ["BTCUSDT", "ETHUSDT"],
    "exchange": "binance",
    "timeframe": "1h",
    "start": "2021-01-01",
    "end": "2021-06-30",
    "initial_capital": 10000.0,
    "strategy": "sma_cross",
    "params": {},
    "risk_level": "medium",
    "risk_overrides": {},
    "sizing": "fixed",
    "market": "linear",
    "leverage": 2.0,
    "fee": 0.0006,
    "slippage_bps": 2.0,
    "maintenance_margin": 0.005,
    "max_volume_share": None,
    "offline_windows": [],
    "stops_on_exchange": True,
    "on_halt": "stop",
}


def _both(fields: dict[str, Any]) -> tuple[BacktestConfig, RobotConfig]:
    return BacktestConfig(**fields), RobotConfig(capital=1000.0, **fields)


@pytest.mark.parametrize("case", sorted(TRADING_CASES))
def test_backtest_and_robot_with_the_same_trading_fields_have_the_same_limits_and_fee(case: str) -> None:
    backtest, robot = _both(TRADING_CASES[case])
    assert isinstance(backtest, TradingConfig) and isinstance(robot, TradingConfig)
    assert backtest.limits() == robot.limits()
    assert backtest.fee_rate == robot.fee_rate
    assert backtest.fee == robot.fee


def test_without_a_fee_both_pay_the_venue_taker_fee_of_the_one_fee_table() -> None:
    for market, leverage in (("spot", 1.0), ("linear", 2.0)):
        backtest, robot = _both({"symbols": ("BTCUSDT",), "market": market, "leverage": leverage})
        assert backtest.fee_rate == robot.fee_rate == DEFAULT_FEES[market].taker


def test_the_exchange_simulator_charges_the_fees_of_the_same_table() -> None:
    fees = Fees()
    for market in ("spot", "linear"):
        assert fees.rate(market, maker=False) == Decimal(repr(DEFAULT_FEES[market].taker))
        assert fees.rate(market, maker=True) == Decimal(repr(DEFAULT_FEES[market].maker))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"market": "spot", "leverage": 2.0}, r"leverage applies to --market linear only"),
        ({"market": "linear", "leverage": 4.0}, r"leverage 4 exceeds the medium risk level's cap of 3"),
        ({"risk_overrides": {"stop_loss": 2.0}}, r"stop_loss"),
    ],
    ids=["spot-leverage", "above-cap", "bad-override"],
)
def test_both_refuse_the_same_bad_trading_fields_with_the_same_message(fields: dict[str, Any], message: str) -> None:
    for config in _both({"symbols": ("BTCUSDT",), **fields}):
        with pytest.raises(ConfigError, match=message):
            config.limits()


@pytest.mark.parametrize("kind", ["trading", "backtest", "robot"])
def test_an_unknown_field_is_refused(kind: str) -> None:
    build = {
        "trading": lambda **kw: TradingConfig(**kw),
        "backtest": lambda **kw: BacktestConfig(**kw),
        "robot": lambda **kw: RobotConfig(capital=1000.0, **kw),
    }[kind]
    with pytest.raises(ValidationError, match="leverge"):
        build(symbols=("BTCUSDT",), leverge=2.0)


def test_an_old_saved_backtest_config_still_loads_with_the_same_values_and_flat_names() -> None:
    config = BacktestConfig.model_validate(OLD_SAVED_BACKTEST_CONFIG)
    assert config.symbols == ("BTCUSDT", "ETHUSDT")
    assert (config.market, config.leverage, config.fee, config.fee_rate) == ("linear", 2.0, 0.0006, 0.0006)
    assert config.limits().max_leverage == 3.0
    saved_again = config.model_dump(mode="json")
    assert saved_again == OLD_SAVED_BACKTEST_CONFIG  # a new file has the same flat fields and values


def test_analyze_reads_the_config_of_an_old_saved_result(tmp_path: Path) -> None:
    config = saved_config({"config": OLD_SAVED_BACKTEST_CONFIG}, tmp_path / "old.json")
    assert config == BacktestConfig(**{**OLD_SAVED_BACKTEST_CONFIG, "symbols": ("BTCUSDT", "ETHUSDT")})


def test_a_robot_config_with_the_old_fee_name_still_loads() -> None:
    assert RobotConfig(symbols=("BTCUSDT",), capital=1000.0, fee_rate=0.0002).fee_rate == 0.0002
    assert RobotConfig(symbols=("BTCUSDT",), capital=1000.0, fee_rate=0.0002, fee=0.0002).fee == 0.0002
    with pytest.raises(ValidationError, match="give the fee once"):
        RobotConfig(symbols=("BTCUSDT",), capital=1000.0, fee_rate=0.0002, fee=0.001)


def test_robot_and_backtest_build_the_same_strategy_for_the_same_trading_fields() -> None:
    fields = TRADING_CASES["aggressive-overrides-own-fee"]
    params = {"horizon": 12}
    backtest, robot = _both(fields)
    from_backtest = backtest_strategy(backtest.model_copy(update={"strategy": "ml", "params": params}))
    from_robot = build_strategy("ml", params, robot)
    assert from_robot.params == from_backtest.params
    assert from_robot.params["threshold"] == 0.6  # the overridden minimum confidence
    assert from_robot.params["cost"] == pytest.approx(2 * (0.0004 + 0.0007))  # the round trip's fee and slippage


def test_a_backtest_run_computes_its_risk_limits_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = SeriesKey.of("binance", "BTCUSDT", "1h")
    store = ParquetCandleStore(tmp_path)
    store.upsert(key, read_parquet_candles(bundled_files()[key]))
    calls: list[TradingConfig] = []
    limits = TradingConfig.limits

    def counted(self: TradingConfig) -> Any:
        calls.append(self)
        return limits(self)

    monkeypatch.setattr(TradingConfig, "limits", counted)
    config = BacktestConfig(
        symbols=("BTCUSDT",), start="2021-01-01", end="2021-03-31", strategy="ml", params={"horizon": 12}
    )
    # the strategy is built the way a run builds it (threshold from the limits), but its signals are not needed
    monkeypatch.setattr(session, "strategy_for", _sma_instead_of(session.strategy_for))
    result = run_config(config, store)
    assert len(calls) == 1
    assert result.limits == limits(config)


def _sma_instead_of(build: Any) -> Any:
    def build_sma(name: str, params: Any, trading: TradingConfig, **kw: Any) -> Any:
        build(name, params, trading, **kw)  # the ML strategy asks the limits for its threshold (if not given them)
        return build("sma_cross", {}, trading, **kw)

    return build_sma


def test_the_signal_engine_builds_the_robots_model_for_the_same_trading_fields() -> None:
    from autotrader.cli.signals import _build_model, _model_config

    trading, params = _model_config("signals serve", "btcusdt,ETHUSDT", "1h", ["horizon=12"], "aggressive")
    assert type(trading) is TradingConfig  # trading fields only: no backtest period, capital or exchange
    model = _build_model("ml", params, trading, None)
    robot = RobotConfig(symbols=("BTCUSDT", "ETHUSDT"), capital=1000.0, risk_level="aggressive")
    assert model.params == build_strategy("ml", {"horizon": "12"}, robot).params


def test_a_bad_signal_engine_option_is_one_config_error_line() -> None:
    from autotrader.cli.signals import _model_config

    with pytest.raises(ConfigError, match=r"^signals publish: risk-level: Input should be 'conservative'"):
        _model_config("signals publish", "BTCUSDT", "1h", None, "reckless")


BACKTEST_CONFIG_BUILDERS = {  # modules that build a BacktestConfig to run a backtest, not just to get a strategy
    "cli/common.py",
    "cli/sweep.py",
}


def test_only_backtest_runs_construct_a_backtest_config() -> None:
    import re

    import autotrader

    src = Path(autotrader.__file__).parent
    builders = {
        path.relative_to(src).as_posix()
        for path in src.rglob("*.py")
        if re.search(r"\bBacktestConfig\(", path.read_text(encoding="utf-8"))
    }
    others = {p for p in builders if not p.startswith(("backtest/", "validation/"))}
    assert others <= BACKTEST_CONFIG_BUILDERS


def test_the_ml_models_own_default_cost_is_what_a_default_trading_config_gives_it() -> None:
    from autotrader.strategy.library.ml import DEFAULT_COST, MlStrategy

    default_trading = TradingConfig(symbols=("BTCUSDT",))
    assert MlStrategy.parameters["cost"].default == DEFAULT_COST
    assert build_strategy("ml", {}, default_trading).params["cost"] == pytest.approx(DEFAULT_COST, rel=1e-12)


def test_the_backtest_commands_fee_help_and_slippage_default_come_from_the_one_table() -> None:
    import typer

    from autotrader.cli import app

    command = typer.main.get_command(app).commands["backtest"]  # type: ignore[attr-defined]
    options = {p.name: p for p in command.params}
    assert options["slippage_bps"].default == TradingConfig(symbols=("BTCUSDT",)).slippage_bps
    for market, fees in DEFAULT_FEES.items():
        assert f"{market} {fees.taker:g}" in options["fee"].help
