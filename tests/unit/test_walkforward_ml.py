"""Walk-forward of ``ml``: the models are fitted once; trials search only the trading rule over their output."""

from __future__ import annotations

import numpy as np
import pytest

from autotrader.backtest.runner import BacktestConfig
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import SeriesKey, format_ms, parse_date_ms
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.strategy.base import get_strategy
from autotrader.validation.walkforward import run_walk_forward, search_space

SMALL_ML = {"train_bars": 1503, "retrain_every": 500, "horizon": 6, "calibration_bars": 300}


@pytest.fixture(scope="module")
def data() -> AlignedCandles:
    lo, hi = parse_date_ms("2023-01-01"), parse_date_ms("2023-07-31")
    series = {
        s: read_parquet_candles(bundled_files()[SeriesKey.of("binance", s, "1h")]).slice_range(lo, hi)
        for s in ("BTCUSDT", "ETHUSDT")
    }
    return align(series)


def test_ml_search_space_is_the_trading_rule_only() -> None:
    assert [s.name for s in search_space("ml")] == ["threshold", "min_edge"]


def test_ml_walk_forward_fits_models_once_not_per_trial(monkeypatch: pytest.MonkeyPatch, data: AlignedCandles) -> None:
    import lightgbm

    fits: list[int] = []
    real = lightgbm.LGBMClassifier

    class Counting(real):  # type: ignore[misc, valid-type]
        def fit(self, x, y, **kw):  # type: ignore[no-untyped-def]
            fits.append(len(y))
            return super().fit(x, y, **kw)

    monkeypatch.setattr(lightgbm, "LGBMClassifier", Counting)
    config = BacktestConfig(symbols=data.symbols, start="2023-04-01", end="2023-07-30", strategy="ml", params=SMALL_ML)
    result = run_walk_forward(config, data, is_days=40, oos_days=20, n_trials=12, workers=1, min_trades=0)

    one_pass = len(range(SMALL_ML["train_bars"], data.n_bars, SMALL_ML["retrain_every"]))
    assert len(fits) == one_pass  # one walk-forward pass over the data: no refit per trial or window
    assert len(result.windows) >= 4
    assert sum(len(w.trials) for w in result.windows) == 12 * len(result.windows)
    assert {tuple(w.best_params) for w in result.windows} == {("threshold", "min_edge")}


def test_ml_use_forecast_rows_equal_a_run_on_the_shorter_data(data: AlignedCandles) -> None:
    strategy = get_strategy("ml", **SMALL_ML, threshold=0.5)
    table = strategy.prefit(data)
    cut = 3100
    shorter = AlignedCandles(
        data.symbols, *(getattr(data, n)[:cut] for n in ("ts", "open", "high", "low", "close", "volume", "present"))
    )
    direct = get_strategy("ml", **SMALL_ML, threshold=0.5).generate(shorter)
    strategy.use_forecast(data.ts, table)
    reused = strategy.generate(shorter)
    assert reused.meta["cache"] == "prefit"
    np.testing.assert_array_equal(reused.meta["p_up"], direct.meta["p_up"])
    np.testing.assert_array_equal(reused.direction, direct.direction)
    # data the table does not hold is computed afresh
    other = AlignedCandles(
        data.symbols, *(getattr(data, n)[:1000:2] for n in ("ts", "open", "high", "low", "close", "volume", "present"))
    )
    assert strategy.generate(other).meta["cache"] == "off"
    assert format_ms(int(data.ts[0])) == "2023-01-01 00:00"
