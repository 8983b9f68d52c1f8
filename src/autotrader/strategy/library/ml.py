"""The default strategy: a Donchian breakout that proposes entries, filtered by a calibrated classifier.

**Design: meta-labelling** (López de Prado, *Advances in Financial Machine Learning*, ch. 3). A
**primary** trend rule proposes the entries and their side: long on a bar whose close is above the
highest high of the ``entry`` bars before it (the ``donchian_breakout`` entry; default 24 bars = one
day of 1h). A **secondary** model answers, for each proposal, the question the trade is about: will
the close ``horizon`` bars from now be above today's close by more than the round-trip cost
(``cost``: fees and slippage of both fills)? The trade holds exactly ``horizon`` bars, so that label
is the proposed trade's own outcome (before the risk engine's stop). The model's calibrated answer
filters the proposals and is the trade's confidence. No entry without a proposal; the model is never
asked elsewhere (``p`` is NaN there).

**Model.** LightGBM (``LGBMClassifier``: 50 trees of at most 7 leaves, learning rate 0.05, 63 bins,
80 % of the features per tree, ``deterministic=True``, one thread, fixed ``seed``). One model is
**pooled** over all symbols (more rows, one set of scale-free features; a symbol listed later
benefits from the others' history). **Calibration**: the model is fitted on the older part of its
training window and its raw scores are mapped to probabilities by Platt scaling (a logistic fit of
the label on the score's log-odds) on the most recent ``calibration_bars`` of the window (every bar
of it, like the fit), whose labels the fitted part never saw. A probability of 0.6 then means that
about 60 % of such moves cleared the cost in the recent past.

**Training rows.** The model learns the label on every bar (thinned, below), not only on the
primary's proposals, and is asked only on proposals. Fitted on the proposals alone (a few % of the
bars: about 1,500 before 2019 on the four symbols), it had too few rows: on 2019-2020 its
probabilities ranked the proposals no better than chance and it did worse (table below).

**Features** at bar ``t`` (each from bars ``<= t`` only, per symbol over its present bars):
log returns over 1, 3, 6, 12, 24, 72 and 168 bars divided by ``vol168 * sqrt(k)``; volatility
(standard deviation of 1-bar log returns) over 24 and 168 bars and their ratio; RSI 14 and 48;
log distance of the close from its 24-, 168- and 720-bar SMAs; ATR(14)/close and the bar's
range/ATR; volume z-score (log volume against its 168-bar mean and deviation); position of the close
in the 72-bar high-low range; hour of day and day of week of the bar's open; and the primary's
state: breakout strength ``(close - channel high) / ATR`` (positive exactly on a proposal), channel
width ``log(high / low)`` of the ``entry``-bar channel, trend age ``log(1 + bars since the close was
last below the entry-bar low)`` (capped at 2,000 bars) and the share of the last 72 bars that were
proposals. A row with any non-finite feature is neither trained on nor predicted (the first ~720
bars of every symbol).

**Horizon** (default 72 bars = 3 days of 1h): chosen on 2019-2020 predictions only, before any
out-of-sample year the benchmark reports. There, entries at ``p >= 0.55`` with a positive edge beat
the average bar net of costs in both years at 72 bars, but not at 24 (worse in both) or 168 (mixed).

**Evidence for the design** (every choice made on 2019-01-01 .. 2020-12-31 only, models trained
walk-forward on the bundled 2017-2018 history onwards, before any later year was looked at): a
backtest of 2019-2020 under the medium risk level (threshold 0.55, 5 % a position, 2 % stop), fees
0.1 % a side and 2 bps slippage, BTC, ETH, BNB and ADA 1h, each design at fixed parameters:

==========================================================  ======  ======  ======  ======  ====  ====
design (``entry``)                                          return  Sharpe  max DD  trades  2019  2020
==========================================================  ======  ======  ======  ======  ====  ====
before: the model asked on every bar (``ml-2``)             +10.2%    0.98   -5.8%     475  0.45  1.38
fitted on proposals only, every 4th bar (24)                 -0.1%   -0.02   -3.1%      90  0.46 -0.34
fitted on proposals only, every bar (24)                     +9.0%    1.12   -4.5%     292  1.32  0.97
fitted on proposals only, every bar (72)                     +2.3%    0.34   -4.0%     244  0.04  0.62
fitted on proposals only, every bar (168)                    +2.1%    0.47   -1.9%     130  0.96  0.18
**fitted on every bar, asked on proposals (24): chosen**    +12.3%    1.35   -3.9%     293  1.12  1.54
fitted on every bar, asked on proposals (72)                 +9.8%    1.31   -3.3%     156  0.45  2.01
fitted on every bar, asked on proposals (168)                +4.1%    0.67   -2.9%     114  0.72  0.63
the primary alone, every proposal held 72 bars (24)         +19.8%    1.40   -7.1%     633  0.56  2.20
the primary alone (72)                                      +13.0%    1.25   -5.3%     410  0.66  1.72
the primary alone (168)                                     +16.7%    1.85   -2.8%     267  1.35  2.27
==========================================================  ======  ======  ======  ======  ====  ====

(2019 and 2020: each year's Sharpe.) The chosen design beat the previous model in return, Sharpe
and drawdown, and in each year. It did **not** beat its own primary rule unfiltered: the filter
halved the trades and the drawdown but also the return, for about the same Sharpe (1.35 against
1.40), and the primary alone over 168 bars did better than any filtered variant. On the 2019-2020
proposals the chosen model's ranking was weak (AUC 0.52; Brier score 0.252 against the base rate's
0.249); proposals it rated ``p >= 0.55`` gained 1.23 % net over 72 bars on average, all proposals
1.12 %.

**Label** of bar ``i``: ``log(close[i+h] / close[i]) > log(1 + cost)`` with ``h = horizon`` (the
symbol's ``h``-th next present bar). It becomes known only at bar ``i+h``'s close.

**Expected edge.** With ``p`` the calibrated probability, the expected net return of a long trade
held ``h`` bars is ``p * m1 + (1 - p) * m0 - cost``, where ``m1`` and ``m0`` are the mean simple
``h``-bar returns of the training rows labelled 1 and 0.

**Walk-forward schedule and leak guard.** The first model predicts bar ``train_bars`` (bars count
from the start of the data, which includes any stored history before a backtest's period: see
``history_bars``); a new model is trained every ``retrain_every`` bars after that. The model that
predicts bars ``[s, s + retrain_every)`` uses only rows whose label was known by bar ``s - 1``'s
close, i.e. ``i + h <= s - 1``: the training window ends at least one horizon before the first
prediction it serves. Inside it, the fitted part ends where its labels are known before the
calibration part starts (no overlap between the two). The window is expanding (every usable row
since the start) or, with ``max_train_bars > 0``, the rows ``i >= s - max_train_bars``. Adjacent
labels overlap by ``h - 1`` bars, so training rows are thinned to every 4th bar (``i % 4 == 0``,
anchored to the data start so that truncating the data later never changes them).

**Trading rule** (per symbol; long only, on spot and linear markets alike): when flat, ``+1`` on a
proposal bar where ``p >= threshold`` and the expected edge is at least ``min_edge``; the position is held for
``horizon`` bars, then ``0`` (exit), and the next qualifying bar may enter again. No re-decision in
between: a held position is neither closed because the probability dipped nor extended because it
rose (the label, and so the edge, is about one round trip per horizon; a fresh entry is sized
afresh, so a winner cannot grow into an outsized position). The risk engine can still stop it out;
the rule then waits out the horizon before it enters again. ``confidence = p`` on entry bars (the
risk level's minimum confidence filters on a calibrated probability); ``horizon_bars = horizon``;
``meta["p_up"]`` holds every probability and ``meta["edge"]`` every expected edge (NaN where none).

**Cache.** Set ``strategy.cache`` to a ``PredictionCache`` to reuse the model's output: the key is
the xxh3-128 hash of the data (timestamps, symbols, close/high/low/volume bytes), the model parameters
(all but ``threshold`` and ``min_edge``, which only act on the cached output, so ``entry`` is in it)
and the code/model version (``MODEL_VERSION``).
A walk-forward search of ``threshold`` and ``min_edge`` therefore fits the models once.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.candles import FloatArray
from autotrader.domain.errors import ConfigError
from autotrader.domain.fees import DEFAULT_SLIPPAGE_BPS, default_taker_fee, round_trip_cost
from autotrader.jit import njit
from autotrader.strategy.base import Param, Signals, Strategy
from autotrader.strategy.cache import PredictionCache
from autotrader.strategy.indicators import (
    atr_nb,
    log_return_nb,
    rolling_max_nb,
    rolling_min_nb,
    rolling_std_nb,
    rsi_nb,
    sma_nb,
)

log = logging.getLogger(__name__)

MODEL_VERSION = "ml-3"  # bump when features, labels or the model change: it is part of the cache key
TRAIN_STRIDE = 4
TREND_AGE_CAP = 2000  # bars: an older trend counts as this old
MIN_FIT_ROWS = 200
MIN_CALIBRATION_ROWS = 100
FEATURE_NAMES = (
    *(f"ret_{k}_z" for k in (1, 3, 6, 12, 24, 72, 168)),
    "vol_24",
    "vol_168",
    "vol_ratio",
    "rsi_14",
    "rsi_48",
    "dist_sma_24",
    "dist_sma_168",
    "dist_sma_720",
    "atr_pct",
    "range_atr",
    "volume_z",
    "range_pos_72",
    "hour",
    "weekday",
    "breakout_atr",
    "channel_width",
    "trend_age",
    "breakout_share_72",
)
_MODEL_PARAMS: dict[str, Any] = {
    "n_estimators": 50,
    "learning_rate": 0.05,
    "num_leaves": 7,
    "max_bin": 63,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "n_jobs": 1,  # single-threaded: trees this small spend more time syncing threads than working
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}
_CACHE_FREE_PARAMS = ("threshold", "min_edge")
DEFAULT_COST = round_trip_cost(default_taker_fee("spot"), DEFAULT_SLIPPAGE_BPS)  # spot taker fee + default slippage


class MlStrategy(Strategy):
    """Breakout entries filtered by a walk-forward, cost-aware LightGBM classifier (module docstring: the design)."""

    name = "ml"
    description = "Donchian breakouts filtered by a calibrated forecast that the move over the horizon beats the costs"
    parameters = {
        "entry": Param(24, 2, 10_000, "primary: long on a close above the previous `entry` bars' high", search=False),
        "horizon": Param(72, 1, 10_000, "forecast horizon = holding period in bars (72 = 3 days of 1h)", search=False),
        "threshold": Param(0.55, 0.5, 0.8, "calibrated P(move > cost) needed to enter"),
        "min_edge": Param(0.0, 0.0, 0.02, "expected net return over the horizon needed to enter (fraction)"),
        "cost": Param(DEFAULT_COST, 0.0, 0.1, "round-trip cost as a fraction; the backtest sets it", search=False),
        "train_bars": Param(8760, 50, 10_000_000, "bars before the first prediction (1 year of 1h)", search=False),
        "history_bars": Param(
            87_600, 0, 10_000_000, "stored bars before the period to learn from (default: all bundled)", search=False
        ),
        "calibration_bars": Param(2160, 10, 1_000_000, "most recent training bars used to calibrate", search=False),
        "retrain_every": Param(720, 1, 10_000_000, "bars between retrains (720 = 30 days of 1h)", search=False),
        "max_train_bars": Param(0, 0, 10_000_000, "rolling training window in bars; 0 = expanding", search=False),
        "seed": Param(7, 0, 2**31 - 1, "random seed of the model", search=False),
    }  # fmt: skip
    cache: PredictionCache | None = None
    rule_params = _CACHE_FREE_PARAMS  # parameters of the trading rule only: changing them reuses the model output
    _table: tuple[np.ndarray, FloatArray] | None = None

    def validate(self) -> None:
        if self.params["train_bars"] <= self.params["horizon"] + 1:
            raise ConfigError(
                f"strategy 'ml': train_bars={self.params['train_bars']} must exceed horizon+1="
                f"{self.params['horizon'] + 1} (no label is known before that)"
            )

    @property
    def warmup_bars(self) -> int:
        return int(self.params["train_bars"])

    @property
    def history_bars(self) -> int:
        return max(int(self.params["history_bars"]), self.warmup_bars)

    def cache_key(self, data: AlignedCandles) -> str:
        """xxh3-128 of the data, the model parameters and the code version (see the module docstring)."""
        import xxhash

        h = xxhash.xxh3_128()
        model_params = {k: v for k, v in sorted(self.params.items()) if k not in _CACHE_FREE_PARAMS}
        header = {
            "version": MODEL_VERSION,
            "lightgbm": _lightgbm_version(),
            "model": _MODEL_PARAMS,
            "params": model_params,
            "symbols": list(data.symbols),
            "shape": list(data.close.shape),
        }
        h.update(json.dumps(header, sort_keys=True).encode())
        h.update(np.ascontiguousarray(data.ts, dtype=np.int64))
        for column in (data.close, data.high, data.low, data.volume):
            h.update(np.ascontiguousarray(column, dtype=np.float64))
        return h.hexdigest()

    def prefit(self, data: AlignedCandles) -> FloatArray:
        """The model output on ``data``, shape ``(bars, symbols, 2)`` (``p``, ``edge``), for ``use_forecast``."""
        p, edge, _ = self.forecast(data)
        return np.stack((p, edge), axis=2)

    def use_forecast(self, ts: np.ndarray, table: FloatArray) -> None:
        """Answer later calls on any contiguous run of the rows ``ts`` from ``table`` (see ``prefit``).

        The output of a walk-forward model at a bar does not depend on later bars, so the rows of a
        longer run are exactly what a run on the shorter data gives when both start on the same bar
        (and, for a later start, what the model fitted with the longer history predicts).
        """
        self._table = (np.asarray(ts), table)

    def _from_table(self, data: AlignedCandles) -> FloatArray | None:
        if self._table is None:
            return None
        ts, table = self._table
        lo = int(np.searchsorted(ts, data.ts[0])) if data.n_bars else 0
        hi = lo + data.n_bars
        if hi > len(ts) or table.shape[1] != len(data.symbols) or not np.array_equal(ts[lo:hi], data.ts):
            return None
        return table[lo:hi]

    def forecast(self, data: AlignedCandles) -> tuple[FloatArray, FloatArray, str]:
        """``(p, edge, cache status)``: calibrated P(move > cost) and expected net edge per bar and symbol."""
        status = "off"
        out: FloatArray | None = self._from_table(data)
        key = ""
        if out is not None:
            return out[:, :, 0], out[:, :, 1], "prefit"
        if self.cache is not None:
            key = self.cache_key(data)
            out = self.cache.get(key)
            if out is not None and out.shape != (*data.close.shape, 2):
                out = None
            status = "hit" if out is not None else "miss"
        if out is None:
            out = np.stack(self.predict(data), axis=2)
            if self.cache is not None:
                self.cache.put(key, out)
        return out[:, :, 0], out[:, :, 1], status

    def generate(self, data: AlignedCandles) -> Signals:
        p, edge, status = self.forecast(data)
        direction = hold_rule_nb(
            p, edge, float(self.params["threshold"]), float(self.params["min_edge"]), int(self.params["horizon"])
        )
        confidence = np.where(direction == 1.0, p, np.nan)
        return Signals(
            direction=direction,
            confidence=confidence,
            horizon_bars=int(self.params["horizon"]),
            meta={"p_up": p, "edge": edge, "cache": status},
        )

    def predict(self, data: AlignedCandles) -> tuple[FloatArray, FloatArray]:
        """Walk-forward ``(p, edge)`` per bar and symbol, NaN where no model or no complete features."""
        lightgbm = _lightgbm()
        started = time.perf_counter()
        horizon = int(self.params["horizon"])
        first = int(self.params["train_bars"])
        every = int(self.params["retrain_every"])
        window = int(self.params["max_train_bars"])
        calib = int(self.params["calibration_bars"])
        cost = float(self.params["cost"])
        n_bars, n_symbols = data.close.shape
        probs = np.full((n_bars, n_symbols), np.nan)
        edges = np.full((n_bars, n_symbols), np.nan)
        if n_bars <= first:
            return probs, edges
        entry = int(self.params["entry"])
        x = features(data, entry)
        finite = np.isfinite(x).all(axis=2)  # trained on every such bar (stride-thinned) ...
        proposed = finite & primary_signal(data, entry)  # ... asked only where the primary proposes an entry
        fwd, known_at = forward_returns(data.close, data.present, horizon)
        label = np.where(np.isnan(fwd), np.nan, (fwd > np.log1p(cost)).astype(np.float64))
        rows, cols = np.nonzero(finite & ~np.isnan(fwd) & (np.arange(n_bars)[:, None] % TRAIN_STRIDE == 0))
        cand_known = known_at[rows, cols]
        cand_y = label[rows, cols]
        cand_gain = np.expm1(fwd[rows, cols])
        fits = 0
        blocks = range(first, n_bars, every)
        for block, start in enumerate(blocks):
            self.report_progress(block, len(blocks), "training ml models (walk-forward)")
            usable = cand_known <= start - 1  # the leak guard: label known before the predicted bar
            if window > 0:
                usable &= rows >= start - window
            calib_lo = start - calib
            in_calib = usable & (rows >= calib_lo)
            in_fit = usable & (cand_known < calib_lo)  # labels known before the calibration rows begin
            y_fit, y_cal = cand_y[in_fit], cand_y[in_calib]
            if (
                len(y_fit) < MIN_FIT_ROWS
                or len(y_cal) < MIN_CALIBRATION_ROWS
                or y_fit.min() == y_fit.max()
                or y_cal.min() == y_cal.max()
            ):
                continue  # not enough to learn from yet: no predictions in this block
            model = lightgbm.LGBMClassifier(
                **_MODEL_PARAMS,
                min_child_samples=int(np.clip(len(y_fit) // 40, 20, 300)),
                random_state=int(self.params["seed"]),
            )
            model.fit(x[rows[in_fit], cols[in_fit]], y_fit)
            fits += 1
            raw_cal = model.predict_proba(x[rows[in_calib], cols[in_calib]])[:, 1]
            a, b = platt_fit(_logit(raw_cal), y_cal)
            y_all, gain_all = cand_y[usable], cand_gain[usable]
            m1, m0 = float(np.mean(gain_all[y_all == 1.0])), float(np.mean(gain_all[y_all == 0.0]))
            stop = min(n_bars, start + every)
            pr, pc = np.nonzero(proposed[start:stop])
            if len(pr):
                raw = model.predict_proba(x[start + pr, pc])[:, 1]
                p = _sigmoid(a * _logit(raw) + b)
                probs[start + pr, pc] = p
                edges[start + pr, pc] = p * m1 + (1.0 - p) * m0 - cost
        self.report_progress(len(blocks), len(blocks), "training ml models (walk-forward)")
        log.info(
            "ml: %d models trained on %d bars x %d symbols in %.1f s",
            fits,
            n_bars,
            n_symbols,
            time.perf_counter() - started,
        )
        return probs, edges


def _lightgbm_version() -> str:
    """LightGBM's version without importing it (the import pulls in scikit-learn and scipy: seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lightgbm")
    except PackageNotFoundError:
        return "missing"


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError:
        raise ConfigError("strategy 'ml' needs LightGBM: pip install lightgbm") from None
    return lightgbm


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-6, 1.0 - 1e-6)
    return np.log(q / (1.0 - q))


def _sigmoid(z: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-z))


def platt_fit(score: FloatArray, y: FloatArray, iterations: int = 50) -> tuple[float, float]:
    """``(a, b)`` maximising the likelihood of ``y ~ sigmoid(a * score + b)`` (Newton steps, tiny ridge)."""
    a, b = 1.0, 0.0
    s = np.asarray(score, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    for _ in range(iterations):
        p = _sigmoid(a * s + b)
        w = p * (1.0 - p) + 1e-12
        g = np.array([np.sum((p - t) * s) + 1e-3 * (a - 1.0), np.sum(p - t)])
        h = np.array([[np.sum(w * s * s) + 1e-3, np.sum(w * s)], [np.sum(w * s), np.sum(w)]])
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            break
        a, b = a - float(step[0]), b - float(step[1])
        if abs(step[0]) + abs(step[1]) < 1e-10:
            break
    return a, b


def primary_signal(data: AlignedCandles, entry: int) -> np.ndarray:
    """The primary rule's long proposals: ``close[t]`` above the highest high of the ``entry`` bars before."""
    with np.errstate(invalid="ignore"):
        return data.close > rolling_max_nb(data.high, entry, True)  # NaN compares false


@njit(cache=True)
def bars_since_nb(event: np.ndarray, cap: int) -> FloatArray:
    """Per column, rows since the last ``True`` of ``event`` (0 on it), at most ``cap``; NaN before the first."""
    out = np.full(event.shape, np.nan)
    for j in range(event.shape[1]):
        last = -1
        for i in range(event.shape[0]):
            if event[i, j]:
                last = i
            if last >= 0:
                out[i, j] = min(i - last, cap)
    return out


def features(data: AlignedCandles, entry: int = 24) -> FloatArray:
    """Causal features, shape ``(bars, symbols, len(FEATURE_NAMES))``; NaN/inf where undefined."""
    c, h, lo = data.close, data.high, data.low
    volume = np.where(data.present, data.volume, np.nan)
    ret1 = log_return_nb(c, 1)
    vol24 = rolling_std_nb(ret1, 24, 1)
    vol168 = rolling_std_nb(ret1, 168, 1)
    atr = atr_nb(h, lo, c, 14)
    log_volume = np.log1p(volume)
    top = rolling_max_nb(h, 72, False)
    bottom = rolling_min_nb(lo, 72, False)
    upper = rolling_max_nb(h, entry, True)
    lower = rolling_min_nb(lo, entry, True)
    with np.errstate(invalid="ignore"):
        breakout = (c > upper).astype(np.float64)
        trend_age = bars_since_nb(c < lower, TREND_AGE_CAP)
    hour = (data.ts // 3_600_000) % 24
    weekday = (data.ts // 86_400_000 + 3) % 7  # 1970-01-01 was a Thursday: Monday = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = [log_return_nb(c, k) / (vol168 * np.sqrt(k)) for k in (1, 3, 6, 12, 24, 72, 168)]
        columns += [
            vol24,
            vol168,
            vol24 / vol168,
            rsi_nb(c, 14),
            rsi_nb(c, 48),
            np.log(c / sma_nb(c, 24)),
            np.log(c / sma_nb(c, 168)),
            np.log(c / sma_nb(c, 720)),
            atr / c,
            (h - lo) / atr,
            (log_volume - sma_nb(log_volume, 168)) / rolling_std_nb(log_volume, 168, 1),
            (c - bottom) / (top - bottom),
            np.broadcast_to(hour[:, None].astype(np.float64), c.shape),
            np.broadcast_to(weekday[:, None].astype(np.float64), c.shape),
            (c - upper) / atr,
            np.log(upper / lower),
            np.log1p(trend_age),
            sma_nb(np.where(data.present, breakout, np.nan), 72),
        ]
    return np.stack(columns, axis=2)


def forward_returns(close: FloatArray, present: np.ndarray, horizon: int) -> tuple[FloatArray, np.ndarray]:
    """``(fwd, known_at)``: ``fwd[i]`` = log(close ``horizon`` present bars later / close[i]), NaN when
    that bar is not in the data; ``known_at[i]`` = the row of that later bar (the first bar at whose
    close the value is known), ``int64`` max where unknown."""
    fwd = np.full(close.shape, np.nan)
    known_at = np.full(close.shape, np.iinfo(np.int64).max, dtype=np.int64)
    for j in range(close.shape[1]):
        rows = np.flatnonzero(present[:, j] & ~np.isnan(close[:, j]))
        if len(rows) <= horizon:
            continue
        now, later = rows[:-horizon], rows[horizon:]
        fwd[now, j] = np.log(close[later, j] / close[now, j])
        known_at[now, j] = later
    return fwd, known_at


@njit(cache=True)
def hold_rule_nb(p: FloatArray, edge: FloatArray, threshold: float, min_edge: float, hold: int) -> FloatArray:
    """The trading rule of the module docstring, per column: when flat, enter on a qualifying bar;
    exit ``hold`` bars later; stateful only on its own past signals."""
    out = np.full(p.shape, np.nan)
    for j in range(p.shape[1]):
        until = -1  # row at which the current holding ends; -1 = flat
        for i in range(p.shape[0]):
            if until >= 0:
                if i >= until:
                    out[i, j] = 0.0
                    until = -1
                continue
            q = p[i, j]
            if not np.isnan(q) and q >= threshold and edge[i, j] >= min_edge:
                out[i, j] = 1.0
                until = i + hold
    return out
