"""Specification of ``autotrader.marketdata.verify``: each kind of problem, found at its row."""

from __future__ import annotations

import numpy as np
import pytest

from autotrader.domain.candles import Candles, parse_date_ms
from autotrader.marketdata.verify import (
    Finding,
    describe_gaps_and_jumps,
    find_gaps,
    find_jumps,
    fmt_ts,
    has_errors,
    timeframe_label,
    verify_candles,
)

H = 3_600_000
T0 = parse_date_ms("2024-01-01")


def make(n: int = 5, **overrides: list[float]) -> Candles:
    """``n`` clean hourly bars from 2024-01-01 00:00; ``overrides`` replace whole columns."""
    close = np.linspace(100.0, 104.0, n)
    columns: dict[str, object] = {
        "ts": T0 + np.arange(n) * H,
        "open": close - 0.5,
        "high": close + 1.0,
        "low": close - 1.5,
        "close": close,
        "volume": np.full(n, 10.0),
    }
    columns.update(overrides)
    return Candles.from_columns(columns)


def with_value(column: str, row: int, value: float, n: int = 5) -> Candles:
    values = getattr(make(n), column).copy()
    values[row] = value
    return make(n, **{column: values})


def only(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def test_verify_clean_series_no_findings():
    assert verify_candles(make(50), H) == []


def test_verify_empty_series_no_findings():
    assert verify_candles(Candles.empty(), H) == []


def test_verify_duplicate_ts_error_at_second_row():
    ts = T0 + np.array([0, 1, 1, 2]) * H
    findings = verify_candles(make(4, ts=ts), H)
    [dup] = only(findings, "duplicate_ts")
    assert (dup.severity, dup.row, dup.ts) == ("error", 2, T0 + H)
    assert dup.message == "duplicate timestamp 2024-01-01 01:00 (same as row 2)"


def test_verify_duplicate_ts_unsorted_refers_to_first_occurrence():
    ts = T0 + np.array([3, 1, 2, 3]) * H
    [dup] = only(verify_candles(make(4, ts=ts), H), "duplicate_ts")
    assert dup.row == 3
    assert dup.message.endswith("(same as row 1)")


def test_verify_unsorted_ts_error_at_row_going_back():
    ts = T0 + np.array([0, 1, 3, 2, 4]) * H
    findings = verify_candles(make(5, ts=ts), H)
    [bad] = only(findings, "unsorted_ts")
    assert (bad.severity, bad.row, bad.ts) == ("error", 3, T0 + 2 * H)
    assert bad.message == "unsorted timestamp 2024-01-01 02:00 earlier than row 3 (2024-01-01 03:00)"


def test_verify_unsorted_ts_no_gap_warnings():
    ts = T0 + np.array([0, 5, 1]) * H
    assert only(verify_candles(make(3, ts=ts), H), "gap") == []


def test_verify_off_grid_ts_error_names_timeframe():
    ts = T0 + np.arange(4) * H
    ts[2] += 60_000
    [bad] = only(verify_candles(make(4, ts=ts), H), "off_grid_ts")
    assert (bad.severity, bad.row) == ("error", 2)
    assert bad.message == "timestamp 2024-01-01 02:01 is not on the 1h grid"


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
def test_verify_nan_in_column_error_at_row(column):
    findings = verify_candles(with_value(column, 3, np.nan), H)
    [bad] = only(findings, "non_finite")
    assert (bad.severity, bad.row, bad.ts) == ("error", 3, T0 + 3 * H)
    assert bad.message == f"NaN in {column}"


@pytest.mark.parametrize(("value", "word"), [(np.inf, "inf"), (-np.inf, "-inf")])
def test_verify_infinite_value_error(value, word):
    [bad] = only(verify_candles(with_value("close", 1, value), H), "non_finite")
    assert (bad.row, bad.message) == (1, f"{word} in close")


def test_verify_nan_not_also_reported_as_other_kinds():
    findings = verify_candles(with_value("high", 2, np.nan), H)
    assert [f.kind for f in findings] == ["non_finite"]


@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
@pytest.mark.parametrize("value", [0.0, -5.0])
def test_verify_non_positive_price_error(column, value):
    # Scale the whole bar so that only the tested price is non-positive and OHLC stays consistent.
    candles = make(3, open=[10, 10, 10], high=[12, 12, 12], low=[9, 9, 9], close=[11, 11, 11])
    values = getattr(candles, column).copy()
    values[1] = value
    candles = make(3, **{**{c: getattr(candles, c) for c in ("open", "high", "low", "close")}, column: values})
    [bad] = only(verify_candles(candles, H), "non_positive_price")
    assert (bad.severity, bad.row) == ("error", 1)
    assert bad.message == f"non-positive {column} {value:g}"


def test_verify_negative_volume_error():
    [bad] = only(verify_candles(with_value("volume", 4, -1.0), H), "negative_volume")
    assert (bad.severity, bad.row, bad.message) == ("error", 4, "negative volume -1")


def test_verify_zero_volume_no_finding():
    assert verify_candles(with_value("volume", 1, 0.0), H) == []


@pytest.mark.parametrize(
    ("bar", "text"),
    [
        ({"open": 10, "high": 10.5, "low": 9, "close": 11}, "high 10.5 below max(open, close) 11"),
        ({"open": 10, "high": 12, "low": 10.5, "close": 11}, "low 10.5 above min(open, close) 10"),
        ({"open": 10, "high": 9, "low": 9.5, "close": 10}, "high 9 below low 9.5"),
    ],
)
def test_verify_inconsistent_ohlc_error_with_reason(bar, text):
    candles = make(3)
    cols = {c: getattr(candles, c).copy() for c in ("open", "high", "low", "close")}
    for c, v in bar.items():
        cols[c][1] = v
    [bad] = only(verify_candles(make(3, **cols), H), "inconsistent_ohlc")
    assert (bad.severity, bad.row) == ("error", 1)
    assert text in bad.message


def test_verify_gap_warning_with_missing_bar_count():
    ts = T0 + np.array([0, 1, 5, 6, 8]) * H
    gaps = only(verify_candles(make(5, ts=ts), H), "gap")
    assert [(g.severity, g.row, g.ts) for g in gaps] == [
        ("warning", 2, T0 + 5 * H),
        ("warning", 4, T0 + 8 * H),
    ]
    assert gaps[0].message == "gap of 3 missing bars between 2024-01-01 01:00 and 2024-01-01 05:00"
    assert gaps[1].message.startswith("gap of 1 missing bar between")
    assert not has_errors(gaps)


def test_verify_jump_beyond_threshold_warning():
    close = np.array([100.0, 101.0, 150.0, 151.0])
    candles = make(4, open=close, high=close + 1, low=close - 1, close=close)
    [jump] = only(verify_candles(candles, H), "jump")
    assert (jump.severity, jump.row) == ("warning", 2)
    assert jump.message == "close jumped +48.5% from 101 (row 2) to 150"


def test_verify_jump_within_threshold_no_finding():
    close = np.array([100.0, 125.0, 100.0])
    candles = make(3, open=close, high=close + 1, low=close - 1, close=close)
    assert verify_candles(candles, H) == []
    assert [f.row for f in verify_candles(candles, H, jump_threshold_pct=15.0)] == [1, 2]


def test_verify_many_problems_capped_with_summary_count():
    n = 100
    candles = make(n, close=np.full(n, np.nan))
    findings = verify_candles(candles, H, max_per_kind=20)
    listed = [f for f in findings if f.row is not None]
    [summary] = [f for f in findings if f.row is None]
    assert len(listed) == 20
    assert [f.row for f in listed] == list(range(20))
    assert (summary.kind, summary.severity, summary.count) == ("non_finite", "error", 80)
    assert summary.message == "... and 80 more NaN or infinite values (100 in total)"
    assert sum(f.count for f in findings) == n


def test_verify_findings_sorted_by_row():
    ts = T0 + np.array([0, 1, 1, 2, 3]) * H
    close = make(5).close.copy()
    close[1] = np.nan
    findings = verify_candles(make(5, ts=ts, close=close), H)
    assert [(f.row, f.kind) for f in findings] == [(1, "non_finite"), (2, "duplicate_ts")]


def test_has_errors_warnings_only_false():
    warning = Finding("warning", "gap", 1, T0, "gap")
    error = Finding("error", "non_finite", 1, T0, "NaN in close")
    assert not has_errors([warning])
    assert has_errors([warning, error])
    assert not has_errors([])


def test_verify_non_positive_timeframe_raises():
    with pytest.raises(ValueError, match="timeframe_ms"):
        verify_candles(make(2), 0)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(T0, "2024-01-01 00:00"), (T0 + 1_000, "2024-01-01 00:00:01"), (T0 + 1_234, "2024-01-01 00:00:01.234")],
)
def test_fmt_ts_shows_seconds_only_when_needed(ms, text):
    assert fmt_ts(ms) == text


@pytest.mark.parametrize(
    ("ms", "label"),
    [(60_000, "1m"), (1_800_000, "30m"), (H, "1h"), (4 * H, "4h"), (24 * H, "1d"), (1500, "1500ms")],
)
def test_timeframe_label_known_lengths_short_name(ms, label):
    assert timeframe_label(ms) == label


# --- gaps and jumps as numbers, and the lines `data import` prints -----------------------------------


def with_gaps(missing: list[int]) -> Candles:
    """Bars with a hole of ``missing[k]`` bars after the k-th bar (then one bar after the last hole)."""
    steps = np.array([m + 1 for m in missing] + [1])
    ts = T0 + np.concatenate([[0], np.cumsum(steps)]) * H
    return make(len(ts), ts=ts)


def test_find_gaps_every_gap_with_missing_bar_count():
    gaps = find_gaps(with_gaps([2, 0, 5, 1]).ts, H)
    assert [(g.row, g.missing_bars) for g in gaps] == [(1, 2), (3, 5), (4, 1)]
    assert gaps[1].after_ts == T0 + 4 * H
    assert gaps[1].before_ts == T0 + 10 * H


def test_find_gaps_unsorted_series_reports_none():
    ts = T0 + np.array([0, 5, 1]) * H
    assert find_gaps(ts, H) == []


def test_find_jumps_beyond_threshold_both_directions():
    candles = make(4, close=[100.0, 150.0, 149.0, 90.0], high=[200.0] * 4, open=[95.0] * 4, low=[80.0] * 4)
    jumps = find_jumps(candles, 30.0)
    assert [(j.row, round(j.change_pct, 1)) for j in jumps] == [(1, 50.0), (3, -39.6)]
    assert (jumps[1].from_close, jumps[1].to_close) == (149.0, 90.0)


def test_describe_gaps_and_jumps_count_largest_and_first_few():
    candles = with_gaps([2, 0, 9, 1, 3])
    gaps_line, jumps_line = describe_gaps_and_jumps(candles, H, first=2)
    assert gaps_line == (
        "Gaps: 4 (15 missing bars); largest 9 bars after 2024-01-01 04:00; "
        "first: 2 bars after 2024-01-01 00:00; 9 bars after 2024-01-01 04:00; ... 2 more"
    )
    assert jumps_line == "Jumps over 30%: none"


def test_describe_gaps_and_jumps_clean_series_says_none():
    assert describe_gaps_and_jumps(make(5), H, jump_threshold_pct=5) == ["Gaps: none", "Jumps over 5%: none"]


def test_describe_jumps_largest_by_size_not_first():
    close = [100.0, 140.0, 141.0, 60.0, 61.0]
    candles = make(5, close=close, open=close, high=[200.0] * 5, low=[50.0] * 5)
    _, jumps_line = describe_gaps_and_jumps(candles, H)
    assert jumps_line.startswith("Jumps over 30%: 2; largest -57.4% at 2024-01-01 03:00 (141 -> 60); first: +40.0%")
