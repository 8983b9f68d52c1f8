"""Walk-forward optimisation: windows, warm-up, efficiency, the trial matrix and serial/pool parity."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotrader.backtest.runner import BacktestConfig
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles
from autotrader.domain.errors import ConfigError
from autotrader.strategy.base import Param, Signals, Strategy
from autotrader.validation.walkforward import (
    PENALTY_BASE,
    _score,
    annualised_return,
    make_windows,
    run_walk_forward,
    search_space,
    walk_forward_efficiency,
)

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_672_531_200_000  # 2023-01-01T00:00:00Z


def _bars(days: int, seed: int = 3, symbols: tuple[str, ...] = ("AAAUSDT",)) -> AlignedCandles:
    """Hourly random-walk candles with regimes (so moving averages cross now and then)."""
    rng = np.random.default_rng(seed)
    n = days * 24
    series = {}
    for k, sym in enumerate(symbols):
        drift = np.repeat(rng.normal(0.0, 0.0015, n // 240 + 1), 240)[:n]
        close = (100.0 + 50 * k) * np.exp(np.cumsum(drift + rng.normal(0.0, 0.006, n)))
        open_ = np.concatenate(([close[0]], close[:-1]))
        high = np.maximum(open_, close) * 1.002
        low = np.minimum(open_, close) * 0.998
        cols = {"ts": T0 + HOUR * np.arange(n, dtype=np.int64), "open": open_, "high": high, "low": low,
                "close": close, "volume": np.full(n, 1e9)}  # fmt: skip
        series[sym] = Candles.from_columns(cols)
    return align(series)


def _config(symbols: tuple[str, ...] = ("AAAUSDT",), strategy: str = "sma_cross") -> BacktestConfig:
    return BacktestConfig(symbols=symbols, strategy=strategy, start="2023-01-01", end="2023-12-31")


SMA_SPACE = {"fast": (2.0, 30.0), "slow": (40.0, 200.0)}


# --------------------------------------------------------------------------- windows


def test_make_windows_rolling_slides_is_and_tiles_oos():
    w = make_windows(0, 10 * DAY, is_days=4, oos_days=2)
    assert [(x.is_start_ms // DAY, x.is_end_ms // DAY, x.oos_end_ms // DAY) for x in w] == [
        (0, 4, 6),
        (2, 6, 8),
        (4, 8, 10),
    ]
    assert all(x.is_end_ms == x.oos_start_ms for x in w)


def test_make_windows_anchored_keeps_is_start_and_grows():
    w = make_windows(0, 10 * DAY, is_days=4, oos_days=2, anchored=True)
    assert [(x.is_start_ms, x.is_end_ms // DAY) for x in w] == [(0, 4), (0, 6), (0, 8)]
    assert [x.oos_start_ms // DAY for x in w] == [4, 6, 8]


def test_make_windows_short_tail_dropped_long_tail_kept():
    assert len(make_windows(0, 10 * DAY + DAY // 2, is_days=4, oos_days=2)) == 3  # half a day < 1 day
    last = make_windows(0, 11 * DAY, is_days=4, oos_days=2)[-1]  # one day == the minimum (half of 2)
    assert (last.oos_start_ms // DAY, last.oos_end_ms // DAY) == (10, 11)


def test_make_windows_period_too_short_raises_config_error():
    with pytest.raises(ConfigError, match="too short"):
        make_windows(0, 4 * DAY + DAY // 2, is_days=4, oos_days=2)  # half a day left < the 1-day minimum
    with pytest.raises(ConfigError, match="positive"):
        make_windows(0, 5 * DAY, is_days=0, oos_days=2)


@settings(max_examples=100, deadline=None)
@given(
    span=st.integers(5, 2000),
    is_days=st.floats(0.5, 400),
    oos_days=st.floats(0.5, 200),
    anchored=st.booleans(),
)
def test_make_windows_is_and_oos_never_overlap(span, is_days, oos_days, anchored):
    try:
        windows = make_windows(0, span * DAY, is_days=is_days, oos_days=oos_days, anchored=anchored)
    except ConfigError:
        assert span * DAY - round(is_days * DAY) < round(oos_days * DAY) // 2
        return
    for k, w in enumerate(windows):
        assert w.index == k
        assert w.is_start_ms < w.is_end_ms <= w.oos_start_ms < w.oos_end_ms <= span * DAY
    for a, b in itertools.pairwise(windows):
        assert a.oos_end_ms == b.oos_start_ms  # OOS windows tile without overlap...
        assert a.is_end_ms < b.oos_start_ms  # ...so no IS window reaches into a later OOS window


# --------------------------------------------------------------------------- figures


def test_walk_forward_efficiency_constructed_case():
    # two IS years of +10 % each: 10 %/yr; four OOS half-years of sqrt(1.05) - 1 each: 5 %/yr
    half = math.sqrt(1.05) - 1.0
    is_ann, oos_ann, eff = walk_forward_efficiency([0.10, 0.10], [365, 365], [half] * 4, [182.5] * 4)
    assert is_ann == pytest.approx(0.10, rel=1e-12)
    assert oos_ann == pytest.approx(0.05, rel=1e-12)
    assert eff == pytest.approx(0.5, rel=1e-12)


def test_walk_forward_efficiency_nan_without_in_sample_edge():
    assert math.isnan(walk_forward_efficiency([-0.1], [365], [0.2], [90])[2])
    assert annualised_return([-1.0, 0.5], [10, 10]) == -1.0
    assert math.isnan(annualised_return([], []))


def test_score_penalises_too_few_trades_below_any_real_score():
    assert _score(1.5, 12, 10) == 1.5
    assert _score(99.0, 9, 10) == PENALTY_BASE - 1
    assert _score(-100.0, 10, 10) > _score(100.0, 9, 10) > _score(100.0, 0, 10)


def test_search_space_from_param_ranges_ints_log_scaled():
    space = {s.name: s for s in search_space("sma_cross")}
    assert set(space) == {"fast", "slow"}  # the bool 'short' is never searched
    assert space["fast"].kind == "int"
    assert (space["fast"].low, space["fast"].high, space["fast"].log) == (1.0, 10_000.0, True)
    narrow = {s.name: s for s in search_space("sma_cross", {"fast": (2, 30)})}
    assert set(narrow) == {"fast"}
    assert not narrow["fast"].log
    with pytest.raises(ConfigError, match="outside its limits"):
        search_space("sma_cross", {"fast": (0, 30)})
    with pytest.raises(ConfigError, match="no parameter 'fastt'"):
        search_space("sma_cross", {"fastt": (2, 30)})


# --------------------------------------------------------------------------- warm-up and measurement


class _WarmupProbe(Strategy):
    """Long on every bar with ``lookback`` bars of history before it; records every span it is shown."""

    name = "wf_warmup_probe"
    parameters: ClassVar = {"lookback": Param(50, 10, 60, "bars of history before the first signal")}
    seen: ClassVar[list[tuple[int, int]]] = []

    @property
    def warmup_bars(self) -> int:
        return int(self.params["lookback"])

    def generate(self, data: AlignedCandles) -> Signals:
        type(self).seen.append((int(data.ts[0]), int(data.ts[-1])))
        direction = np.full(data.close.shape, np.nan)
        direction[int(self.params["lookback"]) :] = 1.0
        return Signals.from_direction(direction)


def test_oos_signals_see_warmup_and_runs_never_see_later_bars():
    _WarmupProbe.seen.clear()
    data = _bars(120)
    result = run_walk_forward(
        _config(strategy="wf_warmup_probe"), data, is_days=60, oos_days=20, n_trials=4, min_trades=0, workers=1
    )
    assert len(result.windows) == 3
    ends = {end for _, end in _WarmupProbe.seen}
    allowed = {w.window.is_end_ms - HOUR for w in result.windows} | {w.window.oos_end_ms - HOUR for w in result.windows}
    assert ends <= allowed  # every run stops at its window's last bar: IS runs never see OOS bars
    for w in result.windows:
        oos = w.window
        starts = [s for s, e in _WarmupProbe.seen if e == oos.oos_end_ms - HOUR]
        assert min(starts) < oos.oos_start_ms - 10 * HOUR  # the OOS run had warm-up bars before it
        trades = w.oos_trades
        # primed by the warm-up, the strategy signals on the window's first bar: entry at the next open
        # (without warm-up the first signal would come 10 to 60 bars in)
        assert trades["entry_ts"][0] == oos.oos_start_ms + HOUR
        assert w.oos_equity[0] == pytest.approx(10_000.0)
        assert np.all(w.oos_ts >= oos.oos_start_ms)
        assert np.all(w.oos_ts < oos.oos_end_ms)


# --------------------------------------------------------------------------- end to end on synthetic candles


@pytest.fixture(scope="module")
def sma_result():
    return run_walk_forward(
        _config(), _bars(150), is_days=60, oos_days=30, n_trials=12, min_trades=2,
        search_space_overrides=SMA_SPACE, workers=1,
    )  # fmt: skip


def test_trial_matrix_holds_every_valid_trial(sma_result):
    assert len(sma_result.windows) == 3
    for w in sma_result.windows:
        assert len(w.trials) == 12
        assert w.trial_returns.shape == (60, w.n_valid_trials)
        assert w.trial_day_ts.size == 60
        assert all(isinstance(t.params["fast"], int) for t in w.trials)
        assert w.best_score == max(t.score for t in w.trials)
    assert sma_result.n_trials_run == sum(w.n_valid_trials for w in sma_result.windows)
    assert sma_result.trial_sharpes().size == sma_result.n_trials_run


def test_stitched_oos_equity_chains_window_returns(sma_result):
    growth = np.prod([1.0 + w.oos_total_return for w in sma_result.windows])
    assert sma_result.oos_equity[-1] / sma_result.oos_equity[0] == pytest.approx(growth, rel=1e-12)
    assert np.all(np.diff(sma_result.oos_ts) >= 0)
    assert sma_result.oos_summary["total_return"] == pytest.approx(growth - 1.0, rel=1e-9, abs=1e-12)
    assert sma_result.oos_ts[0] == sma_result.windows[0].window.oos_start_ms


def test_parameter_stability_table(sma_result):
    fast = next(s for s in sma_result.stability if s.name == "fast")
    values = [w.best_params["fast"] for w in sma_result.windows]
    assert fast.values == tuple(float(v) for v in values)
    assert fast.mean == pytest.approx(np.mean(values))
    assert fast.std == pytest.approx(np.std(values, ddof=1))
    assert fast.cv == pytest.approx(fast.std / abs(fast.mean))


def test_serial_and_process_pool_give_identical_results(sma_result):
    pooled = run_walk_forward(
        _config(), _bars(150), is_days=60, oos_days=30, n_trials=12, min_trades=2,
        search_space_overrides=SMA_SPACE, workers=2,
    )  # fmt: skip
    assert pooled.execution.startswith("process pool")
    assert pooled.to_dict(include_returns=True) == sma_result.to_dict(include_returns=True)


def test_optuna_storage_gives_the_same_result_and_resumes_a_finished_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    kwargs = {"is_days": 60, "oos_days": 40, "n_trials": 8, "min_trades": 2, "search_space_overrides": SMA_SPACE}
    memory = run_walk_forward(_config(), _bars(100), workers=1, **kwargs)
    first = run_walk_forward(_config(), _bars(100), workers=1, storage=url, **kwargs)
    again = run_walk_forward(_config(), _bars(100), workers=1, storage=url, **kwargs)
    assert len(memory.windows) == 1
    assert first.to_dict(include_returns=True) == memory.to_dict(include_returns=True)
    assert again.to_dict(include_returns=True) == first.to_dict(include_returns=True)
    assert len(again.windows[0].trials) == 8  # the stored study is topped up to n_trials, not doubled


@pytest.mark.parametrize(
    ("objective", "figure"),
    [("sharpe", "sharpe_ratio"), ("sortino", "sortino_ratio"), ("calmar", "calmar_ratio"),
     ("profit_factor", "profit_factor")],
)  # fmt: skip
def test_objective_is_the_metric_of_the_best_in_sample_run(objective, figure):
    result = run_walk_forward(
        _config(), _bars(100), is_days=60, oos_days=40, n_trials=6, min_trades=1, objective=objective,
        search_space_overrides=SMA_SPACE, workers=1,
    )  # fmt: skip
    [w] = result.windows
    assert w.is_summary["trades"] >= 1
    expected = w.is_summary[figure]
    assert w.best_score == pytest.approx(min(expected, 100.0) if not math.isnan(expected) else 0.0)


def test_unknown_objective_and_bad_trials_are_config_errors():
    with pytest.raises(ConfigError, match="objective"):
        run_walk_forward(_config(), _bars(10), objective="omega")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="trials"):
        run_walk_forward(_config(), _bars(10), n_trials=0)
