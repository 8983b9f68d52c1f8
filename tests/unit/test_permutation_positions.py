"""Rebuilding per-bar exposure from saved trades for the permutation test, without lookahead."""

from __future__ import annotations

import numpy as np

from autotrader.validation.analysis import positions_from_trades

HOUR = 3_600_000
TS = np.arange(10, dtype=np.int64) * HOUR


def _iso(bar: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(bar * HOUR / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def test_positions_signal_exit_ends_before_the_exit_bar():
    trades = [{"symbol": "A", "side": "long", "entry_time": _iso(2), "exit_time": _iso(5), "exit_reason": "signal"}]
    pos = positions_from_trades(trades, TS, ("A",))
    assert list(np.flatnonzero(pos[:, 0])) == [2, 3, 4]


def test_positions_stop_exit_stays_exposed_to_the_bar_that_stopped_it():
    trades = [{"symbol": "A", "side": "long", "entry_time": _iso(2), "exit_time": _iso(5), "exit_reason": "stop_loss"}]
    pos = positions_from_trades(trades, TS, ("A",))
    assert list(np.flatnonzero(pos[:, 0])) == [2, 3, 4, 5]


def test_positions_shorts_are_negative_and_split_across_symbols():
    trades = [{"symbol": "B", "side": "short", "entry_time": _iso(1), "exit_time": _iso(3), "exit_reason": "signal"}]
    pos = positions_from_trades(trades, TS, ("A", "B"))
    assert pos[1, 1] == -0.5
    assert not pos[:, 0].any()
