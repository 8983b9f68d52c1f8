"""The signal engine's bar schedule, ids, catch-up and warm-up, on a tiny strategy and synthetic candles."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from autotrader.domain.aligned import AlignedCandles
from autotrader.live.clock import ReplayClock
from autotrader.live.signal_engine import BarModel, SignalEngine, duration_text
from autotrader.strategy.base import Signals, Strategy

H = 3_600_000


@pytest.fixture(autouse=True)
def _autotrader_logs_reach_caplog():
    """Another test may have run ``configure_logging`` (the ``autotrader`` logger then stops propagating)."""
    logger = logging.getLogger("autotrader")
    saved = (logger.propagate, logger.level)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
    yield
    logger.propagate = saved[0]
    logger.setLevel(saved[1])


T0 = 1_600_000_000_000 // H * H


class _Alternate(Strategy):
    """Long on even bars, short on odd ones (by bar open time), after a 10-bar warm-up; remembers its inputs."""

    name = "alternate_test"
    parameters = {}

    seen_last_ts: list[int] = []

    @property
    def warmup_bars(self) -> int:
        return 10

    def generate(self, data: AlignedCandles) -> Signals:
        self.seen_last_ts.append(int(data.ts[-1]))
        direction = np.where((data.ts // H) % 2 == 0, 1.0, -1.0)[:, None].repeat(len(data.symbols), axis=1)
        if data.n_bars <= 10:
            direction[:] = np.nan
        return Signals(direction=direction, confidence=np.full(direction.shape, 0.7), horizon_bars=3)


def _data(n: int = 500) -> AlignedCandles:
    ts = T0 + np.arange(n, dtype=np.int64) * H
    close = np.linspace(100, 200, n)[:, None]
    return AlignedCandles(("BTCUSDT",), ts, close, close, close, close, np.ones((n, 1)), np.ones((n, 1), bool))


class _Harness:
    def __init__(self, now_ms: int, checkpoint: int | None = None) -> None:
        self.data = _data()
        self.now = now_ms
        self.checkpoint = checkpoint
        self.published: list = []
        strategy = _Alternate()
        _Alternate.seen_last_ts = []
        self.model = BarModel(strategy, "1h")
        self.engine = SignalEngine(
            self.model,
            ("BTCUSDT",),
            candles=self.candles,
            publish=self.published.extend,
            now_ms=lambda: self.now,
            checkpoint=(lambda: self.checkpoint, self.save),
            max_catch_up_bars=5,
        )

    def candles(self, first: int, bar: int) -> AlignedCandles | None:
        i = int(np.searchsorted(self.data.ts, bar))
        if i >= self.data.n_bars or self.data.ts[i] != bar:
            return None
        a = int(np.searchsorted(self.data.ts, first))
        d = self.data
        return AlignedCandles(d.symbols, d.ts[a : i + 1], d.open[a : i + 1], d.high[a : i + 1], d.low[a : i + 1],
                              d.close[a : i + 1], d.volume[a : i + 1], d.present[a : i + 1])  # fmt: skip

    def save(self, bar: int) -> None:
        self.checkpoint = bar


def test_signal_engine_first_start_publishes_only_the_latest_closed_bar_with_its_close_as_ts(caplog) -> None:
    h = _Harness(now_ms=T0 + 400 * H + 1234)  # inside bar 400: bar 399 is the latest closed one
    with caplog.at_level(logging.INFO, logger="autotrader.live.signal_engine"):
        assert h.engine.run_once() == 1
    (p,) = h.published
    bar = T0 + 399 * H
    assert p.id == f"alternate_test-BTCUSDT-1h-{bar}"
    assert p.ts == bar + H  # the bar's close: nothing after it was known
    assert p.horizon == "3h"
    assert p.direction == ("long" if (bar // H) % 2 == 0 else "short")
    assert _Alternate.seen_last_ts == [bar]  # the model saw the bars up to the signal bar only
    assert h.checkpoint == bar
    assert "HONEST SIGNAL" in caplog.text
    assert h.engine.run_once() == 0  # nothing new closed


def test_signal_engine_restart_catches_up_missed_bars_under_the_same_ids() -> None:
    h = _Harness(now_ms=T0 + 400 * H + 5, checkpoint=T0 + 396 * H)
    h.engine.run_once()
    assert [p.ts for p in h.published] == [T0 + b * H for b in (398, 399, 400)]  # bars 397, 398, 399
    first_ids = [p.id for p in h.published]
    h2 = _Harness(now_ms=T0 + 400 * H + 5, checkpoint=T0 + 396 * H)  # crashed before the checkpoint moved
    h2.engine.run_once()
    assert [p.id for p in h2.published] == first_ids


def test_signal_engine_catch_up_is_bounded(caplog) -> None:
    h = _Harness(now_ms=T0 + 400 * H + 5, checkpoint=T0 + 300 * H)
    with caplog.at_level(logging.WARNING):
        h.engine.run_once()
    assert len(h.published) == 5
    assert "too old to publish" in caplog.text


def test_signal_engine_waits_when_the_bar_is_not_stored_yet() -> None:
    h = _Harness(now_ms=T0 + 502 * H, checkpoint=T0 + 498 * H)  # the data ends with bar 499
    assert h.engine.run_once() == 1
    assert h.engine.run_once() == 0
    assert h.checkpoint == T0 + 499 * H


def test_signal_engine_says_when_the_model_is_warming_up(caplog) -> None:
    h = _Harness(now_ms=T0 + 6 * H)
    with caplog.at_level(logging.INFO):
        assert h.engine.run_once() == 0
    assert "warming up" in caplog.text
    assert "BTCUSDT (6 of 11 bars)" in caplog.text


def test_replay_clock_is_a_function_of_the_wall_clock() -> None:
    clock = ReplayClock(start_ms=T0, wall_anchor_ms=1_000_000, speed=60.0)
    assert clock.now_ms(1_000_000) == T0
    assert clock.now_ms(1_001_000) == T0 + 60_000
    assert ReplayClock.from_meta(clock.to_meta()) == clock


@pytest.mark.parametrize(("ms", "text"), [(H, "1h"), (24 * H, "1d"), (90_000, "1m"), (7 * 24 * H, "1w")])
def test_duration_text_uses_the_largest_exact_unit(ms: int, text: str) -> None:
    assert duration_text(ms) == text


def test_window_of_a_retrained_model_is_anchored_for_a_whole_retraining_period() -> None:
    from autotrader.live.signal_engine import window_bars_for, window_start_ms

    class _Retrained(_Alternate):
        name = "retrained_test"

        def __init__(self) -> None:
            super().__init__()
            self.params = {"horizon": 5, "retrain_every": 20}

    strategy = _Retrained()
    starts = [window_start_ms(strategy, H, T0 + b * H) for b in range(100, 160)]
    runs = [len(list(g)) for _, g in __import__("itertools").groupby(starts)]
    assert all(n == 20 for n in runs[1:-1])  # one start through each 20-bar retraining period
    assert len(runs) >= 3
    for b, start in zip(range(100, 160), starts, strict=True):
        bars = (T0 + b * H - start) // H + 1
        assert 10 + 5 + 1 <= bars <= window_bars_for(strategy)  # warm-up + horizon + the bar, at most a period more
        assert start % (20 * H) == 0
    assert window_start_ms(_Alternate(), H, T0 + 400 * H) == T0 + (400 - 299) * H  # no retraining: a sliding window
