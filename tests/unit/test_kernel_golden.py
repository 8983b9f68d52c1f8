"""The compiled kernel's results are pinned bit for bit: trades, events, equity and exposure.

Speed work on the kernel, ``simulate_portfolio_into_nb`` (skipping per-bar work that cannot
change anything), must not change a single bit of any result. ``tests/data/kernel_golden.npz`` holds the results of the
kernel as it was before that work, on seeded random candles (with gaps) and random signals, for
configurations with the risk limits on and off, spot and linear, one and several symbols,
stops, trailing stops, targets, liquidations, offline windows, Kelly and volatility sizing.

Regenerate (only for an intended change of behaviour) with
``PYTHONPATH=src python tests/unit/test_kernel_golden.py --write``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotrader.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from autotrader.domain.aligned import align
from autotrader.domain.candles import Candles
from autotrader.domain.instrument import Instrument
from autotrader.strategy.base import Signals, Strategy

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "kernel_golden.npz"
HOUR_MS = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
SYMBOLS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")
NO_LIMITS = {"daily_loss": 1.0, "max_drawdown": 1.0, "correlation": 1.0, "stop_loss": None, "min_confidence": 0.0}


class RandomSignals(Strategy):
    """Seeded random directions (mostly none) and confidences."""

    name = "golden_random_signals"

    def __init__(self, seed: int, density: float) -> None:
        super().__init__()
        self.seed = seed
        self.density = density

    def generate(self, data: Any) -> Signals:
        rng = np.random.default_rng(self.seed)
        shape = data.close.shape
        d = rng.choice(np.array([-1.0, 0.0, 1.0]), size=shape)
        d[rng.random(shape) > self.density] = np.nan
        c = np.where(np.isnan(d), np.nan, rng.uniform(0.3, 1.0, shape))
        return Signals(direction=d, confidence=c)


def candles(n_bars: int, n_symbols: int, seed: int, vol: float) -> Any:
    """Seeded random-walk hourly candles; every symbol but the first has a few gaps."""
    series = {}
    for j in range(n_symbols):
        rng = np.random.default_rng([seed, j])
        close = 100.0 * (j + 1) * np.exp(np.cumsum(rng.normal(0.0, vol, n_bars)))
        open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0.0, vol / 4, n_bars))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n_bars)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n_bars)))
        volume = rng.uniform(0.5, 50.0, n_bars)
        keep = np.ones(n_bars, dtype=bool)
        if j > 0:
            keep[rng.choice(n_bars, n_bars // 40, replace=False)] = False
            keep[: 20 * j] = False  # listed later
        ts = T0 + HOUR_MS * np.arange(n_bars, dtype=np.int64)
        series[SYMBOLS[j]] = Candles(ts[keep], open_[keep], high[keep], low[keep], close[keep], volume[keep])
    return align(series)


def rules(market: str, n_symbols: int, coarse: bool) -> dict[str, Instrument]:
    out = {}
    for sym in SYMBOLS[:n_symbols]:
        if coarse:
            out[sym] = Instrument.trading(sym, market, tick_size=0.01, lot_step=0.001, min_qty=0.001, min_notional=5.0)  # type: ignore[arg-type]
        else:
            out[sym] = Instrument.trading(sym, market, tick_size=0.0, lot_step=0.0, min_qty=0.0, min_notional=0.0)  # type: ignore[arg-type]
    return out


# name -> (bars, symbols, data seed, volatility, signal density, coarse rules, config fields)
CASES: dict[str, tuple[int, int, int, float, float, bool, dict[str, Any]]] = {
    "spot_1sym_bare": (1500, 1, 1, 0.01, 0.05, False, {"risk_overrides": NO_LIMITS}),
    "spot_1sym_limits": (
        1500,
        1,
        2,
        0.02,
        0.08,
        True,
        {"risk_overrides": {"daily_loss": 0.01, "max_drawdown": 0.2, "stop_loss": 0.02, "take_profit": 0.04}},
    ),
    "spot_3sym_trailing_kelly": (
        1200,
        3,
        3,
        0.015,
        0.06,
        True,
        {
            "sizing": "kelly",
            "risk_overrides": {"trailing_stop": 0.03, "kelly_min_trades": 5, "correlation": 0.5, "daily_loss": 0.05},
        },
    ),
    "linear_3sym_lev5_limits": (
        1200,
        3,
        4,
        0.02,
        0.07,
        True,
        {
            "market": "linear",
            "leverage": 5.0,
            "risk_overrides": {"max_leverage": 10.0, "daily_loss": 0.04, "max_drawdown": 0.15, "stop_loss": 0.05},
            "on_halt": "resume-after=3d",
        },
    ),
    "linear_2sym_lev10_bare": (
        1500,
        2,
        5,
        0.02,
        0.05,
        False,
        {"market": "linear", "leverage": 10.0, "risk_overrides": {**NO_LIMITS, "max_leverage": 10.0}},
    ),
    "linear_3sym_offline_vol": (
        1200,
        3,
        6,
        0.015,
        0.1,
        True,
        {
            "market": "linear",
            "leverage": 3.0,
            "sizing": "volatility",
            "stops_on_exchange": False,
            "offline_windows": ((T0 + 100 * HOUR_MS, T0 + 160 * HOUR_MS), (T0 + 700 * HOUR_MS, T0 + 720 * HOUR_MS)),
            "max_volume_share": 0.5,
            "risk_overrides": {"max_leverage": 5.0, "take_profit": 0.03, "trailing_stop": 0.02, "max_drawdown": 0.3},
        },
    ),
    "spot_2sym_halt_keep": (
        1200,
        2,
        7,
        0.03,
        0.1,
        False,
        {
            "risk_overrides": {
                "max_drawdown": 0.1,
                "flatten_on_halt": False,
                "daily_loss": 1.0,
                "stop_loss": None,
                "position_size": 1.0,
            }
        },
    ),
    "spot_3sym_daily_only": (
        1200,
        3,
        8,
        0.02,
        0.1,
        False,
        {"risk_overrides": {**NO_LIMITS, "daily_loss": 0.02}},
    ),
}


def run_case(name: str) -> BacktestResult:
    n_bars, n_symbols, seed, vol, density, coarse, fields = CASES[name]
    market = fields.get("market", "spot")
    cfg = BacktestConfig(
        symbols=SYMBOLS[:n_symbols],
        strategy=RandomSignals.name,
        fee=0.0006,
        slippage_bps=3.0,
        risk_level="aggressive",
        **fields,
    )
    data = candles(n_bars, n_symbols, seed, vol)
    return run_backtest(cfg, data, RandomSignals(seed + 100, density), instruments=rules(market, n_symbols, coarse))


def arrays_of(name: str, result: BacktestResult) -> dict[str, np.ndarray]:
    return {
        f"{name}.equity": result.equity,
        f"{name}.exposure": result.exposure,
        f"{name}.trades": result.trades,
        f"{name}.events": result.events,
    }


@pytest.fixture(scope="module")
def golden() -> Any:
    with np.load(GOLDEN) as stored:
        return {k: stored[k] for k in stored.files}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_results_are_bit_identical_to_the_golden_run(name: str, golden: dict[str, np.ndarray]) -> None:
    for key, got in arrays_of(name, run_case(name)).items():
        want = golden[key]
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, f"{key}: {got.shape} != {want.shape}"
        if got.dtype.names:
            for f in got.dtype.names:
                np.testing.assert_array_equal(got[f], want[f], err_msg=f"{key}.{f}", strict=True)
        else:
            np.testing.assert_array_equal(got, want, err_msg=key, strict=True)


def test_the_golden_cases_exercise_every_exit_and_risk_event(golden: dict[str, np.ndarray]) -> None:
    reasons = {str(r) for k, v in golden.items() if k.endswith(".trades") for r in v["exit_reason"]}
    events = {str(e) for k, v in golden.items() if k.endswith(".events") for e in v["event"]}
    assert {"signal", "stop_loss", "take_profit", "trailing_stop", "liquidation", "kill_switch"} <= reasons
    assert {"daily_loss_hit", "drawdown_halt", "halt_resumed"} <= events


def write_golden() -> None:
    out: dict[str, np.ndarray] = {}
    for name in sorted(CASES):
        out.update(arrays_of(name, run_case(name)))
    np.savez_compressed(GOLDEN, **out)
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size:,} bytes)")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_golden()
