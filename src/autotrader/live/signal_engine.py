"""The signal engine: at each bar close, the model's prediction on closed candles, published for the robot.

    engine = SignalEngine(BarModel(strategy, "1h"), symbols, candles=..., publish=..., now_ms=...,
                          checkpoint=(load, save))
    engine.run(stop_event)          # until stopped; or engine.run_once() for one pass

Every pass takes the bars that closed since the last published one (the checkpoint), oldest
first, and for each bar asks the strategy for its signal on the ``window_bars`` closed bars that end
with it (nothing after the bar exists for the model), publishes one ``Prediction`` per symbol with a
signal, and only then moves the checkpoint. The message id is ``<model>-<symbol>-<timeframe>-<bar
open ms>``: a bar published again after a crash (between the broker's acknowledgement and the
checkpoint) carries the same id, and the robot decides it once. Bars that closed while the engine
was down are caught up as long as their prediction would still be within its horizon.

Candles, publishing, the checkpoint and the clock are injected: the CLI wires the candle store (in
replay, on the stack's one ``ReplayClock``) or the exchange, and Kafka.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.candles import format_ms
from autotrader.domain.timeframe import Timeframe
from autotrader.signals.prediction import Prediction
from autotrader.strategy.base import Strategy

log = logging.getLogger(__name__)

_DIRECTIONS = {1: "long", -1: "short", 0: "flat"}
_UNITS_MS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000))
MIN_WINDOW_BARS = 300

CandleSource = Callable[[int, int], AlignedCandles | None]
"""``candles(first_bar_open_ms, last_bar_open_ms)``: the closed bars from the first to the last (``None``: none)."""


def duration_text(ms: int) -> str:
    """``86400000`` -> ``"1d"``: the shortest unit that divides ``ms``."""
    for unit, size in _UNITS_MS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{max(1, ms // 60_000)}m"


def _ints(strategy: Strategy) -> tuple[int, int, int]:
    params = getattr(strategy, "params", {}) or {}
    horizon = int(params.get("horizon", 0) or 0)
    every = int(params.get("retrain_every", 0) or 0)
    return int(strategy.warmup_bars), horizon, every


def window_start_ms(strategy: Strategy, tf_ms: int, bar_open_ms: int) -> int:
    """Open time of the first bar a strategy is shown at the close of the bar opened at ``bar_open_ms``.

    The window holds the strategy's warm-up plus its holding horizon (a rule that holds a position for
    ``horizon`` bars must see when it entered). For a model retrained every ``retrain_every`` bars the
    start is anchored on a grid of that many bars, so through one retraining period every bar close
    sees the same model and the same past predictions, and the holding rule's state carries from bar
    to bar as in a backtest; a new model takes over when the grid moves on.
    """
    warmup, horizon, every = _ints(strategy)
    reach = (warmup + horizon) * tf_ms
    if every <= 0:
        return bar_open_ms - max(warmup + horizon, MIN_WINDOW_BARS - 1) * tf_ms
    span = every * tf_ms
    return ((bar_open_ms - reach) // span) * span


def window_bars_for(strategy: Strategy) -> int:
    """The most closed bars ``window_start_ms`` can ask for (what the robot keeps as history)."""
    warmup, horizon, every = _ints(strategy)
    return max(warmup + horizon + max(every, 0) + 1, MIN_WINDOW_BARS)


class BarModel:
    """A strategy applied at one bar's close to the closed bars that end with it.

    ``window_bars`` is what the strategy needs to give a signal (``window_bars_for``). The
    prediction's ``ts`` is the bar's close and its horizon the strategy's ``horizon_bars`` (else one bar).
    """

    def __init__(self, strategy: Strategy, timeframe: str, *, model: str | None = None) -> None:
        self.strategy = strategy
        self.tf = Timeframe.parse(timeframe)
        self.model = model or strategy.name
        self.window_bars = window_bars_for(strategy)

    def signal_id(self, symbol: str, bar_open_ms: int) -> str:
        return f"{self.model}-{symbol}-{self.tf.name}-{bar_open_ms}"

    def predict(self, data: AlignedCandles, bar_open_ms: int) -> tuple[list[Prediction], list[str]]:
        """``(predictions, warming)`` for the bar opened at ``bar_open_ms`` (the last bar of ``data``).

        ``warming`` names the symbols with fewer present bars than the model needs.
        """
        if data.n_bars == 0 or int(data.ts[-1]) != bar_open_ms:
            raise ValueError(f"the data must end with the bar opened at {format_ms(bar_open_ms)}")
        warming = []
        need = int(self.strategy.warmup_bars) + 1
        if data.n_bars < need:
            warming = [f"{s} ({data.n_bars} of {need} bars)" for s in data.symbols]
        signals = self.strategy.generate(data)
        horizon = duration_text(self.tf.ms * (signals.horizon_bars or 1))
        t = data.n_bars - 1
        out = []
        for j, symbol in enumerate(data.symbols):
            direction = float(signals.direction[t, j])
            if math.isnan(direction) or not data.present[t, j]:
                continue
            confidence = float(signals.confidence[t, j])
            out.append(
                Prediction(
                    id=self.signal_id(symbol, bar_open_ms),
                    symbol=symbol,
                    ts=bar_open_ms + self.tf.ms,
                    direction=_DIRECTIONS[int(np.sign(direction))],  # type: ignore[arg-type]
                    confidence=1.0 if math.isnan(confidence) else min(max(confidence, 0.0), 1.0),
                    horizon=horizon,
                    model=self.model,
                )
            )
        return out, warming


class SignalEngine:
    """Publishes the model's prediction at each bar close. See the module docstring."""

    def __init__(
        self,
        model: BarModel,
        symbols: Sequence[str],
        *,
        candles: CandleSource,
        publish: Callable[[list[Prediction]], None],
        now_ms: Callable[[], int],
        checkpoint: tuple[Callable[[], int | None], Callable[[int], None]],
        max_catch_up_bars: int = 48,
    ) -> None:
        self.model = model
        self.symbols = tuple(symbols)
        self._candles = candles
        self._publish = publish
        self._now_ms = now_ms
        self._load_checkpoint, self._save_checkpoint = checkpoint
        self.max_catch_up_bars = max_catch_up_bars
        self.published = 0
        self.bars = 0
        self._said: set[str] = set()

    @property
    def tf_ms(self) -> int:
        return self.model.tf.ms

    def due_bars(self, now_ms: int) -> list[int]:
        """Open times of the closed bars not published yet, oldest first (still within the horizon)."""
        latest = (now_ms // self.tf_ms) * self.tf_ms - self.tf_ms
        last = self._load_checkpoint()
        if last is None:
            return [latest]
        if last >= latest:
            return []
        first = max(last + self.tf_ms, latest - (self.max_catch_up_bars - 1) * self.tf_ms)
        if first > last + self.tf_ms:
            skipped = (first - last - self.tf_ms) // self.tf_ms
            log.warning(
                "%d bar(s) closed while the engine was down are too old to publish (more than %d bars ago)",
                skipped,
                self.max_catch_up_bars,
            )
        return list(range(first, latest + 1, self.tf_ms))

    def run_once(self) -> int:
        """Publish every due bar; returns how many predictions went out."""
        sent = 0
        for bar in self.due_bars(self._now_ms()):
            data = self._candles(window_start_ms(self.model.strategy, self.tf_ms, bar), bar)
            if data is None or data.n_bars == 0 or int(data.ts[-1]) != bar:
                self._say_once(
                    f"nobar:{bar}",
                    "no stored candle for the bar opened at %s yet (replay past the end of the data, or the "
                    "venue has not served it): waiting",
                    format_ms(bar),
                )
                break
            sent += self._publish_bar(data, bar)
        return sent

    def _publish_bar(self, data: AlignedCandles, bar: int) -> int:
        started = time.perf_counter()
        predictions, warming = self.model.predict(data, bar)
        if warming:
            log.info(
                "model %s warming up at the bar closing %s UTC: %s",
                self.model.model,
                format_ms(bar + self.tf_ms),
                ", ".join(warming),
            )
        if predictions:
            self._publish(predictions)
        self._save_checkpoint(bar)
        self.bars += 1
        self.published += len(predictions)
        elapsed_ms = (time.perf_counter() - started) * 1000
        for p in predictions:
            log.info(
                "HONEST SIGNAL %s: %s %s confidence %.3f horizon %s, made at the bar close %s UTC from %d closed "
                "bars (%.0f ms)",
                p.id,
                p.symbol,
                p.direction,
                p.confidence,
                p.horizon,
                format_ms(p.ts),
                data.n_bars,
                elapsed_ms,
                extra={"signal_id": p.id, "symbol": p.symbol, "strategy": p.model},
            )
        if not predictions and not warming:
            log.info("no signal at the bar close %s UTC (the model is not confident)", format_ms(bar + self.tf_ms))
        return len(predictions)

    def _say_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            log.info(msg, *args)

    def run(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Publish due bars until ``stop`` is set."""
        while not stop.is_set():
            self.run_once()
            stop.wait(poll_s)
