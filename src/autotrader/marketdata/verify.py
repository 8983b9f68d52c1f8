"""Checks on a candle series: what is wrong with it, row by row. Pure: no I/O.

``verify_candles`` returns a list of ``Finding``; ``severity == "error"`` means the series must
not be used (or imported), ``"warning"`` means it is usable but worth knowing (gaps, big jumps).

Kinds, in the order they are checked:

=====================  ========  ==========================================================
kind                   severity  problem
=====================  ========  ==========================================================
``duplicate_ts``       error     a timestamp seen in an earlier row
``unsorted_ts``        error     a timestamp earlier than the previous row's
``off_grid_ts``        error     a timestamp that is not a multiple of the timeframe
``non_finite``         error     NaN or +/-inf in a price or volume column
``non_positive_price`` error     open, high, low or close <= 0
``negative_volume``    error     volume < 0
``inconsistent_ohlc``  error     high < max(open, close), low > min(open, close) or high < low
``gap``                warning   missing bars between two rows (one finding per gap)
``jump``               warning   close-to-close move larger than ``jump_threshold_pct``
=====================  ========  ==========================================================

``Finding.row`` is the 0-based index into the arrays; messages speak to people and refer to
*other* rows 1-based ("same as row 4" is ``row == 3``). Each kind lists at most
``max_per_kind`` findings (the earliest rows); beyond that one summary finding of the same kind
and severity, with ``row`` and ``ts`` set to ``None``, stands for the rest: its ``count`` says how
many. ``sum(f.count for f in findings)`` is the total number of problems.

``find_gaps`` and ``find_jumps`` return every gap and jump as numbers (for "largest" and counts),
and ``describe_gaps_and_jumps`` turns them into the lines ``data import`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from autotrader.domain.candles import PRICE_COLUMNS, Candles, format_ms, ms_to_datetime

Severity = Literal["error", "warning"]

DEFAULT_MAX_PER_KIND = 20

_UNITS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000))


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a candle series.

    ``row`` is the 0-based index into the arrays and ``ts`` that row's timestamp (both ``None``
    for a summary finding). ``count`` is 1, except for a summary finding standing for the
    problems of its kind beyond the listed ones.
    """

    severity: Severity
    kind: str
    row: int | None
    ts: int | None
    message: str
    count: int = 1

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding is an error (the series must not be used)."""
    return any(f.severity == "error" for f in findings)


def verify_candles(
    candles: Candles,
    timeframe_ms: int,
    jump_threshold_pct: float = 30.0,
    max_per_kind: int = DEFAULT_MAX_PER_KIND,
) -> list[Finding]:
    """Check ``candles`` (bars of ``timeframe_ms``) and return every problem, sorted by row.

    Gaps are only looked for when the timestamps are sorted (an unsorted series already has
    errors, and its steps mean nothing). Jumps are measured between consecutive finite,
    positive closes. See the module docstring for the kinds and the per-kind cap.
    """
    if timeframe_ms <= 0:
        raise ValueError(f"timeframe_ms must be positive, got {timeframe_ms}")
    if len(candles) == 0:
        return []
    groups = [
        _duplicates(candles.ts),
        _unsorted(candles.ts),
        _off_grid(candles.ts, timeframe_ms),
        _non_finite(candles),
        _non_positive_prices(candles),
        _negative_volume(candles),
        _inconsistent_ohlc(candles),
    ]
    sorted_ts = len(candles) < 2 or bool(np.all(np.diff(candles.ts) > 0))
    if sorted_ts:
        groups.append(_gaps(candles.ts, timeframe_ms))
    groups.append(_jumps(candles, jump_threshold_pct))
    out: list[Finding] = []
    for group in groups:
        out.extend(_capped(group, max_per_kind))
    # Stable sort: for one row, findings keep the check order above; summaries go last.
    out.sort(key=lambda f: (f.row is None, -1 if f.row is None else f.row))
    return out


# --- one check per kind: each returns a _Group (rows + a message builder), capped later -------


@dataclass(frozen=True, slots=True)
class _Group:
    severity: Severity
    kind: str
    label: str  # plural noun for the summary, e.g. "duplicate timestamps"
    rows: np.ndarray  # 0-based rows with the problem, ascending (may repeat, e.g. per column)
    ts: np.ndarray  # timestamps of those rows
    describe: Callable[[int], str]  # k -> message of the k-th problem (only listed ones are built)


def _capped(group: _Group, max_per_kind: int) -> list[Finding]:
    total = len(group.rows)
    shown = min(total, max(max_per_kind, 0))
    out = [
        Finding(group.severity, group.kind, int(group.rows[k]), int(group.ts[k]), group.describe(k))
        for k in range(shown)
    ]
    if total > shown:
        more = total - shown
        out.append(
            Finding(
                group.severity,
                group.kind,
                None,
                None,
                f"... and {more} more {group.label} ({total} in total)",
                count=more,
            )
        )
    return out


def _duplicates(ts: np.ndarray) -> _Group:
    _, first, inverse = np.unique(ts, return_index=True, return_inverse=True)
    first_row = first[inverse.ravel()]
    rows = np.flatnonzero(first_row != np.arange(len(ts)))
    same_as = first_row[rows]

    def describe(k: int) -> str:
        return f"duplicate timestamp {fmt_ts(int(ts[rows[k]]))} (same as row {int(same_as[k]) + 1})"

    return _Group("error", "duplicate_ts", "duplicate timestamps", rows, ts[rows], describe)


def _unsorted(ts: np.ndarray) -> _Group:
    rows = np.flatnonzero(np.diff(ts) < 0) + 1

    def describe(k: int) -> str:
        i = int(rows[k])
        return f"unsorted timestamp {fmt_ts(int(ts[i]))} earlier than row {i} ({fmt_ts(int(ts[i - 1]))})"

    return _Group("error", "unsorted_ts", "unsorted timestamps", rows, ts[rows], describe)


def _off_grid(ts: np.ndarray, timeframe_ms: int) -> _Group:
    rows = np.flatnonzero(ts % timeframe_ms != 0)
    label = timeframe_label(timeframe_ms)

    def describe(k: int) -> str:
        return f"timestamp {fmt_ts(int(ts[rows[k]]))} is not on the {label} grid"

    return _Group("error", "off_grid_ts", "off-grid timestamps", rows, ts[rows], describe)


def _non_finite(candles: Candles) -> _Group:
    names = ("open", "high", "low", "close", "volume")
    values = np.column_stack([getattr(candles, n) for n in names])
    rows, cols = np.nonzero(~np.isfinite(values))

    def describe(k: int) -> str:
        v = values[rows[k], cols[k]]
        what = "NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf")
        return f"{what} in {names[cols[k]]}"

    return _Group("error", "non_finite", "NaN or infinite values", rows, candles.ts[rows], describe)


def _non_positive_prices(candles: Candles) -> _Group:
    values = np.column_stack([getattr(candles, n) for n in PRICE_COLUMNS])
    rows, cols = np.nonzero(values <= 0)

    def describe(k: int) -> str:
        return f"non-positive {PRICE_COLUMNS[cols[k]]} {values[rows[k], cols[k]]:g}"

    return _Group("error", "non_positive_price", "non-positive prices", rows, candles.ts[rows], describe)


def _negative_volume(candles: Candles) -> _Group:
    rows = np.flatnonzero(candles.volume < 0)

    def describe(k: int) -> str:
        return f"negative volume {candles.volume[rows[k]]:g}"

    return _Group("error", "negative_volume", "negative volumes", rows, candles.ts[rows], describe)


def _inconsistent_ohlc(candles: Candles) -> _Group:
    o, h, lo, c = candles.open, candles.high, candles.low, candles.close
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    high_low = h < top
    low_high = lo > bottom
    crossed = h < lo
    rows = np.flatnonzero(high_low | low_high | crossed)  # NaN compares False: reported as non_finite

    def describe(k: int) -> str:
        i = int(rows[k])
        reasons = []
        if high_low[i]:
            reasons.append(f"high {h[i]:g} below max(open, close) {top[i]:g}")
        if low_high[i]:
            reasons.append(f"low {lo[i]:g} above min(open, close) {bottom[i]:g}")
        if crossed[i]:
            reasons.append(f"high {h[i]:g} below low {lo[i]:g}")
        return "; ".join(reasons)

    return _Group("error", "inconsistent_ohlc", "rows with inconsistent OHLC", rows, candles.ts[rows], describe)


def _gaps(ts: np.ndarray, timeframe_ms: int) -> _Group:
    steps = np.diff(ts)
    rows = np.flatnonzero(steps > timeframe_ms) + 1  # the first row after the hole
    missing = steps[rows - 1] // timeframe_ms - 1

    def describe(k: int) -> str:
        i = int(rows[k])
        n = int(missing[k])
        bars = "bar" if n == 1 else "bars"
        return f"gap of {n} missing {bars} between {fmt_ts(int(ts[i - 1]))} and {fmt_ts(int(ts[i]))}"

    return _Group("warning", "gap", "gaps", rows, ts[rows], describe)


def _jumps(candles: Candles, threshold_pct: float) -> _Group:
    close = candles.close
    valid = np.flatnonzero(np.isfinite(close) & (close > 0))
    prev, cur = valid[:-1], valid[1:]
    change_pct = (close[cur] / close[prev] - 1.0) * 100.0
    hit = np.flatnonzero(np.abs(change_pct) > threshold_pct)
    rows = cur[hit]

    def describe(k: int) -> str:
        j = hit[k]
        return (
            f"close jumped {change_pct[j]:+.1f}% from {close[prev[j]]:g} (row {int(prev[j]) + 1}) to {close[cur[j]]:g}"
        )

    return _Group("warning", "jump", "price jumps", rows, candles.ts[rows], describe)


# --- gaps and jumps as numbers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing bars between two consecutive rows: ``row`` is the first row after the hole."""

    row: int
    after_ts: int
    before_ts: int
    missing_bars: int


@dataclass(frozen=True, slots=True)
class Jump:
    """A close-to-close move beyond the threshold, ending at ``row``."""

    row: int
    ts: int
    from_close: float
    to_close: float
    change_pct: float


def find_gaps(ts: np.ndarray, timeframe_ms: int) -> list[Gap]:
    """Every gap of a sorted series (none is reported for an unsorted one: its steps mean nothing)."""
    if len(ts) < 2 or not bool(np.all(np.diff(ts) > 0)):
        return []
    steps = np.diff(ts)
    rows = np.flatnonzero(steps > timeframe_ms) + 1
    missing = steps[rows - 1] // timeframe_ms - 1
    return [Gap(int(r), int(ts[r - 1]), int(ts[r]), int(m)) for r, m in zip(rows, missing, strict=True)]


def find_jumps(candles: Candles, threshold_pct: float) -> list[Jump]:
    """Every close-to-close move larger than ``threshold_pct`` between finite, positive closes."""
    close = candles.close
    valid = np.flatnonzero(np.isfinite(close) & (close > 0))
    prev, cur = valid[:-1], valid[1:]
    change_pct = (close[cur] / close[prev] - 1.0) * 100.0
    hit = np.flatnonzero(np.abs(change_pct) > threshold_pct)
    return [
        Jump(int(cur[k]), int(candles.ts[cur[k]]), float(close[prev[k]]), float(close[cur[k]]), float(change_pct[k]))
        for k in hit
    ]


def describe_gaps_and_jumps(
    candles: Candles, timeframe_ms: int, jump_threshold_pct: float = 30.0, first: int = 3
) -> list[str]:
    """Two lines: the gaps (count, missing bars, largest, the first few) and the jumps (same)."""
    gaps = find_gaps(candles.ts, timeframe_ms)
    jumps = find_jumps(candles, jump_threshold_pct)
    lines = []
    if gaps:
        largest = max(gaps, key=lambda g: g.missing_bars)
        total = sum(g.missing_bars for g in gaps)
        listed = "; ".join(_gap_text(g) for g in gaps[:first])
        more = f"; ... {len(gaps) - first} more" if len(gaps) > first else ""
        missing = f"{total:,} missing bar{'s' if total != 1 else ''}"
        lines.append(f"Gaps: {len(gaps):,} ({missing}); largest {_gap_text(largest)}; first: {listed}{more}")
    else:
        lines.append("Gaps: none")
    label = f"Jumps over {jump_threshold_pct:g}%"
    if jumps:
        largest_jump = max(jumps, key=lambda j: abs(j.change_pct))
        listed = "; ".join(_jump_text(j) for j in jumps[:first])
        more = f"; ... {len(jumps) - first} more" if len(jumps) > first else ""
        lines.append(f"{label}: {len(jumps):,}; largest {_jump_text(largest_jump)}; first: {listed}{more}")
    else:
        lines.append(f"{label}: none")
    return lines


def _gap_text(gap: Gap) -> str:
    bars = "bar" if gap.missing_bars == 1 else "bars"
    return f"{gap.missing_bars:,} {bars} after {fmt_ts(gap.after_ts)}"


def _jump_text(jump: Jump) -> str:
    return f"{jump.change_pct:+.1f}% at {fmt_ts(jump.ts)} ({jump.from_close:g} -> {jump.to_close:g})"


# --- formatting ----------------------------------------------------------------------------------


def fmt_ts(ms: int) -> str:
    """``2024-01-01 04:00`` (UTC); seconds and milliseconds are shown only when not zero."""
    try:
        if ms % 60_000 == 0:
            return format_ms(ms)
        dt = ms_to_datetime(ms)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
    if ms % 1_000 == 0:
        return dt.strftime("%Y-%m-%d %H:%M:%S")
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def timeframe_label(timeframe_ms: int) -> str:
    """``3_600_000`` -> ``"1h"``; falls back to ``"<n>ms"``."""
    for unit, size in _UNITS:
        if timeframe_ms % size == 0:
            return f"{timeframe_ms // size}{unit}"
    return f"{timeframe_ms}ms"
