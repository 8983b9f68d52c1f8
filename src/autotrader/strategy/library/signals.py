"""Replay stored predictions (CSV, JSON lines or Parquet) as signals."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.errors import ConfigError, DataError
from autotrader.signals.files import read_predictions
from autotrader.signals.prediction import Prediction
from autotrader.strategy.base import Param, Signals, Strategy


class StoredSignals(Strategy):
    """Signals from a file of ``Prediction`` rows (see ``autotrader.signals.files`` for the format).

    **Which bar a prediction lands on.** Bars are stamped with their open time; a bar's close time is
    ``open + bar length`` (the bar length is the smallest step of the data's timestamps). A prediction
    made at ``ts`` is placed on the symbol's first present bar whose close time is ``>= ts``: a
    prediction made inside bar ``t`` (``open_t < ts < close_t``) acts at bar ``t``'s close, one made
    exactly at ``close_t`` too, and none is ever placed on a bar that closed before it was made. The
    engine then fills it at the next bar's open.

    **Value.** ``long`` → ``+1``, ``short`` → ``-1``, ``flat`` → ``0``; ``confidence`` is copied.

    **Dropped, and counted in ``Signals.meta``:** predictions for symbols not in the data
    (``unknown_symbols``: symbol → count; not an error), made after the data's last close
    (``after_end``), stale ones whose horizon is already over at the close of the bar they would
    land on (``stale``: ``close >= ts + horizon``, e.g. made before the data starts or during a gap),
    and ones replaced by a later prediction on the same bar and symbol (``superseded``: the latest
    ``ts`` wins, the later row on a tie).

    ``horizon_bars`` is the most common horizon among the placed predictions, in bars, rounded up.
    """

    name = "signals"
    description = "replay stored predictions from a CSV, JSON-lines or Parquet file"
    parameters = {"path": Param("", help="prediction file (.csv, .jsonl/.ndjson/.json, .parquet)")}

    def generate(self, data: AlignedCandles) -> Signals:
        path = str(self.params["path"]).strip()
        if not path:
            raise ConfigError("strategy 'signals' needs a prediction file: --param path=FILE")
        return place_predictions(read_predictions(Path(path)), data)


def bar_length_ms(ts: np.ndarray) -> int:
    """The data's bar length: the smallest step between consecutive timestamps."""
    if len(ts) < 2:
        raise DataError("need at least two bars to know the bar length")
    return int(np.min(np.diff(ts)))


def place_predictions(predictions: list[Prediction], data: AlignedCandles) -> Signals:
    """Put predictions on bars as documented in ``StoredSignals``."""
    bar_ms = bar_length_ms(data.ts)
    close_ms = data.ts + bar_ms
    column = {s: j for j, s in enumerate(data.symbols)}
    rows_of = {j: np.flatnonzero(data.present[:, j]) for j in range(len(data.symbols))}
    direction = np.full(data.close.shape, np.nan)
    confidence = np.full(data.close.shape, np.nan)
    unknown: Counter[str] = Counter()
    horizons: Counter[int] = Counter()
    after_end = stale = superseded = 0
    # stable sort by ts: on one bar, the latest prediction (the later row on a tie) is written last
    for p in sorted(predictions, key=lambda q: q.ts):
        j = column.get(p.symbol)
        if j is None:
            unknown[p.symbol] += 1
            continue
        rows = rows_of[j]
        k = int(np.searchsorted(close_ms[rows], p.ts, side="left"))
        if k == len(rows):
            after_end += 1
            continue
        bar = rows[k]
        if close_ms[bar] >= p.ts + p.horizon_ms:
            stale += 1
            continue
        if not np.isnan(direction[bar, j]):
            superseded += 1
        direction[bar, j] = float(p.sign)
        confidence[bar, j] = p.confidence
        horizons[p.horizon_ms] += 1
    placed = int(np.count_nonzero(~np.isnan(direction)))
    horizon_bars = -(-horizons.most_common(1)[0][0] // bar_ms) if horizons else None
    meta = {
        "predictions": len(predictions),
        "placed": placed,
        "unknown_symbols": dict(unknown),
        "after_end": after_end,
        "stale": stale,
        "superseded": superseded,
        "horizons_ms": dict(horizons),
    }
    return Signals(direction=direction, confidence=confidence, horizon_bars=horizon_bars, meta=meta)
