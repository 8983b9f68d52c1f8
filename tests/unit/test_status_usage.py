"""``--mode=status`` and the dashboard gauges show the CURRENT state against each limit, and say their window."""

from __future__ import annotations

import pytest

from autotrader.dashboard.snapshot import is_breached
from autotrader.live.risk_state import RiskState
from autotrader.live.status import DAY_MS, OpenPosition, current_usage, results_window
from autotrader.risk.limits import risk_limits

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def medium() -> RiskState:
    risk = RiskState(risk_limits("medium"), 1000.0)  # position 5 %, stop 2 %
    risk.mark(1000.0, T0)
    return risk


def position(symbol: str, qty: float, price: float, stop: float | None) -> OpenPosition:
    return OpenPosition(
        symbol=symbol, qty=qty, entry_price=price, price=price, value=abs(qty) * price, unrealised=0.0, since=T0,
        stop=stop,
    )  # fmt: skip


def test_usage_with_no_position_is_zero_everywhere() -> None:
    usage = {u.name: u for u in current_usage(medium(), 988.0, [], correlation=0.9)}
    assert usage["position size"].used == 0.0
    assert usage["gross exposure"].used == 0.0
    assert usage["leverage"].used == 0.0
    assert usage["correlation"].used == 0.0  # a stale figure for a book of one or none means nothing
    assert usage["stop-loss distance"].used == 0.0
    assert usage["stop-loss distance"].note == "no open position"
    assert not any(is_breached(name, u.ratio) for name, u in usage.items())


def test_usage_with_an_open_position_is_its_share_of_equity() -> None:
    btc = position("BTCUSDT", 0.001, 98_670.0, stop=96_700.0)  # 98.67 USDT on 988 USDT of equity
    usage = {u.name: u for u in current_usage(medium(), 988.0, [btc], correlation=0.9)}
    assert usage["position size"].used == pytest.approx(100 * 98.67 / 988.0)
    assert usage["gross exposure"].used == pytest.approx(100 * 98.67 / 988.0)
    assert usage["leverage"].used == pytest.approx(98.67 / 988.0)
    assert usage["stop-loss distance BTCUSDT"].used == pytest.approx(100 * (98_670 - 96_700) / 98_670)
    assert usage["stop-loss distance BTCUSDT"].limit == pytest.approx(2.0)
    assert "stop-loss distance" not in usage


def test_usage_lists_every_open_position_stop_distance() -> None:
    book = [position("BTCUSDT", 0.001, 100.0, stop=98.0), position("ETHUSDT", -0.5, 50.0, stop=51.5)]
    rows = [u for u in current_usage(medium(), 1000.0, book, correlation=0.8) if u.name.startswith("stop-loss")]
    assert [(u.name, round(u.used, 6)) for u in rows] == [
        ("stop-loss distance BTCUSDT", 2.0),
        ("stop-loss distance ETHUSDT", 3.0),
    ]


def test_breach_colour_only_for_a_used_up_limit() -> None:
    assert not is_breached("position size", 1.0)  # fixed sizing enters at its cap: not an alarm
    assert not is_breached("position size", 1.05)  # price drift of a held position
    assert is_breached("position size", 4.0)
    assert is_breached("drawdown", 1.0)
    assert not is_breached("drawdown", 0.99)
    assert not is_breached("stop-loss distance BTCUSDT", 5.0)


def test_results_window_never_starts_before_the_first_start() -> None:
    until = T0 + 30 * DAY_MS
    since, label = results_window(until, 30, first_start_ms=T0 + 20 * DAY_MS)
    assert since == T0 + 20 * DAY_MS
    assert label.startswith("since the robot's first start")
    since, label = results_window(until, 5, first_start_ms=T0 + 20 * DAY_MS)
    assert (since, label) == (until - 5 * DAY_MS, "last 5 days")
    assert results_window(until, 30, first_start_ms=None) == (T0, "last 30 days")
